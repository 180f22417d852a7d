"""Probe that chose ``linecolor.inference.region_head.REFERENCE_BONUS`` (issue 14, reference mode).

Research tooling, not part of the product (nothing in ``src/`` uses it). For each bonus it colours drawings of a
split in reference mode exactly as ``linecolor evaluate --learned`` does for its "reference pull" column (512², the
evaluation's 2-hint draw, the next drawing of the same source as the reference) and reports per source:

* the pull — mean CIEDE2000 from the unhinted paper to the reference's palette, deterministic output minus
  reference-mode output (the evaluation's metric; higher: reference mode moved the colours towards the reference);
* the same pull towards the reference's colours *with* its inked outlines (the metric before output version 17,
  when the black lines of a coloured drawing counted as one of its colours);
* the unhinted accuracy of the reference-mode output against the drawing's own truth (ΔE00 < 15) — reference mode
  is not meant to reproduce the truth, but a bonus that makes it much less plausible paints over what the head
  knows;
* dark paper: the share of unhinted paper the reference-mode output paints darker than L* 25, minus the share the
  truth has there (what borrowing a reference's outlines as a colour would raise).

    python scripts/reference_bonus_probe.py --split val --limit 24 --bonuses 0,1,2,3,5
    python scripts/reference_bonus_probe.py --split val --limit 24 --bonuses 2 --keep-outlines --no-matching  # v16
    python scripts/reference_bonus_probe.py --split val --limit 24 --bonuses 1.5 --own-reference  # a diagnostic
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.color import rgb2lab

import linecolor.raster.consistency as consistency
import linecolor.raster.lines as lines

import linecolor.inference.region_head as region_head
from linecolor.data.sources import iter_source
from linecolor.evaluation import learned
from linecolor.evaluation.protocol import item_key
from linecolor.evaluation.regions import place_hints, region_metrics, true_regions
from linecolor.evaluation.run import DATA_FILES
from linecolor.inference.pipeline import ColorizationPipeline

SOURCES = ("openmoji", "dicebear", "fluent", "bigheads", "toonhead")
DARK_LIGHTNESS = 25.0
"""Paper darker than this L* counts as dark."""


def _outlined_palette(colour: np.ndarray) -> np.ndarray:
    """The pull's palette before output version 17: every colour covering the share, the outlines' black too."""
    rgb, _, counts = learned._distinct_colours(colour.reshape(-1, 3))
    kept = rgb[counts >= learned.PALETTE_MIN_SHARE * counts.sum()]
    return learned._lab(kept[None])[0]


def _dark_share(image: np.ndarray, where: np.ndarray) -> float:
    return float((rgb2lab(image[where][None])[0, :, 0] < DARK_LIGHTNESS).mean()) if where.any() else np.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=24, help="drawings per source, evenly spread")
    parser.add_argument("--bonuses", default="0,1,2,3,5")
    parser.add_argument("--weights", default="src/linecolor/weights/default")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--keep-outlines", action="store_true",
                        help="reference mode reads a reference's outlines as a colour (output version 16)")
    parser.add_argument("--no-matching", action="store_true",
                        help="reference mode does not carry colours from the reference's matching regions "
                             "(output version 17 and before)")
    parser.add_argument("--own-reference", action="store_true",
                        help="the drawing's own colour image is the reference (how much of its palette comes back)")
    parser.add_argument("--match-iou", type=float, default=None,
                        help="least IoU for a drawing's region to match one of the reference's "
                             "(default linecolor.raster.consistency.MIN_MATCH_IOU)")
    args = parser.parse_args()
    if args.match_iou is not None:  # carry_colours reads it at each call
        consistency.MIN_MATCH_IOU = args.match_iou
    if args.no_matching:
        ColorizationPipeline._reference_pages = staticmethod(lambda reference: ())
    if args.keep_outlines:  # image_colours looks the function up at each call
        lines.drawn_outlines = lambda image, radius=lines.OUTLINE_RADIUS: np.zeros(image.shape[:2], bool)
    bonuses = [float(b) for b in args.bonuses.split(",")]
    pipe = ColorizationPipeline.from_pretrained(args.weights)
    pull = {b: {s: [] for s in SOURCES} for b in bonuses}
    right = {b: {s: [] for s in SOURCES} for b in bonuses}
    pull_outlined = {b: {s: [] for s in SOURCES} for b in bonuses}
    dark = {b: {s: [] for s in SOURCES} for b in bonuses}
    for source in SOURCES:
        records = list(iter_source(source, Path(args.data_root) / DATA_FILES[source], args.split))
        picks = np.linspace(0, len(records) - 1, min(args.limit, len(records))).round().astype(int)
        records = [records[i] for i in picks]
        pairs = [r.load(512, extra_xdog=False) for r in records]
        for index, (record, pair) in enumerate(zip(records, pairs)):
            reference = pairs[index if args.own_reference else (index + 1) % len(pairs)].color
            truth = true_regions(pair.lines[0], pair.color)
            draw = np.random.default_rng([0, item_key(source, record.name), 10 + len(learned.HINT_COUNTS)])
            rgb, mask, hinted = place_hints(truth, draw, count=learned.VARIATION_HINTS)
            unhinted = truth.scored_pixels & ~hinted[truth.labels]
            palette, outlined = learned.reference_palette(reference), _outlined_palette(reference)
            line, hints = Image.fromarray(pair.lines[0], "L"), learned._hint_image(rgb, mask)
            plain = np.asarray(pipe(line, hints).convert("RGB"))
            before = learned._palette_distance(plain, unhinted, palette)
            before_outlined = learned._palette_distance(plain, unhinted, outlined)
            truth_dark = _dark_share(pair.color, unhinted)
            for bonus in bonuses:
                region_head.REFERENCE_BONUS = bonus  # read when the head scores its candidates
                out = np.asarray(pipe(line, hints, reference=Image.fromarray(reference, "RGB"),
                                      mode="reference").convert("RGB"))
                pull[bonus][source].append(before - learned._palette_distance(out, unhinted, palette))
                pull_outlined[bonus][source].append(before_outlined
                                                    - learned._palette_distance(out, unhinted, outlined))
                dark[bonus][source].append(100 * (_dark_share(out, unhinted) - truth_dark))
                right[bonus][source].append(100 * region_metrics(out, truth, hinted)["unhinted_accuracy"])
    tables = (("pull", pull, 2), ("pull with outlines", pull_outlined, 2), ("right vs own truth (%)", right, 1),
              ("dark paper minus truth's (points)", dark, 1))
    print("| bonus | " + " | ".join(f"{name}, combined | " + " | ".join(SOURCES) for name, _, _ in tables) + " |")
    print("|---:|" + "---:|" * (len(tables) * (len(SOURCES) + 1)))
    for bonus in bonuses:
        cells = []
        for _, values, digits in tables:
            row = [np.nanmean([v for s in SOURCES for v in values[bonus][s]])]
            cells += [f"{c:.{digits}f}" for c in row + [np.nanmean(values[bonus][s]) for s in SOURCES]]
        print(f"| {bonus:g} | " + " | ".join(cells) + " |")

if __name__ == "__main__":
    main()
