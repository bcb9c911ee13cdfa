"""Learning curves of training runs from Lightning ``CSVLogger`` files (``metrics.csv``), as a table and a figure.

A run may span several working stretches (a resumed checkpoint writes a new ``metrics.csv``); give each run as a
comma-separated list of its files in order. Validation rows carry ``val/total`` and the power ratio and
cross-correlation of the painted density at a few k (``val/ratio_model@k=...``, ``val/r_model@k=...``, k in
h/Mpc), which the training module logs.

Usage::

    python -m benchmarks.learning_curve --run "halo path=metrics_run1.csv,metrics_run2.csv" \\
        --run "periodic=metrics_run3.csv,metrics_run4.csv" --out learning_curve.png
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

__all__ = ["read_validation", "plot_curves", "main"]

_K_COLUMN = re.compile(r"^val/(ratio|r)_model@k=([0-9.]+)$")


def read_validation(paths: list[str | Path]) -> dict[str, list[float]]:
    """Validation rows of one run, in step order, from its ``metrics.csv`` files.

    Returns
    -------
    dict
        ``"step"``, ``"val/total"`` and one list per ``val/ratio_model@k=..`` / ``val/r_model@k=..`` column
        (NaN where a row lacks it). A step logged twice (a resumed run repeating its last validation) keeps the
        later row.
    """
    rows: dict[int, dict[str, str]] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such metrics file")
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "step" not in reader.fieldnames:
                raise ValueError(f"{path}: not a Lightning CSVLogger metrics file (no 'step' column)")
            for row in reader:
                if row.get("val/total"):
                    rows[int(float(row["step"]))] = row
    if not rows:
        raise ValueError(f"{', '.join(map(str, paths))}: no validation rows (no 'val/total' values)")
    steps = sorted(rows)
    columns = sorted({c for r in rows.values() for c in r if _K_COLUMN.match(c)}, key=_k_order)
    out: dict[str, list[float]] = {"step": [float(s) for s in steps]}
    for col in ["val/total", *columns]:
        out[col] = [float(rows[s][col]) if rows[s].get(col) else float("nan") for s in steps]
    return out


def _k_order(column: str) -> tuple[str, float]:
    kind, k = _K_COLUMN.match(column).groups()
    return kind, float(k)


def plot_curves(runs: dict[str, dict[str, list[float]]], out: str | Path) -> Path:
    """Plot validation loss, P_model/P_true and 1 - r at each logged k against step, one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)
    styles = ["-", "--", ":", "-."]
    for i, (name, data) in enumerate(runs.items()):
        colour = f"C{i}"
        axes[0].plot(data["step"], data["val/total"], color=colour, marker="o", ms=3, label=name)
        ratio_cols = [c for c in data if c.startswith("val/ratio_model@")]
        r_cols = [c for c in data if c.startswith("val/r_model@")]
        for j, col in enumerate(ratio_cols):
            k = col.split("=")[1]
            axes[1].plot(data["step"], data[col], color=colour, ls=styles[j % 4], label=f"{name}, k = {k}")
        for j, col in enumerate(r_cols):
            k = col.split("=")[1]
            axes[2].semilogy(data["step"], [1.0 - v for v in data[col]], color=colour, ls=styles[j % 4],
                             label=f"{name}, k = {k}")
    axes[0].set(xlabel="optimiser step", ylabel="validation loss (val/total)", title="loss")
    axes[1].axhline(1.0, color="k", lw=0.8)
    axes[1].set(xlabel="optimiser step", ylabel=r"$P_\mathrm{model}/P_\mathrm{true}$",
                title="power ratio (validation, k in h/Mpc)")
    axes[2].set(xlabel="optimiser step", ylabel=r"$1 - r(k)$", title="decorrelation (validation)")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="NAME=FILE[,FILE...]",
                        help="a run's name and its metrics.csv files in training order (repeatable)")
    parser.add_argument("--out", default=None, help="figure path (PNG); omitted: the table only")
    args = parser.parse_args(argv)
    runs = {}
    for spec in args.run:
        name, sep, files = spec.partition("=")
        if not sep or not files:
            parser.error(f"--run {spec!r}: expected NAME=FILE[,FILE...]")
        runs[name] = read_validation(files.split(","))
    for name, data in runs.items():
        cols = [c for c in data if c != "step"]
        print(f"{name}: step  " + "  ".join(c.removeprefix("val/") for c in cols))
        for i, step in enumerate(data["step"]):
            print(f"  {int(step):6d}  " + "  ".join(f"{data[c][i]:.4f}" for c in cols))
    if args.out:
        print(f"wrote {plot_curves(runs, args.out)}")


if __name__ == "__main__":
    main()
