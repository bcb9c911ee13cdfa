"""Resumable benchmark runs: finished pieces are kept beside the outputs and reused when the same run starts again.

The full tier at 128^3 takes hours per redshift on a CPU. So that a killed run, or one stopped at the end of a
working stretch, loses nothing it finished, every piece is written as soon as it is done (atomically, with
``torch.save``) into ``<out>/partial/<key>/``: one file per truth cosmology and seed (its comparison with every
contender), one per covariance method (its realizations so far, by seed) and one for the timings. The next start of
the same run loads them (``weights_only=True``) instead of recomputing them.

The key is the SHA-256 of a fingerprint (:func:`run_fingerprint`) of everything that sets the numbers: the tier's
configuration (less the report's settings), the model file's sha256, the device type, the truth plan and recipe,
and the code: one hash per source file of the numerical packages (:data:`CODE_PATHS`), taken over the parsed code
without comments and docstrings, so that an edited comment keeps the pieces and an edited line of code drops them.
Pieces made under another key are never used (the log says which inputs differ). Every piece records the git commit
that made it; the results name the commits when pieces from earlier runs were reused.
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
from emulator.core.provenance import code_version, utc_now

from .env import jsonify

__all__ = ["CODE_PATHS", "PARTIAL_DIR", "source_fingerprint", "run_fingerprint", "PartialStore"]

ROOT = Path(__file__).resolve().parent.parent
#: source trees whose code sets a benchmark's numbers (folders: every ``*.py`` under them), relative to the repo
CODE_PATHS: tuple[str, ...] = (
    "emulator/core", "emulator/mocks", "emulator/model", "data_prep/simulate",
    "benchmarks/config.py", "benchmarks/contenders.py", "benchmarks/ensemble.py", "benchmarks/lognormal.py",
    "benchmarks/metrics.py", "benchmarks/run.py", "benchmarks/speed.py", "benchmarks/suite_truth.py",
    "benchmarks/truth.py",
)
#: folder of the pieces, inside a run's output folder
PARTIAL_DIR = "partial"
_DOC_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


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


def run_fingerprint(cfg: dict, *, model_sha256: str | None, device: torch.device, plan: list, recipe: dict,
                    setup: dict) -> dict:
    """Everything that determines a benchmark run's numbers, as a JSON-compatible dict.

    Parameters
    ----------
    cfg : dict
        The tier's resolved configuration; ``report`` and ``config_file`` (presentation, a file's location) are left
        out.
    model_sha256 : str or None
        SHA-256 of the model file (None: no generator).
    device : torch.device
        Its type enters (CPU and GPU arithmetic differ in the last bits).
    plan : list
        ``(Cosmology, seed, ...)`` of every truth, in order.
    recipe : dict
        The truth's simulation recipe.
    setup : dict
        Particles per side (``ngrid``), box (Mpc/h) and redshift.
    """
    config = {k: v for k, v in cfg.items() if k not in ("report", "config_file")}
    return jsonify({
        "config": config, "model_sha256": model_sha256, "device": torch.device(device).type,
        "plan": [[item[0].to_dict(), int(item[1])] for item in plan], "recipe": recipe, "setup": setup,
        "code": source_fingerprint(),
    })


class PartialStore:
    """The pieces of one run under ``<out_dir>/partial/<key>/`` (created; ``fresh`` first deletes every piece).

    Parameters
    ----------
    out_dir : Path
        The run's output folder.
    fingerprint : dict
        From :func:`run_fingerprint`; its digest is the key, and it is kept as ``fingerprint.json``.
    log : callable
        One-line messages (pieces of other runs found, pieces reused).
    fresh : bool
        Delete all pieces (of every key) before starting.
    """

    def __init__(self, out_dir: Path, fingerprint: dict, log: Callable[[str], None], *, fresh: bool = False):
        root = Path(out_dir) / PARTIAL_DIR
        if fresh and root.exists():
            shutil.rmtree(root)
            log(f"--fresh: earlier pieces in {root} deleted")
        self.key = digest(fingerprint)[:16]
        self.dir = root / self.key
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.reused: Counter[str] = Counter()
        record = self.dir / "fingerprint.json"
        if not record.exists():
            with atomic_path(record) as tmp:
                Path(tmp).write_text(canonical_json(fingerprint))
        for other in sorted(p for p in root.iterdir() if p.is_dir() and p.name != self.key):
            try:
                old = json.loads((other / "fingerprint.json").read_text())
                why = summarise_keys(differing_keys(old, fingerprint))
            except (OSError, ValueError):
                why = "no readable fingerprint.json"
            log(f"pieces in {other} were made with other inputs ({why}): not used")

    def _path(self, name: str) -> Path:
        return self.dir / f"{name}.pt"

    def get(self, name: str) -> Any | None:
        """The piece ``name`` if an earlier run (or this one) finished it, else None."""
        path = self._path(name)
        if not path.exists():
            return None
        try:
            piece = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - an unreadable piece is recomputed, never trusted
            self.log(f"piece {path} unreadable ({type(exc).__name__}): recomputed")
            return None
        self.reused[str(piece["commit"])] += 1
        return piece["value"]

    def put(self, name: str, value: Any) -> None:
        """Write the piece ``name`` atomically (tensors, numbers, strings, lists and dicts only)."""
        with atomic_path(self._path(name)) as tmp:
            torch.save({"commit": code_version(), "made": utc_now(), "value": value}, tmp)

    def note(self) -> str | None:
        """A line for the results' notes when pieces from earlier runs were reused (None otherwise)."""
        if not self.reused:
            return None
        commits = ", ".join(f"{c} ({n})" for c, n in sorted(self.reused.items()))
        return (f"resumed: {sum(self.reused.values())} piece(s) of this run were reused from earlier starts of the "
                f"same run with the same inputs (code hashes, configuration, model), made at commit(s) {commits}")
