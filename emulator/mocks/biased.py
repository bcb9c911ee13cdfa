"""Poisson-sampled biased tracers of a density mesh, for resolutions where halos are not resolved.

Model
-----
A local bias model maps the overdensity ``delta`` on the mesh to a tracer density ``rho_t(delta)``:

* ``"linear"``: ``1 + b1 delta``, clipped at 0 (params ``b1``, default 1);
* ``"quadratic"``: ``1 + b1 delta + b2/2 (delta^2 - <delta^2>)``, clipped at 0 (``b1`` = 1, ``b2`` = 0);
* ``"exponential"`` (alias ``"lognormal"``): ``exp(b delta)`` (``b`` = 1), the lognormal-mock form; its
  normalisation is immaterial.

``<.>`` is the mean over the mesh. The expected number of tracers in cell ``i`` is
``lambda_i = nbar V_cell rho_t,i / <rho_t>`` (so the expected total is exactly ``nbar L^3``), and the count is
a Poisson draw. Mesh point ``i`` sits at ``x_i = i L / n``; its cell for sampling is the NGP cell
``[x_i - h/2, x_i + h/2)`` per axis (``h = L / n``), in which the tracers are placed uniformly. Hence painting
the tracers back with the NGP window returns the Poisson counts exactly, and the tracer field is the sampled
density convolved with a (real, phase-free) top-hat cell. Velocities, when a velocity mesh is given, are its
CIC readout (:func:`emulator.core.mesh.readout`) at the tracer positions.

Determinism: ``lambda`` is computed in float64 on the CPU and all random numbers (Poisson counts, then the
in-cell offsets) come from ``torch.Generator("cpu").manual_seed(seed)``, so a seed gives bitwise-identical
catalogues whatever the device and dtype of the input mesh (up to the final cast of the positions).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from ..core.fourier import check_box_size
from ..core.mesh import readout

__all__ = ["BIAS_MODELS", "tracer_density", "biased_tracers"]

#: Bias model name -> its parameters and their defaults.
BIAS_MODELS: dict[str, dict[str, float]] = {
    "linear": {"b1": 1.0},
    "quadratic": {"b1": 1.0, "b2": 0.0},
    "exponential": {"b": 1.0},
}
_ALIASES = {"lognormal": "exponential"}


def _model(bias: str | Mapping[str, Any], bias_params: Mapping[str, Any] | None) -> tuple[str, dict[str, float]]:
    if isinstance(bias, Mapping):
        params = {k: v for k, v in bias.items() if k != "model"}
        name = bias.get("model")
        if bias_params:
            params.update(bias_params)
    else:
        name, params = bias, dict(bias_params or {})
    if not isinstance(name, str) or _ALIASES.get(name.lower(), name.lower()) not in BIAS_MODELS:
        raise ValueError(f"bias must be one of {sorted(BIAS_MODELS) + sorted(_ALIASES)}, got {name!r}")
    name = _ALIASES.get(name.lower(), name.lower())
    unknown = set(params) - set(BIAS_MODELS[name])
    if unknown:
        raise ValueError(f"bias_params {sorted(unknown)} not accepted by bias model {name!r}")
    values = dict(BIAS_MODELS[name])
    for key, value in params.items():
        try:
            values[key] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"bias parameter {key} must be a number, got {value!r}") from None
        if not math.isfinite(values[key]):
            raise ValueError(f"bias parameter {key} must be finite, got {value!r}")
    return name, values


def _check_delta(delta: torch.Tensor) -> int:
    if not torch.is_tensor(delta) or delta.ndim != 3 or len(set(delta.shape)) != 1 or delta.shape[0] == 0:
        shape = tuple(delta.shape) if torch.is_tensor(delta) else type(delta).__name__
        raise ValueError(f"delta must be a cubic (n, n, n) torch mesh, got {shape}")
    if not delta.is_floating_point() or not bool(torch.isfinite(delta).all()):
        raise ValueError("delta must be a real floating-point mesh with finite values")
    return int(delta.shape[0])


def tracer_density(
    delta: torch.Tensor, bias: str | Mapping[str, Any] = "linear", bias_params: Mapping[str, Any] | None = None
) -> torch.Tensor:
    """Mean-normalised tracer density ``rho_t / <rho_t>`` (float64, device of ``delta``) for a bias model.

    Parameters
    ----------
    delta : torch.Tensor
        Overdensity mesh ``(n, n, n)``.
    bias : str or mapping
        Model name (see :data:`BIAS_MODELS`) or a mapping ``{"model": name, **params}``.
    bias_params : mapping, optional
        Model parameters (``b1``, ``b2`` or ``b``); missing ones take their defaults.
    """
    _check_delta(delta)
    name, p = _model(bias, bias_params)
    d = delta.to(torch.float64)
    if name == "linear":
        rho = (1.0 + p["b1"] * d).clamp_min(0.0)
    elif name == "quadratic":
        rho = (1.0 + p["b1"] * d + 0.5 * p["b2"] * (d.square() - d.square().mean())).clamp_min(0.0)
    else:
        arg = p["b"] * d
        rho = torch.exp(arg - arg.max())  # shifted for overflow safety; cancels in the normalisation
    mean = rho.mean()
    if not bool(mean > 0.0):
        raise ValueError(f"bias model {name!r} gives a tracer density that vanishes everywhere for this delta")
    return rho / mean


def biased_tracers(
    delta: torch.Tensor,
    box_size: float,
    number_density: float,
    bias: str | Mapping[str, Any] = "linear",
    seed: int = 0,
    velocity_mesh: torch.Tensor | None = None,
    *,
    bias_params: Mapping[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Draw Poisson tracers of a biased density mesh.

    Parameters
    ----------
    delta : torch.Tensor
        Overdensity mesh ``(n, n, n)``, values at ``x_i = i L / n``.
    box_size : float
        Box side ``L``, Mpc/h.
    number_density : float
        Target mean tracer density ``nbar``, (Mpc/h)^-3 (0 gives an empty catalogue).
    bias : str or mapping
        Bias model, see :func:`tracer_density`.
    seed : int
        Seed of the CPU ``torch.Generator`` used for all draws.
    velocity_mesh : torch.Tensor, optional
        Peculiar velocity mesh ``(3, m, m, m)``, km/s, on the box (any ``m``), read out with CIC.
    bias_params : mapping, optional
        Bias model parameters.

    Returns
    -------
    positions : torch.Tensor
        ``(N, 3)`` in ``[0, L)``, Mpc/h, dtype and device of ``delta``.
    velocities : torch.Tensor or None
        ``(N, 3)`` km/s (dtype promoted from the velocity mesh and positions), or ``None`` without a mesh.
    """
    n = _check_delta(delta)
    box = check_box_size(box_size)
    try:
        nbar = float(number_density)
    except (TypeError, ValueError):
        raise ValueError(f"number_density must be a number in (Mpc/h)^-3, got {number_density!r}") from None
    if not math.isfinite(nbar) or nbar < 0.0:
        raise ValueError(f"number_density must be non-negative and finite ((Mpc/h)^-3), got {number_density!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if velocity_mesh is not None:
        if (
            not torch.is_tensor(velocity_mesh)
            or velocity_mesh.ndim != 4
            or velocity_mesh.shape[0] != 3
            or len(set(velocity_mesh.shape[1:])) != 1
        ):
            shape = tuple(velocity_mesh.shape) if torch.is_tensor(velocity_mesh) else type(velocity_mesh).__name__
            raise ValueError(f"velocity_mesh must be a (3, m, m, m) torch mesh in km/s, got {shape}")

    cell = box / n
    lam = tracer_density(delta.detach().cpu(), bias, bias_params) * (nbar * cell**3)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    counts = torch.poisson(lam, generator=gen).to(torch.int64).reshape(-1)
    flat = torch.repeat_interleave(torch.arange(n**3, dtype=torch.int64), counts)
    index = torch.stack([flat // (n * n), (flat // n) % n, flat % n], dim=1).to(torch.float64)
    offset = torch.rand(index.shape, generator=gen, dtype=torch.float64) - 0.5
    pos = torch.remainder((index + offset) * cell, box)
    pos = pos.to(delta.dtype)
    pos = torch.where(pos >= box, pos - box, pos).to(delta.device)  # rounding of the cast can reach L
    vel = None
    if velocity_mesh is not None:
        vel = readout(velocity_mesh, pos.to(velocity_mesh.device), box, window="cic")
    return pos, vel
