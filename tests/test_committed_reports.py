"""Every committed benchmark report (benchmarks/results/**/report.md) renders: each markdown table has as many
cells in every row as in its header, counting only unescaped pipes (a bare | inside a cell splits it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REPORTS = sorted((REPO / "benchmarks" / "results").rglob("report.md"))
PIPE = re.compile(r"(?<!\\)\|")


def _tables(text: str) -> list[list[str]]:
    """The markdown tables of ``text``: runs of consecutive lines that start with a pipe."""
    tables, run = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            run.append(line)
        elif run:
            tables.append(run)
            run = []
    return tables


def test_the_cell_counter_sees_a_bare_pipe_and_not_an_escaped_one():
    good = ["| a | max \\|x\\| |", "|---|---|", "| 1 | 2 |"]
    bad = ["| a | max |x| |", "|---|---|", "| 1 | 2 |"]
    assert len({len(PIPE.findall(line)) for line in good}) == 1
    assert len({len(PIPE.findall(line)) for line in bad}) == 2


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: str(p.relative_to(REPO / "benchmarks" / "results")))
def test_every_table_row_has_the_headers_cells(path):
    tables = _tables(path.read_text())
    assert tables, path  # every report has tables
    for table in tables:
        counts = [len(PIPE.findall(line)) for line in table]
        assert set(counts) == {counts[0]}, (path, table[0])
