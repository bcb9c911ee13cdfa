"""Runs under ``torchrun`` (2 CPU processes, gloo): each rank computes a disjoint set of seeds, and the files and
the manifest are those of a one-process run of the same seeds."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from emulator.core.distributed import rank_world, shard

ROOT = Path(__file__).resolve().parents[1]
#: attrs that legitimately differ between two runs of the same seeds
TIMING_ATTRS = {"generation_seconds"}


def test_shard_is_a_deterministic_partition():
    items = list(range(11))
    for world in (1, 2, 3, 5, 16):
        parts = [shard(items, r, world) for r in range(world)]
        assert sorted(x for p in parts for x in p) == items  # every item exactly once
        assert parts == [shard(items, r, world) for r in range(world)]
        assert all(p == items[r::world] for r, p in enumerate(parts))  # round-robin
    with pytest.raises(ValueError, match="rank"):
        shard(items, 2, 2)


def test_rank_world_from_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert rank_world() == (0, 1)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert rank_world() == (3, 4)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK"):
        rank_world()


def _torchrun(nproc: int, args: list[str]) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "emulator.cli", *args]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return res.stdout


def _contents(path: Path) -> tuple[dict, dict]:
    arrays: dict = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        attrs = {k: v for k, v in f.attrs.items() if k not in TIMING_ATTRS}
    return arrays, attrs


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


@pytest.mark.slow
def test_generate_over_two_ranks_matches_one_process(tmp_path):
    common = ["generate", "--preset", "planck18", "--box-size", "32", "--n-realizations", "4", "--seed", "3",
              "--tracer", "particles", "--number-density", "0.005", "--no-progress"]
    out2 = _torchrun(2, [*common, "--out", str(tmp_path / "two")])
    _torchrun(1, [*common, "--out", str(tmp_path / "one")])
    names = [f"mock_{s:06d}.hdf5" for s in range(3, 7)]
    assert out2.split() == [str(tmp_path / "two" / n) for n in names]  # rank 0 lists every rank's files, once
    for d in ("one", "two"):
        assert sorted(p.name for p in (tmp_path / d).iterdir() if not p.name.startswith(".")) == [
            "manifest.json", *names]
    for name in names:
        (a1, t1), (a2, t2) = _contents(tmp_path / "one" / name), _contents(tmp_path / "two" / name)
        assert sorted(a1) == sorted(a2) and sorted(t1) == sorted(t2)
        assert all(np.array_equal(a1[k], a2[k]) for k in a1)
        assert all(_same(t1[k], t2[k]) for k in t1), [k for k in t1 if not _same(t1[k], t2[k])]
    m1, m2 = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("one", "two"))
    assert m1["identity"] == m2["identity"] and m2["identity"]["BoxSize"] == 32.0
    assert m2["n_files"] == 4 and [f["file"] for f in m2["files"]] == names
    assert [f["seed"] for f in m2["files"]] == [3, 4, 5, 6] and not any(f["kept"] for f in m2["files"])
    for f in m2["files"]:  # the manifest describes the files on disk
        path = tmp_path / "two" / f["file"]
        assert f["size"] == path.stat().st_size and len(f["sha256"]) == 64

    # a killed/partial campaign resumes: a rerun over 2 ranks keeps every verified file and recomputes none
    out_again = _torchrun(2, [*common, "--out", str(tmp_path / "two")])
    assert out_again.count("kept") == 4
    m3 = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert all(f["kept"] for f in m3["files"])
    assert [f["sha256"] for f in m3["files"]] == [f["sha256"] for f in m2["files"]]

    # files made with other parameters are never overwritten silently, whichever rank owns them
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    other = [a if a != "0.005" else "0.01" for a in common]
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "emulator.cli", *other, "--out", str(tmp_path / "two")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "exists with other parameters" in res.stderr
    for f in m3["files"]:
        assert hashlib.sha256((tmp_path / "two" / f["file"]).read_bytes()).hexdigest() == f["sha256"]
    assert json.loads((tmp_path / "two" / "manifest.json").read_text()) == m3  # nothing rewritten


def test_plain_call_writes_no_manifest(tmp_path, monkeypatch):
    from emulator.api import generate_mocks

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    paths = generate_mocks("planck18", box_size=32.0, n_realizations=2, out_dir=tmp_path, progress=False,
                           tracer="particles", number_density=0.005)
    assert [p.name for p in paths] == ["mock_000001.hdf5", "mock_000002.hdf5"]
    assert not (tmp_path / "manifest.json").exists()


SUITE_YAML = """name: dist
out_dir: {out}
box_size: 32.0
ngrid: 8
n_cosmologies: 3
seeds_per_cosmology: 1
base_seed: 100
design_seed: 0
prior:
  Omega_m: [0.25, 0.35]
  Omega_b: [0.04, 0.055]
  h: [0.62, 0.74]
  n_s: [0.92, 1.0]
  sigma8: [0.75, 0.9]
simulation:
  z_init: 9.0
  steps: 4
  force_factor: 2
  output_redshifts: [0.0]
num_files: 1
device: cpu
"""


def _torchrun_module(nproc: int, module: str, args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", module, *args]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]


@pytest.mark.slow
def test_simulate_suite_over_two_ranks_matches_one_process(tmp_path):
    runs = {}
    for nproc, d in ((2, "two"), (1, "one")):
        cfg = tmp_path / f"{d}.yaml"
        cfg.write_text(SUITE_YAML.format(out=tmp_path / d))
        _torchrun_module(nproc, "data_prep.cli", ["simulate", "--config", str(cfg), "--no-progress"])
        runs[d] = json.loads((tmp_path / d / "manifest.json").read_text())
    one, two = runs["one"], runs["two"]
    assert len(two["simulations"]) == 3
    strip = ("wall_seconds",)
    assert ([{k: v for k, v in s.items() if k not in strip} for s in one["simulations"]]
            == [{k: v for k, v in s.items() if k not in strip} for s in two["simulations"]])
    for sim in two["simulations"]:
        for snap in [sim["ic"], *sim["snapshots"]]:
            a1, t1 = _contents(tmp_path / "one" / snap)
            a2, t2 = _contents(tmp_path / "two" / snap)
            assert sorted(a1) == sorted(a2) and a1 and all(np.array_equal(a1[k], a2[k]) for k in a1)
        assert (tmp_path / "two" / sim["sim_id"] / "done.json").is_file()
    assert not list((tmp_path / "two").glob("*/manifest.json"))  # one manifest, at the top
