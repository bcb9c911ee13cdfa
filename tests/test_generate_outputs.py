"""Output files of ``generate_mocks``: one writer per file (locks across processes), no silent replacement of a
file made with other parameters (``overwrite``), identical reruns keep complete files, unwritable folders and
out-of-range seeds fail before any mock is computed and leave nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from emulator.api import generate_mocks
from emulator.cli import main
from emulator.core.locks import BusyError
from emulator.core.cosmology import Cosmology
from emulator.mocks import api
from emulator.mocks.io import read_catalog
from emulator.model.emulate import SEED_MAX
from tests.helpers_model import write_small_model

ROOT = Path(__file__).resolve().parent.parent
COSMO = Cosmology(0.3, 0.048, 0.68, 0.965, 0.8)
CLI_COSMO = ["--omega-m", "0.3", "--omega-b", "0.048", "--h", "0.68", "--n-s", "0.965", "--sigma8", "0.8"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small random-weight model (cell 4 Mpc/h: 16^3 particles in 64 Mpc/h), hull around COSMO, z in [0, 1]."""
    return write_small_model(tmp_path_factory.mktemp("model") / "m.pt", COSMO, out_init_scale=None)


@pytest.fixture
def count_mocks(monkeypatch):
    """Counts the mocks computed (calls of emulate_fields by the API)."""
    calls = []
    real = api.emulate_fields

    def counting(*args, **kwargs):
        calls.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "emulate_fields", counting)
    return calls


def _gen(model_file, out, **kw):
    return generate_mocks(kw.pop("cosmo", COSMO), box_size=64.0, model=model_file, out_dir=out, progress=False,
                          **kw)


def _cli_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


FIRST_RUN = textwrap.dedent("""
    import sys, time
    from emulator.mocks import api
    real = api.emulate_fields
    def slow(*args, **kwargs):  # a first run caught in the middle of computing its mock
        print("computing", flush=True)
        time.sleep(60)
        return real(*args, **kwargs)
    api.emulate_fields = slow
    api.generate_mocks({"Omega_m": 0.3, "Omega_b": 0.048, "h": 0.68, "n_s": 0.965, "sigma8": 0.8},
                       box_size=64.0, model=sys.argv[2], out_dir=sys.argv[1], progress=False)
""")


def test_second_concurrent_writer_gets_a_one_line_error(model_file, tmp_path, count_mocks, capsys, monkeypatch):
    """A first run (another process) is computing mock_000001.hdf5: a second run into that file stops at once."""
    out = tmp_path / "mocks"
    holder = subprocess.Popen([sys.executable, "-c", FIRST_RUN, str(out), str(model_file)], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "computing"
        with pytest.raises(BusyError, match=r"mock_000001\.hdf5: another emulator generate run is writing"):
            _gen(model_file, out, n_realizations=2)
        err = _cli_error(["generate", *CLI_COSMO, "--box-size", "64", "--model", str(model_file), "--out",
                          str(out), "--no-progress"], capsys)
        assert "mock_000001.hdf5" in err and "another emulator generate run" in err
        assert count_mocks == [] and not (out / "mock_000002.hdf5").exists()  # nothing computed, nothing written
        (p,) = _gen(model_file, out, seeds=[5])  # another seed into the same folder proceeds side by side
        assert p.name == "mock_000005.hdf5"
        from emulator.mocks import outputs
        from emulator.mocks.outputs import Target, reserve_outputs

        monkeypatch.setattr(outputs, "max_file_locks", lambda: 0)  # a run too big to lock file by file ...
        with pytest.raises(BusyError, match="another emulator generate run is writing into this folder"):
            _gen(model_file, out, seeds=[6])  # ... needs the folder alone
        assert count_mocks == [5]
    finally:
        holder.kill()
        holder.wait()
    with reserve_outputs(out, [Target(out / "mock_000009.hdf5", {})]):  # a big run holds the whole folder
        monkeypatch.setattr(outputs, "max_file_locks", lambda: 100)
        with pytest.raises(BusyError, match="another emulator generate run holds this whole folder"):
            _gen(model_file, out, seeds=[7])
    (p,) = _gen(model_file, out)  # the locks went with the first run (killed) and the big one
    assert p.is_file() and sorted(os.listdir(out)) == ["mock_000001.hdf5", "mock_000005.hdf5"]  # no lock files left


def test_rerun_with_other_parameters_refuses_unless_overwrite(model_file, tmp_path, count_mocks, capsys):
    out = tmp_path / "o"
    (p,) = _gen(model_file, out)
    before = p.read_bytes()
    other = Cosmology(0.3, 0.048, 0.68, 0.965, 0.82)
    for kw, names in [({"cosmo": other}, ["sigma8"]), ({"redshift": 0.5}, ["redshift"]),
                      ({"tracer": "halos"}, ["tracer"]),
                      ({"min_members": 10}, ["tracer_options.min_members"])]:
        with pytest.raises(ValueError) as info:
            _gen(model_file, out, **kw)
        msg = str(info.value)
        assert "\n" not in msg and str(p) in msg and "overwrite" in msg
        assert all(f"{n}:" in msg for n in names), msg
    assert "sigma8: 0.8 in the file, 0.82 now" in _cli_error(
        ["generate", *CLI_COSMO[:-1], "0.82", "--box-size", "64", "--model", str(model_file), "--out", str(out),
         "--no-progress"], capsys)
    assert p.read_bytes() == before and len(count_mocks) == 1  # untouched, nothing computed after the first
    assert main(["generate", *CLI_COSMO[:-1], "0.82", "--box-size", "64", "--model", str(model_file), "--out",
                 str(out), "--no-progress", "--overwrite"]) == 0
    assert read_catalog(p, "data").attrs["sigma8"] == 0.82
    (p2,) = _gen(model_file, out, overwrite=True)
    assert read_catalog(p2, "data").attrs["sigma8"] == 0.8


def test_identical_rerun_keeps_complete_files(model_file, tmp_path, count_mocks, capsys):
    out = tmp_path / "o"
    p1, p2 = _gen(model_file, out, n_realizations=2)
    stat1 = p1.stat()
    p2.unlink()
    paths = _gen(model_file, out, n_realizations=2)
    assert list(paths) == [p1, p2] and paths.skipped == [p1] and p2.is_file()
    assert count_mocks == [1, 2, 2]  # seed 1 was not computed again
    assert (p1.stat().st_ino, p1.stat().st_mtime_ns) == (stat1.st_ino, stat1.st_mtime_ns)
    assert main(["generate", *CLI_COSMO, "--box-size", "64", "--model", str(model_file), "--out", str(out),
                 "--n-realizations", "2", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("kept" in line for line in lines) and count_mocks == [1, 2, 2]


def test_a_foreign_file_in_the_way_is_refused(model_file, tmp_path, count_mocks):
    out = tmp_path / "o"
    out.mkdir()
    (out / "mock_000001.hdf5").write_bytes(b"not a catalog")
    with pytest.raises(ValueError, match=r"mock_000001\.hdf5 exists and is not a catalog file"):
        _gen(model_file, out)
    assert count_mocks == [] and (out / "mock_000001.hdf5").read_bytes() == b"not a catalog"
    (p,) = _gen(model_file, out, overwrite=True)
    assert read_catalog(p, "data").size == 16**3


def _unwritable_cases(tmp_path: Path) -> list[tuple[Path, str]]:
    afile = tmp_path / "a_file"
    afile.write_text("x")
    cases = [(afile / "sub", "is a file"), (afile, "is a file")]
    ro = tmp_path / "read_only"
    ro.mkdir()
    ro.chmod(0o555)
    if not os.access(ro, os.W_OK) or os.geteuid() != 0:  # root writes into a mode-555 folder anyway
        cases.append((ro, "cannot write"))
        cases.append((ro / "new", "cannot create"))
    sys_dir = Path("/sys/kernel")
    if sys_dir.is_dir():
        try:
            (sys_dir / "probe").touch()
        except OSError:
            cases.append((sys_dir, "cannot write"))
    return cases


def test_unwritable_out_fails_before_computing(model_file, tmp_path, count_mocks, capsys, monkeypatch):
    for out, match in _unwritable_cases(tmp_path):
        with pytest.raises(ValueError, match=match) as info:
            _gen(model_file, out)
        assert str(out) in str(info.value) and "\n" not in str(info.value)
        assert "out_dir" in _cli_error(["generate", *CLI_COSMO, "--box-size", "64", "--model", str(model_file),
                                        "--out", str(out), "--no-progress"], capsys)
    assert count_mocks == [] and not (tmp_path / "read_only" / "new").exists()
    (tmp_path / "read_only").chmod(0o755)
    from emulator.mocks import outputs

    def busy(target):
        raise ValueError(f"{target}: busy")

    monkeypatch.setattr(outputs, "_acquire", busy)  # a failure after the folders were made
    with pytest.raises(ValueError, match="busy"):
        _gen(model_file, tmp_path / "x" / "y" / "z")
    assert not (tmp_path / "x").exists() and count_mocks == []  # the new folders are removed again


def test_seed_range_is_checked_up_front(model_file, tmp_path, count_mocks, capsys):
    out = tmp_path / "o"
    for kw in [{"base_seed": 2**64}, {"base_seed": -1}, {"seeds": [1, 2**64]}, {"base_seed": SEED_MAX,
               "n_realizations": 2}, {"seeds": [3, 3]}, {"base_seed": 1.5}]:
        with pytest.raises(ValueError, match="seed") as info:
            _gen(model_file, out, **kw)
        assert "\n" not in str(info.value)
    err = _cli_error(["generate", *CLI_COSMO, "--box-size", "64", "--model", str(model_file), "--out", str(out),
                      "--seed", str(2**64)], capsys)
    assert "--seed" in err and "2^64 - 1" in err and "Overflow" not in err
    assert count_mocks == [] and not out.exists()
    (p,) = _gen(model_file, out, base_seed=SEED_MAX)  # the largest seed works end to end
    assert p.name == f"mock_{SEED_MAX}.hdf5" and read_catalog(p, "data").attrs["seed"] == SEED_MAX
