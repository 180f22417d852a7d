#!/usr/bin/env bash
# The one-command GPU recipe (issue 14): on a machine with a CUDA GPU and PyTorch, unpack the packed training data
# (scripts/pack_prepared.sh), fine-tune the bundled model with $CONFIG (default configs/gpu-stage5.toml) for
# MINUTES of wall time (SIGTERM then saves a checkpoint at the next step, as on any interrupted run), export the EMA
# weights.
# Usage: bash scripts/train_gpu.sh OUT_DIR [MINUTES] [extra `linecolor train` arguments, e.g. -o train.steps=20]
# OUT_DIR gets weights/ (config.json + model.safetensors), metrics.jsonl and train.log. Environment: RUN_DIR (default
# runs/gpu-stage5), INIT_WEIGHTS (the model to fine-tune; default: the bundled one; "none": train from scratch),
# CONFIG (default configs/gpu-stage5.toml), PYTHON (default python3).
# Ladder vs plain SPADE with the same recipe from scratch (issue 14's fourth target), one device call of ~10 min:
#   for v in ladder spade; do RUN_DIR=runs/scratch-$v INIT_WEIGHTS=none CONFIG=configs/gpu-stage7.toml \
#     bash scripts/train_gpu.sh "$OUT/$v" 4 --variant $v; done
# then, here: linecolor evaluate OUT --learned --split val --limit 8 --weights ladder=…/ladder/weights --weights
# spade=…/spade/weights (the sources' data is not on the device).
set -euo pipefail
out=${1:?usage: train_gpu.sh OUT_DIR [MINUTES] [linecolor train arguments]}
minutes=${2:-8}
shift $(( $# >= 2 ? 2 : 1 ))
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
run=${RUN_DIR:-runs/gpu-stage5}
mkdir -p "$out"
if [ ! -d prepared/openmoji128/train ]; then
  start=$(date +%s)
  xz -d -T0 < gpu/prepared.tar.xz | tar -xf -
  echo "unpacked the training data in $(( $(date +%s) - start )) s"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi: training on $($python -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')"
status=0
init=(--init-weights "${INIT_WEIGHTS:-default}")
[ "${INIT_WEIGHTS:-}" = none ] && init=()
timeout -s TERM -k 90 $(( minutes * 60 )) "$python" -m linecolor train "$run" --config "${CONFIG:-configs/gpu-stage5.toml}" \
  "${init[@]}" --resume auto --quiet "$@" > "$out/train.log" 2>&1 || status=$?
tail -n 5 "$out/train.log"
# 124: the time limit's SIGTERM stopped the run and it saved a checkpoint (the loop saves at the next step).
if [ "$status" -ne 0 ] && [ "$status" -ne 124 ]; then
  echo "train_gpu: training failed with status $status" >&2
  exit "$status"
fi
cp "$run/metrics.jsonl" "$out/metrics.jsonl"
"$python" -m linecolor export "$run" "$out/weights"
ls -l "$out/weights"
