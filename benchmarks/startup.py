"""Start-up benchmark: wall time of the light commands, a generation run's fixed overhead, the P(k) lookup.

``python -m benchmarks.startup [--repeats 3] [--box-size 128] [--lookup-n 256]`` prints a table of medians over
``repeats`` fresh processes (seconds) against the targets of issue 14:

* ``emulator --help``, ``emulator generate --help``, ``emulator info``: whole process, target <= 0.5 s;
* ``generate`` overhead: from launching ``emulator generate --preset planck18 --box-size <box> --seed 1`` to its
  first call of :func:`emulator.model.emulate.emulate_fields` (imports, argument checks, model and CAMB table
  loading), with a warm CAMB cache (one untimed run first fills it), target <= 1 s;
* a bare interpreter's ``import torch`` (launch to import done), the floor under that overhead (torch's own
  import: 1-2.5 s on the development host depending on the day), and the overhead above it;
* the linear-power lookup (:class:`emulator.core.power.LinearPower`) on the ``n^3`` rfft ``|k|`` grid, float64,
  in this process (no target; issue 14 measured 1.9 s at 256^3 before).

Timings on a shared machine only ever get slower; the median is reported, with the minimum next to it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["command_times", "generate_overhead", "torch_import_times", "lookup_time", "main"]

# Run inside the child: time from the parent's launch (passed in) to the first emulate_fields call.
_GENERATE_PROBE = """
import sys, time
launched = float(sys.argv[1])
import emulator.mocks.api as api
first = api.emulate_fields
def probe(*args, **kwargs):
    print(f"OVERHEAD {time.time() - launched:.6f}", file=sys.stderr, flush=True)
    api.emulate_fields = first
    return first(*args, **kwargs)
api.emulate_fields = probe
from emulator.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _emulator_command() -> list[str]:
    script = Path(sys.executable).parent / "emulator"
    if script.is_file():
        return [str(script)]
    found = shutil.which("emulator")
    return [found] if found else [sys.executable, "-m", "emulator.cli"]


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def command_times(repeats: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Wall seconds of each light command, ``repeats`` fresh processes each."""
    exe = _emulator_command()
    out = {}
    for args in (["--help"], ["generate", "--help"], ["info"]):
        _wall(exe + args, env)  # warm the file-system cache
        out["emulator " + " ".join(args)] = [_wall(exe + args, env) for _ in range(repeats)]
    return out


def generate_overhead(repeats: int, box_size: float, env: dict[str, str]) -> list[float]:
    """Seconds from launch to the first ``emulate_fields`` call of a planck18 generation (warm CAMB cache)."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats + 1):  # the first run fills the CAMB cache and is not counted
            argv = ["generate", "--preset", "planck18", "--box-size", f"{box_size:g}", "--seed", "1",
                    "--out", str(Path(tmp) / f"run{i}"), "--no-progress"]
            launched = time.time()
            res = subprocess.run([sys.executable, "-c", _GENERATE_PROBE, f"{launched:.6f}", *argv], env=env,
                                 capture_output=True, text=True, check=True)
            lines = [ln for ln in res.stderr.splitlines() if ln.startswith("OVERHEAD ")]
            if i:
                times.append(float(lines[0].split()[1]))
    return times


def torch_import_times(repeats: int, env: dict[str, str]) -> list[float]:
    """Seconds from launching a bare interpreter to the end of its ``import torch`` (not its exit: torch's
    teardown is not part of a run's overhead): the floor under any run that computes a mock."""
    code = ("import sys, time\nlaunched = float(sys.argv[1])\nimport torch\n"
            "print(f'IMPORTED {time.time() - launched:.6f}', file=sys.stderr)\n")
    times = []
    for i in range(repeats + 1):  # the first warms the file-system cache
        launched = time.time()
        res = subprocess.run([sys.executable, "-c", code, f"{launched:.6f}"], env=env, capture_output=True,
                             text=True, check=True)
        if i:
            times.append(float([ln for ln in res.stderr.splitlines() if ln.startswith("IMPORTED ")][0].split()[1]))
    return times


def lookup_time(n: int, repeats: int) -> list[float]:
    """Seconds of one ``LinearPower(planck18)(|k|)`` on the ``n^3`` rfft grid (float64), in this process."""
    import torch

    from emulator.core.cosmology import get_preset
    from emulator.core.fourier import k_magnitude
    from emulator.core.power import LinearPower

    k = k_magnitude(n, 1000.0, dtype=torch.float64)
    k[0, 0, 0] = 1.0
    power = LinearPower(get_preset("planck18"))
    power(k[:2])  # table and dtype cache
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        power(k)
        out.append(time.perf_counter() - t0)
    return out


def _row(name: str, times: list[float], target: float | None) -> str:
    med = statistics.median(times)
    verdict = "" if target is None else ("ok" if med <= target else "OVER")
    tgt = "-" if target is None else f"{target:.2f}"
    return f"| {name} | {med:.3f} | {min(times):.3f} | {len(times)} | {tgt} | {verdict} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per measurement (>= 3)")
    parser.add_argument("--box-size", type=float, default=128.0, help="generation box side in Mpc/h")
    parser.add_argument("--lookup-n", type=int, default=256, help="mesh size n of the lookup timing (0: skip)")
    args = parser.parse_args(argv)
    if args.repeats < 3:
        raise SystemExit("--repeats must be >= 3")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    rows = ["| measurement | median [s] | min [s] | runs | target [s] | |", "|---|---|---|---|---|---|"]
    for name, times in command_times(args.repeats, env).items():
        rows.append(_row(name, times, 0.5))
    overhead = generate_overhead(args.repeats, args.box_size, env)
    rows.append(_row(f"generate overhead (box {args.box_size:g}, warm CAMB cache)", overhead, 1.0))
    floor = torch_import_times(args.repeats, env)
    rows.append(_row("launch to 'import torch' done (the floor of the overhead)", floor, None))
    rows.append(_row("generate overhead above that floor (median - median)",
                     [statistics.median(overhead) - statistics.median(floor)], None))
    if args.lookup_n:
        rows.append(_row(f"LinearPower lookup {args.lookup_n}^3 (float64)",
                         lookup_time(args.lookup_n, args.repeats), None))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
