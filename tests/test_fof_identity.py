"""The compiled FoF finder against the previous implementation (scipy cKDTree pairs + connected components).

The reference (:func:`benchmarks.fof_speed.reference_labels`) is ``emulator/mocks/fof.py`` as it was before the
cell-list/union-find rewrite (commit 56565d2): pairs from ``cKDTree.query_pairs`` (periodic), groups from
``scipy.sparse.csgraph.connected_components``, halos ordered by member count, then lowest member index. The new
finder must give identical labels and member counts (so the same halos in the same order; centres and velocities
follow from them by unchanged code) on particle sets that look like what it is used on: the embedded generator's
particles (z = 0 and 1), a 2LPT field, clustered blobs that straddle the periodic faces, and a linking length so
large that the cell grid has fewer than three cells per side.
"""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks.fof_speed import reference_labels
from emulator.core.cosmology import get_preset
from emulator.mocks.fof import friends_of_friends


def assert_identical(pos: np.ndarray, box: float, ll: float = 0.2, min_members: int = 20) -> int:
    pos = np.mod(pos, box)
    pos[pos >= box] = 0.0
    labels, counts = reference_labels(pos, box, ll, min_members)
    halos = friends_of_friends(pos, box, ll, min_members)
    np.testing.assert_array_equal(halos.labels, labels)
    np.testing.assert_array_equal(halos.n_members, counts)
    return len(halos)


@pytest.fixture(scope="module")
def generator_particles():
    from emulator.model.emulate import emulate_fields
    from emulator.model.portable import load_model

    model = load_model()
    out = {}
    for z in (0.0, 1.0):
        f = emulate_fields(get_preset("planck18"), z, 128.0, 7, model=model)
        out[z] = f.positions.double().numpy()
    return out


@pytest.mark.parametrize("z", [0.0, 1.0])
@pytest.mark.parametrize("min_members", [1, 20])
def test_generator_particles_give_identical_halos(generator_particles, z, min_members):
    nh = assert_identical(generator_particles[z].copy(), 128.0, 0.2, min_members)
    assert nh > (100 if min_members == 20 else 100_000)  # a realistic catalogue, not an empty one


@pytest.mark.parametrize("ll", [0.17, 0.3])
def test_identical_on_2lpt_at_other_linking_lengths(ll):
    from emulator.model.emulate import emulate_fields

    f = emulate_fields(get_preset("planck18"), 0.0, 64.0, 3, method="2lpt", ngrid=48)
    assert assert_identical(f.positions.double().numpy(), 64.0, ll, 2) > 1000  # 2LPT: pairs and filaments


@pytest.mark.parametrize("ll", [0.15, 0.28])
def test_identical_on_blobs_across_the_periodic_faces(ll):
    rng = np.random.default_rng(11)
    box = 50.0
    centres = rng.random((60, 3)) * box
    centres[:10, 0] = 0.2  # on the x = 0 face: members on both sides
    centres[10:20, 1:] = box - 0.1  # on an edge
    blobs = [rng.normal(c, rng.uniform(0.2, 1.5), (int(rng.integers(5, 300)), 3)) for c in centres]
    pos = np.concatenate(blobs + [rng.random((20_000, 3)) * box])
    assert assert_identical(pos, box, ll, 5) > 30


def test_identical_when_the_cell_grid_is_coarser_than_three_cells():
    rng = np.random.default_rng(5)
    pos = rng.normal(4.0, 2.0, (300, 3))
    box = 10.0  # b = 1.2 * 10 / 300^(1/3) = 1.79 Mpc/h: 5 cells; 2.5 gives 3.7; 3.3 gives < 3 cells
    for ll in (1.2, 2.5, 3.3):
        assert_identical(pos.copy(), box, ll, 2)
