"""Particle-mesh gravity and the FastPM kick-drift-kick integrator (Feng et al. 2016).

Units and equations
-------------------
Time is in ``1/H0``, comoving positions ``x`` in Mpc/h, and the canonical momentum is
``p = a^2 dx/dt / H0 = a^3 E(a) dx/da`` in Mpc/h, so that the peculiar velocity is ``v = 100 p / a`` km/s
(the convention of :mod:`emulator.core.growth`). The equations of motion are

    dx/da = p / (a^3 E),    dp/da = F / (a^2 E),    F = -grad Phi,    laplacian Phi = 1.5 Omega_m delta,

with ``delta`` the comoving density contrast of the particles; in Fourier space
``F_k = i k 1.5 Omega_m delta_k / k^2`` (Mpc/h, no ``1/a``: it sits in ``dp/da``). This equals
``-grad phi`` of the brief's ``phi_k = -(3/2) (Omega_m / a) delta_k / k^2`` times ``a``, the factor that turns
``dp/dt = -grad phi`` into ``dp/da = F / (a^2 E)``.

Force solver (:class:`PMForce`)
-------------------------------
Particles are CIC-painted onto a force mesh of ``n_force = B n`` points a side; the overdensity is Fourier
transformed, multiplied by the force kernel and transformed back one component at a time, then read out with
the same CIC window at the particle positions (same window both ways, odd gradient kernel: the total force, hence
the total momentum, is conserved to rounding). Defaults, chosen on measured force errors (numbers for ``B = 2``,
a ``32^3`` lattice perturbed by a tiny plane wave, ratio of the PM force to the exact linear force
``1.5 Omega_m psi``, waves ``m = (1,0,0), (2,0,0), (4,0,0), (1,1,0), (1,2,2)`` in units of ``2 pi / L``):

* ``shift=0.5``: the force mesh is offset by half a mesh cell from the Lagrangian lattice (mesh points at
  ``(i + 1/2) L / n_force``). With ``B = 2`` and no offset every unperturbed particle sits exactly on a mesh point,
  where the CIC weight has a kink; the painted lattice is then a Nyquist-frequency pattern whose modulation by the
  displacement produces coherent aliases that the readout folds back onto ``k``: with the spectral gradient the
  force is wrong by ``O(k h)`` even at the fundamental mode (1.07, 1.15, 1.31, 1.05, 1.08) plus transverse forces
  of 60-100% of the true force. With the offset a lattice paints a uniform density and small displacements move
  the CIC weights linearly.
* ``gradient="fd4"``: the fourth-order finite-difference kernel ``i (8 sin(k h) - sin(2 k h)) / (6 h)`` (FastPM,
  Gadget PM; ``h`` the mesh cell), which is periodic in ``k`` and vanishes at the Nyquist frequency, so aliased
  images near Nyquist get a consistent, small force. The spectral ``i k`` (Nyquist planes zeroed), option
  ``"spectral"``, jumps at Nyquist: (1.03, 1.06, 1.11, 1.03, 1.04) even with the offset mesh. ``"fd2"`` is
  ``i sin(k h) / h``. The Laplacian is the exact ``-k^2`` in all cases.
* ``deconvolve=1``: divide ``delta_k`` by one power of the CIC window ``W(k)`` (``0``, ``1`` or ``2`` powers
  allowed). For clustered particles painting and readout each multiply the force by ``W`` (``W^2 ~ 1 - (k h)^2/6``),
  so two powers would be the unbiased choice; for a perturbed lattice the coherent aliases make up roughly one
  power. Force ratios: ``0`` -> (1.0001, 1.0008, 1.0055, 0.9967, 0.9823); ``1`` -> (1.0032, 1.0127, 1.0488,
  0.9992, 0.9905); ``2`` -> (1.0093, 1.0349, 1.1218, 1.0030, 1.0008). In full runs (``32^3`` particles,
  256 Mpc/h, z = 0, paired-fixed ICs, 10 steps) ``P(k)/P_halofit`` at ``k <= k_Nyq/4`` of the particle grid is
  within 0.5% for ``1``, down to 0.97 for ``0`` and up to 1.05 for ``2``. At 2 Mpc/h resolution the choice
  matters beyond ``k_Nyq/4``: 64^3 particles in 128 Mpc/h, z = 0, 12 steps from z = 12, fixed-amplitude ICs,
  ``P(deconvolve=1) / P(deconvolve=0)`` = 1.008, 1.018, 1.031 at k = 0.3, 0.5, 0.8 h/Mpc (issue 11 measured
  1.4% / 2.7% at k = 0.5 / 0.8 in another setting, and in the deep linear regime an over-growth of modes at
  k = 0.5 / 0.8 by ~2.6% / 4% with one power on a 2x mesh, an under-growth on a 4x mesh from particle-lattice
  discreteness): the particle lattice, not the force mesh, limits such runs; see the mass refinement of
  :mod:`data_prep.simulate.refine`.

Integrator (:func:`kdk`)
------------------------
Each step ``a_n -> a_{n+1}`` is kick(``a_n -> a_h``, force at ``a_n``), drift(``a_n -> a_{n+1}``, momentum at
``a_h``), force at ``a_{n+1}``, kick(``a_h -> a_{n+1}``). The factors are FastPM's
(:meth:`GrowthHistory.kick_factor`, :meth:`GrowthHistory.drift_factor`), exact for the linear growing mode
whatever the step size, so a handful of steps reproduces linear growth on large scales. ``a_h`` is the midpoint
in the stepping variable: arithmetic in ``a`` for ``spacing="linear"``, geometric for ``"log"``. One force
evaluation per step plus one at the start; the state is synchronised (x and p at the same ``a``) at every step
boundary, where outputs are taken. Given an :class:`~emulator.core.cola.LPTFrame` the same steps integrate only the
residual from the 2LPT trajectory (COLA, :mod:`emulator.core.cola`: large scales right with a few steps).

The particle state is the displacement ``s = x - q`` from the Lagrangian grid ``q`` (not wrapped, so it
stays exact in float32 however small it is), and positions are ``(q + s) mod L`` when painting or output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import pairwise

import numpy as np
import torch

from .cola import LPTFrame, plain_factor
from .fourier import (
    check_box_size,
    check_mesh_size,
    gradient_kernels,
    k_squared,
    to_fourier,
    to_real,
)
from .growth import GrowthHistory
from .lpt import lpt2_displacement, vector_field_to_particles, za_displacement
from .mesh import paint, readout
from .window import window_kernel

from .base_recipe import SPACINGS

__all__ = ["GRADIENTS", "SPACINGS", "PMForce", "check_force_options", "check_step_options", "initial_state", "kdk",
           "lpt_initial_state", "step_midpoint", "step_schedule"]

GRADIENTS: tuple[str, ...] = ("spectral", "fd2", "fd4")
_STACK_MAX_MESH = 512  # largest force mesh whose three force components are held at once


def check_force_options(deconvolve: object, gradient: object, shift: object,
                        shift_name: str = "shift") -> tuple[int, str, float]:
    """Validate :class:`PMForce`'s ``deconvolve``, ``gradient`` and ``shift`` (called ``shift_name`` in the
    message); one-line ``ValueError`` naming the option at fault. Returns them as ``(int, str, float)``."""
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
    if isinstance(deconvolve, bool) or deconvolve not in (0, 1, 2):
        raise ValueError(f"deconvolve must be 0, 1 or 2 (powers of the CIC window), got {deconvolve!r}")
    try:
        value = float(shift)
    except (TypeError, ValueError):
        raise ValueError(f"{shift_name} must be a number of force mesh cells, got {shift!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{shift_name} must be finite (force mesh cells), got {shift!r}")
    return int(deconvolve), str(gradient), value


def check_step_options(steps: object, spacing: object) -> None:
    """Validate :func:`step_schedule`'s ``steps`` (a positive integer) and ``spacing``; one-line ``ValueError``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")


class PMForce:
    """Particle-mesh force ``F = -grad Phi``, ``laplacian Phi = 1.5 Omega_m delta`` (Mpc/h), at particles.

    Parameters
    ----------
    nmesh : int
        Force mesh points per side (even).
    box_size : float
        Box side ``L`` in Mpc/h.
    omega_m : float
        Matter density today.
    deconvolve : {0, 1, 2}
        Powers of the CIC window divided out of ``delta_k`` (see the module docstring).
    gradient : {"fd4", "fd2", "spectral"}
        Gradient kernel.
    shift : float
        Offset of the force mesh from the Lagrangian lattice, in mesh cells (0.5: cell centres).
    dtype, device
        Precision and device of the meshes (float32 or float64).
    """

    def __init__(
        self,
        nmesh: int,
        box_size: float,
        omega_m: float,
        *,
        deconvolve: int = 1,
        gradient: str = "fd4",
        shift: float = 0.5,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        self.nmesh = check_mesh_size(nmesh, "nmesh")
        self.box_size = check_box_size(box_size)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.deconvolve, self.gradient, self.shift = check_force_options(deconvolve, gradient, shift)
        n, box = self.nmesh, self.box_size
        self.omega_m, self.dtype = float(omega_m), dtype
        # Kernels are built in float64 and cast once: the potential kernel 1.5 Omega_m / (k^2 W^p) as one
        # (n, n, n//2+1) mesh and the gradient kernels g_i(k_i) as broadcastable 1-d factors.
        k2 = k_squared(n, box, dtype=torch.float64, device=device)
        k2[0, 0, 0] = 1.0
        pot = 1.5 * self.omega_m / k2
        pot[0, 0, 0] = 0.0
        if self.deconvolve:
            pot = pot / window_kernel(n, "cic", dtype=torch.float64, device=device) ** self.deconvolve
        grads = gradient_kernels(n, box, dtype=torch.float64, device=device)
        h = box / n
        if gradient == "fd2":
            grads = tuple(torch.sin(k * h) / h for k in grads)
        elif gradient == "fd4":
            grads = tuple((8.0 * torch.sin(k * h) - torch.sin(2.0 * k * h)) / (6.0 * h) for k in grads)
        self._potential = pot.to(dtype)
        self._gradients = [g.to(dtype) for g in grads]

    def __call__(self, positions: torch.Tensor) -> torch.Tensor:
        """Force at ``positions`` ``(N, 3)`` (Mpc/h, wrapped periodically); returns ``(N, 3)`` in Mpc/h.

        Every particle carries unit mass and the mean density is the particle count over the box, so
        ``delta = n^3 rho / N - 1`` on the mesh (the ``-1`` only touches ``k = 0``, which has no force).
        """
        if positions.dtype != self.dtype:
            raise ValueError(f"positions must have dtype {self.dtype} like the force mesh, got {positions.dtype}")
        n = self.nmesh
        rho = paint(positions, n, self.box_size, window="cic", shift=self.shift)
        # F_k,i = i g_i(k) 1.5 Omega_m delta_k / (k^2 W^p): first the potential part, in place.
        pot_k = to_fourier(rho).mul_(self._potential * (n**3 / positions.shape[0]))
        del rho
        if n <= _STACK_MAX_MESH:  # one readout for the three components (shared CIC stencil): ~2x faster
            grad = torch.stack([to_real(pot_k * (1j * g), n) for g in self._gradients])
            return readout(grad, positions, self.box_size, window="cic", shift=self.shift)
        out = torch.empty_like(positions)  # one component at a time bounds the memory to one real mesh
        for i, g in enumerate(self._gradients):
            component = to_real(pot_k * (1j * g), n)
            out[:, i] = readout(component, positions, self.box_size, window="cic", shift=self.shift)
        return out


def lpt_initial_state(delta_k: torch.Tensor, box_size: float, growth: GrowthHistory, a_init: float,
                      lpt_order: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Particle displacement ``s = D1 psi1 + D2 psi2`` and momentum ``p = gp psi1 + gp2 psi2`` (both ``(n^3, 3)``,
    Mpc/h, C order) at ``a_init`` from the linear density ``delta_k`` at ``D1 = 1``: the initial state of
    :func:`kdk` (ZA for ``lpt_order=1``). The simulator and a hybrid model's PM base both start here."""
    psi1 = vector_field_to_particles(za_displacement(delta_k, box_size)).contiguous()
    disp = float(growth.D1(a_init)) * psi1
    mom = float(growth.gp(a_init)) * psi1
    del psi1
    if lpt_order == 2:
        psi2 = vector_field_to_particles(lpt2_displacement(delta_k, box_size)).contiguous()
        disp.add_(psi2, alpha=float(growth.D2(a_init)))
        mom.add_(psi2, alpha=float(growth.gp2(a_init)))
    return disp, mom


def initial_state(delta_k: torch.Tensor, box_size: float, growth: GrowthHistory, a_init: float,
                  lpt_order: int = 2, cola: bool = False) -> tuple[torch.Tensor, torch.Tensor, LPTFrame | None]:
    """The state of :func:`lpt_initial_state` at ``a_init`` and, for a COLA run (``cola=True``), the
    :class:`~emulator.core.cola.LPTFrame` that :func:`kdk` steps in, its LPT fields computed once for both
    (``None`` for FastPM steps)."""
    if not cola:
        return (*lpt_initial_state(delta_k, box_size, growth, a_init, lpt_order), None)
    frame = LPTFrame.from_density(delta_k, box_size, lpt_order)
    return frame.displacement(growth, a_init), frame.momentum(growth, a_init), frame


def step_schedule(
    a_init: float, a_final: float, steps: int, outputs: Sequence[float] = (), spacing: str = "linear"
) -> np.ndarray:
    """Step boundaries in scale factor: ``steps`` even steps in ``a`` (or ``ln a``) plus the output epochs.

    Output scale factors that are not already boundaries (to 1e-9 relative) are inserted, so they are hit
    exactly; the number of steps then exceeds ``steps`` by the number inserted.

    Returns
    -------
    numpy.ndarray
        Increasing float64 boundaries from ``a_init`` to ``a_final``.
    """
    check_step_options(steps, spacing)
    if not 0.0 < a_init < a_final:
        raise ValueError(f"a_init must satisfy 0 < a_init < a_final, got a_init={a_init}, a_final={a_final}")
    if spacing == "linear":
        grid = np.linspace(a_init, a_final, steps + 1)
    else:
        grid = np.exp(np.linspace(math.log(a_init), math.log(a_final), steps + 1))
    grid[0], grid[-1] = a_init, a_final
    for a in outputs:
        if not a_init <= a <= a_final:
            raise ValueError(f"output scale factor {a} outside [a_init, a_final] = [{a_init}, {a_final}]")
        near = np.abs(grid - a) <= 1e-9 * a
        if near.any():
            grid[np.argmax(near)] = a
        else:
            grid = np.sort(np.append(grid, a))
    return grid


def step_midpoint(a0: float, a1: float, spacing: str = "linear") -> float:
    """Half-step epoch: ``(a0 + a1) / 2`` for linear spacing, ``sqrt(a0 a1)`` for log spacing."""
    return 0.5 * (a0 + a1) if spacing == "linear" else math.sqrt(a0 * a1)


def kdk(
    q: torch.Tensor,
    disp: torch.Tensor,
    mom: torch.Tensor,
    boundaries: Sequence[float],
    growth: GrowthHistory,
    force: Callable[[torch.Tensor], torch.Tensor],
    box_size: float,
    *,
    spacing: str = "linear",
    callback: Callable[[float, torch.Tensor, torch.Tensor], None] | None = None,
    progress: bool = False,
    frame: LPTFrame | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate displacement ``disp = x - q`` and momentum ``mom`` (both ``(N, 3)`` Mpc/h) through ``boundaries``.

    Parameters
    ----------
    q : torch.Tensor
        Lagrangian positions ``(N, 3)``, Mpc/h.
    disp, mom : torch.Tensor
        State at ``boundaries[0]``; updated in place and returned.
    boundaries : sequence of float
        Increasing scale factors (see :func:`step_schedule`).
    growth : GrowthHistory
        Supplies the FastPM kick and drift factors.
    force : callable
        ``force(positions) -> (N, 3)`` ``F = -grad Phi`` (e.g. :class:`PMForce`).
    box_size : float
        Box side, Mpc/h (positions passed to ``force`` are wrapped into ``[0, L)``).
    spacing : {"linear", "log"}
        Chooses the half-step epoch (:func:`step_midpoint`).
    callback : callable, optional
        ``callback(a, disp, mom)`` at every boundary after the first (synchronised state; do not modify).
    progress : bool
        Show a tqdm progress bar over steps.
    frame : LPTFrame, optional
        Step in this 2LPT frame (COLA, :mod:`emulator.core.cola`): the steps integrate the residual from the
        frame's trajectory with the frame's factors, and ``disp``, ``mom`` and the callback's state stay the full
        displacement and momentum. Without one, plain FastPM steps.
    """
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    a = [float(x) for x in boundaries]
    if len(a) < 2 or any(a1 <= a0 for a0, a1 in pairwise(a)):
        raise ValueError("boundaries must hold at least two strictly increasing scale factors")
    steps = list(pairwise(a))
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="PM steps", unit="step")
    plain = frame is not None and frame.factors == "standard"

    def kick(a0: float, a1: float, at: float) -> float:
        return plain_factor(growth, a0, a1, 2) if plain else float(growth.kick_factor(a0, a1, at))

    def drift(a0: float, a1: float, at: float) -> float:
        return plain_factor(growth, a0, a1, 3) if plain else float(growth.drift_factor(a0, a1, at))

    # The stepped state: the full one, or in a frame the residual from its trajectory (and the residual force).
    res_s, res_p = (disp, mom) if frame is None else (disp - frame.displacement(growth, a[0]),
                                                      mom - frame.momentum(growth, a[0]))
    acc = force(torch.remainder(q + disp, box_size))
    if frame is not None:  # out of place: a force callable may return a buffer of its own
        acc = acc - frame.force(growth, a[0])
    for a0, a1 in steps:
        ah = step_midpoint(a0, a1, spacing)
        res_p.add_(acc, alpha=kick(a0, ah, a0))
        res_s.add_(res_p, alpha=drift(a0, a1, ah))
        if frame is not None:
            disp.copy_(res_s).add_(frame.displacement(growth, a1))
        acc = force(torch.remainder(q + disp, box_size))
        if frame is not None:
            acc = acc - frame.force(growth, a1)
        res_p.add_(acc, alpha=kick(ah, a1, a1))
        if frame is not None:
            mom.copy_(res_p).add_(frame.momentum(growth, a1))
        if callback is not None:
            callback(a1, disp, mom)
    return disp, mom
