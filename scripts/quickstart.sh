#!/usr/bin/env bash
# Train on your own drawings, shown on a slice of the DiceBear avatars: set up, prepare 400 line/colour pairs,
# fine-tune the bundled model on them on this machine's CPU (configs/finetune-cpu.toml, a few minutes), export the
# result and measure it against the bundled model and the bare line art on 20 held-out avatars.
# Everything is written under runs/quickstart/. Re-running resumes the training where it stopped.
# The same commands, for a folder of your own pairs, are in the README ("Train on your own drawings").
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${LINECOLOR_DATA:-../shared/data}
STEPS=${STEPS:-200}
OUT=runs/quickstart
bash scripts/setup.sh
mkdir -p "$OUT"
started=$(date +%s)
if [ ! -f "$OUT/dicebear/manifest.json" ]; then
  .venv/bin/linecolor prepare dicebear "$DATA/dicebear-adventurer" "$OUT/dicebear" --size 128 --limit 400 --workers 2
fi
.venv/bin/linecolor train "$OUT/run" --init-weights default --config configs/finetune-cpu.toml \
  --data "$OUT/dicebear" --steps "$STEPS"
.venv/bin/linecolor export "$OUT/run" "$OUT/model"
# Held-out avatars (the source's test split, never trained on), hints revealed from their true colours; the
# baselines include the bare line art (line_only) and the classical fills.
.venv/bin/linecolor evaluate "$OUT/eval" --weights bundled=src/linecolor/weights/default \
  --weights finetuned="$OUT/model" --data-root "$DATA" --sources dicebear --sizes 256 --ks 2 5 --limit 20 --quiet
.venv/bin/python - "$OUT/eval/results.csv" "$started" <<'PY'
import csv
import sys
import time

rows = [r for r in csv.DictReader(open(sys.argv[1], encoding="utf-8")) if r["test_set"] == "combined"]
psnr = {(r["method"], r["k"]): float(r["psnr"]) for r in rows}
print(f"\nPSNR against the truth on 20 held-out avatars at 256² (dB; K = hints per drawing), "
      f"{(time.time() - float(sys.argv[2])) / 60:.1f} min:")
for method, label in (("line_only", "bare line art"), ("bundled", "bundled model"), ("finetuned", "fine-tuned")):
    print(f"  {label:14s} " + "  ".join(f"K={k}: {psnr[(method, k)]:.2f}" for k in ("2", "5")))
PY
echo "before/after: $OUT/eval/grid.png (line art, hints, each method, truth); table: $OUT/eval/results.md"
echo "colour with it: .venv/bin/linecolor colorize drawing.png --weights $OUT/model --points 'x,y,#rrggbb,r'"
