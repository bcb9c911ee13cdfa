"""Mock generation: determinism, schema and units, hull guard, tiling, RSD, bad options (no partial files)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emulator.api import generate_mocks
from emulator.mocks.io import read_catalog
from emulator.core.cosmology import Cosmology
from emulator.core.fields import linear_density_k, white_noise
from emulator.core.growth import GrowthHistory
from emulator.core.lpt import lagrangian_grid, lpt2_displacement, vector_field_to_particles, za_displacement
from emulator.core.power import LinearPower
from emulator.model.emulate import emulate_fields, resolve_grid
from emulator.model.portable import EmulatorModel, ExtrapolationError, load_model
from tests.helpers_model import write_small_model

COSMO = Cosmology(0.3, 0.048, 0.68, 0.965, 0.8)
CELL = 4.0


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small random-weight model file in the portable format (cell 4 Mpc/h, hull around COSMO, z in [0, 1])."""
    return write_small_model(tmp_path_factory.mktemp("model") / "m.pt", COSMO, cell_size=CELL, out_init_scale=1.0)


def test_model_loads_weights_only_and_knows_its_hull(model_file):
    m = load_model(model_file)
    assert isinstance(m, EmulatorModel) and m.name == "test-model" and len(m.sha256) == 64
    assert m.check_domain(COSMO, 0.5) == []
    out = m.check_domain(Cosmology(0.3, 0.048, 0.68, 0.965, 0.5), 2.0)
    assert any(s.startswith("sigma8=") for s in out) and any(s.startswith("redshift=") for s in out)
    with pytest.raises(FileNotFoundError):
        load_model(model_file.parent / "nope.pt")


def test_lpt_baseline_matches_core_lpt(model_file):
    f = emulate_fields(COSMO, 0.5, 64.0, 3, method="2lpt", ngrid=16)
    g = GrowthHistory(COSMO)
    a = 1 / 1.5
    dk = linear_density_k(white_noise(3, 16), 64.0, LinearPower(COSMO))
    expect = float(g.D1(a)) * za_displacement(dk, 64.0) + float(g.D2(a)) * lpt2_displacement(dk, 64.0)
    torch.testing.assert_close(f.displacement, expect, rtol=0, atol=1e-5)
    assert f.positions.min() >= 0 and f.positions.max() < 64.0


def test_emulator_residual_is_added_and_tiling_has_no_seams(model_file):
    m = load_model(model_file)
    whole = emulate_fields(COSMO, 0.5, 64.0, 5, model=m)
    tiled = emulate_fields(COSMO, 0.5, 64.0, 5, model=m, tile=8)
    lpt = emulate_fields(COSMO, 0.5, 64.0, 5, method="2lpt", ngrid=16)
    torch.testing.assert_close(tiled.displacement, whole.displacement, rtol=0, atol=1e-5)
    assert (whole.displacement - lpt.displacement).abs().max() > 1e-3  # the network's residual is applied
    with pytest.raises(ValueError, match="multiple"):
        emulate_fields(COSMO, 0.5, 66.0, 5, model=m)


def test_boxes_above_the_default_tile_run_in_balanced_tiles(model_file, monkeypatch):
    """Above DEFAULT_TILE the default tile is balanced_tile's (24 cells under a cap of 16: two tiles of 12, not
    16 twice over the middle): the particles of that explicit tile, and those of the whole box to rounding."""
    import emulator.model.emulate as emulate

    m = load_model(model_file)
    whole = emulate_fields(COSMO, 0.5, 96.0, 5, model=m)
    monkeypatch.setattr(emulate, "DEFAULT_TILE", 16)
    auto = emulate_fields(COSMO, 0.5, 96.0, 5, model=m)
    assert torch.equal(auto.positions, emulate_fields(COSMO, 0.5, 96.0, 5, model=m, tile=12).positions)
    torch.testing.assert_close(auto.displacement, whole.displacement, rtol=0, atol=1e-5)


def test_fields_without_the_displacement_are_the_same_particles(model_file):
    """``keep_displacement=False`` (what catalogs use: 201 MB less at 256^3) changes no particle; positions are
    ``q + displacement`` wrapped into the box."""
    m = load_model(model_file)
    full = emulate_fields(COSMO, 0.5, 64.0, 5, model=m)
    lean = emulate_fields(COSMO, 0.5, 64.0, 5, model=m, keep_displacement=False)
    assert lean.displacement is None
    assert torch.equal(lean.positions, full.positions) and torch.equal(lean.velocities, full.velocities)
    d = full.positions - lagrangian_grid(16, 64.0) - vector_field_to_particles(full.displacement)
    assert float((d - 64.0 * torch.round(d / 64.0)).abs().max()) < 1e-4
    assert float(full.positions.min()) >= 0.0 and float(full.positions.max()) < 64.0


def test_hull_guard_and_extrapolation_flag(model_file, tmp_path):
    outside = Cosmology(0.3, 0.048, 0.68, 0.965, 0.5)
    with pytest.raises(ExtrapolationError, match="sigma8"):
        generate_mocks(outside, box_size=64.0, model=model_file, out_dir=tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()
    with pytest.warns(UserWarning, match="extrapolating"):
        (path,) = generate_mocks(outside, box_size=64.0, model=model_file, out_dir=tmp_path / "b",
                                 allow_extrapolation=True, progress=False)
    assert "sigma8" in read_catalog(path, "data").attrs["extrapolation_warning"]


def test_same_seed_same_catalog_and_schema(model_file, tmp_path):
    kw = dict(redshift=0.5, box_size=64.0, model=model_file, seeds=[7], progress=False, tracer="particles",
              rsd_axis="z")
    (p1,) = generate_mocks(COSMO, out_dir=tmp_path / "r1", **kw)
    (p2,) = generate_mocks(COSMO, out_dir=tmp_path / "r2", **kw)
    c1, c2 = read_catalog(p1, "data"), read_catalog(p2, "data")
    for col in ("Position", "Velocity", "RSDPosition"):
        assert np.array_equal(c1[col], c2[col])
    assert c1["Position"].shape == (16**3, 3) and c1.units["Position"] == "Mpc/h"
    assert c1.units["Velocity"] == "km/s"
    a = c1.attrs
    assert a["BoxSize"] == 64.0 and a["Nmesh"] == 16 and a["seed"] == 7 and a["redshift"] == 0.5
    assert a["Omega_m"] == COSMO.Omega_m and a["model_name"] == "test-model" and len(a["model_sha256"]) == 64
    # RSD along z: s_z = x_z + v_z (1+z) / (100 E(z)) wrapped; x, y untouched
    shift = c1["Velocity"][:, 2] * 1.5 / (100 * COSMO.efunc(1 / 1.5))
    expect = np.mod(c1["Position"][:, 2] + shift, 64.0)
    np.testing.assert_allclose(c1["RSDPosition"][:, 2], expect, atol=2e-4)
    assert np.array_equal(c1["RSDPosition"][:, :2], c1["Position"][:, :2])
    (p3,) = generate_mocks(COSMO, out_dir=tmp_path / "r3", **{**kw, "seeds": [8]})
    assert not np.array_equal(read_catalog(p3, "data")["Position"], c1["Position"])


def test_subsampling_halos_and_fits(model_file, tmp_path):
    (p,) = generate_mocks(COSMO, box_size=64.0, model=model_file, out_dir=tmp_path, progress=False,
                          tracer="particles", number_density=0.005, format="fits")
    c = read_catalog(p, "data")
    assert p.suffix == ".fits" and len(c["Position"]) == round(0.005 * 64.0**3)
    (h,) = generate_mocks(COSMO, box_size=64.0, model=model_file, out_dir=tmp_path / "h", progress=False,
                          tracer="halos", min_members=5)
    halos = read_catalog(h, "data")
    pmass = halos.attrs["particle_mass"]
    np.testing.assert_allclose(halos["Mass"], halos["Length"] * pmass)
    assert np.all(halos["Length"] >= 5) and np.all(np.diff(halos["Mass"]) <= 0)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"tracer": "stars"}, "tracer"),
        ({"tracer": "biased"}, "number_density"),
        ({"number_density": -1.0}, "number_density"),
        ({"format": "csv"}, "format"),
        ({"redshift": 5.0}, "redshift"),
        ({"box_size": -10.0}, "box_size"),
    ],
)
def test_bad_options_leave_no_file(model_file, tmp_path, kw, match):
    args = {"box_size": 64.0, "model": model_file, "out_dir": tmp_path / "o", "progress": False, **kw}
    with pytest.raises(ValueError, match=match):
        generate_mocks(COSMO, **args)
    assert not any((tmp_path / "o").glob("*")) if (tmp_path / "o").exists() else True


def test_resolve_grid():
    assert resolve_grid(128.0, 2.0) == 64
    with pytest.raises(ValueError, match="box_size"):
        resolve_grid(127.0, 2.0)
