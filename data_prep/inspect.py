"""``data-prep inspect FILE``: print a summary of a training set or of a snapshot."""

from __future__ import annotations

import argparse
import json

import h5py
import numpy as np

__all__ = ["describe", "add_arguments", "run"]

_UNIT_CHOICES = "Mpc/h, kpc/h, Gpc/h or a factor to Mpc/h (e.g. 0.001 for kpc/h)"


def _describe_training_set(f: h5py.File) -> list[str]:
    a = f.attrs
    lines = [
        f"training set (format v{a['format_version']}, code {a['code_version']}, created {a['created']})",
        f"  box {a['box_size']} Mpc/h, {a['ngrid']}^3 particles, cell {a['box_size'] / a['ngrid']:.4g} Mpc/h",
        f"  prior low  {np.round(a['prior_low'], 4).tolist()}",
        f"  prior high {np.round(a['prior_high'], 4).tolist()}  ({', '.join(json.loads(a['param_names']))})",
    ]
    for name in ("train", "val", "test"):
        ids = json.loads(f["splits"].attrs[name])
        lines.append(f"  {name:5s}: {len(ids)} simulations")
    for sid, g in f["sims"].items():
        zs = sorted(float(z.attrs["redshift"]) for k, z in g.items() if k.startswith("z_"))
        params = " ".join(f"{k}={g.attrs[k]:.4g}" for k in ("Omega_m", "Omega_b", "h", "n_s", "sigma8"))
        rms = ""
        if zs:
            zg = g[f"z_{zs[0]:.4f}"]
            d = zg["disp"][...]
            rms = f" rms disp {np.sqrt((d**2).sum(0).mean()):.3g} Mpc/h at z={zs[0]:g}"
        lines.append(f"  {sid} [{g.attrs['split']}] seed={g.attrs['seed']} {params} z={zs}{rms}")
    return lines


def describe(path: str, length_unit: str | float | None = None) -> str:
    """Human-readable summary of a training set or a snapshot (any format the readers know).

    Parameters
    ----------
    path : str
        Training-set HDF5 file or snapshot.
    length_unit : str or float, optional
        Length unit of a snapshot without unit metadata (e.g. Gadget-2 binary): ``"Mpc/h"``, ``"kpc/h"``,
        ``"Gpc/h"`` or a factor to Mpc/h. Ignored for training sets.

    Raises
    ------
    ValueError
        One line naming the file, e.g. a snapshot whose length unit is unknown (asking for ``--length-unit``).
    """
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") == "cosmo-emulator-trainingset":
                return "\n".join([path, *_describe_training_set(f)])
    except OSError:
        pass
    from .readers import read_header
    from .readers.base import LengthUnitError

    try:
        h = read_header(path, length_unit=length_unit)
    except LengthUnitError as exc:
        raise LengthUnitError(exc.path, exc.problem, f"pass --length-unit {_UNIT_CHOICES}") from None
    return "\n".join(
        [
            f"{path}: {h.format} snapshot in {len(h.files)} file(s)",
            f"  box {h.box_size:.6g} Mpc/h (stored {h.box_size_file:.6g}, unit factor {h.length_unit_mpc_h:g})",
            f"  z={h.redshift:.6g} a={h.scale_factor:.6g}; particles per type {h.npart_total.tolist()}",
            f"  mass table {h.mass_table.tolist()} Msun/h; cosmology {h.cosmology}",
        ]
    )


def _length_unit(text: str) -> str | float:
    """``--length-unit`` value: a unit name or a number (factor to Mpc/h), checked by the readers' parser."""
    from .readers.base import parse_length_unit

    try:
        value: str | float = float(text)
    except ValueError:
        value = text
    try:
        parse_length_unit(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {_UNIT_CHOICES}, got {text!r}") from None
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``data-prep inspect``."""
    parser.add_argument("path", help="training-set HDF5 file or snapshot (Gadget binary/HDF5, SWIFT, bigfile)")
    parser.add_argument("--length-unit", type=_length_unit, default=None, metavar="UNIT",
                        help=f"length unit of a snapshot that does not record one (Gadget-2 binary): {_UNIT_CHOICES}")


def run(args: argparse.Namespace) -> int:
    """Print the summary."""
    print(describe(args.path, args.length_unit))
    return 0
