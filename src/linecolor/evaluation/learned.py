"""Does the learned part show? Issue 14's yardsticks for a model's suggestions, variations, reference mode and shading.

On a split of the data sources (validation to choose, test to report), with the true regions of the clean line art
(:func:`linecolor.evaluation.regions.true_regions`) and one hint dot per hinted region in its true colour
(:func:`linecolor.evaluation.regions.place_hints`), per image:

* ``unhinted_accuracy_k{K}`` / ``white_accuracy_k{K}`` for K in :data:`HINT_COUNTS`: the share of unhinted-region
  pixels whose colour is right (CIEDE2000 below :data:`linecolor.evaluation.regions.RIGHT_DELTA_E` to the region's
  true colour) in the model's default output, and in the line art alone (regions left white). Target: the model
  at least 10 points above white.
* ``seed_delta_e`` / ``shift_delta_e``: with :data:`VARIATION_HINTS` hints, the mean CIEDE2000 over unhinted paper
  between two stochastic seeds (:data:`VARIATION_SEEDS`), and between latent shift −:data:`LATENT_SHIFT` and
  +:data:`LATENT_SHIFT` (deterministic mode). Target: at least 10 (an eye notices about 2.3).
  ``hinted_delta_e``: the mean CIEDE2000 of hinted-region pixels to their hint's colour, worst of those four
  outputs (target: at most 3 — variations must not move what the user chose).
* ``reference_pull``: how far the reference mode moves unhinted colours towards a reference's palette. The
  reference is the colour image of the next drawing of the same source in the split (a real palette, not this
  drawing's); its palette is its colours covering at least :data:`PALETTE_MIN_SHARE` of it outside its inked
  outlines (since output version 17; before, a drawing's black lines were one of its colours). The mean, over
  unhinted paper, of the CIEDE2000 to the nearest palette colour, deterministic output minus reference-mode output:
  positive when the reference pulls the palette its way.
* ``shading_gain_db``: PSNR of the ``network`` (shaded) composite minus PSNR of the flat ``regions`` composite,
  both against the true colour image, with :data:`SHADING_HINTS` hints; ``flat_mse`` / ``shaded_mse``: their mean
  squared errors. The report's shading column is the *pooled* gain, 10 · log10(Σ flat MSE / Σ shaded MSE) over the
  drawings: a mean of per-drawing dB differences is ruled by drawings whose flats are nearly exact (every region
  hinted or picked in its exact colour: PSNR near the 100 dB cap), where shading a few pixels by one level costs
  tens of dB that nobody can see. ``truth_shading_mse``: the squared error of the same flats shaded by the *true*
  image's own shading at full strength (:func:`truly_shaded`: each clean paper pixel's colour over its true region's
  median): the report's "truth's shading" column, what a model that learnt the data's shading exactly would gain
  on these flats. It is the yardstick's reach, not a bound on every
  output: ink pixels and areas where the colour image's shapes differ from the line art (Fluent's 3D renders against
  its flat-style outlines) stay wrong whatever the shading, and on a wrong flat colour the true shading can cost.
  ``halo`` / ``halo_truth``: the share of
  paper pixels :data:`HALO_RING_PX` from a line that are darker (luma) than their region's median by more than
  :data:`HALO_LEVELS` levels, in the shaded output and in the true colour image (a shaded target has some; dark
  rims beyond that are the halos users see).

Every draw is seeded from ``(seed, image)``, so a run repeats exactly.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import deltaE_ciede2000, rgb2lab

from linecolor.evaluation.metrics import psnr
from linecolor.evaluation.regions import (
    INK_LEVEL,
    PAPER_LEVEL,
    TrueRegions,
    place_hints,
    region_metrics,
    true_regions,
)
from linecolor.limits import SHADING_OFFSET
from linecolor.raster.lines import drawn_outlines
from linecolor.raster.palette import outline_radius

__all__ = ["HINT_COUNTS", "LEARNED_METRICS", "learned_metrics", "run_learned_evaluation"]

HINT_COUNTS = (0, 2, 5)
"""Hints per drawing at which unhinted-region accuracy is measured (the issue's 0, 2 and 5)."""
VARIATION_HINTS = 2
"""Hints per drawing while measuring variation and the reference mode: most of the drawing is the model's."""
SHADING_HINTS = 5
VARIATION_SEEDS = (1, 2)
LATENT_SHIFT = 2.0
PALETTE_MIN_SHARE = 0.005
"""A reference's palette: its colours (exact RGB; the sources are flat vector art) covering at least this share."""
HALO_RING_PX = (2, 3)
"""Halos are looked for this many pixels from a line (the pixel next to it is left out: the true colour images
anti-alias their own outlines there, a little off the line art's)."""
HALO_LEVELS = 8

LEARNED_METRICS = (*(f"{kind}_accuracy_k{k}" for k in HINT_COUNTS for kind in ("unhinted", "white")),
                   "seed_delta_e", "shift_delta_e", "hinted_delta_e", "reference_pull", "shading_gain_db", "flat_mse", "shaded_mse", "truth_shading_mse",
                   "halo", "halo_truth")


def _hint_image(rgb: np.ndarray, mask: np.ndarray) -> Image.Image:
    return Image.fromarray(np.dstack([rgb, np.where(mask, 255, 0).astype(np.uint8)]), "RGBA")


def _lab(image: np.ndarray) -> np.ndarray:
    return rgb2lab(image.astype(np.float64) / 255.0)


def _mean_delta_e(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    """Mean CIEDE2000 between RGB images ``a`` and ``b`` over ``where`` (NaN where it is empty)."""
    if not where.any():
        return math.nan
    return float(deltaE_ciede2000(_lab(a[where][None]), _lab(b[where][None])).mean())


def _distinct_colours(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct colours of uint8 (N, 3) ``pixels``: ``(rgb (U, 3), each pixel's index into it, counts (U,))``.
    Outputs and the sources' colour images are mostly flat, so colour science runs per distinct colour."""
    wide = pixels.astype(np.int64)
    packed, inverse, counts = np.unique((wide[:, 0] << 16) | (wide[:, 1] << 8) | wide[:, 2], return_inverse=True,
                                        return_counts=True)
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1), inverse.ravel(), counts


def _palette_distance(image: np.ndarray, where: np.ndarray, palette_lab: np.ndarray) -> float:
    """Mean over ``where`` of the CIEDE2000 from each pixel to the nearest palette colour."""
    if not where.any() or not len(palette_lab):
        return math.nan
    rgb, inverse, _ = _distinct_colours(image[where])
    lab = _lab(rgb[None])[0]
    nearest = np.min([deltaE_ciede2000(lab, np.broadcast_to(p, lab.shape)) for p in palette_lab], axis=0)
    return float(nearest[inverse].mean())


def reference_palette(colour: np.ndarray) -> np.ndarray:
    """float64 (P, 3) Lab colours of ``colour`` (uint8 RGB) that cover at least :data:`PALETTE_MIN_SHARE` of it
    outside its inked outlines (:func:`~linecolor.raster.lines.drawn_outlines`, the disk scaled from the
    thumbnail reference mode reads to this picture's size): a drawing's black lines are not its palette."""
    rgb, _, counts = _distinct_colours(colour[~drawn_outlines(colour, outline_radius(max(colour.shape[:2])))])
    kept = rgb[counts >= PALETTE_MIN_SHARE * counts.sum()]
    return _lab(kept[None])[0] if len(kept) else np.zeros((0, 3))


def _halo_share(image: np.ndarray, line: np.ndarray, truth: TrueRegions) -> float:
    """Share of scored paper pixels :data:`HALO_RING_PX` from ink darker than their region's median luma by more
    than :data:`HALO_LEVELS` levels."""
    ink = line < INK_LEVEL
    near, far = HALO_RING_PX
    ring = (ndimage.binary_dilation(ink, iterations=far) & ~ndimage.binary_dilation(ink, iterations=near - 1)
            & truth.scored_pixels)
    if not ring.any():
        return math.nan
    luma = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    labels = truth.labels
    inside = truth.scored_pixels
    medians = np.zeros(len(truth.areas))
    regions = np.unique(labels[inside])
    medians[regions] = ndimage.median(luma, labels * inside, regions)
    return float((luma[ring] < medians[labels[ring]] - HALO_LEVELS).mean())


def truly_shaded(flat: np.ndarray, colour: np.ndarray, line: np.ndarray, truth: TrueRegions) -> np.ndarray:
    """float64 (H, W, 3): ``flat`` (uint8 RGB, lines already multiplied on) shaded by the true ``colour`` image's
    own shading at full strength — on clean paper (``line`` at least :data:`PAPER_LEVEL`, inside a region), times
    each pixel's colour over its true region's median, both offset by :data:`~linecolor.limits.SHADING_OFFSET`
    (the ratio form of :func:`linecolor.inference.composite.shading_ratio`, without its clip, smoothing and
    strength), clipped to 0…255. Ink and the anti-aliased rims of the lines are left as they are: the flat output
    has drawn the line there already, and shading them too would darken them twice."""
    out = flat.astype(np.float64)
    paper = (line >= PAPER_LEVEL) & (truth.labels > 0)
    ratio = (colour[paper] + SHADING_OFFSET) / (truth.colours[truth.labels[paper]] + SHADING_OFFSET)
    out[paper] = np.clip((out[paper] + SHADING_OFFSET) * ratio - SHADING_OFFSET, 0.0, 255.0)
    return out


def learned_metrics(pipe, line: np.ndarray, colour: np.ndarray, reference: np.ndarray | None,
                    rng_for: Callable[[int], np.random.Generator]) -> dict[str, float]:
    """Issue 14's metrics (the module docstring) of ``pipe`` (a :class:`linecolor.ColorizationPipeline`) on one
    drawing: clean ``line`` uint8 (H, W), its true ``colour`` uint8 (H, W, 3), a ``reference`` colour image (or
    None: no reference metric). ``rng_for(k)`` gives the seeded generator of the k-th hint draw."""
    truth = true_regions(line, colour)
    line_image = Image.fromarray(line, "L")
    white = np.repeat(line[..., None], 3, axis=2)
    result: dict[str, float] = {}

    def draw(k: int, count: int):
        return place_hints(truth, rng_for(k), count=count)

    def run(hints, **options) -> np.ndarray:
        return np.asarray(pipe(line_image, _hint_image(*hints[:2]), **options).convert("RGB"))

    for index, k in enumerate(HINT_COUNTS):
        hints = draw(index, k)
        metrics = region_metrics(run(hints), truth, hints[2])
        result[f"unhinted_accuracy_k{k}"] = metrics["unhinted_accuracy"]
        result[f"white_accuracy_k{k}"] = region_metrics(white, truth, hints[2])["unhinted_accuracy"]

    hints = draw(len(HINT_COUNTS), VARIATION_HINTS)
    rgb, mask, hinted = hints
    unhinted = truth.scored_pixels & ~hinted[truth.labels]
    in_hinted = truth.scored_pixels & hinted[truth.labels]
    target = np.round(truth.colours[truth.labels]).astype(np.uint8)  # each pixel's region colour = its hint's
    seeds = [run(hints, mode="stochastic", seed=s) for s in VARIATION_SEEDS]
    shifts = [run(hints, latent_shift=s) for s in (-LATENT_SHIFT, LATENT_SHIFT)]
    result["seed_delta_e"] = _mean_delta_e(*seeds, unhinted)
    result["shift_delta_e"] = _mean_delta_e(*shifts, unhinted)
    result["hinted_delta_e"] = max((_mean_delta_e(o, target, in_hinted) for o in seeds + shifts), default=math.nan)
    if reference is not None:
        palette = reference_palette(reference)
        plain = run(hints)
        borrowed = run(hints, reference=Image.fromarray(reference, "RGB"), mode="reference")
        result["reference_pull"] = (_palette_distance(plain, unhinted, palette)
                                    - _palette_distance(borrowed, unhinted, palette))
    else:
        result["reference_pull"] = math.nan

    hints = draw(len(HINT_COUNTS) + 1, SHADING_HINTS)
    flat, shaded = run(hints), run(hints, composite="network")
    result["shading_gain_db"] = psnr(shaded, colour) - psnr(flat, colour)
    result["flat_mse"], result["shaded_mse"], result["truth_shading_mse"] = (
        float(np.mean((o.astype(np.float64) - colour) ** 2))
        for o in (flat, shaded, truly_shaded(flat, colour, line, truth)))
    result["halo"] = _halo_share(shaded, line, truth)
    result["halo_truth"] = _halo_share(colour, line, truth)
    return result


def run_learned_evaluation(weights: Mapping[str, str | Path], data_paths: Mapping[str, str | Path],
                           out_dir: str | Path, *, split: str = "test", size: int = 512,
                           limit_per_source: int | None = None, seed: int = 0, progress: bool = True) -> dict:
    """:func:`learned_metrics` of every model on ``split`` of every source (at most ``limit_per_source`` drawings
    each, evenly spread over the split in name order); writes ``learned.csv`` (one row per image × model) and
    ``learned.md`` (means per source and combined, with the issue's targets)."""
    from linecolor.data.sources import iter_source
    from linecolor.evaluation.protocol import item_key
    from linecolor.inference.pipeline import ColorizationPipeline

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for name, path in weights.items():
        pipe = ColorizationPipeline.from_pretrained(path)
        for source, data in data_paths.items():
            records = list(iter_source(source, data, split))
            if limit_per_source is not None and len(records) > limit_per_source:
                # Evenly spread over the split, not its first names (OpenMoji's first hundred are all flags).
                picks = np.linspace(0, len(records) - 1, limit_per_source).round().astype(int)
                records = [records[i] for i in picks]
            pairs = [r.load(size, extra_xdog=False) for r in records]
            for index, (record, pair) in enumerate(zip(records, pairs)):
                key = item_key(source, record.name)
                reference = pairs[(index + 1) % len(pairs)].color if len(pairs) > 1 else None
                metrics = learned_metrics(pipe, pair.lines[0], pair.color, reference,
                                          lambda k, key=key: np.random.default_rng([seed, key, 10 + k]))
                rows.append({"model": name, "source": source, "name": record.name, **metrics})
                if progress:
                    print(f"learned {name} {source} {index + 1}/{len(records)}: {record.name}", file=sys.stderr)
    with open(out / "learned.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["model", "source", "name", *LEARNED_METRICS])
        writer.writeheader()
        writer.writerows(rows)
    (out / "learned.md").write_text(learned_report(rows, list(weights), list(data_paths), split, size),
                                    encoding="utf-8")
    return {"rows": rows, "files": {"csv": out / "learned.csv", "md": out / "learned.md"}}


def _mean(rows: Sequence[Mapping[str, Any]], metric: str) -> float:
    values = [r[metric] for r in rows if not math.isnan(r[metric])]
    return float(np.mean(values)) if values else math.nan


def pooled_shading_gain(rows: Sequence[Mapping[str, Any]], shaded_key: str = "shaded_mse") -> float:
    """10 · log10(Σ flat MSE / Σ shaded MSE) over the ``rows`` that have both (dB; NaN without any, 0 when both
    outputs are exact everywhere, ±inf when one of them is). ``shaded_key="truth_shading_mse"``: the true shading's gain."""
    both = [r for r in rows if math.isfinite(r["flat_mse"]) and math.isfinite(r.get(shaded_key, math.nan))]
    if not both:
        return math.nan
    flat, shaded = (sum(r[k] for r in both) for k in ("flat_mse", shaded_key))
    if flat == 0 and shaded == 0:
        return 0.0
    with np.errstate(divide="ignore"):
        return float(10 * np.log10(np.float64(flat) / np.float64(shaded)))


def learned_report(rows: Sequence[Mapping[str, Any]], models: Sequence[str], sources: Sequence[str], split: str,
                   size: int) -> str:
    """Markdown: per model, the means per source and combined (accuracies in %, ΔE00 and dB as they are)."""
    lines = [f"# Is the learned part visible? ({split} split, {size}²)", "",
             "Unhinted accuracy: % of unhinted-region pixels within ΔE00 15 of the true colour, the model's default "
             "output against the regions left white (target: +10 points at 0, 2 and 5 hints). Seeds / shift: mean "
             "ΔE00 over unhinted paper between two stochastic seeds / latent shift ±2 (target ≥ 10); hinted: mean "
             "ΔE00 of hinted regions to their hints, worst of those outputs (target ≤ 3). Reference pull: ΔE00 to "
             "the reference's palette, plain minus reference mode (positive: moved towards it). Shading: PSNR of the "
             "shaded minus the flat output, pooled over the drawings (10 · log10 of the summed flat over the summed "
             "shaded squared error; target ≥ 1 dB), and in brackets the mean of the drawings' own differences; "
             "truth's shading: the same pooled gain for the flats shaded by the true image's own shading (what "
             "learning the data's shading exactly would gain); halo: % of paper beside lines more than 8 levels "
             "darker than its region (truth: the same in the true colour image).", ""]
    header = ("| model | source | n | " + " | ".join(f"K={k}: model / white" for k in HINT_COUNTS)
              + " | seeds | shift | hinted | reference pull | shading dB | truth's shading dB | halo / truth |")
    lines += [header, "|---|---|---:|" + "---:|" * (len(HINT_COUNTS) + 7)]

    def fmt(value: float, percent: bool = False) -> str:
        return "–" if math.isnan(value) else (f"{100 * value:.1f}" if percent else f"{value:.2f}")

    for model in models:
        for source in list(sources) + ["combined"]:
            picked = [r for r in rows if r["model"] == model and (source == "combined" or r["source"] == source)]
            if not picked:
                continue
            cells = [f"{fmt(_mean(picked, f'unhinted_accuracy_k{k}'), True)} / "
                     f"{fmt(_mean(picked, f'white_accuracy_k{k}'), True)}" for k in HINT_COUNTS]
            cells += [fmt(_mean(picked, m)) for m in ("seed_delta_e", "shift_delta_e", "hinted_delta_e",
                                                      "reference_pull")]
            cells.append(f"{fmt(pooled_shading_gain(picked))} ({fmt(_mean(picked, 'shading_gain_db'))})")
            cells.append(fmt(pooled_shading_gain(picked, "truth_shading_mse")))
            cells.append(f"{fmt(_mean(picked, 'halo'), True)} / {fmt(_mean(picked, 'halo_truth'), True)}")
            lines.append(f"| {model} | {source} | {len(picked)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
