"""Probe for choosing between region heads (issue 14): their unhinted accuracy on a whole validation split, in seconds.

Research tooling, not part of the product (nothing in ``src/`` uses it). ``linecolor evaluate --learned`` renders
every output in full (seeds, latent shift, reference, shading) and takes about 4 minutes for 24 drawings per source;
at that sample, heads 2 points apart cannot be told apart (docs/measurements.md, "Region head experiments not
shipped"). A head changes only which candidate each unhinted region takes, and its inputs do not depend on it, so
this probe colours the drawings once with the network (deterministic, the evaluation's hint draws for 0, 2 and 5
hints: :data:`linecolor.evaluation.learned.HINT_COUNTS`, seeded as it seeds them), keeps what a head reads of
every unhinted region of the pipeline's own analysis (:meth:`ColorizationPipeline.region_inputs`) with the region's
true colour (the colour image's median over its paper), and caches that. Scoring a head is then one forward pass.

A region is right when the head's pick is within ΔE00 15 of its true colour; per drawing the share of unhinted
paper that is right (by the pipeline's regions, not the evaluation's true regions: a proxy, close to the
evaluation's column but not equal to it), then the mean over the drawings, per source and combined (each source weighing
alike, as the evaluation samples as many drawings from each); white is the
same share for regions left white. Heads must have been fitted for the network whose weights collected the cache.

    python scripts/head_choice_probe.py --cache val.npz                      # collect (about 3 min on 2 cores)
    python scripts/head_choice_probe.py --cache val.npz --heads a=DIR b=DIR  # score
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
from linecolor.inference.composite import region_medians
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.inference.region_head import RegionHead
from linecolor.training.region_head import PAPER_LEVEL

SOURCES = ("openmoji", "dicebear", "fluent", "bigheads", "toonhead")
FIELDS = ("features", "medians", "near", "truth", "pixels", "drawing", "source", "hints")


def lab(rgb) -> np.ndarray:
    return rgb2lab(np.asarray(rgb, float).reshape(1, -1, 3) / 255.0)[0]


def collect(pipe: ColorizationPipeline, data_root: Path, split: str, limit: int | None, seed: int) -> dict:
    """Every unhinted region of every drawing at every hint count, one row each (:data:`FIELDS`)."""
    rows: dict[str, list] = {f: [] for f in FIELDS}
    drawing = 0
    for s, source in enumerate(SOURCES):
        records = list(iter_source(source, data_root / DATA_FILES[source], split))
        if limit and len(records) > limit:
            records = [records[i] for i in np.linspace(0, len(records) - 1, limit).round().astype(int)]
        for record in records:
            pair = record.load(512, extra_xdog=False)
            line, colour = pair.lines[0], pair.color
            truth = true_regions(line, colour)
            analysis = pipe.analyse(Image.fromarray(line, "L"))
            labels = analysis.labels.astype(np.int64)
            true_colour, pixels = region_medians(colour, labels, analysis.num_regions + 1,
                                                 (line >= PAPER_LEVEL) & (labels > 0))
            key = item_key(source, record.name)
            for index, k in enumerate(HINT_COUNTS):
                rgb, mask, _ = place_hints(truth, np.random.default_rng([seed, key, 10 + index]), count=k)
                seen = pipe.region_inputs(analysis, _hint_image(rgb, mask))
                keep = np.flatnonzero(~seen.hinted & (pixels > 0))
                keep = keep[keep > 0]
                for field, value in (("features", seen.features[keep]), ("medians", seen.medians[keep]),
                                     ("near", seen.near[keep]), ("truth", true_colour[keep]),
                                     ("pixels", pixels[keep]), ("drawing", np.full(len(keep), drawing)),
                                     ("source", np.full(len(keep), s)), ("hints", np.full(len(keep), k))):
                    rows[field].append(value)
            drawing += 1
        print(f"{source}: {len(records)} drawings", file=sys.stderr, flush=True)
    return {f: np.concatenate(v) for f, v in rows.items()}


def score(head: RegionHead | None, data: dict) -> dict[tuple[str, int], float]:
    """(source or "combined", K) → mean over drawings of the share of unhinted paper whose pick is right (None:
    every region left white)."""
    medians, near = data["medians"].astype(np.float32), data["near"].astype(np.float32)
    picks = (np.full_like(medians, 255.0) if head is None
             else head.choose(data["features"], medians, near))
    right = deltaE_ciede2000(lab(data["truth"]), lab(picks)) < RIGHT_DELTA_E
    first = np.unique(data["drawing"], return_index=True)[1]
    group = data["drawing"] * len(HINT_COUNTS) + np.searchsorted(HINT_COUNTS, data["hints"])
    total = np.bincount(group, weights=data["pixels"])
    good = np.bincount(group, weights=data["pixels"] * right)
    present = np.flatnonzero(total > 0)
    share = good[present] / total[present]
    source = np.zeros(len(total), int)
    source[group] = data["source"]
    hints = np.asarray(HINT_COUNTS)[present % len(HINT_COUNTS)]
    result = {}
    for k in HINT_COUNTS:
        for s, name in enumerate(SOURCES):
            pick = (hints == k) & (source[present] == s)
            result[name, k] = float(share[pick].mean()) if pick.any() else float("nan")
        # As the evaluation samples the same number of drawings from each source: each drawing weighs 1 / its
        # source's drawings in the split (OpenMoji has three times Fluent's), whichever of them keep unhinted paper.
        weight = 1.0 / np.bincount(data["source"][first], minlength=len(SOURCES))[source[present]]
        result["combined", k] = float(np.average(share[hints == k], weights=weight[hints == k]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help=".npz of collected regions (written if absent)")
    parser.add_argument("--weights", default="src/linecolor/weights/default", help="the network (collecting)")
    parser.add_argument("--heads", nargs="*", default=[], help="NAME=DIR of region_head.safetensors files to score")
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--limit", type=int, default=0, help="drawings per source, evenly spread (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="the evaluation's seed (its hint draws)")
    args = parser.parse_args()
    if args.cache.exists():
        with np.load(args.cache) as f:
            data = {k: f[k] for k in FIELDS}
    else:
        data = collect(ColorizationPipeline.from_pretrained(args.weights), args.data_root, args.split,
                       args.limit or None, args.seed)
        np.savez_compressed(args.cache, **data)
    heads = {"white": None}
    for spec in args.heads:
        name, _, directory = spec.partition("=")
        heads[name] = RegionHead.load(directory)
    results = {name: score(head, data) for name, head in heads.items()}
    drawings = np.bincount(data["source"][np.unique(data["drawing"], return_index=True)[1]],
                           minlength=len(SOURCES))
    print(f"{len(data['truth'])} regions of {drawings.sum()} drawings ({dict(zip(SOURCES, drawings.tolist()))})")
    print("| head | " + " | ".join(f"K={k}" for k in HINT_COUNTS) + " | "
          + " | ".join(f"{s} K={k}" for s in SOURCES for k in HINT_COUNTS) + " |")
    print("|---|" + "---:|" * (len(HINT_COUNTS) * (1 + len(SOURCES))))
    for name, result in results.items():
        print(f"| {name} | " + " | ".join(f"{100 * result['combined', k]:.1f}" for k in HINT_COUNTS) + " | "
              + " | ".join(f"{100 * result[s, k]:.1f}" for s in SOURCES for k in HINT_COUNTS) + " |")


if __name__ == "__main__":
    main()
