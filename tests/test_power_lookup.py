"""The linear-power lookup on a uniform ln k grid: computed segment index vs the searchsorted reference.

Truths: the previous implementation (a ``searchsorted`` for the segment, kept here verbatim as the reference) and
``numpy.interp`` in log-log space; a synthetic table (no CAMB) with curvature so that interpolation matters.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emulator.core import power
from emulator.core.cosmology import get_preset
from emulator.core.fourier import k_magnitude

COSMO = get_preset("planck18")


def _table() -> power._Table:
    lnk = np.linspace(math.log(1e-5), math.log(105.0), power._N_DENSE)
    lnp = 9.0 + 0.96 * lnk - 0.4 * np.log1p(np.exp(2.0 * (lnk + 2.0))) + 0.02 * np.sin(3.0 * lnk)
    return power._Table(np.exp(lnk[::80]), np.exp(lnp[::80]), lnk, lnp, 2e-9)


def _searchsorted_reference(table, k):
    """The lookup before the change: segment by binary search, end segments extrapolated, P(0) = 0."""
    x, y = table.lnk, table.lnp
    positive = k > 0.0
    lnk = np.log(np.where(positive, k, 1.0))
    i = np.clip(np.searchsorted(x, lnk) - 1, 0, x.size - 2)
    t = (lnk - x[i]) / (x[i + 1] - x[i])
    return np.where(positive, np.exp(y[i] + t * (y[i + 1] - y[i])), 0.0)


@pytest.fixture
def table(monkeypatch):
    tab = _table()
    monkeypatch.setattr(power, "_linear_table", lambda key: tab)
    return tab


def _inside_samples(tab):
    rng = np.random.default_rng(3)
    random = np.exp(rng.uniform(tab.lnk[0], tab.lnk[-1], 100_000))
    nodes = np.exp(tab.lnk[1:-1])  # exactly on (rounded) nodes: the two searches may pick adjacent segments
    box = k_magnitude(32, 100.0, dtype=torch.float64).numpy().ravel()  # a box's k grid, with k = 0
    return np.concatenate([[0.0], random, nodes, box])


def test_numpy_lookup_matches_searchsorted_and_np_interp(table):
    k = _inside_samples(table)
    new, ref = power._interp_np(table, k), _searchsorted_reference(table, k)
    assert new[0] == 0.0 and np.all(new[k == 0.0] == 0.0)
    pos = k > 0.0
    assert np.max(np.abs(new[pos] / ref[pos] - 1.0)) < 1e-12
    truth = np.exp(np.interp(np.log(k[pos]), table.lnk, table.lnp))
    assert np.max(np.abs(new[pos] / truth - 1.0)) < 1e-12


def test_torch_lookup_matches_reference_in_float64_and_float32(table):
    k = _inside_samples(table)
    ref = _searchsorted_reference(table, k)
    lp = power.LinearPower(COSMO, 0.0)
    out = lp(torch.from_numpy(k))
    assert out.dtype == torch.float64
    pos = k > 0.0
    assert np.max(np.abs(out.numpy()[pos] / ref[pos] - 1.0)) < 1e-12
    assert np.all(out.numpy()[~pos] == 0.0)
    k32 = torch.from_numpy(k).float()
    out32 = lp(k32)
    assert out32.dtype == torch.float32 and out32.shape == k32.shape
    ref32 = _searchsorted_reference(table, k32.double().numpy())
    np.testing.assert_allclose(out32.double().numpy(), ref32, rtol=1e-6)
    grid = torch.from_numpy(k[-32 * 32 * 17:].reshape(32, 32, 17))
    assert lp(grid).shape == (32, 32, 17)


def test_chunked_lookup_is_the_one_pass_lookup(table, monkeypatch):
    """Large meshes are interpolated in chunks (bounded float64 temporaries); the numbers do not change."""
    k = torch.from_numpy(_inside_samples(table)[-4 * 8 * 5 * 7:].reshape(4, 8, 5, 7)).float()
    lp = power.LinearPower(COSMO, 0.0)
    whole = lp(k)
    monkeypatch.setattr(power.LinearPower, "CHUNK", 37)  # does not divide the 1120 elements
    chunked = lp(k)
    assert chunked.shape == k.shape and chunked.dtype == k.dtype
    assert torch.equal(chunked, whole)
    assert lp(torch.tensor(0.5)).shape == ()


def test_extrapolation_continues_the_end_segments(table):
    k = np.array([1e-8, 1e-6, 2e2, 1e4])
    new, ref = power._interp_np(table, k), _searchsorted_reference(table, k)
    # Far outside the table the reference's per-segment slope (a difference of rounded nodes) has ~1e-13
    # relative rounding, amplified by the distance in cells; both are the same power law to 1e-10.
    np.testing.assert_allclose(new, ref, rtol=1e-10)
    lo = (table.lnp[1] - table.lnp[0]) / (table.lnk[1] - table.lnk[0])
    np.testing.assert_allclose(new[0], math.exp(table.lnp[0] + lo * (math.log(k[0]) - table.lnk[0])), rtol=1e-10)
    out = power.LinearPower(COSMO, 0.0)(torch.from_numpy(k))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10)


def test_lookup_rejects_bad_k(table):
    lp = power.LinearPower(COSMO, 0.0)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="k must be finite and >= 0"):
            lp(torch.tensor([0.1, bad], dtype=torch.float64))
    assert lp(torch.empty(0, dtype=torch.float64)).shape == (0,)
    with pytest.raises(ValueError, match="floating-point"):
        lp(torch.tensor([1, 2]))
