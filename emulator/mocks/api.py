"""``emulator.generate_mocks``: the Python API behind ``emulator generate``.

Example
-------
>>> from emulator.api import generate_mocks
>>> paths = generate_mocks("planck18", redshift=0.0, box_size=128.0, n_realizations=4, base_seed=1,
...                        tracer="halos", out_dir="mocks")
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from ..core.cosmology import PARAMETER_NAMES, Cosmology, get_preset
from ..model.emulate import emulate_fields
from .catalogs import MockOptions, make_catalogs
from ..model.portable import EmulatorModel, ExtrapolationError, load_model
from ..core.provenance import code_version

__all__ = ["generate_mocks", "resolve_cosmology"]


def resolve_cosmology(params: Any) -> Cosmology:
    """A :class:`Cosmology` from a preset name, a mapping of the five parameters, an astropy cosmology
    (with ``n_s`` and ``sigma8`` in ``meta``) or a Cosmology."""
    if isinstance(params, Cosmology):
        return params
    if isinstance(params, str):
        return get_preset(params)
    if isinstance(params, dict):
        return Cosmology.from_mapping(params)
    if hasattr(params, "Om0") and hasattr(params, "H0"):
        return Cosmology.from_astropy(params)
    raise ValueError(f"cannot interpret {params!r} as a cosmology: use a preset name, a dict of "
                     f"{', '.join(PARAMETER_NAMES)}, an astropy cosmology or a Cosmology")


def generate_mocks(
    params: Any,
    *,
    redshift: float = 0.0,
    box_size: float = 128.0,
    n_realizations: int = 1,
    base_seed: int = 1,
    seeds: Sequence[int] | None = None,
    out_dir: str | Path = "mocks",
    format: str = "hdf5",
    model: EmulatorModel | str | Path | None = None,
    device: str = "cpu",
    allow_extrapolation: bool = False,
    tile: int | None = None,
    progress: bool = True,
    **tracer_options: Any,
) -> list[Path]:
    """Generate mock catalogs, one file per realization (``mock_<seed>.hdf5`` or ``.fits``) in ``out_dir``.

    Parameters
    ----------
    params
        Cosmology: preset name, dict, astropy cosmology or :class:`Cosmology`.
    redshift : float
        Snapshot redshift.
    box_size : float
        Box side in Mpc/h (a multiple of the model's cell size).
    n_realizations, base_seed : int
        Seeds ``base_seed, base_seed + 1, ...`` unless ``seeds`` is given.
    format : {"hdf5", "fits"}
    model
        A loaded model, a model file, or None for the embedded default.
    tracer_options
        Fields of :class:`emulator.mocks.catalogs.MockOptions` (``tracer``, ``number_density``, ``hod``, ...).
    """
    from tqdm.auto import tqdm

    from .io import write_catalogs

    cosmo = resolve_cosmology(params)
    opts = MockOptions(**tracer_options)
    if format not in ("hdf5", "fits"):
        raise ValueError(f"format must be hdf5 or fits, got {format!r}")
    if seeds is None:
        if n_realizations < 1:
            raise ValueError(f"n_realizations must be >= 1, got {n_realizations}")
        seeds = [base_seed + i for i in range(n_realizations)]
    if not isinstance(model, EmulatorModel):
        model = load_model(model, device=device)
    # validate the whole request before writing anything
    outside = model.check_domain(cosmo, redshift)
    if outside and not allow_extrapolation:
        raise ExtrapolationError(
            "outside the model's training hull: " + "; ".join(outside) + " (use --allow-extrapolation)"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".hdf5" if format == "hdf5" else ".fits"
    paths = []
    for seed in tqdm(seeds, desc="mocks", unit="mock", disable=not progress):
        t0 = time.perf_counter()
        fields = emulate_fields(cosmo, redshift, box_size, int(seed), model=model, device=device, tile=tile,
                                allow_extrapolation=allow_extrapolation)
        catalogs, extra = make_catalogs(fields, opts)
        attrs = {
            **cosmo.to_dict(),
            "redshift": float(redshift),
            "BoxSize": float(fields.box_size),
            "Nmesh": int(fields.ngrid),
            "seed": int(seed),
            "tracer": opts.tracer,
            "tracer_options": opts.to_attrs(),
            "model_name": model.name,
            "model_sha256": model.sha256,
            "package_version": code_version(),
            "extrapolation_warning": "; ".join(fields.extrapolated),
            "generation_seconds": time.perf_counter() - t0,
            **extra,
        }
        path = out_dir / f"mock_{int(seed):06d}{suffix}"
        write_catalogs(path, catalogs, attrs, format=format)
        paths.append(path)
    return paths
