#!/usr/bin/env bash
# Set up the environment (idempotent) and run the test suite. Extra arguments go to pytest.
# Slow tests are deselected by default; run them with: bash scripts/test.sh -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WANDB_MODE=${WANDB_MODE:-offline} MPLBACKEND=${MPLBACKEND:-Agg}
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "[test] pytest collected no tests: failing" >&2
    exit 1
fi
exit "$rc"
