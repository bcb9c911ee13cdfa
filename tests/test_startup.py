"""Start-up: what the command line and generation import (checked in fresh interpreters; no timing asserts,
those live in benchmarks/startup.py), and the torch-free model header that ``emulator info`` reads."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import zipfile

import pytest

HEAVY = ("lightning", "pytorch_lightning", "camb", "matplotlib", "wandb")


def _modules_after(code: str) -> set[str]:
    """Top-level modules imported by ``code`` in a fresh interpreter."""
    script = textwrap.dedent(code) + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return set(out.strip().splitlines()[-1].split())


def _cli(argv: list[str]) -> str:
    return f"""
from emulator.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
"""


def test_generation_imports_neither_lightning_nor_camb():
    mods = _modules_after("import emulator.cli.generate, emulator.mocks.api, emulator.mocks.io")
    assert not mods & set(HEAVY), mods & set(HEAVY)


@pytest.mark.parametrize("argv", [["--help"], ["generate", "--help"], ["demo", "--help"], ["cache", "info"]])
def test_help_does_not_import_torch(argv):
    mods = _modules_after(_cli(argv))
    assert "torch" not in mods and not mods & set(HEAVY)


def test_info_does_not_import_torch():
    mods = _modules_after(_cli(["info"]))
    assert "torch" not in mods and "scipy" not in mods and not mods & set(HEAVY)


def test_header_agrees_with_the_loaded_model():
    from emulator.model.header import accuracy_table, read_header
    from emulator.model.portable import load_model
    from emulator.training.evaluate import table

    for name in (None, "default", "hybrid_pm4", "hybrid_pm4_1mpc"):  # the default, and each embedded model by name
        h, m = read_header(name), load_model(name)
        assert (h.name, h.path, h.sha256, h.cell_size) == (m.name, m.path, m.sha256, m.cell_size)
        assert h.hull() == m.hull() and h.halo == m.net.halo and h.base == m.base.to_dict()
        assert h.metadata == m.metadata
    validated = load_model("default").metadata["validation"]  # the model exported with its held-out numbers
    assert accuracy_table(validated) == table(validated)


@pytest.mark.parametrize("depth,blocks", [(0, 1), (1, 1), (2, 1), (2, 2), (3, 1), (3, 3)])
def test_unet_halo_matches_the_network(depth, blocks):
    from emulator.model import StyledUNet
    from emulator.model.header import unet_halo

    net = StyledUNet(in_channels=3, out_channels=6, style_dim=6, base_channels=2, depth=depth, blocks=blocks)
    assert unet_halo(depth, blocks) == net.halo


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_header_refuses_foreign_files(tmp_path):
    from emulator.model.header import read_header

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="junk.pt: not a cosmo-emulator model file"):
        read_header(junk)
    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("evil/data.pkl", pickle.dumps({"format": "cosmo-emulator-model", "x": _Evil()}))
    with pytest.raises(ValueError, match="evil.pt: not a cosmo-emulator model file"):
        read_header(evil)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_header(tmp_path / "missing.pt")


def test_info_falls_back_to_the_full_loader(tmp_path, capsys):
    """A legacy (non-zip) torch model file is still shown, and a foreign file still fails with one line."""
    import torch

    from emulator.cli import main
    from emulator.model.header import LPT_MODEL, MODELS_DIR

    payload = torch.load(MODELS_DIR / f"{LPT_MODEL}.pt", map_location="cpu", weights_only=True)  # has validation
    legacy = tmp_path / "legacy.pt"
    torch.save(payload, legacy, _use_new_zipfile_serialization=False)
    assert main(["info", "--model", str(legacy)]) == 0
    out = capsys.readouterr().out
    assert "network halo 20 cells" in out and "held-out accuracy" in out
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    assert main(["info", "--model", str(junk)]) == 2
    assert "junk.pt: not a cosmo-emulator model file" in capsys.readouterr().err
