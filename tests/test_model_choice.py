"""The embedded model a mock request gets (emulator.mocks.model_choice): the coarsest whose particles resolve the
tracer, held against the HOD's own unresolved fraction (Tinker08 halos) and the halo mass cut."""

from __future__ import annotations

import math

import h5py
import pytest
import torch

from emulator.core.cosmology import Cosmology, particle_mass_from_cosmology
from emulator.core.provenance import sha256_file
from emulator.mocks import model_choice
from emulator.mocks.catalogs import MockOptions
from emulator.mocks.massfunction import WARN_FRACTION, unresolved_fraction
from emulator.model.header import MODELS_DIR

COSMO = Cosmology(0.32, 0.048, 0.68, 0.96, 0.8)


@pytest.fixture()
def models_dir(tmp_path, monkeypatch):
    """The embedded default plus a stand-in 1 Mpc/h model (the hybrid's file with its cell size set to 1)."""
    (tmp_path / "default.pt").symlink_to(MODELS_DIR / "default.pt")
    payload = torch.load(MODELS_DIR / "hybrid_pm4.pt", weights_only=True)
    payload["cell_size"] = 1.0
    torch.save(payload, tmp_path / "hybrid_pm4_1mpc.pt")
    monkeypatch.setattr(model_choice, "MODELS_DIR", tmp_path)
    return tmp_path


MASSIVE = {"logMmin": 14.0, "sigma_logM": 0.3, "logM0": 14.0, "logM1": 15.0, "alpha": 1.0}  # cluster centrals


def _fraction(hod, cell: float, z: float) -> float:
    params = MockOptions(tracer="galaxies", hod=hod).hod_params()
    return unresolved_fraction(params, COSMO, z, 20 * particle_mass_from_cosmology(COSMO.Omega_m, cell, 1))


def test_galaxies_get_the_coarsest_model_that_holds_the_hod(models_dir):
    lines: list[str] = []
    for hod in (MASSIVE, "zheng07_mr22", "lrg_desi_like", "zheng07_mr19"):
        opts = MockOptions(tracer="galaxies", hod=hod)
        got = model_choice.choose_model(opts, COSMO, [0.0], log=lines.append).stem
        coarse, fine = _fraction(hod, 2.0, 0.0), _fraction(hod, 1.0, 0.0)
        want = "default" if coarse <= WARN_FRACTION else "hybrid_pm4_1mpc"
        assert got == want, (hod, coarse, fine)
    # cluster centrals are resolved at 2 Mpc/h; lrg_desi_like is 24% unresolved there and not at 1 Mpc/h;
    # zheng07_mr19 is unresolved at both: the finest
    assert _fraction(MASSIVE, 2.0, 0.0) < 0.01
    assert _fraction("lrg_desi_like", 2.0, 0.0) > 0.2 and _fraction("lrg_desi_like", 1.0, 0.0) < 0.01
    assert _fraction("zheng07_mr19", 1.0, 0.0) > 0.5
    assert len(lines) == 3 and all("hybrid_pm4_1mpc (1 Mpc/h particle spacing: 8x" in line for line in lines)
    assert "24.2% of the HOD's galaxies are in halos below the 2 Mpc/h model's resolved mass, 0.0% at 1" in lines[1]
    # the worst redshift decides: a higher one needs more resolution
    hod = {**MASSIVE, "logMmin": 13.5, "logM0": 13.5}
    assert _fraction(hod, 2.0, 0.0) <= WARN_FRACTION < _fraction(hod, 2.0, 1.0)
    opts = MockOptions(tracer="galaxies", hod=hod)
    assert model_choice.choose_model(opts, COSMO, [0.0]).stem == "default"
    assert model_choice.choose_model(opts, COSMO, [0.0, 1.0]).stem == "hybrid_pm4_1mpc"


def test_halo_mass_cut_resolution_option_and_the_rest(models_dir):
    pmass2 = particle_mass_from_cosmology(COSMO.Omega_m, 2.0, 1)
    assert math.isclose(pmass2, 2.775e11 * 0.32 * 8, rel_tol=1e-3)
    choose = model_choice.choose_model
    assert choose(MockOptions(tracer="halos", min_mass=20 * pmass2), COSMO, [0.0]).stem == "default"
    assert choose(MockOptions(tracer="halos", min_mass=19 * pmass2), COSMO, [0.0]).stem == "hybrid_pm4_1mpc"
    assert choose(MockOptions(tracer="halos"), COSMO, [0.0]).stem == "default"
    assert choose(MockOptions(tracer="particles"), COSMO, [0.0]).stem == "default"
    assert choose(MockOptions(tracer="particles"), COSMO, [0.0], resolution=1).stem == "hybrid_pm4_1mpc"
    assert choose(MockOptions(tracer="galaxies", hod="zheng07_mr19"), COSMO, [0.0], resolution=2).stem == "default"
    with pytest.raises(ValueError, match=r"resolution=0.5 Mpc/h: no embedded model .* available: 2 \(default\), "
                                         r"1 \(hybrid_pm4_1mpc\)"):
        choose(MockOptions(), COSMO, [0.0], resolution=0.5)


def test_only_installed_models_count_and_their_cell_is_checked(models_dir):
    assert model_choice.available_resolutions() == {2.0: "default", 1.0: "hybrid_pm4_1mpc"}
    (models_dir / "hybrid_pm4_1mpc.pt").unlink()
    assert model_choice.available_resolutions() == {2.0: "default"}
    opts = MockOptions(tracer="galaxies", hod="lrg_desi_like")
    assert model_choice.choose_model(opts, COSMO, [0.0]).stem == "default"  # the HOD check then warns
    (models_dir / "hybrid_pm4_1mpc.pt").symlink_to(MODELS_DIR / "hybrid_pm4.pt")  # a 2 Mpc/h file in its place
    with pytest.raises(ValueError, match="is not at 1 Mpc/h"):
        model_choice.available_resolutions()


def test_generate_uses_the_chosen_model_and_says_so(models_dir, tmp_path):
    from emulator.api import generate_mocks

    with pytest.warns(UserWarning, match="using the embedded model hybrid_pm4_1mpc"):
        paths = generate_mocks(COSMO, box_size=16.0, base_seed=3, out_dir=tmp_path / "out", tracer="galaxies",
                               hod="lrg_desi_like", progress=False)
    with h5py.File(paths[0], "r") as f:
        assert int(f.attrs["Nmesh"]) == 16  # 1 Mpc/h particles
        assert f.attrs["model_sha256"] == sha256_file(models_dir / "hybrid_pm4_1mpc.pt")
    with pytest.raises(ValueError, match=r"give a model \(--model\) or a resolution \(--resolution\), not both"):
        generate_mocks(COSMO, box_size=16.0, out_dir=tmp_path / "x", model="default", resolution=1.0)
    assert not (tmp_path / "x").exists()


def test_cli_resolution_option(models_dir, tmp_path, capsys):
    from emulator.cli import main

    base = ["generate", "--preset", "planck18", "--out", str(tmp_path / "m"), "--no-progress"]
    for extra, message in ((["--resolution", "0.5"], "resolution=0.5 Mpc/h: no embedded model"),
                           (["--resolution", "1", "--model", "default"], "give a model (--model) or a resolution")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("emulator generate: error:") and message in err
        assert not (tmp_path / "m").exists()
    assert main(base + ["--resolution", "1", "--box-size", "16"]) == 0
    out = capsys.readouterr().out.split()
    with h5py.File(out[0], "r") as f:
        assert int(f.attrs["Nmesh"]) == 16
        assert f.attrs["model_sha256"] == sha256_file(models_dir / "hybrid_pm4_1mpc.pt")
    # the line naming an automatic choice goes to stderr as a plain line
    assert main(base + ["--tracer", "galaxies", "--box-size", "16", "--seed", "2"]) == 0
    err = capsys.readouterr().err
    assert "using the embedded model hybrid_pm4_1mpc (1 Mpc/h particle spacing: 8x the particles" in err
    assert "Warning" not in err


def test_memory_capped_lightcone_and_mass_cut_requests(models_dir):
    choose = model_choice.choose_model
    lrg = MockOptions(tracer="galaxies", hod="lrg_desi_like")
    # a PM-base model is never streamed: under a memory cap the choice stays with models that can be
    assert model_choice.available_resolutions(streamable_only=True) == {2.0: "default"}
    assert choose(lrg, COSMO, [0.0], streamable_only=True).stem == "default"
    assert choose(lrg, COSMO, [0.0], resolution=1.0, streamable_only=True).stem == "hybrid_pm4_1mpc"  # asked for
    # galaxies above a mass cut that both resolutions hold lose the same galaxies: the coarse model
    cut = MockOptions(tracer="galaxies", hod="lrg_desi_like", min_mass=5e13)
    fracs = [_fraction_cut(cut, cell) for cell in (2.0, 1.0)]
    assert fracs[0] == fracs[1] > WARN_FRACTION
    assert choose(cut, COSMO, [0.0]).stem == "default"


def _fraction_cut(opts, cell):
    mmin = max(opts.min_members * particle_mass_from_cosmology(COSMO.Omega_m, cell, 1), opts.min_mass)
    return unresolved_fraction(opts.hod_params(), COSMO, 0.0, mmin)


def test_a_lightcone_is_chosen_for_at_its_ladder(models_dir, tmp_path, monkeypatch):
    """The choice reads the ladder's redshifts (those the objects come from), not the snapshot redshift."""
    from emulator.mocks import api

    seen = []

    def spy(opts, cosmo, zs, *args, **kwargs):
        seen.append(list(zs))
        raise RuntimeError("stop")

    monkeypatch.setattr(model_choice, "choose_model", spy)
    with pytest.raises(RuntimeError, match="stop"):
        api.generate_mocks(COSMO, redshift=1.0, box_size=16.0, out_dir=tmp_path / "m", tracer="galaxies",
                           cutsky={"redshift_range": [0.05, 0.15], "lightcone": [0.04, 0.1, 0.2]})
    assert seen == [[0.04, 0.1, 0.2]]


def test_the_default_is_preferred_at_2_mpc_and_a_capped_box_falls_back_to_the_streamable_model(models_dir, tmp_path,
                                                                                              monkeypatch):
    """With the default model (hybrid_cola4, COLA base) installed it is the 2 Mpc/h choice; a memory cap it cannot
    meet held whole (a PM base is never streamed) gets the 2LPT-based model instead, said in a line; a cap it
    meets keeps it."""
    from emulator.api import generate_mocks

    (models_dir / "hybrid_cola4.pt").symlink_to(MODELS_DIR / "hybrid_cola4.pt")
    assert model_choice.available_resolutions() == {2.0: "hybrid_cola4", 1.0: "hybrid_pm4_1mpc"}
    assert model_choice.available_resolutions(streamable_only=True) == {2.0: "default"}
    assert model_choice.choose_model(MockOptions(tracer="halos"), COSMO, [0.0]).stem == "hybrid_cola4"
    common = dict(box_size=32.0, base_seed=5, tracer="halos", min_members=10, progress=False)
    lines: list[str] = []
    roomy = generate_mocks(COSMO, out_dir=tmp_path / "roomy", max_memory=8.0, on_choice=lines.append, **common)
    assert lines == []
    monkeypatch.setattr("emulator.mocks.memory_model.IN_MEMORY_BYTES_PER_PARTICLE", 1e6)  # 16^3 held whole: > 4 GB
    tight = generate_mocks(COSMO, out_dir=tmp_path / "tight", max_memory=1.0, on_choice=lines.append, **common)
    assert len(lines) == 1 and lines[0].startswith("--max-memory 1 GB: hybrid-cola4-2mpc-64 corrects a COLA run")
    assert lines[0].endswith("using the streamable 2LPT-based embedded model default")
    for path, model in ((roomy[0], "hybrid_cola4.pt"), (tight[0], "default.pt")):
        with h5py.File(path, "r") as f:
            assert f.attrs["model_sha256"] == sha256_file(MODELS_DIR / model)
