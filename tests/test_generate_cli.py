"""``emulator generate`` as a user meets it: the help text, and one-line errors (no traceback, no wrong advice, no
file) for a bad device, a model file that is not one, and a negative redshift."""

from __future__ import annotations

import os
import re

import pytest
import torch

from emulator.api import generate_mocks
from emulator.cli import main
from emulator.core.cosmology import get_preset
from emulator.mocks import api
from emulator.model.emulate import SEED_MAX, emulate_fields
from emulator.model.portable import check_device, load_model

COSMO = ["--preset", "planck18"]


@pytest.fixture
def no_compute(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a mock was computed")

    monkeypatch.setattr(api, "emulate_fields", refuse)


def _help(capsys) -> str:
    with pytest.raises(SystemExit) as info:
        main(["generate", "--help"])
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # unwrapped


def _option(text: str, flag: str) -> str:
    """The help of one option (up to the next option)."""
    start = text.index(f" {flag} ")
    nxt = re.search(r" --[a-z]", text[start + len(flag) + 2:])
    return text[start: start + len(flag) + 2 + (nxt.start() if nxt else len(text))]


def test_help_text_states_meanings_units_and_defaults_once(capsys):
    text = _help(capsys)
    tracer = _option(text, "--tracer {particles,halos,galaxies,biased}")
    assert "FoF" in tracer and "HOD" in tracer and "Msun/h" in tracer and "HaloID" in tracer
    zrange = _option(text, "--cutsky-zrange ZMIN ZMAX")
    assert "redshift" in zrange and "RA, DEC in degrees" in zrange and "dimensionless" in zrange
    model = _option(text, "--model MODEL")
    assert "(default: None)" not in model and model.count("default") == 1 and "embedded model" in model
    assert "(default: None)" not in text  # every None default says what it means instead
    assert "--no-progress" in text and "--overwrite" in text
    assert "[0, 2^64 - 1]" in _option(text, "--seed SEED") and SEED_MAX == 2**64 - 1
    with pytest.raises(SystemExit):
        main(["info", "--help"])
    info = " ".join(capsys.readouterr().out.split())
    assert "(default: the embedded model)" in info and "(default: None)" not in info


def test_no_progress_turns_the_bar_off(tmp_path, capsys):
    argv = ["generate", *COSMO, "--box-size", "64", "--out", str(tmp_path), "--tracer", "biased",
            "--number-density", "0.01"]
    assert main([*argv, "--no-progress"]) == 0
    assert "mocks:" not in capsys.readouterr().err
    assert main([*argv, "--seed", "2"]) == 0
    assert "mocks:" in capsys.readouterr().err


def _one_line_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and err.startswith("emulator generate: error:")
    return err


def test_bad_devices_are_one_line_errors_before_computing(tmp_path, capsys, no_compute):
    out = tmp_path / "o"
    bad = ["foo", "cuda:99", "meta"] + ([] if torch.cuda.is_available() else ["cuda"])
    for device in bad:
        err = _one_line_error(["generate", *COSMO, "--out", str(out), "--device", device], capsys)
        assert f"device {device!r}" in err or f"got {device!r}" in err
        with pytest.raises(ValueError, match="device"):
            emulate_fields(get_preset("planck18"), 0.0, 64.0, 1, method="za", ngrid=16, device=device)
    if not torch.cuda.is_available():
        err = _one_line_error(["generate", *COSMO, "--out", str(out), "--device", "cuda"], capsys)
        assert "CUDA" in err and "use device 'cpu'" in err
    assert not out.exists()
    assert check_device("cpu") == torch.device("cpu")
    # the commands' "auto" (data-prep simulate/build, benchmarks) is the visible GPU, else the CPU, then checked
    from emulator.core.device import resolve_device

    auto = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("auto") == resolve_device(None) == auto and resolve_device("cpu") == torch.device("cpu")
    for device in bad:
        with pytest.raises(ValueError, match="device"):
            resolve_device(device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_generates_the_cpu_catalog_to_rounding(tmp_path):
    cpu, gpu = (generate_mocks("planck18", box_size=64.0, out_dir=tmp_path / d, progress=False, device=d)[0]
                for d in ("cpu", "cuda"))
    from emulator.mocks.io import read_catalog

    a, b = read_catalog(cpu, "data")["Position"], read_catalog(gpu, "data")["Position"]
    d = abs(a.astype(float) - b)
    assert min(d.max(), (64.0 - d).max()) < 1e-3


def test_random_bytes_model_gets_our_message_not_torchs_pickle_advice(tmp_path, capsys, no_compute):
    bad = tmp_path / "random.pt"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(ValueError) as info:
        load_model(bad)
    msg = str(info.value)
    assert str(bad) in msg and "not a cosmo-emulator model file" in msg and "\n" not in msg
    for advice in ("weights_only=False", "weights_only` set to `False", "Re-running", "will likely succeed"):
        assert advice not in msg
    err = _one_line_error(["generate", *COSMO, "--out", str(tmp_path / "o"), "--model", str(bad)], capsys)
    assert "weights_only" not in err.replace("read weights-only", "") and "Re-running" not in err
    assert not (tmp_path / "o").exists()


def test_negative_redshift_is_a_plain_error_without_extrapolation_advice(tmp_path, capsys, no_compute):
    for extra in ([], ["--allow-extrapolation"]):
        err = _one_line_error(["generate", *COSMO, "--out", str(tmp_path / "o"), "--redshift", "-0.5", *extra],
                              capsys)
        assert "redshift must be finite and >= 0, got -0.5" in err and "extrapolation" not in err
    for z in (-0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="redshift must be finite and >= 0") as info:
            generate_mocks("planck18", redshift=z, out_dir=tmp_path / "o", progress=False, allow_extrapolation=True)
        assert "extrapolation" not in str(info.value)
    assert not (tmp_path / "o").exists()


def test_info_prints_the_embedded_models_training_history(capsys):
    """The default model (hybrid_cola4) and hybrid_pm4 carry their training runs; the 2LPT-based ``default`` both of
    its runs (configs/default_model.yaml, then the continuation)."""
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "model: hybrid-cola4-2mpc-64" in out and "training history: 1 segment(s), 2500 steps, 67 min" in out
    assert "configs/design/cpu_budget.yaml + configs/design/cola4.yaml" in out
    assert main(["info", "--model", "hybrid_pm4"]) == 0
    out = capsys.readouterr().out
    assert "model: hybrid-pm4-2mpc-64" in out and "training history: 1 segment(s), 2480 steps" in out
    assert "configs/design/cpu_budget.yaml + configs/design/pm4.yaml" in out
    assert "velocity dispersion (fitted on configs/suite_converged.yaml)" in out
    assert main(["info", "--model", "default"]) == 0
    out = capsys.readouterr().out
    assert "training history: 2 segment(s), 7000 steps" in out
    assert "steps 0 -> 4500" in out and "steps 4500 -> 7000" in out
