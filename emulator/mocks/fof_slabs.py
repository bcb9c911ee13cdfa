"""Friends-of-friends on a box too large to hold: Eulerian slabs with overlaps, read from an HDF5 file.

The box is cut along x into ``n_slabs`` cores of side ``T = L / n_slabs``; slab ``s`` reads every particle within
``overlap`` (``W``) of its core, ``x in [s T - W, (s + 1) T + W)`` (periodic), and links them with the periodic
finder of :mod:`.fof_link` at the linking length of the whole box. A group belongs to the slab whose core holds
its lowest-index member (its *anchor*). Why that is exact: a group with its anchor in the core that lies inside
the extended slab is found whole (the subset holds all its members and their friends); one that leaves it
reaches, along a chain of friends from the anchor, a member within ``b`` of the extended slab's edge. So every
component anchored in the core is checked for members in that margin, and if one has any the core is linked again
in parts with twice the overlap, as many parts as keep each extended part no longer than the slab (a warning says
so; the groups depend on neither ``W`` nor how cores are cut), and the run stops with an error naming ``overlap``
once a wider slab would wrap onto itself (never a truncated halo). Groups are summarised by
:func:`.fof.summarise_groups` over members in particle order, as the whole-box finder does, so the catalogue
equals :func:`.fof.friends_of_friends` on all particles: same groups, same order (mass descending, ties by
lowest member index), same centres and velocities bit for bit (``tests/test_largebox.py``).

Memory: about 150 bytes per particle of one extended slab, ``(T + 2 W) / L`` of the box, plus the rows being read
(at most :data:`READ_ROWS` at a time; :func:`slab_fof_memory`).
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

from .fof import Halos, linking_length_mpc, summarise_groups

__all__ = ["slab_friends_of_friends", "slab_fof_memory", "default_overlap"]

BYTES_PER_SLAB_PARTICLE = 150.0
#: Rows read from the particle file at a time, and the bytes each costs while read (float64 positions, their x
#: offsets, the selection and float32 velocities).
READ_ROWS = 1 << 22
READ_BYTES_PER_ROW = 56.0


def default_overlap(b: float) -> float:
    """Default slab overlap ``W`` (Mpc/h): 10 Mpc/h or 25 linking lengths, whichever is larger (FoF halos at
    b = 0.2 are a few Mpc/h across; a larger group stops the run with an error rather than being cut)."""
    return max(10.0, 25.0 * float(b))


def slab_fof_memory(npart: int, box: float, n_slabs: int, overlap: float, chunk: int) -> float:
    """Estimated peak memory (bytes) of :func:`slab_friends_of_friends` (20% margin for density contrast)."""
    frac = 1.0 if n_slabs == 1 else min(1.0, (box / n_slabs + 2 * overlap) / box * 1.2)
    return BYTES_PER_SLAB_PARTICLE * npart * frac + READ_BYTES_PER_ROW * min(int(chunk), READ_ROWS)


def _intersects(lo: float, hi: float, start: float, length: float, box: float) -> bool:
    """Whether the unwrapped range ``[lo, hi]`` meets the periodic interval ``[start, start + length)``."""
    if hi - lo >= box:
        return True
    d = (lo - start) % box
    return d < length or d + (hi - lo) >= box


def slab_friends_of_friends(pos_ds, vel_ds, chunks: Sequence[tuple[int, int]],
                            x_extent: Sequence[tuple[float, float]], box_size: float, *, linking_length: float = 0.2,
                            min_members: int = 20, particle_mass: float = 1.0, n_slabs: int = 2,
                            overlap: float | None = None, progress: bool = False) -> tuple[Halos, np.ndarray]:
    """FoF halos of the particles in ``pos_ds`` (``(N, 3)``, Mpc/h, in ``[0, L)``), slab by slab.

    Parameters
    ----------
    pos_ds, vel_ds
        Array-likes (h5py datasets) of positions (Mpc/h) and velocities (km/s), read by row ranges.
    chunks : sequence of (first, stop)
        Row ranges covering ``[0, N)`` in order (overlaps are read once); the unit of reading.
    x_extent : sequence of (lo, hi)
        Unwrapped Eulerian x range of each chunk, Mpc/h (chunks outside a slab are not read).
    box_size : float
        Box side ``L``, Mpc/h.
    linking_length, min_members, particle_mass
        As in :func:`.fof.friends_of_friends` (``b`` from all ``N`` particles).
    n_slabs : int
        Slabs along x (1: all particles at once).
    overlap : float, optional
        ``W``, Mpc/h (default :func:`default_overlap`); ``L / n_slabs + 2 W + b`` must stay below ``L``.

    Returns
    -------
    (Halos, np.ndarray)
        The catalogue (``labels`` empty: particles are not held) and each halo's lowest member index.

    Raises
    ------
    ValueError
        If the slabs and overlap do not fit in the box.
    RuntimeError
        If a group anchored in a core reaches the edge of its extended slab even with the overlap doubled as far as
        the box allows (a core where one does is linked again in parts with twice the overlap, with a warning).
    """
    from tqdm.auto import tqdm

    box = float(box_size)
    npart = int(chunks[-1][1])
    b = linking_length_mpc(box, npart, linking_length)
    w = default_overlap(b) if overlap is None else float(overlap)
    core = box / n_slabs
    length = core + 2 * w
    if n_slabs > 1 and length + b >= box:
        raise ValueError(f"{n_slabs} FoF slabs with overlap {w:g} Mpc/h span {length:g} Mpc/h, not less than the "
                         f"box {box:g} Mpc/h minus b = {b:.3g}: use fewer slabs or a smaller overlap")
    parts: list[tuple] = []
    for s in tqdm(range(n_slabs), desc="FoF slabs", unit="slab", leave=False, disable=not progress):
        parts += _core_groups(s, n_slabs, s * core, core, w, pos_ds, vel_ds, chunks, x_extent, box, b, min_members)
    if parts:
        centre, mean_v, n_members, anchor = (np.concatenate(x) for x in zip(*parts))
    else:
        centre, mean_v = np.zeros((0, 3)), np.zeros((0, 3))
        n_members, anchor = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.lexsort((anchor, -n_members))
    n_members = n_members[order]
    halos = Halos(position=centre[order], velocity=mean_v[order], mass=n_members.astype(np.float64) * particle_mass,
                  n_members=n_members, labels=np.zeros(0, dtype=np.int64), box_size=box, linking_length=b,
                  particle_mass=float(particle_mass))
    return halos, anchor[order]


def _core_groups(s: int, n_slabs: int, lo: float, core: float, w: float, *args) -> list[tuple]:
    """Groups anchored in the core ``[lo, lo + core)`` (Mpc/h) of slab ``s``, linked with overlap ``w``; where one
    reaches the edge, the core again in ``k`` parts with overlap ``2 w``, ``k`` chosen so each part's extended slab
    is no longer than this one's (``core / k + 4 w <= core + 2 w``) where that is possible."""
    pos_ds, vel_ds, chunks, x_extent, box, b, min_members = args
    part = _slab(lo, core, w, pos_ds, vel_ds, chunks, x_extent, box, b, min_members, n_slabs)
    if part is not REACHES_EDGE:  # returned, not raised: a traceback would hold this slab's arrays during the retry
        return [] if part is None else [part]
    k = min(64, math.ceil(core / (core - 2 * w))) if core > 2 * w else 2
    if core / k + 4 * w + b >= box:
        raise RuntimeError(f"a FoF group anchored in slab {s} reaches the edge of its {w:g} Mpc/h overlap: "
                           "raise the FoF overlap (--fof-overlap) or use fewer slabs")
    warnings.warn(f"a FoF group anchored in slab {s} of {n_slabs} reaches the edge of its {w:g} Mpc/h overlap: "
                  f"its core is linked again in {k} parts with {2 * w:g} Mpc/h (the same groups)", stacklevel=3)
    return [p for i in range(k) for p in _core_groups(s, n_slabs, lo + i * core / k, core / k, 2 * w, *args)]


def _read_slab(start: float, length: float, pos_ds, vel_ds, chunks, x_extent, box: float, n_slabs: int):
    """Positions (float64, Mpc/h), velocities, indices and ``x - start`` (periodic, Mpc/h) of the particles with
    ``x - start`` in ``[0, length)``, read :data:`READ_ROWS` rows at a time (None when there are none)."""
    pos, vel, ids, rel = [], [], [], []
    done = 0
    for (first, stop), (lo, hi) in zip(chunks, x_extent):
        first = max(first, done)
        if first >= stop:
            continue
        done = stop
        if n_slabs > 1 and not _intersects(lo, hi, start, length, box):
            continue
        for a in range(first, stop, READ_ROWS):
            z = min(stop, a + READ_ROWS)
            p = np.asarray(pos_ds[a:z], dtype=np.float64)
            xr = np.mod(p[:, 0] - start, box) if n_slabs > 1 else p[:, 0]
            sel = np.flatnonzero(xr < length) if n_slabs > 1 else np.arange(p.shape[0])
            pos.append(p[sel])
            rel.append(xr[sel])
            vel.append(np.asarray(vel_ds[a:z])[sel])
            ids.append(sel.astype(np.int64) + a)
            del p, xr, sel
    if not ids:
        return None
    out = []
    for x in (pos, vel, ids, rel):  # one list at a time: each is freed once joined
        out.append(np.concatenate(x))
        x.clear()
    return tuple(out)


#: What :func:`_slab` returns when a group anchored in its core reaches the margin of its extended slab.
REACHES_EDGE = object()


def _slab(lo: float, core: float, w: float, pos_ds, vel_ds, chunks, x_extent, box: float, b: float,
          min_members: int, n_slabs: int) -> tuple | object | None:
    """Groups anchored in the core ``[lo, lo + core)`` (extended by ``w`` Mpc/h on each side): ``(centre, velocity,
    members, anchor)``, or None when no particle lies there, or :data:`REACHES_EDGE` when the overlap is too small."""
    from .fof_link import lowest_member_labels

    start, length = lo - w, core + 2 * w
    got = _read_slab(start, length, pos_ds, vel_ds, chunks, x_extent, box, n_slabs)
    if got is None:
        return None
    pos, vel, ids, rel = got
    del got  # so that ``del rel`` below frees it
    comp = lowest_member_labels(pos, box, b)
    counts = np.bincount(comp, minlength=comp.shape[0])
    owned = (rel >= w) & (rel < w + core) if n_slabs > 1 else np.ones(comp.shape[0], dtype=bool)
    if n_slabs > 1:
        margin = (rel <= b * (1 + 1e-9)) | (rel >= length - b * (1 + 1e-9))
        if owned[comp[margin]].any():
            return REACHES_EDGE
    kept = np.flatnonzero((counts >= min_members) & owned)
    del rel
    _, centre, mean_v, n_members = summarise_groups(pos, vel, comp, counts, kept, box)
    return centre, mean_v, n_members, ids[kept]
