"""Benchmarks: generated summary statistics against held-out simulations, with baselines, timings and a report.

``python -m benchmarks --tier smoke|standard|full [--config FILE] [--out DIR] [--model PATH] [--device DEV]``
runs a tier (configs in ``configs/benchmarks/``) and writes ``results.json`` and ``report.md`` with figures.

Contenders (same seeds and cosmologies as the truth): the emulator (``generator``), 2LPT, ZA, PM with a few
steps, and a lognormal field. Nothing in ``emulator/`` or ``data_prep/`` imports this package.
"""

from .config import CONTENDERS, TIERS, load_config
from .run import run_tier

__all__ = ["run_tier", "load_config", "TIERS", "CONTENDERS"]
