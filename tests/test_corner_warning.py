"""Where in the hull a model's errors are: each card entry's per-cosmology worst cases (benchmarks/model_card.py) and
the warning that ``emulate`` / ``emulator generate`` give near a corner of the hull where a report measured the
model's P(k) beyond its target (emulator.model.card.corner_warning)."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest

from emulator.core.cosmology import Cosmology
from emulator.model.corners import CORNER_FRACTION, corner_warning
from emulator.model.emulate import CORNER_WARNED, check_request
from emulator.model.header import MODELS_DIR
from emulator.model.portable import load_model

HULL = {"Omega_m": (0.24, 0.40), "Omega_b": (0.04, 0.056), "h": (0.6, 0.76), "n_s": (0.92, 1.0), "sigma8": (0.7, 0.9)}
VC06 = {"Omega_m": 0.25, "Omega_b": 0.055, "h": 0.75, "n_s": 0.925, "sigma8": 0.8875}  # corner validation point
CENTRE = {"Omega_m": 0.32, "Omega_b": 0.048, "h": 0.68, "n_s": 0.96, "sigma8": 0.80}


def _card(model: str) -> dict:
    return json.loads((MODELS_DIR / f"{model}.card.json").read_text())


@pytest.mark.parametrize("model", ["hybrid_cola4", "hybrid_pm4", "hybrid_pm4_1mpc"])
def test_each_entrys_cosmologies_hold_its_worst_case(model):
    """The per-cosmology numbers (computed by the card builder from the snapshots' P(k) ratios and r(k)) reach the
    report's own worst cases (its summary, written by the benchmark run) and never exceed them."""
    for e in _card(model)["entries"]:
        rows = e["cosmologies"]
        assert len(rows) == e["n_cosmologies"] == len({tuple(r[k] for k in HULL) for r in rows})
        assert max(r["worst_abs_dP_over_P"] for r in rows) == pytest.approx(e["worst_abs_dP_over_P"], rel=1e-12)
        assert max(r["worst_one_minus_r"] for r in rows) == pytest.approx(e["worst_one_minus_r"], rel=1e-12)


def test_the_shipped_models_corner_error_is_quoted_at_its_redshift():
    """hybrid_cola4 is 9.0% low at k = 0.74 h/Mpc at z = 0.5 at the corner validation point vc06 (benchmarks/results/
    design_cpu/valc_cola4_z0.5), against 1.7% at worst away from the corners; within 3% there at z = 1, and nothing
    is said at the hull's centre."""
    card = _card("hybrid_cola4")
    w = corner_warning(card, HULL, VC06, 0.5)
    assert w.corner == ("low", "high") and w.redshift == 0.5 and "\n" not in w.text
    assert ("model hybrid_cola4's P(k) was measured 9.0% off the converged truth (target 3%; 1.7% at worst "
            "away") in w.text
    assert "configs/suite_converged_val_corners.yaml" in w.text
    between = corner_warning(card, HULL, {**VC06, "Omega_m": 0.245, "sigma8": 0.9}, 0.25)  # graded z 0 and 0.5
    assert between.text.startswith("Omega_m = 0.245, sigma8 = 0.9 lies") and between.redshift == 0.5
    assert between.text.split(" lies")[1] == w.text.split(" lies")[1]
    assert corner_warning(card, HULL, VC06, 1.0) is None
    assert corner_warning(card, HULL, CENTRE, 0.5) is None
    for e in card["entries"]:  # a looser P(k) target: nothing measured beyond it
        e["targets"]["pk_worst"]["threshold"] = 0.1
    assert corner_warning(card, HULL, VC06, 0.5) is None


def _measured(u_om, u_s8, err, z=0.0):
    """A card entry at redshift ``z`` with one graded cosmology at (u_om, u_s8) half-widths from the centre."""
    c = {**CENTRE, "Omega_m": 0.32 + 0.08 * u_om, "sigma8": 0.80 + 0.10 * u_s8, "worst_abs_dP_over_P": err,
         "worst_one_minus_r": 0.01}
    return {"redshift": z, "k_max": 0.785, "truth": {"suite": "s.yaml"}, "cosmologies": [c],
            "targets": {"pk_worst": {"threshold": 0.03}}}


def _at(u_om, u_s8):
    return {**CENTRE, "Omega_m": 0.32 + 0.08 * u_om, "sigma8": 0.80 + 0.10 * u_s8}


def test_only_the_same_corner_counts_and_only_when_worse_than_elsewhere():
    """A measurement at the (high Omega_m, high sigma8) corner warns there, from CORNER_FRACTION of the way to the
    faces in both parameters; not at the other corners or short of it; not when a point away from the corners (even
    in the same quadrant) was measured worse; and the worse of the two graded redshifts around the request counts."""
    f = CORNER_FRACTION
    card = {"model": "m", "entries": [_measured(1, 1, 0.2)]}
    w = corner_warning(card, HULL, _at(f + 0.01, f + 0.01), 0.0)
    assert w.corner == ("high", "high") and "model m's P(k) was measured 20.0% off" in w.text
    for u in [(f - 0.01, 1.0), (1.0, f - 0.01), (-1.0, 1.0), (1.0, -1.0), (-1.0, -1.0)]:
        assert corner_warning(card, HULL, _at(*u), 0.0) is None, u
    worse_inside = {"entries": [_measured(1, 1, 0.2), _measured(0.5, 0.5, 0.3)]}
    assert corner_warning(worse_inside, HULL, _at(1, 1), 0.0) is None
    within = {"entries": [_measured(1, 1, 0.03)]}  # at the target: not beyond it
    assert corner_warning(within, HULL, _at(1, 1), 0.0) is None
    two = {"entries": [_measured(1, 1, 0.2, z=0.0), _measured(1, 1, 0.5, z=1.0)]}
    assert [corner_warning(two, HULL, _at(1, 1), z).redshift for z in (0.0, 0.5, 1.0, 2.0)] == [0.0, 1.0, 1.0, 1.0]
    assert "50.0% off" in corner_warning(two, HULL, _at(1, 1), 0.5).text
    assert corner_warning(None, HULL, _at(1, 1), 0.0) is None
    assert corner_warning({"entries": []}, HULL, _at(1, 1), 0.0) is None
    assert corner_warning({"entries": [{**_measured(1, 1, 0.2), "cosmologies": None}]}, HULL, _at(1, 1), 0) is None


def test_emulate_warns_once_per_model_corner_and_redshift(tmp_path, capsys):
    """The request check of every generation path warns with the card's number once per model, corner and graded
    redshift (not for every realization or cosmology there); a copy of the model without its card, or with a stale
    one, has nothing to quote, and loading it says nothing (emulator info does)."""
    model = load_model("hybrid_cola4")
    CORNER_WARNED.clear()

    def check(point, z=0.5, seed=1, m=model):
        check_request(Cosmology.from_mapping(point), z, 128.0, seed, model=m, method="emulator", ngrid=None,
                      device="cpu", allow_extrapolation=False)

    with pytest.warns(UserWarning, match=r"9\.0% off the converged truth"):
        check(VC06)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check(VC06, seed=2)
        check({**VC06, "Omega_m": 0.245}, seed=3)
        check(CENTRE)
    with pytest.warns(UserWarning, match=r"high Omega_m, high sigma8\) corner"):
        check({**VC06, "Omega_m": 0.39})
    shutil.copy(MODELS_DIR / "hybrid_cola4.pt", tmp_path / "copy.pt")
    shutil.copy(MODELS_DIR / "hybrid_pm4.card.json", tmp_path / "copy.card.json")  # another model's: stale
    CORNER_WARNED.clear()
    capsys.readouterr()
    bare = load_model(tmp_path / "copy.pt")
    assert bare.card is None and model.card is not None and capsys.readouterr().err == ""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check(VC06, m=bare)


def test_a_mock_near_the_corner_records_the_warning(tmp_path):
    """The mock file's attributes keep the warning (with the number) for every realization, as they keep the hull
    warning, so a pipeline that makes thousands of mocks can find it after the log has scrolled by."""
    import h5py

    from emulator import generate_mocks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = generate_mocks(VC06, redshift=0.5, box_size=64.0, n_realizations=2, out_dir=tmp_path / "corner",
                               model="hybrid_cola4")
        centre = generate_mocks(CENTRE, redshift=0.5, box_size=64.0, out_dir=tmp_path / "centre",
                                model="hybrid_cola4")
    for path in paths:
        with h5py.File(path, "r") as f:
            assert "9.0% off the converged truth" in f.attrs["accuracy_warning"]
    with h5py.File(centre[0], "r") as f:
        assert f.attrs["accuracy_warning"] == ""
