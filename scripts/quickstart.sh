#!/usr/bin/env bash
# The main job until the studio and the bundled model land: set up, prepare a slice of the DiceBear avatars,
# train a small colorizer on this machine's CPU for a few minutes, export it and colour a held-out line drawing.
# Everything is written under runs/quickstart/. Re-running resumes the training where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${LINECOLOR_DATA:-../shared/data}
STEPS=${STEPS:-300}
OUT=runs/quickstart
bash scripts/setup.sh
mkdir -p "$OUT"
if [ ! -f "$OUT/dicebear/manifest.json" ]; then
  .venv/bin/linecolor prepare dicebear "$DATA/dicebear-adventurer" "$OUT/dicebear" --size 128 --limit 400 --workers 2
fi
.venv/bin/linecolor train "$OUT/run" --data "$OUT/dicebear" --steps "$STEPS" --batch-size 8 --image-size 128 \
  --base-channels 8 -o train.checkpoint_every=100 -o train.warmup_steps=20 -o loss.gan_start_step=100
.venv/bin/linecolor export "$OUT/run" "$OUT/model"
# A held-out avatar (test split) with three colour hints: skin, hair, shirt.
.venv/bin/python - "$DATA" "$OUT" <<'PY'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from linecolor.data.sources import iter_dicebear
data, out = Path(sys.argv[1]), Path(sys.argv[2])
record = next(iter_dicebear(data / "dicebear-adventurer", split="test"))
pair = record.load(256)
Image.fromarray(pair.lines[0]).save(out / "example_line.png")
Image.fromarray(pair.color).save(out / "example_truth.png")
PY
.venv/bin/linecolor colorize "$OUT/example_line.png" --weights "$OUT/model" --out "$OUT/example_colored.png" \
  --points "128,120,#f2c9a0,6;128,40,#6b3e26,6;128,235,#3a6fd8,6"
echo "result: $OUT/example_colored.png (ground truth: $OUT/example_truth.png)"
