"""What a generator corrects, as plain data: :class:`BaseRecipe` (2LPT or a few-step PM or COLA run), free of torch.

Training sets (``base`` attribute), checkpoints and model files (``base`` entry) record it; a missing record means
2LPT, the base of every model before the hybrid design. ``emulator info`` reads it without importing torch; the
PM fields themselves are :func:`emulator.core.pm_base.pm_base_fields`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

__all__ = ["BaseRecipe", "LPT_BASE", "SPACINGS"]

SPACINGS: tuple[str, ...] = ("linear", "log")  # step spacings of emulator.core.pm (which imports these)
_METHODS = ("2lpt", "pm", "cola")


@dataclass(frozen=True)
class BaseRecipe:
    """How a generator's base fields are made from the linear density.

    Parameters
    ----------
    method : {"2lpt", "pm", "cola"}
        Second-order LPT at the output redshift, a few-step PM run (FastPM steps), or a few-step COLA run (PM
        steps in the frame of 2LPT, :mod:`emulator.core.cola`: second-order growth exact on large scales).
    steps : int
        PM steps from ``z_init`` to the output redshift (``method`` "pm" or "cola").
    force_factor : int
        Force mesh points per particle per axis (1 is allowed: a cheap base).
    z_init : float
        Redshift of the 2LPT initial conditions of the PM run.
    spacing : {"linear", "log"}
        Step spacing in ``a`` or ``ln a``.
    """

    method: str = "2lpt"
    steps: int = 4
    force_factor: int = 2
    z_init: float = 12.0
    spacing: str = "linear"

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(f"base method must be one of {_METHODS}, got {self.method!r}")
        for name in ("steps", "force_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"base {name} must be a positive integer, got {value!r}")
        if isinstance(self.z_init, bool) or not isinstance(self.z_init, (int, float)) or not (
                math.isfinite(self.z_init) and self.z_init > 0):
            raise ValueError(f"base z_init must be a positive finite redshift, got {self.z_init!r}")
        if self.spacing not in SPACINGS:
            raise ValueError(f"base spacing must be one of {SPACINGS}, got {self.spacing!r}")
        object.__setattr__(self, "z_init", float(self.z_init))  # 12 and 12.0: one recipe, one fingerprint

    @property
    def is_lpt(self) -> bool:
        return self.method == "2lpt"

    def to_dict(self) -> dict:
        """Plain data (what a training set's ``base`` attribute and a model file's ``base`` entry hold)."""
        return {"method": "2lpt"} if self.is_lpt else asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict | str | None, where: str = "base") -> "BaseRecipe":
        """From :meth:`to_dict`'s data (or its JSON); ``None`` is 2LPT. One-line ``ValueError`` naming ``where``."""
        if data is None:
            return LPT_BASE
        try:
            if isinstance(data, (str, bytes)):
                data = json.loads(data)
            if not isinstance(data, dict):
                raise TypeError(f"expected a mapping, got {type(data).__name__}")
            unknown = set(data) - {"method", "steps", "force_factor", "z_init", "spacing"}
            if unknown:
                raise TypeError(f"unknown key(s) {sorted(unknown)}")
            if data.get("method", "2lpt") == "2lpt":
                if len(data) > 1:
                    raise TypeError("a 2lpt base takes no other key")
                return LPT_BASE
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: not a base recipe ({str(exc).splitlines()[0]})") from None

    def label(self) -> str:
        """Short human-readable name, e.g. ``PM 4 steps, force mesh 2x, from z = 12``."""
        if self.is_lpt:
            return "2LPT"
        spacing = "" if self.spacing == "linear" else f", {self.spacing} steps"
        return (f"{self.method.upper()} {self.steps} steps, force mesh {self.force_factor}x, "
                f"from z = {self.z_init:g}{spacing}")

    def check_redshift(self, redshift: float) -> None:
        """Refuse an output redshift the PM or COLA base cannot reach (at or above its ``z_init``)."""
        if not self.is_lpt and not 0 <= redshift < self.z_init:
            raise ValueError(f"redshift {redshift} is outside [0, z_init = {self.z_init:g}) of the model's "
                             f"{self.method.upper()} base")


LPT_BASE = BaseRecipe()
