"""Every command in the README's ``bash`` blocks runs, at small size, exactly as a user would type it.

The commands are read from README.md (continuation lines joined, comments dropped) and run in a scratch folder
holding a copy of ``configs/`` in which the big configurations are shrunk to test size: the suite config becomes
a 16^3 suite of six cosmologies, the training configs train for two steps on small crops and on the CPU. The
command lines themselves are run verbatim except for the size options listed in :data:`SHRINK` (box size,
number of realizations, benchmark tier; the benchmark also gets the shrunk smoke config). A README command that
this test neither runs nor lists in :data:`NOT_RUN` with a reason fails the test, so an example cannot silently rot.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

#: option -> value substituted in README commands (sizes only)
SHRINK = {"--box-size": "64", "--n-realizations": "2", "--tier": "smoke"}
#: commands not run here, with the reason
NOT_RUN = {"bash scripts/test.sh": "it is the command running this test suite"}


def readme_commands(text: str) -> list[str]:
    """Commands of the ``bash`` fenced blocks: continuation lines joined, comments and blank lines dropped."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens:
                out.append(shlex.join(tokens))
    return out


def shrink_command(command: str) -> list[str]:
    tokens = shlex.split(command)
    for i, tok in enumerate(tokens[:-1]):
        if tok in SHRINK:
            tokens[i + 1] = SHRINK[tok]
    return tokens


def _shrink_suite(path: Path) -> None:
    cfg = yaml.safe_load(path.read_text())
    cfg.update(box_size=64.0, ngrid=16, n_cosmologies=6, seeds_per_cosmology=1)
    cfg["simulation"].update(steps=4, output_redshifts=[0.0, 0.5])
    path.write_text(yaml.safe_dump(cfg))


def _shrink_training(path: Path) -> None:
    cfg = yaml.safe_load(path.read_text())
    tr = cfg["trainer"]
    tr.update(max_steps=2, val_check_interval=1, accelerator="cpu", devices=1, max_time=None, precision="32-true",
              enable_progress_bar=False)
    tr.pop("strategy", None)
    tr.pop("num_nodes", None)
    for cb in tr.get("callbacks", []):
        if "every_n_train_steps" in cb.get("init_args", {}):
            cb["init_args"]["every_n_train_steps"] = 1
    cfg["data"].update(crop=8, val_crop=16, batch_size=1, crops_per_sample=1, num_workers=0)
    cfg["model"]["network"].update(base_channels=4, style_hidden=8)  # the depth (and so the halo) is kept
    path.write_text(yaml.safe_dump(cfg))


def _shrink_benchmark(path: Path) -> None:
    cfg = yaml.safe_load(path.read_text())
    cfg["truth"]["seeds"] = cfg["truth"]["seeds"][:1]
    cfg["covariance"]["realizations"] = 2
    cfg["speed"]["enabled"] = False
    path.write_text(yaml.safe_dump(cfg))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "configs", ws / "configs")
    _shrink_suite(ws / "configs" / "suite_default.yaml")
    _shrink_suite(ws / "configs" / "suite_converged.yaml")  # the hybrid's recipe (refine 2 kept)
    for name in ("default_model.yaml", "single_gpu.yaml", "multi_gpu_ddp.yaml", "design/cpu_budget.yaml"):
        _shrink_training(ws / "configs" / name)
    design = ws / "configs" / "design" / "cpu_budget.yaml"  # whole periodic boxes of the shrunk suite's 16^3
    cfg = yaml.safe_load(design.read_text())
    cfg["data"].update(crop=16, val_crop=16, halo=0)
    design.write_text(yaml.safe_dump(cfg))
    _shrink_benchmark(ws / "configs" / "benchmarks" / "smoke.yaml")
    cont = ws / "configs" / "default_model_continue.yaml"  # the second run: two more steps
    cfg = yaml.safe_load(cont.read_text())
    cfg["trainer"]["max_steps"] = 4
    cont.write_text(yaml.safe_dump(cfg))
    return ws


def _run(tokens: list[str], cwd: Path, out_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "WANDB_MODE": "offline",
           "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    if tokens[:2] == ["bash", "scripts/demo.sh"]:  # the main job: its own set-up, then a small demo
        tokens = ["bash", str(ROOT / "scripts" / "demo.sh"), "--n-realizations", "1", "--out", str(out_dir)]
    elif tokens[0] == "python":
        tokens = [sys.executable, *tokens[1:]]
    if tokens[1:3] == ["-m", "benchmarks"]:  # the smoke tier, further shrunk (no speed section, fewer seeds)
        tokens += ["--config", str(cwd / "configs" / "benchmarks" / "smoke.yaml")]
    return subprocess.run(tokens, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_readme_parser_sees_the_examples():
    cmds = readme_commands((ROOT / "README.md").read_text())
    assert "bash scripts/demo.sh" in cmds and "bash scripts/test.sh" in cmds
    assert any(c.startswith("emulator generate") and "--format fits" in c for c in cmds)
    bias = ["--bias", '{"model": "linear", "b1": 2}']
    assert shlex.split(shlex.join(bias)) == bias


@pytest.mark.slow
def test_every_readme_command_runs(workspace):
    """All README commands in order (later ones use what earlier ones made: suite -> build -> fit -> export)."""
    commands = readme_commands((ROOT / "README.md").read_text())
    failures, ran = [], 0
    for i, command in enumerate(commands):
        if command in NOT_RUN:
            continue
        res = _run(shrink_command(command), workspace, workspace / f"out_{i}")
        ran += 1
        if res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
            failures.append(f"$ {command}\n    exit {res.returncode}: " + "\n    ".join(tail))
    assert ran >= 10
    assert not failures, "README commands that fail:\n" + "\n".join(failures)


def test_readme_commands_write_nothing_into_the_repository():
    """No README example points its output into a committed folder (e.g. the committed benchmark report)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    tracked_dirs = {str(Path(f).parent) for f in tracked} | set(tracked)
    for command in readme_commands((ROOT / "README.md").read_text()):
        tokens = shlex.split(command)
        for opt, value in zip(tokens, tokens[1:]):
            if opt == "--out":
                target = os.path.normpath(value.rstrip("/"))
                assert target not in tracked_dirs, f"README command writes into committed {target}: {command}"
