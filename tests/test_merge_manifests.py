"""``data-prep merge``: one training set from a Latin-hypercube suite plus a suite of added points (issue 11, the
corner training design). The merged build must hold exactly what each suite's own build holds, and suites that
cannot make one training set are refused with a one-line error and no file."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from data_prep.build import assign_splits, build_training_set
from data_prep.manifest import load_manifest
from data_prep.cli import main
from data_prep.merge import merge_manifests
from data_prep.simulate.suite import SuiteConfig, run_suite

PRIOR = {"Omega_m": [0.28, 0.34], "Omega_b": [0.048, 0.048], "h": [0.68, 0.68], "n_s": [0.965, 0.965],
         "sigma8": [0.7, 0.9]}
SIM = {"steps": 2, "z_init": 5.0, "output_redshifts": [0.0]}
ADDED = [{"name": "corner", "Omega_m": 0.28, "Omega_b": 0.048, "h": 0.68, "n_s": 0.965, "sigma8": 0.9, "seed": 77}]


def _suite(out, *, n=2, cosmologies=None, prior=PRIOR, **simulation):
    cfg = SuiteConfig(name=out.name, out_dir=str(out), box_size=64.0, ngrid=8, n_cosmologies=n, prior=prior,
                      simulation={**SIM, **simulation}, cosmologies=cosmologies, device="cpu")
    return run_suite(cfg, progress=False)


def _fields(path):
    """``{sim_id: {dataset path: array}}`` of a training set."""
    with h5py.File(path, "r") as f:
        return {sid: {k: np.asarray(v) for k, v in _flat(f["sims"][sid])} for sid in f["sims"]}


def _flat(group, prefix=""):
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            yield from _flat(item, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", item


def test_a_merged_build_holds_each_suites_simulations_unchanged(tmp_path):
    lhs = _suite(tmp_path / "lhs")
    added = _suite(tmp_path / "added", n=0, cosmologies=ADDED)
    merged = merge_manifests([lhs, added], tmp_path / "design" / "manifest.json", first=1)
    meta = json.loads(merged.read_text())
    assert [s["sim_id"] for s in meta["simulations"]] == ["sim_0000", "corner"]
    assert meta["suite"] == "lhs+added" and meta["prior_low"] == json.loads(lhs.read_text())["prior_low"]
    assert all(s["snapshots"][0].startswith("../") for s in meta["simulations"])  # relative to the new folder
    assert meta["merged_from"] == ["../lhs/manifest.json", "../added/manifest.json"]
    kw = dict(val_fraction=0.0, test_fraction=0.0, progress=False)
    both = _fields(build_training_set(merged, tmp_path / "both.h5", **kw))
    alone = {**_fields(build_training_set(lhs, tmp_path / "lhs.h5", **kw)),
             **_fields(build_training_set(added, tmp_path / "added.h5", **kw))}
    assert set(both) == {"sim_0000", "corner"}
    for sid, arrays in both.items():
        assert arrays.keys() == alone[sid].keys()
        for name, value in arrays.items():
            np.testing.assert_array_equal(value, alone[sid][name], err_msg=f"{sid}/{name}")


def test_added_points_can_be_kept_in_training(tmp_path):
    """--train-only: every simulation of the added suite is trained on, and the build splits the others exactly as
    it splits their suite alone (same seed and fractions), so a run on the merged set differs from one on the suite
    alone only by the added points."""
    lhs = _suite(tmp_path / "lhs", n=4)
    added = _suite(tmp_path / "added", n=0, cosmologies=ADDED)
    merged = merge_manifests([lhs, added], tmp_path / "m" / "manifest.json", train_only=[added])
    assert [s.get("split") for s in json.loads(merged.read_text())["simulations"]] == [None] * 4 + ["train"]
    alone, both = (assign_splits(load_manifest(m)[1], 0.25, 0.0, 0) for m in (lhs, merged))
    assert both["val"] == alone["val"] and len(alone["val"]) == 1
    assert both["train"] == alone["train"] + ["corner"]
    with pytest.raises(ValueError, match="--train-only .* is not one of the manifests"):
        merge_manifests([lhs, added], tmp_path / "x.json", train_only=[tmp_path / "other.json"])


def test_suites_that_cannot_make_one_training_set_are_refused(tmp_path):
    lhs = _suite(tmp_path / "lhs", n=1)
    out = tmp_path / "merged.json"
    cases = [
        (_suite(tmp_path / "steps", n=0, cosmologies=ADDED, steps=3), r"lhs/manifest.json \+ .*steps/manifest.json: "
                                                                       "the suite mixes simulation settings"),
        (_suite(tmp_path / "hull", n=0, cosmologies=ADDED, prior={**PRIOR, "h": [0.6, 0.7]}), "prior_low"),
        (lhs, "sim_id sim_0000 is in both"),
    ]
    for other, said in cases:
        with pytest.raises(ValueError, match=said) as err:
            merge_manifests([lhs, other], out)
        assert "\n" not in str(err.value) and not out.exists()
    with pytest.raises(ValueError, match="at least two"):
        merge_manifests([lhs], out)
    added = _suite(tmp_path / "added", n=0, cosmologies=ADDED)
    with pytest.raises(ValueError, match="lhs/manifest.json lists 1 simulations, fewer than --first 2"):
        merge_manifests([lhs, added], out, first=2)
    before = lhs.read_text()
    with pytest.raises(ValueError, match="is one of the manifests to merge"):
        merge_manifests([lhs, added], lhs)
    assert lhs.read_text() == before and not out.exists()


def test_merge_command_line(tmp_path, capsys):
    lhs = _suite(tmp_path / "lhs")
    added = _suite(tmp_path / "added", n=0, cosmologies=ADDED)
    out = tmp_path / "m.json"
    assert main(["merge", str(lhs), str(added), "--out", str(out)]) == 0
    assert f"{out}: 3 simulations" in capsys.readouterr().out
    assert main(["merge", str(lhs), str(lhs), "--out", str(tmp_path / "x.json")]) != 0
    assert "sim_id sim_0000 is in both" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


def test_hand_written_manifests_with_other_suite_settings_are_refused(tmp_path):
    """Without per-simulation ``inputs`` (a hand-written manifest) the suite-level ``simulation`` settings and
    simulator version still decide: other steps are refused in one line, with no file."""
    lhs, added = _suite(tmp_path / "lhs", n=1), _suite(tmp_path / "added", n=0, cosmologies=ADDED)
    for path in (lhs, added):
        meta = json.loads(path.read_text())
        for sim in meta["simulations"]:
            del sim["inputs"], sim["inputs_sha256"]
        path.write_text(json.dumps(meta))
    out = tmp_path / "merged.json"
    merge_manifests([lhs, added], out)  # the same settings: merged, keeping them
    assert json.loads(out.read_text())["simulation"] == json.loads(lhs.read_text())["simulation"]
    out.unlink()
    for key, value in (("simulation", {**SIM, "steps": 3}), ("simulator_version", 0)):
        edited = added.parent / f"edited_{key}.json"  # beside its snapshots
        edited.write_text(json.dumps({**json.loads(added.read_text()), key: value}))
        with pytest.raises(ValueError, match=f"edited_{key}.json and .*lhs/manifest.json differ in {key}") as err:
            merge_manifests([lhs, edited], out)
        assert "\n" not in str(err.value) and not out.exists()


def test_equal_settings_written_differently_are_merged(tmp_path):
    """Suites whose YAML writes a default out (lpt_order 2) simulate the same: their recorded inputs agree, so the
    merge goes on although the suite-level mappings, as written, differ."""
    lhs, added = _suite(tmp_path / "lhs", n=1), _suite(tmp_path / "added", n=0, cosmologies=ADDED, lpt_order=2)
    assert json.loads(lhs.read_text())["simulation"] != json.loads(added.read_text())["simulation"]
    merged = merge_manifests([lhs, added], tmp_path / "merged.json")
    assert len(json.loads(merged.read_text())["simulations"]) == 2
