"""Classical colourisation baselines, measured on exactly the same hints as the learned models.

Every baseline is a function ``(line, hint_rgb, hint_mask) -> uint8 (H, W, 3)`` with

* ``line``: uint8 ``(H, W)``, 255 paper, 0 ink (anti-aliased grey allowed);
* ``hint_rgb``: uint8 ``(H, W, 3)``, the hint colour of each hint pixel (ignored outside the mask);
* ``hint_mask``: bool ``(H, W)``, True where a hint pixel is.

All of them end by *multiplying* the line art onto their colour layer (``out = colour · line / 255``), which is
what the learned pipeline does with its full-resolution line too, so differences come from the colour layer only.

* :func:`line_only` — white paper with the line art: the "no colour at all" reference.
* :func:`region_fill` — what a paint bucket / Krita colorize mask / GIMP line-art fill gives a user: every
  4-connected region of non-line pixels takes the mean colour of the hint pixels inside it; regions without hints
  stay white.
* :func:`levin` — colourisation by optimisation (Levin, Lischinski & Weiss, SIGGRAPH 2004), with the affinities of
  the authors' released code (``getColorExact.m``): neighbouring pixels (3×3 window) whose line-art intensities are
  similar must have similar colours; hinted pixels are hard constraints; one sparse linear solve.
* :func:`hint_fill` — not a published method: the composite linecolor shipped before its gap-closing region engine
  (output version 4) without its network: paint-bucket regions, a Gaussian blend of the hints inside each hinted
  region, colour carried on under the lines, unhinted regions white. Kept as "the previous composite".
* :func:`flat_regions` — linecolor's region engine without the network: gap-closed regions
  (:mod:`linecolor.raster.regions`), each hinted region its hints' flat colour
  (:mod:`linecolor.raster.colouring`), unhinted regions white — an ablation showing what the network adds.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from linecolor.errors import InputImageError
from linecolor.raster.colouring import assign_hints, colour_layer
from linecolor.raster.fill import INK_THRESHOLD, fill_under_ink, hint_fill_colours, paper_regions, region_fill_colours
from linecolor.raster.regions import analyse

__all__ = ["BASELINES", "BASELINE_VERSIONS", "LINE_THRESHOLD", "flat_regions", "hint_fill", "levin", "line_only",
           "region_fill"]

LINE_THRESHOLD = INK_THRESHOLD
"""A pixel is ink when its line value is below this (:data:`linecolor.raster.fill.INK_THRESHOLD`, the regions the
model's composite uses)."""

_WHITE = 255.0


def _check(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray) -> tuple[int, int]:
    if not (isinstance(line, np.ndarray) and line.ndim == 2 and line.dtype == np.uint8):
        raise InputImageError(f"line must be a uint8 (H, W) array, got {getattr(line, 'shape', type(line))}")
    h, w = line.shape
    if not (isinstance(hint_rgb, np.ndarray) and hint_rgb.shape == (h, w, 3)):
        raise InputImageError(f"hint_rgb must have shape ({h}, {w}, 3), got {getattr(hint_rgb, 'shape', None)}")
    if not (isinstance(hint_mask, np.ndarray) and hint_mask.shape == (h, w)):
        raise InputImageError(f"hint_mask must have shape ({h}, {w}), got {getattr(hint_mask, 'shape', None)}")
    return h, w


def _multiply_line(colour: np.ndarray, line: np.ndarray) -> np.ndarray:
    """float colour layer (H, W, 3) in [0, 255] × line / 255 → uint8 RGB."""
    out = np.clip(colour, 0.0, 255.0) * (line.astype(np.float64)[..., None] / 255.0)
    return np.rint(out).astype(np.uint8)


# ------------------------------------------------------------------------------------------ line only
def line_only(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray) -> np.ndarray:
    """White paper with the line art (ignores the hints)."""
    _check(line, hint_rgb, hint_mask)
    return np.repeat(line[..., None], 3, axis=2)


# ---------------------------------------------------------------------------------------- region fill
def region_fill(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray) -> np.ndarray:
    """Paint-bucket fill: each 4-connected region of non-ink pixels takes the mean colour of its hint pixels.

    Ink is ``line < LINE_THRESHOLD``. Hint pixels that fall on ink belong to no region and are ignored; a region
    holding hints of several colours gets their pixel-weighted mean; regions without hints stay white. The line
    art is multiplied on at the end (so anti-aliased edges keep their grey).
    """
    _check(line, hint_rgb, hint_mask)
    colour, _ = region_fill_colours(line, hint_rgb, hint_mask)
    return _multiply_line(colour, line)


# --------------------------------------------------------------------------------------------- Levin
_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def levin_affinities(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-normalised 3×3 affinities of Levin et al.'s released code, vectorised.

    For pixel r with neighbours s (inside the image): ``w_rs = exp(-(Y_r - Y_s)^2 / c_r)``, normalised to sum 1,
    where ``c_r = max(0.6 · var(Y over the window incl. r), min_s (Y_r - Y_s)^2 / ln 100, 2e-6)`` — the local
    variance sets the scale (``2σ_r² = 0.6·var``), and the floor keeps the most similar neighbour's weight ≥ 1 %.

    Args:
        y: float (H, W) intensities in [0, 1].

    Returns:
        ``(weights (8, H, W), valid (8, H, W) bool)`` for the 8 neighbour offsets in ``_OFFSETS`` order.
    """
    h, w = y.shape
    padded = np.pad(y, 1, mode="constant", constant_values=np.nan)
    neigh = np.stack([padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in _OFFSETS])  # (8, H, W)
    valid = ~np.isnan(neigh)
    count = valid.sum(axis=0) + 1.0
    filled = np.where(valid, neigh, 0.0)
    mean = (filled.sum(axis=0) + y) / count
    var = ((np.where(valid, neigh - mean, 0.0) ** 2).sum(axis=0) + (y - mean) ** 2) / count
    d2 = np.where(valid, (filled - y) ** 2, np.inf)
    csig = np.maximum(0.6 * var, d2.min(axis=0) / math.log(100.0))
    csig = np.maximum(csig, 2e-6)
    weights = np.where(valid, np.exp(-np.where(valid, d2, 0.0) / csig), 0.0)
    weights /= weights.sum(axis=0)
    return weights, valid


def levin(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray, *, luma_from_line: bool = False,
          regularization: float = 1e-6) -> np.ndarray:
    """Colourisation by optimisation (Levin, Lischinski & Weiss 2004) on line art.

    Every un-hinted pixel's colour is the affinity-weighted mean of its 8 neighbours' colours
    (``x_r - Σ_s w_rs x_s = 0``, :func:`levin_affinities` computed on the line art), hinted pixels are fixed to their
    hint colour. Solved as one sparse system (SuperLU factorisation, one solve per channel); the line art is
    multiplied on at the end.

    The paper works in YUV and keeps the *grey photo's* Y, solving only U and V. A line drawing has no luminance
    to keep (its paper is white, so a dark hint would come out as a pale tint of it), so by default the system is
    solved for all three YUV channels (equivalently RGB: the propagation is linear) — the hints carry their own
    luminance. ``luma_from_line=True`` gives the paper's literal variant: Y = line / 255, U and V propagated.

    Args:
        line, hint_rgb, hint_mask: see the module doc.
        luma_from_line: keep Y from the line art (the literal paper) instead of propagating it.
        regularization: a tiny pull of every un-hinted pixel towards white paper; it keeps the system non-singular
            whatever the affinities (a region no hint can reach stays white) and is negligible elsewhere.

    Returns:
        uint8 ``(H, W, 3)``; :func:`line_only` when there are no hints.
    """
    h, w = _check(line, hint_rgb, hint_mask)
    mask = np.asarray(hint_mask, dtype=bool)
    if not mask.any():
        return line_only(line, hint_rgb, hint_mask)
    y = line.astype(np.float64) / 255.0
    weights, valid = levin_affinities(y)
    n = h * w
    idx = np.arange(n).reshape(h, w)
    free = ~mask
    rows, cols, vals = [idx[free]], [idx[free]], [np.full(int(free.sum()), 1.0 + regularization)]
    rows.append(idx[mask])
    cols.append(idx[mask])
    vals.append(np.ones(int(mask.sum())))
    padded_idx = np.pad(idx, 1, mode="constant", constant_values=-1)
    for k, (dy, dx) in enumerate(_OFFSETS):
        sel = free & valid[k]
        rows.append(idx[sel])
        cols.append(padded_idx[1 + dy:1 + dy + h, 1 + dx:1 + dx + w][sel])
        vals.append(-weights[k][sel])
    a = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))

    # Unknowns are deviations from white paper (so the regulariser pulls towards white).
    rgb = hint_rgb.astype(np.float64) / 255.0
    yuv_hint = _rgb_to_yuv(rgb)
    white = _rgb_to_yuv(np.ones(3))
    channels = [1, 2] if luma_from_line else [0, 1, 2]
    b = np.zeros((n, len(channels)))
    b[idx[mask]] = (yuv_hint[mask] - white)[:, channels]
    # Rows are strictly diagonally dominant (1 + regularization against weights summing to 1), so LU needs no
    # pivoting; symmetric mode with a minimum-degree ordering of A + Aᵀ is the fastest SuperLU setting here
    # (~2 s at 512², ~0.3 s at 256² on one core).
    lu = sparse_linalg.splu(a, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                            options={"SymmetricMode": True})
    solution = lu.solve(b)
    yuv = np.broadcast_to(white, (h, w, 3)).copy()
    yuv[..., channels] += solution.reshape(h, w, len(channels))
    if luma_from_line:
        yuv[..., 0] = y
    colour = _yuv_to_rgb(yuv) * 255.0
    return _multiply_line(colour, line)


# Full-range YUV (BT.601 luma weights), the same matrix as skimage.color.rgb2yuv.
_YUV = np.array([[0.299, 0.587, 0.114],
                 [-0.14714119, -0.28886916, 0.43601035],
                 [0.61497538, -0.51496512, -0.10001026]])
_YUV_INV = np.linalg.inv(_YUV)


def _rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    return rgb @ _YUV.T


def _yuv_to_rgb(yuv: np.ndarray) -> np.ndarray:
    return yuv @ _YUV_INV.T


# ------------------------------------------------------------------------------------------ hint fill
def hint_fill(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray) -> np.ndarray:
    """The previous composite without its network: paint-bucket regions, the hint-faithful blend
    (:func:`linecolor.raster.fill.hint_fill_colours`) in hinted regions, the rest white, colour carried on under
    the lines (:func:`linecolor.raster.fill.fill_under_ink`)."""
    _check(line, hint_rgb, hint_mask)
    labels = paper_regions(line)
    colour, _ = hint_fill_colours(line, hint_rgb, hint_mask, labels=labels, dtype=np.float32)
    fill_under_ink(colour, labels[0])
    return _multiply_line(colour, line)


# --------------------------------------------------------------------------------------- flat regions
def flat_regions(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray) -> np.ndarray:
    """linecolor's region engine alone (see the module docstring): what the pipeline's ``regions`` composite
    gives with a suggestion strength of 0."""
    _check(line, hint_rgb, hint_mask)
    analysis = analyse(line)
    return _multiply_line(colour_layer(analysis, assign_hints(analysis, hint_rgb, hint_mask)).astype(np.float64),
                          line)


BASELINES = {"line_only": line_only, "region_fill": region_fill, "levin": levin, "hint_fill": hint_fill,
             "flat_regions": flat_regions}
"""The baselines :func:`linecolor.evaluation.run_evaluation` measures by default, by name."""
BASELINE_VERSIONS = {"line_only": "1", "region_fill": "1", "levin": "1", "hint_fill": "4", "flat_regions": "6"}
"""Bumped per baseline when its algorithm changes, so the evaluation never reuses rows of the old algorithm
(hint_fill 2: colour under the lines; 3: the size-independent hint blend; 4: float32; flat_regions: bumped with
:data:`linecolor.raster.regions.ANALYSIS_VERSION`, 3: regions divided room by room; 4: analysis version 3; 5:
analysis version 4, small hinted shapes do not flood through gaps; 6: analysis version 5, rooms cut off by closing
strokes to a line's side take the hinted colour across them)."""
