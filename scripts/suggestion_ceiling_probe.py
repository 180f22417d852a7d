"""Probe for issue 14's first target: how far could better choices between colours the pipeline already has go?

Research tooling, not part of the product (nothing in ``src/`` uses it). It colours drawings of a split with a
model's default output at 512², with the hint draws of ``linecolor evaluate --learned`` (0, 2 and 5 hints, seeded
as it seeds them), and scores each unhinted true region's pixels as the evaluation does (ΔE00 below 15 to the
region's true colour, area-weighted, per drawing, then averaged over the drawings). Next to the model and white it
reports three oracles, each taking per region whichever is right of:

* ``or white`` — the model's colour or white (a perfect "colour it or leave it" decision);
* ``or a hint`` — the model's colour or the colour of any hinted region (the hint slots' reach,
  ``linecolor.inference.region_head.HINT_SLOTS``);
* ``or both``.

and ``hint only``: the share of unhinted area whose true colour is within 15 of some hint's. Oracles are upper
bounds, not models: they know the truth.

    python scripts/suggestion_ceiling_probe.py --split val --limit 24
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

from linecolor.data.sources import iter_source
from linecolor.evaluation.learned import HINT_COUNTS, _hint_image
from linecolor.evaluation.protocol import item_key
from linecolor.evaluation.regions import RIGHT_DELTA_E, place_hints, true_regions
from linecolor.evaluation.run import DATA_FILES
from linecolor.inference.pipeline import ColorizationPipeline

SOURCES = ("openmoji", "dicebear", "fluent", "bigheads", "toonhead")
COLUMNS = ("model", "white", "or white", "or a hint", "or both", "hint only")


def lab(rgb) -> np.ndarray:
    return rgb2lab(np.asarray(rgb, float).reshape(1, -1, 3) / 255.0)[0]


def drawing_shares(pipe: ColorizationPipeline, line: np.ndarray, colour: np.ndarray, key, seed: int
                   ) -> dict[int, np.ndarray]:
    """Per hint count K: the :data:`COLUMNS` shares of one drawing's unhinted scored pixels (absent when every
    scored region is hinted)."""
    truth = true_regions(line, colour)
    labels, scored = truth.labels, truth.scored_pixels
    n1 = len(truth.colours)
    true_lab = lab(truth.colours)
    white_right = deltaE_ciede2000(true_lab, np.broadcast_to(lab([255, 255, 255])[0], true_lab.shape)) < RIGHT_DELTA_E
    area = np.bincount(labels[scored], minlength=n1).astype(float)
    shares = {}
    for index, k in enumerate(HINT_COUNTS):
        rgb, mask, hinted = place_hints(truth, np.random.default_rng([seed, key, 10 + index]), count=k)
        out = np.asarray(pipe(Image.fromarray(line, "L"), _hint_image(rgb, mask)).convert("RGB"))
        right = deltaE_ciede2000(lab(out[scored]), true_lab[labels[scored]]) < RIGHT_DELTA_E
        model = np.bincount(labels[scored], weights=right, minlength=n1)
        hint_right = np.zeros(n1, bool)
        for h in np.flatnonzero(hinted):
            hint_right |= deltaE_ciede2000(true_lab, np.broadcast_to(true_lab[h], true_lab.shape)) < RIGHT_DELTA_E
        unhinted = ~hinted & (area > 0)
        unhinted[0] = False
        total = area[unhinted].sum()
        if total == 0:
            continue
        white, hint = area * white_right, area * hint_right
        columns = (model, white, np.maximum(model, white), np.maximum(model, hint),
                   np.maximum.reduce([model, white, hint]), hint)
        shares[k] = np.array([c[unhinted].sum() / total for c in columns])
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="src/linecolor/weights/default")
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--limit", type=int, default=24, help="drawings per source, evenly spread")
    parser.add_argument("--seed", type=int, default=0, help="the evaluation's seed (its hint draws)")
    args = parser.parse_args()
    pipe = ColorizationPipeline.from_pretrained(args.weights)
    rows: dict[tuple[str, int], list[np.ndarray]] = {}
    for source in SOURCES:
        records = list(iter_source(source, args.data_root / DATA_FILES[source], args.split))
        if len(records) > args.limit:
            records = [records[i] for i in np.linspace(0, len(records) - 1, args.limit).round().astype(int)]
        for record in records:
            pair = record.load(512, extra_xdog=False)
            shares = drawing_shares(pipe, pair.lines[0], pair.color, item_key(source, record.name), args.seed)
            for k, values in shares.items():
                rows.setdefault((source, k), []).append(values)
        print(f"{source}: {len(records)} drawings", file=sys.stderr)
    print("| source | K | n | " + " | ".join(COLUMNS) + " |")
    print("|---|---:|---:|" + "---:|" * len(COLUMNS))
    for k in HINT_COUNTS:
        every = []
        for source in SOURCES:
            values = np.array(rows.get((source, k), np.zeros((0, len(COLUMNS)))))
            every += list(values)
            if len(values):
                print(f"| {source} | {k} | {len(values)} | " + " | ".join(f"{100 * v:.1f}" for v in values.mean(0))
                      + " |")
        mean = 100 * np.mean(every, axis=0)
        print(f"| combined | {k} | {len(every)} | " + " | ".join(f"{v:.1f}" for v in mean) + " |")


if __name__ == "__main__":
    main()
