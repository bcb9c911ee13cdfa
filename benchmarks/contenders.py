"""Contenders: the emulator ("generator"), 2LPT, ZA, PM with a few steps, and lognormal, on the truth's seeds.

Every contender starts from the white noise of the same seed and size as the truth (the phase convention of
:mod:`emulator.core.fields`), so field-level comparisons (``r(k)``, density slices) are meaningful.

The model: :func:`resolve_model` loads ``--model`` or the embedded default; when neither exists the run stops
with an error (no stand-in is substituted). :func:`write_identity_model` writes an *identity-over-2LPT* model (an
untrained :class:`~emulator.model.StyledUNet` whose output head is exactly zero, so the generator returns 2LPT) for
tests of the plumbing; a run given it with ``--model`` says so in a note.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from emulator.core.atomic import atomic_path
from emulator.core.cosmology import PARAMETER_NAMES, Cosmology
from emulator.model.emulate import emulate_fields
from emulator.model.pgd_correction import pgd_attr
from emulator.model.velocity_dispersion import vdisp_attr
from emulator.model import StyledUNet
from emulator.model.portable import DEFAULT_MODEL_PATH, FORMAT, EmulatorModel, load_model

from .lognormal import lognormal_field
from .truth import Mock, simulate_truth, synchronize

__all__ = ["write_identity_model", "resolve_model", "make_contender", "IDENTITY_NAME"]

IDENTITY_NAME = "identity-over-2lpt"


def write_identity_model(
    path: str | Path,
    cell_size: float,
    prior: dict[str, tuple[float, float]],
    redshift_range: tuple[float, float] = (0.0, 1.0),
) -> Path:
    """Write a model file whose network outputs exactly zero: the emulator then returns 2LPT.

    Parameters
    ----------
    path : str or Path
        Output file (written atomically).
    cell_size : float
        Lagrangian cell size, Mpc/h.
    prior : dict
        ``{parameter: [low, high]}`` for the five parameters (recorded as the model's hull).
    redshift_range : (float, float)
        Redshift hull.
    """
    if not float(cell_size) > 0:
        raise ValueError(f"cell_size must be positive (Mpc/h), got {cell_size!r}")
    missing = [k for k in PARAMETER_NAMES if k not in prior]
    if missing:
        raise ValueError(f"prior lacks {missing}")
    torch.manual_seed(0)
    net = StyledUNet(base_channels=4, depth=1, blocks=1, style_hidden=8)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
    payload = {
        "format": FORMAT,
        "format_version": 1,
        "network": net.config,
        "state_dict": net.state_dict(),
        "style_low": [float(prior[k][0]) for k in PARAMETER_NAMES] + [float(redshift_range[0])],
        "style_high": [float(prior[k][1]) for k in PARAMETER_NAMES] + [float(redshift_range[1])],
        "cell_size": float(cell_size),
        "metadata": {"name": IDENTITY_NAME, "note": "untrained network with a zero output head: exactly 2LPT"},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def resolve_model(path: str | Path | None, *, device="cpu"):
    """Load ``path``, else the embedded default; neither is an error (nothing is substituted).

    Returns
    -------
    model : EmulatorModel
    info : dict
        ``path, sha256, name, cell_size, hull, fallback`` (bool), ``note`` and ``pgd`` (the PGD sharpening its
        particles get, :func:`emulator.model.pgd_correction.pgd_attr`: ``emulate_fields`` applies it), and
        ``velocity_dispersion`` (:func:`emulator.model.velocity_dispersion.vdisp_attr`, likewise).
    """
    note = ""
    if path is not None:
        model = load_model(path, device=device)
    elif DEFAULT_MODEL_PATH.is_file():
        model = load_model(None, device=device)
    else:
        raise ValueError(f"no embedded model at {DEFAULT_MODEL_PATH} and no --model given: the 'generator' "
                         "contender needs a model (no stand-in is substituted)")
    fallback = model.name == IDENTITY_NAME
    if fallback:
        note = ("the 'generator' is the identity-over-2LPT model given with --model (zero network output): its "
                "numbers are 2LPT's, not the emulator's")
    info = {
        "path": model.path, "sha256": model.sha256, "name": model.name, "cell_size": model.cell_size,
        "hull": model.hull(), "fallback": fallback, "note": note, "metadata": _jsonable(model.metadata),
        "pgd": pgd_attr(model.pgd), "velocity_dispersion": vdisp_attr(model.vdisp),
    }
    return model, info


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, (np.generic,)):
        return obj.item()
    return str(obj)


def make_contender(
    name: str,
    cosmology: Cosmology,
    redshift: float,
    box_size: float,
    ngrid: int,
    seed: int,
    *,
    model: EmulatorModel | None = None,
    simulation: dict | None = None,
    pm_steps: int = 4,
    target: tuple | None = None,
    allow_extrapolation: bool = True,
    device: str | torch.device = "cpu",
    pm: dict | None = None,
) -> Mock:
    """One realization of contender ``name`` on the truth's seed, size and cosmology.

    Parameters
    ----------
    name : {"generator", "2lpt", "za", "pm_few", "lognormal"}
    model : EmulatorModel
        Needed by ``"generator"``.
    simulation : dict
        ``run_simulation`` keywords of the truth (``z_init``, ``force_factor``, ...), for ``"pm_few"``, whose
        ``steps`` is replaced by ``pm_steps`` and which never refines (it runs at the model's particle number).
    target : (k, P)
        Binned target power for ``"lognormal"`` (h/Mpc, (Mpc/h)^3).
    allow_extrapolation : bool
        Let the generator run outside its training hull (with a note) instead of failing.
    pm : dict, optional
        A named PM contender (``name`` is any other string): its full ``run_simulation`` settings
        (:func:`benchmarks.config.pm_settings`).
    """
    synchronize(device)
    t0 = time.perf_counter()
    notes: list[str] = []
    if name in ("generator", "2lpt", "za"):
        method = "emulator" if name == "generator" else name
        if name == "generator" and model is None:
            raise ValueError("contender 'generator' needs a model")
        out = emulate_fields(cosmology, redshift, box_size, seed, model=model if name == "generator" else None,
                             method=method, ngrid=ngrid, device=device, allow_extrapolation=allow_extrapolation,
                             velocity_dispersion=False)
        if out.extrapolated:
            notes.append(f"generator extrapolated outside its hull: {'; '.join(out.extrapolated)}")
        halo_vel = None
        if name == "generator" and model.vdisp is not None:  # particles as generate writes them, halos from the
            halo_vel = out.velocities.clone()  # network's velocities (emulator.mocks.catalogs.applied_vdisp)
            out.add_velocity_dispersion(model.vdisp)
        mock = Mock(name=name, cosmology=cosmology, redshift=redshift, box_size=box_size, ngrid=ngrid, seed=seed,
                    positions=out.positions, velocities=out.velocities, halo_velocities=halo_vel,
                    halo_calibration=model.halo_calibration if name == "generator" else None)
    elif name == "pm_few":
        if simulation is None:
            raise ValueError("contender 'pm_few' needs the truth's simulation settings")
        sim = {k: v for k, v in simulation.items() if k != "refine"}  # PM at the model's particle number
        sim["steps"] = int(pm_steps)
        mock = simulate_truth(cosmology, seed, ngrid, box_size, redshift, sim, name="pm_few", device=device)
    elif pm is not None:
        mock = simulate_truth(cosmology, seed, ngrid, box_size, redshift, dict(pm), name=name, device=device)
    elif name == "lognormal":
        if target is None:
            raise ValueError("contender 'lognormal' needs a target power spectrum (k, P)")
        field = lognormal_field(seed, ngrid, box_size, target[0], target[1], device=device)
        if abs(field.mean - 1.0) > 0.05:
            notes.append(f"lognormal seed {seed}: realized mean of exp(G - sigma^2/2) is {field.mean:.3f} "
                         f"(sigma_G^2 = {field.sigma2_g:.2f}); delta taken relative to it")
        if field.clipped_fraction > 1e-3:
            notes.append(f"lognormal: {100 * field.clipped_fraction:.2g}% of |P_G| clipped (negative)")
        mock = Mock(name=name, cosmology=cosmology, redshift=redshift, box_size=box_size, ngrid=ngrid, seed=seed,
                    density=field.delta)
    else:
        raise ValueError(f"contender must be one of generator, 2lpt, za, pm_few, lognormal or a named PM setting; "
                         f"got {name!r}")
    synchronize(device)
    mock.seconds = time.perf_counter() - t0
    mock.notes.extend(notes)
    return mock
