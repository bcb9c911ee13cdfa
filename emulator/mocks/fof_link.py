"""Compiled linking step of the friends-of-friends finder: a column list and union-find, O(N) in time and memory.

Particles are binned into ``m x m`` periodic columns along z, ``m = floor(L / (b (1 + 1e-9)))`` per side (column
side ``L/m`` above ``b`` by more than any rounding of the cell index, so friends lie in the same or an adjacent
column), and inside a column into z cells of a quarter column side; one counting sort orders them by (column,
z cell). Each particle is compared with the later particles of its own column within 4 z cells, and each column
is swept against four half-plane neighbour columns ``(0, +1), (+1, -1), (+1, 0), (+1, +1)`` with two pointers
bounding the z window (+-4 z cells, periodic), so every unordered pair of particles less than ``b`` apart is
tested exactly once and no search is needed. Friends (minimum-image separation ``<= b``, the criterion of
:meth:`scipy.spatial.cKDTree.query_pairs`) are merged in a union-find forest with path halving: the result is the
partition into connected components of all pairs within ``b``.

The kernels are compiled by numba on first use (a few seconds, once: the machine code is cached next to this
file, or in numba's user cache when that is read-only); importing this module is what imports numba, so callers
import it lazily.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["lowest_member_labels"]

_Z_CELLS_PER_B = 4  # z cells per column cell: the z window is (2 q + 1) / q = 2.25 linking lengths


@njit(cache=True, nogil=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, nogil=True)
def _link_pair(ps, parent, i, j, half, box, b2):
    """Union ``i`` and ``j`` if their minimum-image separation is at most ``b`` (``b2 = b^2``)."""
    dx = ps[i, 0] - ps[j, 0]
    if dx > half:
        dx -= box
    elif dx < -half:
        dx += box
    dy = ps[i, 1] - ps[j, 1]
    if dy > half:
        dy -= box
    elif dy < -half:
        dy += box
    dz = ps[i, 2] - ps[j, 2]
    if dz > half:
        dz -= box
    elif dz < -half:
        dz += box
    if dx * dx + dy * dy + dz * dz <= b2:
        ri = _find(parent, i)
        rj = _find(parent, j)
        if ri < rj:
            parent[rj] = ri
        elif rj < ri:
            parent[ri] = rj


@njit(cache=True, nogil=True)
def _cell_sort(pos, m, q, inv_cell):
    """Counting sort by (column, z cell of side ``cell / q``): ``order``, column starts, sorted positions and z
    cells."""
    n = pos.shape[0]
    col = np.empty(n, np.int64)
    zcell = np.empty(n, np.int32)
    mz = m * q
    zstart = np.zeros(mz + 1, np.int64)
    colstart = np.zeros(m * m + 1, np.int64)
    for i in range(n):
        a = min(int(pos[i, 0] * inv_cell), m - 1)
        b = min(int(pos[i, 1] * inv_cell), m - 1)
        c = min(int(pos[i, 2] * (inv_cell * q)), mz - 1)
        col[i] = a * m + b
        zcell[i] = c
        zstart[c + 1] += 1
        colstart[a * m + b + 1] += 1
    for k in range(mz):
        zstart[k + 1] += zstart[k]
    for k in range(m * m):
        colstart[k + 1] += colstart[k]
    by_z = np.empty(n, np.int64)
    for i in range(n):
        by_z[zstart[zcell[i]]] = i
        zstart[zcell[i]] += 1
    fill = colstart[:-1].copy()
    order = np.empty(n, np.int64)
    for k in range(n):  # stable: inside a column the z order of by_z is kept
        i = by_z[k]
        order[fill[col[i]]] = i
        fill[col[i]] += 1
    ps = np.empty((n, 3))
    zc = np.empty(n, np.int32)
    for k in range(n):
        i = order[k]
        ps[k, 0] = pos[i, 0]
        ps[k, 1] = pos[i, 1]
        ps[k, 2] = pos[i, 2]
        zc[k] = zcell[i]
    return order, colstart, ps, zc


@njit(cache=True, nogil=True)
def _link_columns(ps, zc, colstart, m, q, box, b2):
    """Union-find forest over the column-sorted particles (``m >= 3`` columns per side, ``q`` z cells per b)."""
    n = ps.shape[0]
    parent = np.arange(n)
    half = 0.5 * box
    mz = m * q
    off_x = (0, 1, 1, 1)
    off_y = (1, -1, 0, 1)
    for c0 in range(m * m):
        s0 = colstart[c0]
        e0 = colstart[c0 + 1]
        if s0 == e0:
            continue
        for i in range(s0, e0):  # own column: later particles within q z cells, then across z = L -> 0
            top = zc[i] + q
            j = i + 1
            while j < e0 and zc[j] <= top:
                _link_pair(ps, parent, i, j, half, box, b2)
                j += 1
            if top >= mz:
                j = s0
                while j < i and zc[j] <= top - mz:
                    _link_pair(ps, parent, i, j, half, box, b2)
                    j += 1
        x0 = c0 // m
        y0 = c0 - x0 * m
        for k in range(4):  # half-plane neighbour columns: a two-pointer sweep along z
            x = x0 + off_x[k]
            if x >= m:
                x -= m
            y = y0 + off_y[k]
            if y < 0:
                y += m
            elif y >= m:
                y -= m
            s = colstart[x * m + y]
            e = colstart[x * m + y + 1]
            if s == e:
                continue
            lo = s
            hi = s
            for i in range(s0, e0):
                z = zc[i]
                while lo < e and zc[lo] < z - q:
                    lo += 1
                while hi < e and zc[hi] <= z + q:
                    hi += 1
                for j in range(lo, hi):
                    _link_pair(ps, parent, i, j, half, box, b2)
                if z < q:  # the window wraps below z = 0
                    j = e - 1
                    while j >= hi and zc[j] >= z - q + mz:
                        _link_pair(ps, parent, i, j, half, box, b2)
                        j -= 1
                elif z + q >= mz:  # ... or above z = L
                    j = s
                    while j < lo and zc[j] <= z + q - mz:
                        _link_pair(ps, parent, i, j, half, box, b2)
                        j += 1
    return parent


@njit(cache=True, nogil=True)
def _link_all(ps, box, b2):
    """All pairs, for boxes under three linking lengths across (tiny inputs)."""
    n = ps.shape[0]
    parent = np.arange(n)
    half = 0.5 * box
    for i in range(n):
        for j in range(i + 1, n):
            _link_pair(ps, parent, i, j, half, box, b2)
    return parent


@njit(cache=True, nogil=True)
def _lowest_member(parent, order):
    n = parent.shape[0]
    low = np.full(n, n, np.int64)
    for k in range(n):
        r = _find(parent, k)
        if order[k] < low[r]:
            low[r] = order[k]
    out = np.empty(n, np.int64)
    for k in range(n):
        out[order[k]] = low[_find(parent, k)]
    return out


def lowest_member_labels(pos: np.ndarray, box_size: float, b: float) -> np.ndarray:
    """FoF groups as labels: each particle's label is the lowest index of a particle in its group.

    Parameters
    ----------
    pos : np.ndarray
        ``(N, 3)`` float64 positions in ``[0, box_size)``, Mpc/h.
    box_size : float
        Periodic box side ``L``, Mpc/h.
    b : float
        Linking length, Mpc/h (``0 < b < L/2``).

    Returns
    -------
    np.ndarray
        ``(N,)`` int64; ``labels[i] == i`` exactly for the lowest-index member of each group.
    """
    pos = np.ascontiguousarray(pos, dtype=np.float64)
    box, b = float(box_size), float(b)
    m = int(np.floor(box / (b * (1.0 + 1e-9))))
    if m < 3:
        return _lowest_member(_link_all(pos, box, b * b), np.arange(pos.shape[0], dtype=np.int64))
    order, colstart, ps, zc = _cell_sort(pos, m, _Z_CELLS_PER_B, m / box)
    return _lowest_member(_link_columns(ps, zc, colstart, m, _Z_CELLS_PER_B, box, b * b), order)
