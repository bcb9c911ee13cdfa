"""Provenance for every file we write: package version, git commit, file checksums, timestamps."""

from __future__ import annotations

import datetime as _dt
import hashlib
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

__all__ = ["package_version", "code_version", "sha256_file", "utc_now"]


def package_version() -> str:
    """Installed version of the ``cosmo-emulator`` distribution ("unknown" when not installed)."""
    try:
        return metadata.version("cosmo-emulator")
    except metadata.PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=1)
def code_version() -> str:
    """``<package version>+g<commit>[.dirty]`` when run from a git checkout, else the package version."""
    version = package_version()
    root = Path(__file__).resolve().parents[2]  # the checkout holding emulator/core/
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return version
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        suffix = ".dirty" if dirty.returncode == 0 and dirty.stdout.strip() else ""
        return f"{version}+g{commit.stdout.strip()}{suffix}"
    except (OSError, subprocess.SubprocessError):
        return version


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 hex digest of a file, read in chunks of ``chunk`` bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def utc_now() -> str:
    """Current UTC time in ISO 8601."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
