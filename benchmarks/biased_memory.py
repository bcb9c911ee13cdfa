"""``python -m benchmarks.biased_memory``: the memory of streamed biased tracers, per mesh cell.

``emulator generate --tracer biased --max-memory GB`` paints the particle number and momentum meshes from the
scratch file and draws the tracers (:func:`emulator.mocks.largebox._streamed_biased`). For each ``--ngrid`` this
writes ``ngrid^3`` uniform particles (2 Mpc/h cells, Gaussian velocities) to an HDF5 file, then, for each
``--number-density`` in a fresh process, measures the peak resident set above the one before the stage (Linux
``VmHWM`` after resetting it with ``/proc/self/clear_refs``). A least-squares fit over those points gives the
fixed part, the bytes per cell and the bytes per tracer behind :data:`emulator.mocks.largebox.BIASED_FIXED_BYTES`,
``BIASED_BYTES_PER_CELL`` and ``BIASED_BYTES_PER_TRACER``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["measure", "main"]


def _write_particles(path: Path, n: int, box: float) -> None:
    import h5py

    rng = np.random.default_rng(1)
    step = 2**22
    with h5py.File(path, "w") as fh:
        pos = fh.create_dataset("Position", (n**3, 3), "f4")
        vel = fh.create_dataset("Velocity", (n**3, 3), "f4")
        for a in range(0, n**3, step):
            m = min(step, n**3 - a)
            pos[a : a + m] = rng.uniform(0.0, box, (m, 3)).astype("f4")
            vel[a : a + m] = rng.normal(0.0, 300.0, (m, 3)).astype("f4")


def _child(path: str, n: int, box: float, density: float) -> None:  # pragma: no cover - run in a subprocess
    import h5py
    import torch

    from emulator.core.allocator import keep_freed_memory
    from emulator.mocks.catalogs import MockOptions
    from emulator.mocks.largebox import _streamed_biased

    from .env import rss_mb
    from .speed import _reset_peak

    torch.set_num_threads(1)
    keep_freed_memory()
    with h5py.File(path, "r") as fh:
        reset = _reset_peak()
        base = rss_mb("VmRSS")
        cols = _streamed_biased(fh, MockOptions(tracer="biased", number_density=density), 3, box, n)
        print(json.dumps({"ngrid": n, "peak_above_mb": rss_mb("VmHWM") - base, "peak_reset": reset,
                          "tracers": int(len(cols["Position"]))}))


def measure(ngrids: list[int], densities: list[float] = (0.01, 0.1)) -> dict:
    """Peak above the stage's start (MB) per ``ngrid`` and tracer density, and a least-squares fit
    ``peak = fixed + bytes_per_cell * ngrid^3 + bytes_per_tracer * tracers`` (with one density the tracers grow
    with the cells and are folded into ``bytes_per_cell``; ``bytes_per_tracer`` is then ``None``)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in ngrids:
            path = Path(tmp) / f"p{n}.h5"
            _write_particles(path, n, 2.0 * n)
            for density in densities:
                out = subprocess.run([sys.executable, "-m", "benchmarks.biased_memory", "--child", str(path), str(n),
                                      str(density)], capture_output=True, text=True, check=True)
                rows.append({**json.loads(out.stdout.strip().splitlines()[-1]), "number_density": density})
            path.unlink()
    peak = np.array([r["peak_above_mb"] * 2**20 for r in rows])
    cells = np.array([float(r["ngrid"]) ** 3 for r in rows])
    columns = [np.ones_like(cells), cells] + ([np.array([float(r["tracers"]) for r in rows])]
                                              if len(set(densities)) > 1 else [])
    coef = np.linalg.lstsq(np.stack(columns, axis=1), peak, rcond=None)[0] if len(rows) >= len(columns) else None
    return {"rows": rows, "densities": list(densities),
            "fixed_gb": None if coef is None else float(coef[0]) / 1e9,
            "bytes_per_cell": None if coef is None else float(coef[1]),
            "bytes_per_tracer": float(coef[2]) if coef is not None and len(coef) > 2 else None}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1], int(argv[2]), 2.0 * int(argv[2]), float(argv[3]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.biased_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--ngrid", type=int, nargs="+", default=[128, 256], help="particles (cells) per side")
    parser.add_argument("--number-density", type=float, nargs="+", default=[0.01, 0.1],
                        help="tracers per (Mpc/h)^3 (two or more separate the per-tracer cost)")
    args = parser.parse_args(argv)
    res = measure(args.ngrid, args.number_density)
    for r in res["rows"]:
        print(f"{r['ngrid']}^3 cells, {r['number_density']:g} per (Mpc/h)^3: peak {r['peak_above_mb']:.0f} MiB above "
              f"the stage's start, {r['tracers']} tracers")
    if res["bytes_per_cell"] is not None:
        per_tracer = "" if res["bytes_per_tracer"] is None else f" + {res['bytes_per_tracer']:.0f} bytes per tracer"
        print(f"fit: {res['fixed_gb']:.2f} GB + {res['bytes_per_cell']:.1f} bytes per cell{per_tracer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
