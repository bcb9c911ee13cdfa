"""One-line errors for wrong or damaged inputs of ``emulator fit`` (``data.path``, ``--ckpt_path``) and
``emulator export --ckpt``, on real files made here: a mock catalog, Gadget snapshots (HDF5 and binary), a truncated
training set, and a truncated or damaged Lightning checkpoint."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import lightning  # noqa: F401 - imported at collection: Lightning's log handler binds the session's stderr
import numpy as np
import pytest

try:
    from helpers_fit import cli, cli_fit
except ImportError:  # pragma: no cover
    from tests.helpers_fit import cli, cli_fit

pytestmark = pytest.mark.usefixtures("one_thread")

COSMO = {"Omega_m": 0.3, "Omega_b": 0.048, "h": 0.68, "n_s": 0.965, "sigma8": 0.8}


@pytest.fixture(scope="module")
def checkpoint(synthetic_training_set, tmp_path_factory) -> Path:
    """A real 2-step checkpoint of the tiny config."""
    root = tmp_path_factory.mktemp("fit_errors")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert cli_fit(synthetic_training_set, "--trainer.max_steps", "2", "--trainer.max_epochs", "1") == 0
    finally:
        os.chdir(cwd)
    return root / "runs" / "tiny_cpu" / "checkpoints" / "last.ckpt"


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1
    line = err[-1]
    assert all("Traceback" not in e for e in err), err
    return line


def _particles(n=8, box=32.0):
    q = (np.stack(np.meshgrid(*(np.arange(n),) * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * box / n
    return q, np.zeros_like(q), np.arange(n**3, dtype=np.int64)


def _mock_catalog(path: Path) -> Path:
    from emulator.mocks.io import write_catalog

    pos, vel, _ = _particles()
    write_catalog(path, {"Position": pos, "Velocity": vel}, attrs={"BoxSize": 32.0, **COSMO})
    return path


def _gadget_hdf5(path: Path) -> Path:
    from data_prep.writers import write_gadget4_hdf5

    pos, vel, ids = _particles()
    return Path(write_gadget4_hdf5(path, pos, vel, ids, 32.0, 0.0, COSMO, 1e11)[0])


def _gadget_binary(path: Path) -> Path:
    from data_prep.writers import write_gadget2_binary

    pos, vel, ids = _particles()
    return Path(write_gadget2_binary(path, pos, vel, ids, 32.0, 0.0, COSMO, 1e11)[0])


def _truncated(src: Path, dst: Path, fraction: float = 0.6) -> Path:
    data = Path(src).read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.mark.parametrize("kind, words", [
    ("catalog", ("mock catalog",)),
    ("gadget_hdf5", ("Gadget", "HDF5 snapshot")),
    ("gadget_binary", ("Gadget-2 binary snapshot",)),
    ("truncated", ("truncated HDF5",)),
])
def test_fit_refuses_files_that_are_not_training_sets(synthetic_training_set, tmp_path, monkeypatch, capsys,
                                                      kind, words):
    monkeypatch.chdir(tmp_path)
    path = {
        "catalog": lambda: _mock_catalog(tmp_path / "mock.hdf5"),
        "gadget_hdf5": lambda: _gadget_hdf5(tmp_path / "snap_000.hdf5"),
        "gadget_binary": lambda: _gadget_binary(tmp_path / "snap_000"),
        "truncated": lambda: _truncated(synthetic_training_set, tmp_path / "train_part.h5"),
    }[kind]()
    assert path.is_file()
    assert cli_fit(path, "--trainer.max_steps", "1") == 2
    line = _error_line(capsys)
    assert line.startswith("emulator fit: error: ") and str(path) in line and "(data.path)" in line, line
    assert all(w in line for w in words), line
    assert not (tmp_path / "runs" / "tiny_cpu" / "checkpoints").exists()  # refused before training


def _damaged(src: Path, dst: Path) -> Path:
    data = bytearray(Path(src).read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])  # same size, still a zip archive
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("damage, word", [(_truncated, "truncated"), (_damaged, "damaged")])
def test_fit_refuses_a_bad_checkpoint_to_resume_from(synthetic_training_set, checkpoint, tmp_path, monkeypatch,
                                                     capsys, damage, word):
    monkeypatch.chdir(tmp_path)
    bad = damage(checkpoint, tmp_path / "bad.ckpt")
    assert cli_fit(synthetic_training_set, "--trainer.max_steps", "3", "--ckpt_path", str(bad)) == 2
    line = _error_line(capsys)
    assert line.startswith("emulator fit: error: ") and str(bad) in line and "ckpt_path" in line, line
    assert word in line, line


@pytest.mark.parametrize("damage, word", [(_truncated, "truncated"), (_damaged, "damaged")])
def test_export_refuses_a_bad_checkpoint(checkpoint, tmp_path, capsys, damage, word):
    bad = damage(checkpoint, tmp_path / "bad.ckpt")
    out = tmp_path / "model.pt"
    assert cli("export", "--ckpt", str(bad), "--out", str(out)) == 2
    line = _error_line(capsys)
    assert line.startswith("emulator export: error: ") and str(bad) in line and "--ckpt" in line, line
    assert word in line, line
    assert not out.exists()


def test_export_checkpoint_refuses_truncated_file_with_one_line(checkpoint, tmp_path):
    from emulator.model.portable import export_checkpoint

    bad = _truncated(checkpoint, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError) as exc:
        export_checkpoint(bad, tmp_path / "m.pt")
    assert "\n" not in str(exc.value) and str(bad) in str(exc.value)
    shutil.copyfile(checkpoint, tmp_path / "good.ckpt")
    assert export_checkpoint(tmp_path / "good.ckpt", tmp_path / "m.pt").is_file()
