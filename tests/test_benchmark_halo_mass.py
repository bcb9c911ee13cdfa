"""benchmarks.halo_mass: the rank-matched (abundance-matching) mass ratio against known rescalings."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from benchmarks.halo_mass import abundance_matched_ratio, main


def test_a_uniform_mass_deficit_is_recovered_in_every_bin():
    rng = np.random.default_rng(3)
    truth = 20.0 * (1.0 - rng.random(5000)) ** (-1.0 / 0.9)  # a power-law mass function above 20 particles
    gen = rng.permutation(truth / 1.1)  # every halo 10% lighter, in another order
    assert abundance_matched_ratio(truth, gen) == pytest.approx([1.1, 1.1], rel=1e-12)


def test_missing_halos_shift_ranks_and_empty_bins_say_none():
    truth = np.array([300.0, 100.0, 50.0, 40.0])
    gen = np.array([100.0, 50.0, 40.0])  # the most massive halo missing: each pair compares neighbours in rank
    low, high = abundance_matched_ratio(truth, gen)
    assert high == pytest.approx(3.0) and low == pytest.approx(np.median([100 / 50, 50 / 40]))
    assert abundance_matched_ratio([40.0, 36.0], [30.0, 20.0]) == [pytest.approx(np.median([4 / 3, 1.8])), None]


def test_a_suite_without_finished_simulations_is_a_one_line_error(tmp_path, capsys):
    cfg = {"name": "empty", "out_dir": str(tmp_path / "nothing"), "box_size": 128.0, "ngrid": 16,
           "n_cosmologies": 1, "seeds_per_cosmology": 1, "base_seed": 1, "design_seed": 0,
           "prior": {"Omega_m": [0.24, 0.40], "Omega_b": [0.040, 0.056], "h": [0.60, 0.76], "n_s": [0.92, 1.00],
                     "sigma8": [0.70, 0.90]},
           "simulation": {"z_init": 12.0, "steps": 6, "force_factor": 2, "output_redshifts": [0.0]}}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["--suite", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no finished simulation" in err[0] and "nothing" in err[0]
