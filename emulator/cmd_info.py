"""``emulator info``: describe a model (see :mod:`emulator.cmd_generate`)."""

from .cmd_generate import info_add_arguments as add_arguments
from .cmd_generate import info_run as run

__all__ = ["add_arguments", "run"]
