"""Survey files measured by an external code: Triumvirate's ``compute_powspec`` (Wang & Pearson; local plane-
parallel FKP/Yamamoto estimator, C++ with FFTW) on the FITS data and randoms that ``emulator generate`` writes
(RA, DEC, DISTANCE, NZ, WEIGHT, WEIGHT_FKP) gives the monopole and quadrupole of
:func:`emulator.mocks.fkp.fkp_multipoles` on the same mesh and box.

Two conventions differ and are held apart here:
- Triumvirate's ``alpha`` is the ratio of sample-weight sums (``WEIGHT``; nbodykit's too), ours of the total
  weights (``WEIGHT * WEIGHT_FKP``, so the weighted field has zero mean). They agree where the FKP weight is the
  same for data and randoms on average. With FKP weights switched off (``P0 = 0``) both estimators must agree to
  0.2% of ``P0 + shot noise`` (measured: 0.04% at most, shot noise to 1e-12); with the file's ``WEIGHT_FKP`` to 2%
  (measured 0.9-1.0%: without a target n(z), ``NZ`` is measured per dz = 0.01 shell from the mock itself and
  follows its radial clustering, so the data's mean ``WEIGHT_FKP`` is 1% below the randoms').
- Triumvirate takes lines of sight from ``los_data`` / ``los_rand``; without them its quadrupole was ~85% off
  here, so each object's unit vector from the observer is passed.

Optional: ``pip install triumvirate`` (a wheel, with FFTW and GSL inside); without it this file skips.
"""

from __future__ import annotations

import numpy as np
import pytest

from emulator.cli import main
from emulator.core.cosmology import get_preset
from emulator.mocks.distance import DistanceRedshift
from emulator.mocks.fkp import fkp_multipoles, sky_to_cartesian
from emulator.mocks.io import read_catalog

pytest.importorskip("triumvirate.twopt", reason="Triumvirate is an optional external reference")

NMESH = 128
EDGES = np.arange(0.05, 0.32, 0.03)  # h/Mpc


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """Cut-sky biased tracers (0.004 (h/Mpc)^3) of a 256 Mpc/h box seen from 1000 Mpc/h, 14 x 14 degrees, with
    10x randoms, written as FITS by the CLI."""
    table = DistanceRedshift(get_preset("planck18"), 1.0)
    zr = (float(table.redshift(1000.0)), float(table.redshift(1256.0)))
    out = tmp_path_factory.mktemp("triumvirate")
    assert main(["generate", "--preset", "planck18", "--redshift", "0.4", "--box-size", "256", "--seed", "2",
                 "--tracer", "biased", "--number-density", "0.004", "--cutsky-zrange", f"{zr[0]:.6f}",
                 f"{zr[1]:.6f}", "--observer", "-1000", "128", "128", "--footprint-ra", "353", "7",
                 "--footprint-dec", "-7", "7", "--randoms-factor", "10", "--format", "fits", "--no-progress",
                 "--out", str(out)]) == 0
    return read_catalog(out / "mock_000002.fits", "data"), read_catalog(out / "mock_000002_randoms_0.fits", "randoms")


def _triumvirate(data, rand, box: float, fkp: bool) -> dict[int, np.ndarray]:
    from triumvirate.catalogue import ParticleCatalogue
    from triumvirate.dataobjs import Binning
    from triumvirate.twopt import compute_powspec

    cats, los = [], []
    for c in (data, rand):
        x = sky_to_cartesian(c["RA"], c["DEC"], c["DISTANCE"])
        wc = np.asarray(c["WEIGHT_FKP"], np.float64) if fkp else np.ones(len(x))
        cats.append(ParticleCatalogue(x[:, 0], x[:, 1], x[:, 2], nz=np.asarray(c["NZ"], np.float64),
                                      ws=np.asarray(c["WEIGHT"], np.float64), wc=wc))
        los.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    binning = Binning("fourier", "lin", bin_min=EDGES[0], bin_max=EDGES[-1], num_bins=len(EDGES) - 1)
    sampling = {"alignment": "centre", "boxsize": [box] * 3, "ngrid": [NMESH] * 3, "assignment": "cic",
                "interlace": False}
    out = {}
    for ell in (0, 2):
        res = compute_powspec(*cats, los_data=los[0], los_rand=los[1], degree=ell, binning=binning,
                              sampling_params=sampling)
        out[ell] = (res["pk_raw"] - res["pk_shot"]).real
        if ell == 0:  # the quadrupole carries no shot noise
            out["modes"], out["shot"] = res["nmodes"], float(res["pk_shot"][0].real)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("p0, rtol", [(0.0, 0.002), ("file", 0.02)], ids=["no-fkp-weights", "file-fkp-weights"])
def test_triumvirate_power_multipoles_of_the_survey_files_equal_ours(survey, one_thread, p0, rtol):
    data, rand = survey
    fkp = p0 == "file"
    p0 = float(data.attrs["FKP_P0"]) if fkp else 0.0
    if fkp:  # the file's column is the documented 1 / (1 + NZ P0)
        np.testing.assert_allclose(data["WEIGHT_FKP"], 1.0 / (1.0 + data["NZ"] * p0), rtol=1e-6)
    ours = fkp_multipoles(data, rand, p0=p0, nmesh=NMESH, kedges=EDGES)
    theirs = _triumvirate(data, rand, ours.box_size, fkp)
    np.testing.assert_array_equal(theirs["modes"], ours.modes)  # the same mesh, box and bins
    assert theirs["shot"] == pytest.approx(ours.shot_noise, rel=rtol)
    scale = ours.p0 + ours.shot_noise  # either estimate's Gaussian error is about this over sqrt(modes)
    assert np.all(np.abs(theirs[0] - ours.p0) < rtol * scale), (theirs[0], ours.p0)
    assert np.all(np.abs(theirs[2] - ours.p2) < rtol * scale), (theirs[2], ours.p2)
    assert np.all(ours.p2[:3] > 0.3 * ours.p0[:3])  # Kaiser: a large positive quadrupole on large scales
