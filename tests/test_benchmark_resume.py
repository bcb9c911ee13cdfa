"""Resumable benchmark runs (benchmarks.resume): a rerun reuses what a run finished and gives the same numbers, a
killed run resumes at the next piece, changed inputs or code are never mixed in, and one run holds an output folder.

Sizes: 16^3 particles, two truths, three covariance realizations (a few seconds a run).
"""

from __future__ import annotations

import json

import pytest

import benchmarks.ensemble as ensemble
import benchmarks.run as run
from benchmarks.config import DEFAULTS, load_config
from benchmarks.contenders import write_identity_model
from benchmarks.resume import PARTIAL_DIR, _code_hash, source_fingerprint
from emulator.core.locks import exclusive_lock

CONFIG = (
    "ngrid: 16\nredshift: 1.0\ndevice: cpu\n"
    "truth: {cosmologies: [planck18, {Omega_m: 0.28, Omega_b: 0.048, h: 0.7, n_s: 0.96, sigma8: 0.85}],"
    " seeds: [5, 6], simulation: {z_init: 9.0, steps: 4, force_factor: 2}}\n"
    "pm_few: {steps: 2}\ncontenders: [generator, 2lpt, pm_few, lognormal]\n"
    "statistics: {bispectrum: {dk: 1.0, equilateral: [2.0, 3.0], isosceles_k: 3.0, isosceles_thetas: [0.6, 0.8]},"
    " pdf: {smoothing_cells: [1.5, 3.0], nbins: 10}}\n"
    "covariance: {realizations: 3, nbins: 3, contenders: [2lpt, pm_few]}\n"
    "speed: {isolate: false, ngrid: 16, repeats: 1, methods: [2lpt]}\n"
    "report: {figures: false}\n"
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    model = write_identity_model(root / "m.pt", 8.0, DEFAULTS["model"]["fallback_prior"], (0.0, 2.0))
    cfg = root / "micro.yaml"
    cfg.write_text(CONFIG)
    return {"root": root, "model": model, "cfg": cfg}


def _numbers(obj):
    """``obj`` without its wall-clock times (the only numbers of a run that are not deterministic)."""
    if isinstance(obj, dict):
        return {k: _numbers(v) for k, v in obj.items() if k not in ("seconds", "truth_seconds")}
    return [_numbers(v) for v in obj] if isinstance(obj, list) else obj


def _run(setup, out, **kw):
    lines = []
    res = run.run_tier("smoke", config=kw.pop("config", setup["cfg"]), out=out, model=setup["model"],
                       log=lines.append, **kw)
    return res, lines


@pytest.fixture(scope="module")
def first(setup):
    out = setup["root"] / "out"
    res, lines = _run(setup, out)
    return {"out": out, "res": res, "lines": lines, "json": json.loads((out / "results.json").read_text())}


def test_a_rerun_reuses_every_piece_and_gives_the_same_numbers(setup, first, monkeypatch):
    calls = []
    monkeypatch.setattr(run, "_compare_one", lambda *a, **k: calls.append(a) or pytest.fail("recomputed"))
    monkeypatch.setattr(ensemble, "make_contender", lambda *a, **k: pytest.fail("recomputed"))
    monkeypatch.setattr(ensemble, "simulate_truth", lambda *a, **k: pytest.fail("recomputed"))
    monkeypatch.setattr(run, "measure_speed", lambda *a, **k: pytest.fail("recomputed"))
    res, lines = _run(setup, first["out"])
    again = json.loads((first["out"] / "results.json").read_text())
    assert not calls
    assert sum("reused from" in line for line in lines) == 3  # two truths and the timings
    assert sum("3 of 3 realizations reused" in line for line in lines) == 3  # truth, 2lpt, pm_few
    assert again["per_cosmology"] == first["json"]["per_cosmology"]
    assert again["covariance"] == first["json"]["covariance"] and again["summary"] == first["json"]["summary"]
    # 2 truths + covariance truth, 2lpt, pm_few + speed
    assert any(n.startswith("resumed: 6 piece(s)") for n in again["notes"])
    assert not any(n.startswith("resumed") for n in first["json"]["notes"])


def test_covariance_of_the_named_contenders_only(first):
    cov, summary = first["json"]["covariance"], first["json"]["summary"]
    assert set(cov["contenders"]) == {"2lpt", "pm_few"} and len(cov["seeds"]) == 3
    assert summary["generator"]["cov_diag_mean_abs_rel_err"] is None
    assert summary["lognormal"]["corr_frobenius"] is None
    assert summary["2lpt"]["cov_diag_mean_abs_rel_err"] > 0 and summary["pm_few"]["corr_frobenius"] >= 0


def test_a_killed_run_resumes_at_the_next_piece(setup, first, monkeypatch):
    out = setup["root"] / "killed"
    real_compare, real_make = run._compare_one, ensemble.make_contender
    made = []

    def dies_on_second(truth, *a, **k):
        if made:
            raise KeyboardInterrupt
        made.append(truth.seed)
        return real_compare(truth, *a, **k)

    monkeypatch.setattr(run, "_compare_one", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        _run(setup, out)
    assert made == [5]
    monkeypatch.setattr(run, "_compare_one", lambda truth, *a, **k: made.append(truth.seed) or
                        real_compare(truth, *a, **k))
    mocks = []

    def dies_in_covariance(name, *a, **k):  # after the truth's 3 realizations: 2lpt's first, then its second dies
        if mocks:
            raise KeyboardInterrupt
        mocks.append(name)
        return real_make(name, *a, **k)

    monkeypatch.setattr(ensemble, "make_contender", dies_in_covariance)
    with pytest.raises(KeyboardInterrupt):
        _run(setup, out)
    assert made == [5, 6] and mocks == ["2lpt"]
    monkeypatch.setattr(ensemble, "make_contender", lambda name, *a, **k: mocks.append(name) or
                        real_make(name, *a, **k))
    monkeypatch.setattr(ensemble, "simulate_truth", lambda *a, **k: pytest.fail("truth realizations recomputed"))
    res, lines = _run(setup, out)
    assert made == [5, 6] and mocks == ["2lpt", "2lpt", "2lpt", "pm_few", "pm_few", "pm_few"]
    assert any("2lpt: 1 of 3 realizations reused" in line for line in lines)
    data = json.loads((out / "results.json").read_text())
    # deterministic: the same numbers as one straight run
    assert _numbers(data["per_cosmology"]) == _numbers(first["json"]["per_cosmology"])
    assert data["covariance"] == first["json"]["covariance"]


def test_changed_inputs_are_never_mixed_in_and_fresh_starts_over(setup, first, monkeypatch):
    cfg = setup["root"] / "changed.yaml"
    cfg.write_text(CONFIG.replace("realizations: 3", "realizations: 2"))
    out = setup["root"] / "changed"
    _run(setup, out)
    res, lines = _run(setup, out, config=cfg)
    assert not any("reused" in line for line in lines)
    assert any("made with other inputs (config.covariance.realizations)" in line for line in lines)
    assert len([p for p in (out / PARTIAL_DIR).iterdir()]) == 2
    res, lines = _run(setup, out, config=cfg, fresh=True)
    assert any(line.startswith("--fresh") for line in lines) and not any("reused" in line for line in lines)
    assert len([p for p in (out / PARTIAL_DIR).iterdir()]) == 1


def test_code_hash_ignores_comments_and_docstrings_but_not_code():
    src = 'def f(x):\n    """Twice x."""\n    return 2 * x  # double\n'
    assert _code_hash(src) == _code_hash('def f(x):\n    """Two times x, in Mpc/h."""\n\n    return 2*x\n')
    assert _code_hash(src) != _code_hash('def f(x):\n    """Twice x."""\n    return 3 * x\n')
    fp = source_fingerprint()
    assert {"emulator/core/pm.py", "data_prep/simulate/run.py", "benchmarks/metrics.py"} <= set(fp)
    assert all(len(v) == 16 for v in fp.values())


def test_a_second_run_on_the_same_output_stops_at_once(setup, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    with exclusive_lock(out / "benchmark.lock", "test holds it"):
        rc = run.main(["--tier", "smoke", "--config", str(setup["cfg"]), "--out", str(out),
                       "--model", str(setup["model"])])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith(f"benchmarks: error: another benchmark run is writing {out}")
    assert not (out / "results.json").exists() and not (out / PARTIAL_DIR).exists()


def test_covariance_contenders_must_be_contenders(setup, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(CONFIG.replace("contenders: [2lpt, pm_few]}", "contenders: [2lpt, pm12]}"))
    with pytest.raises(ValueError, match="covariance.contenders must be a list of contenders"):
        load_config("smoke", cfg)
