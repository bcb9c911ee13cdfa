"""Tracer catalogs from generated particles and fields (the mock-generation stage, ``emulator generate``).

Submodules are imported lazily, so that importing the package stays cheap:

* :mod:`.fof` -- friends-of-friends halo finder (``friends_of_friends``, ``Halos``).
* :mod:`.hod` -- Zheng et al. (2007) HOD population of halos (``populate_halos``, ``Galaxies``).
* :mod:`.biased` -- Poisson-sampled biased tracers of a density mesh (``biased_tracers``).
* :mod:`.rsd` -- redshift-space positions along a line of sight (``redshift_space_positions``).
* :mod:`.cutsky` -- box to RA/Dec/z around an observer, and randoms (``box_to_sky``, ``random_catalog``).
* :mod:`.io` -- HDF5/FITS catalog files, atomic (``write_catalog(s)``, ``read_catalog``).
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
    "redshift_space_positions": "rsd",
    "box_to_sky": "cutsky",
    "random_catalog": "cutsky",
    "write_catalog": "io",
    "write_catalogs": "io",
    "read_catalog": "io",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
