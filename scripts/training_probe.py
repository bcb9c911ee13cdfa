"""Measure the seconds per optimiser step of a training config on this machine (data loading included).

Used by ``scripts/gpu_converged.sh`` to set ``trainer.max_steps`` so that the learning-rate schedule ends with a
fixed wall-clock budget. Prints one JSON line: ``{"seconds_per_step": ..., "device": ..., "steps": ...}``.

Usage: ``python scripts/training_probe.py --config configs/converged_gpu.yaml --data runs/converged_train.h5``
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import yaml

from emulator.training.datamodule import FieldDataModule
from emulator.training.module import FieldEmulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="training config YAML (model and data sections)")
    parser.add_argument("--data", default=None, help="training set (overrides data.path)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after 5 warm-up steps)")
    args = parser.parse_args()
    with open(args.config) as fh:
        cfg = yaml.safe_load(fh)
    data_cfg = dict(cfg["data"], **({"path": args.data} if args.data else {}))
    dm = FieldDataModule(**data_cfg)
    dm.setup("fit")
    keys = ("network", "loss_weights", "eulerian_log", "lr", "periodic", "power_kmax_fraction",
            "power_refine")
    model_cfg = {k: v for k, v in cfg["model"].items() if k in keys}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    module = FieldEmulator(**model_cfg).to(device)
    module.train()
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
    loader = dm.train_dataloader()
    it = iter(loader)
    warm, times = 5, []
    for i in range(warm + args.steps):
        t0 = time.perf_counter()
        try:
            raw = next(it)
        except StopIteration:  # a small training set: start another epoch
            it = iter(loader)
            raw = next(it)
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in raw.items()}
        losses, _ = module._step(batch)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warm:
            times.append(time.perf_counter() - t0)
    sec = sorted(times)[len(times) // 2]
    mem = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    print(json.dumps({"seconds_per_step": sec, "mean": sum(times) / len(times), "device": device,
                      "steps": args.steps, "max_memory_gib": round(mem, 2)}))


if __name__ == "__main__":
    main()
