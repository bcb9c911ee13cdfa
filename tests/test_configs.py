"""Every shipped config parses: LightningCLI training configs and suite configs."""

from __future__ import annotations

import contextlib
import io
import json
import re
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


def test_redshift_weighted_power_on_r2s_mesh_layers_over_the_cpu_design():
    """configs/design/pm4_power_r2z.yaml: r2's mesh (refine 2) from r2's weights, the term doubled at z = 0 only."""
    from emulator.training.losses import check_redshift_weights

    cfg = _print_config("design/cpu_budget.yaml", "design/pm4.yaml", "design/pm4_power_r2z.yaml")
    model = cfg["model"]
    assert model["power_refine"] == 2 and model["loss_weights"]["power"] == 1.0
    assert check_redshift_weights(model["power_redshift_weights"]) == ((0.0, 2.0), (0.5, 1.0))
    assert model["init_from"] == "runs/design/pm4_power_r2.pt" and cfg["data"]["path"] == "runs/design/pm4_train.h5"
    assert cfg["trainer"]["default_root_dir"] == "runs/design/pm4_power_r2z"


def _assert_a_run_of_its_own(base: dict, run: dict, folder: str) -> None:
    """``run``'s trainer writes only under ``folder`` (its root, CSV logger and two checkpoint callbacks), and, those
    and its wall-clock backstop set aside, ``run`` equals ``base`` (each already stripped of what the run changes)."""
    paths = re.findall(r"runs/design/\w+", json.dumps(run["trainer"]))
    assert paths == [folder] * 4, paths
    for cfg in (base, run):
        cfg.pop("config", None)
        for key in ("default_root_dir", "logger", "callbacks", "max_time"):
            cfg["trainer"].pop(key)
    assert run == base


def test_the_model_size_design_run_differs_from_cola4_only_in_width_and_folder():
    """configs/design/cola4_wide.yaml: cola4's training set, losses and schedule, 12 channels instead of 8, and its
    own run folder (every logger and checkpoint path), so the two runs compare at equal steps and never mix."""
    base = _print_config("design/cpu_budget.yaml", "design/cola4.yaml")
    wide = _print_config("design/cpu_budget.yaml", "design/cola4.yaml", "design/cola4_wide.yaml")
    assert base["model"]["network"]["base_channels"] == 8 and wide["model"]["network"]["base_channels"] == 12
    base["model"].pop("network"), wide["model"].pop("network")
    _assert_a_run_of_its_own(base, wide, "runs/design/cola4_wide")


def test_the_training_set_design_run_differs_from_cola4_wide_only_in_data_and_folder():
    """configs/design/cola4_wide96.yaml: cola4_wide's network, losses and schedule on the 96-cosmology training set,
    in its own run folder, so the two runs never mix."""
    layers = ("design/cpu_budget.yaml", "design/cola4.yaml", "design/cola4_wide.yaml")
    wide, wide96 = _print_config(*layers), _print_config(*layers, "design/cola4_wide96.yaml")
    assert wide96["data"]["path"] == "runs/design/cola4_96_train.h5" and wide96["model"] == wide["model"]
    wide["data"].pop("path"), wide96["data"].pop("path")
    _assert_a_run_of_its_own(wide, wide96, "runs/design/cola4_wide96")


def test_the_corner_training_run_differs_from_cola6_only_in_data_and_folder():
    """configs/design/cola6_corners.yaml: cola6's network, base, losses and schedule on the training set that adds
    configs/suite_converged_corners.yaml's 16 points, in its own run folder, so the two runs never mix."""
    cola6 = _print_config("design/cpu_budget.yaml", "design/cola6.yaml")
    corners = _print_config("design/cpu_budget.yaml", "design/cola6_corners.yaml")
    assert corners["data"]["path"] == "runs/design/cola6_corners_train.h5" and corners["model"] == cola6["model"]
    cola6["data"].pop("path"), corners["data"].pop("path")
    _assert_a_run_of_its_own(cola6, corners, "runs/design/cola6_corners")


def test_the_adapted_wide_run_is_cola6_corners_with_the_wide_budget_network():
    """configs/design/cola6_w12.yaml: cola6_corners' training set, base and losses, hybrid_cola4_w12's 12-channel
    network started from its committed weights, 1500 steps from half the learning rate, in a folder of its own."""
    corners = _print_config("design/cpu_budget.yaml", "design/cola6_corners.yaml")
    run = _print_config("design/cpu_budget.yaml", "design/cola6_corners.yaml", "design/cola6_w12.yaml")
    model = run["model"]
    assert model.pop("init_from") == "benchmarks/results/design_cpu/hybrid_cola4_w12.pt"
    assert (CONFIGS.parent / "benchmarks/results/design_cpu/hybrid_cola4_w12.pt").is_file()
    assert model.pop("network") == {**corners["model"].pop("network"), "base_channels": 12}
    assert (model.pop("lr"), model.pop("warmup_steps")) == (0.5 * corners["model"].pop("lr"), 50)
    corners["model"].pop("warmup_steps"), corners["model"].pop("init_from", None)
    assert run["trainer"].pop("max_steps") == 1500
    corners["trainer"].pop("max_steps")
    _assert_a_run_of_its_own(corners, run, "runs/design/cola6_w12")


def test_hybrid_gpu_config_is_the_gpu_network_on_the_pm_base_training_set():
    """configs/converged_gpu_hybrid.yaml: converged_gpu.yaml's network and schedule, r2's power term, its own
    training file and run folder (every logger and checkpoint path), so the two GPU chains never mix."""
    base, hybrid = _print_config("converged_gpu.yaml"), _print_config("converged_gpu_hybrid.yaml")
    assert hybrid["model"]["power_refine"] == 2 and hybrid["model"]["loss_weights"]["power"] == 1.0
    for cfg in (base, hybrid):  # the rest of the model section (network, schedule, other terms) is the same
        cfg["model"].pop("power_refine", None), cfg["model"]["loss_weights"].pop("power")
    assert hybrid["model"] == base["model"]
    assert hybrid["data"]["path"] == "runs/converged_train_cola4.h5" != base["data"]["path"]
    text = (CONFIGS / "converged_gpu_hybrid.yaml").read_text().split("\nseed_everything")[1]
    assert "runs/converged_gpu/" not in text and "runs/converged_gpu," not in text
    assert text.count("runs/converged_gpu_hybrid") == 5  # root, two loggers, two checkpoint callbacks
    for key in ("trainer", "data"):
        drop = {"default_root_dir", "logger", "callbacks", "path"}
        assert {k: v for k, v in hybrid[key].items() if k not in drop} == \
               {k: v for k, v in base[key].items() if k not in drop}


def test_full_size_response_suite_is_the_response_suite_at_the_full_tiers_size():
    """configs/suite_converged_response_128.yaml: the response suite's cosmologies and steps on one seed of its own,
    at the full tier's particles, box and converged recipe."""
    from benchmarks.suite_truth import suite_recipe
    from data_prep.simulate.suite import suite_design

    small = load_suite_config(CONFIGS / "suite_converged_response.yaml")
    large = load_suite_config(CONFIGS / "suite_converged_response_128.yaml")
    full = load_suite_config(CONFIGS / "suite_converged_test_128.yaml")
    assert (large.ngrid, large.box_size) == (full.ngrid, full.box_size) == (128, 256.0)
    assert suite_recipe(large) == suite_recipe(full) and large.simulation == full.simulation

    def cosmologies(cfg):
        return [(d["sim_id"], {k: round(float(v), 6) for k, v in d["cosmology"].items()}) for d in suite_design(cfg)]

    assert cosmologies(large) == cosmologies(small)
    seeds = {d["seed"] for d in suite_design(large)}
    assert seeds == {52000}
    others = [p for p in CONFIGS.glob("suite_*.yaml") if p.name != "suite_converged_response_128.yaml"]
    assert not seeds & {d["seed"] for p in others for d in suite_design(load_suite_config(p))}


def test_the_velocity_derivative_design_run_differs_from_cola4_only_in_the_velocity_and_folder():
    """configs/design/cola4_dvel.yaml (design (b)): cola4's network, training set, losses and schedule with the
    velocity as the displacement's derivative instead of a head, in its own run folder."""
    base = _print_config("design/cpu_budget.yaml", "design/cola4.yaml")
    dvel = _print_config("design/cpu_budget.yaml", "design/cola4.yaml", "design/cola4_dvel.yaml")
    assert base["model"].pop("velocity") == "head" and dvel["model"].pop("velocity") == "derivative"
    _assert_a_run_of_its_own(base, dvel, "runs/design/cola4_dvel")


def test_the_density_pdf_design_run_and_its_control_differ_only_in_the_pdf_weight_and_folder():
    """configs/design/cola4_pdf.yaml and cola4_pdf0.yaml (design (d)): the same fine-tune of hybrid_cola4 on cola4's
    training set, with and without the density-PDF term, each in its own run folder."""
    layers = ("design/cpu_budget.yaml", "design/cola4.yaml")
    pdf, control = _print_config(*layers, "design/cola4_pdf.yaml"), _print_config(*layers, "design/cola4_pdf0.yaml")
    assert pdf["model"]["init_from"] == "hybrid_cola4" and pdf["model"]["pdf_lowest_quantile"] == 0.9
    assert pdf["model"]["loss_weights"].pop("pdf") == 10.0 and control["model"]["loss_weights"].pop("pdf") == 0.0
    assert re.findall(r"runs/design/\w+", json.dumps(control["trainer"])) == ["runs/design/cola4_pdf0"] * 4
    _assert_a_run_of_its_own(control, pdf, "runs/design/cola4_pdf")
