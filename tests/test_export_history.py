"""Training history in checkpoints and model files: recorded by ``emulator fit`` across resumes, rebuilt by
``emulator export`` from repeated ``--config`` or a ``--history`` file for older checkpoints, refused when it cannot
have produced the checkpoint; and the embedded model's history matches its recipe (configs/default_model*.yaml)
with its weights unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightning  # noqa: F401 - imported at collection: Lightning's log handler binds the session's stderr
import pytest
import torch
import yaml

from emulator.model.header import LPT_MODEL, MODELS_DIR
from emulator.training.history import check_history, format_history, layer_configs

try:
    from helpers_fit import TINY_CONFIG, cli, cli_fit, edit_checkpoint
except ImportError:  # pragma: no cover
    from tests.helpers_fit import TINY_CONFIG, cli, cli_fit, edit_checkpoint

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def two_runs(synthetic_training_set, tmp_path_factory):
    """``emulator fit`` to step 2, then resumed with max_steps raised to 4: (root, last.ckpt)."""
    import os

    root = tmp_path_factory.mktemp("history")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert cli_fit(synthetic_training_set, "--trainer.max_steps", "2", "--trainer.max_epochs", "5") == 0
        assert cli_fit(synthetic_training_set, "--trainer.max_steps", "4", "--trainer.max_epochs", "5",
                       "--ckpt_path", "last") == 0
    finally:
        os.chdir(cwd)
    return root, root / "runs" / "tiny_cpu" / "checkpoints" / "last.ckpt"


def _metadata(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["metadata"]


def test_export_records_the_history_of_a_resumed_run(two_runs, tmp_path, capsys):
    _, last = two_runs
    out = tmp_path / "model.pt"
    assert cli("export", "--ckpt", str(last), "--out", str(out)) == 0
    meta = _metadata(out)
    hist = meta["history"]
    assert [(s["step_from"], s["step_to"]) for s in hist] == [(0, 2), (2, 4)] and meta["global_step"] == 4
    assert [yaml.safe_load(s["config"])["trainer"]["max_steps"] for s in hist] == [2, 4]
    assert all(s["config_files"] == [str(TINY_CONFIG)] and s["wall_time_s"] > 0 for s in hist)
    assert hist[1]["resumed_from"].endswith("last.ckpt") and hist[0]["checkpoint"] == hist[1]["resumed_from"]
    assert hist[1]["checkpoint"] == str(last)
    assert yaml.safe_load(meta["training"]["config"])["trainer"]["max_steps"] == 4
    printed = capsys.readouterr().out
    assert "steps 0 -> 2" in printed and "steps 2 -> 4" in printed


def _legacy(two_runs, tmp_path) -> Path:
    """The checkpoint as an older version wrote it: no recorded history, no config beside it."""
    old = tmp_path / "old" / "last.ckpt"
    old.parent.mkdir()
    old.write_bytes(two_runs[1].read_bytes())
    edit_checkpoint(old, lambda c: c["callbacks"].pop("TrainingHistory"))
    return old


def _write(path: Path, cfg: dict) -> str:
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_export_builds_the_history_of_an_old_checkpoint_from_configs(two_runs, tmp_path, capsys):
    old = _legacy(two_runs, tmp_path)
    first = _write(tmp_path / "first.yaml", {**yaml.safe_load(TINY_CONFIG.read_text()), "trainer": {"max_steps": 2}})
    cont = _write(tmp_path / "continue.yaml", {"ckpt_path": "last", "trainer": {"max_steps": 4}})
    out = tmp_path / "model.pt"
    assert cli("export", "--ckpt", str(old), "--out", str(out), "--config", first, "--config", cont) == 0
    hist = _metadata(out)["history"]
    assert [(s["step_from"], s["step_to"]) for s in hist] == [(0, 2), (2, 4)]
    assert hist[0]["config"] == Path(first).read_text() and hist[1]["config_files"] == [first, cont]
    assert yaml.safe_load(hist[1]["config"]) == layer_configs([Path(first).read_text(), Path(cont).read_text()])[1]
    # one config whose max_steps (2) cannot have reached the checkpoint's step 4: a resumed run, refused
    capsys.readouterr()
    assert cli("export", "--ckpt", str(old), "--out", str(tmp_path / "m2.pt"), "--config", first) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "max_steps=2" in err and "--config" in err and first in err, err
    assert not (tmp_path / "m2.pt").exists()


def test_export_takes_a_history_file_and_checks_it(two_runs, tmp_path, capsys):
    old = _legacy(two_runs, tmp_path)
    segments = [{"step_from": 0, "step_to": 3, "config": "trainer: {max_steps: 3}\n", "wall_time_s": 60.0},
                {"step_from": 3, "step_to": 4, "config_files": [str(TINY_CONFIG)], "wall_time_s": None}]
    good = tmp_path / "history.json"
    good.write_text(json.dumps(segments))
    out = tmp_path / "model.pt"
    assert cli("export", "--ckpt", str(old), "--out", str(out), "--history", str(good)) == 0
    hist = _metadata(out)["history"]
    assert [(s["step_from"], s["step_to"]) for s in hist] == [(0, 3), (3, 4)]
    assert yaml.safe_load(hist[1]["config"]) == yaml.safe_load(TINY_CONFIG.read_text())  # read from config_files
    bad = tmp_path / "gap.json"
    bad.write_text(json.dumps([segments[0], {**segments[1], "step_from": 2}]))
    capsys.readouterr()
    assert cli("export", "--ckpt", str(old), "--out", str(tmp_path / "m2.pt"), "--history", str(bad)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "gap.json" in err and "contiguous" in err, err


# sha256 of the 2LPT-based embedded model's weights (emulator/models/default.pt, the default before hybrid_pm4)
# (names, dtypes and bytes of the network tensors in state_dict order),
# computed from the file of commit d4b113f, before its metadata was given the training history.
EMBEDDED_WEIGHTS_SHA256 = "64854704a9bfba3e65937d9518e3e79fda3676573d1cd35595c08ffcfbda1270"
LPT_MODEL_PATH = MODELS_DIR / f"{LPT_MODEL}.pt"


def _weights_digest(path: Path) -> str:
    sd = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    h = hashlib.sha256()
    for key, value in sd.items():
        h.update(key.encode())
        h.update(str(value.dtype).encode())
        h.update(value.contiguous().numpy().tobytes())
    return h.hexdigest()


def test_embedded_model_history_matches_its_recipe():
    """Two runs: configs/default_model.yaml to 4500 steps, then with configs/default_model_continue.yaml layered
    on it to 7000 (the model's global_step); the stored configs are those the files in configs/ give today, up to
    the first run's checkpoint callbacks (file naming only, see its note)."""
    meta = _metadata(LPT_MODEL_PATH)
    hist = check_history(meta["history"], int(meta["global_step"]), "default.pt")
    assert meta["global_step"] == 7000 and [(s["step_from"], s["step_to"]) for s in hist] == [(0, 4500), (4500, 7000)]
    base = (REPO / "configs" / "default_model.yaml").read_text()
    cont = (REPO / "configs" / "default_model_continue.yaml").read_text()
    first, second = (yaml.safe_load(s["config"]) for s in hist)
    today = yaml.safe_load(base)
    assert first["trainer"].pop("callbacks") != today["trainer"].pop("callbacks")
    assert first == today and first["trainer"]["max_steps"] == 4500
    assert second == layer_configs([base, cont])[1] and second["trainer"]["max_steps"] == 7000
    assert second["ckpt_path"] == "last" and hist[1]["config_files"][-1] == "configs/default_model_continue.yaml"
    assert yaml.safe_load(meta["training"]["config"]) == second
    assert sum(s["wall_time_s"] for s in hist) == pytest.approx(55 * 60, rel=0.1)
    text = format_history(hist)
    assert "steps 0 -> 4500" in text and "steps 4500 -> 7000" in text and "configs/default_model_continue.yaml" in text


def test_embedded_model_weights_unchanged():
    assert _weights_digest(LPT_MODEL_PATH) == EMBEDDED_WEIGHTS_SHA256



def _given_in(given, stored) -> bool:
    """Whether every setting of ``given`` (a layered config) has the same value in ``stored`` (a resolved one,
    where Lightning filled in every default)."""
    if isinstance(given, dict):
        return isinstance(stored, dict) and all(k in stored and _given_in(v, stored[k]) for k, v in given.items())
    if isinstance(given, list):
        return isinstance(stored, list) and len(given) == len(stored) and all(map(_given_in, given, stored))
    return given == stored


@pytest.mark.parametrize("name, recipe, step, minutes", [("hybrid_pm4", "pm4", 2480, 58),
                                                          ("hybrid_cola4", "cola4", 2500, 67)])
def test_hybrid_model_history_matches_its_recipe(name, recipe, step, minutes):
    """The 2 Mpc/h hybrids, the default hybrid_cola4 and hybrid_pm4 (the default before it): one run each of the
    README's design command (configs/design/cpu_budget.yaml with configs/design/<recipe>.yaml layered on it,
    ``--torch_threads 1``), best validation checkpoint at the given step, the recorded wall time."""
    meta = _metadata(MODELS_DIR / f"{name}.pt")
    hist = check_history(meta["history"], int(meta["global_step"]), f"{name}.pt")
    assert meta["global_step"] == step and [(s["step_from"], s["step_to"]) for s in hist] == [(0, step)]
    files = ["configs/design/cpu_budget.yaml", f"configs/design/{recipe}.yaml"]
    assert hist[0]["config_files"] == files
    today = layer_configs([(REPO / f).read_text() for f in files])[1]
    stored = yaml.safe_load(hist[0]["config"])
    assert today.pop("torch_threads", None) is None and stored.pop("torch_threads") == 1  # given on the command line
    assert _given_in(today, stored)
    assert yaml.safe_load(meta["training"]["config"]) == {**stored, "torch_threads": 1}
    assert hist[0]["wall_time_s"] == pytest.approx(minutes * 60, rel=0.05)
