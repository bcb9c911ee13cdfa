"""Redshift-space monopole and quadrupole of a cut-sky catalog (FKP / Yamamoto estimator on RA, DEC, DISTANCE
with randoms) agree with the periodic-box multipoles of the same particles (``emulator.core.multipoles``, plane-
parallel along x) at the same redshift, within Gaussian errors. The observer sits 1000 Mpc/h from the box so the
line of sight is nearly the x axis (opening angle 7 degrees)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emulator.core.cosmology import get_preset
from emulator.core.fourier import to_fourier
from emulator.core.mesh import paint, to_overdensity
from emulator.core.multipoles import power_multipoles_k
from emulator.core.window import compensate
from emulator.mocks.cutsky import box_to_sky, random_catalog
from emulator.mocks.distance import DistanceRedshift
from emulator.mocks.fkp import fkp_multipoles, sky_to_cartesian
from emulator.mocks.rsd import redshift_space_positions
from emulator.model.emulate import emulate_fields

COSMO = get_preset("planck18")
BOX = 256.0


def test_sky_to_cartesian_inverts_box_to_sky():
    rng = np.random.default_rng(0)
    pos = rng.random((500, 3)) * 100.0
    obs = np.array([50.0, 40.0, 60.0])
    sky = box_to_sky(pos, None, 100.0, COSMO, (0.001, 0.03), observer=obs, rsd=False)
    back = sky_to_cartesian(sky["RA"], sky["DEC"], sky["DISTANCE"]) + obs - sky["REPLICA"] * 100.0
    np.testing.assert_allclose(back, pos[sky["INDEX"]], atol=1e-9)


@pytest.mark.slow
def test_fkp_multipoles_of_the_cut_sky_match_the_box():
    torch.set_num_threads(1)
    f = emulate_fields(COSMO, 0.0, BOX, 5, method="2lpt", ngrid=64)
    pos, vel = f.positions.double().numpy(), f.velocities.double().numpy()
    edges = np.arange(0.05, 0.32, 0.03)
    rsd = redshift_space_positions(pos, vel, 0.0, COSMO, BOX, los="x")
    mesh_k = compensate(to_fourier(to_overdensity(paint(torch.as_tensor(rsd), 128, BOX))), "cic")
    nbar = len(pos) / BOX**3
    box = power_multipoles_k(mesh_k, BOX, 128, kedges=torch.tensor(edges), ells=(0, 2), shot_noise=1 / nbar,
                             los="x")
    table = DistanceRedshift(COSMO, 1.0)
    zr = (float(table.redshift(1000.0)), float(table.redshift(1256.0)))
    fp = {"ra": (353.0, 7.0), "dec": (-7.0, 7.0)}
    sky = box_to_sky(pos, vel, BOX, COSMO, zr, observer=[-1000.0, 128.0, 128.0], footprint=fp, rsd=True)
    rand = random_catalog(5 * sky.size, redshift_range=zr, cosmology=COSMO, footprint=fp, seed=3)
    data = {**sky, "NZ": np.full(sky.size, nbar)}
    rand = {**rand, "NZ": np.full(rand.size, nbar)}
    res = fkp_multipoles(data, rand, p0=1e4, nmesh=128, kedges=edges)
    assert res.shot_noise == pytest.approx(1.2 / nbar, rel=0.05)  # (1 + alpha) / nbar with alpha = 1/5
    p0_box, p2_box = box.poles[0].numpy(), box.poles[1].numpy()
    n_ind = box.modes.numpy() / 2.0  # independent modes (k and -k)
    sigma0 = math.sqrt(2.0) * np.sqrt(2.0 / n_ind) * (p0_box + 1 / nbar)  # difference of two such estimates
    pull0 = (res.p0 - p0_box) / sigma0
    pull2 = (res.p2 - p2_box) / (math.sqrt(5.0) * sigma0)
    assert np.all(np.abs(pull0) < 3.5) and np.all(np.abs(pull2) < 3.5), (pull0, pull2)
    chi2, nb = float(np.sum(pull0**2) + np.sum(pull2**2)), 2 * len(pull0)
    assert chi2 < nb + 4 * math.sqrt(2 * nb), (pull0, pull2)
    assert np.all(res.p2[:4] > 0) and np.all(p2_box[:4] > 0)  # Kaiser: a positive quadrupole on large scales
