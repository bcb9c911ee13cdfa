"""COLA's frame (Tassev, Zaldarriaga & Eisenstein 2013): PM steps in the frame of second-order LPT.

A few-step PM run (:func:`emulator.core.pm.kdk`) gets linear growth right on large scales by FastPM's factors,
but not second-order growth: at 128^3 particles in 256 Mpc/h and z = 0, four steps from z = 12 leave the
equilateral reduced bispectrum 10% low at k = 0.1 h/Mpc (six steps 6%, twelve 1.6%; the full benchmark tier's
``pm_few``, ``pm6`` and ``pm12`` rows). COLA splits the displacement into the 2LPT solution, advanced exactly,
and a residual that the PM steps integrate:

    s(a) = D1(a) psi1 + D2(a) psi2 + s_r(a),      p(a) = gp(a) psi1 + gp2(a) psi2 + p_r(a),
    ds_r/da = p_r / (a^3 E),                      dp_r/da = (F(x) - F_LPT(a)) / (a^2 E),

with ``F_LPT = gf psi1 + gf2 psi2`` the force that keeps the 2LPT trajectory on its own (units, ``gp``, ``gf``
and the equations of motion as in :mod:`emulator.core.pm` and :mod:`emulator.core.growth`). On large scales the
residual is third order, so the steps only have to get it, not the second-order growth, right.

The residual is kicked and drifted with the plain integrals ``int da / (a^2 E)`` and ``int da / (a^3 E)``
(``factors="standard"``, Tassev et al.'s "standard" stepping) or with FastPM's growth-exact factors of
:func:`emulator.core.pm.kdk` (``"fastpm"``). Measured against a 40-step PM run (tests/test_cola.py: 32^3
particles in 128 Mpc/h, z = 12 -> 0), the large-scale (k < k_Nyq/4) displacement error with 4 steps is
0.079 Mpc/h for FastPM stepping, 0.038 for COLA "standard" and 0.050 for COLA "fastpm"; the simulator and the
hybrid base use "standard". Cost per step: one force, as PM; memory: four more ``(N, 3)`` vectors than FastPM
steps (the frame's two LPT fields, the residual displacement and momentum).

:class:`LPTFrame` holds the frame; :func:`emulator.core.pm.kdk` steps in it when given one (``frame=``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from scipy.integrate import quad

from .growth import GrowthHistory
from .lpt import lpt2_displacement, vector_field_to_particles, za_displacement

__all__ = ["COLA_FACTORS", "LPTFrame", "plain_factor"]

COLA_FACTORS: tuple[str, ...] = ("standard", "fastpm")


@dataclass(frozen=True)
class LPTFrame:
    """The 2LPT trajectory that COLA steps are taken relative to.

    Parameters
    ----------
    psi1, psi2 : torch.Tensor
        First- and second-order LPT displacements ``(N, 3)`` at ``D1 = 1`` (Mpc/h, Lagrangian C order), as
        :func:`emulator.core.pm.lpt_initial_state` uses them.
    factors : {"standard", "fastpm"}
        Kick and drift factors of the residual (module docstring).
    """

    psi1: torch.Tensor
    psi2: torch.Tensor
    factors: str = "standard"

    def __post_init__(self) -> None:
        if self.factors not in COLA_FACTORS:
            raise ValueError(f"COLA factors must be one of {COLA_FACTORS}, got {self.factors!r}")
        if self.psi1.shape != self.psi2.shape or self.psi1.ndim != 2 or self.psi1.shape[1] != 3:
            raise ValueError(f"psi1 and psi2 must both be (N, 3), got {tuple(self.psi1.shape)} and "
                             f"{tuple(self.psi2.shape)}")

    @classmethod
    def from_density(cls, delta_k: torch.Tensor, box_size: float, lpt_order: int = 2,
                     factors: str = "standard") -> "LPTFrame":
        """The frame of the linear density ``delta_k`` (at ``D1 = 1``); ``psi2`` is zero for ``lpt_order=1``."""
        psi1 = vector_field_to_particles(za_displacement(delta_k, box_size)).contiguous()
        if lpt_order == 1:
            return cls(psi1, torch.zeros_like(psi1), factors)
        return cls(psi1, vector_field_to_particles(lpt2_displacement(delta_k, box_size)).contiguous(), factors)

    def _at(self, first, second, a: float) -> torch.Tensor:
        return self.psi1 * float(first(a)) + self.psi2 * float(second(a))

    def displacement(self, growth: GrowthHistory, a: float) -> torch.Tensor:
        """``D1 psi1 + D2 psi2`` (Mpc/h)."""
        return self._at(growth.D1, growth.D2, a)

    def momentum(self, growth: GrowthHistory, a: float) -> torch.Tensor:
        """``gp psi1 + gp2 psi2`` (Mpc/h, the momentum convention of :mod:`emulator.core.pm`)."""
        return self._at(growth.gp, growth.gp2, a)

    def force(self, growth: GrowthHistory, a: float) -> torch.Tensor:
        """``gf psi1 + gf2 psi2``: the force that keeps the 2LPT trajectory on its own (Mpc/h)."""
        return self._at(growth.gf, growth.gf2, a)


def plain_factor(growth: GrowthHistory, a0: float, a1: float, power: int) -> float:
    """``int_{a0}^{a1} da / (a^power E(a))``: the "standard" kick (``power=2``) and drift (``power=3``)."""
    return float(quad(lambda a: 1.0 / (a**power * float(growth.E(a))), a0, a1, epsabs=0.0, epsrel=1e-10)[0])
