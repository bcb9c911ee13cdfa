"""Where in the hull a model's errors are: each card entry's per-cosmology worst cases (benchmarks/model_card.py) and
the warning that ``emulate`` / ``emulator generate`` give near a corner of the hull where a report measured the
model's P(k) beyond its target (emulator.model.card.corner_warning)."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest

from emulator.core.cosmology import Cosmology
from emulator.model.card import CORNER_FRACTION, corner_warning
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
    design_cpu/valc_cola4_z0.5); within 3% there at z = 1, and nothing is said at the hull's centre."""
    card = _card("hybrid_cola4")
    line = corner_warning(card, HULL, VC06, 0.5)
    assert "(low Omega_m, high sigma8) corner" in line and "9.0% off the converged truth (target 3%" in line
    assert "configs/suite_converged_val_corners.yaml" in line and "\n" not in line
    other = corner_warning(card, HULL, {**VC06, "Omega_m": 0.245, "sigma8": 0.9}, 0.6)  # nearest graded z: 0.5
    assert other.startswith("Omega_m = 0.245, sigma8 = 0.9 lies") and other.split(" lies")[1] == line.split(" lies")[1]
    assert corner_warning(card, HULL, VC06, 1.0) is None
    assert corner_warning(card, HULL, CENTRE, 0.5) is None
    for e in card["entries"]:  # a looser P(k) target: nothing measured beyond it
        e["targets"]["pk_worst"]["threshold"] = 0.1
    assert corner_warning(card, HULL, VC06, 0.5) is None


def test_only_the_same_corner_counts():
    """A measurement at the (high Omega_m, high sigma8) corner warns there, from CORNER_FRACTION of the way to the
    faces in both parameters, and says nothing about the other three corners or a point short of it."""
    measured = {**CENTRE, "Omega_m": 0.40, "sigma8": 0.90, "worst_abs_dP_over_P": 0.2, "worst_one_minus_r": 0.01}
    card = {"entries": [{"redshift": 0.0, "k_max": 0.785, "truth": {"suite": "s.yaml"}, "cosmologies": [measured],
                         "targets": {"pk_worst": {"threshold": 0.03}}}]}
    f = CORNER_FRACTION

    def at(u_om, u_s8):
        return {**CENTRE, "Omega_m": 0.32 + 0.08 * u_om, "sigma8": 0.80 + 0.10 * u_s8}

    assert "20.0% off" in corner_warning(card, HULL, at(f + 0.01, f + 0.01), 0.0)
    for u in [(f - 0.01, 1.0), (1.0, f - 0.01), (-1.0, 1.0), (1.0, -1.0), (-1.0, -1.0)]:
        assert corner_warning(card, HULL, at(*u), 0.0) is None, u
    assert corner_warning(None, HULL, at(1, 1), 0.0) is None
    assert corner_warning({"entries": []}, HULL, at(1, 1), 0.0) is None


def test_emulate_warns_near_the_corner_with_the_number(tmp_path):
    """The request check of every generation path warns with the card's number, once per process (not for every
    realization); a copy of the model without its card has nothing to quote."""
    model = load_model("hybrid_cola4")
    CORNER_WARNED.clear()
    with pytest.warns(UserWarning, match=r"9\.0% off the converged truth"):
        check_request(Cosmology.from_mapping(VC06), 0.5, 128.0, 1, model=model, method="emulator", ngrid=None,
                      device="cpu", allow_extrapolation=False)
    with warnings.catch_warnings():  # once per process, not once per realization
        warnings.simplefilter("error")
        check_request(Cosmology.from_mapping(VC06), 0.5, 128.0, 2, model=model, method="emulator", ngrid=None,
                      device="cpu", allow_extrapolation=False)
    CORNER_WARNED.clear()
    shutil.copy(MODELS_DIR / "hybrid_cola4.pt", tmp_path / "copy.pt")
    bare = load_model(tmp_path / "copy.pt")
    assert bare.card is None and model.card is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_request(Cosmology.from_mapping(VC06), 0.5, 128.0, 1, model=bare, method="emulator", ngrid=None,
                      device="cpu", allow_extrapolation=False)
        check_request(Cosmology.from_mapping(CENTRE), 0.5, 128.0, 1, model=model, method="emulator", ngrid=None,
                      device="cpu", allow_extrapolation=False)
