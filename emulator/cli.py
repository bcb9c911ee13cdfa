"""The ``emulator`` command line: ``emulator <subcommand> --help`` explains each one and its units.

Subcommands live in their own modules, each providing ``add_arguments(parser)`` and ``run(args) -> int``;
:func:`run_cli` is shared with the ``data-prep`` command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Mapping, Sequence

__all__ = ["main", "run_cli", "UNITS_NOTE"]

UNITS_NOTE = "Units: lengths in comoving Mpc/h, wavenumbers in h/Mpc, velocities in peculiar km/s, masses in Msun/h."

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("emulator.demo", "main job: a handful of mocks with the embedded model and their P(k) against theory"),
    "generate": ("emulator.cmd_generate", "generate mock catalogs (particles, halos, galaxies, biased; RSD; cut-sky)"),
    "info": ("emulator.cmd_info", "show the model: what it is, its parameter hull and its measured accuracy"),
    "evaluate": ("emulator.evaluate", "held-out P(k) ratio and r(k) of a model against simulations, vs 2LPT"),
    "export": ("emulator.cmd_export", "package a training checkpoint as a portable model file (with held-out accuracy)"),
    "fit": ("emulator.train", "train the emulator (LightningCLI): emulator fit --config configs/tiny_cpu.yaml"),
    "validate": ("emulator.train", "validate a checkpoint (LightningCLI): emulator validate --config ... --ckpt_path ..."),
    "test": ("emulator.train", "evaluate a checkpoint on the test split (LightningCLI)"),
}

# Subcommands whose arguments belong to another parser (LightningCLI): name -> module with main(argv).
PASSTHROUGH = {"fit": "emulator.train", "validate": "emulator.train", "test": "emulator.train"}


def _build_parser(prog: str, description: str, subcommands: Mapping[str, tuple[str, str]]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=f"{description} {UNITS_NOTE}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in subcommands.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(
            name,
            help=help_text,
            description=f"{help_text}. {UNITS_NOTE}",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
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
    args = _build_parser(prog, description, subcommands).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"{prog} {args.command}: error: {msg}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emulator`` console script."""
    return run_cli(
        "emulator",
        "Fast cosmological mock catalogs from a cosmology-conditioned field-level N-body emulator.",
        SUBCOMMANDS,
        argv,
        PASSTHROUGH,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
