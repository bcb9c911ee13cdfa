"""scripts/gpu_converged.sh, the one-GPU training chain, end to end on a CPU with a tiny suite and network: the
hybrid variant (``BUILD_ARGS`` gives the build a COLA base) trains and exports a model that corrects that run,
in the shipped hybrid config's layout (configs/converged_gpu_hybrid.yaml, its paths moved under a temporary
folder). The base's steps and start differ from the build's defaults (4 steps from z = 12), so the exported
model shows that every option of ``BUILD_ARGS`` reached the build."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = {"trainer": {"accelerator": "cpu"},
        "model": {"network": {"base_channels": 4, "depth": 1, "blocks": 1, "style_hidden": 8}},
        "data": {"crop": 16, "val_crop": 16, "batch_size": 2, "crops_per_sample": 1, "num_workers": 0}}


@pytest.mark.slow
def test_hybrid_chain_builds_on_the_cola_base_and_exports_its_corrector(tmp_path):
    from emulator.model.portable import load_model

    suite = yaml.safe_load((REPO / "configs/suite_tiny.yaml").read_text())  # 6 cosmologies, 16^3 in 64 Mpc/h
    suite["out_dir"] = str(tmp_path / "suite")
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    shipped = (REPO / "configs/converged_gpu_hybrid.yaml").read_text()
    assert shipped.count("runs/converged_gpu_hybrid") == 5  # root, two loggers, two checkpoint folders
    (tmp_path / "train.yaml").write_text(shipped.replace("runs/converged_gpu_hybrid", str(tmp_path / "run")))
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    env = {**os.environ, "SUITE": str(tmp_path / "suite.yaml"), "TRAIN_CFG": str(tmp_path / "train.yaml"),
           "DATA": str(tmp_path / "train_cola4.h5"), "EXTRA_CFG": str(tmp_path / "tiny.yaml"),
           "BUILD_ARGS": "--base cola --base-steps 3 --base-force-factor 2 --base-z-init 10", "STEP_SECONDS": "0.5",
           "MAX_STEPS_CAP": "50", "BUILD_WORKERS": "1", "PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    out = tmp_path / "out"
    done = subprocess.run(["bash", "scripts/gpu_converged.sh", str(out), "400"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    phases = (out / "phases.txt").read_text() if (out / "phases.txt").exists() else ""
    assert done.returncode == 0 and phases.rstrip().endswith("done"), phases + done.stderr[-2000:]
    assert "build --base cola --base-steps 3 --base-force-factor 2 --base-z-init 10" in phases.splitlines()[0]
    assert "build exit 0" in phases and "fit: 50 steps" in phases
    model = load_model(out / "train_tiny.pt")
    assert not model.base.is_lpt and model.base.steps == 3 and model.base.force_factor == 2
    assert model.metadata["history"][-1]["step_to"] == 50
    assert model.base.method == "cola" and model.base.z_init == 10.0
    assert (out / "metrics.csv").stat().st_size > 0 and list(out.glob("best.ckpt.part-*"))
    assert list((tmp_path / "run" / "checkpoints").glob("best-step=50.ckpt"))  # the run's own folder
