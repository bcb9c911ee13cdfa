"""JSON files that travel beside a model file and hold only for its bytes: ``<stem>.<kind>.json`` next to
``<stem>.pt`` (the halo-mass calibration, the PGD sharpening).

Each holds ``format``, ``format_version`` and the ``sha256`` of the model file it was fitted for. A missing file
means the model has none; an unreadable, newer-format or stale one (fitted for other model bytes) is ignored with
one warning on stderr naming the file and what the user gets instead, never half-used. No torch import.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, TypeVar

__all__ = ["sidecar_path", "load_sidecar_file", "read_sidecar", "attr_or_none", "digest_or_none"]

T = TypeVar("T")


def sidecar_path(model_path: str | Path, kind: str) -> Path:
    """``<folder>/<stem>.<kind>.json`` for the model file ``model_path``."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}.{kind}.json")


def load_sidecar_file(path: str | Path, fmt: str, build: Callable[[dict], T], what: str,
                      version: int | tuple[int, ...] = 1) -> tuple[T, dict]:
    """``(build(data), data)`` of the JSON file ``path``, or ValueError (also for an unreadable file or bad content)
    saying why: not ``format`` ``fmt``, another ``format_version``, or what ``build`` refused."""
    try:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or data.get("format") != fmt:
            raise ValueError(f"not a {what} file")
        versions = (version,) if isinstance(version, int) else tuple(version)
        if data.get("format_version") not in versions:
            raise ValueError(f"format_version {data.get('format_version')!r}, this code reads "
                             + " or ".join(map(str, versions)))
        return build(data), data
    except (OSError, KeyError, TypeError) as exc:
        raise ValueError(str(exc)) from None


def read_sidecar(model_path: str | Path, sha256: str, kind: str, fmt: str, build: Callable[[dict], T],
                 what: str, otherwise: str, version: int | tuple[int, ...] = 1) -> T | None:
    """The ``kind`` sidecar of ``model_path`` built by ``build(data)``, or ``None``.

    Parameters
    ----------
    model_path : str or Path
        The model file.
    sha256 : str
        Its SHA-256: the sidecar's ``sha256`` must equal it.
    kind, fmt : str
        File kind (``halo_mass``, ``pgd``) and the ``format`` string it must hold.
    build : callable
        Makes the object from the JSON dict; raises ValueError, KeyError or TypeError on bad content.
    what, otherwise : str
        Names for the warning: ``"halo-mass calibration"``, ``"FoF masses stay uncalibrated"``.
    version : int or tuple of int
        The ``format_version`` (or versions) this code reads.
    """
    path = sidecar_path(model_path, kind)
    if not path.is_file():
        return None
    try:
        obj, data = load_sidecar_file(path, fmt, build, what, version)
    except ValueError as exc:
        print(f"warning: {path}: unusable {what} ({exc}); {otherwise}", file=sys.stderr)
        return None
    got = str(data.get("sha256"))
    if got != sha256:
        print(f"warning: {path}: {what} is stale (fitted for sha256 {got[:16]}..., the model file is "
              f"{sha256[:16]}...); {otherwise}", file=sys.stderr)
        return None
    return obj


def attr_or_none(table) -> str:
    """``"none"`` or the sidecar object's provenance attr (``table.attr()``)."""
    return "none" if table is None else table.attr()


def digest_or_none(table) -> str:
    """``"none"`` or the SHA-256 of the sidecar object's provenance attr (``table.digest()``)."""
    return "none" if table is None else table.digest()
