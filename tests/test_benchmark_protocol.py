"""Benchmark protocol details: the speed warm-up rule and the covariance reuse of the truth's own recipe."""

from __future__ import annotations

from benchmarks.config import load_config
from benchmarks.metrics import make_binning
from benchmarks.speed import measure_speed
from emulator.core.cosmology import get_preset

COSMO = get_preset("planck18")
SIM = {"z_init": 9.0, "steps": 10, "force_factor": 2}


def test_a_slow_warm_up_is_the_first_timed_mock(monkeypatch):
    """Speed protocol: a warm-up beyond WARMUP_COUNTED_SECONDS is timed as the first repeat (the truth recipe's
    mock is not run four times for three timings); a fast one stays out of the median."""
    import benchmarks.speed as speed

    common = dict(ngrid=16, box_size=64.0, redshift=0.0, cosmology=COSMO, model_path=None, simulation=SIM,
                  pm_steps=2, repeats=2, device="cpu", threads=None, isolate=False)
    fast = measure_speed(["za"], **common)["za"]
    assert not fast["warmup_counted"] and len(fast["seconds"]) == 2
    monkeypatch.setattr(speed, "WARMUP_COUNTED_SECONDS", 0.0)
    slow = measure_speed(["za"], **common)["za"]
    assert slow["warmup_counted"] and len(slow["seconds"]) == 2


def test_same_recipe_and_the_covariance_reuses_the_truths_own_realizations(monkeypatch):
    """A PM contender with the covariance truth's recipe is that truth (deterministic in recipe and seed): its
    covariance samples are the truth's, with no simulation of its own; other recipes are simulated."""
    import benchmarks.ensemble as ensemble
    from benchmarks.config import pm_settings, same_recipe

    cfg = load_config("standard")
    sim = cfg["covariance"]["simulation"]
    assert same_recipe(pm_settings(cfg, "pm12"), sim) and not same_recipe(pm_settings(cfg, "pm6"), sim)
    assert same_recipe({**sim, "refine": 1}, sim)  # an omitted setting is run_simulation's default
    assert not same_recipe({**sim, "refine": 2}, sim) and not same_recipe(None, sim)
    cfg = load_config("smoke", overrides={"contenders": ["za", "pmsame", "pmother"],
                                          "pm": {"pmsame": dict(SIM), "pmother": {**SIM, "steps": 3}},
                                          "pm_base": {}, "covariance": {"realizations": 3}})
    calls: list[str] = []
    real = ensemble.make_contender
    monkeypatch.setattr(ensemble, "make_contender", lambda name, *a, **k: calls.append(name) or real(name, *a, **k))
    b = make_binning(16, 64.0, cfg["statistics"], cfg["covariance"])
    cov = ensemble.covariance_ensemble(cfg, b, COSMO, None, dict(SIM), "cpu", lambda msg: None)
    assert calls.count("pmsame") == 0 and calls.count("pmother") == 3 and calls.count("za") == 3
    same = cov["contenders"]["pmsame"]
    assert float(same["diag_mean_abs_rel_err"]) == 0.0 and same["corr_frobenius"] == 0.0
    assert float(cov["contenders"]["pmother"]["diag_mean_abs_rel_err"]) > 0.0
