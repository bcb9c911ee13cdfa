"""Explicit cosmologies of a suite: a list of points (fiducial, Fisher steps, hull corners) with their seeds.

A suite YAML may hold, alongside or instead of the Latin hypercube (``n_cosmologies: 0``),

.. code-block:: yaml

    cosmologies:
      - {name: fiducial, Omega_m: 0.31, Omega_b: 0.049, h: 0.67, n_s: 0.96, sigma8: 0.81, seed: 5}
      - {Omega_m: 0.24, Omega_b: 0.049, h: 0.67, n_s: 0.96, sigma8: 0.90, seed: 6}

Every entry gives the five parameters of :data:`emulator.core.cosmology.PARAMETER_NAMES` and a ``seed``, the
white-noise seed of :func:`emulator.core.fields.white_noise` on the suite's particle grid: the convention of
``emulator generate --seed``, so that a generated mock of seed ``s`` and the simulation of seed ``s`` share
their initial conditions (all of them with ``refine: 1``; every mode the coarse grid carries with ``refine > 1``,
see :mod:`data_prep.simulate.refine`). Seeds may repeat (same phases for different cosmologies, as finite
differences want). ``name`` (optional; letters, digits, ``_ - .``) becomes the simulation's folder; the default is
``cosmo_<index>``.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

from emulator.core.cosmology import PARAMETER_NAMES, Cosmology

__all__ = ["SEED_MAX", "check_seed", "explicit_design", "parse_cosmologies"]

SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed takes seeds in [0, 2^64 - 1]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_seed(seed: object, name: str = "seed") -> int:
    """A white-noise seed, an integer in ``[0, 2^64 - 1]``; one-line ``ValueError`` otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) <= SEED_MAX:
        raise ValueError(f"{name} must be an integer in [0, 2^64 - 1], got {seed!r}")
    return int(seed)


def parse_cosmologies(entries: Any, where: str = "cosmologies") -> list[dict]:
    """Validate a list of explicit cosmologies; return ``[{"name", "cosmology", "seed"}, ...]``.

    Raises ``ValueError`` naming the entry (``cosmologies[i]``) and the key at fault.
    """
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
        raise ValueError(f"{where} must be a list of {{{', '.join(PARAMETER_NAMES)}, seed}} mappings")
    out, names = [], set()
    for i, entry in enumerate(entries):
        tag = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{tag} must be a mapping with {', '.join(PARAMETER_NAMES)} and seed, got {entry!r}")
        unknown = set(entry) - set(PARAMETER_NAMES) - {"seed", "name"}
        if unknown:
            raise ValueError(f"{tag}: unknown key(s) {sorted(unknown)}; known: {[*PARAMETER_NAMES, 'seed', 'name']}")
        if "seed" not in entry:
            raise ValueError(f"{tag}: seed is required (the white-noise seed, as emulator generate --seed)")
        seed = check_seed(entry["seed"], f"{tag}.seed")
        try:
            cosmo = Cosmology.from_mapping({k: entry[k] for k in PARAMETER_NAMES if k in entry})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{tag}: {exc}") from None
        name = str(entry.get("name", f"cosmo_{i:04d}"))
        if not _NAME.match(name) or name.startswith("sim_"):
            raise ValueError(f"{tag}.name must be 1-64 letters, digits, '_', '-', '.' and not start with 'sim_' "
                             f"(the Latin hypercube's folders), got {name!r}")
        if name in names:
            raise ValueError(f"{tag}.name {name!r} is used twice")
        names.add(name)
        out.append({"name": name, "cosmology": cosmo.to_dict(), "seed": seed})
    return out


def explicit_design(entries: Any) -> list[dict]:
    """Design records (``sim_id``, ``cosmology``, ``seed``) of the explicit cosmologies, in list order."""
    return [{"sim_id": e["name"], "cosmology": e["cosmology"], "seed": e["seed"]} for e in parse_cosmologies(entries)]
