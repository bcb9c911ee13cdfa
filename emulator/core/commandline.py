"""The command-line dispatcher shared by the ``emulator`` and ``data-prep`` commands.

Each subcommand lives in its own module, providing ``add_arguments(parser)`` and ``run(args) -> int``; a
subcommand whose arguments belong to another parser (LightningCLI) is a *passthrough*: a module with
``main(argv)``. User errors (``ValueError``, ``FileNotFoundError``, ``FileExistsError``, ``KeyError``) print one
line, ``<prog> <command>: error: <message>``, and return exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Mapping, Sequence

__all__ = ["run_cli", "UNITS_NOTE"]

UNITS_NOTE = "Units: lengths in comoving Mpc/h, wavenumbers in h/Mpc, velocities in peculiar km/s, masses in Msun/h."


def _chosen(argv: Sequence[str], subcommands: Mapping[str, tuple[str, str]]) -> str | None:
    """The subcommand named in ``argv`` (its first non-option word), or ``None``."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in subcommands else None
    return None


def _build_parser(
    prog: str, description: str, subcommands: Mapping[str, tuple[str, str]], chosen: str | None = None
) -> argparse.ArgumentParser:
    """The parser; only the ``chosen`` subcommand's module is imported (all of them when ``chosen`` is None).

    Importing a subcommand module only to list its one-line help would make ``<prog> --help`` pay for every
    subcommand's imports, so the others get their help line and no arguments.
    """
    parser = argparse.ArgumentParser(prog=prog, description=f"{description} {UNITS_NOTE}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in subcommands.items():
        p = sub.add_parser(
            name,
            help=help_text,
            description=f"{help_text}. {UNITS_NOTE}",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        if chosen is None or name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    return parser


def run_cli(
    prog: str,
    description: str,
    subcommands: Mapping[str, tuple[str, str]],
    argv: Sequence[str] | None = None,
    passthrough: Mapping[str, str] | None = None,
) -> int:
    """Parse ``argv`` and run the chosen subcommand; user errors print one line and return exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough = passthrough or {}
    if argv and argv[0] in passthrough:
        return int(importlib.import_module(passthrough[argv[0]]).main(argv) or 0)
    chosen = _chosen(argv, subcommands)
    args = _build_parser(prog, description, subcommands, chosen if chosen is not None else "").parse_args(argv)
    from .allocator import keep_freed_memory

    keep_freed_memory()  # large tensors reuse freed pages (see emulator.core.allocator)
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"{prog} {args.command}: error: {msg}", file=sys.stderr)
        return 2
