"""The simulator's particle-mesh force and KDK integrator: the physics core's :mod:`emulator.core.pm`, re-exported.

The PM code lives in the core because generation runs it too (a few-step PM base under the network, see
:mod:`emulator.core.pm_base`); this module keeps the simulator's import path.
"""

from emulator.core.pm import (GRADIENTS, SPACINGS, PMForce, check_force_options, check_step_options, initial_state,
                              kdk, lpt_initial_state, step_midpoint, step_schedule)

__all__ = ["GRADIENTS", "SPACINGS", "PMForce", "check_force_options", "check_step_options", "initial_state", "kdk",
           "lpt_initial_state", "step_midpoint", "step_schedule"]
