"""The cold-velocity warning of emulator generate: particles or biased tracers sent to redshift space from a model
with no velocity-dispersion table are warned about (with the size of the error and the fitting command), and
nothing else is."""

from __future__ import annotations

import json
import warnings

import pytest

from emulator.api import generate_mocks
from emulator.core.provenance import sha256_file
from emulator.model.velocity_dispersion import vdisp_path
from tests.helpers_model import write_small_model
from tests.test_velocity_dispersion import COSMO, _table


def test_redshift_space_particles_from_a_model_without_a_table_are_warned_about(tmp_path):
    bare = write_small_model(tmp_path / "bare.pt", COSMO)
    vdisp_model = write_small_model(tmp_path / "hot.pt", COSMO)
    vdisp_path(vdisp_model).write_text(json.dumps(_table(sha=sha256_file(vdisp_model)).to_dict()))
    kw = dict(box_size=128.0, seeds=[3], progress=False, rsd_axis="z")
    with pytest.warns(UserWarning, match=r"no velocity-dispersion table \(bare.vdisp.json\).*29% high"):
        generate_mocks(COSMO, out_dir=tmp_path / "bare", model=bare, **kw)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*velocity-dispersion table")
        generate_mocks(COSMO, out_dir=tmp_path / "table", model=vdisp_model, **kw)


@pytest.mark.parametrize("options, warned", [
    ({"rsd_axis": "z"}, True), ({"tracer": "biased", "rsd_axis": "x"}, True), ({}, False),
    ({"rsd_axis": "z", "velocity_dispersion": False}, False),  # asked for the network's velocities
    ({"tracer": "halos", "rsd_axis": "z"}, False), ({"tracer": "galaxies", "rsd_axis": "z"}, False),
    ({"cutsky": {}}, True), ({"cutsky": {"rsd": True}}, True), ({"cutsky": {"rsd": False}}, False),
])
def test_the_cold_velocity_warning_is_for_redshift_space_particle_tracers_only(options, warned):
    from types import SimpleNamespace

    from emulator.mocks.api import _warn_if_velocities_cold
    from emulator.mocks.catalogs import MockOptions

    opts = SimpleNamespace(**{"tracer": "particles", "rsd_axis": None, "cutsky": None, "velocity_dispersion": True,
                              **options})
    assert MockOptions.__dataclass_fields__.keys() >= vars(opts).keys()  # the options the warning reads exist
    for model, name in ((SimpleNamespace(vdisp=None, path="", name="x"), None),
                        (SimpleNamespace(vdisp=None, path="/m/y.pt", name="y"), "y.vdisp.json"),
                        (SimpleNamespace(vdisp=object(), path="/m/z.pt", name="z"), None)):
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            _warn_if_velocities_cold(opts, model)
        expect = warned and model.vdisp is None
        assert len(got) == expect, (options, model.name)
        if expect:
            assert (name or "x has no velocity-dispersion table:") in str(got[0].message)
