"""The halo-mass calibration study (benchmarks.halo_mass_study): its slope fit recovers an injected cosmology
dependence, unbiased rounding counts as its Monte Carlo does, the continuous table recovers a known mass ratio,
and the grading groups a cosmology's seeds."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.halo_mass_study import continuous_table, expected_count, grade, mass_ratio_slopes


def _truth(rng, n=6000, lo=8):
    return np.sort(np.floor(lo * (1.0 - rng.random(n)) ** (-1.0 / 0.9)).astype(np.int64))[::-1]


def _snaps(slope=0.3, ratio=1.1, seeds=1):
    """Generator counts lighter than the truth's by ``ratio (1 + slope (sigma8 - 0.8))`` (unbiased rounding)."""
    rng = np.random.default_rng(5)
    snaps = []
    for i, s8 in enumerate(np.repeat(np.linspace(0.7, 0.9, 11), seeds)):
        truth = _truth(rng)
        gen = np.floor(truth / (ratio * (1 + slope * (s8 - 0.8))) + rng.random(truth.size)).astype(np.int64)
        cosmo = {"Omega_m": 0.3, "Omega_b": 0.048, "h": 0.68, "n_s": 0.96, "sigma8": float(s8)}
        snaps.append({"sim_id": f"s{i}", "redshift": 0.0, "cosmology": cosmo, "truth": truth,
                      "gen": np.sort(gen[gen >= 8])[::-1]})
    return snaps


def test_the_slope_fit_recovers_an_injected_sigma8_dependence():
    snaps = _snaps(slope=0.3)
    fit = mass_ratio_slopes(snaps, lambda n, z: 1.1 * n, ("sigma8",), min_pairs=500)
    centres, b, se = fit["slopes"][0.0]
    assert fit["pivot"]["sigma8"] == pytest.approx(0.8)
    assert len(centres) >= 4 and np.all(np.diff(centres) > 0)
    # ln(1 + 0.3 x) = 0.3 x to 0.5% over |x| <= 0.1; each bin within 3 of its standard errors
    assert np.all(np.abs(b[:, 0] - 0.3) < np.maximum(3 * se[:, 0], 0.02))
    assert np.average(b[:, 0], weights=1 / se[:, 0] ** 2) == pytest.approx(0.3, abs=0.03)
    flat = mass_ratio_slopes(_snaps(slope=0.0), lambda n, z: 1.1 * n, ("sigma8",), min_pairs=500)
    assert np.all(np.abs(flat["slopes"][0.0][1][:, 0]) < np.maximum(3 * flat["slopes"][0.0][2][:, 0], 0.02))


def test_unbiased_rounding_counts_as_its_monte_carlo():
    rng = np.random.default_rng(0)
    x = rng.uniform(15, 25, 20000)
    draws = [np.count_nonzero(np.floor(x + rng.random(x.size)) >= 20) for _ in range(50)]
    assert expected_count(x, 20, unbiased=True) == pytest.approx(np.mean(draws), rel=2e-3)
    assert expected_count(x, 20, unbiased=False) == np.count_nonzero(np.floor(x + 0.5) >= 20)
    # a whole count sits where it is either way
    assert expected_count(np.array([19.0, 20.0, 21.0]), 20, True) == expected_count(np.array([19.0, 20.0, 21.0]),
                                                                                    20, False) == 2


def test_the_continuous_table_recovers_a_known_mass_ratio():
    table = continuous_table(_snaps(slope=0.0, ratio=1.1))
    nodes, ratio = table[0.0]
    assert nodes[0] == 8 and 32 in nodes and nodes[-1] > 100
    assert np.all(np.abs(ratio[(nodes >= 12) & (nodes <= 200)] - 1.1) < 0.03)


def test_grading_takes_each_cosmologys_seeds_together():
    snaps = _snaps(slope=0.0, ratio=1.1, seeds=2)
    exact = grade(snaps, lambda n, z, c: 1.1 * n, unbiased=True)
    raw = grade(snaps, lambda n, z, c: n, unbiased=False)
    for cut in (20, 40):
        assert abs(exact[f"z0>={cut}"]["mean"]) < 0.02 and exact[f"z0>={cut}"]["worst_cosmology"] < 0.04
        assert raw[f"z0>={cut}"]["mean"] < -0.06
    # 11 cosmologies of two seeds: a cosmology's error is the ratio of its summed counts, the worst of them is
    # reported, and it is neither the pooled error nor the worst snapshot's
    shifted = lambda n, z, c: n * (1.1 + 0.3 * (c["sigma8"] - 0.8))  # noqa: E731  (errors of either sign)
    res = grade(snaps, shifted, unbiased=False)["z0>=40"]
    counts = {}
    for s in snaps:
        got, want = counts.get(s["cosmology"]["sigma8"], (0, 0))
        counts[s["cosmology"]["sigma8"]] = (got + np.count_nonzero(np.floor(shifted(s["gen"], 0, s["cosmology"]) + 0.5)
                                                                    >= 40), want + np.count_nonzero(s["truth"] >= 40))
    per_cosmology = [abs(g / w - 1) for g, w in counts.values()]
    pooled = abs(sum(g for g, _ in counts.values()) / sum(w for _, w in counts.values()) - 1)
    assert len(counts) == 11 and res["worst_cosmology"] == pytest.approx(max(per_cosmology), rel=1e-12)
    assert res["worst_cosmology"] > 2 * pooled


def test_the_shared_linear_fit_agrees_with_numpy_polyfit():
    from benchmarks.least_squares import linear_fit

    rng = np.random.default_rng(4)
    x = rng.uniform(0.7, 0.9, 40)
    w = rng.uniform(50, 500, 40)  # pairs per snapshot
    y = 0.1 + 0.3 * x + rng.normal(0, 1, 40) / np.sqrt(w)
    coef, se = linear_fit([x], y, w)
    ref, cov = np.polyfit(x, y, 1, w=np.sqrt(w), cov=True)  # polyfit weights multiply the residuals
    assert coef == pytest.approx(ref[::-1], rel=1e-9)
    assert se == pytest.approx(np.sqrt(np.diag(cov))[::-1], rel=1e-9)
    with pytest.raises(ValueError, match="more than 2 points"):
        linear_fit([x[:2]], y[:2])
