"""Hint propagation inside line-bounded regions: the paint-bucket fill and a hint-faithful variant of it.

Regions are the 4-connected components of paper pixels (line value ≥ :data:`INK_THRESHOLD`).

* :func:`region_fill_colours` — every region takes the mean colour of the hint pixels inside it. It is what Krita's
  colorize mask or a paint bucket gives a user (the ``region_fill`` baseline), and it is the colour guide the
  generator sees as input with ``GeneratorConfig.fill_guide`` (:mod:`linecolor.models.generator`).
* :func:`hint_fill_colours` — the same regions, but each pixel takes a *local* blend of the hints in its region:
  a normalised convolution (Gaussian weights around every hint pixel) with the region mean as a prior of weight
  ``prior``. Far from any hint it is the region mean; on and near a hint it is that hint's colour, so two dots of
  different colours in one region both keep their colour (a paint bucket shows their average on both). Both σ and
  the prior are relative to the image, so the same drawing with the same strokes fills the same at any size. The
  pipeline lays it on the hinted regions at full resolution (:mod:`linecolor.inference.composite`).
* :func:`fill_under_ink` — carries a colour layer on under the lines (every ink pixel takes its nearest paper
  pixel's colour), so the multiplied line art's anti-aliased edges darken the region's own colour.

Arrays follow :mod:`linecolor.inference.conditioning`: ``line`` uint8 (H, W) 255 paper / 0 ink, ``hint_rgb`` uint8
(H, W, 3), ``hint_mask`` bool (H, W).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

__all__ = ["HINT_FILL_PRIOR", "HINT_FILL_SIGMA", "INK_THRESHOLD", "fill_under_ink", "hint_fill_colours",
           "paper_regions", "region_fill_colours"]

INK_THRESHOLD = 128
"""A pixel is ink when its line value is below this. The network's input binarisation
(:func:`linecolor.inference.conditioning.build_condition`) also counts a value of exactly 128 as ink, because down-scaled thin
lines are only guaranteed to reach that darkness (:func:`linecolor.raster.resize.resize_line`); the shipped model
was trained that way, so the one-level difference is kept."""

HINT_FILL_SIGMA = 8.0
"""σ of the hint blend in pixels at a 256-pixel short side (scaled with the image: 16 px at 512²)."""
HINT_FILL_PRIOR = 0.02
"""Weight of the region mean, as a *hint coverage*: the Gaussian-weighted fraction of hint pixels around a pixel
(1 inside a large painted area, about 0.06 at the centre of a lone 5×5 dot at 256²). Where the coverage equals
the prior, the nearby hints and the region mean weigh the same. A coverage rather than a sum of weights, so that the
blend is the same at every image size. σ and the prior were chosen on the validation split (docs/measurements.md)."""


def paper_regions(line: np.ndarray) -> tuple[np.ndarray, int]:
    """Label map (int (H, W), 0 = ink, 1..n = regions) and the number of regions n."""
    return ndimage.label(line >= INK_THRESHOLD)  # default structure = 4-connectivity


def _region_means(labels: np.ndarray, n: int, hint_rgb: np.ndarray,
                  hinted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n+1, 3) mean hint colour per label (255 where none) and (n+1,) whether the label holds a hint."""
    lab = labels[hinted]
    counts = np.bincount(lab, minlength=n + 1).astype(np.float64)
    sums = np.stack([np.bincount(lab, weights=hint_rgb[..., c][hinted].astype(np.float64), minlength=n + 1)
                     for c in range(3)], axis=1).astype(np.float64)  # (n+1, 3)
    has = counts > 0
    has[0] = False  # ink
    table = np.full((n + 1, 3), 255.0)
    table[has] = sums[has] / counts[has, None]
    return table, has


def region_fill_colours(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray, *,
                        labels: tuple[np.ndarray, int] | None = None,
                        dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Mean hint colour of every paper region.

    Hint pixels on ink belong to no region and are ignored; a region holding hints of several colours gets their
    pixel-weighted mean. ``labels``: a precomputed :func:`paper_regions` of ``line``.

    Returns:
        ``colour`` (H, W, 3) of ``dtype`` (float64 by default; the pipeline asks for float32 to halve its memory at
        large sizes) in [0, 255] (255 = white where ``filled`` is False, ink included) and ``filled`` bool (H, W):
        True for paper pixels of a region that holds at least one hint.
    """
    found = _hinted_regions(line, hint_rgb, hint_mask, labels)
    if found is None:
        return _blank(line.shape, dtype)
    labels_map, _, _, table, has = found
    return table.astype(dtype)[labels_map], has[labels_map]


def _blank(shape: tuple[int, int], dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """White colours and nothing filled: every fill's answer when no hint lies on paper."""
    return np.full(shape + (3,), 255.0, dtype=dtype), np.zeros(shape, bool)


def _hinted_regions(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray,
                    labels: tuple[np.ndarray, int] | None):
    """``(label map, n, hint pixels on paper, mean-colour table, has-hint table)`` (see :func:`_region_means`), or
    ``None`` when no hint pixel lies on paper."""
    labels_map, n = labels if labels is not None else paper_regions(line)
    hinted = hint_mask & (labels_map > 0)
    if n == 0 or not hinted.any():
        return None
    table, has = _region_means(labels_map, n, hint_rgb, hinted)
    return labels_map, n, hinted, table, has


HINT_FILL_TRUNCATE = 3.0
"""The blend's Gaussian is cut off at this many σ (as ``scipy.ndimage.gaussian_filter``'s ``truncate``)."""
SIGMA_IN_CELLS = 8
"""Above 16 px of σ the blend's sums are taken on cells of ⌊σ / this⌋ pixels (:func:`_hint_sums`)."""


def _hint_sums(hint_rgb: np.ndarray, hints: np.ndarray, s: float) -> np.ndarray:
    """``(Σ_h g(x − h), Σ_h g(x − h) c_h)`` as float32 (H, W, 4) for the hint pixels ``hints`` (bool (H, W)) of
    colours ``hint_rgb`` (H, W, 3), g the unit-sum Gaussian of σ = ``s`` pixels.

    Why not always one ``gaussian_filter`` at full resolution: σ grows with the image (128 px at the 4096² input
    cap) and a direct Gaussian costs O(pixels · σ). The sums are smooth at the scale of σ, so from σ = 16 px on they
    are taken on cells of ``f = ⌊σ / 8⌋`` pixels (σ stays 8 cells): exact per-cell sums, a Gaussian of σ / f on the
    cells, then bilinear resampling to pixel centres (speed and error in docs/measurements.md; below 512² nothing
    changes)."""
    stack = np.empty(hints.shape + (4,), np.float32)
    stack[..., 0] = hints
    stack[..., 1:] = hint_rgb * stack[..., :1]
    f = int(s // SIGMA_IN_CELLS)
    if f < 2:
        return ndimage.gaussian_filter(stack, (s, s, 0), mode="constant", truncate=HINT_FILL_TRUNCATE)
    h, w = hints.shape
    hc, wc = -(-h // f), -(-w // f)
    padded = np.zeros((hc * f, wc * f, 4), np.float32)
    padded[:h, :w] = stack
    cells = padded.reshape(hc, f, wc, f, 4).sum(axis=(1, 3))
    cells = ndimage.gaussian_filter(cells, (s / f, s / f, 0), mode="constant", truncate=HINT_FILL_TRUNCATE)
    cells /= f * f  # a cell's sum spreads over f² pixels
    # Pillow's bilinear up-scaling maps output pixel centres onto cell centres ((x + 0.5) / f − 0.5).
    up = [np.asarray(Image.fromarray(cells[..., c], "F").resize((wc * f, hc * f), Image.Resampling.BILINEAR))
          for c in range(4)]
    return np.stack(up, axis=-1)[:h, :w]


def hint_fill_colours(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray, *,
                      sigma: float = HINT_FILL_SIGMA, prior: float = HINT_FILL_PRIOR,
                      labels: tuple[np.ndarray, int] | None = None,
                      dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Hint-faithful region fill (see the module docstring); same returns as :func:`region_fill_colours`.

    ``colour(x) = (Σ_h g(x − h) c_h + prior · mean) / (Σ_h g(x − h) + prior)`` over the hint pixels h of x's
    region, g the unit-sum Gaussian of σ = ``sigma`` · min(H, W) / 256 (at least 0.5 px; cut off at
    :data:`HINT_FILL_TRUNCATE` σ), so ``Σ_h g(x − h)`` is the local hint coverage in [0, 1] and ``prior`` a coverage
    (:data:`HINT_FILL_PRIOR`). Each region is computed only in the window of its bounding box that lies within the
    Gaussian's reach of its hints (elsewhere the sums are 0 and the colour is the region mean), so the cost follows
    the hinted area, not the number of regions × the image. ``labels``: a precomputed :func:`paper_regions` of
    ``line``; ``dtype``: of the returned colours.
    """
    h, w = line.shape
    found = _hinted_regions(line, hint_rgb, hint_mask, labels)
    if found is None:
        return _blank(line.shape, dtype)
    labels_map, n, hinted, table, has = found
    colour = table.astype(dtype)[labels_map]  # the region mean, or white: the blend's value beyond the hints' reach
    s = max(0.5, sigma * min(h, w) / 256.0)
    reach = int(HINT_FILL_TRUNCATE * s + 0.5) + int(s // SIGMA_IN_CELLS)  # the Gaussian's radius + one cell
    boxes = ndimage.find_objects(labels_map)
    hint_y, hint_x = np.nonzero(hinted)
    hint_label = labels_map[hint_y, hint_x]
    for r in np.flatnonzero(has):
        box = boxes[r - 1]
        ys, xs = hint_y[hint_label == r], hint_x[hint_label == r]
        window = (slice(max(box[0].start, int(ys.min()) - reach), min(box[0].stop, int(ys.max()) + reach + 1)),
                  slice(max(box[1].start, int(xs.min()) - reach), min(box[1].stop, int(xs.max()) + reach + 1)))
        region = labels_map[window] == r
        sums = _hint_sums(hint_rgb[window], hinted[window] & region, s)
        blended = (sums[..., 1:] + prior * table[r].astype(np.float32)) / (sums[..., :1] + prior)
        colour[window][region] = blended[region]
    return colour, has[labels_map]


def fill_under_ink(colours: np.ndarray, labels: np.ndarray) -> None:
    """In place: every ink pixel (label 0 of :func:`paper_regions`) of ``colours`` (H, W, 3) takes the colour of
    its nearest paper pixel (Euclidean distance, ``scipy.ndimage.distance_transform_edt``).

    Why: the line art is multiplied onto the colour layer afterwards, and an anti-aliased line pixel is a blend of
    ink and the colour *beside* it. Under white (the paint bucket) its edge turns grey instead of a darker shade of
    the region's colour; under the network's own colour for the line, which it learnt to be dark, the line is
    darkened twice (its gain on the validation split is in docs/measurements.md). Nothing changes when the image is
    all ink or all paper.
    Cost: the distance transform's int32 index arrays, 8 bytes a pixel (128 MB at the 4096² input cap).
    """
    ink = labels == 0
    if not ink.any() or ink.all():
        return
    nearest_y, nearest_x = ndimage.distance_transform_edt(ink, return_distances=False, return_indices=True)
    colours[ink] = colours[nearest_y[ink], nearest_x[ink]]
