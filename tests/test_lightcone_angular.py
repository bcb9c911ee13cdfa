"""A thin shell of the cut-sky catalog has the angular power spectrum (healpy ``anafast``) that the box's own 3D
P(k) predicts, projected exactly (spherical Bessel functions, no Limber), within Gaussian errors."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import spherical_jn

from emulator.core.cosmology import get_preset
from emulator.core.mesh import paint, to_overdensity
from emulator.core.spectra import power_spectrum
from emulator.mocks.cutsky import box_to_sky
from emulator.mocks.distance import DistanceRedshift
from emulator.model.emulate import emulate_fields

import healpy as hp  # a dependency: a missing install must fail, not skip
COSMO = get_preset("planck18")
BOX, NGRID, NSIDE = 256.0, 64, 256  # pixel window at l <= 96: < 2% in power at nside 256, ignored
CHI = (80.0, 110.0)  # Mpc/h: inside the box seen from its centre, so no replica is needed


def _projected_cl(k, pk, ells, chi_lo, chi_hi):
    """C_l = (2/pi) int dk k^2 P(k) W_l(k)^2, W_l(k) = int dchi phi(chi) j_l(k chi), phi ~ chi^2 on the shell."""
    chi = np.linspace(chi_lo, chi_hi, 121)
    phi = chi**2 / np.trapezoid(chi**2, chi)
    out = []
    for ell in ells:
        w = np.trapezoid(phi[None, :] * spherical_jn(ell, k[:, None] * chi[None, :]), chi, axis=1)
        out.append(2 / math.pi * np.trapezoid(k**2 * pk * w**2, k))
    return np.asarray(out)


def test_thin_shell_angular_power_matches_the_box():
    torch.set_num_threads(1)
    f = emulate_fields(COSMO, 0.0, BOX, 11, method="2lpt", ngrid=NGRID)
    pos = f.positions.double()
    mesh = to_overdensity(paint(pos, 2 * NGRID, BOX))
    ps = power_spectrum(mesh, BOX, nbins=60, kmin=2 * math.pi / BOX, kmax=math.pi * 2 * NGRID / BOX,
                        shot_noise=BOX**3 / len(pos), window="cic")
    k_box, p_box = ps.k.numpy(), ps.power.numpy()
    table = DistanceRedshift(COSMO, 0.1)
    zr = (float(table.redshift(CHI[0])), float(table.redshift(CHI[1])))
    sky = box_to_sky(pos.numpy(), None, BOX, COSMO, zr, rsd=False)
    assert sky.attrs["n_replicas"] == 1
    counts = np.bincount(hp.ang2pix(NSIDE, sky["RA"], sky["DEC"], lonlat=True), minlength=hp.nside2npix(NSIDE))
    delta = counts / counts.mean() - 1.0
    lmax = 96
    cl = hp.anafast(delta, lmax=lmax) - 4 * math.pi / sky.size  # shot noise subtracted
    # prediction from the box: its measured P(k) (linear theory below the fundamental mode)
    from emulator.core.power import linear_power

    k = np.geomspace(1e-3, k_box.max(), 600)
    pk = np.where(k < k_box.min(), linear_power(COSMO, k, 0.0), np.interp(k, k_box, p_box))
    edges = np.arange(8, lmax + 1, 12)
    ells = np.arange(edges[0], edges[-1])
    theory = _projected_cl(k, pk, ells, *CHI)
    pulls = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (ells >= lo) & (ells < hi)
        got, want = cl[lo:hi].mean(), theory[sel].mean()
        nmodes = np.sum(2 * ells[sel] + 1)
        sigma = math.sqrt(2 / nmodes) * (want + 4 * math.pi / sky.size)
        pulls.append((got - want) / sigma)
    pulls = np.asarray(pulls)
    assert np.all(np.abs(pulls) < 4), pulls
    assert np.sum(pulls**2) < len(pulls) + 4 * math.sqrt(2 * len(pulls)), pulls
