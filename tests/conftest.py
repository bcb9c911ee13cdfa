"""Shared pytest fixtures.

``synthetic_training_set``: a 16^3 training set (6 simulations x 3 redshifts) written through the real Gadget-4
HDF5 writer and ``data_prep.build`` from synthetic snapshots with a known residual over 2LPT; see
``tests/helpers_trainingset.py``. Built once per session under pytest's temporary directory (about 2 s, no CAMB,
no PM simulation).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# CAMB tables go to a cache of this test session, not to the user's ~/.cache (emulator.core.camb_cache); an
# explicit COSMO_EMULATOR_CACHE (e.g. a CI cache folder) is respected. Set before any test imports the package,
# and inherited by the subprocesses of CLI tests.
os.environ.setdefault("COSMO_EMULATOR_CACHE", tempfile.mkdtemp(prefix="cosmo_emulator_test_cache_"))

try:
    from helpers_trainingset import build_synthetic_training_set
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests.helpers_trainingset import build_synthetic_training_set


@pytest.fixture(scope="session")
def synthetic_training_set(tmp_path_factory) -> Path:
    """Path of the synthetic training-set HDF5 file (read-only for tests: copy it before modifying)."""
    return build_synthetic_training_set(tmp_path_factory.mktemp("synthetic_trainingset"))


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test: on a small shared CPU, oversubscribed threads make tiny 3D
    convolutions 10-100x slower."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
