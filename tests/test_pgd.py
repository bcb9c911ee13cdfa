"""PGD sharpening: the shift against its linear-theory form and conservation laws, the per-model file and its
checks, generation applying it (or not) and recording it, the halo-mass calibration bound to it, and the fit
recovering a known strength."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from benchmarks.pgd import fit_alpha, fit_pgd, fit_sigma8_term, grade, log_ratios
from benchmarks.report_model import pgd_words
from emulator.api import generate_mocks
from emulator.core.cosmology import Cosmology
from emulator.core.lpt import lagrangian_grid
from emulator.core.mesh import wrap_positions
from emulator.core.pgd import pgd_kernel, pgd_shift
from emulator.core.provenance import sha256_file
from emulator.mocks.io import read_catalog
from emulator.model.emulate import emulate_fields
from emulator.model.halo_calibration import HaloMassCalibration, calibration_path
from emulator.model.pgd_correction import PGDCorrection, pgd_path, read_pgd, read_pgd_file
from emulator.model.portable import load_model
from tests.helpers_model import write_small_model

COSMO = Cosmology(0.3, 0.048, 0.68, 0.965, 0.8)


def _cic_window(k: float, cell: float) -> float:
    x = k * cell / 2.0
    return (math.sin(x) / x) ** 2


def test_shift_of_a_plane_wave_matches_linear_theory():
    """A lattice displaced by psi = -(A/k0) sin(k0 q) along x has delta = A cos(k0 x) to first order; the PGD shift
    is then -alpha O(k0) A sin(k0 x) / k0 (O the band filter), times the CIC window of paint and of readout. The
    lattice sits between mesh points (half a cell off): CIC then paints the centred difference of psi, linear in
    psi (on the mesh points it would paint one-sided differences, |psi| terms)."""
    n, box, amp, alpha, kl, ks = 32, 64.0, 0.01, 0.3, 0.05, 0.8
    k0 = 2 * math.pi / box * 2
    q = lagrangian_grid(n, box, dtype=torch.float64) + box / n / 2
    pos = q.clone()
    pos[:, 0] -= amp / k0 * torch.sin(k0 * q[:, 0])
    shift = pgd_shift(wrap_positions(pos, box), n, box, alpha, kl, ks)
    filt = math.exp(-((kl / k0) ** 2) - (k0 / ks) ** 4) * _cic_window(k0, box / n) ** 2
    expected = -alpha * filt * amp * torch.sin(k0 * pos[:, 0]) / k0
    np.testing.assert_allclose(shift[:, 0].numpy(), expected.numpy(), atol=1e-3 * float(expected.abs().max()))
    assert float(shift[:, 1:].abs().max()) < 1e-6 * float(expected.abs().max()) + 1e-12


def test_shift_conserves_momentum_vanishes_on_a_lattice_and_pulls_towards_a_clump():
    gen = torch.Generator().manual_seed(1)
    box, n = 64.0, 32
    clump = torch.tensor([20.0, 30.0, 40.0], dtype=torch.float64)
    pos = torch.cat([torch.rand(20000, 3, generator=gen, dtype=torch.float64) * box,
                     clump + 2.0 * torch.randn(5000, 3, generator=gen, dtype=torch.float64)]) % box
    shift = pgd_shift(pos, n, box, 0.01, 0.1, 2.0)
    assert float(shift.sum(0).abs().max()) < 1e-9 * float(shift.abs().sum())  # equal masses: sum of shifts = 0
    near = ((pos - clump).norm(dim=1) > 2.0) & ((pos - clump).norm(dim=1) < 6.0)
    radial = ((pos - clump) * shift).sum(1)[near]
    assert float((radial < 0).double().mean()) > 0.95  # towards the clump
    lattice = lagrangian_grid(n, box, dtype=torch.float64)
    assert float(pgd_shift(lattice, n, box, 0.01, 0.1, 2.0).abs().max()) < 1e-12
    assert torch.equal(pgd_shift(pos, n, box, 0.0, 0.1, 2.0), torch.zeros_like(pos))
    torch.testing.assert_close(pgd_shift(pos, n, box, 0.02, 0.1, 2.0), 2 * shift)


def test_kernel_and_shift_refuse_bad_parameters():
    assert float(pgd_kernel(8, 16.0, 0.1, 1.0)[0, 0, 0]) == 0.0
    with pytest.raises(ValueError, match="k_short"):
        pgd_kernel(8, 16.0, 0.1, 0.0)
    with pytest.raises(ValueError, match="k_long"):
        pgd_kernel(8, 16.0, float("nan"), 1.0)
    with pytest.raises(ValueError, match="alpha"):
        pgd_shift(torch.zeros(4, 3), 8, 16.0, float("inf"), 0.1, 1.0)


def _pgd(alpha=(0.01, 0.0), redshifts=(0.0, 1.0), sha="x" * 64):
    return PGDCorrection(sha256=sha, redshifts=np.array(redshifts), alpha=np.array(alpha), k_long=0.6, k_short=1.6,
                         source={"suite": "s"})


def test_alpha_interpolates_and_bad_files_are_refused(tmp_path, capsys):
    p = _pgd()
    assert p.alpha_at(0.0) == 0.01 and p.alpha_at(0.5) == pytest.approx(0.005) and p.alpha_at(3.0) == 0.0
    for kw, match in ((dict(alpha=(0.01, -0.1)), "must be in"), (dict(alpha=(2.0, 0.0)), "must be in"),
                      (dict(alpha=(0.01,)), "one value"), (dict(redshifts=(1.0, 0.0)), "ascending")):
        with pytest.raises(ValueError, match=match):
            _pgd(**kw)
    model = tmp_path / "m.pt"
    model.write_bytes(b"model")
    assert read_pgd(model, "b" * 64) is None and capsys.readouterr().err == ""  # none: no warning
    pgd_path(model).write_text(json.dumps(_pgd(sha="b" * 64).to_dict()))
    assert read_pgd(model, "b" * 64).alpha_at(0.0) == 0.01
    assert read_pgd(model, "a" * 64) is None and "stale" in capsys.readouterr().err
    pgd_path(model).write_text(json.dumps({**_pgd(sha="b" * 64).to_dict(), "format_version": 3}))
    assert read_pgd(model, "b" * 64) is None and "format_version 3" in capsys.readouterr().err
    pgd_path(model).write_text(json.dumps({**_pgd(sha="b" * 64).to_dict(), "alpha": [0.01, -1.0]}))
    assert read_pgd(model, "b" * 64) is None and "unusable" in capsys.readouterr().err
    # format 2 is the sigma8 term: without one (or format 1 with one) the file is refused, never half-read
    for bad in ({**_pgd(sha="b" * 64).to_dict(), "format_version": 2},
                {**_pgd8(sha="b" * 64).to_dict(), "format_version": 1}):
        pgd_path(model).write_text(json.dumps(bad))
        assert read_pgd(model, "b" * 64) is None and "sigma8_term" in capsys.readouterr().err


def _pgd8(slope=(0.05, 0.0), sha="x" * 64):
    return PGDCorrection(sha256=sha, redshifts=np.array([0.0, 1.0]), alpha=np.array([0.01, 0.0]), k_long=0.6,
                         k_short=1.6, sigma8_slope=np.array(slope), sigma8_pivot=0.8, sigma8_range=(0.7, 0.9))


def test_a_sigma8_term_is_linear_held_at_the_training_range_never_negative_and_read_back(tmp_path):
    p = _pgd8()
    assert p.alpha_at(0.0, 0.8) == pytest.approx(0.01) and p.alpha_at(0.0, 0.9) == pytest.approx(0.015)
    assert p.alpha_at(0.0, 0.7) == pytest.approx(0.005) and p.alpha_at(0.0, 0.6) == pytest.approx(0.005)  # held
    assert p.alpha_at(0.5, 0.9) == pytest.approx(0.0075) and p.alpha_at(1.0, 0.9) == 0.0
    assert _pgd8(slope=(0.5, 0.0)).alpha_at(0.0, 0.7) == 0.0  # 0.01 - 0.05: never a push off the peaks
    with pytest.raises(ValueError, match="sigma8"):  # a cosmology-dependent strength needs the cosmology
        p.alpha_at(0.0)
    for kw, match in ((dict(slope=(0.05,)), "one per redshift"), (dict(slope=(20.0, 0.0)), "more than")):
        with pytest.raises(ValueError, match=match):
            _pgd8(**kw)
    model = tmp_path / "m.pt"
    model.write_bytes(b"model")
    pgd_path(model).write_text(json.dumps(_pgd8(sha="b" * 64).to_dict()))
    back = read_pgd(model, "b" * 64)
    assert back.to_dict()["format_version"] == 2 and back.alpha_at(0.0, 0.85) == pytest.approx(0.0125)
    assert back.digest() == _pgd8(sha="b" * 64).digest() != _pgd(sha="b" * 64).digest()  # the term: identity
    assert json.loads(back.attr())["sigma8_term"]["slope"] == [0.05, 0.0]
    assert "d alpha / d sigma8 +0.05" in back.describe() and "d alpha / d sigma8 +0.05" in pgd_words(
        {"pgd": back.attr()})
    from benchmarks.model_card import _particles  # the card's column: the strengths its cosmologies got

    run = {"model": {"pgd": back.attr()}, "setup": {"redshift": 0.0},
           "per_cosmology": [{"cosmology": {"sigma8": v}} for v in (0.7, 0.85, 0.95)]}
    assert _particles(run) == "PGD alpha=0.005-0.015 (with sigma8)"
    assert _particles({**run, "setup": {"redshift": 1.0}}) == "network"
    assert _particles({**run, "model": {"pgd": _pgd().attr()}}) == "PGD alpha=0.01"


def test_a_candidate_pgd_file_is_read_from_any_path_and_checked_against_the_model(tmp_path, capsys):
    from benchmarks.pgd import main

    good, bad = tmp_path / "cand.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_pgd8(sha="c" * 64).to_dict()))
    bad.write_text(json.dumps({"format": "something else"}))
    assert read_pgd_file(good).sigma8_slope.tolist() == [0.05, 0.0]
    with pytest.raises(ValueError, match="bad.json: unusable PGD file"):
        read_pgd_file(bad)
    args = ["--suite", "configs/suite_converged_test.yaml", "--grade", "--pgd", str(good)]
    assert main(args) == 2  # fitted for other model bytes: refused before any simulation is read
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was fitted for model sha256 cccccccccccccccc" in err


def test_the_sigma8_term_fit_recovers_a_known_slope():
    rng = np.random.default_rng(2)
    s8 = rng.uniform(0.7, 0.9, 60)
    a, b, se = fit_sigma8_term(s8, 0.008 + 0.04 * (s8 - 0.8) + rng.normal(0, 0.002, s8.size), 0.8)
    assert a == pytest.approx(0.008, abs=1e-3) and b == pytest.approx(0.04, abs=3 * se) and se < 0.01
    with pytest.raises(ValueError, match="two sigma8"):
        fit_sigma8_term([0.8] * 5, [0.01] * 5, 0.8)


@pytest.fixture(scope="module")
def pgd_model(tmp_path_factory):
    """A small random-weight model (cell 4 Mpc/h) with a strong PGD file beside it."""
    path = write_small_model(tmp_path_factory.mktemp("pgdmodel") / "m.pt", COSMO)
    pgd_path(path).write_text(json.dumps(_pgd(alpha=(0.05, 0.0), sha=sha256_file(path)).to_dict()))
    return path


def test_generation_sharpens_positions_only_and_records_it(pgd_model, tmp_path):
    model = load_model(pgd_model)
    raw = emulate_fields(COSMO, 0.0, 128.0, 5, model=model, pgd=False)
    sharp = emulate_fields(COSMO, 0.0, 128.0, 5, model=model)
    assert raw.pgd_alpha == 0.0 and sharp.pgd_alpha == 0.05
    expected = wrap_positions(raw.positions + pgd_shift(raw.positions, 32, 128.0, 0.05, 0.6, 1.6), 128.0)
    d = (sharp.positions - expected + 64.0) % 128.0 - 64.0
    assert float(d.abs().max()) < 1e-4
    assert torch.equal(sharp.velocities, raw.velocities)
    q = lagrangian_grid(32, 128.0)
    moved = (sharp.positions - q - sharp.displacement.flatten(1).T + 64.0) % 128.0 - 64.0  # x = q + displacement
    assert float(moved.abs().max()) < 1e-3
    assert emulate_fields(COSMO, 1.0, 128.0, 5, model=model).pgd_alpha == 0.0  # alpha(z = 1) = 0
    kw = dict(box_size=128.0, model=pgd_model, seeds=[3], progress=False)
    (on,) = generate_mocks(COSMO, out_dir=tmp_path / "on", **kw)
    (off,) = generate_mocks(COSMO, out_dir=tmp_path / "off", pgd=False, **kw)
    a, b = read_catalog(on, "data"), read_catalog(off, "data")
    assert json.loads(a.attrs["pgd"])["alpha"] == [0.05, 0.0] and a.attrs["pgd_sha256"] == model.pgd.digest()
    assert a.attrs["pgd_alpha"] == 0.05 and b.attrs["pgd_alpha"] == 0.0
    assert b.attrs["pgd"] == "none" and b.attrs["pgd_sha256"] == "none"
    assert not np.allclose(a["Position"], b["Position"])
    with pytest.raises(ValueError, match="pgd_sha256"):  # the same folder with the sharpening toggled: other files
        generate_mocks(COSMO, out_dir=tmp_path / "on", pgd=False, **kw)


def test_generation_applies_the_strength_of_its_cosmologys_sigma8(pgd_model, tmp_path):
    path = tmp_path / "m.pt"
    shutil.copy(pgd_model, path)
    pgd_path(path).write_text(json.dumps(_pgd8(slope=(0.2, 0.0), sha=sha256_file(path)).to_dict()))
    model = load_model(path)
    for s8, want in ((0.7, 0.0), (0.85, 0.02), (0.95, 0.03)):  # 0.01 + 0.2 (sigma8 - 0.8), held at 0.9, >= 0
        cosmo = Cosmology(0.3, 0.048, 0.68, 0.965, s8)
        assert emulate_fields(cosmo, 0.0, 128.0, 5, model=model, allow_extrapolation=True).pgd_alpha == \
            pytest.approx(want)


def test_a_streamed_box_is_refused_before_any_file_where_the_sharpening_acts(pgd_model, tmp_path, monkeypatch):
    monkeypatch.setattr("emulator.mocks.memory_model.IN_MEMORY_BYTES_PER_PARTICLE", 4e4)  # force streaming at 32^3
    kw = dict(box_size=128.0, model=pgd_model, seeds=[3], progress=False, max_memory=1.0)
    with pytest.raises(ValueError, match="PGD sharpening at z = 0"):
        generate_mocks(COSMO, out_dir=tmp_path / "a", **kw)
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())
    (p,) = generate_mocks(COSMO, out_dir=tmp_path / "b", pgd=False, **kw)  # without it the box streams
    assert read_catalog(p, "data").attrs["pgd"] == "none"


def test_a_halo_calibration_counts_only_with_the_pgd_it_was_fitted_on(pgd_model, tmp_path, capsys):
    path = tmp_path / "m.pt"
    shutil.copy(pgd_model, path)
    shutil.copy(pgd_path(pgd_model), pgd_path(path))
    sha = sha256_file(path)
    pgd = read_pgd(path, sha)

    def cal(pgd_sha):
        return HaloMassCalibration(sha256=sha, redshifts=np.array([0.0]), members=np.array([10.0, 100.0]),
                                   factor=np.array([[1.1, 1.1]]), linking_length=0.2, pgd_sha256=pgd_sha)

    calibration_path(path).write_text(json.dumps(cal(pgd.digest()).to_dict()))
    assert load_model(path).halo_calibration is not None
    kw = dict(box_size=128.0, model=path, seeds=[3], progress=False, tracer="halos", min_members=8)
    with pytest.warns(UserWarning, match="FoF masses stay uncalibrated"):  # --no-pgd: particles it was not fitted on
        (raw,) = generate_mocks(COSMO, out_dir=tmp_path / "raw", pgd=False, **kw)
    c = read_catalog(raw, "data")
    assert c.attrs["halo_mass_calibration"] == "none"
    np.testing.assert_allclose(c["Mass"], c["Length"] * c.attrs["particle_mass"])
    calibration_path(path).write_text(json.dumps(cal("none").to_dict()))  # fitted without sharpening
    assert load_model(path).halo_calibration is None and "PGD" in capsys.readouterr().err


def test_fit_recovers_a_known_strength():
    """Truth = the generator's particles sharpened with alpha = 0.02: the fit finds that alpha back."""
    box, n = 128.0, 32
    snaps = []
    for seed in (1, 2):
        gen = emulate_fields(COSMO, 0.0, box, seed, method="2lpt", ngrid=n).positions
        truth = wrap_positions(gen + pgd_shift(gen, n, box, 0.02, 0.3, 1.0), box)
        from benchmarks.pgd import _power  # the benchmark's estimator

        k = (np.arange(n // 2) + 1) * 2 * np.pi / box
        snaps.append({"sim_id": f"s{seed}", "redshift": 0.0, "n": n, "box": box, "k": k,
                      "p_truth": _power(truth, n, box).numpy(), "positions": gen})
    alpha, rms, rms0 = fit_alpha(snaps, 0.3, 1.0)
    assert alpha == pytest.approx(0.02, abs=1e-3) and rms < 0.1 * rms0
    graded = grade(snaps, PGDCorrection(
        sha256="x" * 64, redshifts=np.array([0.0]), alpha=np.array([alpha]), k_long=0.3, k_short=1.0))["0"]
    assert graded["snapshots"] == 2 and graded["with"]["worst"] < 0.1 * graded["without"]["worst"]
    assert graded["without"]["mean_at_kmax"] < 0  # the unsharpened particles lack small-scale power


def test_the_fit_with_a_sigma8_term_finds_each_snapshots_strength():
    """Truths sharpened with alpha = 0.012 + 0.1 (sigma8 - 0.8): the fitted term brings each snapshot back."""
    from benchmarks.pgd import _power

    box, n, snaps = 64.0, 16, []
    for seed, s8 in ((1, 0.7), (2, 0.8), (3, 0.9)):
        cosmo = Cosmology(0.3, 0.048, 0.68, 0.965, s8)
        gen = emulate_fields(cosmo, 0.0, box, seed, method="2lpt", ngrid=n).positions
        truth = wrap_positions(gen + pgd_shift(gen, n, box, 0.012 + 0.1 * (s8 - 0.8), 0.3, 1.0), box)
        snaps.append({"sim_id": f"s{seed}", "redshift": 0.0, "sigma8": s8, "n": n, "box": box,
                      "k": (np.arange(n // 2) + 1) * 2 * np.pi / box, "p_truth": _power(truth, n, box).numpy(),
                      "positions": gen})
    pgd = fit_pgd(snaps, "x" * 64, 0.3, 1.0, sigma8_term=True, log=lambda m: None)
    assert pgd.sigma8_pivot == pytest.approx(0.8) and pgd.sigma8_range == (0.7, 0.9)
    assert pgd.alpha[0] == pytest.approx(0.012, abs=1.5e-3) and pgd.sigma8_slope[0] == pytest.approx(0.1, abs=0.015)
    fit = pgd.source["fit"]["0"]
    assert fit["rms_ln_ratio"] < 0.5 * fit["rms_ln_ratio_one_alpha"]  # one strength cannot fit all three
    assert fit["own_alpha_at_bounds"] == 0
    per_snapshot = log_ratios(snaps, [pgd.alpha_at(0.0, s["sigma8"]) for s in snaps], 0.3, 1.0)
    graded = grade(snaps, pgd)["0"]  # grade uses each snapshot's own sigma8
    sel = snaps[0]["k"] <= 0.5 * np.pi * n / box + 1e-9
    assert graded["with"]["worst"] == pytest.approx(float(np.abs(np.expm1(per_snapshot[:, sel])).max()))


def test_report_words_say_how_the_particles_were_graded():
    assert pgd_words({}) == "" and "no PGD" in pgd_words({"pgd": "none"})
    words = pgd_words({"pgd": _pgd().attr()})
    assert "PGD-sharpened" in words and "0.01 at z = 0" in words and "0.6-1.6 h/Mpc" in words


@pytest.mark.parametrize("name, gain", [("hybrid_pm4", 0.6), ("hybrid_cola4", 0.65)])
def test_the_shipped_pgd_is_for_the_shipped_model_and_fitted_on_training_simulations(capsys, name, gain):
    """Each embedded PGD file: for its model's bytes, fitted on the training suite only, lowering the training rms
    of ln(P/P_truth) at z = 0 by the measured factor (0.0336 -> 0.0157 for hybrid_pm4, 0.0212 -> 0.0131 for
    hybrid_cola4), with the model's halo-mass calibration fitted on the sharpened particles (else not applied)."""
    from emulator.cli import main
    from emulator.model.header import MODELS_DIR

    model = MODELS_DIR / f"{name}.pt"
    pgd = read_pgd(model, sha256_file(model))
    assert pgd is not None and list(pgd.redshifts) == [0.0, 0.5, 1.0, 2.0] and pgd.alpha[0] > 0
    assert pgd.source["suite"] == "configs/suite_converged.yaml"  # the model's training suite, never a test suite
    assert f"--fit emulator/models/{name}.pgd.json" in pgd.source["command"]
    fit = pgd.source["fit"]["0"]
    assert fit["rms_ln_ratio"] < gain * fit["rms_ln_ratio_without"]
    assert load_model(model).halo_calibration is not None  # the shipped table was fitted with this sharpening
    assert main(["info", "--model", name]) == 0
    assert "PGD sharpening (k_long = 0.6" in capsys.readouterr().out
