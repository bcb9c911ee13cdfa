#!/usr/bin/env bash
# Issue 11 on one GPU, in a fixed wall-clock budget: simulate the converged training suite, build the training set,
# measure the step time, train configs/converged_gpu.yaml so that its schedule ends with the budget, and export
# the best checkpoint (by the validation split) as a portable model with its learning curve.
#
#   bash scripts/gpu_converged.sh OUT_DIR [BUDGET_SECONDS]      (default budget 480 s)
#
# Each phase is bounded by its share of the budget; a suite cut short trains on the simulations it finished (the
# manifest is written after each one) and a rerun resumes it. Environment overrides (for smoke runs on a CPU):
# SUITE, TRAIN_CFG, DATA, PYTHON, SIM_SHARE (fraction of the budget for simulating, default 0.30), BUILD_SHARE
# (0.15), BUILD_ARGS (more options of `data-prep build`, e.g. "--base cola --base-steps 4 --base-force-factor 2" with
# TRAIN_CFG=configs/converged_gpu_hybrid.yaml DATA=runs/converged_train_cola4.h5: the hybrid; split on whitespace,
# so no option value may hold a space), EXTRA_CFG (a config layered over TRAIN_CFG for the fit), STEP_SECONDS (skip the probe), RESUME_CKPT (continue a checkpoint with ${CONTINUE_CFG:-configs/converged_gpu_continue.yaml}
# for this budget's steps; a warm restart of the cosine schedule), BUILD_WORKERS (CPU processes of the build, default cores - 2), RESERVE (seconds kept for the export, default 45), MAX_STEPS_CAP. The test cosmologies are
# configs/suite_converged_test.yaml (no test split here): evaluate the exported model against them with
# `python -m benchmarks --tier standard --model OUT_DIR/<TRAIN_CFG's name>.pt`. The best checkpoint comes back in 15 MB
# pieces (`cat OUT_DIR/*.ckpt.part-* > best.ckpt`) for resuming or re-exporting.
set -uo pipefail
OUT=${1:?usage: gpu_converged.sh OUT_DIR [BUDGET_SECONDS]}
BUDGET=${2:-480}
SUITE=${SUITE:-configs/suite_converged.yaml}
TRAIN_CFG=${TRAIN_CFG:-configs/converged_gpu.yaml}
DATA=${DATA:-runs/converged_train.h5}
PY=${PYTHON:-python3}
SIM_SHARE=${SIM_SHARE:-0.30}
BUILD_SHARE=${BUILD_SHARE:-0.15}
RESERVE=${RESERVE:-45}
MAX_STEPS_CAP=${MAX_STEPS_CAP:-100000}
CORES=$(nproc 2>/dev/null || echo 1)
BUILD_WORKERS=${BUILD_WORKERS:-$(( CORES > 4 ? CORES - 2 : 1 ))}
export PYTHONUNBUFFERED=1 WANDB_MODE=offline PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # run from the repo root
mkdir -p "$OUT" "$(dirname "$DATA")"
t_start=$(date +%s)
elapsed() { echo $(( $(date +%s) - t_start )); }
left() { echo $(( BUDGET - $(elapsed) )); }
phase() { echo "[$(elapsed) s] $*" | tee -a "$OUT/phases.txt"; }
share() { "$PY" -c "print(max(1, int($BUDGET * $1)))"; }

[ -z "${EXTRA_CFG:-}" ] || [ -f "$EXTRA_CFG" ] || { echo "EXTRA_CFG=$EXTRA_CFG: no such file" >&2; exit 1; }
phase "start: budget $BUDGET s, suite $SUITE, config $TRAIN_CFG${EXTRA_CFG:+ + $EXTRA_CFG}${BUILD_ARGS:+, build $BUILD_ARGS}"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee -a "$OUT/phases.txt"

suite_dir=$("$PY" -c "import yaml,sys; print(yaml.safe_load(open('$SUITE'))['out_dir'])")
timeout "$(share "$SIM_SHARE")" "$PY" -m data_prep.cli simulate --config "$SUITE" --no-progress
phase "simulate exit $?: $(ls -d "$suite_dir"/sim_* 2>/dev/null | wc -l) simulation folders"
[ -f "$suite_dir/manifest.json" ] || { phase "no manifest: stop"; exit 1; }
cp "$suite_dir/manifest.json" "$OUT/suite_manifest.json"

read -r -a build_extra <<< "${BUILD_ARGS:-}"   # e.g. the hybrid's PM base: --base pm --base-steps 4 ...
timeout "$(share "$BUILD_SHARE")" "$PY" -m data_prep.cli build --manifest "$suite_dir/manifest.json" --out "$DATA" \
    --val-fraction 0.1 --test-fraction 0 --workers "$BUILD_WORKERS" --rebuild --no-progress \
    ${build_extra[@]+"${build_extra[@]}"}
rc=$?; phase "build exit $rc"
[ $rc -eq 0 ] || exit 1

if [ -n "${STEP_SECONDS:-}" ]; then
    seconds=$STEP_SECONDS; phase "step time given: $seconds s"
else
    probe=$(timeout $(( $(left) / 3 )) "$PY" scripts/training_probe.py --config "$TRAIN_CFG" --data "$DATA" \
        --steps 20 | tail -1)
    phase "probe: $probe"
    [ -n "$probe" ] || { phase "probe failed: stop"; exit 1; }
    seconds=$(echo "$probe" | "$PY" -c "import json,sys; d=json.load(sys.stdin); print(max(d['seconds_per_step'], d['mean']))")
fi
train_left=$(( $(left) - RESERVE - 25 ))   # 25 s: start-up, validation passes and checkpoints of the fit
steps=$("$PY" -c "print(max(50, min($MAX_STEPS_CAP, int(0.92 * $train_left / $seconds))))")
# validate every 500 (250, or 25 for tiny runs) steps and end on a validation, so the best checkpoint can be the last
every=$(( steps >= 2000 ? 500 : steps >= 500 ? 250 : 25 ))
steps=$(( steps / every * every ))
extra=()
if [ -n "${RESUME_CKPT:-}" ]; then   # a later run: continue the checkpoint's step count and stream of crops
    done_steps=$("$PY" -c "from emulator.training.checkpoints import read_checkpoint as r
print(r('$RESUME_CKPT', 'RESUME_CKPT')['global_step'])") || { phase "unreadable RESUME_CKPT: stop"; exit 1; }
    steps=$(( (done_steps + steps) / every * every ))   # still ends on a validation
    [ "$steps" -gt "$done_steps" ] || steps=$(( done_steps + every ))
    extra+=(--config "${CONTINUE_CFG:-configs/converged_gpu_continue.yaml}" --ckpt_path "$RESUME_CKPT")
    phase "resume $RESUME_CKPT at step $done_steps"
fi
[ -z "${EXTRA_CFG:-}" ] || extra+=(--config "$EXTRA_CFG")   # a layered override, e.g. configs/converged_gpu_power_half.yaml
"$PY" -c "import wandb" 2>/dev/null || extra+=(--config configs/csv_logger_only.yaml)
root=$("$PY" -c "import yaml; print(yaml.safe_load(open('$TRAIN_CFG'))['trainer']['default_root_dir'])")
soft=$(( $(left) - RESERVE - 10 ))   # Lightning stops by itself (and checkpoints) at max_time; timeout is the backstop
[ "$soft" -ge 30 ] || { phase "only $soft s left for the fit: stop"; exit 1; }
max_time=$(printf "00:%02d:%02d:%02d" $((soft / 3600)) $((soft % 3600 / 60)) $((soft % 60)))
phase "fit: $steps steps at $seconds s/step in $train_left s (max_time $max_time)"
marker="$OUT/.fit_started"; touch "$marker"   # only checkpoints and logs this run writes are taken below
timeout $(( soft + 10 )) "$PY" -m emulator.cli fit --config "$TRAIN_CFG" ${extra[@]+"${extra[@]}"} --data.path "$DATA" \
    --trainer.max_steps "$steps" --trainer.val_check_interval "$every" --trainer.max_time "$max_time" 2>&1 | grep -v "it/s\]" | tail -40
rc=${PIPESTATUS[0]}; phase "fit exit $rc"
[ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || { phase "fit failed: stop"; exit 1; }

newest() { find "$root/$1" -name "$2" -newer "$marker" -printf "%T@ %p\n" 2>/dev/null | sort -n | tail -1 | cut -d" " -f2-; }
ckpt=$(newest checkpoints "best-*.ckpt"); [ -n "$ckpt" ] || ckpt=$(newest checkpoints "last.ckpt")
[ -n "$ckpt" ] || { phase "this run wrote no checkpoint: stop"; exit 1; }
name=$(basename "$TRAIN_CFG" .yaml)${EXTRA_CFG:+_$(basename "$EXTRA_CFG" .yaml)}
"$PY" -m emulator.cli export --ckpt "$ckpt" --out "$OUT/$name.pt" --name "$name" \
    --description "truth $SUITE; $TRAIN_CFG${EXTRA_CFG:+ + $EXTRA_CFG}, $steps steps planned, $BUDGET s budget; code ${CODE_COMMIT:-working tree}" \
    || { phase "export failed"; exit 1; }
phase "exported $ckpt -> $OUT/$name.pt"
rm -f "$OUT"/best.ckpt.part-*
split -b 15m "$ckpt" "$OUT/best.ckpt.part-"   # whole checkpoint (resume, re-export)
metrics=$(newest logs "metrics.csv")
[ -n "$metrics" ] && cp "$metrics" "$OUT/metrics.csv"
rm -f "$marker"
phase "done"
