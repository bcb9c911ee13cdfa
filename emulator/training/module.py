"""The LightningModule: a style-conditioned U-Net trained with field, Eulerian and two-point losses.

The network predicts, for each Lagrangian cell of a crop, the residual of the N-body displacement and velocity
(both in cell units, velocity in displacement units ``v / (100 a E f1)``) over the base the training set names:
2LPT, or a few-step PM run (:mod:`emulator.core.pm_base`); see :mod:`emulator.training.crops`. The validation
metrics ``*_lpt`` are those of that base.
Loss weights, network sizes and the optimiser live in the YAML configs under ``configs/``.
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

import lightning as L
import numpy as np
import torch

from .losses import (check_kmax_fraction, check_lowest_quantile, check_redshift_weights, check_refine, eulerian_loss,
                     lagrangian_loss, painted_overdensity, pdf_loss, power_loss, redshift_weights, xi_loss)
from ..core.base_recipe import BaseRecipe
from ..model import StyledUNet, periodic_forward
from ..model.velocity_derivative import build_network, check_velocity_mode
from .critic import DensityCritic, adversarial_training_step, check_critic, check_critic_trainer, critic_gap
from .spectrum_sums import SpectrumSums, batch_spectra, summarise_spectra

__all__ = ["FieldEmulator", "SpectrumSums"]

DEFAULT_LOSS_WEIGHTS = {"displacement": 1.0, "velocity": 1.0, "eulerian": 1.0, "power": 0.1, "xi": 0.0, "pdf": 0.0,
                        "adversarial": 0.0}


def _network_settings(network: dict | None) -> dict:
    """Every architecture setting of a StyledUNet built from ``network`` (defaults filled in; the output layer's
    initial scale, which only sets starting weights, left out)."""
    params = inspect.signature(StyledUNet.__init__).parameters.values()
    full = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    full.update({"in_channels": 3, "out_channels": 6, "style_dim": 6, **(network or {})})
    full.pop("out_init_scale", None)
    return full


class FieldEmulator(L.LightningModule):
    """Cosmology-conditioned field-level emulator of N-body displacements and velocities.

    Parameters
    ----------
    network : dict
        Keyword arguments of :class:`emulator.model.StyledUNet` (``in_channels=3, out_channels=6,
        style_dim=6`` are the data contract).
    loss_weights : dict
        Weights of ``displacement`` and ``velocity`` (Lagrangian MSE, cells^2), ``eulerian`` (painted
        overdensity MSE), ``power`` (log P(k) ratio), ``xi`` (correlation-function mismatch) and ``pdf`` (the
        one-point density PDF, :func:`~emulator.training.losses.pdf_loss`, on the power term's mesh and with its
        redshift weights; default 0) over the ranks above ``pdf_lowest_quantile`` (0.9: the densest 10% of cells);
        ``adversarial``: the generator's ``-D(model)`` term, with ``critic``.
    eulerian_log : bool
        Compare ``log(1 + delta)`` instead of ``delta`` in the Eulerian term.
    power_kmax_fraction : float, optional
        The power term's bins stop at the last whole bin below this fraction of the crop's Nyquist wavenumber
        (default and 1.0: at it; see :func:`emulator.training.losses.power_loss`). ``val/power`` and ``val/total``
        then depend on it: compare runs with different values on ``val/ratio_model@k``.
    power_redshift_weights : dict, optional
        ``{redshift: weight}``: the power term of each sample is multiplied by a weight piecewise linear in its
        redshift through these points (constant beyond the first and last; e.g. ``{0.0: 3.0, 1.0: 1.0}`` weighs
        z = 0 three times, z = 0.5 twice and z >= 1 once), in training and validation alike, to put the term where
        the small-scale deficit is (z = 0). Default: every redshift alike (weight 1).
    power_refine : int
        The power term paints both particle sets on a mesh of ``power_refine`` points per particle cell and
        axis, so its bins reach ``power_refine`` times the particles' Nyquist wavenumber: the clustering inside
        a particle cell (halo cores) enters the loss as a statistic, not point by point (small-scale weighting,
        issue 11 (d)). Default 1: the crop's own mesh. The Eulerian term and the logged P(k) ratios and r(k)
        stay on it; ``val/power`` and ``val/total`` depend on it, and ``power_kmax_fraction`` is then a fraction
        of the fine mesh's Nyquist wavenumber (0.5 with ``power_refine: 2`` stops at the particles'). At 2 the
        top bin is centred on the first reciprocal-lattice vector (2 pi per particle spacing), where what is left
        of the initial grid shows (most at high redshift and in voids): the truth's, matched as part of its
        clustering.
    lr, weight_decay : float
        AdamW settings; the learning rate follows a linear warm-up then a cosine decay to ``lr * lr_floor``.
    warmup_steps : int
        Linear warm-up length in optimiser steps.
    log_k_fractions : list of float
        Where to log the validation P(k) ratio and r(k), as fractions of the crop's Nyquist wavenumber.
    periodic : bool
        Train on whole periodic boxes (``data.crop = data.val_crop =`` the training set's ``ngrid``,
        ``data.halo = 0``; each box at a random origin and cube symmetry): every convolution reads a circular pad
        instead of a halo (:meth:`emulator.model.StyledUNet.forward`), so no context cells are computed and
        thrown away. The network and its exported file are the same as with crops and a halo.
    velocity : {"head", "derivative"}
        ``head``: the network outputs the velocity residual as three more channels. ``derivative`` (issue 11 §2
        (b)): the network outputs the displacement residual only (``network.out_channels`` 3) and the velocity
        residual is its exact derivative with respect to ``ln D1`` along the base's own velocity
        (:mod:`emulator.model.velocity_derivative`); ``emulator fit`` then makes the data carry that tangent.
    init_from : str, optional
        Fine-tuning: a model file, or the name of an embedded model (``hybrid_pm4``), whose network weights start
        the run instead of a random initialisation. Its network settings must equal ``network``; the style
        bounds and cell size still come from the training set. Read in :meth:`setup`, so a resumed run takes
        its weights from the checkpoint as usual.
    critic : dict, optional
        A cosmology-conditioned adversarial critic of the painted density (:mod:`emulator.training.critic`,
        settings :data:`~emulator.training.critic.CRITIC_DEFAULTS`; ``{}`` for the defaults), trained beside the
        network by manual optimisation; needs ``loss_weights.adversarial > 0``. Not part of the exported model.
    """

    def __init__(
        self,
        network: dict[str, Any] | None = None,
        loss_weights: dict[str, float] | None = None,
        eulerian_log: bool = False,
        lr: float = 3e-4,
        weight_decay: float = 0.0,
        lr_floor: float = 0.05,
        warmup_steps: int = 100,
        log_k_fractions: tuple[float, ...] = (0.125, 0.25, 0.5),
        periodic: bool = False,
        power_kmax_fraction: float | None = None,
        init_from: str | None = None,
        power_refine: int = 1,
        power_redshift_weights: dict[float, float] | None = None,
        velocity: str = "head",
        pdf_lowest_quantile: float = 0.0,
        critic: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_velocity_mode(velocity, "model.velocity")
        network = {"in_channels": 3, "out_channels": 3 if velocity == "derivative" else 6, "style_dim": 6,
                   **(network or {})}
        unknown = set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown loss weight(s) {sorted(unknown)}; known: {sorted(DEFAULT_LOSS_WEIGHTS)}")
        self.weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        check_kmax_fraction(power_kmax_fraction, "model.power_kmax_fraction")
        check_refine(power_refine, "model.power_refine")
        check_lowest_quantile(pdf_lowest_quantile)
        self.power_z_table = check_redshift_weights(power_redshift_weights)
        self.net = build_network(network, velocity)
        self.critic_settings = check_critic(critic, float(self.weights["adversarial"]))
        self.critic = DensityCritic(self.critic_settings["channels"], self.critic_settings["depth"]) \
            if self.critic_settings else None
        self.automatic_optimization = self.critic is None
        # Filled from the training set in setup() and then saved in every checkpoint.
        self.register_buffer("style_low", torch.full((6,), math.nan, dtype=torch.float64))
        self.register_buffer("style_high", torch.full((6,), math.nan, dtype=torch.float64))
        self.register_buffer("cell_size", torch.tensor(math.nan, dtype=torch.float64))
        self.val_spectra: SpectrumSums | None = None
        self.last_validation: dict[str, Any] = {}
        self.base: dict | None = None  # the training set's base recipe (emulator.core.pm_base), kept in checkpoints
        self.init_source: dict | None = None  # init_from's file and sha256, kept in checkpoints

    @property
    def halo(self) -> int:
        """Cells of input context needed on each side of an output crop."""
        return int(self.net.halo)

    def setup(self, stage: str) -> None:
        if self.critic is not None and stage == "fit" and self._trainer is not None:
            check_critic_trainer(self.trainer)
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None:
            return
        low, high = dm.style_bounds
        if torch.isnan(self.style_low).any():
            self.style_low.copy_(torch.as_tensor(low, dtype=torch.float64))
            self.style_high.copy_(torch.as_tensor(high, dtype=torch.float64))
            self.cell_size.fill_(dm.cell_size)
        else:
            same = (
                torch.allclose(self.style_low.cpu(), torch.as_tensor(low, dtype=torch.float64))
                and torch.allclose(self.style_high.cpu(), torch.as_tensor(high, dtype=torch.float64))
                and math.isclose(float(self.cell_size), dm.cell_size, rel_tol=1e-9)
            )
            if not same:
                raise ValueError(
                    "training set's prior, redshift range or cell size differs from the checkpoint's style bounds "
                    "and cell size (data.path)"
                )
        if self.hparams.init_from and stage == "fit":
            self._initialise_from(self.hparams.init_from, dm)
        base = dm.read_info().base.to_dict()
        if self.base is None:
            self.base = base
        elif BaseRecipe.from_dict(self.base) != BaseRecipe.from_dict(base):
            raise ValueError(f"the training set's base ({BaseRecipe.from_dict(base).label()}) differs from the "
                             f"checkpoint's ({BaseRecipe.from_dict(self.base).label()}) (data.path)")
        if self.hparams.periodic:
            n, hp = dm.read_info().ngrid, dm.hparams
            if hp.halo != 0 or hp.crop != n or (hp.val_crop or hp.crop) != n:
                raise ValueError(f"model.periodic trains on whole boxes: set data.crop and data.val_crop to the "
                                 f"training set's ngrid={n} and data.halo to 0 (got crop={hp.crop}, "
                                 f"val_crop={hp.val_crop}, halo={hp.halo})")
            if n % self.net.size_multiple:
                raise ValueError(f"model.periodic needs ngrid={n} to be a multiple of {self.net.size_multiple}")
        elif dm.hparams.halo < self.halo:
            raise ValueError(f"data.halo={dm.hparams.halo} is smaller than the network halo {self.halo}")
        if bool(dm.hparams.get("velocity_input", False)) != (self.hparams.velocity == "derivative"):
            raise ValueError(f"model.velocity={self.hparams.velocity} needs data.velocity_input="
                             f"{self.hparams.velocity == 'derivative'} (emulator fit links the two)")

    def _initialise_from(self, path: str, dm: Any) -> None:
        """Copy the network weights of a model file (``init_from``): its network settings must be ours; a donor
        trained on other style bounds or another base is warned about (the inputs then mean something else)."""
        from pathlib import Path

        from ..model.portable import load_model

        donor = load_model(path)  # one read: network settings, style bounds, base, sha256
        ours = {**_network_settings(self.net.config), "velocity": self.hparams.velocity}
        theirs = {**_network_settings(donor.net.config), "velocity": donor.velocity}
        if ours != theirs:
            diff = {k: (theirs.get(k), v) for k, v in ours.items() if theirs.get(k) != v}
            raise ValueError(f"model.init_from {path}: its network differs from model.network (theirs, ours): "
                             f"{diff}")
        low, high = dm.style_bounds
        base = dm.read_info().base
        if not (np.allclose(donor.style_low, low) and np.allclose(donor.style_high, high)):
            warnings.warn(f"model.init_from {path}: trained on other style bounds (parameter hull or redshift "
                          f"range) than data.path: its conditioning inputs change meaning", stacklevel=2)
        if donor.base != base:
            warnings.warn(f"model.init_from {path}: it corrects {donor.base.label()}, the training set "
                          f"{base.label()}", stacklevel=2)
        self.net.load_state_dict(donor.net.state_dict())
        self.init_source = {"path": str(path), "file": Path(donor.path).name, "sha256": donor.sha256}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["base"] = self.base if self.base is not None else {"method": "2lpt"}
        if self.init_source is not None:  # fine-tuned: the donor's file, kept through resumes and exports
            checkpoint["init_from"] = self.init_source

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning runs setup() (the training set's base) before it restores a checkpoint: compare here too.
        # A checkpoint without a record is from before the PM base: 2LPT.
        saved = BaseRecipe.from_dict(checkpoint.get("base"), where="checkpoint")
        if self.base is not None and BaseRecipe.from_dict(self.base) != saved:
            raise ValueError(f"the training set's base ({BaseRecipe.from_dict(self.base).label()}) differs from the "
                             f"checkpoint's ({saved.label()}) (data.path)")
        self.base = saved.to_dict()
        self.init_source = checkpoint.get("init_from", self.init_source)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Residual over the base ``(B, 6, c, c, c)`` from the base displacement ``(B, 3, c+2h, ...)`` and style
        ``(B, 6)`` (base: 2LPT or a few-step PM run, :mod:`emulator.core.pm_base`)."""
        return self.net(x, style)

    def _centre(self, x: torch.Tensor, out_size: int) -> torch.Tensor:
        """Cut the input down to ``out_size + 2 halo`` when the data carries a wider halo."""
        excess = (x.shape[-1] - out_size - 2 * self.halo) // 2
        if excess < 0:
            raise ValueError(f"input crop {x.shape[-1]} too small for output {out_size} with halo {self.halo}")
        if excess == 0:
            return x
        s = slice(excess, x.shape[-1] - excess)
        return x[..., s, s, s]

    def _step(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        target, lpt = batch["target"], batch["lpt"]
        if self.hparams.periodic:  # aligned as inference does it (emulator.model.predict_box)
            pred = periodic_forward(self.net, batch["input"], batch["style"])
        else:
            pred = self.net(self._centre(batch["input"], target.shape[-1]), batch["style"])
        w = self.weights
        losses = {
            "displacement": lagrangian_loss(pred[:, :3], target[:, :3]),
            "velocity": lagrangian_loss(pred[:, 3:], target[:, 3:]),
        }
        fields = {"pred": pred}
        if w["eulerian"] or w["power"] or w["xi"] or w["adversarial"] or not self.training:
            delta_pred = painted_overdensity(lpt[:, :3] + pred[:, :3])
            with torch.no_grad():
                delta_true = painted_overdensity(lpt[:, :3] + target[:, :3])
            fields.update(delta_pred=delta_pred, delta_true=delta_true)
            losses["eulerian"] = eulerian_loss(delta_pred, delta_true, log=self.hparams.eulerian_log)
            if w["power"] or w["pdf"] or not self.training:
                refine = self.hparams.power_refine
                p_pred, p_true = delta_pred, delta_true
                if refine > 1:
                    p_pred = painted_overdensity(lpt[:, :3] + pred[:, :3], refine=refine)
                    with torch.no_grad():
                        p_true = painted_overdensity(lpt[:, :3] + target[:, :3], refine=refine)
                zw = self._power_sample_weights(batch["style"])
                if w["power"] or not self.training:
                    losses["power"] = power_loss(p_pred, p_true, kmax_fraction=self.hparams.power_kmax_fraction,
                                                 sample_weights=zw)
                if w["pdf"] or not self.training:
                    losses["pdf"] = pdf_loss(p_pred, p_true, sample_weights=zw,
                                             lowest_quantile=self.hparams.pdf_lowest_quantile)
            if w["xi"]:
                losses["xi"] = xi_loss(delta_pred, delta_true)
        losses["total"] = sum(w[k] * v for k, v in losses.items() if w.get(k))
        return losses, fields

    def _power_sample_weights(self, style: torch.Tensor) -> torch.Tensor | None:
        """Each sample's weight of the power term from its redshift (the style's last entry mapped back from
        [-1, 1] over the training set's redshift range), or None without ``power_redshift_weights``."""
        if self.power_z_table is None:
            return None
        lo, hi = self.style_low[5], self.style_high[5]
        redshift = lo + (style[:, 5].to(lo.dtype) + 1.0) * 0.5 * (hi - lo)
        return redshift_weights(redshift, self.power_z_table)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses = adversarial_training_step(self, batch) if self.critic is not None else self._step(batch)[0]
        bs = batch["target"].shape[0]
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=False, batch_size=bs)
        self.log("loss", losses["total"], prog_bar=True, batch_size=bs, logger=False)
        return losses["total"]

    def on_validation_epoch_start(self) -> None:
        self.val_spectra = None

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        losses, fields = self._step(batch)
        delta_lpt = painted_overdensity(batch["lpt"][:, :3])  # the base's density: spectra and critic alike
        if self.critic is not None:
            losses["critic_gap"] = critic_gap(self, batch, fields, delta_lpt)
        self.log_dict({f"val/{k}": v for k, v in losses.items()}, sync_dist=True, batch_size=batch["target"].shape[0])
        spec = batch_spectra(fields["delta_pred"], fields["delta_true"], delta_lpt)
        if self.val_spectra is None:
            self.val_spectra = SpectrumSums(spec["p_true"].shape[-1]).to(self.device)
        self.val_spectra.update(spec, batch["index"])

    def on_validation_epoch_end(self) -> None:
        if self.val_spectra is None:
            return
        record, scalars = summarise_spectra(self.val_spectra.compute(), float(self.cell_size),
                                            list(self.hparams.log_k_fractions))
        self.last_validation = record
        for name, value in scalars.items():
            self.log(name, value, sync_dist=False, rank_zero_only=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warm = min(self.hparams.warmup_steps, max(total // 10, 1))
        floor = self.hparams.lr_floor

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            t = min((step - warm) / max(total - warm, 1), 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

        sched = {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, factor), "interval": "step"}
        if self.critic is None:
            return {"optimizer": opt, "lr_scheduler": sched}
        opt_d = torch.optim.Adam(self.critic.parameters(), lr=float(self.critic_settings["lr"]), betas=(0.0, 0.9))
        return [opt, opt_d], [sched]
