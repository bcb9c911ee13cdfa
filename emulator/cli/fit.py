"""``emulator fit|validate|test``: listed here for ``emulator --help``; the arguments go to LightningCLI.

:mod:`emulator.cli` hands ``fit``, ``validate`` and ``test`` with all their arguments to
:func:`emulator.training.fit.main` before its own parser runs, so ``emulator fit --help`` is LightningCLI's help.
This module imports nothing heavy, so listing the subcommands does not load Lightning.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: ``emulator fit --help`` is LightningCLI's."""


def run(args: argparse.Namespace) -> int:  # pragma: no cover - dispatched before argparse, see emulator.cli
    raise ValueError("use: emulator fit --config configs/<name>.yaml")
