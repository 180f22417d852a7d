"""Region metrics (after BasicPBC, CVPR 2024) on clean and on gapped line art: does colour stay inside the lines?

The sources are vector drawings, so the true regions come free: the 4-connected paper areas of the *clean* line
art (:func:`true_regions`), each with its true colour (the median of the colour image over it). For each test
image the protocol draws:

* a **gapped copy** of the line art (:func:`cut_gaps`): every outline (a connected stroke long enough to carry
  them) gets :data:`GAPS_PER_OUTLINE` gaps, each erased across the whole stroke over a length of
  :data:`GAP_STROKE_WIDTHS` stroke widths (drawn uniformly; the median stroke width of
  :func:`linecolor.raster.regions.stroke_width`), at positions spread along the stroke — the gaps real line art
  has, of known size;
* **hints** (:func:`place_hints`): one dot of radius :func:`hint_radius` at the deepest point of a region
  (where a user would click), in the region's true colour, in every region (``all``) or in a random half of them
  (``half``). Regions smaller than :data:`MIN_REGION_FRACTION` of the image get no hint and are not scored.

Metrics of an output image (:func:`region_metrics`), on paper pixels of the clean line art (lines and anti-aliased
edges excluded), a pixel *keeps* a colour when CIEDE2000 to it is below :data:`KEEP_DELTA_E`:

* ``hinted_pixel_accuracy``: pixels of hinted regions that keep their region's (= their hint's) colour;
* ``hinted_region_accuracy``: hinted regions of which at least :data:`REGION_MAJORITY` of the pixels keep it;
* ``bleed``: pixels of hinted regions that took *another* hinted region's hint colour (one that is not within
  :data:`KEEP_DELTA_E` of their own);
* ``intrusion``: pixels of unhinted regions that took a hint colour foreign to them (``half`` only: with every
  region hinted there are none);
* ``unhinted_accuracy``: pixels of unhinted regions whose colour is right (CIEDE2000 below :data:`RIGHT_DELTA_E` to
  the region's true colour) — compare with ``line_only``, which leaves them white.

White hints do not count for bleed and intrusion: an uncoloured region is white too, so white tells nothing.

Everything is seeded by ``numpy.random.Generator`` objects passed in; the same seed gives the same gaps and hints.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.morphology import skeletonize

from linecolor.raster.regions import stroke_width

__all__ = ["GAPS_PER_OUTLINE", "GAP_STROKE_WIDTHS", "KEEP_DELTA_E", "MIN_REGION_FRACTION", "TrueRegions",
           "aggregate_regions", "cut_gaps", "hint_radius", "place_hints", "region_metrics", "run_region_evaluation",
           "true_regions"]

INK_LEVEL = 128
"""Ink of the clean line art (the true regions): darker than this."""
PAPER_LEVEL = 250
"""Scored pixels: paper of the clean line art at least this light (anti-aliased line edges are not scored)."""
GAPS_PER_OUTLINE = 6
GAP_STROKE_WIDTHS = (1.0, 3.0)
"""Gap lengths, in stroke widths (uniform in this range), at least :data:`MIN_GAP_PX`."""
MIN_GAP_PX = 3.0
MIN_OUTLINE_GAP_SPACING = 4.0
"""An outline carries gaps only if its centre line is at least GAPS_PER_OUTLINE × this many gap lengths long (so the
gaps do not cut it to crumbs); gaps on it are at least this many gap lengths apart."""
MIN_REGION_FRACTION = 0.0005
"""Regions smaller than this fraction of the image get no hint and are not scored (a user cannot click them)."""
KEEP_DELTA_E = 10.0
REGION_MAJORITY = 0.9
RIGHT_DELTA_E = 15.0
"""An unhinted region's colour is *right* when CIEDE2000 to its true colour is below this (issue 14's yardstick for
suggestions: a guess the user can keep)."""


def hint_radius(size: int) -> int:
    """Radius in pixels of an evaluation hint dot on a ``size``-pixel image (2 px at 256², 4 px at 512²)."""
    return max(1, round(size / 128))


@dataclass
class TrueRegions:
    """The true regions of a clean line drawing and their colours."""

    labels: np.ndarray
    """int32 (H, W): 0 on ink, 1…n the 4-connected paper areas."""
    colours: np.ndarray
    """float64 (n + 1, 3): each region's median colour in the colour image (row 0 unused)."""
    areas: np.ndarray
    """int64 (n + 1,)."""
    scored: np.ndarray
    """bool (n + 1,): regions large enough to be hinted and scored."""
    scored_pixels: np.ndarray
    """bool (H, W): paper pixels that are scored (clean paper, away from anti-aliased edges)."""


def true_regions(line: np.ndarray, color: np.ndarray) -> TrueRegions:
    """True regions of a clean ``line`` (uint8 (H, W)) with colours from ``color`` (uint8 (H, W, 3))."""
    labels, n = ndimage.label(line >= INK_LEVEL)
    labels = labels.astype(np.int32)
    areas = np.bincount(labels.ravel(), minlength=n + 1).astype(np.int64)
    colours = np.full((n + 1, 3), 255.0)
    if n:
        order = np.argsort(labels.ravel(), kind="stable")
        starts = np.searchsorted(labels.ravel()[order], np.arange(n + 2))
        flat = color.reshape(-1, 3)
        for r in range(1, n + 1):
            colours[r] = np.median(flat[order[starts[r]:starts[r + 1]]], axis=0)
    scored = areas >= MIN_REGION_FRACTION * line.size
    scored[0] = False
    return TrueRegions(labels, colours, areas, scored, (line >= PAPER_LEVEL) & scored[labels])


def cut_gaps(line: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A copy of ``line`` with :data:`GAPS_PER_OUTLINE` gaps cut into every outline; returns it and the gap count.

    A gap of length g at a point p of a stroke's centre line erases (sets to paper) every pixel within
    ``max(g / 2, local half stroke width + 1)`` of p, so the stroke is cut through and the opening is at least g.
    """
    ink = line < INK_LEVEL
    out = line.copy()
    if not ink.any():
        return out, 0
    width = stroke_width(ink)
    inside = ndimage.distance_transform_edt(ink)
    skeleton = skeletonize(ink)
    outlines, n = ndimage.label(ink, structure=np.ones((3, 3), bool))
    h, w = line.shape
    yy, xx = np.mgrid[0:h, 0:w]
    count = 0
    sk_y, sk_x = np.nonzero(skeleton)
    sk_outline = outlines[sk_y, sk_x]
    for o in range(1, n + 1):
        pick = np.flatnonzero(sk_outline == o)
        for _ in range(GAPS_PER_OUTLINE):
            if pick.size == 0:
                break
            gap = max(MIN_GAP_PX, rng.uniform(*GAP_STROKE_WIDTHS) * width)
            if pick.size < GAPS_PER_OUTLINE * MIN_OUTLINE_GAP_SPACING * gap / 2:
                break  # too short an outline for six gaps of this size
            i = pick[rng.integers(pick.size)]
            py, px = sk_y[i], sk_x[i]
            radius = max(gap / 2.0, inside[py, px] + 1.0)
            r = int(math.ceil(radius))
            y0, y1, x0, x1 = max(0, py - r), min(h, py + r + 1), max(0, px - r), min(w, px + r + 1)
            disc = (yy[y0:y1, x0:x1] - py) ** 2 + (xx[y0:y1, x0:x1] - px) ** 2 <= radius ** 2
            out[y0:y1, x0:x1][disc] = 255
            count += 1
            # Keep later gaps on this outline away from this one.
            far = (sk_y[pick] - py) ** 2 + (sk_x[pick] - px) ** 2 > (MIN_OUTLINE_GAP_SPACING * gap) ** 2
            pick = pick[far]
    return out, count


def place_hints(truth: TrueRegions, rng: np.random.Generator, fraction: float = 1.0,
                radius: int | None = None, *, count: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One dot per hinted region at its deepest point (the centre of its largest inscribed disc), in its true
    colour. ``fraction``: of the scored regions, this share is hinted (a seeded random choice; at least one);
    ``count``, when given, instead hints exactly that many (0: none; all of them if there are fewer).

    Returns ``(hint_rgb uint8 (H, W, 3), hint_mask bool (H, W), hinted bool (n + 1,))``.
    """
    labels = truth.labels
    h, w = labels.shape
    radius = radius if radius is not None else hint_radius(min(h, w))
    candidates = np.flatnonzero(truth.scored)
    hinted = np.zeros(len(truth.areas), bool)
    if candidates.size:
        k = min(count, candidates.size) if count is not None else max(1, int(round(fraction * candidates.size)))
        hinted[rng.choice(candidates, size=k, replace=False)] = True
    depth = ndimage.distance_transform_edt(labels > 0)
    centres = ndimage.maximum_position(depth, labels, np.flatnonzero(hinted))
    rgb = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), bool)
    yy, xx = np.mgrid[0:h, 0:w]
    for r, (cy, cx) in zip(np.flatnonzero(hinted), centres):
        r_eff = min(radius, max(0, int(depth[cy, cx]) - 1))  # the dot stays inside its region
        dot = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r_eff ** 2) & (labels == r)
        rgb[dot] = np.round(truth.colours[r]).astype(np.uint8)
        mask |= dot
    return rgb, mask, hinted


def region_metrics(output: np.ndarray, truth: TrueRegions, hinted: np.ndarray) -> dict[str, float]:
    """The region metrics of ``output`` (uint8 (H, W, 3)) given the true regions and which were hinted.

    Colour differences are computed once per distinct output colour (outputs are flat, so there are few), not per
    pixel."""
    labels = truth.labels
    scored = truth.scored_pixels
    rgb = output[scored].astype(np.int64)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    distinct, inverse = np.unique(packed, return_inverse=True)
    inverse = inverse.ravel()
    distinct_rgb = np.stack([(distinct >> 16) & 255, (distinct >> 8) & 255, distinct & 255], axis=1)
    lab_out = rgb2lab(distinct_rgb[None].astype(np.float64) / 255.0)[0]  # (U, 3)
    pixel_region = labels[scored]
    lab_true = rgb2lab(truth.colours[None] / 255.0)[0]  # (n + 1, 3)
    pairs, pair_index = np.unique(inverse * len(lab_true) + pixel_region, return_inverse=True)
    pair_keep = deltaE_ciede2000(lab_out[pairs // len(lab_true)], lab_true[pairs % len(lab_true)]) < KEEP_DELTA_E
    own = pair_keep[pair_index.ravel()]
    hint_regions = np.flatnonzero(hinted)
    # For every scored pixel: does it keep some hint colour that is foreign to its own region? White hints are left
    # out: white is also what an uncoloured region shows, so it cannot tell a leak from no colour at all.
    white = rgb2lab(np.ones((1, 1, 3)))[0, 0]
    paper_like = deltaE_ciede2000(lab_true[hint_regions], np.broadcast_to(white, (hint_regions.size, 3))) < KEEP_DELTA_E
    foreign = np.zeros(pixel_region.shape, bool)
    for r in hint_regions[~paper_like]:
        c = lab_true[r]
        near = deltaE_ciede2000(lab_out, np.broadcast_to(c, lab_out.shape)) < KEEP_DELTA_E  # (U,)
        not_own = deltaE_ciede2000(lab_true, np.broadcast_to(c, lab_true.shape)) >= KEEP_DELTA_E  # (n + 1,)
        foreign |= near[inverse] & not_own[pixel_region] & (pixel_region != r)
    in_hinted = hinted[pixel_region]
    result = {"hinted_regions": int(hinted.sum()), "unhinted_regions": int((truth.scored & ~hinted).sum())}
    result["hinted_pixel_accuracy"] = float(own[in_hinted].mean()) if in_hinted.any() else math.nan
    result["bleed"] = float(foreign[in_hinted].mean()) if in_hinted.any() else math.nan
    result["intrusion"] = float(foreign[~in_hinted].mean()) if (~in_hinted).any() else math.nan
    pair_right = deltaE_ciede2000(lab_out[pairs // len(lab_true)], lab_true[pairs % len(lab_true)]) < RIGHT_DELTA_E
    right = pair_right[pair_index.ravel()]
    result["unhinted_accuracy"] = float(right[~in_hinted].mean()) if (~in_hinted).any() else math.nan
    if hint_regions.size:
        kept = np.bincount(pixel_region[own & in_hinted], minlength=len(hinted))
        total = np.bincount(pixel_region[in_hinted], minlength=len(hinted))
        ok = kept[hint_regions] >= REGION_MAJORITY * np.maximum(total[hint_regions], 1)
        result["hinted_region_accuracy"] = float(ok.mean())
    else:
        result["hinted_region_accuracy"] = math.nan
    return result


# ------------------------------------------------------------------------------------------ the protocol
CONDITIONS = ("clean", "gapped")
SETTINGS = {"all": 1.0, "half": 0.5}
"""Hint settings: every scored region hinted (accuracy, bleed) or a seeded half of them (intrusion)."""
METRICS = ("hinted_pixel_accuracy", "hinted_region_accuracy", "bleed", "intrusion", "unhinted_accuracy", "seconds")
GRID_PER_SOURCE = 2


def run_region_evaluation(methods: Mapping[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]],
                          data_paths: Mapping[str, str | Path], out_dir: str | Path, *, size: int = 512,
                          limit_per_source: int | None = None, seed: int = 0, progress: bool = True,
                          split: str = "test") -> dict[str, Any]:
    """Region metrics of every method on the ``split`` of every source (test to report, val to choose settings), on
    the clean line art and on a gapped copy.

    For each test image (at most ``limit_per_source`` per source, in name order) the gapped copy and the hints
    are drawn from generators seeded by ``(seed, image)``, so every method sees the same gaps and hints. Writes
    ``regions.csv`` (one row per image × method × condition × setting), ``regions.md`` (means per source and
    combined) and ``regions-grid.png`` (gapped examples, half the regions hinted).

    Args:
        methods: name → ``f(line uint8 (H, W), hint_rgb uint8 (H, W, 3), hint_mask bool (H, W)) → uint8 RGB``.
        data_paths: source name → its data (as :func:`linecolor.data.sources.iter_source` reads it).
    """
    from linecolor.data.sources import iter_source
    from linecolor.evaluation.protocol import item_key

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    grid_rows: list[np.ndarray] = []
    for source, path in data_paths.items():
        for index, record in enumerate(iter_source(source, path, split)):
            if limit_per_source is not None and index >= limit_per_source:
                break
            pair = record.load(size, extra_xdog=False)
            line, colour = pair.lines[0], pair.color
            key = item_key(source, record.name)
            truth = true_regions(line, colour)
            gapped, gaps = cut_gaps(line, np.random.default_rng([seed, key, 0]))
            hints = {s: place_hints(truth, np.random.default_rng([seed, key, 1 + k]), fraction)
                     for k, (s, fraction) in enumerate(SETTINGS.items())}
            shown: dict[str, np.ndarray] = {}
            for name, method in methods.items():
                for condition, drawing in (("clean", line), ("gapped", gapped)):
                    for setting, (rgb, mask, hinted) in hints.items():
                        started = time.perf_counter()
                        result = method(drawing, rgb, mask)
                        seconds = time.perf_counter() - started
                        metrics = region_metrics(result, truth, hinted)
                        rows.append({"method": name, "source": source, "name": record.name, "condition": condition,
                                     "setting": setting, "gaps": gaps, **metrics, "seconds": seconds})
                        if condition == "gapped" and setting == "half":
                            shown[name] = result
            if index < GRID_PER_SOURCE:
                rgb, mask, _ = hints["half"]
                preview = np.where(mask[..., None], rgb, np.repeat(gapped[..., None], 3, axis=2))
                grid_rows.append(np.concatenate([preview] + [shown[n] for n in methods], axis=1))
            if progress:
                print(f"regions {source} {index + 1}: {record.name}", file=sys.stderr)
    _write_region_report(rows, list(methods), list(data_paths), out, grid_rows, size, split)
    return {"rows": rows, "files": {"csv": out / "regions.csv", "md": out / "regions.md",
                                    "grid": out / "regions-grid.png"}}


def aggregate_regions(rows: Sequence[Mapping[str, Any]], methods: Sequence[str],
                      sources: Sequence[str]) -> list[dict[str, Any]]:
    """Means of :data:`METRICS` per method × source (and ``combined``: all images) × condition × setting."""
    table = []
    for method in methods:
        for source in list(sources) + ["combined"]:
            for condition in CONDITIONS:
                for setting in SETTINGS:
                    picked = [r for r in rows if r["method"] == method and r["condition"] == condition
                              and r["setting"] == setting and (source == "combined" or r["source"] == source)]
                    entry = {"method": method, "source": source, "condition": condition, "setting": setting,
                             "n": len(picked)}
                    for metric in METRICS:
                        values = [r[metric] for r in picked if not math.isnan(r[metric])]
                        entry[metric] = float(np.mean(values)) if values else math.nan
                    table.append(entry)
    return table


def _write_region_report(rows, methods, sources, out: Path, grid_rows, size: int, split: str) -> None:
    fields = ["method", "source", "name", "condition", "setting", "gaps", "hinted_regions", "unhinted_regions",
              *METRICS]
    with open(out / "regions.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    table = aggregate_regions(rows, methods, sources)

    def cell(method, source, condition, setting, metric):
        entry = next(e for e in table if (e["method"], e["source"], e["condition"], e["setting"])
                     == (method, source, condition, setting))
        value = entry[metric]
        return "–" if math.isnan(value) else (f"{value:.2f}" if metric == "seconds" else f"{100 * value:.1f}")

    lines = [f"# Region metrics at {size}² on the {split} splits", "",
             "Images per source: " + ", ".join(f"{s} {sum(1 for r in rows if r['source'] == s and r['method'] == methods[0] and r['condition'] == 'clean' and r['setting'] == 'all')}" for s in sources) + ".",
             "Accuracy: % of hinted-region pixels that keep their colour (every region hinted); bleed: % of them that "
             "took another hinted region's colour; intrusion: % of unhinted-region pixels that took a hint colour "
             "(half the regions hinted); seconds: mean per image (gapped, every region hinted).", ""]
    for condition in CONDITIONS:
        lines += [f"## {condition} line art", "",
                  "| method | " + " | ".join(f"{s} acc | {s} bleed | {s} intrusion" for s in sources + ["combined"])
                  + " | s/image |",
                  "|---|" + "---:|" * (3 * (len(sources) + 1) + 1)]
        for method in methods:
            cells = []
            for source in sources + ["combined"]:
                cells += [cell(method, source, condition, "all", "hinted_pixel_accuracy"),
                          cell(method, source, condition, "all", "bleed"),
                          cell(method, source, condition, "half", "intrusion")]
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {cell(method, 'combined', condition, 'all', 'seconds')} |")
        lines.append("")
    (out / "regions.md").write_text("\n".join(lines), encoding="utf-8")
    if grid_rows:
        Image.fromarray(np.concatenate(grid_rows, axis=0)).save(out / "regions-grid.png")
