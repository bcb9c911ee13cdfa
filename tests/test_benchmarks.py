"""Benchmarks package: metrics against exact identities and known physics, lognormal construction, tier plumbing.

Sizes: 32^3 particles. "Nonlinear" setup: 128 Mpc/h at z = 0.5 (4 Mpc/h cells, where 2LPT is known to lack
small-scale power); "mild" setup: 256 Mpc/h at z = 1 (sigma_G^2 ~ 0.5, where a lognormal field is a fair model
of the two-point function). Truth: PM with 10 steps from z = 9.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.config import DEFAULTS, TIERS, load_config
from benchmarks.contenders import IDENTITY_NAME, make_contender, resolve_model, write_identity_model
from benchmarks.lognormal import gaussian_power, lognormal_field, power_on_mesh, realization_factor
from benchmarks.metrics import compare, make_binning, max_over, measure
from benchmarks.run import main, run_tier
from benchmarks.speed import measure_speed
from benchmarks.truth import simulate_truth, trainingset_truth
from emulator.core.cosmology import get_preset
from emulator.core.fourier import to_fourier, to_real
from emulator.core.stats import power_spectrum_k
from emulator.model.portable import load_model

COSMO = get_preset("planck18")
SIM = {"z_init": 9.0, "steps": 10, "force_factor": 2}
N = 32


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a loaded shared machine, two spinning OpenMP threads per op cost 10-100x."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _stats():
    stats = copy.deepcopy(DEFAULTS["statistics"])
    stats["bispectrum"].update(dk=1.0, equilateral=[2.0, 4.0, 6.0, 8.0], isosceles_k=6.0,
                               isosceles_thetas=[0.5, 0.6, 0.7, 0.8, 0.9])
    return stats


def _setup(box, z, names, tmp_path_factory, seed=11):
    stats = _stats()
    b = make_binning(N, box, stats, DEFAULTS["covariance"])
    path = write_identity_model(tmp_path_factory.mktemp("model") / "identity.pt", box / N,
                                DEFAULTS["model"]["fallback_prior"], (0.0, 2.0))
    model = load_model(path)
    truth = simulate_truth(COSMO, seed, N, box, z, SIM)
    tm = measure(truth, b, stats)
    out = {"b": b, "stats": stats, "truth": truth, "tm": tm, "model": model, "m": {}, "c": {}}
    for name in names:
        target = (tm["k"], tm["pk"] / realization_factor(seed, N, box, b.kedges)) if name == "lognormal" else None
        mock = make_contender(name, COSMO, z, box, N, seed, model=model, simulation=SIM, target=target)
        out["m"][name] = mock
        out["c"][name] = compare(tm, measure(mock, b, stats, ref=tm), b)
    return out


@pytest.fixture(scope="module")
def nonlinear(tmp_path_factory):
    return _setup(128.0, 0.5, ["2lpt", "generator"], tmp_path_factory)


@pytest.fixture(scope="module")
def mild(tmp_path_factory):
    return _setup(256.0, 1.0, ["2lpt", "lognormal"], tmp_path_factory)


def test_truth_against_itself_is_exact(nonlinear):
    tm, b = nonlinear["tm"], nonlinear["b"]
    c = compare(tm, tm, b)
    assert torch.equal(c["pk_ratio"], torch.ones_like(c["pk_ratio"]))
    torch.testing.assert_close(c["r"], torch.ones_like(c["r"]), rtol=0, atol=1e-13)
    assert float(c["dq_eq"].abs().max()) == 0.0 and float(c["dq_iso"].abs().max()) == 0.0
    assert c["pdf_l1"] == [0.0, 0.0] and c["sigma2_ratio"] == [1.0, 1.0]
    finite = torch.isfinite(c["xi_ratio"])
    assert finite.sum() >= 3 and torch.equal(c["xi_ratio"][finite], torch.ones(int(finite.sum()), dtype=torch.float64))
    assert torch.equal(c["p0_ratio"], torch.ones_like(c["p0_ratio"])) and float(c["dp2_over_p0"].abs().max()) == 0


def test_identity_generator_is_2lpt(nonlinear):
    """The zero-output stand-in network must return the 2LPT particles bit for bit."""
    assert torch.equal(nonlinear["m"]["generator"].positions, nonlinear["m"]["2lpt"].positions)
    assert torch.equal(nonlinear["m"]["generator"].velocities, nonlinear["m"]["2lpt"].velocities)


def test_2lpt_lacks_small_scale_power(nonlinear):
    """2LPT vs PM at z = 0.5 in 4 Mpc/h cells: ~1 at k_f, a clear deficit and decorrelation at high k.

    (The deficit starts early: 2LPT lacks the one-loop power, a few % already at k ~ 0.1 h/Mpc.)
    """
    c, k, b = nonlinear["c"]["2lpt"], nonlinear["tm"]["k"], nonlinear["b"]
    low, high = k < 3 * b.kf, k > 0.5 * b.knyq
    assert abs(float(c["pk_ratio"][0]) - 1) < 0.03
    assert float(c["pk_ratio"][high].max()) < 0.9  # deficit at every high-k bin
    assert float(c["pk_ratio"][high].mean()) < float(c["pk_ratio"][low].mean()) - 0.1
    assert float(c["r"][high].max()) < 0.995 and float(c["r"][low].min()) > 0.999
    assert float(c["r"][-1]) < float(c["r"][high][0])  # decorrelation grows with k


def test_lognormal_power_but_not_bispectrum(mild):
    """Lognormal: P(k) within a few % for k <= k_Nyq/2, but Q clearly off (its tree-level Q is 1 for any shape).

    One realization: the two lowest bins (18 and 62 modes) carry the lognormal's own realization scatter (its
    low-k power is partly made by the exponential from small-scale modes), so the per-bin bound is for bins of
    >= 90 modes (k >= 3 k_f); the mode-weighted mean includes every bin.
    """
    c, k, b, tm = mild["c"]["lognormal"], mild["tm"]["k"], mild["b"], mild["tm"]
    sel = k <= 0.5 * b.knyq
    modes = power_spectrum_k(tm["delta_k"], b.box_size, N, kedges=b.kedges).modes[sel].to(torch.float64)
    err = (c["pk_ratio"][sel] - 1).abs()
    mean_err = float((err * modes).sum() / modes.sum())
    p_err = float(err[modes >= 90].max())
    dq_ln = max(max_over(c["dq_eq"]), max_over(c["dq_iso"]))
    dq_2lpt = max(max_over(mild["c"]["2lpt"]["dq_eq"]), max_over(mild["c"]["2lpt"]["dq_iso"]))
    assert mean_err < 0.03 and p_err < 0.03
    assert dq_ln > 10 * max(p_err, mean_err) and dq_ln > 3 * dq_2lpt and dq_ln > 0.3


def test_lognormal_transform_is_exact_on_the_mesh():
    """A zero-mean G with power P_G has <(1+d1)(1+d2)> = exp(xi_G): its mesh power is the target's, exactly.

    G has no k = 0 mode, so xi_G is ln(1 + xi_t) minus its mesh mean c: the lognormal power is then
    exp(-c) P_t at every k != 0 (a constant that the realized-mean normalisation removes).
    """
    n, box = 16, 200.0
    k = torch.linspace(0.02, 0.5, 30, dtype=torch.float64)
    p = 3000.0 * (k / 0.05) ** -1.5 / (1 + (k / 0.05) ** -2)
    pm = power_on_mesh(k, p, n, box)
    p_g, clipped = gaussian_power(pm, n, box)
    assert clipped == 0.0 and float(p_g[0, 0, 0]) == 0.0
    xi_g = to_real(p_g.to(torch.complex128), n) * n**3 / box**3  # correlation of the zero-mean G
    back = to_fourier(torch.expm1(xi_g)).real * box**3 / n**3
    xi_t = np.fft.irfftn(pm.numpy(), s=(n, n, n)) * n**3 / box**3  # independent: numpy transform of the target
    c = float(np.log1p(xi_t).mean())
    nonzero = torch.ones_like(pm, dtype=torch.bool)
    nonzero[0, 0, 0] = False
    torch.testing.assert_close(back[nonzero], math.exp(-c) * pm[nonzero], rtol=1e-9, atol=1e-9 * float(pm.max()))
    # log-log interpolation hits the table at its nodes: the mode |k| = 4 k_f lies between nodes, check monotone
    from emulator.core.fourier import k_magnitude

    kk = k_magnitude(n, box)
    inside = (kk >= k[0]) & (kk <= k[-1])
    ref = np.exp(np.interp(np.log(kk[inside].numpy()), np.log(k.numpy()), np.log(p.numpy())))
    np.testing.assert_allclose(pm[inside].numpy(), ref, rtol=1e-12)


def test_lognormal_ensemble_mean_matches_target():
    """Over 64 seeds the mean lognormal P(k) equals the target within its standard error (mild field)."""
    n, box = 16, 240.0
    k = torch.linspace(0.02, 0.4, 30, dtype=torch.float64)
    p = 4000.0 * (k / 0.05) ** -1.5 / (1 + (k / 0.05) ** -2)
    pk = [power_spectrum_k(to_fourier(lognormal_field(s, n, box, k, p).delta), box, n) for s in range(64)]
    powers = torch.stack([x.power for x in pk])
    # binned target: a field with |delta_k|^2 = P n^6 / V exactly, through the same estimator (mode weights)
    amp = (power_on_mesh(k, p, n, box) * n**6 / box**3).sqrt().to(torch.complex128)
    expect = power_spectrum_k(to_fourier(to_real(amp, n)), box, n)
    pull = (powers.mean(0) - expect.power) / (powers.std(0) / math.sqrt(64))
    assert float(pull.abs().max()) < 4.0


@pytest.mark.slow
def test_run_tier_writes_results_and_report(tmp_path):
    model = write_identity_model(tmp_path / "m.pt", 8.0, DEFAULTS["model"]["fallback_prior"], (0.0, 2.0))
    cfg = tmp_path / "micro.yaml"
    cfg.write_text(
        "ngrid: 16\nredshift: 1.0\ndevice: cpu\n"
        "truth: {cosmologies: [planck18], seeds: [5], simulation: {z_init: 9.0, steps: 6, force_factor: 2}}\n"
        "pm_few: {steps: 2}\npm: {pm3_3x: {steps: 3, force_factor: 3}}\n"
        "contenders: [generator, 2lpt, za, pm_few, pm3_3x, lognormal]\n"
        "statistics: {bispectrum: {dk: 1.0, equilateral: [2.0, 3.0], isosceles_k: 3.0, isosceles_thetas: [0.6, 0.8]},"
        " pdf: {smoothing_cells: [1.5, 3.0], nbins: 10}}\n"
        "covariance: {realizations: 2, nbins: 3}\n"
        "speed: {isolate: false, ngrid: 16, repeats: 1, methods: [2lpt, lognormal, pm3_3x]}\n"
    )
    res = run_tier("smoke", config=cfg, out=tmp_path / "out", model=model, log=lambda m: None)
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    for key in ("schema", "tier", "hardware", "versions", "model", "setup", "summary", "per_cosmology",
                "covariance", "speed", "notes", "wall_seconds"):
        assert key in data
    assert data["tier"] == "smoke" and data["model"]["sha256"] == res["model"]["sha256"]
    assert len(data["model"]["sha256"]) == 64
    assert data["config"]["config_file"] == str(cfg)  # outside the repository: unchanged
    assert {"cpu_model", "device", "torch_threads"} <= set(data["hardware"]) and data["versions"]["torch"]
    summary_keys = {"max_abs_pk_ratio_minus_1", "max_abs_mean_pk_ratio_minus_1", "max_one_minus_r", "max_abs_dQ",
                    "max_pdf_l1", "cov_diag_mean_abs_rel_err", "corr_frobenius", "seconds_per_mock"}
    assert set(data["summary"]) == set(DEFAULTS["contenders"]) | {"pm3_3x"}
    assert data["setup"]["pm_contenders"]["pm3_3x"] == {**DEFAULTS["pm_base"], "steps": 3, "force_factor": 3}
    assert data["speed"]["pm3_3x"]["seconds_per_mock"] > 0
    for name, s in data["summary"].items():
        assert summary_keys <= set(s), name
        assert s["max_one_minus_r"] is not None and s["seconds_per_mock"] > 0
    k = data["per_cosmology"][0]["truth"]["k"]
    assert k and len(data["setup"]["kedges"]) == len(k) + 1
    assert data["speed"]["2lpt"]["seconds_per_mock"] > 0
    assert data["summary"]["2lpt"]["seconds_source"].startswith("speed")
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.startswith("# Benchmark report") and "| contender |" in report
    figs = sorted(p.name for p in (tmp_path / "out" / "figures").glob("*.png"))
    assert "PM 3 steps, 3x mesh" in report and "no cheaper PM is more accurate" in report
    for name in ("pk_ratio.png", "rk.png", "bispectrum.png", "pdf.png", "covariance.png", "slices.png", "speed.png",
                 "frontier.png"):
        assert name in figs and f"figures/{name}" in report
        assert (tmp_path / "out" / "figures" / name).read_bytes()[:4] == b"\x89PNG"


def test_bad_tier_is_a_clear_error(capsys):
    with pytest.raises(ValueError, match="tier must be one of smoke, standard, full"):
        run_tier("bogus")
    with pytest.raises(SystemExit) as exc:
        main(["--tier", "bogus"])
    assert exc.value.code == 2 and "--tier must be one of" in capsys.readouterr().err
    assert TIERS == ("smoke", "standard", "full")
    for tier in TIERS:  # the shipped configs load and validate
        assert load_config(tier)["tier"] == tier


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("statistics: {bispectrum: {dkk: 1}}\n")
    with pytest.raises(ValueError, match="unknown key 'statistics.bispectrum.dkk'"):
        load_config("smoke", bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_config("smoke", tmp_path / "missing.yaml")


def test_a_missing_model_is_an_error_and_the_identity_model_is_noted(tmp_path, monkeypatch):
    import benchmarks.contenders as contenders

    monkeypatch.setattr(contenders, "DEFAULT_MODEL_PATH", tmp_path / "absent.pt")
    with pytest.raises(ValueError, match=r"no embedded model .*\(no stand-in is substituted\)"):
        resolve_model(None)
    assert not list(tmp_path.iterdir())  # nothing was written in its place
    path = write_identity_model(tmp_path / "identity.pt", 4.0, DEFAULTS["model"]["fallback_prior"])
    model, info = resolve_model(path)
    assert info["fallback"] and info["name"] == IDENTITY_NAME and "identity-over-2LPT" in info["note"]


@pytest.mark.parametrize("truth, match", [
    ({"source": "auto"}, "no silent fallback"),
    ({"source": "suite"}, "needs truth.suite"),
    ({"source": "trainingset", "path": "runs/absent_train.h5"}, "existing training-set file"),
])
def test_a_truth_source_that_could_substitute_is_refused(truth, match):
    with pytest.raises(ValueError, match=match):
        load_config("smoke", overrides={"truth": truth})


def test_speed_in_a_fresh_process(tmp_path):
    """The isolated timing path: a subprocess reports time per mock and its own peak RSS."""
    out = measure_speed(["za"], ngrid=16, box_size=64.0, redshift=0.0, cosmology=COSMO, model_path=None,
                        simulation=SIM, pm_steps=2, repeats=1, device="cpu", threads=1, isolate=True)
    za = out["za"]
    assert "error" not in za, za
    assert za["seconds_per_mock"] > 0 and za["peak_rss_mb"] >= za["baseline_rss_mb"] > 50


def test_trainingset_truth_layout(tmp_path, synthetic_training_set):
    """Held-out truth from a training set: particle p = i n^2 + j n + k at (q + disp) mod L, velocity from vel."""
    try:
        from helpers_trainingset import write_index_training_set
    except ImportError:  # pragma: no cover
        from tests.helpers_trainingset import write_index_training_set

    n, box = 8, 32.0
    path = write_index_training_set(tmp_path / "idx.h5", n=n, box=box, redshifts=(0.0, 2.0))
    mocks, notes = trainingset_truth(str(path), "test", redshift=2.0)
    assert len(mocks) == 1 and not notes
    m, cell = mocks[0], box / n
    assert m.seed == 2 and m.redshift == 2.0 and m.ngrid == n and m.box_size == box
    assert m.source[0] == str(path) and m.source[1] == path.stat().st_size and m.source[3] == "sim_2/z_2.0000"
    i = torch.arange(n, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(i, i, i, indexing="ij"), dim=-1).reshape(-1, 3)
    torch.testing.assert_close(m.positions.double(), torch.remainder((2 * grid + 0.5) * cell, box))
    vu = 100.0 * (1 / 3) * 3.0 * (0.5 + 0.2)  # 100 a E f1 of the helper at z = 2
    torch.testing.assert_close(m.velocities.double(), (vu * cell * torch.arange(1.0, 4.0)).expand(n**3, 3).double(),
                               rtol=1e-6, atol=1e-4)
    # a training set whose linear fields come from IC snapshots has no seeds: a clear error
    with pytest.raises(ValueError, match="lack a seed"):
        trainingset_truth(str(synthetic_training_set), "test")


def test_frontier_verdicts_and_pm_name_checks():
    from benchmarks.frontier import frontier_table

    def s(sec, pk, r, h):
        return {"seconds_per_mock": sec, "max_abs_pk_ratio_minus_1": pk, "max_one_minus_r": r,
                "hmf_populated": h}

    res = {"setup": {"pm_contenders": {"pm6": {"steps": 6}}},
           "summary": {"generator": s(1.0, 0.05, 0.02, 0.5), "pm_few": s(0.8, 0.20, 0.01, 0.2),
                       "pm6": s(2.0, 0.01, 0.001, 0.05), "2lpt": s(0.1, 0.5, 0.2, None)}}
    table = frontier_table(res, lambda r, n: n)
    gen = next(line for line in table.splitlines() if line.startswith("| generator"))
    assert gen.endswith("| yes, no, no |")  # pm_few (cheaper) has better r and halos, worse P(k); pm6 costs more
    lpt = next(line for line in table.splitlines() if line.startswith("| 2lpt"))
    assert lpt.endswith("| yes, yes, – |")  # nothing cheaper than 2LPT
    cells = [len(re.split(r"(?<!\\)\|", line)) for line in table.splitlines()]  # unescaped pipes only
    assert len(set(cells)) == 1 and cells[0] == 8  # every row as many markdown cells as the header
    assert "max \\|P/P_t − 1\\|" in table.splitlines()[0]
    with pytest.raises(ValueError, match="pm.pm_few must be a new name"):
        load_config("smoke", overrides={"pm": {"pm_few": {"steps": 3}}})
    with pytest.raises(ValueError, match="with 'steps'"):
        load_config("smoke", overrides={"pm": {"pm9": {"force_factor": 3}}})
    with pytest.raises(ValueError, match="contenders: unknown"):
        load_config("smoke", overrides={"contenders": ["pm9"]})


def test_hod_galaxy_multipoles_are_measured_and_compared(nonlinear):
    """HOD galaxies of each method's FoF halos, in redshift space: P0, P2, P4 with the truth's Gaussian error;
    the same HOD seed gives the same galaxies, so the truth against itself is exact."""
    stats = copy.deepcopy(nonlinear["stats"])
    stats["halos"].update(min_members=5, min_halos=1)
    stats["galaxies"] = {"hod": {"logMmin": 13.2, "sigma_logM": 0.3, "logM0": 13.3, "logM1": 14.0, "alpha": 1.0},
                         "seed": 3}
    b = nonlinear["b"]
    tm = measure(nonlinear["truth"], b, stats)
    g = tm["galaxies"]
    assert g["n_galaxies"] > 100 and g["p0"].shape == g["p2"].shape == g["p4"].shape == g["k"].shape
    assert g["shot_noise"] == pytest.approx(b.box_size**3 / g["n_galaxies"])
    assert (g["sigma"] > 0).all() and (g["sigma"][2] > g["sigma"][0]).all()  # sqrt(2l + 1) grows with l
    again = compare(tm, measure(nonlinear["truth"], b, stats, ref=tm), b)
    assert torch.equal(again["gal_p0_ratio"], torch.ones_like(again["gal_p0_ratio"]))
    assert float(again["gal_dp4_over_p0"].abs().max()) == 0.0
    other = compare(tm, measure(nonlinear["m"]["2lpt"], b, stats, ref=tm), b)
    assert {"gal_p0_ratio", "gal_dp2_over_p0", "gal_dp4_over_p0", "gal_sigma_over_p0", "n_galaxies"} <= set(other)
    assert other["n_galaxies"] != g["n_galaxies"]  # 2LPT halos differ, so do their galaxies



def test_reports_name_repository_files_relative_to_the_root(tmp_path):
    from benchmarks.env import repo_relative

    root = Path(__file__).resolve().parent.parent
    assert repo_relative(root / "configs" / "benchmarks" / "standard.yaml") == "configs/benchmarks/standard.yaml"
    assert repo_relative(tmp_path / "x.yaml") == str(tmp_path / "x.yaml") and repo_relative(None) is None
