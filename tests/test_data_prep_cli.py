"""The ``data-prep`` command's words: advice names options that exist on the command run, and the config files
its help and docstrings cite exist (issue 15, items 4 and 5)."""

from __future__ import annotations

import argparse
import ast
import importlib
import re
from pathlib import Path

import pytest

from data_prep.cli import SUBCOMMANDS, main

try:
    from gadget_fixtures import MIXED, mixed_gadget_file
except ImportError:  # tests imported as a package
    from tests.gadget_fixtures import MIXED, mixed_gadget_file

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "data_prep").rglob("*.py"))
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
CONFIG = re.compile(r"configs/[\w./*-]+?\.ya?ml")


def _flags(command: str) -> set[str]:
    parser = argparse.ArgumentParser()
    importlib.import_module(SUBCOMMANDS[command][0]).add_arguments(parser)
    return set(parser._option_string_actions)


def _commands_reaching(path: Path) -> list[str]:
    """The subcommands whose runs can execute code of ``path`` (shared modules: all of them)."""
    rel = path.relative_to(ROOT / "data_prep").as_posix()
    if rel in ("build.py", "cmd_build.py", "manifest.py"):
        return ["build"]
    if rel.startswith("simulate/"):
        return ["simulate"]
    if rel == "inspect.py":
        return ["inspect"]
    if rel == "merge.py":
        return ["merge"]
    return list(SUBCOMMANDS)


def _strings(path: Path, docstrings: bool) -> list[str]:
    tree = ast.parse(path.read_text())
    skip = set()
    if not docstrings:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                    skip.add(id(first.value))
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip]


def test_inspect_asks_for_an_option_it_has_and_reads_with_it(tmp_path, capsys):
    path = tmp_path / "snap_004"
    path.write_bytes(mixed_gadget_file())  # Gadget-2 binary: no unit metadata; lengths are kpc/h
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(path) in err and "--length-unit" in err and "length_unit=" not in err
    assert main(["inspect", str(path), "--length-unit", "kpc/h"]) == 0
    out = capsys.readouterr().out
    assert f"box {MIXED['box'] / 1000:g} Mpc/h" in out and f"z={MIXED['redshift']:g}" in out
    assert main(["inspect", str(path), "--length-unit", "0.001"]) == 0
    assert f"box {MIXED['box'] / 1000:g} Mpc/h" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["inspect", str(path), "--length-unit", "parsec"])
    assert "--length-unit" in capsys.readouterr().err


def test_messages_name_only_options_of_the_command_run():
    flags = {name: _flags(name) | {"--help"} for name in SUBCOMMANDS}
    wrong = []
    for path in SOURCES:
        for text in _strings(path, docstrings=False):
            for flag in FLAG.findall(text):
                missing = [c for c in _commands_reaching(path) if flag not in flags[c]]
                if missing:
                    wrong.append(f"{path.relative_to(ROOT)}: {flag!r} (not an option of data-prep {missing}): {text!r}")
    assert not wrong, "\n".join(wrong)


def test_config_files_cited_by_help_and_docstrings_exist(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "500")  # no line breaks inside paths
    texts = []
    for argv in ([], *([name] for name in SUBCOMMANDS)):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        texts.append(capsys.readouterr().out)
    cited_in_help = {m for text in texts for m in CONFIG.findall(text)}
    assert cited_in_help, "the simulate help should show an example config"
    cited = cited_in_help | {m for p in SOURCES for s in _strings(p, docstrings=True) for m in CONFIG.findall(s)}
    missing = sorted(c for c in cited if not (sorted(ROOT.glob(c)) if "*" in c else (ROOT / c).is_file()))
    assert not missing, f"cited but absent: {missing}"
