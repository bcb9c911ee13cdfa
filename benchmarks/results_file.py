"""Reading a benchmark report's results: ``results.json``, or ``results.json.gz`` where a committed report was
compressed to keep the repository small (the per-cosmology spectra of a 20-realization tier are ~2 MB of text).

One reader for every command that re-reads a report (:mod:`benchmarks.compare_targets`,
:mod:`benchmarks.retarget`, :mod:`benchmarks.model_card`), so a compressed report is accepted by all of them.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

__all__ = ["results_path", "load_results"]


def results_path(path: str | Path) -> Path:
    """The results file of ``path``: the file itself, or the ``results.json`` (else ``results.json.gz``) of a
    report directory. Raises a one-line ``ValueError`` naming ``path`` when there is none."""
    path = Path(path)
    files = [path] if path.is_file() else [path / "results.json", path / "results.json.gz"]
    found = next((f for f in files if f.is_file()), None)
    if found is None:
        raise ValueError(f"{path}: no results.json or results.json.gz")
    return found


def load_results(path: str | Path) -> dict:
    """A report's results: ``path`` is a ``results.json[.gz]`` file or a report directory holding one.

    Raises ``ValueError`` naming the path when there is none or it cannot be read as a benchmark's results.
    """
    found = results_path(path)
    try:
        opener = gzip.open if found.suffix == ".gz" else open
        with opener(found, "rt", encoding="utf-8") as fh:
            res = json.load(fh)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{found}: not readable as JSON ({exc})") from None
    if not isinstance(res, dict) or not {"setup", "per_cosmology", "config"} <= set(res):
        raise ValueError(f"{found}: not a benchmark's results (no setup, per_cosmology or config)")
    return res
