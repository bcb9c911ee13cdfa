"""``data-prep merge``: one manifest from several suites' manifests, so one training set can draw on all of them.

A training design is often more than one suite: a Latin hypercube plus points added where it is thin (the hull's
corners, a fiducial cosmology, Fisher steps). Each suite keeps its own folder and manifest; the merged manifest lists
their simulations with snapshot paths rewritten relative to its own folder, and ``data-prep build`` reads it as any
other. Suites are merged only when the result is one training set: the same box (Mpc/h), grid, parameter names and
prior hull, the same simulation settings (checked by :func:`data_prep.manifest.check_simulation_inputs` on the
inputs ``data-prep simulate`` records per simulation; for hand-written manifests without them, the suite-level
``simulation`` and ``simulator_version`` as written) and unique ``sim_id`` values; otherwise a one-line error
names the manifests and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from emulator.core.atomic import atomic_open
from emulator.core.provenance import code_version, utc_now

from .manifest import check_simulation_inputs, load_manifest

__all__ = ["merge_manifests", "add_arguments", "run"]

#: suite attributes every merged manifest must share (one training set has one box, grid and hull)
SHARED_KEYS = ("box_size", "ngrid", "param_names", "prior_low", "prior_high")


def _relative(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` (both resolved), with ``/`` separators as manifests write them."""
    return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()


def _rebased(sim: dict, src: Path, dst: Path) -> dict:
    """``sim`` with its snapshot and initial-condition paths (relative to the folder ``src``) made relative to the
    folder ``dst``."""
    out = {**sim, "snapshots": [_relative(src / s, dst) for s in sim["snapshots"]]}
    if sim.get("ic"):
        out["ic"] = _relative(src / sim["ic"], dst)
    return out


def merge_manifests(paths: list[str | Path], out: str | Path, *, first: int | None = None,
                    train_only: list[str | Path] = ()) -> Path:
    """Write one manifest listing the simulations of every manifest in ``paths`` (in that order).

    Parameters
    ----------
    paths : list of str or Path
        Suite manifests (``data-prep simulate`` writes ``<out_dir>/manifest.json``); at least two.
    out : str or Path
        Merged manifest to write (atomically); its snapshot paths are relative to its folder.
    first : int, optional
        Keep only the first ``first`` simulations each manifest lists (a suite's manifest lists its finished ones in
        design order), e.g. the first 32 of a Latin-hypercube suite that is still running; a manifest listing fewer
        is refused.
    train_only : list of str or Path
        Manifests among ``paths`` whose simulations are all trained on: marked ``split: train``, so that
        ``data-prep build`` holds none of them out (points added where the design is thin). The build splits the
        other simulations by cosmology as it would split them alone.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ValueError
        Fewer than two manifests, ``out`` one of them, manifests that differ in box, grid, parameters, prior hull
        or simulation settings (the suite-level ``simulation`` and ``simulator_version`` where given, and those
        ``data-prep simulate`` records per simulation), a ``sim_id`` found in two of them, or one listing fewer
        than ``first`` simulations.
    """
    if len(paths) < 2:
        raise ValueError("data-prep merge needs at least two manifests")
    if first is not None and first < 1:
        raise ValueError(f"--first must be at least 1, got {first}")
    out = Path(out)
    if out.resolve() in {Path(p).resolve() for p in paths}:
        raise ValueError(f"--out {out} is one of the manifests to merge: choose another file")
    unknown = [str(p) for p in train_only if Path(p).resolve() not in {Path(q).resolve() for q in paths}]
    if unknown:
        raise ValueError(f"--train-only {unknown[0]} is not one of the manifests to merge")
    trained = {Path(p).resolve() for p in train_only}
    metas, sims, owner = [], [], {}
    for path in map(Path, paths):
        meta, _ = load_manifest(path)
        if metas:
            bad = [k for k in SHARED_KEYS if meta.get(k) != metas[0].get(k)]
            if bad:
                raise ValueError(f"{path} and {paths[0]} differ in {', '.join(bad)}: they cannot make one training "
                                 "set")
        metas.append(meta)
        if first is not None and len(meta["simulations"]) < first:
            raise ValueError(f"{path} lists {len(meta['simulations'])} simulations, fewer than --first {first}")
        for sim in meta["simulations"][:first]:
            sid = str(sim["sim_id"])
            if sid in owner:
                raise ValueError(f"sim_id {sid} is in both {owner[sid]} and {path}")
            owner[sid] = path
            sim = _rebased(sim, path.parent, out.parent)
            sims.append({**sim, "split": "train"} if path.resolve() in trained else sim)
    merged = {**{k: metas[0][k] for k in SHARED_KEYS if k in metas[0]},
              "suite": "+".join(str(m.get("suite", "?")) for m in metas),
              "merged_from": [_relative(Path(p), out.parent) for p in paths],  # as the snapshots: from its folder
              "code_version": code_version(), "updated": utc_now(), "simulations": sims}
    check_simulation_inputs(" + ".join(map(str, paths)), merged)  # one set of simulation settings across suites
    hand_written = any("inputs" not in sim for sim in sims)  # else the per-simulation check above decided
    for key in ("simulation", "simulator_version"):  # suite-level: as written, so only without per-simulation inputs
        given = [(p, m[key]) for p, m in zip(paths, metas) if key in m]
        if hand_written and any(v != given[0][1] for _, v in given):
            other = next(p for p, v in given if v != given[0][1])
            raise ValueError(f"{other} and {given[0][0]} differ in {key}: they cannot make one training set")
        if len(given) == len(metas):
            merged[key] = metas[0][key]
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out, "w") as fh:
        json.dump(merged, fh, indent=1)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``data-prep merge``."""
    parser.add_argument("manifests", nargs="+", help="suite manifests (JSON) to merge, in order")
    parser.add_argument("--out", required=True, help="merged manifest to write (atomically)")
    parser.add_argument("--first", type=int, default=None,
                        help="keep only each manifest's first N simulations (design order)")
    parser.add_argument("--train-only", action="append", default=[], metavar="MANIFEST",
                        help="one of the manifests whose simulations are all trained on (never held out by the "
                             "build's split), e.g. points added near the hull's corners; repeatable")


def run(args: argparse.Namespace) -> int:
    """Merge and print the merged manifest's path and its number of simulations."""
    out = merge_manifests(args.manifests, args.out, first=args.first, train_only=args.train_only)
    print(f"{out}: {len(json.loads(out.read_text())['simulations'])} simulations")
    return 0
