"""Tracer catalogs from generated particles and fields (the mock-generation stage, ``emulator generate``).

Submodules are imported lazily, so that importing the package stays cheap:

* :mod:`.fof` -- friends-of-friends halo finder (``friends_of_friends``, ``Halos``).
* :mod:`.hod` -- Zheng et al. (2007) HOD population of halos (``populate_halos``, ``Galaxies``).
* :mod:`.biased` -- Poisson-sampled biased tracers of a density mesh (``biased_tracers``).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Halos": "fof",
    "friends_of_friends": "fof",
    "particle_mass_from_cosmology": "fof",
    "Galaxies": "hod",
    "HODParams": "hod",
    "populate_halos": "hod",
    "mean_ncen": "hod",
    "mean_nsat": "hod",
    "biased_tracers": "biased",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
