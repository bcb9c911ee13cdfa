"""Every shipped config parses: LightningCLI training configs and suite configs."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import yaml

from data_prep.simulate.suite import load_suite_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TRAINING = ["tiny_cpu.yaml", "default_model.yaml", "single_gpu.yaml", "multi_gpu_ddp.yaml"]


def _print_config(*names: str) -> dict:
    """``emulator fit --config A [--config B ...] --print_config``, parsed (in this process: a subprocess each
    would spend ~15 s importing Lightning)."""
    from emulator.cli import main

    args = [a for name in names for a in ("--config", str(CONFIGS / name))]
    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as done:
        main(["fit", *args, "--print_config"])
    assert done.value.code in (0, None), err.getvalue()[-2000:]
    return yaml.safe_load(buf.getvalue())


@pytest.mark.parametrize("name", TRAINING)
def test_training_config_parses(name):
    cfg = _print_config(name)
    assert cfg["model"]["network"]["base_channels"] > 0 and cfg["data"]["halo"] >= 0


def test_training_configs_halo_covers_network():
    from emulator.model import StyledUNet

    for name in TRAINING:
        cfg = yaml.safe_load((CONFIGS / name).read_text())
        net = StyledUNet(in_channels=3, out_channels=6, style_dim=6, **cfg["model"]["network"])
        assert cfg["data"]["halo"] >= net.halo, name
        assert cfg["data"]["crop"] % net.size_multiple == 0, name


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("suite_*.yaml")), ids=lambda p: p.name)
def test_suite_config_parses(path):
    cfg = load_suite_config(path)
    assert cfg.ngrid % 2 == 0 and cfg.box_size > 0 and all(cfg.low <= cfg.high)


def test_default_model_continuation_resumes_to_the_embedded_models_step():
    """The embedded model's second run: default_model.yaml with default_model_continue.yaml layered on it resumes
    from last.ckpt to 7000 steps and changes nothing else."""
    base = _print_config("default_model.yaml")
    cont = _print_config("default_model.yaml", "default_model_continue.yaml")
    assert base["trainer"]["max_steps"] == 4500 and base.get("ckpt_path") is None
    assert cont["trainer"]["max_steps"] == 7000 and cont["ckpt_path"] == "last"
    for cfg in (base, cont):
        cfg["trainer"].pop("max_steps"), cfg.pop("ckpt_path", None), cfg.pop("config", None)
    assert cont == base


def test_power_half_override_layers_over_the_gpu_config():
    cfg = _print_config("converged_gpu.yaml", "converged_gpu_power_half.yaml")
    assert cfg["model"]["power_kmax_fraction"] == 0.5 and cfg["model"]["periodic"] is True


def test_redshift_weighted_power_design_layers_over_the_cpu_design():
    """configs/design/pm4_power_zw.yaml: the power term at 2.0 / 1.0 / 0.5 of its weight at z = 0 / 0.5 / >= 1."""
    from emulator.training.losses import check_redshift_weights

    cfg = _print_config("design/cpu_budget.yaml", "design/pm4.yaml", "design/pm4_power_zw.yaml")
    model = cfg["model"]
    assert model["power_refine"] == 3 and model["loss_weights"]["power"] == 1.0
    assert check_redshift_weights(model["power_redshift_weights"]) == ((0.0, 2.0), (0.5, 1.0), (1.0, 0.5))
    assert model["init_from"] == "runs/design/pm4_power_r2.pt" and cfg["trainer"]["max_steps"] == 1100
