"""Friends-of-friends (FoF) halo finder for particles in a periodic box.

Two particles are *friends* when their periodic (minimum-image) separation is at most the linking length
``b = linking_length * (L^3 / N)^(1/3)`` (Davis et al. 1985; ``linking_length = 0.2`` in units of the mean
interparticle separation is the usual choice and gives groups bounded roughly by the isodensity surface of
~80 times the mean density, with masses close to ``M_200m``). Halos are the connected components of the
friendship graph (friendship is made transitive) with at least ``min_members`` particles.

Implementation: a periodic column list and a union-find forest compiled with numba (:mod:`.fof_link`), linear
in time and memory (about 80 bytes per particle). It gives the same groups as the connected components of all
pairs from :meth:`scipy.spatial.cKDTree.query_pairs` (the previous implementation, kept as the reference in
:func:`benchmarks.fof_speed.reference_labels`) at about 5x its speed on one thread (0.05 s at 64^3, 0.5 s at
128^3 generator particles: ``python -m benchmarks.fof_speed``). The finder is an I/O-side catalog step, not part
of the differentiable core: torch or numpy input, numpy output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.checks import check_positive
from .arrays import as_vectors, from_torch

__all__ = ["Halos", "friends_of_friends", "linking_length_mpc", "summarise_groups"]


@dataclass
class Halos:
    """A FoF halo catalogue, sorted by mass in descending order.

    Attributes
    ----------
    position : np.ndarray
        ``(M, 3)`` float64 centre of mass, Mpc/h, in ``[0, box_size)`` (periodically unwrapped about a member).
    velocity : np.ndarray or None
        ``(M, 3)`` float64 mean member velocity, km/s; ``None`` if no particle velocities were given.
    mass : np.ndarray
        ``(M,)`` float64 ``n_members * particle_mass``, Msun/h.
    n_members : np.ndarray
        ``(M,)`` int64 number of member particles.
    labels : np.ndarray
        ``(N,)`` int64 index of each particle's halo in this catalogue, ``-1`` if it is in no kept halo.
    box_size : float
        Box side, Mpc/h.
    linking_length : float
        Physical linking length ``b`` used, Mpc/h.
    particle_mass : float
        Mass per particle, Msun/h.
    """

    position: np.ndarray
    velocity: np.ndarray | None
    mass: np.ndarray
    n_members: np.ndarray
    labels: np.ndarray
    box_size: float
    linking_length: float
    particle_mass: float

    def __len__(self) -> int:
        return int(self.mass.shape[0])


def _wrap(x: np.ndarray, box: float, out: np.ndarray | None = None) -> np.ndarray:
    """Wrap into ``[0, box)`` (into ``out`` if given); ``np.mod`` can return ``box`` for tiny negative inputs."""
    x = np.mod(x, box, out=out)
    x[x >= box] = 0.0
    return x


def linking_length_mpc(box_size: float, npart: int, linking_length: float = 0.2) -> float:
    """Physical linking length ``b = linking_length * box_size / npart^(1/3)`` in Mpc/h."""
    return float(linking_length) * float(box_size) / float(npart) ** (1.0 / 3.0)


def friends_of_friends(
    positions: Any,
    box_size: float,
    linking_length: float = 0.2,
    min_members: int = 20,
    particle_mass: float = 1.0,
    velocities: Any = None,
) -> Halos:
    """Find FoF halos among particles in a periodic box.

    Parameters
    ----------
    positions : array_like or torch.Tensor
        ``(N, 3)`` comoving positions, Mpc/h (any finite values; wrapped into ``[0, L)``).
    box_size : float
        Box side ``L``, Mpc/h.
    linking_length : float
        Linking length in units of the mean interparticle separation ``(L^3/N)^(1/3)``; friends are pairs with
        minimum-image separation ``<= b``.
    min_members : int
        Smallest number of particles a kept halo may have (1 keeps every particle as a group).
    particle_mass : float
        Mass per particle, Msun/h (:func:`emulator.core.cosmology.particle_mass_from_cosmology`); the default 1
        gives masses in particle units.
    velocities : array_like or torch.Tensor, optional
        ``(N, 3)`` peculiar velocities, km/s; halo velocities are the member means.

    Returns
    -------
    Halos
        Sorted by mass (member count) descending; ties are ordered by their lowest member index. Centres are
        the member mean after unwrapping each member to the minimum image of the halo's lowest-index member,
        which is exact for halos smaller than ``L/2``.
    """
    src = from_torch(positions)
    pos = as_vectors(src, "positions")
    # a float64 copy made by as_vectors, or a host copy of a device tensor: wrapped in place below
    on_device = getattr(getattr(positions, "device", None), "type", "cpu") != "cpu"
    private = on_device or not np.may_share_memory(pos, src)
    box = check_positive(box_size, "box_size", "Mpc/h")
    ll = check_positive(linking_length, "linking_length", "mean interparticle separations")
    mp = check_positive(particle_mass, "particle_mass", "Msun/h")
    if isinstance(min_members, bool) or int(min_members) != min_members or min_members < 1:
        raise ValueError(f"min_members must be a positive integer, got {min_members!r}")
    n = pos.shape[0]
    vel = None
    if velocities is not None:
        vel = as_vectors(velocities, "velocities", dtype=None)  # read at members only: float32 stays float32
        if vel.shape[0] != n:
            raise ValueError(f"velocities must have shape ({n}, 3) to match positions, got {vel.shape}")
    if n == 0:
        raise ValueError("positions must hold at least one particle")
    b = linking_length_mpc(box, n, ll)
    if b >= box / 2:
        raise ValueError(f"linking_length gives b={b:.4g} Mpc/h, not below half the box ({box / 2:.4g})")
    # into [0, L); in place in a private copy (at 256^3 each float64 copy of the positions is 400 MB)
    pos = _wrap(pos, box, out=pos if private else None)

    from .fof_link import lowest_member_labels  # imports numba: only when halos are found

    comp = lowest_member_labels(pos, box, b)  # a group is named by its lowest member index
    counts = np.bincount(comp, minlength=n)
    kept = np.flatnonzero(counts >= min_members)  # ascending lowest member index
    order = kept[np.lexsort((kept, -counts[kept]))]  # mass descending, then lowest member index
    labels, centre, mean_v, n_members = summarise_groups(pos, vel, comp, counts, order, box)
    return Halos(
        position=centre,
        velocity=mean_v,
        mass=n_members.astype(np.float64) * mp,
        n_members=n_members,
        labels=labels.astype(np.int64),
        box_size=box,
        linking_length=b,
        particle_mass=mp,
    )


def summarise_groups(pos: np.ndarray, vel: np.ndarray | None, comp: np.ndarray, counts: np.ndarray,
                     order: np.ndarray, box: float):
    """Per-particle labels, centres of mass, mean velocities and sizes of the groups ``order``.

    Parameters
    ----------
    pos : np.ndarray
        ``(N, 3)`` float64 positions in ``[0, box)``, Mpc/h.
    vel : np.ndarray or None
        ``(N, 3)`` velocities, km/s.
    comp : np.ndarray
        ``(N,)`` the lowest member index of each particle's group (:func:`.fof_link.lowest_member_labels`).
    counts : np.ndarray
        ``np.bincount(comp)``.
    order : np.ndarray
        The groups to summarise, by their lowest member index, in catalogue order.
    box : float
        Box side, Mpc/h.

    Returns
    -------
    labels, centre, mean_v, n_members
        ``labels`` ``(N,)`` int64 (index in ``order``, -1 elsewhere); ``centre`` ``(M, 3)`` the member mean after
        unwrapping each member to the minimum image of the group's lowest-index member, in ``[0, box)``;
        ``mean_v`` ``(M, 3)`` or None; ``n_members`` ``(M,)`` int64. Members are summed in index order, so a
        subset of the particles holding whole groups, in the same relative order, gives the same numbers.
    """
    n = comp.shape[0]
    halo_of_comp = np.full(n, -1, dtype=np.int64)
    halo_of_comp[order] = np.arange(order.size, dtype=np.int64)
    labels = halo_of_comp[comp]
    del halo_of_comp
    nh = order.size
    members = labels >= 0
    hl = labels[members]
    n_members = counts[order].astype(np.int64)
    ref = pos[order]  # lowest-index member of each halo
    d = pos[members] - ref[hl]
    d -= box * np.round(d / box)
    centre = np.stack([np.bincount(hl, weights=d[:, a], minlength=nh) for a in range(3)], axis=1)
    centre = _wrap(ref + centre / n_members[:, None], box).reshape(nh, 3)
    mean_v = None
    if vel is not None:
        vm = vel[members].astype(np.float64, copy=False)  # exact; the sums below are float64 either way
        mean_v = np.stack([np.bincount(hl, weights=vm[:, a], minlength=nh) for a in range(3)], axis=1)
        mean_v = (mean_v / n_members[:, None]).reshape(nh, 3)
    return labels, centre, mean_v, n_members
