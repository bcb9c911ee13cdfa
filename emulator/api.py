"""The Python API behind ``emulator generate`` (kept at this path for existing scripts).

The implementation is :mod:`emulator.mocks.api`; ``emulator.generate_mocks`` is the same function.
"""

from .mocks.api import generate_mocks, resolve_cosmology

__all__ = ["generate_mocks", "resolve_cosmology"]
