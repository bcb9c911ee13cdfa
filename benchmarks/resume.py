"""Resumable benchmark runs: finished pieces are kept beside the outputs and reused when the same run starts again.

The full tier at 128^3 takes hours per redshift on a CPU. So that a killed run, or one stopped at the end of a
working stretch, loses nothing it finished, every piece is written as soon as it is done (atomically, with
``torch.save``) into ``<out>/partial/``: one per truth (its comparison with every contender), one per covariance
method (its realizations so far, by seed) and one per timed method (:mod:`benchmarks.response`: one per redshift
and cosmology, with its own source hash in the scope). The next start loads them
(``weights_only=True``) instead of recomputing them.

A piece is reused only when its fingerprint, which is stored in it, is the one the run would make it from. The
fingerprint joins what every piece depends on (:func:`common_fingerprint`: the code, as one hash per source file of
the numerical packages in :data:`CODE_PATHS` taken over the parsed code without comments and docstrings; library
versions; the machine; the device type; particles, box and redshift; the model file's sha256) with what the piece
itself depends on (its ``scope``: the configuration sections, recipe, cosmology and seed, and for a truth read from
a file that file's identity), so a change to the timing settings keeps every accuracy piece. Pieces made from other
inputs are never used (the log says which inputs differ) and stay until ``--fresh``. Every piece records the git
commit that made it and its compute time; the results name the commits and the time of reused pieces.
"""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import torch

from data_prep.fingerprint import canonical_json, differing_keys, digest, summarise_keys
from emulator.core.atomic import atomic_path
from emulator.core.camb_cache import camb_version
from emulator.core.provenance import code_version, utc_now

from .env import hardware, jsonify, versions

__all__ = ["CODE_PATHS", "PARTIAL_DIR", "source_fingerprint", "common_fingerprint", "PartialStore"]

ROOT = Path(__file__).resolve().parent.parent
#: source trees whose code sets a benchmark's numbers (folders: every ``*.py`` under them), relative to the repo
CODE_PATHS: tuple[str, ...] = (
    "emulator/core", "emulator/mocks", "emulator/model", "emulator/training/trainingset.py", "data_prep/simulate",
    "data_prep/readers", "data_prep/writers.py", "benchmarks/config.py", "benchmarks/contenders.py",
    "benchmarks/ensemble.py", "benchmarks/lognormal.py", "benchmarks/metrics.py", "benchmarks/run.py",
    "benchmarks/speed.py", "benchmarks/suite_truth.py", "benchmarks/truth.py",
)
#: folder of the pieces, inside a run's output folder
PARTIAL_DIR = "partial"
_DOC_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def _code_hash(source: str) -> str:
    """SHA-256 (16 hex digits) of the parsed code of ``source``: comments, docstrings and layout do not count."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, _DOC_OWNERS) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


def source_fingerprint(paths: tuple[str, ...] = CODE_PATHS, root: Path = ROOT) -> dict[str, str]:
    """``{relative path: code hash}`` of every Python file under ``paths`` (files or folders below ``root``)."""
    out = {}
    for rel in paths:
        path = root / rel
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            out[file.relative_to(root).as_posix()] = _code_hash(file.read_text())
    return out


def _library_versions() -> dict:
    """Python, torch, numpy, CUDA and CAMB versions (not the package version or commit: those change each commit)."""
    return {**{k: v for k, v in versions().items() if k not in ("package", "code")}, "camb": camb_version()}


def common_fingerprint(*, model_sha256: str | None, device: torch.device, setup: dict) -> dict:
    """What every piece of a run depends on, as a JSON-compatible dict.

    Parameters
    ----------
    model_sha256 : str or None
        SHA-256 of the model file (None: no generator).
    device : torch.device
        The run's device (its type, and the machine's CPU model and count or GPU name, enter: the pieces hold
        timings, and CPU and GPU arithmetic differ in the last bits).
    setup : dict
        Particles per side (``ngrid``), box (Mpc/h) and redshift.
    """
    hw = hardware(torch.device(device))
    machine = {k: hw.get(k) for k in ("cpu_model", "cpu_count", "gpu_name")}
    return jsonify({"code": source_fingerprint(), "libraries": _library_versions(), "machine": machine,
                    "device": torch.device(device).type, "model_sha256": model_sha256, "setup": setup})


def _check_plain(value: Any, where: str = "value") -> None:
    """Raise ``TypeError`` naming the first entry that ``torch.load(weights_only=True)`` would refuse."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"piece {where}: key {k!r} is not a string")
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN) or type(value).__module__ == "numpy":
        raise TypeError(f"piece {where}: {type(value).__name__} cannot be stored (tensors, numbers, strings, "
                        f"lists and dicts only)")


class PartialStore:
    """The pieces of one run in ``<out_dir>/partial/`` (created; ``fresh`` first deletes every piece).

    Parameters
    ----------
    out_dir : Path
        The run's output folder.
    common : dict
        From :func:`common_fingerprint`.
    log : callable
        One-line messages (pieces of other inputs found, unreadable pieces).
    fresh : bool
        Delete all pieces before starting.
    """

    def __init__(self, out_dir: Path, common: dict, log: Callable[[str], None], *, fresh: bool = False):
        self.dir = Path(out_dir) / PARTIAL_DIR
        if fresh and self.dir.exists():
            shutil.rmtree(self.dir)
            log(f"--fresh: earlier pieces in {self.dir} deleted")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.common, self.log = common, log
        self.reused: Counter[str] = Counter()
        self.reused_seconds = 0.0
        self._said: set[str] = set()

    def _fingerprint(self, scope: dict) -> dict:
        return {**self.common, "scope": jsonify(scope)}

    def _path(self, name: str, fingerprint: dict) -> Path:
        return self.dir / f"{name}.{digest(fingerprint)[:16]}.pt"

    def _load(self, path: Path) -> dict | None:
        try:
            piece = torch.load(path, weights_only=True, map_location="cpu")
            if not (isinstance(piece, dict) and {"fingerprint", "commit", "seconds", "value"} <= set(piece)):
                raise ValueError("not a benchmark piece")
            return piece
        except Exception as exc:  # noqa: BLE001 - an unreadable piece is recomputed, never trusted
            self.log(f"piece {path} unreadable ({type(exc).__name__}: {exc}): recomputed")
            return None

    def get(self, name: str, scope: dict) -> Any | None:
        """The piece ``name`` made from ``scope`` (and the common inputs) by an earlier start, else None."""
        fingerprint = self._fingerprint(scope)
        path = self._path(name, fingerprint)
        piece = self._load(path) if path.exists() else None
        if piece is None or piece["fingerprint"] != json.loads(canonical_json(fingerprint)):
            for other in sorted(self.dir.glob(f"{name}.*.pt")):
                old = self._load(other) if other != path else None
                if old is not None:
                    why = summarise_keys(differing_keys(old["fingerprint"], fingerprint))
                    if why not in self._said:
                        self._said.add(why)
                        self.log(f"pieces in {self.dir} made with other inputs ({why}) are not used")
            return None
        self.reused[str(piece["commit"])] += 1
        self.reused_seconds += float(piece["seconds"])
        return piece["value"]

    def put(self, name: str, scope: dict, value: Any, seconds: float) -> None:
        """Write the piece ``name`` atomically (tensors, numbers, strings, lists and dicts only).

        ``seconds``: the wall time it took, kept so that resumed results can state their whole compute time.
        """
        _check_plain(value, name)
        fingerprint = json.loads(canonical_json(self._fingerprint(scope)))
        with atomic_path(self._path(name, fingerprint)) as tmp:
            torch.save({"fingerprint": fingerprint, "commit": code_version(), "made": utc_now(),
                        "seconds": float(seconds), "value": value}, tmp)

    def summary(self) -> dict | None:
        """``{pieces, seconds, commits}`` of the pieces reused from earlier starts (None when none were)."""
        if not self.reused:
            return None
        return {"pieces": sum(self.reused.values()), "seconds": self.reused_seconds, "commits": dict(self.reused)}

    def note(self) -> str | None:
        """A line for the results' notes when pieces from earlier starts were reused (None otherwise)."""
        s = self.summary()
        if s is None:
            return None
        commits = ", ".join(f"{c} ({n})" for c, n in sorted(s["commits"].items()))
        return (f"resumed: {s['pieces']} piece(s) of this run ({s['seconds']:.0f} s of computing) were reused from "
                f"earlier starts with the same inputs (code hashes, configuration, model, machine), made at "
                f"commit(s) {commits}")
