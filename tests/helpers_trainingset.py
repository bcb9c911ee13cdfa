"""A tiny synthetic training set, built through the real snapshot writer and training-set builder, without
the PM simulator and without CAMB.

Construction (per simulation; ``n = 16`` particles per side in a 64 Mpc/h box):

* the linear density is a Gaussian field (core ``white_noise`` + ``linear_density_k``) with the power law
  ``P(k) = P0 (sigma8 / 0.8)^2 (k / 0.1)^(n_s - 2.5)`` (Mpc/h)^3;
* the initial-conditions snapshot (z = 9) holds the Zel'dovich positions ``q + D1(a_ic) psi1``, so the builder's
  first-order reconstruction ``delta_L = -div(x_ic - q) / D1(a_ic)`` is exact and no seed (hence no CAMB) is
  needed;
* each "N-body" snapshot holds the 2LPT positions and velocities plus a known deterministic, local, nonlinear
  residual of the 2LPT displacement ``p = psi_2LPT / cell`` (cell units):

      R(p) = ALPHA lap(p) - BETA div(p) p,      velocity residual (displacement units) = GAMMA R(p),

  with the 7-point lattice Laplacian (per component) and the central-difference divergence. ``R`` commutes with
  the 48 lattice symmetries of the cube and with translations, so it is learnable by a small U-Net under
  symmetry augmentation, and it changes the painted-density P(k) by tens of per cent.

Run as a script (``python tests/helpers_trainingset.py ddp-fit ...``) it trains with DDP on CPU processes and
writes what each rank validated; see :func:`_ddp_main`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

N_GRID = 16
BOX_SIZE = 64.0
Z_IC = 9.0
REDSHIFTS = (0.0, 0.5, 1.0)
P0 = 2000.0  # (Mpc/h)^3 at k = 0.1 h/Mpc for sigma8 = 0.8
ALPHA, BETA, GAMMA = 0.25, 0.25, 2.0
PRIOR_LOW = (0.25, 0.04, 0.62, 0.92, 0.75)
PRIOR_HIGH = (0.35, 0.055, 0.74, 1.00, 0.90)
# (sim_id, (Omega_m, Omega_b, h, n_s, sigma8), seed, split): one cosmology per simulation.
SIMULATIONS = (
    ("sim_a", (0.26, 0.045, 0.66, 0.94, 0.78), 11, "train"),
    ("sim_b", (0.33, 0.050, 0.70, 0.98, 0.86), 12, "train"),
    ("sim_c", (0.29, 0.042, 0.72, 0.96, 0.82), 13, "train"),
    ("sim_d", (0.31, 0.053, 0.64, 0.99, 0.76), 14, "train"),
    ("sim_v", (0.30, 0.048, 0.68, 0.95, 0.84), 15, "val"),
    ("sim_t", (0.28, 0.051, 0.69, 0.97, 0.80), 16, "test"),
)


def power_law(sigma8: float, n_s: float):
    """The synthetic linear P(k) in (Mpc/h)^3 for k in h/Mpc."""
    return lambda k: P0 * (sigma8 / 0.8) ** 2 * (k / 0.1) ** (n_s - 2.5)


def lattice_laplacian(p: torch.Tensor) -> torch.Tensor:
    """7-point periodic Laplacian of each channel of ``(C, n, n, n)``, in cell units."""
    return sum(torch.roll(p, 1, d) + torch.roll(p, -1, d) - 2 * p for d in (-3, -2, -1))


def lattice_divergence(p: torch.Tensor) -> torch.Tensor:
    """Central-difference periodic divergence of a ``(3, n, n, n)`` field, cell units."""
    return sum((torch.roll(p[a], -1, a) - torch.roll(p[a], 1, a)) / 2 for a in range(3))


def residual_map(p: torch.Tensor) -> torch.Tensor:
    """The synthetic N-body residual ``R(p)`` (cell units) of a 2LPT displacement ``p`` (cell units)."""
    return ALPHA * lattice_laplacian(p) - BETA * lattice_divergence(p) * p


def simulation_fields(cosmo_params, seed: int, n: int = N_GRID, box: float = BOX_SIZE):
    """psi1, psi2 (Mpc/h, float64) and the growth history of one synthetic simulation."""
    from emulator.core.cosmology import Cosmology
    from emulator.core.fields import linear_density_k, white_noise
    from emulator.core.growth import GrowthHistory
    from emulator.core.lpt import lpt2_displacement, za_displacement

    cosmo = Cosmology(*cosmo_params)
    noise = white_noise(seed, n, dtype=torch.float64)
    delta_k = linear_density_k(noise, box, power_law(cosmo.sigma8, cosmo.n_s))
    return cosmo, za_displacement(delta_k, box), lpt2_displacement(delta_k, box), GrowthHistory(cosmo)


def _write_snapshot(path: Path, disp: torch.Tensor, vel: torch.Tensor, z: float, cosmo, n: int, box: float):
    from data_prep.writers import write_gadget4_hdf5
    from emulator.core.lpt import lagrangian_grid, vector_field_to_particles

    q = lagrangian_grid(n, box, dtype=torch.float64)
    x = torch.remainder(q + vector_field_to_particles(disp), box).numpy()
    v = vector_field_to_particles(vel).numpy()
    mass = 2.775e11 * cosmo.Omega_m * (box / n) ** 3
    write_gadget4_hdf5(path, x, v, np.arange(n**3, dtype=np.int64), box, z, cosmo, mass)


def write_synthetic_suite(root: str | Path, n: int = N_GRID, box: float = BOX_SIZE) -> Path:
    """Write IC and "N-body" snapshots of :data:`SIMULATIONS` and a builder manifest; return the manifest path."""
    from emulator.core.lpt import lpt_velocity

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cell = box / n
    sims = []
    for sim_id, params, seed, split in SIMULATIONS:
        cosmo, psi1, psi2, growth = simulation_fields(params, seed, n, box)
        (root / sim_id).mkdir(exist_ok=True)
        a_ic = 1.0 / (1.0 + Z_IC)
        d1, f1, e = growth.D1(a_ic), growth.f1(a_ic), growth.E(a_ic)
        vel_ic = lpt_velocity(psi1, None, a=a_ic, hubble_e=e, d1=d1, f1=f1)
        _write_snapshot(root / sim_id / "ic.hdf5", d1 * psi1, vel_ic, Z_IC, cosmo, n, box)
        snaps = []
        for z in REDSHIFTS:
            a = 1.0 / (1.0 + z)
            d1, d2, f1, f2, e = (float(getattr(growth, k)(a)) for k in ("D1", "D2", "f1", "f2", "E"))
            lpt = d1 * psi1 + d2 * psi2
            lpt_v = lpt_velocity(psi1, psi2, a=a, hubble_e=e, d1=d1, f1=f1, d2=d2, f2=f2)
            r = residual_map(lpt / cell)
            vu = 100.0 * a * e * f1
            name = f"{sim_id}/snap_z{z:.2f}.hdf5"
            _write_snapshot(root / name, lpt + r * cell, lpt_v + GAMMA * r * cell * vu, z, cosmo, n, box)
            snaps.append(name)
        sims.append({
            "sim_id": sim_id,
            "cosmology": dict(zip(("Omega_m", "Omega_b", "h", "n_s", "sigma8"), params)),
            "seed": None,
            "ic": f"{sim_id}/ic.hdf5",
            "snapshots": snaps,
            "split": split,
        })
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps({
        "box_size": box, "ngrid": n, "prior_low": list(PRIOR_LOW), "prior_high": list(PRIOR_HIGH),
        "simulations": sims,
    }))
    return manifest


def build_synthetic_training_set(root: str | Path) -> Path:
    """Write the synthetic suite under ``root`` and build ``root/train.h5`` with ``data_prep.build``."""
    from data_prep.build import build_training_set

    manifest = write_synthetic_suite(Path(root) / "suite")
    return build_training_set(manifest, Path(root) / "train.h5", progress=False)


def write_index_training_set(path: str | Path, n: int = 16, box: float = 32.0, redshifts=(0.0, 2.0)) -> Path:
    """A hand-written training set (h5py only, documented format) whose fields encode the grid indices.

    Every simulation and redshift has ``lpt_disp[a] = i_a * cell`` (so the input in cell units is the index
    ``i_a`` itself), ``disp = lpt_disp + 0.5 cell``, ``lpt_vel = 0`` and ``vel = 100 a E f1 * cell * (a + 1)``
    for component ``a`` (velocity target ``a + 1`` cells). One simulation per split.
    """
    import h5py

    path = Path(path)
    cell = box / n
    idx = np.stack(np.meshgrid(*(np.arange(n),) * 3, indexing="ij")).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.attrs.update(format="cosmo-emulator-trainingset", format_version=1, code_version="test", ngrid=n,
                       box_size=box, param_names=json.dumps(["Omega_m", "Omega_b", "h", "n_s", "sigma8"]),
                       prior_low=np.array(PRIOR_LOW), prior_high=np.array(PRIOR_HIGH), created="test")
        splits = {}
        for k, (split, params) in enumerate(zip(("train", "val", "test"), (PRIOR_LOW, PRIOR_HIGH, PRIOR_LOW))):
            sim_id = f"sim_{k}"
            splits[split] = [sim_id]
            g = f.create_group(f"sims/{sim_id}")
            g.attrs.update(dict(zip(("Omega_m", "Omega_b", "h", "n_s", "sigma8"), params)))
            g.attrs.update(seed=k, box_size=box, ngrid=n, split=split, source_files="[]", source_sha256="[]")
            g.create_dataset("linear_delta", data=np.zeros((n, n, n), np.float32))
            for z in redshifts:
                a, e, f1 = 1.0 / (1.0 + z), 1.0 + z, 0.5 + 0.1 * z
                zg = g.create_group(f"z_{z:.4f}")
                zg.attrs.update(redshift=z, scale_factor=a, D1=a, D2=-3 / 7 * a * a, f1=f1, f2=2 * f1, E=e)
                vu = 100.0 * a * e * f1
                zg.create_dataset("lpt_disp", data=idx * cell, chunks=(3, 8, 8, 8))
                zg.create_dataset("lpt_vel", data=np.zeros_like(idx), chunks=(3, 8, 8, 8))
                zg.create_dataset("disp", data=idx * cell + 0.5 * cell, chunks=(3, 8, 8, 8))
                vel = np.ones_like(idx) * (vu * cell * np.arange(1, 4, dtype=np.float32))[:, None, None, None]
                zg.create_dataset("vel", data=vel, chunks=(3, 8, 8, 8))
                zg.create_dataset("density", data=np.zeros((n, n, n), np.float32))
        for split, ids in splits.items():
            f.require_group("splits").attrs[split] = json.dumps(ids)
    return path


# ----------------------------------------------------------------------------------------------------------------
# DDP driver (run in a subprocess by tests/test_training.py)
# ----------------------------------------------------------------------------------------------------------------


class _RecordValidation:
    """Lightning callback factory: per-rank seen indices and the gathered result, written as JSON."""

    @staticmethod
    def make(out_dir: Path):
        import lightning as L

        class Record(L.Callback):
            def __init__(self) -> None:
                self.seen: list[int] = []

            def on_validation_epoch_start(self, trainer, pl_module) -> None:
                self.seen = []

            def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
                self.seen.extend(int(i) for i in batch["index"])

            def on_validation_end(self, trainer, pl_module) -> None:  # after the module's epoch-end hook
                rank = trainer.global_rank
                record = {
                    "rank": rank,
                    "world_size": trainer.world_size,
                    "global_step": trainer.global_step,
                    "seen": self.seen,
                    "gathered": pl_module.last_validation.get("indices", []),
                    "ratio_model": pl_module.last_validation.get("ratio_model", []),
                    "val_total": float(trainer.callback_metrics["val/total"]),
                }
                path = out_dir / f"rank{rank}_step{trainer.global_step}.json"
                path.write_text(json.dumps(record))

        return Record()


def _ddp_main(argv: list[str]) -> int:
    """``ddp-fit --data PATH --out DIR``: fit 2 steps then validate with DDP on 2 CPU processes (gloo)."""
    import lightning as L

    from emulator.training.datamodule import FieldDataModule
    from emulator.training.module import FieldEmulator

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--strategy", default="ddp")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    model = FieldEmulator(network={"base_channels": 4, "depth": 1, "blocks": 1, "style_hidden": 8}, warmup_steps=1)
    data = FieldDataModule(args.data, crop=8, halo=8, val_crop=16, batch_size=2, crops_per_sample=1,
                           augment=True, num_workers=0)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy=args.strategy, max_steps=2, limit_train_batches=2,
        num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[_RecordValidation.make(out)], default_root_dir=str(out),
    )
    trainer.fit(model, datamodule=data)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "ddp-fit":
        sys.exit(_ddp_main(sys.argv[2:]))
    raise SystemExit("usage: python tests/helpers_trainingset.py ddp-fit --data PATH --out DIR")
