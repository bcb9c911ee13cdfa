"""A cosmology-conditioned adversarial critic of the painted density (issue 11 §2 (d)).

The generator is deterministic given its initial field, so the critic does not judge unconditional samples: it
sees the pair (the base run's density, the density to judge), as map2map's adversarial training does, and the
cosmology and redshift (the style) through a projection term (Miyato & Koyama 2018). It tells the truth's
``log(1 + delta + 0.1)`` from the model's on each crop's own mesh, and the generator gains a term ``-D(model)``:
what no per-cell or two-point loss asks for (the shape of density peaks, the halos' cores) is pushed toward the
truth's distribution at that cosmology.

Training uses Lightning's manual optimisation (two optimisers): per batch one critic update (hinge loss,
spectrally normalised layers, Adam with beta1 = 0) and one generator update, whose adversarial weight ramps up
linearly over ``ramp_steps``. Only the generator's optimiser advances ``trainer.global_step``, so ``max_steps``,
the schedule and checkpoint intervals mean what they mean without a critic. Gradient clipping (by norm) is done
here: the CLI moves ``trainer.gradient_clip_val`` into the critic settings, as Lightning clips only in automatic
optimisation. The exported model file holds the generator only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .losses import PDF_SOFTENING, painted_overdensity

__all__ = ["DensityCritic", "CRITIC_DEFAULTS", "check_critic", "check_critic_trainer", "adopt_trainer_clipping",
           "critic_hinge_loss", "adversarial_training_step", "critic_gap"]

#: Settings of ``model.critic`` (any omitted key takes its default).
CRITIC_DEFAULTS: dict[str, Any] = {"channels": 8, "depth": 3, "lr": 2e-4, "ramp_steps": 100, "grad_clip": None}


def check_critic(critic: object, weight: float) -> dict | None:
    """``model.critic`` with defaults filled in (None: no critic); one-line errors for unknown keys, bad values
    and a critic without ``loss_weights.adversarial`` (or the weight without a critic)."""
    if critic is None:
        if weight:
            raise ValueError(f"loss_weights.adversarial={weight:g} needs model.critic (e.g. model.critic: {{}})")
        return None
    if not isinstance(critic, dict):
        raise ValueError(f"model.critic must be a mapping of {sorted(CRITIC_DEFAULTS)}, got {critic!r}")
    unknown = set(critic) - set(CRITIC_DEFAULTS)
    if unknown:
        raise ValueError(f"model.critic: unknown key(s) {sorted(unknown)}; known: {sorted(CRITIC_DEFAULTS)}")
    out = {**CRITIC_DEFAULTS, **critic}
    for key in ("channels", "depth", "ramp_steps"):
        least = 0 if key == "ramp_steps" else 1
        if isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < least:
            raise ValueError(f"model.critic.{key} must be an integer >= {least}, got {out[key]!r}")
    if not float(out["lr"]) > 0 or (out["grad_clip"] is not None and not float(out["grad_clip"]) > 0):
        raise ValueError(f"model.critic: lr and grad_clip must be > 0, got {out['lr']!r}, {out['grad_clip']!r}")
    if not weight > 0:
        raise ValueError("model.critic needs loss_weights.adversarial > 0 (the generator's adversarial weight)")
    return out


def check_critic_trainer(trainer: Any) -> None:
    """Refuse trainer settings a critic cannot train under: float16 precision (the critic steps its raw
    optimiser, outside the precision plugin and its loss scaler) and DDP that does not look for unused
    parameters (each of the two backward passes leaves one network without gradients)."""
    if str(trainer.precision).startswith("16"):
        raise ValueError(f"model.critic: trainer.precision={trainer.precision} is not supported (use 32-true or "
                         "bf16-mixed)")
    kwargs = getattr(trainer.strategy, "_ddp_kwargs", None)
    if trainer.world_size > 1 and isinstance(kwargs, dict) and not kwargs.get("find_unused_parameters"):
        raise ValueError("model.critic under DDP needs trainer.strategy=ddp_find_unused_parameters_true")


def adopt_trainer_clipping(settings: dict, clip: object, algorithm: object) -> None:
    """Take ``trainer.gradient_clip_val`` into ``settings["grad_clip"]`` (Lightning clips only in automatic
    optimisation): None or a value <= 0 means no clipping, as in Lightning; an explicit ``model.critic.grad_clip``
    wins; clipping by value is refused (the module clips by norm)."""
    if clip is None or float(clip) <= 0:
        return
    if algorithm not in (None, "norm"):
        raise ValueError(f"model.critic clips gradients by norm: trainer.gradient_clip_algorithm={algorithm} is "
                         "not supported")
    if settings["grad_clip"] is None:
        settings["grad_clip"] = float(clip)


class DensityCritic(nn.Module):
    """Projection critic of a density crop given the base run's density and the style.

    Parameters
    ----------
    channels : int
        Channels of the first layer, doubled at each of the ``depth`` stride-2 levels.
    depth : int
        Stride-2 (kernel 4) convolutions after the first 3^3 one; circular padding (periodic boxes).
    style_dim : int
        Entries of the style (cosmology and redshift), 6.

    Notes
    -----
    ``forward(delta, delta_base, style)`` maps ``(B, c, c, c)`` overdensities on the crop's mesh and ``(B, 6)``
    styles to ``(B,)`` scores: a linear read-out of the spatially averaged features plus their projection on an
    embedding of the style. Every layer is spectrally normalised.
    """

    def __init__(self, channels: int = 8, depth: int = 3, style_dim: int = 6) -> None:
        super().__init__()

        def conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Module:  # 3^3 keeps c, 4^3 / 2 halves it
            return spectral_norm(nn.Conv3d(cin, cout, kernel, stride=stride, padding=1, padding_mode="circular"))

        layers: list[nn.Module] = [conv(2, channels, 3, 1), nn.LeakyReLU(0.2)]
        width = channels
        for _ in range(depth):
            layers += [conv(width, 2 * width, 4, 2), nn.LeakyReLU(0.2)]
            width *= 2
        self.features = nn.Sequential(*layers)
        self.read_out = spectral_norm(nn.Linear(width, 1))
        self.embed = spectral_norm(nn.Linear(style_dim, width))
        self.style_dim = style_dim

    def forward(self, delta: torch.Tensor, delta_base: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x = torch.stack([torch.log1p(delta + PDF_SOFTENING), torch.log1p(delta_base + PDF_SOFTENING)], dim=1)
        h = self.features(x).mean(dim=(2, 3, 4))
        return self.read_out(h).squeeze(-1) + (self.embed(style[:, : self.style_dim]) * h).sum(-1)


def critic_hinge_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the critic: ``mean(relu(1 - D(truth))) + mean(relu(1 + D(model)))``."""
    return torch.relu(1.0 - real).mean() + torch.relu(1.0 + fake).mean()


def critic_gap(module: Any, batch: dict[str, torch.Tensor], fields: dict[str, torch.Tensor],
               base: torch.Tensor) -> torch.Tensor:
    """``mean D(truth) - mean D(model)`` on a batch, given the base's painted overdensity ``base``: how well the
    critic tells them apart (0: not at all)."""
    with torch.no_grad():
        real = module.critic(fields["delta_true"], base, batch["style"])
        fake = module.critic(fields["delta_pred"], base, batch["style"])
    return (real - fake).mean()


def _clip(params, value: float | None) -> None:
    if value is not None:
        torch.nn.utils.clip_grad_norm_(list(params), float(value))


def adversarial_training_step(module: Any, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One critic update, then one generator update with ``loss_weights.adversarial`` times ``-D(model)`` (ramped)
    added to its other terms; returns the losses to log (``total`` without the adversarial term, as in
    validation, ``adversarial`` and ``critic``).

    The critic steps its raw optimiser, so only the generator's step counts in ``trainer.global_step``.
    """
    cfg, critic = module.critic_settings, module.critic
    opt_g, opt_d = module.optimizers()
    losses, fields = module._step(batch)
    with torch.no_grad():
        base = painted_overdensity(batch["lpt"][:, :3])
    style = batch["style"]
    d_loss = critic_hinge_loss(critic(fields["delta_true"], base, style),
                               critic(fields["delta_pred"].detach(), base, style))
    opt_d.optimizer.zero_grad(set_to_none=True)
    module.manual_backward(d_loss)
    _clip(critic.parameters(), cfg["grad_clip"])
    opt_d.optimizer.step()

    critic.requires_grad_(False)
    try:
        adversarial = -critic(fields["delta_pred"], base, style).mean()
    finally:
        critic.requires_grad_(True)
    ramp = min(1.0, (module.global_step + 1) / cfg["ramp_steps"]) if cfg["ramp_steps"] else 1.0
    total = losses["total"] + module.weights["adversarial"] * ramp * adversarial
    opt_g.zero_grad(set_to_none=True)
    module.manual_backward(total)
    _clip(module.net.parameters(), cfg["grad_clip"])
    opt_g.step()
    scheduler = module.lr_schedulers()
    if scheduler is not None:
        scheduler.step()
    return {**losses, "adversarial": adversarial.detach(), "critic": d_loss.detach()}
