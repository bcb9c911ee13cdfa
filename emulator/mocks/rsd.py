"""Redshift-space distortions in a periodic box (plane-parallel / distant-observer approximation).

A tracer at comoving position ``x`` (Mpc/h) with peculiar velocity ``v`` (km/s) observed at redshift ``z`` along
the fixed line of sight ``n`` (unit vector) appears at

    s = x + (v . n) n (1 + z) / (100 E(z))            [Mpc/h],

because the peculiar velocity adds ``v_los / c`` to ``1 + z`` and ``d chi / dz = c / H(z)``; the factor
``(1 + z) / (100 E(z)) = 1 / (a H(a))`` with ``H`` in units of ``100 h`` km/s/Mpc converts km/s to Mpc/h
(``E(z) = H(z)/H0`` from :meth:`emulator.core.cosmology.Cosmology.efunc`). The result is wrapped periodically
into ``[0, L)``. For an axis line of sight (``"x"``, ``"y"``, ``"z"``) only that coordinate changes.

For a cut-sky catalogue with a radial line of sight see :mod:`emulator.mocks.cutsky`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from ..core.cosmology import Cosmology
from ..core.fourier import check_box_size
from ..core.mesh import wrap_positions

__all__ = ["velocity_to_displacement", "redshift_space_positions", "line_of_sight"]

_AXES = {"x": 0, "y": 1, "z": 2}


def _check_redshift(redshift: Any) -> float:
    try:
        z = float(redshift)
    except (TypeError, ValueError):
        raise ValueError(f"redshift must be a number, got {redshift!r}") from None
    if not math.isfinite(z) or z <= -1.0:
        raise ValueError(f"redshift must be finite and > -1, got {redshift!r}")
    return z


def velocity_to_displacement(redshift: float, cosmology: Cosmology) -> float:
    """Factor ``(1 + z) / (100 E(z))`` converting a peculiar velocity (km/s) into a redshift-space shift (Mpc/h).

    Parameters
    ----------
    redshift : float
        Redshift of the snapshot, ``z > -1``.
    cosmology : Cosmology
        Background cosmology (``E(z)`` from :meth:`Cosmology.efunc`).

    Returns
    -------
    float
        In (Mpc/h) / (km/s).
    """
    if not isinstance(cosmology, Cosmology):
        raise ValueError(f"cosmology must be an emulator.core.cosmology.Cosmology, got {type(cosmology).__name__}")
    z = _check_redshift(redshift)
    a = 1.0 / (1.0 + z)
    return 1.0 / (100.0 * a * float(cosmology.efunc(a)))


def line_of_sight(los: str | Sequence[float] | np.ndarray | torch.Tensor) -> int | np.ndarray:
    """Parse a line of sight: an axis name gives its index (0, 1, 2); a vector gives a float64 unit 3-vector.

    A vector must have unit norm to 1e-6 (it is not normalised silently).
    """
    if isinstance(los, str):
        if los.lower() not in _AXES:
            raise ValueError(f"los must be 'x', 'y', 'z' or a unit 3-vector, got {los!r}")
        return _AXES[los.lower()]
    if torch.is_tensor(los):
        los = los.detach().cpu().numpy()
    try:
        vec = np.asarray(los, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"los must be 'x', 'y', 'z' or a unit 3-vector, got {los!r}") from None
    if vec.shape != (3,) or not np.all(np.isfinite(vec)):
        raise ValueError(f"los must be 'x', 'y', 'z' or a finite unit 3-vector, got {los!r}")
    norm = float(np.linalg.norm(vec))
    if abs(norm - 1.0) > 1e-6:
        raise ValueError(f"los must be a unit vector (norm 1 to 1e-6), got norm {norm:.8g}")
    return vec


def _wrap(s, box: float, is_torch: bool):
    """Periodic wrap into ``[0, L)``; a value that rounds up to ``L`` (tiny negative input) is mapped to 0."""
    if is_torch:
        return wrap_positions(s, box)
    s = np.remainder(s, box)
    return np.where(s >= box, s - box, s).astype(s.dtype, copy=False)


def redshift_space_positions(
    position: np.ndarray | torch.Tensor,
    velocity: np.ndarray | torch.Tensor,
    redshift: float,
    cosmology: Cosmology,
    box_size: float,
    los: str | Sequence[float] | np.ndarray | torch.Tensor = "z",
) -> np.ndarray | torch.Tensor:
    """Move tracers to redshift space along a fixed line of sight, with periodic wrapping.

    Parameters
    ----------
    position : numpy.ndarray or torch.Tensor
        Real-space comoving positions, shape ``(N, 3)``, Mpc/h (any finite values; wrapped into the box).
    velocity : numpy.ndarray or torch.Tensor
        Peculiar velocities, shape ``(N, 3)``, km/s; same array type as ``position``.
    redshift : float
        Snapshot redshift ``z``.
    cosmology : Cosmology
        Background cosmology.
    box_size : float
        Box side ``L``, Mpc/h.
    los : {"x", "y", "z"} or unit 3-vector
        Line of sight ``n``.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``s = x + (v . n) n (1+z) / (100 E(z))`` wrapped into ``[0, L)``, shape ``(N, 3)``, same type, dtype (a
        floating dtype; integer numpy input gives float64) and device as ``position``. The torch path is
        differentiable in ``position`` and ``velocity``.
    """
    box = check_box_size(box_size)
    factor = velocity_to_displacement(redshift, cosmology)
    axis = line_of_sight(los)
    is_torch = torch.is_tensor(position)
    if is_torch != torch.is_tensor(velocity):
        raise ValueError("position and velocity must both be numpy arrays or both torch tensors")
    if is_torch:
        if not position.is_floating_point():
            raise ValueError(f"position must be a floating-point tensor, got dtype {position.dtype}")
        velocity = velocity.to(dtype=position.dtype, device=position.device)
        finite = bool(torch.isfinite(position.detach()).all() and torch.isfinite(velocity.detach()).all())
    else:
        position = np.asarray(position)
        if not np.issubdtype(position.dtype, np.floating):
            position = position.astype(np.float64)
        velocity = np.asarray(velocity).astype(position.dtype, copy=False)
        finite = bool(np.all(np.isfinite(position)) and np.all(np.isfinite(velocity)))
    if position.ndim != 2 or position.shape[1] != 3:
        raise ValueError(f"position must have shape (N, 3) in Mpc/h, got {tuple(position.shape)}")
    if tuple(velocity.shape) != tuple(position.shape):
        raise ValueError(
            f"velocity must have the shape of position {tuple(position.shape)}, got {tuple(velocity.shape)}"
        )
    if not finite:
        raise ValueError("position and velocity must be finite (no NaN or inf)")

    if isinstance(axis, int):
        cols = [position[:, i] + velocity[:, i] * factor if i == axis else position[:, i] for i in range(3)]
        stacked = torch.stack(cols, dim=1) if is_torch else np.stack(cols, axis=1)
        return _wrap(stacked, box, is_torch)
    if is_torch:
        n = torch.as_tensor(axis, dtype=position.dtype, device=position.device)
        vlos = velocity @ n
        return _wrap(position + (factor * vlos)[:, None] * n, box, True)
    n = axis.astype(position.dtype)
    vlos = velocity @ n
    return _wrap(position + (factor * vlos)[:, None] * n, box, False)
