#!/usr/bin/env bash
# Set up the environment (idempotent) and run the main job. Extra arguments go to `emulator demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WANDB_MODE=${WANDB_MODE:-offline} MPLBACKEND=${MPLBACKEND:-Agg}
exec .venv/bin/emulator demo "$@"
