#!/usr/bin/env bash
# Idempotent environment set-up: creates .venv, installs torch and the package (editable) with test extras.
# Re-running is fast: it reinstalls only when pyproject.toml changed.
#
# Environment knobs:
#   VENV=path         where the virtual environment lives (default .venv)
#   PYTHON=python3    interpreter used to create it
#   TORCH_SPEC=...    torch requirement installed first when the venv has no torch
#                     (default torch==2.13.0; a user with a CUDA machine may set e.g. TORCH_SPEC="torch"
#                     or pre-install their own build: an existing torch is never replaced).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.installed-stamp"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$PY" -c "import torch, emulator, data_prep" 2>/dev/null; then
    exit 0
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "[setup] installing $TORCH_SPEC"
    "$PY" -m pip install -q "$TORCH_SPEC"
fi
echo "[setup] installing package and dependencies"
"$PY" -m pip install -q -e ".[test]"
echo "$want" > "$stamp"
echo "[setup] done: $("$PY" -c 'import torch; print("torch", torch.__version__)')"
