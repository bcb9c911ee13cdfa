"""benchmarks.alternating_speed: models and PM settings timed in turn in one process."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.alternating_speed import main, time_alternating
from benchmarks.speed import contender_kwargs
from emulator.core.cosmology import Cosmology

REPO = Path(__file__).resolve().parents[1]
STANDARD = REPO / "benchmarks" / "results" / "standard"  # has pm_few, pm6, pm12, pm20_3x


def test_every_run_is_timed_each_round_and_a_pm_step_costs():
    """One time per round per run, all positive; PM with 8 steps costs more than with 2 on the same grid."""
    cosmo = Cosmology(0.32, 0.048, 0.68, 0.96, 0.8)
    pms = {"pm2": {"steps": 2, "force_factor": 1, "z_init": 12.0},
           "pm8": {"steps": 8, "force_factor": 1, "z_init": 12.0}}
    specs = {"2lpt-base model": {"method": "generator", "model_path": "default"},
             "pm2": {"method": "pm2", "pm": pms}, "pm8": {"method": "pm8", "pm": pms}}
    runs = {lab: (sp["method"], contender_kwargs(sp, cosmo, torch.device("cpu"))) for lab, sp in specs.items()}
    assert runs["pm8"][1]["pm"] == pms["pm8"] and runs["2lpt-base model"][1]["model"].cell_size == 2.0
    times = time_alternating(runs, cosmo, 0.0, 64.0, 32, repeats=3)
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
