"""The files of a survey mock: the data file, separate random files and the ``nz.txt`` companion.

For ``mock_<seed>.<ext>`` (``<ext>`` = ``hdf5`` or ``fits``):

* ``mock_<seed>.<ext>``: catalog ``data`` (and ``randoms`` when ``n_random_files = 0``);
* ``mock_<seed>_randoms_<k>.<ext>``, ``k = 0 .. n_random_files - 1``: catalog ``randoms``, with the file attrs of
  the mock updated by the random file's own (``SEED_RAN``, ``RANINDEX``, ``RANZMETH``, ...);
* ``mock_<seed>_nz.txt``: the data's n(z) (:mod:`emulator.mocks.nz`).

Companions are written (atomically) before the data file, so a data file that exists has its companions. Header
keys (:func:`emulator.mocks.survey.survey_keys`) use FITS-standard 8-character names, written as plain FITS
cards, and the same names in HDF5 attrs; ``MODELSHA`` and ``CODEVER`` copy ``model_sha256`` and
``package_version``.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np

from .catalog import Catalog
from .cutsky import box_to_sky
from .io import Companion
from .survey import SURVEY_DEFAULTS, check_survey, make_randoms, select_survey, survey_keys

__all__ = ["survey_outputs"]


def survey_outputs(cols: Mapping[str, np.ndarray], aux: Mapping[str, np.ndarray], f, cs: Mapping[str, Any],
                   seeds: Mapping[str, int], sky: Catalog | None = None,
                   n_box: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Data, randoms and n(z) of one realization (see the module docstring); returns ``(catalogs, file attrs)``.

    ``sky``: a lightcone (:mod:`emulator.mocks.lightcone`) with the box columns already carried (then ``cols``
    and ``aux`` are not used and ``n_box`` is the largest box catalog); default: the snapshot ``f`` placed on
    the sky by :func:`~emulator.mocks.cutsky.box_to_sky` (a warning if its redshift is outside the range).
    """
    opt = {**SURVEY_DEFAULTS, **cs}
    fp, target = check_survey(cs)
    zr = tuple(float(z) for z in opt["redshift_range"])
    if sky is None:
        if not zr[0] <= f.redshift <= zr[1]:
            warnings.warn(f"the snapshot redshift {f.redshift:g} is outside the cut-sky range [{zr[0]:g}, "
                          f"{zr[1]:g}): clustering and velocities are those of z = {f.redshift:g} (use a lightcone "
                          "to evolve them with redshift)", stacklevel=3)
        sky = box_to_sky(cols["Position"], cols["Velocity"], f.box_size, f.cosmology, zr,
                         observer=opt.get("observer"), footprint=fp.rect, rsd=opt["rsd"],
                         snapshot_redshift=f.redshift)
        box_cols, n_box = {**cols, **aux}, len(cols["Position"])
    else:
        box_cols = {}
    data, nzf, text = select_survey(sky, box_cols, n_box, cs, f.cosmology, seeds["SEED_SEL"], (fp, target))
    keys = survey_keys(cs, fp, target, sky.attrs, seeds, f.cosmology)
    n_rand = int(round(float(opt["randoms_factor"]) * data.size))
    nfiles = int(opt["n_random_files"])
    data_z = data["Z"]  # for shuffled random redshifts

    def randoms(k: int) -> Catalog:
        return make_randoms(k, n_rand, data_z, nzf, cs, f.cosmology, seeds["SEED_RAN"], (fp, target))

    data.attrs.update(catalog_type="cutsky-data", DISTCONV=keys["DISTCONV"])
    catalogs: dict[str, Any] = {"data": data}
    if nfiles == 0:
        catalogs["randoms"] = randoms(0)
    for k in range(nfiles):  # each random file is drawn (from its own seed) when written: one held at a time
        catalogs[f"randoms_{k}"] = Companion(f"_randoms_{k}", lambda k=k: {"randoms": randoms(k)})
    catalogs["nz"] = Companion("_nz.txt", text)
    attrs = {f"cutsky_{k}": v for k, v in sky.attrs.items() if isinstance(v, (int, float, str))}
    attrs.update(keys)
    return catalogs, attrs
