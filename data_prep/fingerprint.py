"""Fingerprints: a hash of everything that determines an output, and the names of what changed.

A fingerprint is a JSON-compatible dict; its hash is the SHA-256 of its canonical JSON (sorted keys, no spaces,
floats in Python's shortest round-trip form). Outputs record both, so that a later run can refuse to mix or keep
results made from other inputs, and say which inputs differ (:func:`differing_keys`, dotted key paths).

Source files enter a fingerprint by identity, not content: name (as listed), size in bytes and modification
time in ns (:func:`source_identity`). That is cheap on suites of many 50 MB snapshots and catches a re-run
simulation or a replaced file; a copy that does not keep modification times (``cp`` without ``-p``) counts as
changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Mapping

from .readers.files import locate

__all__ = ["canonical_json", "digest", "differing_keys", "summarise_keys", "source_identity"]


def canonical_json(value: Any) -> str:
    """Canonical JSON of ``value``: sorted keys, no whitespace (tuples as lists)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def digest(value: Any) -> str:
    """SHA-256 (hex) of :func:`canonical_json` of ``value``."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def differing_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the entries that differ between two nested dicts (a key on one side only counts once).

    Examples
    --------
    >>> differing_keys({"a": 1, "s": {"x": 1, "y": 2}}, {"a": 1, "s": {"x": 3}, "b": 0})
    ['b', 's.x', 's.y']
    """
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        keys = []
        for k in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in old or k not in new:
                keys.append(path)
            else:
                keys += differing_keys(old[k], new[k], path)
        return keys
    return [] if canonical_json(old) == canonical_json(new) else [prefix or "(value)"]


def summarise_keys(keys: list[str], limit: int = 6) -> str:
    """``"a, b, c"``, or the first ``limit`` keys and ``"and N more"``."""
    if len(keys) <= limit:
        return ", ".join(keys)
    return ", ".join(keys[:limit]) + f" and {len(keys) - limit} more"


_MEMBER = r"\.[0-9]+"


def _snapshot_files(path: str) -> list[str]:
    """Every file of the snapshot named by ``path`` (a file, a multi-file set, or a bigfile directory)."""
    first, base, suffix = locate(path)
    if os.path.isdir(first):
        return sorted(os.path.join(d, f) for d, _, files in os.walk(first) for f in files)
    if base is None:
        return [first]
    folder = os.path.dirname(base) or "."
    pattern = re.compile(re.escape(os.path.basename(base)) + _MEMBER + re.escape(suffix) + "$")
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if pattern.fullmatch(f))


def source_identity(path: str, root: str) -> list[list]:
    """``[name, size in bytes, mtime in ns]`` of every file of a snapshot, names relative to ``root``.

    Parameters
    ----------
    path : str
        A snapshot as a manifest resolves it (a file, a multi-file base name, or a bigfile directory).
    root : str
        Folder the names are made relative to (the manifest's).
    """
    out = []
    for f in _snapshot_files(path):
        st = os.stat(f)
        out.append([os.path.relpath(f, root).replace(os.sep, "/"), st.st_size, st.st_mtime_ns])
    return out
