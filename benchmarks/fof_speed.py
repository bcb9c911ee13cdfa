"""``python -m benchmarks.fof_speed``: the FoF finder against its previous implementation, same particles.

For each ``ngrid`` (default 64 and 128: ``ngrid^3`` particles of the 2LPT-based embedded generator ``default`` at
z = 0, Planck 2018, in a box of ``2 ngrid`` Mpc/h, linking length 0.2, groups of >= 20 members), the wall time of
:func:`emulator.mocks.fof.friends_of_friends` and of the previous implementation (:func:`reference_labels`: periodic
``cKDTree.query_pairs``, ``connected_components`` and the same ordering; its single-pass path, which was the faster
of its two) is the median of ``--repeats`` runs after one warm-up (which also compiles the numba kernels), at a
fixed thread count. Both must give identical labels and member counts, or the benchmark fails.

Writes ``fof_speed.json`` (with the environment) and ``fof_speed.md`` in ``--out-dir``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["reference_labels", "run", "main"]


def reference_labels(pos: np.ndarray, box: float, ll: float, min_members: int) -> tuple[np.ndarray, np.ndarray]:
    """Halo labels and member counts as the previous implementation (commit 56565d2) made them.

    Pairs within ``b`` from a periodic :class:`scipy.spatial.cKDTree`, groups from
    :func:`scipy.sparse.csgraph.connected_components`, halos of at least ``min_members`` ordered by member count
    (descending), then by lowest member index. ``pos`` must lie in ``[0, box)``, Mpc/h.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    from emulator.mocks.fof import linking_length_mpc

    n = pos.shape[0]
    b = linking_length_mpc(box, n, ll)
    pairs = cKDTree(pos, boxsize=box).query_pairs(b, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    comp = connected_components(graph, directed=False)[1]
    _, first, comp = np.unique(comp, return_index=True, return_inverse=True)
    counts = np.bincount(comp)
    kept = np.flatnonzero(counts >= min_members)
    order = kept[np.lexsort((first[kept], -counts[kept]))]
    halo_of_comp = np.full(counts.size, -1, dtype=np.int64)
    halo_of_comp[order] = np.arange(order.size, dtype=np.int64)
    return halo_of_comp[comp], counts[order]


def _median_time(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up (numba compilation or cache load, page faults)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run(ngrids=(64, 128), repeats: int = 3, threads: int = 1, seed: int = 1, log=print) -> dict:
    """Time both finders on the generator's particles; raise if their halos differ."""
    import torch

    from emulator.core.cosmology import get_preset
    from emulator.mocks.fof import friends_of_friends
    from emulator.model.emulate import emulate_fields
    from emulator.model.header import LPT_MODEL
    from emulator.model.portable import load_model

    from .env import hardware, versions

    torch.set_num_threads(threads)
    model = load_model(LPT_MODEL)
    rows = []
    for n in ngrids:
        box = float(n) * model.cell_size
        pos = emulate_fields(get_preset("planck18"), 0.0, box, seed, model=model).positions.double().numpy()
        pos = np.mod(pos, box)
        pos[pos >= box] = 0.0
        t_new, halos = _median_time(lambda: friends_of_friends(pos, box, 0.2, 20), repeats)
        t_old, (labels, counts) = _median_time(lambda: reference_labels(pos, box, 0.2, 20), repeats)
        if not (np.array_equal(halos.labels, labels) and np.array_equal(halos.n_members, counts)):
            raise RuntimeError(f"FoF at {n}^3: the new finder's halos differ from the reference")
        rows.append({"ngrid": n, "box_size": box, "n_halos": len(halos), "seconds_new": t_new,
                     "seconds_reference": t_old, "speedup": t_old / t_new, "identical": True})
        log(f"{n}^3 in {box:g} Mpc/h: {len(halos)} halos; new {t_new:.3f} s, reference {t_old:.3f} s "
            f"({t_old / t_new:.1f}x), identical groups")
    return {"rows": rows, "repeats": repeats, "threads": threads,
            "environment": {**hardware(torch.device("cpu")), **versions()}}


def main(argv: list[str] | None = None) -> int:
    from emulator.core.allocator import keep_freed_memory

    keep_freed_memory()  # as the emulator and data-prep commands do (emulator.core.allocator)
    p = argparse.ArgumentParser(prog="python -m benchmarks.fof_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--ngrids", type=int, nargs="+", default=[64, 128],
                   help="particles per side (box: 2 Mpc/h per particle)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per finder (median; >= 3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the finders themselves are serial)")
    p.add_argument("--out-dir", default="runs/benchmarks/fof_speed", help="where fof_speed.json/.md go")
    args = p.parse_args(argv)
    if args.repeats < 3:
        p.error(f"--repeats must be >= 3, got {args.repeats}")
    from .env import write_json

    res = run(args.ngrids, args.repeats, args.threads)
    out = Path(args.out_dir)
    write_json(out / "fof_speed.json", res)
    lines = ["| particles | halos (>= 20) | new (s) | previous (s) | speed-up | identical |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['ngrid']}^3 | {r['n_halos']} | {r['seconds_new']:.3f} | {r['seconds_reference']:.3f} | "
              f"{r['speedup']:.1f}x | yes |" for r in res["rows"]]
    (out / "fof_speed.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'fof_speed.json'} and fof_speed.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
