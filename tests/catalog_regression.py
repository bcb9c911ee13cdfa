"""Reference catalogs for the byte-identity regression test (``tests/test_catalog_regression.py``).

``python tests/catalog_regression.py`` records, for the environment it runs in (torch, numpy, Python, machine, the
CPU capability torch dispatches to and the CPU's vector flags and L2 size: AVX2 and AVX512 kernels round
differently, and so do MKL's kernels on two AVX-512 CPUs), the SHA-256 of every column of
small mock catalogs (embedded model, one thread) written and read back through the public API, in
``tests/data/catalog_regression.json`` (one reference per environment). Only record it on purpose: for a new
environment from unchanged code, or when a change is meant to alter catalogs (then drop the other environments'
references) and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

REFERENCE = Path(__file__).resolve().parent / "data" / "catalog_regression.json"

#: name -> keyword arguments of ``generate_mocks`` (box 64 Mpc/h = 32^3 particles of the embedded model)
CASES: dict[str, dict] = {
    "particles": {"tracer": "particles"},
    "particles_fits": {"tracer": "particles", "number_density": 0.05, "format": "fits", "redshift": 0.5},
    "halos": {"tracer": "halos", "min_members": 10},
    "galaxies_rsd": {"tracer": "galaxies", "min_members": 10, "rsd_axis": "z"},
    "biased": {"tracer": "biased", "number_density": 0.01, "bias": {"model": "quadratic", "b1": 1.8, "b2": 0.3}},
    "cutsky": {"tracer": "halos", "min_members": 10, "redshift": 0.0,
               "cutsky": {"redshift_range": [0.002, 0.01], "randoms_factor": 5}},
}
SEED = 7
BOX = 64.0


def cpu_features() -> str:
    """The CPU's vector-extension flags (AVX-512 subsets, AMX, AVX-VNNI) and L2 cache size (Linux; '' elsewhere).

    MKL and oneDNN pick their kernels and blocking from these, so two AVX-512 CPUs can round differently: two AMD
    EPYC hosts that both report torch's ``AVX512`` capability wrote different bits from the same code."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((ln.split(":", 1)[1].split() for ln in fh if ln.startswith("flags")), [])
    except OSError:
        return ""
    keep = sorted(f for f in flags if f.startswith(("avx512", "amx", "avx_vnni", "avx_ifma")))
    try:
        l2 = Path("/sys/devices/system/cpu/cpu0/cache/index2/size").read_text().strip()
    except OSError:
        l2 = "?"
    return " ".join(keep) + f" L2={l2}"


def environment() -> dict[str, str]:
    """What the bits of a catalog may depend on besides the code: torch, numpy and the machine."""
    import torch

    return {"torch": torch.__version__, "numpy": np.__version__, "machine": platform.machine(),
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the SIMD kernels torch dispatches to
            "cpu_features": cpu_features()}


def column_digests(path: Path) -> dict[str, dict[str, str]]:
    """``{catalog: {column: "dtype shape sha256"}}`` of a catalog file read back with the package's reader."""
    try:
        from emulator.mocks.io import list_catalogs, read_catalog
    except ImportError:  # the layout before the restructuring
        from emulator.mocks.io import list_catalogs, read_catalog
    out = {}
    for name in list_catalogs(path):
        cat = read_catalog(path, name)
        out[name] = {
            col: f"{np.asarray(v).dtype.str} {np.asarray(v).shape} "
                 f"{hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()}"
            for col, v in sorted(cat.items())
        }
    return out


def make_digests(workdir: Path) -> dict[str, dict]:
    """Generate every case in ``workdir`` with one torch thread and return the digests."""
    import torch

    try:
        from emulator import generate_mocks
    except ImportError:  # the layout before the restructuring
        from emulator.api import generate_mocks

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        digests = {}
        for name, kwargs in CASES.items():
            kw = {"redshift": 0.0, "format": "hdf5", **kwargs}
            (path,) = generate_mocks("planck18", box_size=BOX, base_seed=SEED, n_realizations=1,
                                     out_dir=workdir / name, progress=False, **kw)
            digests[name] = column_digests(path)
        return digests
    finally:
        torch.set_num_threads(old)


def references() -> list[dict]:
    """The recorded references, ``[{"environment": ..., "digests": ...}, ...]``."""
    return json.loads(REFERENCE.read_text())["references"] if REFERENCE.exists() else []


def reference_for(env: dict) -> dict | None:
    """The recorded digests whose environment equals ``env`` (None if there are none)."""
    return next((r for r in references() if r["environment"] == env), None)


if __name__ == "__main__":
    env = environment()
    with tempfile.TemporaryDirectory() as tmp:
        entry = {"environment": env, "digests": make_digests(Path(tmp))}
    # one reference per environment; one recorded under another set of keys can never match again
    refs = [r for r in references() if r["environment"] != env and r["environment"].keys() == env.keys()]
    refs.append(entry)
    REFERENCE.parent.mkdir(exist_ok=True)
    payload = {"seed": SEED, "box_size": BOX, "references": refs}
    REFERENCE.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    print(f"wrote {REFERENCE} ({env})")
