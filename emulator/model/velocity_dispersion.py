"""A model's small-scale velocity dispersion: the measured table behind :mod:`emulator.core.velocity_noise`.

``<stem>.vdisp.json`` next to ``<stem>.pt`` (written by ``python -m benchmarks.velocity_dispersion --fit`` on a
training suite only) holds, on a grid of redshifts (linear in ``z``, the end node's values outside) and of nodes
of ``ln(1 + delta)`` (the CIC density at the generator's particle on its particle grid), the per-component rms of
the truth's velocities about the generator's, in units of the velocity scale ``u = 100 a E(a) f(a)`` km/s per
Mpc/h (so in Mpc/h: the rms of ``dpsi / dln D``, the training sets' velocity unit), as

    ln(sigma / u) = c[z, node] + sum_p s_p[z, node] (theta_p - pivot_p),

``theta_p`` cosmological parameters (``Omega_m``, ``sigma8``) held inside their training range. Generation adds
an isotropic Gaussian of that dispersion to every particle's velocity (``emulator generate``; ``--no-velocity-
dispersion`` leaves the network's). Like the PGD file it counts only while its ``sha256`` is the model file's.
No torch import.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.cosmology import PARAMETER_NAMES
from .sidecar import attr_or_none, digest_or_none, load_sidecar_file, read_sidecar, sidecar_path

__all__ = ["VDISP_FORMAT", "VelocityDispersion", "velocity_scale", "vdisp_attr", "vdisp_digest", "vdisp_path",
           "read_vdisp", "read_vdisp_file"]

VDISP_FORMAT = "cosmo-emulator-vdisp"
LOG_SIGMA_LIMIT = 5.0  # |ln(sigma / u)| above this (sigma > 148 u, or < u / 148) is no measured table: a typo's guard


def velocity_scale(cosmology, redshift: float) -> float:
    """``u = 100 a E(a) f(a)``, km/s per Mpc/h: a displacement rate ``dpsi / dln D`` of 1 Mpc/h is ``u`` km/s."""
    from .emulate import growth_factors  # torch-free callers (emulator info) never evaluate a dispersion

    a, _, _, f1, _, e = growth_factors(cosmology, float(redshift))
    return 100.0 * a * e * f1


@dataclass(frozen=True)
class VelocityDispersion:
    """The dispersion table of one model.

    Attributes
    ----------
    sha256 : str
        SHA-256 of the model file it was fitted for.
    redshifts : np.ndarray
        ``(nz,)`` ascending redshift nodes.
    log_density : np.ndarray
        ``(nb,)`` ascending nodes of ``ln(1 + delta)``.
    log_sigma : np.ndarray
        ``(nz, nb)`` ``ln(sigma / u)`` at the pivot cosmology (``u``: :func:`velocity_scale`, sigma per component).
    parameters : tuple of str
        Names of the cosmological parameters with slopes (from ``Omega_m, Omega_b, h, n_s, sigma8``).
    slopes : np.ndarray
        ``(nz, nb, len(parameters))`` ``d ln sigma / d theta``.
    pivot, ranges : dict
        Per parameter: the pivot value, and ``(low, high)``, the training range it is held in.
    source : dict
        Provenance: the command, training suite, snapshots and the fit's residuals.
    """

    sha256: str
    redshifts: np.ndarray
    log_density: np.ndarray
    log_sigma: np.ndarray
    parameters: tuple = ()
    slopes: np.ndarray | None = None
    pivot: dict = field(default_factory=dict)
    ranges: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        z, x = (np.asarray(v, dtype=np.float64) for v in (self.redshifts, self.log_density))
        ls = np.asarray(self.log_sigma, dtype=np.float64)
        if z.ndim != 1 or z.size < 1 or x.ndim != 1 or x.size < 1 or ls.shape != (z.size, x.size):
            raise ValueError(f"vdisp: log_sigma must be (redshifts, density nodes) = ({z.size}, {x.size}), got "
                             f"{ls.shape}")
        for name, v in (("redshifts", z), ("log_density", x)):
            if not np.all(np.isfinite(v)) or np.any(np.diff(v) <= 0):
                raise ValueError(f"vdisp: {name} must be finite and strictly ascending")
        if not np.all(np.isfinite(ls)) or np.any(np.abs(ls) > LOG_SIGMA_LIMIT):
            raise ValueError(f"vdisp: ln(sigma / u) must be finite and within +-{LOG_SIGMA_LIMIT:g}")
        params = tuple(str(p) for p in self.parameters)
        unknown = [p for p in params if p not in PARAMETER_NAMES]
        if unknown or len(set(params)) != len(params):
            raise ValueError(f"vdisp: parameters must be distinct names of {list(PARAMETER_NAMES)}, got {list(params)}")
        s = np.zeros(ls.shape + (0,)) if self.slopes is None else np.asarray(self.slopes, dtype=np.float64)
        if s.shape != ls.shape + (len(params),) or not np.all(np.isfinite(s)):
            raise ValueError(f"vdisp: slopes must be finite, {ls.shape + (len(params),)}, got {s.shape}")
        if not (isinstance(self.pivot, dict) and isinstance(self.ranges, dict)):
            raise ValueError("vdisp: pivot and ranges must map parameter names to values")
        reach = np.abs(ls)
        for i, p in enumerate(params):
            if p not in self.ranges or p not in self.pivot:
                raise ValueError(f"vdisp: parameter {p} needs a pivot and a range")
            lo, hi = (float(v) for v in self.ranges[p])
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= float(self.pivot[p]) <= hi):
                raise ValueError(f"vdisp: {p} pivot {self.pivot[p]} outside its finite range [{lo}, {hi}]")
            reach = reach + np.abs(s[..., i]) * max(hi - float(self.pivot[p]), float(self.pivot[p]) - lo)
        if np.any(reach > LOG_SIGMA_LIMIT):  # the slopes could take sigma past the limit inside the ranges
            raise ValueError(f"vdisp: within the parameters' ranges ln(sigma / u) reaches {float(reach.max()):.3g}, "
                             f"beyond +-{LOG_SIGMA_LIMIT:g}")
        for name, v in (("redshifts", z), ("log_density", x), ("log_sigma", ls), ("slopes", s)):
            object.__setattr__(self, name, v)
        object.__setattr__(self, "parameters", params)

    def log_sigma_at(self, redshift: float, cosmology) -> np.ndarray:
        """``(nb,)`` ``ln(sigma / u)`` at ``redshift`` (linear between nodes, end values outside) for
        ``cosmology`` (parameters held in their training ranges)."""
        out = np.array([np.interp(float(redshift), self.redshifts, self.log_sigma[:, j])
                        for j in range(self.log_density.size)])
        for i, p in enumerate(self.parameters):
            lo, hi = self.ranges[p]
            d = min(max(float(getattr(cosmology, p)), float(lo)), float(hi)) - float(self.pivot[p])
            out += d * np.array([np.interp(float(redshift), self.redshifts, self.slopes[:, j, i])
                                 for j in range(self.log_density.size)])
        return out

    def sigma_at(self, redshift: float, cosmology) -> np.ndarray:
        """``(nb,)`` per-component dispersion in km/s at the density nodes, at ``redshift`` for ``cosmology``."""
        return np.exp(self.log_sigma_at(redshift, cosmology)) * velocity_scale(cosmology, redshift)

    def to_dict(self) -> dict:
        """The file's JSON content."""
        return {"format": VDISP_FORMAT, "format_version": 1, "sha256": self.sha256,
                "redshifts": self.redshifts.tolist(), "log_density": self.log_density.tolist(),
                "log_sigma": np.round(self.log_sigma, 5).tolist(), "parameters": list(self.parameters),
                "slopes": np.round(self.slopes, 5).tolist(), "pivot": dict(self.pivot),
                "ranges": {p: list(v) for p, v in self.ranges.items()}, "source": self.source}

    def attr(self) -> str:
        """The provenance attr ``velocity_dispersion``: the table applied, as compact JSON."""
        d = self.to_dict()
        return json.dumps({k: v for k, v in d.items() if k not in ("format", "format_version", "source")},
                          separators=(",", ":"))

    def digest(self) -> str:
        """SHA-256 of :meth:`attr`."""
        return hashlib.sha256(self.attr().encode()).hexdigest()

    def describe(self) -> str:
        """One line: the nodes and the dispersion at the pivot cosmology's mean density, in Mpc/h."""
        j = int(np.argmin(np.abs(self.log_density)))
        at = ", ".join(f"z = {z:g}: {math.exp(v):.3g}" for z, v in zip(self.redshifts, self.log_sigma[:, j]))
        span = ", ".join(f"z = {z:g}: {math.exp(r[0]):.3g}-{math.exp(r[-1]):.3g}"
                         for z, r in zip(self.redshifts, self.log_sigma))
        terms = f"; slopes in {', '.join(self.parameters)}" if self.parameters else ""
        return (f"velocity dispersion (fitted on {self.source.get('suite', '?')}): rms per component / (100 a E f) "
                f"at 1 + delta = {math.exp(self.log_density[j]):.2g}: {at} Mpc/h; from ln(1 + delta) = "
                f"{self.log_density[0]:g} to {self.log_density[-1]:g}: {span}{terms}")


vdisp_attr = attr_or_none  # "none" or VelocityDispersion.attr(): the file attr velocity_dispersion
vdisp_digest = digest_or_none  # "none" or VelocityDispersion.digest(): part of every output file's identity


def vdisp_path(model_path: str | Path) -> Path:
    """The dispersion file of a model file: ``<folder>/<stem>.vdisp.json``."""
    return sidecar_path(model_path, "vdisp")


def _build(data: dict) -> VelocityDispersion:
    for key in ("pivot", "ranges"):
        if not isinstance(data.get(key, {}), dict):
            raise ValueError(f"{key} must map parameter names to values")
    return VelocityDispersion(sha256=str(data["sha256"]), redshifts=data["redshifts"],
                              log_density=data["log_density"], log_sigma=data["log_sigma"],
                              parameters=tuple(data.get("parameters", ())), slopes=data.get("slopes"),
                              pivot=dict(data.get("pivot", {})),
                              ranges={p: tuple(v) for p, v in data.get("ranges", {}).items()},
                              source=dict(data.get("source", {})))


def read_vdisp_file(path: str | Path) -> VelocityDispersion:
    """A dispersion file read from any path; ValueError naming the file when it is not one this code reads."""
    try:
        return load_sidecar_file(path, VDISP_FORMAT, _build, "velocity-dispersion")[0]
    except ValueError as exc:
        raise ValueError(f"{path}: unusable velocity-dispersion file ({exc})") from None


def read_vdisp(model_path: str | Path, sha256: str) -> VelocityDispersion | None:
    """The velocity dispersion of the model file ``model_path`` (SHA-256 ``sha256``), or ``None`` when it has none;
    an unreadable or stale file is ``None`` with a warning on stderr."""
    return read_sidecar(model_path, sha256, "vdisp", VDISP_FORMAT, _build, "velocity-dispersion table",
                        "velocities are the network's")
