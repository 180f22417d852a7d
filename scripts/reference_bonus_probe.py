"""Probe that chose ``linecolor.inference.region_head.REFERENCE_BONUS`` (issue 14, reference mode).

Research tooling, not part of the product (nothing in ``src/`` uses it). For each bonus it colours drawings of a
split in reference mode exactly as ``linecolor evaluate --learned`` does for its "reference pull" column (512², the
evaluation's 2-hint draw, the next drawing of the same source as the reference) and reports per source:

* the pull — mean CIEDE2000 from the unhinted paper to the reference's palette, deterministic output minus
  reference-mode output (the evaluation's metric; higher: reference mode moved the colours towards the reference);
* the unhinted accuracy of the reference-mode output against the drawing's own truth (ΔE00 < 15) — reference mode
  is not meant to reproduce the truth, but a bonus that makes it much less plausible paints over what the head
  knows.

    python scripts/reference_bonus_probe.py --split val --limit 24 --bonuses 0,1,2,3,5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import linecolor.inference.region_head as region_head
from linecolor.data.sources import iter_source
from linecolor.evaluation import learned
from linecolor.evaluation.protocol import item_key
from linecolor.evaluation.regions import place_hints, region_metrics, true_regions
from linecolor.evaluation.run import DATA_FILES
from linecolor.inference.pipeline import ColorizationPipeline

SOURCES = ("openmoji", "dicebear", "fluent", "bigheads", "toonhead")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=24, help="drawings per source, evenly spread")
    parser.add_argument("--bonuses", default="0,1,2,3,5")
    parser.add_argument("--weights", default="src/linecolor/weights/default")
    parser.add_argument("--data-root", default="../shared/data")
    args = parser.parse_args()
    bonuses = [float(b) for b in args.bonuses.split(",")]
    pipe = ColorizationPipeline.from_pretrained(args.weights)
    pull = {b: {s: [] for s in SOURCES} for b in bonuses}
    right = {b: {s: [] for s in SOURCES} for b in bonuses}
    for source in SOURCES:
        records = list(iter_source(source, Path(args.data_root) / DATA_FILES[source], args.split))
        picks = np.linspace(0, len(records) - 1, min(args.limit, len(records))).round().astype(int)
        records = [records[i] for i in picks]
        pairs = [r.load(512, extra_xdog=False) for r in records]
        for index, (record, pair) in enumerate(zip(records, pairs)):
            reference = pairs[(index + 1) % len(pairs)].color
            truth = true_regions(pair.lines[0], pair.color)
            draw = np.random.default_rng([0, item_key(source, record.name), 10 + len(learned.HINT_COUNTS)])
            rgb, mask, hinted = place_hints(truth, draw, count=learned.VARIATION_HINTS)
            unhinted = truth.scored_pixels & ~hinted[truth.labels]
            palette = learned.reference_palette(reference)
            line, hints = Image.fromarray(pair.lines[0], "L"), learned._hint_image(rgb, mask)
            plain = np.asarray(pipe(line, hints).convert("RGB"))
            before = learned._palette_distance(plain, unhinted, palette)
            for bonus in bonuses:
                region_head.REFERENCE_BONUS = bonus  # read when the head scores its candidates
                out = np.asarray(pipe(line, hints, reference=Image.fromarray(reference, "RGB"),
                                      mode="reference").convert("RGB"))
                pull[bonus][source].append(before - learned._palette_distance(out, unhinted, palette))
                right[bonus][source].append(100 * region_metrics(out, truth, hinted)["unhinted_accuracy"])
    print("| bonus | pull, combined | " + " | ".join(SOURCES) + " | right vs own truth (%), combined | "
          + " | ".join(SOURCES) + " |")
    print("|---:|" + "---:|" * (2 * len(SOURCES) + 2))
    for bonus in bonuses:
        cells = [np.nanmean([v for s in SOURCES for v in pull[bonus][s]])] + [np.nanmean(pull[bonus][s]) for s in SOURCES]
        cells += [np.nanmean([v for s in SOURCES for v in right[bonus][s]])] + [np.nanmean(right[bonus][s])
                                                                              for s in SOURCES]
        print(f"| {bonus:g} | " + " | ".join(f"{c:.2f}" if i <= len(SOURCES) else f"{c:.1f}"
                                             for i, c in enumerate(cells)) + " |")


if __name__ == "__main__":
    main()
