"""Suite manifests: reading and checking them, and the fingerprint of the training set built from one.

The format is described in :mod:`data_prep.build`. A manifest written by ``data-prep simulate`` also records,
per simulation, ``inputs`` (everything that determined its snapshots: simulator version, box, grid, simulator
settings, cosmology, seed) and ``inputs_sha256``; :func:`load_manifest` checks that these agree with the entry
and the suite, and that every simulation was run with the same settings (a resumed suite whose config changed
half-way must not become one training set). Hand-written manifests without ``inputs`` are accepted as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py

from emulator.core.cosmology import Cosmology

from .fingerprint import differing_keys, digest, source_identity, summarise_keys

__all__ = ["SimulationEntry", "load_manifest", "check_simulation_inputs", "trainingset_fingerprint",
           "recorded_fingerprint", "check_recorded_fingerprint"]

#: manifest keys that record when/how a suite ran, not what it contains: left out of fingerprints
VOLATILE_SUITE_KEYS = frozenset({"simulations", "updated", "code_version"})
VOLATILE_SIM_KEYS = frozenset({"wall_seconds", "device"})


@dataclass(frozen=True)
class SimulationEntry:
    """One simulation of a manifest (paths resolved)."""

    sim_id: str
    cosmology: Cosmology
    seed: int | None
    snapshots: tuple[str, ...]
    ic: str | None
    length_unit: str | float | None = None
    split: str | None = None


def load_manifest(path: str | Path) -> tuple[dict, list[SimulationEntry]]:
    """Read a suite manifest; return (suite attributes, entries) or raise ``ValueError`` naming the file."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"manifest {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    for key in ("box_size", "ngrid", "simulations"):
        if key not in meta:
            raise ValueError(f"{path}: manifest lacks '{key}'")
    root = path.parent
    entries = []
    for i, sim in enumerate(meta["simulations"]):
        try:
            cosmo = Cosmology.from_mapping(sim["cosmology"])
            snaps = tuple(str(root / s) for s in sim["snapshots"])
            sim_id = str(sim["sim_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: simulation #{i} is invalid: {exc}") from None
        if not snaps:
            raise ValueError(f"{path}: simulation {sim_id} lists no snapshots")
        seed = sim.get("seed")
        ic = sim.get("ic")
        if seed is None and ic is None:
            raise ValueError(f"{path}: simulation {sim_id} needs a seed or an initial-conditions snapshot 'ic'")
        split = sim.get("split")
        if split not in (None, "train", "val", "test"):
            raise ValueError(f"{path}: simulation {sim_id} has split {split!r}; use train, val or test")
        entries.append(
            SimulationEntry(sim_id, cosmo, None if seed is None else int(seed), snaps,
                            None if ic is None else str(root / ic), sim.get("length_unit"), split)
        )
    if len({e.sim_id for e in entries}) != len(entries):
        raise ValueError(f"{path}: duplicate sim_id in manifest")
    check_simulation_inputs(path, meta)
    return meta, entries


def _settings(inputs: dict) -> dict:
    """The inputs that must be shared by every simulation of a suite (all but cosmology and seed)."""
    return {k: v for k, v in inputs.items() if k not in ("cosmology", "seed")}


def _number(value, kind):
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def check_simulation_inputs(path: str | Path, meta: dict) -> None:
    """Check the recorded ``inputs`` of every simulation against its entry, the suite and each other.

    Raises
    ------
    ValueError
        One line naming the manifest, the simulation(s) and the differing keys: an ``inputs_sha256`` that does
        not hash its ``inputs`` (edited by hand), a cosmology, seed, box or grid other than the entry's or the
        suite's, or simulations run with different settings (e.g. ``simulation.steps``).
    """
    first = None
    for sim in meta["simulations"]:
        inputs, sid = sim.get("inputs"), sim.get("sim_id")
        if inputs is None:
            continue
        if not isinstance(inputs, dict) or digest(inputs) != sim.get("inputs_sha256"):
            raise ValueError(f"{path}: simulation {sid}: 'inputs_sha256' does not match its 'inputs' (edited?)")
        bad = [k for k in ("cosmology", "seed") if k not in inputs or differing_keys(inputs[k], sim.get(k))]
        bad += [k for k, kind in (("box_size", float), ("ngrid", int)) if _number(inputs.get(k), kind) != meta[k]]
        if bad:
            raise ValueError(f"{path}: simulation {sid} was simulated with other {', '.join(bad)} than its manifest "
                             "entry says")
        if first is None:
            first = (sid, _settings(inputs))
            continue
        keys = differing_keys(first[1], _settings(inputs))
        if keys:
            raise ValueError(f"{path}: the suite mixes simulation settings ({sid} differs from {first[0]} in "
                             f"{summarise_keys(keys)}); re-simulate so that every simulation shares one configuration")


def trainingset_fingerprint(path: str | Path, meta: dict, *, val_fraction: float, test_fraction: float,
                            split_seed: int, format_version: int, builder_version: int) -> dict:
    """Everything that determines the training set built from the manifest ``path`` (contents ``meta``).

    The manifest's contents (but for :data:`VOLATILE_SUITE_KEYS` and :data:`VOLATILE_SIM_KEYS`), each
    simulation's source files by identity (:func:`data_prep.fingerprint.source_identity`), the split options and
    the builder's versions. Floats and ints are normalised so that the command line and Python calls agree.
    """
    root = str(Path(path).parent)
    sims = {}
    for sim in meta["simulations"]:
        record = {k: v for k, v in sim.items() if k not in VOLATILE_SIM_KEYS}
        names = list(sim["snapshots"]) + ([sim["ic"]] if sim.get("ic") else [])
        record["sources"] = {name: source_identity(str(Path(root) / name), root) for name in names}
        sims[str(sim["sim_id"])] = record
    return {
        "format_version": int(format_version),
        "builder_version": int(builder_version),
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction),
        "split_seed": int(split_seed),
        "manifest": {k: v for k, v in meta.items() if k not in VOLATILE_SUITE_KEYS},
        "simulations": sims,
    }


def recorded_fingerprint(path: Path) -> dict | None:
    """The fingerprint stored in a training set or partial build (None when it has none)."""
    try:
        with h5py.File(path, "r") as f:
            return json.loads(f["fingerprint"][()]) if "fingerprint" in f else None
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 training set ({exc}); move it away or pass --rebuild") from None


def check_recorded_fingerprint(path: Path, fingerprint: dict, what: str) -> None:
    """Raise ``ValueError`` naming the differing keys unless the training set ``path`` records ``fingerprint``.

    ``what`` says what ``path`` is, for the message (e.g. "an interrupted build").
    """
    old = recorded_fingerprint(path)
    if old is not None and digest(old) == digest(fingerprint):
        return
    keys = ["fingerprint (none recorded: built by an older data-prep)"] if old is None else \
        differing_keys(old, fingerprint)
    raise ValueError(f"{path} ({what}) was built from other inputs (differing: {summarise_keys(keys)}); "
                     "pass --rebuild to rebuild it, or choose another --out")
