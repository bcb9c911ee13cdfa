"""``python -m benchmarks.network_formats``: does channels-last memory or ``torch.compile`` pay for the network?

Issue 14 asks for channels-last or ``torch.compile`` "where it pays", measured. For each ``ngrid`` this times the
2LPT-based embedded model's (``default``: the network of every embedded model at 2 Mpc/h has its shape) network
alone, one periodic whole-box pass (:func:`emulator.model.tiling.periodic_forward`, the
unpadded cost of a mock) under ``torch.inference_mode`` at a fixed thread count, in three forms:

- ``eager``: the module as generation runs it (contiguous NCDHW tensors);
- ``channels_last``: the module and its input in ``torch.channels_last_3d`` memory format;
- ``compile``: ``torch.compile(net, dynamic=False)`` (TorchInductor, default mode; on a CPU it compiles C++
  kernels), compiled afresh for each size.

Each form: one warm-up pass (for ``compile`` this is the compilation, reported as ``first_seconds``), then
``repeats`` timed passes on new inputs; the median and fastest are reported, with the largest absolute difference
of the output from the eager one on the same input in units of the eager output's rms (float32 reassociation only
is expected, ~1e-6; the eager output is computed untimed first, so the comparison holds whichever forms run). A
form that fails records its one-line error; an unknown form is refused before anything runs. Outputs in ``--out``:
``network_formats.json`` (with the environment) and ``network_formats.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

__all__ = ["FORMS", "time_forms", "main"]

FORMS = ("eager", "channels_last", "compile")


def _prepare(form: str, net: torch.nn.Module) -> torch.nn.Module:
    if form == "eager":
        return net
    if form == "channels_last":
        return net.to(memory_format=torch.channels_last_3d)
    torch._dynamo.reset()  # "compile": a fresh compilation for each box size (a second would trace dynamic shapes)
    return torch.compile(net, dynamic=False)


def time_forms(ngrid: int, *, forms=FORMS, repeats: int = 3, redshift: float = 0.0, seed: int = 1,
               log=print) -> list[dict]:
    """Time each form of the embedded network's periodic pass on an ``ngrid^3`` box; one row per form.

    Raises ``ValueError`` naming an unknown form before anything runs."""
    import copy

    unknown = [f for f in forms if f not in FORMS]
    if unknown:
        raise ValueError(f"network_formats: unknown form {unknown[0]!r} (choose from {', '.join(FORMS)})")

    from emulator.core.cosmology import get_preset
    from emulator.model.header import LPT_MODEL
    from emulator.model.portable import load_model
    from emulator.model.tiling import periodic_forward

    model = load_model(LPT_MODEL)
    style = model.style(get_preset("planck18"), redshift)[None]
    gen = torch.Generator().manual_seed(seed)
    inputs = [0.3 * torch.randn((1, 3, ngrid, ngrid, ngrid), generator=gen) for _ in range(repeats + 1)]
    with torch.inference_mode():  # what every form is compared with, whichever forms run
        reference = periodic_forward(model.net.eval(), inputs[0], style)
    scale = float(reference.pow(2).mean().sqrt())
    rows = []
    for form in forms:
        log(f"network_formats: {form} at {ngrid}^3")
        row = {"form": form, "ngrid": ngrid}
        try:
            net = _prepare(form, copy.deepcopy(model.net).eval())
            fmt = torch.channels_last_3d if form == "channels_last" else torch.contiguous_format
            times, first = [], None
            for i, x in enumerate(inputs):
                x = x.contiguous(memory_format=fmt)
                t0 = time.perf_counter()
                with torch.inference_mode():
                    out = periodic_forward(net, x, style)
                dt = time.perf_counter() - t0
                if i == 0:
                    first = dt
                    row["max_abs_diff_over_rms"] = float((out - reference).abs().max()) / scale
                else:
                    times.append(dt)
            row.update(first_seconds=first, median_seconds=statistics.median(times), fastest_seconds=min(times),
                       seconds=times)
        except Exception as exc:  # noqa: BLE001 - a form that cannot run is a result, recorded with its reason
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        rows.append(row)
    eager = next((r for r in rows if r["form"] == "eager" and "median_seconds" in r), None)
    for r in rows:
        if eager and "median_seconds" in r:
            r["speedup_vs_eager"] = eager["median_seconds"] / r["median_seconds"]
    return rows


def table(rows: list[dict]) -> str:
    """Markdown table of :func:`time_forms` rows."""
    out = ["| form | particles | first pass s | median s | fastest s | speed-up vs eager | max abs diff / rms |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['form']} | {r['ngrid']}³ | failed: {r['error']} | | | | |")
            continue
        speedup = f"{r['speedup_vs_eager']:.2f}x" if "speedup_vs_eager" in r else "–"  # eager not timed
        out.append(f"| {r['form']} | {r['ngrid']}³ | {r['first_seconds']:.3g} | {r['median_seconds']:.3g} | "
                   f"{r['fastest_seconds']:.3g} | {speedup} | {r['max_abs_diff_over_rms']:.1e} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.network_formats", description=__doc__.split("\n")[0])
    parser.add_argument("--ngrid", type=int, nargs="+", default=[64, 128], help="particles per side (cells)")
    parser.add_argument("--forms", nargs="+", default=list(FORMS), choices=FORMS)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (fixed; default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes after the warm-up (>= 3)")
    parser.add_argument("--out", default="runs/benchmarks/network_formats", help="output folder")
    args = parser.parse_args(argv)
    if args.repeats < 3:
        parser.error(f"--repeats must be >= 3 (a median of at least three), got {args.repeats}")
    if args.threads < 1:
        parser.error(f"--threads must be a positive integer, got {args.threads}")
    torch.set_num_threads(args.threads)
    from emulator.core.allocator import keep_freed_memory

    from .env import hardware, versions, write_json

    keep_freed_memory()  # as the generate command does
    rows = [r for n in args.ngrid for r in time_forms(n, forms=args.forms, repeats=args.repeats)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**hardware(torch.device("cpu")), **versions(), "threads": torch.get_num_threads()}
    write_json(out / "network_formats.json", {"rows": rows, "environment": env})
    md = table(rows) + (f"\nOne periodic whole-box pass of the embedded network, torch threads {env['threads']}, "
                        f"median of {args.repeats} after a warm-up (for compile: the compilation).\n")
    (out / "network_formats.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
