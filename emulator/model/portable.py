"""Portable emulator model files: export a training checkpoint, load it safely (``weights_only=True``).

A model file is a ``torch.save`` of a plain dict (tensors, numbers, strings, lists, dicts only)::

    {"format": "cosmo-emulator-model", "format_version": 1,
     "network": {...StyledUNet kwargs...}, "state_dict": {...network weights...},
     "style_low": [6 floats], "style_high": [6 floats],   # training prior (5 parameters) + redshift range
     "cell_size": float (Mpc/h), "metadata": {...},       # training config, validation numbers, provenance
     "base": {"method": "2lpt"} or {"method": "pm", ...},  # what the network corrects (absent: 2LPT)
     "velocity": "derivative"}  # only in a model whose velocities are d(displacement)/d ln D1 (absent: "head")

A ``velocity: derivative`` model (:mod:`emulator.model.velocity_derivative`) stores the weights of its
displacement-only network under ``net.``; its :meth:`EmulatorModel.style` has 12 entries (style and rate) and its
network reads the base displacement and velocity (:meth:`EmulatorModel.network_input`).

The embedded models live in ``emulator/models/<name>.pt``; the one used where none is named is
:data:`~emulator.model.header.DEFAULT_MODEL` (``hybrid_cola4``: a network correcting a 4-step COLA run). Beside a
model file may sit JSON files fitted for its bytes (:mod:`emulator.model.sidecar`), loaded with it:
``<stem>.pgd.json`` (:mod:`emulator.model.pgd_correction`, the particles' PGD sharpening) and
``<stem>.halo_mass.json`` (:mod:`emulator.model.halo_calibration`, FoF masses onto the truth's) and
``<stem>.vdisp.json`` (:mod:`emulator.model.velocity_dispersion`, the velocities' small-scale dispersion).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.atomic import atomic_path
from ..core.cosmology import Cosmology
from ..core.growth import GrowthHistory
from ..core.device import check_device
from ..core.base_recipe import LPT_BASE, BaseRecipe
from ..core.provenance import sha256_file
from .card import read_card
from .halo_calibration import HaloMassCalibration, read_calibration
from .pgd_correction import PGDCorrection, pgd_digest, read_pgd
from .velocity_dispersion import VelocityDispersion, read_vdisp
from .header import DEFAULT_MODEL, FORMAT, MODELS_DIR, ModelIdentity, resolve_model_path
from .style import normalise_style
from .unet import StyledUNet
from .velocity_derivative import DerivativeVelocityNet, build_network, check_velocity_mode, style_and_rate

__all__ = ["EmulatorModel", "export_checkpoint", "load_model", "check_device", "DEFAULT_MODEL_PATH",
           "ExtrapolationError"]

DEFAULT_MODEL_PATH = MODELS_DIR / f"{DEFAULT_MODEL}.pt"  # emulator/models/


class ExtrapolationError(ValueError):
    """Parameters or redshift outside the model's training hull."""


@dataclass
class EmulatorModel(ModelIdentity):
    """A loaded emulator: the network plus everything needed to use it correctly (``name`` and ``hull()`` from
    :class:`~emulator.model.header.ModelIdentity`)."""

    net: StyledUNet | DerivativeVelocityNet
    style_low: np.ndarray
    style_high: np.ndarray
    cell_size: float
    metadata: dict = field(default_factory=dict)
    path: str = ""
    sha256: str = ""
    base: BaseRecipe = LPT_BASE  # the fields the network corrects (emulator.core.pm_base)
    halo_calibration: HaloMassCalibration | None = None  # FoF masses onto the truth's (<stem>.halo_mass.json)
    pgd: PGDCorrection | None = None  # small-scale sharpening of the particles (<stem>.pgd.json)
    vdisp: VelocityDispersion | None = None  # small-scale velocity dispersion (<stem>.vdisp.json)
    velocity: str = "head"  # "derivative": velocities are the displacement's derivative (velocity_derivative)
    card: dict | None = None  # measured accuracy beside the model file (<stem>.card.json, emulator.model.card)

    @property
    def redshift_range(self) -> tuple[float, float]:
        return float(self.style_low[5]), float(self.style_high[5])

    def check_domain(self, cosmo: Cosmology, redshift: float, tol: float = 1e-9) -> list[str]:
        """Names of the parameters outside the hull, as ``"name=value not in [lo, hi]"`` strings."""
        values = [*cosmo.to_array(), float(redshift)]
        out = []
        for (name, (lo, hi)), v in zip(self.hull().items(), values):
            if v < lo - tol * max(1, abs(lo)) or v > hi + tol * max(1, abs(hi)):
                out.append(f"{name}={v:.6g} not in [{lo:.6g}, {hi:.6g}]")
        return out

    def style(self, cosmo: Cosmology, redshift: float) -> torch.Tensor:
        """The (6,) normalised conditioning vector (see :func:`emulator.model.style.normalise_style`); (12,) for a
        ``velocity: derivative`` model: then its derivative with respect to ``ln D1``."""
        if self.velocity == "derivative":
            f1 = float(GrowthHistory(cosmo).f1(1.0 / (1.0 + float(redshift))))
            s = style_and_rate(cosmo.to_array(), redshift, f1, self.style_low, self.style_high)
        else:
            s = normalise_style(cosmo.to_array(), redshift, self.style_low, self.style_high)
        return torch.as_tensor(s, dtype=torch.float32)

    def network_input(self, disp: torch.Tensor, vdisp: torch.Tensor) -> torch.Tensor:
        """What the network reads: the base displacement ``(3, ...)``, and for a ``velocity: derivative`` model the
        base velocity in displacement units after it (``(6, ...)``; both in the same length unit)."""
        return torch.cat([disp, vdisp]) if self.velocity == "derivative" else disp


def export_checkpoint(checkpoint: str | Path, out: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write a portable model file from a Lightning checkpoint of :class:`emulator.training.module.FieldEmulator`.

    ``metadata`` (JSON-like) is stored as is, after ``checkpoint`` and ``global_step``; ``emulator export`` puts the
    training ``history`` there. A checkpoint that cannot be read (truncated, damaged, not a FieldEmulator
    checkpoint) is a one-line ``ValueError`` naming the file.
    """
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        # torch's message for a pickle of objects advises weights_only=False (running it): do not pass that on
        reason = str(exc).splitlines()[0] if isinstance(exc, RuntimeError) and str(exc) else type(exc).__name__
        raise ValueError(f"checkpoint {checkpoint} cannot be read weights-only: truncated, damaged or not a "
                         f"Lightning checkpoint ({reason})") from None
    if not isinstance(ckpt, dict) or not {"hyper_parameters", "state_dict"} <= set(ckpt) or any(
            k not in ckpt["state_dict"] for k in ("style_low", "style_high", "cell_size")):
        raise ValueError(f"{checkpoint} is not a FieldEmulator training checkpoint (hyper_parameters/state_dict)")
    hp = ckpt["hyper_parameters"]
    velocity = check_velocity_mode(hp.get("velocity", "head"), f"{checkpoint}: velocity")
    network = {"in_channels": 3, "out_channels": 3 if velocity == "derivative" else 6, "style_dim": 6,
               **(hp.get("network") or {})}
    sd = ckpt["state_dict"]
    payload = {
        "format": FORMAT,
        "format_version": 1,
        "network": network,
        "state_dict": {k[len("net."):]: v for k, v in sd.items() if k.startswith("net.")},
        "style_low": sd["style_low"].tolist(),
        "style_high": sd["style_high"].tolist(),
        "cell_size": float(sd["cell_size"]),
        "base": BaseRecipe.from_dict(ckpt.get("base"), where=f"{checkpoint}: base").to_dict(),
        "metadata": {"checkpoint": str(checkpoint), "global_step": int(ckpt.get("global_step", 0)),
                     **({"init_from": dict(ckpt["init_from"])} if isinstance(ckpt.get("init_from"), dict) else {}),
                     **(metadata or {})},
        **({"velocity": velocity} if velocity != "head" else {}),
    }
    if any(np.isnan(payload["style_low"])):
        raise ValueError(f"{checkpoint}: checkpoint has no training prior (style bounds); was it trained?")
    out = Path(out)
    with atomic_path(out) as tmp:
        torch.save(payload, tmp)
    return out


def load_model(path: str | Path | None = None, *, device: str | torch.device = "cpu") -> EmulatorModel:
    """Load a model file (default: the embedded model; a bare name such as ``hybrid_pm4``: that embedded model)
    with ``torch.load(..., weights_only=True)``.

    Only tensors and plain data are ever unpickled: a file that is not such a torch file (random bytes, another
    format, or a pickle of arbitrary objects) is refused with a one-line ``ValueError`` naming it, and is never
    loaded another way (unpickling arbitrary objects can run code).
    """
    dev = check_device(device)
    path = resolve_model_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any failure of the weights-only reader is a bad file
        # torch's own message advises weights_only=False, i.e. running an untrusted pickle: never pass it on
        raise ValueError(f"{path}: not a cosmo-emulator model file (not a torch file of tensors and plain data; "
                         "model files are only read weights-only)") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a cosmo-emulator model file")
    base = BaseRecipe.from_dict(payload.get("base"), where=f"{path}: base")
    velocity = check_velocity_mode(payload.get("velocity", "head"), f"{path}: velocity")
    net = build_network(payload["network"], velocity)
    net.load_state_dict(payload["state_dict"])
    net.eval().to(dev)
    digest = sha256_file(path)
    pgd = read_pgd(path, digest)
    return EmulatorModel(
        net=net,
        style_low=np.asarray(payload["style_low"], dtype=np.float64),
        style_high=np.asarray(payload["style_high"], dtype=np.float64),
        cell_size=float(payload["cell_size"]),
        metadata=payload.get("metadata", {}),
        path=str(path),
        sha256=digest,
        base=base,
        halo_calibration=read_calibration(path, digest, pgd_sha256=pgd_digest(pgd)),
        pgd=pgd,
        vdisp=read_vdisp(path, digest),
        velocity=velocity,
        card=read_card(path, digest, quiet=True),
    )
