"""Time and peak memory per mock of each method at equal resolution (``ngrid^3`` particles at the model's cell).

Protocol, per method: set up (imports, the cosmology's CAMB table, the model), reset the peak counters, make
one warm-up mock, then ``repeats`` timed mocks with new seeds; ``seconds_per_mock`` and ``median_seconds`` are
their median (the headline number), ``fastest_seconds`` the fastest. A warm-up slower than
:data:`WARMUP_COUNTED_SECONDS` is itself the first of the ``repeats`` (``warmup_counted``).

Memory: with ``isolate=True`` (default) every method runs in a fresh ``python -m benchmarks.speed`` subprocess,
so its peak resident set (Linux ``VmHWM``) belongs to that method alone. The peak is reset after the set-up by
writing ``5`` to ``/proc/self/clear_refs`` where the kernel allows it (``peak_reset`` says whether it did); the
resident set after the set-up is reported as ``baseline_rss_mb`` (interpreter, torch, CAMB tables, model), and
``peak_rss_mb - baseline_rss_mb`` is the memory the mocks themselves needed. On CUDA the peak allocated device
memory (``torch.cuda.max_memory_allocated``) is reported too. With ``isolate=False`` (fast tests) the same
function runs in the calling process, whose baseline then includes everything it already holds.

Methods: ``generator`` (emulator), ``network`` (the generator's network alone, one periodic whole-box pass on
an ``ngrid^3`` input: the unpadded cost that tiling and the 2LPT input add to; no particles), ``2lpt``, ``za``,
``lognormal`` (target: CAMB halofit P(k) at the redshift, including the log-transform of the target), ``pm_few``
(PM with ``pm_steps``), ``pm`` (the truth's settings).
A mock is particles (positions and velocities) or, for the lognormal, a density mesh.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from .env import resolve_device, rss_mb

__all__ = ["SPEED_METHODS", "contender_kwargs", "time_method", "measure_speed"]

SPEED_METHODS = ("generator", "network", "2lpt", "za", "lognormal", "pm_few", "pm")


#: A warm-up mock slower than this (seconds) is the first timed repeat: the truth recipe's ~3 min mock would
#: otherwise run four times for three timings (first-call costs are ~1 s).
WARMUP_COUNTED_SECONDS = 20.0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def contender_kwargs(spec: dict, cosmo, device: torch.device) -> dict:
    """The :func:`benchmarks.contenders.make_contender` keywords of ``spec``'s method (``spec`` as built by
    :func:`measure_speed`: ``method``, ``model_path``, ``simulation``, ``pm_steps``, ``pm``, and ``ngrid``,
    ``box_size`` (Mpc/h), ``redshift`` for the lognormal's target); loads the model and makes the CAMB table of
    ``cosmo``, so that neither is part of a timed mock."""
    from emulator.core.fourier import fundamental, nyquist
    from emulator.core.power import LinearPower, nonlinear_power
    from emulator.model.portable import load_model

    method = spec["method"]
    named_pm = (spec.get("pm") or {}).get(method)
    if method not in SPEED_METHODS and named_pm is None:
        raise ValueError(f"method must be one of {SPEED_METHODS} or a named PM setting, got {method!r}")
    LinearPower(cosmo)  # CAMB table cached: not part of a mock
    kw: dict = {"device": device}
    if method in ("generator", "network"):
        kw["model"] = load_model(spec["model_path"], device=device)
    elif method == "pm":  # the truth's own recipe, mass refinement included
        kw["pm"] = dict(spec["simulation"])
    elif method == "pm_few":
        kw["simulation"] = dict(spec["simulation"])
        kw["pm_steps"] = int(spec["pm_steps"])
    elif named_pm is not None:
        kw["pm"] = dict(named_pm)
    elif method == "lognormal":
        n, box = int(spec["ngrid"]), float(spec["box_size"])
        k = torch.arange(1, n // 2 + 2, dtype=torch.float64) * fundamental(box)
        k = k[k <= 1.8 * nyquist(n, box)]
        kw["target"] = (k, torch.as_tensor(nonlinear_power(cosmo, k.numpy(), float(spec["redshift"]))))
    return kw


def time_method(spec: dict) -> dict:
    """Time one method in this process; ``spec`` is the dict built by :func:`measure_speed`."""
    from emulator.core.cosmology import Cosmology

    from .contenders import make_contender

    method = name = spec["method"]
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device = resolve_device(spec.get("device", "cpu"))
    cosmo = Cosmology(*spec["cosmology"])
    n, box, z = int(spec["ngrid"]), float(spec["box_size"]), float(spec["redshift"])
    kw = contender_kwargs(spec, cosmo, device)
    baseline = rss_mb("VmRSS")
    reset = _reset_peak()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seed0 = int(spec.get("seed", 12345))
    if method == "network":
        def mock(seed: int) -> float:
            return _network_pass(kw["model"], cosmo, z, n, seed, device)
    else:
        def mock(seed: int) -> float:
            return make_contender(name, cosmo, z, box, n, seed, **kw).seconds
    first = mock(seed0)  # warm-up: first-call costs (allocator, lazy imports, caches) stay out of the median
    repeats = int(spec["repeats"])
    counted = first > WARMUP_COUNTED_SECONDS  # those costs are < 1% of such a mock: time it, do not repeat it
    times = ([first] if counted else []) + [mock(seed0 + 1 + i) for i in range(repeats - counted)]
    out = {
        "method": method, "ngrid": n, "box_size": box, "seconds_per_mock": statistics.median(times),
        "median_seconds": statistics.median(times), "fastest_seconds": min(times), "seconds": times,
        "warmup_counted": bool(counted),
        "baseline_rss_mb": baseline,
        "peak_rss_mb": rss_mb("VmHWM"), "peak_reset": reset,
        "device": str(device), "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def _network_pass(model, cosmo, z: float, n: int, seed: int, device: torch.device) -> float:
    """Seconds of one periodic whole-box pass of ``model``'s network on an ``n^3`` input (input made untimed)."""
    from emulator.model.tiling import periodic_forward

    gen = torch.Generator().manual_seed(seed)
    channels = int(model.net.in_channels)  # 6 for a derivative-velocity network: displacement and velocity
    x = (0.3 * torch.randn((1, channels, n, n, n), generator=gen)).to(device)  # values do not change the cost
    style = model.style(cosmo, z)[None].to(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        periodic_forward(model.net, x, style)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def measure_speed(
    methods, *, ngrid: int, box_size: float, redshift: float, cosmology, model_path: str | None,
    simulation: dict, pm_steps: int, repeats: int, device: str, threads: int | None, isolate: bool = True,
    timeout: float = 3600.0, log=None, pm: dict | None = None,
) -> dict:
    """Run :func:`time_method` for every method (in a fresh subprocess each when ``isolate``).

    Returns ``{method: result}``; a method that fails records ``{"error": message}`` instead.
    """
    results = {}
    for method in methods:
        spec = {
            "method": method, "ngrid": int(ngrid), "box_size": float(box_size), "redshift": float(redshift),
            "cosmology": [float(v) for v in cosmology.to_array()], "model_path": model_path,
            "simulation": dict(simulation), "pm_steps": int(pm_steps), "repeats": int(repeats),
            "device": str(device), "threads": threads, "pm": dict(pm or {}),
        }
        if method in ("generator", "network") and not model_path:
            results[method] = {"error": "no model file"}
            continue
        if log:
            log(f"speed: {method} at {ngrid}^3 ({'subprocess' if isolate else 'in process'})")
        if not isolate:
            results[method] = time_method(spec)
            continue
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run([sys.executable, "-m", "benchmarks.speed", json.dumps(spec)], capture_output=True,
                              text=True, timeout=timeout, cwd=root, env=env)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            results[method] = {"error": f"exit {proc.returncode}: {tail[0]}"}
        else:
            results[method] = json.loads(lines[-1])
    return results


def _main() -> None:  # pragma: no cover - exercised through measure_speed(isolate=True)
    from emulator.core.allocator import keep_freed_memory

    keep_freed_memory()  # as the emulator and data-prep commands do: every contender timed alike
    spec = json.loads(sys.argv[1])
    t0 = time.perf_counter()
    out = time_method(spec)
    out["process_seconds"] = time.perf_counter() - t0
    print(json.dumps(out))


if __name__ == "__main__":  # pragma: no cover
    _main()
