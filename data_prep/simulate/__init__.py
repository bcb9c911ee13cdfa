"""2LPT + particle-mesh N-body simulator (torch, CPU or CUDA), FastPM-style kick-drift-kick stepping.

* :mod:`data_prep.simulate.pm`: the PM force (:class:`PMForce`) and the KDK integrator (:func:`kdk`).
* :mod:`data_prep.simulate.run`: :func:`run_simulation` from (cosmology, seed, ngrid, box, steps, z_init,
  output redshifts) to particle states (:class:`ParticleState`) at the IC and every output.
"""

from .pm import PMForce, kdk, step_schedule
from .run import ParticleState, SimulationResult, run_simulation, wrap_positions

__all__ = ["PMForce", "ParticleState", "SimulationResult", "kdk", "run_simulation", "step_schedule", "wrap_positions"]
