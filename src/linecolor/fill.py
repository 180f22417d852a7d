"""Region fill of hints: the paint-bucket propagation, used as a baseline and as the generator's colour guide.

Every 4-connected region of paper pixels (line value ≥ :data:`INK_THRESHOLD`) takes the mean colour of the hint
pixels inside it. It is what Krita's colorize mask or a paint bucket gives a user, and it is exact on flat-colour
art; the learned generator (with ``GeneratorConfig.fill_guide``) receives it as extra input channels and predicts
a correction on top of it (:mod:`linecolor.models.generator`), so it starts from the classical answer and learns
what that answer misses: colours of unhinted regions, shading, leaks through gaps in the lines.

Arrays follow :mod:`linecolor.preprocess`: ``line`` uint8 (H, W) 255 paper / 0 ink, ``hint_rgb`` uint8
(H, W, 3), ``hint_mask`` bool (H, W).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["INK_THRESHOLD", "region_fill_colours"]

INK_THRESHOLD = 128
"""A pixel is ink when its line value is below this (the same threshold as the network's binarisation)."""


def region_fill_colours(line: np.ndarray, hint_rgb: np.ndarray,
                        hint_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean hint colour of every paper region.

    Hint pixels on ink belong to no region and are ignored; a region holding hints of several colours gets their
    pixel-weighted mean.

    Returns:
        ``colour`` float64 (H, W, 3) in [0, 255] (255 = white where ``filled`` is False, ink included) and
        ``filled`` bool (H, W): True for paper pixels of a region that holds at least one hint.
    """
    h, w = line.shape
    paper = line >= INK_THRESHOLD
    labels, n = ndimage.label(paper)  # default structure = 4-connectivity; label 0 = ink
    hinted = hint_mask & paper
    if n == 0 or not hinted.any():
        return np.full((h, w, 3), 255.0), np.zeros((h, w), bool)
    lab = labels[hinted]
    counts = np.bincount(lab, minlength=n + 1).astype(np.float64)
    sums = np.stack([np.bincount(lab, weights=hint_rgb[..., c][hinted].astype(np.float64), minlength=n + 1)
                     for c in range(3)], axis=1)  # (n+1, 3)
    has = counts > 0
    has[0] = False  # ink
    table = np.full((n + 1, 3), 255.0)
    table[has] = sums[has] / counts[has, None]
    return table[labels], has[labels]
