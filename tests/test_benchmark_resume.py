"""Resumable benchmark runs (benchmarks.resume): a rerun reuses what a run finished and gives the same numbers, a
killed run resumes at the next piece, changed inputs or code are never mixed in, and one run holds an output folder.

Sizes: 16^3 particles, two truths, three covariance realizations (a few seconds a run).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import benchmarks.ensemble as ensemble
import benchmarks.resume as resume
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
def module_one_thread():
    """One torch thread for the module's fixtures too: pytest sets up a module fixture before the tests' function
    fixtures (``one_thread``), and on some hosts (measured: an Intel Xeon with AVX-512, not the AMD EPYC ones) the
    same run on two threads and on one differs in the 7th digit (truth P(k) 2614.7637 / 2614.7641)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def first(setup, module_one_thread):
    out = setup["root"] / "out"
    res, lines = _run(setup, out)
    return {"out": out, "res": res, "lines": lines, "json": json.loads((out / "results.json").read_text())}


def test_a_rerun_reuses_every_piece_and_gives_the_same_numbers(setup, first, monkeypatch):
    calls = []
    monkeypatch.setattr(run, "_compare_one", lambda *a, **k: calls.append(a) or pytest.fail("recomputed"))
    monkeypatch.setattr(ensemble, "make_contender", lambda *a, **k: pytest.fail("recomputed"))
    monkeypatch.setattr(ensemble, "simulate_truth", lambda *a, **k: pytest.fail("recomputed"))
    monkeypatch.setattr(run, "measure_speed", lambda *a, **k: pytest.fail("recomputed"))
    monkeypatch.setattr(run, "simulate_truth", lambda *a, **k: pytest.fail("truth simulated"))
    monkeypatch.setattr(run, "LinearPower", lambda *a, **k: pytest.fail("CAMB called"))
    res, lines = _run(setup, first["out"])
    again = json.loads((first["out"] / "results.json").read_text())
    assert not calls
    assert sum("reused from" in line for line in lines) == 3  # two truths and the one timed method
    assert sum("3 of 3 realizations reused" in line for line in lines) == 3  # truth, 2lpt, pm_few
    assert again["per_cosmology"] == first["json"]["per_cosmology"]
    assert again["covariance"] == first["json"]["covariance"] and again["summary"] == first["json"]["summary"]
    # 2 truths + covariance truth, 2lpt, pm_few + speed
    assert any(n.startswith("resumed: 6 piece(s)") for n in again["notes"])
    assert again["resumed"]["pieces"] == 6 and again["resumed"]["seconds"] > 0
    assert list(again["resumed"]["commits"].values()) == [6]
    assert first["json"]["resumed"] is None and not any(n.startswith("resumed") for n in first["json"]["notes"])


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


def test_a_changed_input_recomputes_only_the_pieces_that_depend_on_it_and_fresh_starts_over(setup, first):
    out = setup["root"] / "changed"
    _run(setup, out)
    cfg = setup["root"] / "changed.yaml"
    cfg.write_text(CONFIG.replace("realizations: 3", "realizations: 2"))
    res, lines = _run(setup, out, config=cfg)
    assert sum("reused from" in line for line in lines) == 3  # the truths' comparisons and the timings stay
    assert not any("realizations reused" in line for line in lines)
    assert any("made with other inputs (scope.covariance.realizations) are not used" in line for line in lines)
    assert len(res["covariance"]["seeds"]) == 2
    res, lines = _run(setup, out, config=cfg, fresh=True)
    assert any(line.startswith("--fresh") for line in lines) and not any("reused" in line for line in lines)
    assert len(list((out / PARTIAL_DIR).glob("cosmology_000.*.pt"))) == 1


def test_other_code_or_another_model_reuses_nothing(setup, first, monkeypatch):
    out = setup["root"] / "code"
    _run(setup, out)
    real = resume.source_fingerprint
    monkeypatch.setattr(resume, "source_fingerprint", lambda: {**real(), "emulator/core/pm.py": "0" * 16})
    res, lines = _run(setup, out)
    assert not any("reused" in line for line in lines)
    assert any("(code.emulator/core/pm.py) are not used" in line for line in lines)
    monkeypatch.undo()
    other = write_identity_model(setup["root"] / "other.pt", 8.0, DEFAULTS["model"]["fallback_prior"], (0.0, 3.0))
    lines = []
    run.run_tier("smoke", config=setup["cfg"], out=out, model=other, log=lines.append)
    assert not any("reused" in line for line in lines)
    assert any("model_sha256" in line and "not used" in line for line in lines)


def test_an_unreadable_piece_is_recomputed(setup, first):
    out = setup["root"] / "garbled"
    _run(setup, out)
    (piece,) = (out / PARTIAL_DIR).glob("cosmology_001.*.pt")
    piece.write_bytes(b"not a torch file")
    res, lines = _run(setup, out)
    assert any(f"piece {piece} unreadable" in line for line in lines)
    assert sum("reused from" in line for line in lines) == 2  # the other truth and the timing
    data = json.loads((out / "results.json").read_text())
    assert _numbers(data["per_cosmology"]) == _numbers(first["json"]["per_cosmology"])


def test_a_piece_holds_only_what_loads_with_weights_only(tmp_path):
    store = resume.PartialStore(tmp_path, {"common": 1}, lambda m: None)
    with pytest.raises(TypeError, match=r"piece p.halos\[1\]: float64 cannot be stored"):
        store.put("p", {}, {"halos": [1.0, np.float64(2.0)]}, seconds=1.0)
    with pytest.raises(TypeError, match="piece p.a: ndarray"):
        store.put("p", {}, {"a": np.zeros(2)}, seconds=1.0)
    store.put("p", {"x": 1}, {"a": torch.ones(2), "b": [None, "s", 3, True]}, seconds=1.5)
    assert store.get("p", {"x": 2}) is None and store.get("p", {"x": 1})["b"] == [None, "s", 3, True]
    summary = store.summary()
    assert summary["pieces"] == 1 and summary["seconds"] == 1.5 and list(summary["commits"].values()) == [1]


def test_every_module_a_benchmark_imports_is_in_the_code_hash():
    code = ("import sys, benchmarks.run, benchmarks.suite_truth, benchmarks.ensemble, benchmarks.speed\n"
            "print(' '.join(sorted(m.__file__ for n, m in sys.modules.items()\n"
            "      if n.split('.')[0] in ('emulator', 'data_prep', 'benchmarks'))))")
    files = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=resume.ROOT).stdout.split()
    covered = set(resume.source_fingerprint())
    exempt = {"benchmarks/env.py", "benchmarks/resume.py", "data_prep/fingerprint.py"}  # key, device, JSON only
    missed = [rel for rel in (Path(f).relative_to(resume.ROOT).as_posix() for f in files)
              if rel not in covered and rel not in exempt and not rel.endswith("__init__.py")]
    assert len(files) > 30 and not missed


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
    with pytest.raises(ValueError, match="covariance.contenders must be a non-empty list of contenders"):
        load_config("smoke", cfg)
    cfg.write_text(CONFIG.replace("contenders: [2lpt, pm_few]}", "contenders: []}"))
    with pytest.raises(ValueError, match="covariance.contenders must be a non-empty list"):
        load_config("smoke", cfg)


def test_covariance_only_at_the_named_redshifts(setup, tmp_path):
    cfg = tmp_path / "cov_z0.yaml"
    cfg.write_text(CONFIG.replace("contenders: [2lpt, pm_few]}", "contenders: [2lpt, pm_few], redshifts: [0.0]}")
                   .replace("report: {figures: false}", "report: {figures: true}"))
    res, lines = _run(setup, tmp_path / "out", config=cfg)  # the run is at z = 1
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["covariance"] is None and not any(line.startswith("covariance") for line in lines)
    assert all(s["cov_diag_mean_abs_rel_err"] is None for s in data["summary"].values())
    assert any(n.startswith("covariance: not measured at z = 1 (covariance.redshifts = [0.0])") for n in data["notes"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "covariance not measured at this redshift" in report and "covariance.png" not in report
    assert not (tmp_path / "out" / "figures" / "covariance.png").exists()
    cfg.write_text(CONFIG.replace("contenders: [2lpt, pm_few]}", "contenders: [2lpt], redshifts: []}"))
    with pytest.raises(ValueError, match="covariance.redshifts must be null or a non-empty list"):
        load_config("smoke", cfg)
