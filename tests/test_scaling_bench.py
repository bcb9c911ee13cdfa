"""The speed-scaling benchmark (``benchmarks/scaling.py``): config checks, the skip rule and the derived columns."""

from __future__ import annotations

import math

import pytest
import yaml

from benchmarks.scaling import DEFAULT_CONFIG, _predicted, load_config, run_scaling, scaling_table


def _write(tmp_path, **changes):
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg.update(changes)
    path = tmp_path / "scaling.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_committed_config_is_valid_and_fixes_threads():
    cfg = load_config()
    assert int(cfg["threads"]) >= 1 and int(cfg["repeats"]) >= 3
    assert {"generator", "2lpt", "pm_few"} <= set(cfg["methods"]) and {64, 128, 256} <= set(cfg["ngrids"])


@pytest.mark.parametrize("changes, word", [({"repeats": 2}, "repeats"), ({"threads": None}, "threads"),
                                           ({"typo": 1}, "typo")])
def test_bad_configs_name_the_key(tmp_path, changes, word):
    with pytest.raises(ValueError, match=word):
        load_config(_write(tmp_path, **changes))


def test_prediction_is_n_log_n():
    prev = {"ngrid": 64, "median_seconds": 2.0}
    expect = 2.0 * 8 * math.log(128**3) / math.log(64**3)
    assert _predicted(prev, 128) == pytest.approx(expect)
    assert _predicted(None, 128) == 0.0


def test_run_measures_then_skips_what_would_exceed_the_cap(tmp_path):
    cfg = load_config(_write(tmp_path, ngrids=[16, 64], methods=["2lpt"], max_seconds=1e-4))
    res = run_scaling(cfg, log=lambda m: None)
    first, second = res["rows"]
    assert first["ngrid"] == 16 and len(first["seconds"]) == 3 and first["threads"] == 1
    assert first["median_seconds"] == pytest.approx(sorted(first["seconds"])[1])
    assert first["us_per_particle"] == pytest.approx(1e6 * first["median_seconds"] / 16**3)
    assert first["mocks_per_hour_per_core"] == pytest.approx(3600.0 / first["median_seconds"])
    assert first["peak_rss_mb"] >= first["baseline_rss_mb"] > 0
    assert second["ngrid"] == 64 and "skipped" in second  # 64^3 predicted above the 1e-4 s cap
    table = scaling_table(res)
    assert "| 2lpt | 16³ |" in table and "skipped" not in table.split("| 2lpt | 64³ |")[0] and "predicted" in table


def test_network_method_times_the_bare_whole_box_pass(monkeypatch, one_thread):
    import emulator.model.tiling as tiling
    from emulator.core.cosmology import get_preset
    from emulator.model.portable import DEFAULT_MODEL_PATH

    import benchmarks.contenders as contenders
    from benchmarks.speed import measure_speed

    calls = []
    real = tiling.periodic_forward
    monkeypatch.setattr(tiling, "periodic_forward", lambda *a: calls.append(a[1].shape) or real(*a))
    monkeypatch.setattr(contenders, "make_contender", lambda *a, **k: pytest.fail("a whole mock was made"))
    common = dict(ngrid=16, box_size=32.0, redshift=0.0, cosmology=get_preset("planck18"), simulation={},
                  pm_steps=6, repeats=3, device="cpu", threads=1, isolate=False)
    out = measure_speed(["network"], model_path=str(DEFAULT_MODEL_PATH), **common)["network"]
    assert out["method"] == "network" and out["ngrid"] == 16 and len(out["seconds"]) == 3
    assert calls == [(1, 3, 16, 16, 16)] * 4  # one warm-up and three timed passes on the unpadded box
    assert all(t > 0 for t in out["seconds"]) and out["median_seconds"] == sorted(out["seconds"])[1]
    assert measure_speed(["network"], model_path=None, **common)["network"] == {"error": "no model file"}


def test_table_states_the_generator_over_network_ratio():
    rows = [{"method": m, "ngrid": n, "median_seconds": t, "fastest_seconds": t, "us_per_particle": 1.0,
             "mocks_per_hour_per_core": 1.0, "peak_rss_mb": 10.0, "mock_rss_mb": 5.0}
            for m, n, t in [("generator", 128, 3.0), ("network", 128, 2.0), ("generator", 256, 30.0),
                            ("network", 256, 24.0), ("2lpt", 256, 1.0)]]
    table = scaling_table({"rows": rows, "environment": {"threads": 1}, "config": {"repeats": 3}})
    assert "128³ 1.50x, 256³ 1.25x" in table


def test_network_formats_agree_with_eager_and_report_their_speed():
    """channels-last is the same network: outputs equal the eager pass to float32 reassociation (the benchmark's
    accuracy column), and every timed row carries a median of three and its speed-up."""
    from benchmarks.network_formats import table, time_forms

    rows = time_forms(16, forms=("eager", "channels_last"), repeats=3, log=lambda *_: None)
    eager, last = rows
    assert "error" not in eager and "error" not in last, rows
    assert eager["max_abs_diff_over_rms"] == 0.0 and eager["speedup_vs_eager"] == 1.0
    assert 0.0 <= last["max_abs_diff_over_rms"] < 1e-4
    assert len(last["seconds"]) == 3 and last["median_seconds"] == sorted(last["seconds"])[1]
    assert "channels_last | 16³" in table(rows)


def test_network_formats_refuses_an_unknown_form_before_running():
    from benchmarks.network_formats import time_forms

    ran = []
    with pytest.raises(ValueError, match="network_formats: unknown form 'bogus'"):
        time_forms(16, forms=("eager", "bogus"), repeats=3, log=ran.append)
    assert ran == []


def test_network_formats_compares_with_eager_when_eager_is_not_run():
    from benchmarks.network_formats import table, time_forms

    (row,) = time_forms(16, forms=("channels_last",), repeats=3, log=lambda *_: None)
    assert 0.0 <= row["max_abs_diff_over_rms"] < 1e-4 and "speedup_vs_eager" not in row
    assert "| channels_last | 16³ |" in table([row]) and "| – |" in table([row])
