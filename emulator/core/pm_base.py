"""The fields a generator corrects: 2LPT, or a cheap few-step PM or COLA run (the hybrid design of issue 11, (c)).

A generator maps a *base* displacement and velocity on the Lagrangian grid to the N-body ones: the network sees
the base displacement and adds a residual to both. The base is either 2LPT (every model before the hybrid) or a
few-step particle-mesh run from the same linear density, as NECOLA corrects COLA (Kaushal et al. 2022): 2LPT
initial conditions at ``z_init``, then ``steps`` FastPM kick-drift-kick steps (:func:`emulator.core.pm.kdk`,
growth-exact factors, linear spacing in ``a`` by default) with a force mesh of ``force_factor`` points per particle
per axis, ending at the output redshift. It is exactly the simulator's run of the same settings at ``refine = 1``
(``data_prep.simulate.run.run_simulation``, tested), so a training set and generation make the same base.
With ``method="cola"`` the same steps integrate only the residual from 2LPT (:mod:`emulator.core.cola`),
which keeps second-order growth exact on large scales at the same cost per step.

:class:`~emulator.core.base_recipe.BaseRecipe` names one; training sets and model files record it (``base``
attribute / entry; absent means 2LPT).
"""

from __future__ import annotations

import torch

from .base_recipe import LPT_BASE, BaseRecipe
from .cosmology import Cosmology
from .growth import GrowthHistory
from .lpt import lagrangian_grid, particles_to_vector_field
from .pm import PMForce, initial_state, kdk, step_schedule

__all__ = ["BaseRecipe", "LPT_BASE", "pm_base_fields"]



def pm_base_fields(delta_k: torch.Tensor, box_size: float, cosmology: Cosmology, redshift: float,
                   recipe: BaseRecipe, *, growth: GrowthHistory | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Displacement and velocity of a few-step PM or COLA run on the Lagrangian grid at ``redshift``.

    Parameters
    ----------
    delta_k : torch.Tensor
        Linear density contrast at ``D1 = 1`` (z = 0 normalisation), rfft layout ``(n, n, n//2+1)``; its real
        dtype (float32 or float64) is the run's.
    box_size : float
        Box side, Mpc/h.
    cosmology : Cosmology
        Parameters (growth history and ``Omega_m`` of the force).
    redshift : float
        Output redshift, in ``[0, recipe.z_init)``.
    recipe : BaseRecipe
        A PM or COLA recipe (``method`` "pm" or "cola").
    growth : GrowthHistory, optional
        Reused if given (must be ``cosmology``'s).

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        Displacement ``x - q`` (Mpc/h, not wrapped) and velocity in displacement units ``v / (100 a E f1)``
        (Mpc/h; ``v`` peculiar km/s), both ``(3, n, n, n)``: the network's base convention
        (:mod:`emulator.training.crops`).
    """
    if recipe.is_lpt:
        raise ValueError("pm_base_fields needs a PM or COLA recipe; 2LPT bases are made by the LPT code")
    recipe.check_redshift(redshift)
    n = delta_k.shape[0]
    growth = growth if growth is not None else GrowthHistory(cosmology)
    a_init, a_out = 1.0 / (1.0 + recipe.z_init), 1.0 / (1.0 + redshift)
    # the simulator's initial conditions (and, for COLA, the 2LPT frame of its steps)
    disp, mom, frame = initial_state(delta_k, box_size, growth, a_init, cola=recipe.method == "cola")
    q = lagrangian_grid(n, box_size, dtype=disp.dtype, device=disp.device)
    force = PMForce(recipe.force_factor * n, box_size, cosmology.Omega_m, dtype=disp.dtype, device=disp.device)
    boundaries = step_schedule(a_init, a_out, recipe.steps, (a_out,), recipe.spacing)
    kdk(q, disp, mom, boundaries, growth, force, box_size, spacing=recipe.spacing, frame=frame)
    del q, force, frame
    # momentum p = a v / 100 (Mpc/h) -> v / (100 a E f1) = p / (a^2 E f1)
    mom.mul_(1.0 / (a_out * a_out * float(growth.E(a_out)) * float(growth.f1(a_out))))
    return particles_to_vector_field(disp, n).contiguous(), particles_to_vector_field(mom, n).contiguous()
