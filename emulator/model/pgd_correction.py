"""A model's PGD sharpening: a short-range pull of its particles that restores the small-scale power it misses.

The hybrid generator's particles are too spread inside halos at low redshift (hybrid_pm4 at z = 0 on the
held-out test suite, 64^3 particles in 128 Mpc/h: P(k) 6.3% low at k_Nyq / 2 and 17% at k_Nyq on average against
the converged truth, 13% at worst for k <= k_Nyq / 2). Potential gradient descent (:mod:`emulator.core.pgd`,
Dai, Feng & Seljak 2018) moves each particle towards nearby density peaks by ``alpha`` times a band-passed
gravity-like field of its own density.
``<stem>.pgd.json`` next to ``<stem>.pt`` (written by ``python -m benchmarks.pgd --fit`` on a training suite
only) holds the band ``k_long``, ``k_short`` (h/Mpc, for the model's cell size) and ``alpha`` on a grid of
redshifts (linear in ``z``, constant outside); velocities are left as the network made them. The deficit grows
with sigma8 (hybrid_pm4 at z = 0: each training box's best alpha correlates with sigma8 at r = 0.43), so a file
of ``format_version`` 2 also holds ``d alpha / d sigma8`` at each node, a pivot and the training range of
sigma8: ``alpha(z, sigma8) = max(0, alpha(z) + slope(z) (sigma8 - pivot))`` with sigma8 held at the ends of its
range (on hybrid_pm4's held-out boxes it did not beat one strength: :mod:`benchmarks.pgd`). Like the halo-mass
calibration it counts only while its ``sha256`` is the model file's. No torch import.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .sidecar import attr_or_none, digest_or_none, load_sidecar_file, read_sidecar, sidecar_path

__all__ = ["PGD_FORMAT", "PGDCorrection", "pgd_attr", "pgd_digest", "pgd_path", "pgd_from_attr", "read_pgd",
           "read_pgd_file"]

PGD_FORMAT = "cosmo-emulator-pgd"
ALPHA_LIMIT = 1.0  # far above any useful strength (0.03 already over-sharpens hybrid_pm4 at z = 0): a typo's guard


@dataclass(frozen=True)
class PGDCorrection:
    """PGD strength ``alpha(z)`` and band of one model.

    Attributes
    ----------
    sha256 : str
        SHA-256 of the model file it was fitted for.
    redshifts : np.ndarray
        ``(nz,)`` ascending redshift nodes.
    alpha : np.ndarray
        ``(nz,)`` strengths (dimensionless, >= 0) at the nodes.
    k_long, k_short : float
        High-pass and low-pass scales of the pull, h/Mpc (:func:`emulator.core.pgd.pgd_kernel`).
    source : dict
        Provenance: the command, training suite, snapshots and the fit's residuals.
    sigma8_slope : np.ndarray or None
        ``(nz,)`` ``d alpha / d sigma8`` at the nodes; None: one strength for every cosmology.
    sigma8_pivot : float
        sigma8 at which ``alpha`` holds.
    sigma8_range : tuple of float
        ``(low, high)`` training range of sigma8; beyond it the strength is that at its end.
    """

    sha256: str
    redshifts: np.ndarray
    alpha: np.ndarray
    k_long: float
    k_short: float
    source: dict = field(default_factory=dict)
    sigma8_slope: np.ndarray | None = None
    sigma8_pivot: float = 0.8
    sigma8_range: tuple = (0.0, 10.0)

    def __post_init__(self) -> None:
        z, a = (np.asarray(v, dtype=np.float64) for v in (self.redshifts, self.alpha))
        if z.ndim != 1 or a.shape != z.shape or z.size < 1:
            raise ValueError(f"pgd: alpha must have one value per redshift node, got {a.shape} for {z.shape}")
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(a))) or np.any(np.diff(z) <= 0):
            raise ValueError("pgd: redshifts must be finite and strictly ascending, alpha finite")
        if np.any(a < 0) or np.any(a > ALPHA_LIMIT):
            raise ValueError(f"pgd: alpha must be in [0, {ALPHA_LIMIT:g}] (negative pushes particles off their peaks; "
                             f"fitted values are ~0.01), got {a.tolist()}")
        if not (math.isfinite(self.k_long) and self.k_long >= 0 and math.isfinite(self.k_short) and self.k_short > 0):
            raise ValueError(f"pgd: need k_long >= 0 and k_short > 0 h/Mpc, got {self.k_long}, {self.k_short}")
        object.__setattr__(self, "redshifts", z)
        object.__setattr__(self, "alpha", a)
        if self.sigma8_slope is not None:
            b = np.asarray(self.sigma8_slope, dtype=np.float64)
            lo, hi = (float(v) for v in self.sigma8_range)
            if b.shape != z.shape or not np.all(np.isfinite(b)):
                raise ValueError(f"pgd: sigma8_slope must be finite, one per redshift node, got {b.tolist()}")
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= float(self.sigma8_pivot) <= hi):
                raise ValueError(f"pgd: sigma8 pivot {self.sigma8_pivot} outside its range [{lo}, {hi}]")
            if np.any(np.abs(b) * (hi - lo) > ALPHA_LIMIT):
                raise ValueError(f"pgd: sigma8_slope {b.tolist()} moves alpha by more than {ALPHA_LIMIT:g}")
            object.__setattr__(self, "sigma8_slope", b)
            object.__setattr__(self, "sigma8_range", (lo, hi))

    def alpha_at(self, redshift: float, sigma8: float | None = None) -> float:
        """``alpha`` at ``redshift`` (linear between nodes, the end node's value outside) and, for a file with a
        sigma8 term, at ``sigma8`` (required then; held at the ends of the training range, never below 0)."""
        z = float(redshift)
        a = float(np.interp(z, self.redshifts, self.alpha))
        if self.sigma8_slope is None:
            return a
        if sigma8 is None:
            raise ValueError("pgd: this sharpening depends on sigma8: give the cosmology's sigma8")
        s = min(max(float(sigma8), self.sigma8_range[0]), self.sigma8_range[1])
        return max(0.0, a + float(np.interp(z, self.redshifts, self.sigma8_slope)) * (s - float(self.sigma8_pivot)))

    def to_dict(self) -> dict:
        """The file's JSON content (``format_version`` 2 with a sigma8 term, 1 without)."""
        d = {"format": PGD_FORMAT, "format_version": 1 if self.sigma8_slope is None else 2, "sha256": self.sha256,
             "k_long": self.k_long, "k_short": self.k_short, "redshifts": self.redshifts.tolist(),
             "alpha": self.alpha.tolist(), "source": self.source}
        if self.sigma8_slope is not None:
            d["sigma8_term"] = {"slope": self.sigma8_slope.tolist(), "pivot": float(self.sigma8_pivot),
                                "range": list(self.sigma8_range)}
        return d

    def attr(self) -> str:
        """The provenance attr ``pgd``: the parameters applied, as compact JSON."""
        d = self.to_dict()
        return json.dumps({k: d[k] for k in ("sha256", "k_long", "k_short", "redshifts", "alpha", "sigma8_term")
                           if k in d}, separators=(",", ":"))

    def digest(self) -> str:
        """SHA-256 of :meth:`attr`: what output files and halo-mass calibrations record."""
        return hashlib.sha256(self.attr().encode()).hexdigest()

    def describe(self) -> str:
        """One line: the band and ``alpha`` at each node."""
        nodes = ", ".join(f"z = {z:g}: {a:.4g}" for z, a in zip(self.redshifts, self.alpha))
        term = ""
        if self.sigma8_slope is not None:
            term = (f" at sigma8 = {self.sigma8_pivot:g}, plus d alpha / d sigma8 " + ", ".join(
                f"{b:+.4g}" for b in self.sigma8_slope) + f" (sigma8 held in [{self.sigma8_range[0]:g}, "
                f"{self.sigma8_range[1]:g}], alpha >= 0)")
        return (f"PGD sharpening (k_long = {self.k_long:g}, k_short = {self.k_short:g} h/Mpc; fitted on "
                f"{self.source.get('suite', '?')}): alpha at {nodes}{term}")


pgd_attr = attr_or_none  # "none" or PGDCorrection.attr(): the file attr pgd
pgd_digest = digest_or_none  # "none" or PGDCorrection.digest(): what output files and calibrations record


def pgd_path(model_path: str | Path) -> Path:
    """The PGD file of a model file: ``<folder>/<stem>.pgd.json``."""
    return sidecar_path(model_path, "pgd")


def _build(data: dict) -> PGDCorrection:
    version, term = data.get("format_version"), data.get("sigma8_term")
    if (version == 2) != isinstance(term, dict):  # format 2 is the sigma8 term; format 1 has none
        raise ValueError(f"format_version {version} with sigma8_term {term!r:.40}")
    extra = {} if term is None else {"sigma8_slope": term["slope"], "sigma8_pivot": float(term["pivot"]),
                                     "sigma8_range": tuple(term["range"])}
    return PGDCorrection(sha256=str(data["sha256"]), redshifts=data["redshifts"], alpha=data["alpha"],
                         k_long=float(data["k_long"]), k_short=float(data["k_short"]),
                         source=dict(data.get("source", {})), **extra)


def pgd_from_attr(attr: str) -> PGDCorrection:
    """The sharpening a provenance attr ``pgd`` (:meth:`PGDCorrection.attr`) records (not ``"none"``)."""
    d = json.loads(attr)
    return _build({**d, "format_version": 2 if "sigma8_term" in d else 1})


def read_pgd_file(path: str | Path) -> PGDCorrection:
    """A PGD file read from any path (a candidate not yet beside its model); ValueError naming the file when it
    is not one this code reads."""
    try:
        return load_sidecar_file(path, PGD_FORMAT, _build, "PGD sharpening", version=(1, 2))[0]
    except ValueError as exc:
        raise ValueError(f"{path}: unusable PGD file ({exc})") from None


def read_pgd(model_path: str | Path, sha256: str) -> PGDCorrection | None:
    """The PGD sharpening of the model file ``model_path`` (SHA-256 ``sha256``), or ``None`` when it has none;
    an unreadable or stale file is ``None`` with a warning on stderr."""
    return read_sidecar(model_path, sha256, "pgd", PGD_FORMAT, _build, "PGD sharpening",
                        "particles are the network's, unsharpened", version=(1, 2))
