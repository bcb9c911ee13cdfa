"""The hybrid design (issue 11 (c)) end to end: a training set with a PM base, a fit on it, the exported model's
recorded base, and generation that runs the same PM base under the network."""

from __future__ import annotations

import shutil

import h5py
import pytest
import torch

from data_prep.build import build_training_set
from data_prep.simulate import run_simulation
from data_prep.simulate.suite import SuiteConfig, run_suite
from emulator.core.base_recipe import BaseRecipe
from emulator.core.cosmology import Cosmology
from emulator.core.fields import linear_density_k, white_noise
from emulator.core.pm_base import pm_base_fields
from emulator.core.provenance import sha256_file
from emulator.core.power import LinearPower
from emulator.model.emulate import emulate_fields
from emulator.model.header import DEFAULT_MODEL, LPT_MODEL, MODELS_DIR, embedded_models, read_header
from emulator.model.portable import DEFAULT_MODEL_PATH, export_checkpoint, load_model
from emulator.model.streaming import stream_fields
from emulator.training.crops import CropDataset
from emulator.training.trainingset import TrainingSetInfo

try:
    from helpers_fit import cli, cli_fit, edit_checkpoint
except ImportError:  # pragma: no cover
    from tests.helpers_fit import cli, cli_fit, edit_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

N, L = 16, 64.0
BASE = BaseRecipe("pm", steps=2, force_factor=1, z_init=9.0)
COSMO = Cosmology(0.3, 0.048, 0.68, 0.965, 0.8)


@pytest.fixture(scope="module")
def hybrid_set(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hybrid")
    prior = {k: [v, v] for k, v in COSMO.to_dict().items()}
    prior["sigma8"] = [0.75, 0.85]
    cfg = SuiteConfig(name="h", out_dir=str(tmp / "suite"), box_size=L, ngrid=N, n_cosmologies=3, prior=prior,
                      simulation={"steps": 4, "z_init": 9.0, "output_redshifts": [0.0, 1.0]}, device="cpu")
    manifest = run_suite(cfg, progress=False)
    out = build_training_set(manifest, tmp / "hybrid.h5", val_fraction=0.34, test_fraction=0.0, progress=False,
                             base=BASE)
    return tmp, manifest, out


def test_training_set_holds_the_pm_base_of_each_snapshot(hybrid_set):
    tmp, manifest, path = hybrid_set
    info = TrainingSetInfo.read(path)
    assert info.base == BASE and info.base_fields == ("base_disp", "base_vel")
    with h5py.File(path, "r") as f:
        sid = sorted(f["sims"])[0]
        sim = f["sims"][sid]
        seed, z = int(sim.attrs["seed"]), float(sim["z_1.0000"].attrs["redshift"])
        cosmo = Cosmology(*(float(sim.attrs[k]) for k in ("Omega_m", "Omega_b", "h", "n_s", "sigma8")))
        stored = torch.from_numpy(sim["z_1.0000"]["base_disp"][...])
        stored_v = torch.from_numpy(sim["z_1.0000"]["base_vel"][...])
        assert "lpt_disp" in sim["z_1.0000"]  # the 2LPT fields stay, under their own name
    # the simulator's own run of the base recipe from the same seed (km/s velocities)
    run = run_simulation(cosmo, seed, N, L, output_redshifts=[z], z_init=BASE.z_init, steps=BASE.steps,
                         force_factor=BASE.force_factor).outputs[0]
    torch.testing.assert_close(stored.flatten(1).T, run.displacements, rtol=0, atol=2e-4)
    torch.testing.assert_close(stored_v.flatten(1).T, run.velocities, rtol=0, atol=0.05)
    # the crops feed that base to the network and subtract it from the target
    ds = CropDataset(info, "train", crop=N, halo=0, random_crops=False)
    item = ds[0]
    sample = ds.samples[0]
    with h5py.File(path, "r") as f:
        grp = f["sims"][sample.sim_id][sample.zgroup]
        torch.testing.assert_close(item["input"] * info.cell, torch.from_numpy(grp["base_disp"][...]))
        nbody = torch.from_numpy(grp["disp"][...])
    torch.testing.assert_close((item["target"][:3] + item["lpt"][:3]) * info.cell, nbody, rtol=0, atol=1e-5)


def test_a_2lpt_build_and_a_pm_build_of_one_manifest_differ_in_fingerprint(hybrid_set, tmp_path):
    _, manifest, path = hybrid_set
    other = tmp_path / path.name
    other.write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="differing"):
        build_training_set(manifest, other, val_fraction=0.34, test_fraction=0.0, progress=False)


def test_fit_export_and_generate_with_the_pm_base(hybrid_set, tmp_path, monkeypatch, capsys):
    _, _, path = hybrid_set
    monkeypatch.chdir(tmp_path)
    assert cli_fit(path, "--trainer.max_epochs", "1", "--data.crop", "8", "--data.halo", "8") == 0
    ckpt = tmp_path / "runs" / "tiny_cpu" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["base"] == BASE.to_dict()
    model_file = export_checkpoint(ckpt, tmp_path / "hybrid.pt")
    model = load_model(model_file)
    assert model.base == BASE
    assert cli("info", "--model", str(model_file)) == 0
    assert "corrects: PM 2 steps, force mesh 1x, from z = 9" in capsys.readouterr().out
    # with a zero network the generator returns its base: the simulator's run of the recipe from that seed
    with torch.no_grad():
        model.net.head.weight.zero_()
        model.net.head.bias.zero_()
    seed = 42
    out = emulate_fields(COSMO, 0.5, L, seed, model=model)
    run = run_simulation(COSMO, seed, N, L, output_redshifts=[0.5], z_init=BASE.z_init, steps=BASE.steps,
                         force_factor=BASE.force_factor).outputs[0]
    torch.testing.assert_close(out.displacement.flatten(1).T, run.displacements, rtol=0, atol=1e-4)
    torch.testing.assert_close(out.velocities, run.velocities, rtol=1e-4, atol=0.05)
    delta_k = linear_density_k(white_noise(seed, N), L, LinearPower(COSMO))
    disp, _ = pm_base_fields(delta_k, L, COSMO, 0.5, BASE)
    torch.testing.assert_close(out.displacement, disp)
    with pytest.raises(ValueError, match="z_init = 9"):
        emulate_fields(COSMO, 9.5, L, seed, model=model, allow_extrapolation=True)
    with pytest.raises(ValueError, match="2LPT-base models only"):  # a PM base needs the whole box
        stream_fields(COSMO, 0.5, L, seed, None, tmp_path / "scratch", model=model)
    assert not (tmp_path / "scratch").exists()


def test_resuming_a_checkpoint_on_a_set_with_another_base_is_refused(hybrid_set, synthetic_training_set, tmp_path,
                                                                     monkeypatch, capsys):
    """Lightning restores a checkpoint after setup(): the base check runs when it is loaded."""
    _, _, path = hybrid_set
    monkeypatch.chdir(tmp_path)
    assert cli_fit(path, "--trainer.max_steps", "1") == 0
    capsys.readouterr()
    assert cli_fit(synthetic_training_set, "--trainer.max_steps", "2", "--ckpt_path", "last") != 0
    assert "the training set's base (2LPT) differs from the checkpoint's (PM 2 steps" in capsys.readouterr().err


def test_fine_tuning_starts_from_a_model_files_weights(hybrid_set, tmp_path, monkeypatch, capsys):
    """model.init_from: the run starts from the donor's network (a zero learning rate keeps it exactly) and the
    donor's sha256 travels to the model file; a resumed run takes the checkpoint's weights, not the donor's; a
    donor with another network is refused naming the option."""
    _, _, path = hybrid_set
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    last = runs / "tiny_cpu" / "checkpoints" / "last.ckpt"
    assert cli_fit(path, "--trainer.max_steps", "1", "--seed_everything", "5") == 0
    donor = export_checkpoint(last, tmp_path / "donor.pt")
    shutil.rmtree(runs)
    assert cli_fit(path, "--trainer.max_steps", "1", "--model.lr", "0", "--model.init_from", str(donor),
                   "--seed_everything", "6") == 0
    tuned = torch.load(last, weights_only=True)
    tuned_file = export_checkpoint(last, tmp_path / "tuned.pt")
    assert load_model(tuned_file).metadata["init_from"] == {"path": str(donor), "file": "donor.pt",
                                                            "sha256": sha256_file(donor)}
    assert cli("info", "--model", str(tuned_file)) == 0
    assert f"fine-tuned from: donor.pt (sha256 {sha256_file(donor)[:16]}" in capsys.readouterr().out
    weights = load_model(donor).net.state_dict()
    assert all(torch.equal(tuned["state_dict"][f"net.{k}"], v) for k, v in weights.items())
    # resuming (with a learning rate now): the checkpoint's weights and record, not the donor's again
    edit_checkpoint(last, lambda c: [v.add_(1.0) for k, v in c["state_dict"].items() if k.startswith("net.")])
    assert cli_fit(path, "--trainer.max_steps", "2", "--model.lr", "0", "--model.init_from", str(donor),
                   "--ckpt_path", "last") == 0
    resumed = torch.load(last, weights_only=True)
    assert resumed["global_step"] == 2 and resumed["init_from"]["sha256"] == sha256_file(donor)
    assert all(torch.equal(resumed["state_dict"][f"net.{k}"], v + 1.0) for k, v in weights.items())
    shutil.rmtree(runs)
    assert cli_fit(path, "--trainer.max_steps", "1", "--model.lr", "0", "--seed_everything", "6") == 0
    fresh = torch.load(last, weights_only=True)["state_dict"]
    assert not all(torch.equal(fresh[f"net.{k}"], v) for k, v in weights.items())
    assert "init_from" not in torch.load(last, weights_only=True)
    shutil.rmtree(runs)
    capsys.readouterr()
    assert cli_fit(path, "--trainer.max_steps", "1", "--model.init_from", "hybrid_pm4") != 0
    assert "model.init_from hybrid_pm4: its network differs from model.network (theirs, ours): {'" in \
        capsys.readouterr().err


def test_a_cola_build_records_its_base_and_holds_the_cola_run(hybrid_set, tmp_path):
    """``data-prep build --base cola``: the training set's base is the COLA recipe and its fields are
    pm_base_fields' COLA run of each snapshot's seed (the same code generation runs)."""
    from data_prep.cli import main as data_prep_main

    _, manifest, _ = hybrid_set
    out = tmp_path / "cola.h5"
    assert data_prep_main(["build", "--manifest", str(manifest), "--out", str(out), "--base", "cola",
                           "--base-steps", "2", "--base-force-factor", "1", "--base-z-init", "9",
                           "--val-fraction", "0.34", "--test-fraction", "0", "--no-progress"]) == 0
    cola = BaseRecipe("cola", steps=2, force_factor=1, z_init=9.0)
    info = TrainingSetInfo.read(out)
    assert info.base == cola
    with h5py.File(out, "r") as f:
        sim = f["sims"][sorted(f["sims"])[0]]
        seed = int(sim.attrs["seed"])
        cosmo = Cosmology(*(float(sim.attrs[k]) for k in ("Omega_m", "Omega_b", "h", "n_s", "sigma8")))
        stored = torch.from_numpy(sim["z_0.0000"]["base_disp"][...])
    delta_k = linear_density_k(white_noise(seed, N), L, LinearPower(cosmo, 0.0))
    disp, _ = pm_base_fields(delta_k, L, cosmo, 0.0, cola)
    torch.testing.assert_close(stored, disp, rtol=0, atol=2e-4)
    pm_disp, _ = pm_base_fields(delta_k, L, cosmo, 0.0, BASE)
    assert float((pm_disp - disp).abs().max()) > 0.01  # COLA is not the FastPM base


def test_build_options_and_recipe_normalisation(tmp_path, capsys):
    from data_prep.cli import main as data_prep_main

    assert data_prep_main(["build", "--manifest", str(tmp_path / "m.json"), "--out", str(tmp_path / "t.h5"),
                           "--base-steps", "3"]) != 0
    assert "--base-steps sets a PM base: add --base pm" in capsys.readouterr().err
    assert not (tmp_path / "t.h5").exists()
    assert BaseRecipe("pm", z_init=12).to_json() == BaseRecipe("pm", z_init=12.0).to_json()
    with pytest.raises(ValueError, match="z_init"):
        BaseRecipe.from_dict({"method": "pm", "z_init": True})


def test_memory_plan_counts_the_pm_base_and_never_streams_it():
    from emulator.mocks.largebox import MockOptions, in_memory_estimate, plan_memory

    lpt = in_memory_estimate(256, halo=20, multiple=4)
    pm_base = BaseRecipe(method="pm", steps=4, force_factor=2)
    pm = in_memory_estimate(256, halo=20, multiple=4, base=pm_base)
    assert pm - lpt == pytest.approx((220 + 24 * 8) * 256**3)  # measured 369 bytes/particle at 128^3, factor 2
    assert in_memory_estimate(256, halo=20, multiple=4, base=BaseRecipe()) == lpt  # a 2LPT base adds nothing
    assert not plan_memory(MockOptions(), 256, 512.0, halo=20, multiple=4, max_memory=None, base=pm_base).streamed
    with pytest.raises(ValueError, match="corrects a PM run, which needs the whole box"):
        plan_memory(MockOptions(), 256, 512.0, halo=20, multiple=4, max_memory=2.0, base=pm_base)
    cola = BaseRecipe(method="cola", steps=4, force_factor=2)
    assert in_memory_estimate(256, halo=20, multiple=4, base=cola) > pm
    with pytest.raises(ValueError, match="corrects a COLA run, which needs the whole box"):
        plan_memory(MockOptions(), 256, 512.0, halo=20, multiple=4, max_memory=2.0, base=cola)


def test_models_without_a_recorded_base_correct_2lpt(capsys):
    assert read_header(LPT_MODEL).base == {"method": "2lpt"} and load_model(LPT_MODEL).base.is_lpt
    assert cli("info", "--model", LPT_MODEL) == 0
    assert "corrects: 2LPT" in capsys.readouterr().out


def test_the_default_model_corrects_a_4_step_cola_run(capsys):
    """Issue 11: the model used where none is named is the hybrid over a 4-step COLA run, trained on the converged
    truth (hybrid_pm4, over 4 FastPM steps, stays embedded by name)."""
    assert DEFAULT_MODEL == "hybrid_cola4" and DEFAULT_MODEL_PATH == MODELS_DIR / "hybrid_cola4.pt"
    model = load_model()
    assert model.path == str(DEFAULT_MODEL_PATH) and model.base == BaseRecipe.from_dict(
        {"method": "cola", "steps": 4, "force_factor": 2, "z_init": 12.0, "spacing": "linear"})
    assert read_header().sha256 == model.sha256
    assert cli("info") == 0
    assert "corrects: COLA 4 steps, force mesh 2x, from z = 12" in capsys.readouterr().out


def test_embedded_models_are_found_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a bare name is the embedded model's only when no such file is here
    assert {"default", "hybrid_pm4"} <= set(embedded_models())
    assert read_header("hybrid_pm4").base == BaseRecipe("pm", steps=4, force_factor=2, z_init=12.0).to_dict()
    assert load_model("hybrid_pm4").base.label() == "PM 4 steps, force mesh 2x, from z = 12"
    with pytest.raises(FileNotFoundError, match="nosuchmodel"):
        load_model("nosuchmodel")
