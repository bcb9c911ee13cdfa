"""Cosmology parameter vector: validation, conversions, presets, and E(a) against astropy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emulator.core.cosmology import PARAMETER_NAMES, PRESETS, Cosmology, get_preset

GOOD = dict(Omega_m=0.3, Omega_b=0.05, h=0.7, n_s=0.96, sigma8=0.8)


@pytest.mark.parametrize("name", PARAMETER_NAMES)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), -1.0, 5.0, "abc", None])
def test_invalid_parameter_raises_naming_it(name, value):
    with pytest.raises(ValueError, match=name):
        Cosmology(**{**GOOD, name: value})


def test_omega_b_above_omega_m_raises():
    with pytest.raises(ValueError, match="Omega_b"):
        Cosmology(**{**GOOD, "Omega_m": 0.04, "Omega_b": 0.05})


def test_values_are_plain_floats_and_frozen():
    c = Cosmology(np.float32(0.3), 0.05, 0.7, 0.96, np.int64(1))
    assert all(type(getattr(c, k)) is float for k in PARAMETER_NAMES)
    with pytest.raises(AttributeError):
        c.h = 0.5  # type: ignore[misc]
    assert c.Omega_cdm == pytest.approx(c.Omega_m - c.Omega_b)
    assert c.Omega_lambda == pytest.approx(1.0 - c.Omega_m)


def test_array_mapping_round_trips():
    c = Cosmology(**GOOD)
    arr = c.to_array()
    assert arr.dtype == np.float64 and arr.tolist() == [GOOD[k] for k in PARAMETER_NAMES]
    assert Cosmology.from_array(arr) == c
    assert Cosmology.from_array(arr.reshape(5, 1)) == c
    assert Cosmology.from_mapping({**c.to_dict(), "extra": 1}) == c
    with pytest.raises(ValueError, match="5 entries"):
        Cosmology.from_array(arr[:4])
    with pytest.raises(ValueError, match="sigma8"):
        Cosmology.from_mapping({k: GOOD[k] for k in PARAMETER_NAMES[:4]})


def test_key_is_hashable_and_stable():
    c = Cosmology(**GOOD)
    assert hash(c.key()) == hash(Cosmology(**GOOD).key())
    assert c.key() == Cosmology(**{**GOOD, "h": 0.7 + 1e-13}).key()
    assert c.key() != Cosmology(**{**GOOD, "h": 0.7001}).key()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_astropy_round_trip_and_efunc(name):
    c = get_preset(name)
    astro = c.to_astropy()
    assert astro.H0.value == pytest.approx(100.0 * c.h, rel=1e-15)
    assert float(astro.Om0) == c.Omega_m and float(astro.Ob0) == c.Omega_b
    assert float(astro.Tcmb0.value) == 0.0 and float(astro.Ok0) == 0.0
    back = Cosmology.from_astropy(astro)
    assert back.key() == c.key()
    np.testing.assert_allclose(back.to_array(), c.to_array(), rtol=1e-14)
    a = np.array([1e-3, 0.1, 0.5, 1.0, 2.0])
    np.testing.assert_allclose(c.efunc(a), astro.efunc(1.0 / a - 1.0), rtol=1e-13)
    assert c.efunc(1.0) == 1.0 and isinstance(c.efunc(0.5), float)


def test_from_astropy_arguments_and_errors():
    from astropy.cosmology import FlatLambdaCDM, LambdaCDM

    flat = FlatLambdaCDM(H0=70.0, Om0=0.3, Ob0=0.05, Tcmb0=0.0)
    c = Cosmology.from_astropy(flat, n_s=0.96, sigma8=0.8)
    assert c == Cosmology(**GOOD)
    with pytest.raises(ValueError, match="n_s"):
        Cosmology.from_astropy(flat)
    curved = LambdaCDM(H0=70.0, Om0=0.3, Ode0=0.6, Ob0=0.05, Tcmb0=0.0)
    with pytest.raises(ValueError, match="flat"):
        Cosmology.from_astropy(curved, n_s=0.96, sigma8=0.8)


def test_from_astropy_without_baryons_raises():
    # astropy >= 7 sets Ob0 = 0.0 (not None) when omitted: must not become a silent Omega_b = 0
    from astropy.cosmology import FlatLambdaCDM

    with pytest.raises(ValueError, match="Ob0"):
        Cosmology.from_astropy(FlatLambdaCDM(H0=70.0, Om0=0.3, Tcmb0=0.0), n_s=0.96, sigma8=0.8)


def test_from_astropy_warns_about_radiation_and_rejects_bool():
    from astropy.cosmology import FlatLambdaCDM

    with pytest.warns(UserWarning, match="radiation"):
        Cosmology.from_astropy(FlatLambdaCDM(H0=70.0, Om0=0.3, Ob0=0.05, Tcmb0=2.7255), n_s=0.96, sigma8=0.8)
    with pytest.raises(ValueError, match="Omega_m"):
        Cosmology(True, 0.05, 0.7, 0.96, 0.8)


def test_presets():
    p = get_preset("Planck18")
    assert p is PRESETS["planck18"]
    assert (p.Omega_m, p.Omega_b, p.h, p.n_s, p.sigma8) == (0.3111, 0.04897, 0.6766, 0.9665, 0.8102)
    q = get_preset("quijote")
    assert (q.Omega_m, q.Omega_b, q.h, q.n_s, q.sigma8) == (0.3175, 0.049, 0.6711, 0.9624, 0.834)
    with pytest.raises(ValueError, match="unknown cosmology preset"):
        get_preset("wmap1")


def test_efunc_limits():
    c = Cosmology(**GOOD)
    # Matter era E ~ sqrt(Om) a^-1.5; far future E -> sqrt(1 - Om).
    assert c.efunc(1e-4) == pytest.approx(math.sqrt(0.3) * 1e6, rel=1e-10)
    assert c.efunc(1e4) == pytest.approx(math.sqrt(0.7), rel=1e-10)


def test_from_astropy_reads_astropys_own_realizations():
    """astropy's built-in cosmologies carry the spectral index as meta['n']; the values are astropy's own."""
    from astropy.cosmology import FlatLambdaCDM, Planck18

    with pytest.warns(UserWarning, match="radiation or massive neutrinos"):
        c = Cosmology.from_astropy(Planck18)
    assert (c.Omega_m, c.Omega_b, c.h) == (0.30966, 0.04897, 0.6766)  # Planck18.Om0, .Ob0, .H0 / 100
    assert (c.n_s, c.sigma8) == (Planck18.meta["n"], Planck18.meta["sigma8"]) == (0.9665, 0.8102)
    both = FlatLambdaCDM(H0=70.0, Om0=0.3, Ob0=0.05, Tcmb0=0.0, meta={"n": 0.9, "n_s": 0.96, "sigma8": 0.8})
    assert Cosmology.from_astropy(both).n_s == 0.96  # n_s (as to_astropy writes it) wins over n
    with pytest.raises(ValueError, match="'n'"):
        Cosmology.from_astropy(FlatLambdaCDM(H0=70.0, Om0=0.3, Ob0=0.05, Tcmb0=0.0, meta={"sigma8": 0.8}))
