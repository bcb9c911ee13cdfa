"""cosmo-emulator: fast, accurate cosmological mock catalogs from a cosmology-conditioned field-level emulator.

The package reads as the pipeline (``docs/architecture.md`` has the map); imports run only downward:

* :mod:`emulator.core` -- physics shared by every stage (cosmology, linear power, growth, noise and LPT, painting,
  statistics) and the small I/O layer (atomic writes, provenance); imports nothing else of the project.
* :mod:`emulator.model` -- the network, tiling, the portable model file and its normalisation, and
  :func:`~emulator.model.emulate.emulate_fields` (noise -> LPT or a few-step PM base -> network -> particles,
  PGD-sharpened where the model has a PGD file).
* :mod:`emulator.training` -- training sets, crops, symmetries, losses, the LightningModule, the fit entry point and
  held-out evaluation.
* :mod:`emulator.mocks` -- catalogs from generated particles (FoF, HOD, biased tracers, RSD, cut-sky), catalog
  files, and :func:`generate_mocks`.
* :mod:`emulator.cli` -- the ``emulator`` command.

``emulator.generate_mocks`` is loaded on first use, so ``import emulator`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["generate_mocks"]


def __getattr__(name: str) -> Any:
    if name == "generate_mocks":
        from .mocks.api import generate_mocks

        return generate_mocks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
