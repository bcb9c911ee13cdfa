"""The ``emulator`` command line: ``emulator <subcommand> --help`` explains each one and its units.

Each subcommand is a module of this package providing ``add_arguments(parser)`` and ``run(args) -> int``; the
dispatcher is :func:`emulator.core.commandline.run_cli`, shared with the ``data-prep`` command. ``fit``,
``validate`` and ``test`` hand their arguments to LightningCLI (:mod:`emulator.training.fit`).
"""

from __future__ import annotations

from typing import Sequence

from ..core.commandline import UNITS_NOTE, run_cli

__all__ = ["main", "UNITS_NOTE"]

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("emulator.cli.demo", "main job: a handful of mocks with the embedded model and their P(k) against theory"),
    "generate": ("emulator.cli.generate", "generate mock catalogs (particles, halos, galaxies, biased; RSD; cut-sky)"),
    "info": ("emulator.cli.info", "show the model: what it is, its parameter hull and its measured accuracy"),
    "evaluate": ("emulator.cli.evaluate", "held-out P(k) ratio and r(k) of a model against simulations, vs 2LPT"),
    "cache": ("emulator.cli.cache", "show (info) or empty (clear) the on-disk cache of CAMB power-spectrum tables"),
    "export": ("emulator.cli.export",
               "package a training checkpoint as a portable model file (with held-out accuracy)"),
    "fit": ("emulator.cli.fit", "train the emulator (LightningCLI): emulator fit --config configs/tiny_cpu.yaml"),
    "validate": ("emulator.cli.fit",
                 "validate a checkpoint (LightningCLI): emulator validate --config ... --ckpt_path ..."),
    "test": ("emulator.cli.fit", "evaluate a checkpoint on the test split (LightningCLI)"),
}

# Subcommands whose arguments belong to another parser (LightningCLI): name -> module with main(argv).
PASSTHROUGH = {"fit": "emulator.training.fit", "validate": "emulator.training.fit", "test": "emulator.training.fit"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emulator`` console script."""
    return run_cli(
        "emulator",
        "Fast cosmological mock catalogs from a cosmology-conditioned field-level N-body emulator.",
        SUBCOMMANDS,
        argv,
        PASSTHROUGH,
    )

