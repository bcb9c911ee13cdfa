"""Small-scale velocity dispersion: the density at the particles and the binned moments against direct sums, the
noise's per-density variance against the table it was drawn from (chi-square), its seed stream, the per-model file
and its checks, generation adding it (or not) and recording it, and the fit recovering a known dispersion law."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from benchmarks.report_model import vdisp_words
from benchmarks.velocity_dispersion import fit_vdisp
from emulator.api import generate_mocks
from emulator.core.cosmology import Cosmology
from emulator.core.lpt import lagrangian_grid
from emulator.core.mesh import paint
from emulator.core.provenance import sha256_file
from emulator.core.velocity_noise import (add_velocity_noise, binned_second_moments, interpolate_sigma,
                                          log_density_at_particles, noise_seed)
from emulator.mocks.io import read_catalog
from emulator.model.emulate import emulate_fields
from emulator.model.portable import load_model
from emulator.model.velocity_dispersion import (VelocityDispersion, read_vdisp, read_vdisp_file, vdisp_path,
                                                velocity_scale)
from tests.helpers_model import write_small_model

COSMO = Cosmology(0.3, 0.048, 0.68, 0.965, 0.8)


def _table(sha="x" * 64, log_sigma=((-0.5, 0.5), (-1.0, 0.0)), slopes=None, params=()):
    return VelocityDispersion(sha256=sha, redshifts=[0.0, 1.0], log_density=[-1.0, 2.0], log_sigma=log_sigma,
                              parameters=params, slopes=slopes, pivot={p: 0.8 for p in params},
                              ranges={p: (0.7, 0.9) for p in params}, source={"suite": "s"})


def test_density_on_a_lattice_is_mean_and_follows_a_clump():
    n, box = 16, 64.0
    grid = lagrangian_grid(n, box)
    assert float(log_density_at_particles(grid, n, box).abs().max()) < 1e-5  # one particle per cell: 1 + delta = 1
    clumped = grid.clone()
    clumped[: n**3 // 8] = torch.tensor([32.0, 32.0, 32.0])  # on a mesh point: CIC reads back its value
    lnd = log_density_at_particles(clumped, n, box)
    mesh = paint(clumped, n, box) * (n**3 / clumped.shape[0])
    assert float(lnd[0]) == pytest.approx(math.log(float(mesh.max())), rel=1e-5)
    assert float(lnd[0]) > math.log(100.0)


def test_binned_moments_equal_direct_sums():
    gen = torch.Generator().manual_seed(1)
    lnd = torch.randn(5000, generator=gen) * 2
    res = torch.randn(5000, 3, generator=gen) * 30
    edges = np.array([-1.0, 0.0, 0.5, 3.0])
    counts, sums = binned_second_moments(lnd, res, edges)
    b = np.clip(np.searchsorted(edges[1:-1], lnd.numpy(), side="right"), 0, 2)  # ends take what lies beyond
    sq = (res.double() ** 2).mean(dim=1).numpy()
    for i in range(3):
        assert counts[i] == np.sum(b == i) and sums[i] == pytest.approx(sq[b == i].sum(), rel=1e-10)
    assert counts.sum() == 5000


def test_sigma_interpolates_linearly_and_holds_at_the_ends():
    x = torch.tensor([-5.0, 0.0, 0.5, 1.0, 1.5, 9.0])
    out = interpolate_sigma(x, [0.0, 1.0], [10.0, 30.0])
    assert out.tolist() == pytest.approx([10.0, 10.0, 20.0, 30.0, 30.0, 30.0])
    assert interpolate_sigma(x, [0.3], [7.0]).tolist() == [7.0] * 6


def test_noise_has_the_tables_variance_per_density_and_is_a_function_of_the_seed(monkeypatch):
    n, box = 32, 64.0
    gen = torch.Generator().manual_seed(2)
    pos = torch.rand(n**3, 3, generator=gen) * box  # Poisson particles: densities from empty to several times mean
    lnd = log_density_at_particles(pos, n, box)
    centres, sigma = [-1.0, 0.0, 1.0], [10.0, 40.0, 200.0]
    v = add_velocity_noise(pos, torch.zeros(n**3, 3), n, box, centres, sigma, seed=7)
    want = interpolate_sigma(lnd, centres, sigma)
    z = (v / want[:, None]).double()  # unit normal if the draw has the table's dispersion at each particle
    cuts = [-9.0, *torch.quantile(lnd, torch.tensor([1 / 3, 2 / 3])).tolist(), 9.0]  # tertiles of the density
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        sel = (lnd >= lo) & (lnd < hi)
        m = int(sel.sum()) * 3
        assert m > 3000
        chi2 = float((z[sel] ** 2).sum())
        assert abs(chi2 - m) < 5 * math.sqrt(2 * m)  # chi-square with m degrees of freedom
        assert abs(float(z[sel].mean())) < 5 / math.sqrt(m)
    again = add_velocity_noise(pos, torch.zeros(n**3, 3), n, box, centres, sigma, seed=7)
    assert torch.equal(v, again)
    assert not torch.equal(v, add_velocity_noise(pos, torch.zeros(n**3, 3), n, box, centres, sigma, seed=8))
    monkeypatch.setattr("emulator.core.velocity_noise.NOISE_CHUNK", 1000)  # the stream's rows are drawn in chunks
    first = torch.randn((1000, 3), generator=torch.Generator().manual_seed(noise_seed(7)))
    assert torch.equal(add_velocity_noise(pos, torch.zeros(n**3, 3), n, box, centres, sigma, seed=7)[:1000],
                       first * want[:1000, None])
    assert noise_seed(7) != 7 and 0 <= noise_seed(7) < 2**63


def test_velocity_scale_is_100_a_E_f():
    assert velocity_scale(COSMO, 0.0) == pytest.approx(100.0 * 0.3**0.55, rel=0.01)  # E(0) = 1, f = Omega_m^0.55
    om = 0.3 * 8 / (0.3 * 8 + 0.7)
    e = math.sqrt(0.3 * 8 + 0.7)
    assert velocity_scale(COSMO, 1.0) == pytest.approx(100.0 * 0.5 * e * om**0.55, rel=0.01)


def test_table_interpolates_in_redshift_with_slopes_held_in_range_and_bad_tables_are_refused(tmp_path, capsys):
    t = _table()
    u = velocity_scale(COSMO, 0.5)
    assert t.sigma_at(0.5, COSMO) == pytest.approx(np.exp([-0.75, 0.25]) * u)
    assert t.sigma_at(3.0, COSMO) == pytest.approx(np.exp([-1.0, 0.0]) * velocity_scale(COSMO, 3.0))
    s = _table(slopes=np.full((2, 2, 1), 2.0), params=("sigma8",))
    for s8, d in ((0.85, 0.05), (0.95, 0.1), (0.5, -0.1)):  # held at the range's ends, 0.7 and 0.9
        c = Cosmology(0.3, 0.048, 0.68, 0.965, s8)
        assert s.log_sigma_at(0.0, c) == pytest.approx(np.array([-0.5, 0.5]) + 2.0 * d)
    back = read_vdisp_file(_write(tmp_path / "a.vdisp.json", s.to_dict()))
    assert back.digest() == s.digest() and back.parameters == ("sigma8",)
    for bad, match in ((dict(log_sigma=((0.0,), (0.0,))), "log_sigma must be"),
                       (dict(log_sigma=((0.0, 9.0), (0.0, 0.0))), "within"),
                       (dict(params=("w0",), slopes=np.zeros((2, 2, 1))), "distinct names"),
                       (dict(params=("sigma8", "sigma8"), slopes=np.zeros((2, 2, 2))), "distinct names"),
                       (dict(params=("sigma8",), slopes=np.full((2, 2, 1), 1e4)), "reaches"),
                       (dict(params=("sigma8",)), "slopes must be")):
        with pytest.raises(ValueError, match=match):
            _table(**bad)
    with pytest.raises(ValueError, match="pivot"):
        VelocityDispersion("x" * 64, [0.0], [0.0], [[0.0]], ("sigma8",), np.zeros((1, 1, 1)), {"sigma8": 2.0},
                           {"sigma8": (0.7, 0.9)})
    with pytest.raises(ValueError, match="b.vdisp.json: unusable"):
        read_vdisp_file(_write(tmp_path / "b.vdisp.json", {**s.to_dict(), "format_version": 9}))
    for bad, match in (({"ranges": [[0.7, 0.9]]}, "ranges must map"), ({"ranges": {"sigma8": [0.7, "inf"]}}, "finite"),
                       ({"log_sigma": "x"}, "unusable")):
        with pytest.raises(ValueError, match=match):
            read_vdisp_file(_write(tmp_path / "c.vdisp.json", {**s.to_dict(), **bad}))
    model = tmp_path / "m.pt"
    model.write_bytes(b"model")
    _write(vdisp_path(model), _table().to_dict())  # fitted for other bytes: ignored with a warning
    assert read_vdisp(model, sha256_file(model)) is None
    assert "velocities are the network's" in capsys.readouterr().err


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def vdisp_model(tmp_path_factory):
    """A small random-weight model (cell 4 Mpc/h) with a dispersion table beside it."""
    path = write_small_model(tmp_path_factory.mktemp("vdispmodel") / "m.pt", COSMO)
    _write(vdisp_path(path), _table(sha=sha256_file(path)).to_dict())
    return path


def test_generation_adds_the_dispersion_to_velocities_only_and_records_it(vdisp_model, tmp_path):
    model = load_model(vdisp_model)
    assert model.vdisp is not None
    raw = emulate_fields(COSMO, 0.0, 128.0, 5, model=model, velocity_dispersion=False)
    hot = emulate_fields(COSMO, 0.0, 128.0, 5, model=model)
    assert hot.velocity_dispersion and not raw.velocity_dispersion
    assert torch.equal(hot.positions, raw.positions)
    expected = add_velocity_noise(raw.positions, raw.velocities.clone(), 32, 128.0, model.vdisp.log_density,
                                  model.vdisp.sigma_at(0.0, COSMO), 5)
    assert torch.equal(hot.velocities, expected)
    assert float((hot.velocities - raw.velocities).std()) > 0.5 * math.exp(-0.5) * velocity_scale(COSMO, 0.0)
    kw = dict(box_size=128.0, model=vdisp_model, seeds=[3], progress=False)
    (on,) = generate_mocks(COSMO, out_dir=tmp_path / "on", **kw)
    (off,) = generate_mocks(COSMO, out_dir=tmp_path / "off", velocity_dispersion=False, **kw)
    a, b = read_catalog(on, "data"), read_catalog(off, "data")
    assert a.attrs["velocity_dispersion_sha256"] == model.vdisp.digest()
    assert json.loads(a.attrs["velocity_dispersion"])["log_density"] == [-1.0, 2.0]
    assert b.attrs["velocity_dispersion"] == "none" and b.attrs["velocity_dispersion_sha256"] == "none"
    assert np.array_equal(a["Position"], b["Position"]) and not np.allclose(a["Velocity"], b["Velocity"])
    with pytest.raises(ValueError, match="velocity_dispersion_sha256"):  # the same folder, toggled: other files
        generate_mocks(COSMO, out_dir=tmp_path / "on", velocity_dispersion=False, **kw)
    (halos,) = generate_mocks(COSMO, out_dir=tmp_path / "halos", tracer="halos", min_members=5, **kw)
    assert read_catalog(halos, "data").attrs["velocity_dispersion"] == "none"  # members' mean: never blurred


def test_a_streamed_box_is_refused_before_any_file_with_a_dispersion(vdisp_model, tmp_path, monkeypatch):
    monkeypatch.setattr("emulator.mocks.memory_model.IN_MEMORY_BYTES_PER_PARTICLE", 4e4)  # force streaming at 32^3
    kw = dict(box_size=128.0, model=vdisp_model, seeds=[3], progress=False, max_memory=1.0)
    with pytest.raises(ValueError, match="velocity dispersion"):
        generate_mocks(COSMO, out_dir=tmp_path / "a", **kw)
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())
    (p,) = generate_mocks(COSMO, out_dir=tmp_path / "b", velocity_dispersion=False, **kw)
    assert read_catalog(p, "data").attrs["velocity_dispersion"] == "none"


def test_the_fit_recovers_a_known_dispersion_law_from_particles():
    """Truth velocities = generator velocities + a Gaussian whose rms follows density and the cosmology by a known
    law: the fit of binned moments over 12 cosmologies recovers it (sampling noise only)."""
    n, box = 24, 96.0
    edges = np.array([-3.0, -0.5, 0.5, 3.0])
    gen = torch.Generator().manual_seed(3)
    law = lambda x, om, s8: 0.8 + 0.4 * x + 1.5 * (s8 - 0.8) - 1.0 * (om - 0.3)  # ln(sigma / u)  # noqa: E731
    snaps = []
    for i in range(12):
        om, s8 = 0.26 + 0.08 * (i % 4) / 3, 0.72 + 0.16 * (i // 4) / 2
        cosmo = Cosmology(om, 0.048, 0.68, 0.965, s8)
        u = velocity_scale(cosmo, 0.0)
        pos = torch.rand(n**3, 3, generator=gen) * box
        v_gen = torch.randn(n**3, 3, generator=gen) * 100.0
        lnd = log_density_at_particles(pos, n, box)
        b = torch.bucketize(lnd, torch.tensor([-0.5, 0.5]), right=True)
        x = torch.tensor([-1.0, 0.0, 1.0])[b]  # the law is set per bin, at its node
        sig = torch.exp(law(x, om, s8)) * u
        v_t = v_gen + torch.randn(n**3, 3, generator=gen) * sig[:, None]
        counts, st = binned_second_moments(lnd, v_t, edges)
        sg = binned_second_moments(lnd, v_gen, edges)[1]
        snaps.append({"redshift": 0.0, "cosmology": cosmo, "counts": counts, "msq_truth": st / counts / u**2,
                      "msq_gen": sg / counts / u**2})
    t = fit_vdisp(snaps, "y" * 64, edges=edges, log=lambda m: None)
    assert t.parameters == ("Omega_m", "sigma8") and t.pivot["sigma8"] == pytest.approx(0.8)
    for j, x in enumerate((-1.0, 0.0, 1.0)):
        at = law(x, t.pivot["Omega_m"], t.pivot["sigma8"])
        assert t.log_sigma[0, j] == pytest.approx(at, abs=0.03)
        assert t.slopes[0, j, 1] == pytest.approx(1.5, abs=0.35) and t.slopes[0, j, 0] == pytest.approx(-1.0, abs=1.0)
    assert t.source["fit"]["0"]["rms_ln_sigma_residual"] < t.source["fit"]["0"]["rms_ln_sigma_without_slopes"]


def test_report_words_say_how_the_velocities_were_graded():
    assert vdisp_words({}) == "" and "no velocity dispersion" in vdisp_words({"velocity_dispersion": "none"})
    assert "z = 0, 1" in vdisp_words({"velocity_dispersion": _table().attr()})


def test_a_bin_empty_at_one_redshift_holds_that_redshifts_nearest_fitted_bin():
    snaps = []
    for i in range(6):
        s8 = 0.75 + 0.02 * i
        for z, counts in ((0.0, [500, 500, 500]), (1.0, [500, 500, 3])):  # the densest bin is empty at z = 1
            msq_gen = np.ones(3)
            sig2 = np.exp(2 * (np.array([0.0, 0.5, 1.0]) + z + (s8 - 0.8)))
            snaps.append({"redshift": z, "cosmology": Cosmology(0.3, 0.048, 0.68, 0.965, s8),
                          "counts": np.array(counts), "msq_truth": msq_gen + sig2, "msq_gen": msq_gen})
    t = fit_vdisp(snaps, "y" * 64, edges=np.array([-1.0, 0.0, 1.0, 2.0]), parameters=("sigma8",), log=lambda m: None)
    assert t.log_density.tolist() == [-0.5, 0.5, 1.5]
    assert t.log_sigma[0].tolist() == pytest.approx([0.0, 0.5, 1.0], abs=1e-9)
    assert t.log_sigma[1].tolist() == pytest.approx([1.0, 1.5, 1.5], abs=1e-9)  # held from the bin below
    assert t.slopes[:, :, 0] == pytest.approx(np.ones((2, 3)), abs=1e-9)
    assert t.source["fit"]["1"]["bins_held_from_nearest"] == [1.5]
    for s in snaps:
        s["counts"] = np.array([3, 3, 3]) if s["redshift"] == 1.0 else s["counts"]
    with pytest.raises(ValueError, match="no density bin .* at z = 1"):
        fit_vdisp(snaps, "y" * 64, edges=np.array([-1.0, 0.0, 1.0, 2.0]), parameters=("sigma8",), log=lambda m: None)


def test_the_command_line_turns_it_off_and_info_names_it(vdisp_model, tmp_path, capsys):
    from emulator.cli import main

    cosmo = ["--omega-m", "0.3", "--omega-b", "0.048", "--h", "0.68", "--n-s", "0.965", "--sigma8", "0.8"]
    base = ["generate", *cosmo, "--redshift", "0", "--box-size", "128", "--model", str(vdisp_model), "--no-progress",
            "--seed", "3"]
    assert main([*base, "--out", str(tmp_path / "a"), "--no-velocity-dispersion"]) == 0
    assert main([*base, "--out", str(tmp_path / "b")]) == 0
    (a,), (b,) = (sorted((tmp_path / d).glob("mock_*.hdf5")) for d in "ab")
    assert read_catalog(a, "data").attrs["velocity_dispersion"] == "none"
    assert read_catalog(b, "data").attrs["velocity_dispersion_sha256"] == load_model(vdisp_model).vdisp.digest()
    capsys.readouterr()
    assert main(["info", "--model", str(vdisp_model)]) == 0
    assert "velocity dispersion (fitted on s)" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["hybrid_cola4", "hybrid_pm4"])
def test_the_shipped_table_is_for_the_shipped_model_and_fitted_on_training_simulations(name):
    """An embedded table: for its model's bytes, fitted on the training suite only (never a test suite) on the
    PGD-sharpened particles, and the dispersion growing with density; the default's slopes lower the scatter
    between training boxes by a fifth at least."""
    from emulator.model.header import MODELS_DIR

    model = MODELS_DIR / f"{name}.pt"
    t = read_vdisp(model, sha256_file(model))
    assert t is not None and t.redshifts.tolist() == [0.0, 0.5, 1.0, 2.0] and t.parameters == ("Omega_m", "sigma8")
    assert t.source["suite"] == "configs/suite_converged.yaml"
    assert f"--model {name} " in t.source["command"]
    assert f"--fit emulator/models/{name}.vdisp.json" in t.source["command"]
    assert t.source["pgd_sha256"] == load_model(model).pgd.digest()  # fitted on the sharpened particles
    gain = 0.8 if name == "hybrid_cola4" else 0.85  # hybrid_pm4's slopes lower it by 16-28%
    for fit in t.source["fit"].values():
        assert fit["rms_ln_sigma_residual"] < gain * fit["rms_ln_sigma_without_slopes"]
    mean = int(np.argmin(np.abs(t.log_density)))  # from the mean density up, hotter (flat where a bin is held)
    rise = np.diff(t.log_sigma[:, mean:], axis=1)
    assert np.all(rise >= 0) and np.all(rise[0] > 0) and "bins_held_from_nearest" not in t.source["fit"]["0"]


def test_a_bin_where_the_generator_is_hot_enough_gets_none_and_an_interior_gap_is_interpolated():
    from benchmarks.velocity_dispersion import HOT_LOG_SIGMA

    snaps = []
    for i in range(6):
        s8 = 0.75 + 0.02 * i
        for z in (0.0, 1.0):
            counts = np.array([500, 500, 3 if z == 1.0 else 500, 500])  # bin 2 empty at z = 1
            msq_truth = 1.0 + np.exp(2 * np.array([0.0, 0.5, 1.0, 1.5]))
            msq_gen = np.array([1.0, 1.0, 1.0 + msq_truth[2] if z == 0.0 else 1.0, 1.0])  # bin 2 too hot at z = 0
            snaps.append({"redshift": z, "cosmology": Cosmology(0.3, 0.048, 0.68, 0.965, s8), "counts": counts,
                          "msq_truth": msq_truth, "msq_gen": msq_gen})
    t = fit_vdisp(snaps, "y" * 64, edges=np.arange(5.0), parameters=("sigma8",), log=lambda m: None)
    assert t.log_sigma[0].tolist() == pytest.approx([0.0, 0.5, HOT_LOG_SIGMA, 1.5], abs=1e-9)
    assert t.log_sigma[1].tolist() == pytest.approx([0.0, 0.5, 1.0, 1.5], abs=1e-9)  # halfway between 0.5 and 1.5
    fit = t.source["fit"]
    assert fit["0"]["bins_generator_hotter"] == [2.5] and fit["0"]["bins_left_out_generator_hotter"] == 6
    assert fit["1"]["bins_interpolated"] == [2.5] and "bins_held_from_nearest" not in fit["1"]
    assert t.sigma_at(0.0, COSMO)[2] < 0.02 * velocity_scale(COSMO, 0.0)  # ~0.5 km/s: no dispersion


def test_a_parameter_that_never_varies_is_refused():
    snaps = [{"redshift": 0.0, "cosmology": COSMO, "counts": np.array([500, 500]), "msq_truth": np.array([2.0, 3.0]),
              "msq_gen": np.ones(2)} for _ in range(6)]
    with pytest.raises(ValueError, match="sigma8.*one value"):
        fit_vdisp(snaps, "y" * 64, edges=np.arange(3.0), parameters=("sigma8",), log=lambda m: None)


def test_the_benchmark_grades_particles_with_the_dispersion_and_halos_without(vdisp_model):
    from benchmarks.contenders import make_contender

    model = load_model(vdisp_model)
    mock = make_contender("generator", COSMO, 0.0, 128.0, 32, 5, model=model)
    assert torch.equal(mock.velocities, emulate_fields(COSMO, 0.0, 128.0, 5, model=model).velocities)
    assert torch.equal(mock.halo_velocities,
                       emulate_fields(COSMO, 0.0, 128.0, 5, model=model, velocity_dispersion=False).velocities)
    assert make_contender("2lpt", COSMO, 0.0, 128.0, 32, 5).halo_velocities is None
