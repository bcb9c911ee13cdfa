"""benchmarks.alternating_speed: models and PM settings timed in turn in one process."""

from __future__ import annotations

from pathlib import Path

from benchmarks.alternating_speed import main, time_alternating
from emulator.core.cosmology import Cosmology
from emulator.model.portable import load_model

REPO = Path(__file__).resolve().parents[1]
STANDARD = REPO / "benchmarks" / "results" / "standard"  # has pm_few, pm6, pm12, pm20_3x


def test_every_run_is_timed_each_round_and_a_pm_step_costs():
    """One time per round per run, all positive; PM with 8 steps costs more than with 2 on the same grid."""
    runs = {"2lpt-base model": ("generator", {"model": load_model("default", device="cpu")}),
            "pm2": ("pm2", {"pm": {"steps": 2, "force_factor": 1, "z_init": 12.0}}),
            "pm8": ("pm8", {"pm": {"steps": 8, "force_factor": 1, "z_init": 12.0}})}
    times = time_alternating(runs, Cosmology(0.32, 0.048, 0.68, 0.96, 0.8), 0.0, 64.0, 32, repeats=3)
    assert list(times) == list(runs) and all(len(t) == 3 and min(t) > 0 for t in times.values())
    assert min(times["pm8"]) > max(times["pm2"])


def test_cli_prints_the_table_and_the_frontier_flags(capsys):
    assert main(["--report", str(STANDARD), "--model", "old default=default", "--pm", "pm_few", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| old default |" in out and "| pm_few |" in out
    assert 'frontier_compare flags: --seconds "old default=' in out and '--seconds "pm_few=' in out


def test_cli_bad_input_is_one_line(capsys, tmp_path):
    for argv in (["--report", str(STANDARD), "--pm", "pm99"], ["--report", str(STANDARD), "--model", "nolabel"],
                 ["--report", str(STANDARD)], ["--report", str(tmp_path), "--pm", "pm6"],
                 ["--report", str(STANDARD), "--pm", "pm6", "--repeats", "0"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, argv
