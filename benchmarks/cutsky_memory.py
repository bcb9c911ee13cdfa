"""``python -m benchmarks.cutsky_memory``: the memory of the cut-sky stage, per catalogue row.

A cut-sky mock (``--cutsky-zrange``) places the box tracer catalog on the sky, selects the data, draws each random
file when it is written and writes the files (:func:`emulator.mocks.survey_files.survey_outputs`,
:func:`emulator.mocks.io.write_mock_files`). For each ``--rows`` (box tracers), in a fresh process, this builds a
halo-like catalog (``HaloID``, ``Position``, ``Velocity``, ``Mass``, ``Radius``, ``Length``) of uniform tracers in a
1000 Mpc/h box, cuts the sphere around the box centre (full sky, ``randoms_factor`` 20, two random files) and
measures the peak resident set above the one before the catalog existed (Linux ``VmHWM`` after resetting it with
``/proc/self/clear_refs``). A least-squares fit ``peak = fixed + bytes_per_row * (data + one random file)`` gives
:data:`emulator.mocks.largebox.CUTSKY_BYTES_PER_ROW`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

__all__ = ["measure", "main"]

BOX = 1000.0  # Mpc/h
FACTOR = 20.0  # randoms per data object, per file
FILES = 2


def _child(rows: int, out_dir: str, fmt: str) -> None:  # pragma: no cover - run in a subprocess
    from emulator.core.cosmology import get_preset
    from emulator.mocks.distance import DistanceRedshift
    from emulator.mocks.io import write_mock_files
    from emulator.mocks.survey_files import survey_outputs

    from .env import rss_mb
    from .speed import _reset_peak

    cosmo = get_preset("planck18")
    zmax = float(DistanceRedshift(cosmo, 1.0).redshift(np.array([BOX / 2]))[0])
    cs = {"redshift_range": [0.0, zmax], "randoms_factor": FACTOR, "n_random_files": FILES}
    f = SimpleNamespace(redshift=0.1, box_size=BOX, cosmology=cosmo, seed=1)
    reset = _reset_peak()
    base = rss_mb("VmRSS")
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    mass = 10 ** rng.uniform(12.5, 15.0, rows)
    cols = {"HaloID": np.arange(rows, dtype=np.int64), "Position": rng.uniform(0.0, BOX, (rows, 3)).astype("f4"),
            "Velocity": rng.normal(0.0, 300.0, (rows, 3)).astype("f4"), "Mass": mass,
            "Radius": np.cbrt(mass) * 1e-4, "Length": rng.integers(20, 1000, rows)}
    catalogs, attrs = survey_outputs(cols, {}, f, cs, {"SEED_IC": 1, "SEED_SEL": 2, "SEED_RAN": 3})
    data = int(catalogs["data"].size)
    write_mock_files(Path(out_dir) / f"mock.{fmt}", catalogs, attrs, format=fmt)
    print(json.dumps({"box_rows": rows, "data": data, "randoms_per_file": round(FACTOR * data), "format": fmt,
                      "peak_above_mb": rss_mb("VmHWM") - base, "peak_reset": reset,
                      "seconds": time.perf_counter() - t0}))


def measure(rows: list[int], fmt: str = "fits") -> dict:
    """Peak above the start (MB) per box catalog size, and the fit ``peak = fixed + bytes_per_row * held rows``
    (held rows: the data and one random file)."""
    out = []
    for n in rows:
        with tempfile.TemporaryDirectory() as tmp:
            res = subprocess.run([sys.executable, "-m", "benchmarks.cutsky_memory", "--child", str(n), tmp, fmt],
                                 capture_output=True, text=True, check=True)
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    peak = np.array([r["peak_above_mb"] * 2**20 for r in out])
    held = np.array([r["data"] + r["randoms_per_file"] for r in out], dtype=float)
    coef = (np.linalg.lstsq(np.stack([np.ones_like(held), held], axis=1), peak, rcond=None)[0]
            if len(out) >= 2 else None)
    return {"rows": out, "format": fmt, "fixed_gb": None if coef is None else float(coef[0]) / 1e9,
            "bytes_per_row": None if coef is None else float(coef[1])}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(int(argv[1]), argv[2], argv[3])
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cutsky_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[250_000, 1_000_000],
                        help="box tracers (halos) in the catalog put on the sky")
    parser.add_argument("--format", choices=["fits", "hdf5"], default="fits", help="file format of the mock")
    args = parser.parse_args(argv)
    res = measure(args.rows, args.format)
    for r in res["rows"]:
        print(f"{r['box_rows']} box tracers -> {r['data']} data + {FILES} x {r['randoms_per_file']} randoms "
              f"({r['format']}): peak {r['peak_above_mb']:.0f} MiB above the start, {r['seconds']:.1f} s")
    if res["bytes_per_row"] is not None:
        print(f"fit: {res['fixed_gb']:.3f} GB + {res['bytes_per_row']:.1f} bytes per held row (data + one random file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
