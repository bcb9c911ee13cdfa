"""Linear (CAMB) and halofit power against independent quadratures, EH98, CAMB itself and the growth module.

CAMB takes ~1.5 s per run; the tests share the planck18 preset (cached in :mod:`emulator.core.power`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import simpson

from emulator.core.cosmology import Cosmology, get_preset
from emulator.core.growth import growth_factor
from emulator.core.power import LinearPower, linear_power, linear_power_table, nonlinear_power, sigma_r

PLANCK = get_preset("planck18")
LOW_OMEGA = Cosmology(Omega_m=0.2, Omega_b=0.03, h=0.6, n_s=0.9, sigma8=0.7)


def tophat(x):
    return 3.0 * (np.sin(x) - x * np.cos(x)) / x**3


def sigma_quad(pk, r: float) -> float:
    """Top-hat rms by 32-point Gauss-Legendre on 600 panels in ln k, 1e-5 < k < 1e3 h/Mpc (vectorised)."""
    nodes, weights = np.polynomial.legendre.leggauss(32)
    edges = np.linspace(math.log(1e-5), math.log(1e3), 601)
    half = 0.5 * np.diff(edges)[:, None]
    lnk = (0.5 * (edges[:-1] + edges[1:]))[:, None] + half * nodes
    k = np.exp(lnk)
    integrand = k**3 * pk(k) * tophat(k * r) ** 2
    return math.sqrt(float(np.sum(half * weights * integrand)) / (2 * math.pi**2))


def eh98_no_wiggle(cosmo: Cosmology, k: np.ndarray, t_cmb: float = 2.7255) -> np.ndarray:
    """Eisenstein & Hu (1998) zero-baryon-oscillation shape k^n_s T0(k)^2 (eqs. 26, 28-31), k in h/Mpc."""
    theta2 = (t_cmb / 2.7) ** 2
    om_h2 = cosmo.Omega_m * cosmo.h**2
    ob_h2 = cosmo.Omega_b * cosmo.h**2
    fb = cosmo.Omega_b / cosmo.Omega_m
    s = 44.5 * math.log(9.83 / om_h2) / math.sqrt(1.0 + 10.0 * ob_h2**0.75)  # sound horizon, Mpc
    alpha = 1.0 - 0.328 * math.log(431.0 * om_h2) * fb + 0.38 * math.log(22.3 * om_h2) * fb**2
    gamma = cosmo.Omega_m * cosmo.h * (alpha + (1.0 - alpha) / (1.0 + (0.43 * k * cosmo.h * s) ** 4))
    q = k * theta2 / gamma
    l0 = np.log(2.0 * math.e + 1.8 * q)
    c0 = 14.2 + 731.0 / (1.0 + 62.5 * q)
    return k**cosmo.n_s * (l0 / (l0 + c0 * q**2)) ** 2


def test_sigma8_normalisation_by_independent_quadrature():
    assert sigma_quad(lambda k: linear_power(PLANCK, k), 8.0) == pytest.approx(PLANCK.sigma8, rel=1e-6)
    assert sigma_r(PLANCK, 8.0) == pytest.approx(PLANCK.sigma8, rel=1e-9)
    # Other radii and redshifts against the same independent quadrature.
    np.testing.assert_allclose(
        sigma_r(PLANCK, [2.0, 30.0]), [sigma_quad(lambda k: linear_power(PLANCK, k), r) for r in (2.0, 30.0)], rtol=1e-6
    )
    d1 = growth_factor(PLANCK, 0.5)
    assert sigma_r(PLANCK, 8.0, z=1.0) == pytest.approx(PLANCK.sigma8 * d1, rel=1e-12)


def test_table_matches_camb_shape_and_camb_sigma8():
    """A fresh CAMB run (other A_s, z = 0 and 1, same accuracy switches) has the same shape; its sigma8 agrees.

    CAMB's matter power itself moves by ~1e-3 near the BAO with its accuracy switches (WantCls, AccuracyBoost),
    so the run uses the module's (no CMB); the shape check then tests table extraction and interpolation.
    """
    import camb

    pars = camb.CAMBparams()
    pars.set_cosmology(H0=100 * PLANCK.h, ombh2=PLANCK.Omega_b * PLANCK.h**2,
                       omch2=PLANCK.Omega_cdm * PLANCK.h**2, mnu=0.0, num_massive_neutrinos=0, omk=0.0)
    pars.InitPower.set_params(As=2.1e-9, ns=PLANCK.n_s)
    pars.WantCls = False
    pars.Want_CMB = False
    pars.set_matter_power(redshifts=[1.0, 0.0], kmax=100.0 * PLANCK.h)  # CAMB sampling depends on kmax
    res = camb.get_results(pars)
    k, zs, pk = res.get_linear_matter_power_spectrum(hubble_units=True, k_hunit=True)
    sel = (k > 1e-4) & (k < 5.0)
    k, p0, p1 = k[sel], pk[list(zs).index(0.0)][sel], pk[list(zs).index(1.0)][sel]
    ratio = p0 / linear_power(PLANCK, k)
    np.testing.assert_allclose(ratio, np.median(ratio), rtol=1e-5)
    s8 = float(res.get_sigma8_0()) / math.sqrt(np.median(ratio))
    assert s8 == pytest.approx(PLANCK.sigma8, rel=1e-3)
    # CAMB's own z-dependence (radiation, baryons) vs our D1^2 scaling: equal at the documented 1e-3 level.
    camb_growth = p1 / p0
    ours = growth_factor(PLANCK, 0.5) ** 2
    band = (k > 1e-3) & (k < 1.0)
    assert np.max(np.abs(camb_growth[band] / ours - 1.0)) < 1e-3


def test_large_scale_slope_is_primordial_tilt():
    k = np.array([1e-4 / 1.05, 1e-4 * 1.05])
    slope = np.diff(np.log(linear_power(PLANCK, k)))[0] / np.diff(np.log(k))[0]
    assert slope == pytest.approx(PLANCK.n_s, abs=2e-3)
    # and the extrapolation below the CAMB table keeps it
    k = np.array([1e-7, 1e-6])
    slope = np.diff(np.log(linear_power(PLANCK, k)))[0] / np.diff(np.log(k))[0]
    assert slope == pytest.approx(PLANCK.n_s, abs=2e-3)


@pytest.mark.parametrize("cosmo", [PLANCK, LOW_OMEGA], ids=["planck18", "low_omega"])
def test_shape_matches_eh98_no_wiggle(cosmo):
    lnk = np.linspace(math.log(1e-5), math.log(1e3), 200001)
    kk = np.exp(lnk)
    eh = eh98_no_wiggle(cosmo, kk)
    s8 = math.sqrt(simpson(kk**3 * eh * tophat(8 * kk) ** 2, x=lnk) / (2 * math.pi**2))
    k = np.logspace(-2, 0, 400)
    ratio = linear_power(cosmo, k) / (eh98_no_wiggle(cosmo, k) * (cosmo.sigma8 / s8) ** 2)
    assert np.max(np.abs(ratio - 1.0)) < 0.10  # BAO wiggles (~±6%) plus the fit's few-% accuracy
    assert abs(np.exp(np.mean(np.log(ratio))) - 1.0) < 0.03  # the broadband shape agrees to a few %
    assert np.ptp(ratio) > 0.05  # CAMB has the baryon oscillations the no-wiggle fit lacks


def test_linear_power_torch_matches_table_and_numpy():
    k_nodes, p_nodes = linear_power_table(PLANCK)
    lp = LinearPower(PLANCK)
    for dtype, tol in ((torch.float64, 1e-5), (torch.float32, 1e-5)):
        out = lp(torch.as_tensor(k_nodes, dtype=dtype))
        assert out.dtype == dtype and out.shape == (k_nodes.size,)
        np.testing.assert_allclose(out.double().numpy(), p_nodes, rtol=tol)
    k = torch.logspace(-6, 3, 1001, dtype=torch.float64)  # includes both extrapolations
    np.testing.assert_allclose(lp(k).numpy(), linear_power(PLANCK, k.numpy()), rtol=1e-12)
    # 3-D mesh of wavenumbers as used by the initial conditions, k = 0 -> 0.
    mesh = torch.rand(4, 4, 3, dtype=torch.float32) * 0.5
    mesh[0, 0, 0] = 0.0
    out = lp(mesh)
    assert out.shape == mesh.shape and out.dtype == torch.float32 and out[0, 0, 0] == 0.0
    assert linear_power(PLANCK, 0.0) == 0.0


def test_high_k_extrapolation_is_a_smooth_power_law():
    k = np.array([50.0, 100.0, 200.0, 400.0])
    slopes = np.diff(np.log(linear_power(PLANCK, k))) / np.diff(np.log(k))
    assert np.all((slopes > -3.0) & (slopes < -2.5))  # CDM: P ~ k^(n_s - 4) ln^2 k
    assert abs(slopes[2] - slopes[1]) < 0.02


def test_redshift_scaling_is_growth_squared():
    k = np.logspace(-3, 1, 50)
    for z in (0.5, 2.0, 49.0):
        d2 = growth_factor(PLANCK, 1.0 / (1.0 + z)) ** 2
        np.testing.assert_allclose(linear_power(PLANCK, k, z) / linear_power(PLANCK, k), d2, rtol=1e-12)
        torch_ratio = LinearPower(PLANCK, z)(torch.as_tensor(k)) / LinearPower(PLANCK)(torch.as_tensor(k))
        np.testing.assert_allclose(torch_ratio.numpy(), d2, rtol=1e-12)


def test_halofit_limits():
    k = np.array([0.002, 0.01, 1.0])
    ratio = nonlinear_power(PLANCK, k, 0.0) / linear_power(PLANCK, k)
    assert abs(ratio[0] - 1.0) < 1e-3
    assert abs(ratio[1] - 1.0) < 0.01
    assert ratio[2] > 3.0  # one-halo regime: Takahashi halofit gives ~6 at k = 1 h/Mpc, z = 0
    # Non-linearity weakens with redshift.
    assert nonlinear_power(PLANCK, 1.0, 3.0) / linear_power(PLANCK, 1.0, 3.0) < ratio[2] / 2


@pytest.mark.parametrize(
    "call",
    [
        lambda: linear_power(PLANCK, [-0.1, 0.1]),
        lambda: linear_power(PLANCK, float("nan")),
        lambda: linear_power(PLANCK, 0.1, z=-0.5),
        lambda: linear_power(PLANCK, 0.1, z=float("inf")),
        lambda: sigma_r(PLANCK, 0.0),
        lambda: LinearPower(PLANCK)(torch.tensor([0.1, -1.0])),
        lambda: LinearPower(PLANCK)(torch.tensor([1, 2])),
        lambda: nonlinear_power(PLANCK, 0.1, z="x"),
    ],
)
def test_bad_input_raises(call):
    with pytest.raises(ValueError, match=r"^(k|z|r) must"):
        call()
