"""The ``data-prep`` command line: simulate training suites, read snapshots, build HDF5 training sets."""

from __future__ import annotations

import sys
from typing import Sequence

from emulator.core.commandline import run_cli

__all__ = ["main"]

# name -> (module, one-line help); each module provides add_arguments(parser) and run(args).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("data_prep.simulate.cli", "run a 2LPT+PM simulation suite over a Latin hypercube of cosmologies"),
    "build": ("data_prep.cmd_build", "build an HDF5 training set from a suite manifest (resumable, atomic)"),
    "merge": ("data_prep.merge", "merge suite manifests into one (a Latin hypercube plus added points) for one build"),
    "inspect": ("data_prep.inspect", "summarise a training set or a snapshot"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``data-prep`` console script."""
    return run_cli(
        "data-prep",
        "Prepare N-body training data: a 2LPT+PM simulator over a Latin hypercube, snapshot readers "
        "(Gadget binary/HDF5, SWIFT, FastPM bigfile) and the HDF5 training-set builder.",
        SUBCOMMANDS,
        argv,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
