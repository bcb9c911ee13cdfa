"""Hardware and version records, device choice, JSON conversion and atomic JSON writes for the benchmarks."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emulator.core.atomic import atomic_open
from emulator.core.device import resolve_device  # re-exported: the benchmarks' device choice is the commands'
from emulator.core.provenance import code_version, package_version, utc_now

__all__ = ["resolve_device", "hardware", "versions", "jsonify", "write_json", "utc_now", "rss_mb", "repo_relative"]

_ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device) -> dict:
    """CPU model, core count, torch threads, device (and GPU name and memory when on CUDA)."""
    out = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(gpu_name=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 2))
    return out


def versions() -> dict:
    """Python, torch, numpy, CUDA and package versions, with the git commit of the code."""
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda": torch.version.cuda,
        "package": package_version(),
        "code": code_version(),
    }


def jsonify(obj: Any) -> Any:
    """Tensors and arrays -> lists, numpy scalars -> Python numbers, ``nan``/``inf`` -> ``None`` (valid JSON)."""
    if torch.is_tensor(obj):
        obj = obj.detach().cpu()
        obj = obj.to(torch.float64).numpy() if obj.is_floating_point() else obj.numpy()
    if isinstance(obj, np.ndarray):
        return [jsonify(v) for v in obj.tolist()] if obj.ndim else jsonify(obj.item())
    if isinstance(obj, dict):
        return {str(k): jsonify(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonify(v) for v in obj]
    if isinstance(obj, np.generic):
        return jsonify(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``jsonify(data)`` atomically (temporary file + rename), strict JSON (no NaN)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w") as fh:
        json.dump(jsonify(data), fh, indent=1, allow_nan=False)
        fh.write("\n")
    return path


def rss_mb(field: str = "VmRSS") -> float | None:
    """Resident (``VmRSS``) or peak resident (``VmHWM``) memory of this process in MiB (Linux), else ``None``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    if field == "VmHWM":
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20
    return None


def repo_relative(path: str | os.PathLike | None) -> str | None:
    """``path`` relative to the repository root when it lies inside it (so that a committed report names
    ``configs/...``, not the folder of the clone that made it), else unchanged."""
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(_ROOT))
    except ValueError:
        return str(path)
