"""The adversarial critic of issue 11 §2 (d) (emulator.training.critic): a periodic, cosmology-conditioned score
that learns to tell an under-clustered density from the truth, whose gradient then asks the generator for the
truth's clustering, and that trains beside the network in ``emulator fit`` without changing what a step means."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
import torch

from emulator.training.critic import (DensityCritic, adopt_trainer_clipping, check_critic, check_critic_trainer,
                                      critic_hinge_loss)
from emulator.training.losses import painted_overdensity


def _fields(g: torch.Generator, n: int, c: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random base displacements (cells) and the truth's: the base plus a random nonlinear part."""
    base = 0.5 * torch.randn((n, 3, c, c, c), generator=g)
    return base, base + 0.5 * torch.randn((n, 3, c, c, c), generator=g)


def test_the_score_is_periodic_and_conditioned_on_the_style():
    """Circular padding and a global mean: a periodic roll by a multiple of 2^depth leaves the score unchanged (to
    float rounding); the projection term makes it depend on the cosmology."""
    torch.manual_seed(0)
    critic = DensityCritic(channels=4, depth=3).eval()
    g = torch.Generator().manual_seed(1)
    base, truth = _fields(g, 2)
    d, b = painted_overdensity(truth), painted_overdensity(base)
    style = torch.rand((2, 6), generator=g) * 2 - 1
    with torch.no_grad():
        score = critic(d, b, style)
        rolled = critic(torch.roll(d, (8, -8), (1, 3)), torch.roll(b, (8, -8), (1, 3)), style)
        other = critic(d, b, -style)
    assert score.shape == (2,)
    assert torch.allclose(score, rolled, rtol=1e-5, atol=1e-6)
    assert (score - other).abs().min() > 1e-4


def test_it_learns_the_truth_s_clustering_and_its_gradient_asks_for_it():
    """Trained on fresh fields each step, the critic tells the truth from a model that moves the particles only
    60% of the way (held-out hinge loss well below chance, 2); the generator's adversarial term -D(model) then
    falls as that fraction grows toward 1, on held-out fields."""
    torch.manual_seed(2)
    critic = DensityCritic(channels=4, depth=2)
    opt = torch.optim.Adam(critic.parameters(), lr=3e-3, betas=(0.0, 0.9))
    g = torch.Generator().manual_seed(3)
    style = torch.zeros((4, 6))

    def pair(base, truth, frac):
        return painted_overdensity(base + frac * (truth - base)), painted_overdensity(base)

    for _ in range(80):
        base, truth = _fields(g, 4)
        real, b = pair(base, truth, 1.0)
        fake, _ = pair(base, truth, 0.6)
        loss = critic_hinge_loss(critic(real, b, style), critic(fake, b, style))
        opt.zero_grad()
        loss.backward()
        opt.step()
    base, truth = _fields(g, 4)
    real, b = pair(base, truth, 1.0)
    frac = torch.tensor(0.6, requires_grad=True)
    fake = painted_overdensity(base + frac * (truth - base))
    with torch.no_grad():
        held_out = critic_hinge_loss(critic(real, b, style), critic(fake, b, style))
    assert float(held_out) < 1.0, float(held_out)
    adversarial = -critic(fake, b, style).mean()
    (grad,) = torch.autograd.grad(adversarial, frac)
    assert float(grad) < 0, float(grad)  # more of the truth's motion lowers the generator's term


def test_bad_settings_are_refused_with_the_parameter_named():
    assert check_critic(None, 0.0) is None
    assert check_critic({}, 0.1)["channels"] == 8
    with pytest.raises(ValueError, match="loss_weights.adversarial=0.1 needs model.critic"):
        check_critic(None, 0.1)
    with pytest.raises(ValueError, match="model.critic needs loss_weights.adversarial > 0"):
        check_critic({}, 0.0)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['width'\]"):
        check_critic({"width": 4}, 0.1)
    with pytest.raises(ValueError, match="model.critic.depth must be an integer >= 1"):
        check_critic({"depth": 0}, 0.1)
    with pytest.raises(ValueError, match="lr and grad_clip must be > 0"):
        check_critic({"lr": -1.0}, 0.1)


def test_trainer_clipping_is_taken_as_lightning_means_it_and_unsupported_trainers_are_refused():
    """gradient_clip_val 0 or None is no clipping (never a clip to zero), an explicit grad_clip wins, clipping by
    value is refused; float16 and DDP without the unused-parameter search are refused."""
    for clip, algorithm, own, want in ((None, None, None, None), (0.0, None, None, None), (-1.0, None, None, None),
                                       (1.0, None, None, 1.0), (1.0, "norm", None, 1.0), (1.0, None, 0.5, 0.5)):
        settings = check_critic({"grad_clip": own}, 0.1)
        adopt_trainer_clipping(settings, clip, algorithm)
        assert settings["grad_clip"] == want, (clip, algorithm, own)
    with pytest.raises(ValueError, match="gradient_clip_algorithm=value is not supported"):
        adopt_trainer_clipping(check_critic({}, 0.1), 1.0, "value")

    def trainer(precision="32-true", world_size=1, find_unused=False):
        return SimpleNamespace(precision=precision, world_size=world_size,
                               strategy=SimpleNamespace(_ddp_kwargs={"find_unused_parameters": find_unused}))

    check_critic_trainer(trainer())
    check_critic_trainer(trainer("bf16-mixed"))
    check_critic_trainer(trainer(world_size=2, find_unused=True))
    with pytest.raises(ValueError, match="precision=16-mixed is not supported"):
        check_critic_trainer(trainer("16-mixed"))
    with pytest.raises(ValueError, match="ddp_find_unused_parameters_true"):
        check_critic_trainer(trainer(world_size=2))


def test_fit_with_a_critic_counts_generator_steps_resumes_and_exports_the_generator_only(
        synthetic_training_set, tmp_path, monkeypatch, one_thread):
    """``emulator fit --model.critic {}``: both networks train (manual optimisation), ``global_step`` counts
    generator updates only while the critic's optimiser steps as often, the schedule steps once per update, both
    optimisers and the critic go into the checkpoint, a resume continues from it, the adversarial term changes the
    network's updates, the critic's loss and the validation gap are logged, and the exported model holds the
    generator alone."""
    from helpers_fit import cli, cli_fit

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    args = ("--model.critic", "{channels: 4, depth: 2, ramp_steps: 2}", "--model.loss_weights.adversarial", "0.1",
            "--trainer.max_epochs", "5")
    assert cli_fit(synthetic_training_set, "--trainer.max_steps", "2", *args) == 0
    ckpt_dir = tmp_path / "runs" / "tiny_cpu" / "checkpoints"
    ckpt = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2 and len(ckpt["optimizer_states"]) == 2
    critic_keys = [k for k in ckpt["state_dict"] if k.startswith("critic.")]
    assert critic_keys and ckpt["hyper_parameters"]["critic"]["channels"] == 4
    first = {k: ckpt["state_dict"][k].clone() for k in critic_keys}
    assert cli_fit(synthetic_training_set, "--trainer.max_steps", "4", *args, "--ckpt_path", "last") == 0
    again = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert again["global_step"] == 4
    steps = [max(int(st["step"]) for st in opt["state"].values()) for opt in again["optimizer_states"]]
    assert steps == [4, 4] and again["lr_schedulers"][0]["last_epoch"] == 4
    assert any(not torch.equal(first[k], again["state_dict"][k]) for k in critic_keys)  # the critic trained on
    rows = [r for f in sorted((tmp_path / "runs" / "tiny_cpu" / "logs").glob("version_*/metrics.csv"))
            for r in csv.DictReader(open(f))]
    assert any(r.get("train/critic") for r in rows) and any(r.get("train/adversarial") for r in rows)
    assert any(r.get("val/critic_gap") for r in rows)
    # the same two steps again, and with a 1000x smaller adversarial weight: the first repeats the network's
    # weights exactly (the runs are deterministic), the second does not (the term reaches the network's updates)
    def net_after_two_steps(folder: str, weight: str) -> dict:
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        assert cli_fit(synthetic_training_set, "--trainer.max_steps", "2", *args[:3], weight, *args[4:]) == 0
        sd = torch.load(tmp_path / folder / "runs/tiny_cpu/checkpoints/last.ckpt", weights_only=True)["state_dict"]
        return {k: v for k, v in sd.items() if k.startswith("net.")}

    def largest_difference(sd: dict) -> float:
        return max(float((v - ckpt["state_dict"][k]).abs().max()) for k, v in sd.items())

    assert largest_difference(net_after_two_steps("same", "0.1")) == 0.0
    assert largest_difference(net_after_two_steps("weak", "0.0001")) > 1e-6
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "adv.pt"
    assert cli("export", "--ckpt", str(ckpt_dir / "last.ckpt"), "--out", str(out)) == 0
    payload = torch.load(out, weights_only=True)
    assert not any("critic" in k for k in payload["state_dict"])
