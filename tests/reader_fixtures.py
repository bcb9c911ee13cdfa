"""Shared by the snapshot-reader tests: a cosmology dictionary and a small particle set with known contents."""

from __future__ import annotations

import numpy as np

COSMO = {"Omega_m": 0.3, "Omega_b": 0.05, "h": 0.7, "n_s": 0.96, "sigma8": 0.8}


def particles(n_side=5, box=50.0, seed=1):
    """A jittered lattice of n_side^3 particles with shuffled contiguous IDs starting at 1."""
    rng = np.random.default_rng(seed)
    q = (np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * box / n_side
    pos = q + rng.uniform(-0.4, 0.4, q.shape) * box / n_side
    vel = rng.normal(0.0, 300.0, q.shape)
    ids = rng.permutation(len(q)) + 1
    return pos, vel, ids
