"""``python -m benchmarks.retarget DIR [DIR ...]``: rewrite the Targets table of committed benchmark reports.

The Targets table of ``DIR/report.md`` is computed from ``DIR/results.json`` (or ``results.json.gz``)
alone (:func:`benchmarks.report.targets_section`), so when the targets change (a new row, a threshold) an old report
is re-judged without rerunning it: this replaces that table, and nothing else, in place (atomic write). A report
without the table, or whose results cannot be read, is a one-line error and no file changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emulator.core.atomic import atomic_open

from .report import targets_section
from .results_file import load_results

__all__ = ["HEADING", "retarget_text", "retarget", "main"]

HEADING = "### Targets (issue 11"


def retarget_text(text: str, res: dict, where: str = "report.md") -> str:
    """``text`` (a report.md) with the table under its Targets heading replaced by the one ``res`` gives."""
    lines = text.split("\n")
    heads = [i for i, ln in enumerate(lines) if ln.startswith(HEADING)]
    if len(heads) != 1:
        raise ValueError(f"{where}: expected one '{HEADING}...' heading, found {len(heads)}")
    start = heads[0] + 1
    while start < len(lines) and not lines[start].startswith("|"):
        if lines[start].startswith("#"):  # the next section: never rewrite a table that is not the Targets one
            raise ValueError(f"{where}: no table under the Targets heading")
        start += 1
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    if start == end:
        raise ValueError(f"{where}: no table under the Targets heading")
    try:
        table = targets_section(res)
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"{where}: results.json lacks what the Targets table needs ({type(exc).__name__}: {exc})") \
            from None
    return "\n".join(lines[:start] + table.split("\n") + lines[end:])


def _new_text(folder: Path) -> str:
    res = load_results(folder)
    try:
        text = (folder / "report.md").read_text()
    except (OSError, ValueError) as exc:
        raise ValueError(f"{folder}: cannot read report.md ({exc})") from None
    return retarget_text(text, res, str(folder / "report.md"))


def retarget(folders: list[str | Path]) -> list[Path]:
    """Rewrite the Targets table of ``folder/report.md`` from ``folder/results.json`` for every folder. Every new
    text is made before any file is written, so a folder that cannot be re-judged is a one-line ``ValueError``
    and nothing changes; each report is then replaced atomically (a write error names the file; those written
    before it are whole and new, the rest whole and old). Returns the reports' paths."""
    folders = [Path(f) for f in folders]
    texts = [_new_text(f) for f in folders]
    paths = [f / "report.md" for f in folders]
    for path, text in zip(paths, texts):
        try:
            with atomic_open(path, "w") as fh:
                fh.write(text)
        except OSError as exc:
            raise ValueError(f"{path}: cannot write ({exc})") from None
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.retarget",
                                description="Rewrite the Targets table of committed benchmark reports (report.md) "
                                            "from their results.json, and nothing else in them.")
    p.add_argument("folders", nargs="+", help="benchmark report folders (report.md and results.json)")
    args = p.parse_args(argv)
    try:
        for path in retarget(args.folders):
            print(f"rewrote {path}")
    except ValueError as exc:
        print(f"benchmarks.retarget: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
