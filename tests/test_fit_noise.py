"""``emulator fit`` prints no known noise: a fit and its mid-epoch resume, with the wandb (offline) and CSV loggers
of the shipped configs, run as the console script would (a subprocess, so every line a user sees is captured)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]
NOISE = (
    "litlogger",  # Lightning's tip advertising its cloud logger
    "litmodels",
    "anonymous setting has no effect",  # wandb, because Lightning passes anonymous=None
    "git root",  # wandb, "git root <save_dir> does not exist"
    "LeafSpec",  # torch deprecation raised inside Lightning
    "not resumable",  # Lightning, on a mid-epoch resume of a stateless loader
    "exists and is not empty",  # Lightning, on resume, about the checkpoint folder being resumed from
    "could not find the monitored key",  # Lightning, best-model checkpoint judged where no validation ran
)
WANDB = """trainer:
  logger:
    - class_path: lightning.pytorch.loggers.WandbLogger
      init_args: {save_dir: runs/wb, project: cosmo-emulator, name: wb, offline: true}
    - class_path: lightning.pytorch.loggers.CSVLogger
      init_args: {save_dir: runs/wb, name: logs}
"""


def _emulator_fit(cwd: Path, data: Path, *extra: str) -> str:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", "import sys; from emulator.cli import main; sys.exit(main())", "fit",
           "--config", str(REPO / "configs" / "tiny_cpu.yaml"), "--config", "wandb.yaml", "--data.path", str(data),
           "--data.crops_per_sample", "1", "--trainer.limit_train_batches", "4", "--trainer.max_epochs", "3",
           "--torch_threads", "1", *extra]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.mark.slow
def test_fit_and_resume_print_no_known_noise(synthetic_training_set, tmp_path):
    (tmp_path / "wandb.yaml").write_text(WANDB)
    first = _emulator_fit(tmp_path, synthetic_training_set, "--trainer.max_steps", "3")  # stops mid-epoch
    resumed = _emulator_fit(tmp_path, synthetic_training_set, "--trainer.max_steps", "5", "--ckpt_path", "last")
    assert "`max_steps=3` reached" in first and "`max_steps=5` reached" in resumed  # the output was captured
    assert "Restored all states" in resumed and "wandb" in first  # the wandb logger ran
    for text in (first, resumed):
        noisy = [line for line in text.splitlines() if any(n in line for n in NOISE)]
        assert not noisy, noisy
