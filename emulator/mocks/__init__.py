"""Mock catalogs from generated particles (the mock-generation stage, ``emulator generate``).

Submodules are imported lazily, so that importing the package stays cheap. Catalog code works on numpy arrays:
the generated particles leave torch once, in :mod:`.catalogs` (inputs are converted by :mod:`.arrays`).

* :mod:`.api` -- ``generate_mocks``: parameters and seeds to catalog files.
* :mod:`.outputs` -- the output folder, one lock per file, and files already there (kept or refused).
* :mod:`.catalogs` -- ``MockOptions`` and ``make_catalogs``: which tracer, RSD, cut-sky.
* :mod:`.fof` -- friends-of-friends halo finder (``friends_of_friends``, ``Halos``).
* :mod:`.halo_mass` -- a model's halo-mass calibration applied to FoF catalogues (``calibrate_halos``): masses
  of the converged truth at equal abundance.
* :mod:`.hod`, :mod:`.nfw` -- Zheng et al. (2007) HOD population of halos (``populate_halos``, ``Galaxies``) with
  NFW satellites.
* :mod:`.biased` -- Poisson-sampled biased tracers of a density mesh (``biased_tracers``).
* :mod:`.rsd` -- redshift-space positions along a line of sight (``redshift_space_positions``).
* :mod:`.cutsky`, :mod:`.distance`, :mod:`.footprint` -- box to RA/Dec/z around an observer, and randoms
  (``box_to_sky``, ``random_catalog``); the distance-redshift table; RA/Dec footprints.
* :mod:`.survey` (with :mod:`.mask`, :mod:`.nz`, :mod:`.survey_files`) -- survey-ready cut-sky catalogs: HEALPix
  or polygon footprints with completeness, a target n(z) by downsampling, ``NZ``/``WEIGHT_FKP``/``STATUS``
  columns, randoms in separate files with their own seed, the ``nz.txt`` companion and FITS header keys.
* :mod:`.lightcone`, :mod:`.lightcone_mocks` -- lightcones from one realization generated at a ladder of
  redshifts (particles interpolated where they cross the past light cone; periodic replicas).
* :mod:`.massfunction` -- Tinker et al. (2008) mass function and the HOD resolution check (``check_hod_resolution``).
* :mod:`.model_choice` -- the embedded model a request needs: the coarsest particle spacing (2 or 1 Mpc/h) that
  resolves its tracer (``choose_model``).
* :mod:`.fkp` -- FKP (Yamamoto) power spectrum multipoles of a cut-sky catalog with randoms (``fkp_multipoles``).
* :mod:`.io` (with :mod:`.catalog`, :mod:`.io_hdf5`, :mod:`.io_fits`) -- HDF5/FITS catalog files, atomic
  (``write_catalog(s)``, ``read_catalog``).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "generate_mocks": "api",
    "MockOptions": "catalogs",
    "make_catalogs": "catalogs",
    "Halos": "fof",
    "friends_of_friends": "fof",
    "calibrate_halos": "halo_mass",
    "Galaxies": "hod",
    "HODParams": "hod",
    "populate_halos": "hod",
    "mean_ncen": "hod",
    "mean_nsat": "hod",
    "biased_tracers": "biased",
    "redshift_space_positions": "rsd",
    "box_to_sky": "cutsky",
    "random_catalog": "cutsky",
    "Catalog": "catalog",
    "write_catalog": "io",
    "write_catalogs": "io",
    "read_catalog": "io",
    "fkp_multipoles": "fkp",
    "check_hod_resolution": "massfunction",
    "choose_model": "model_choice",
    "load_footprint": "mask",
    "read_nz": "nz",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
