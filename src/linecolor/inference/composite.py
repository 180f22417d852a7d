"""The output composite: the network's working-size colours and the full-resolution regions of the user's line art
become the image the user gets (what decides every output colour).

Arrays follow :mod:`linecolor.inference.conditioning`; colours are float32 (H, W, 3) in [0, 255] until the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from linecolor.inference.conditioning import Letterbox
from linecolor.limits import COMPOSITES, SUGGESTION_STRENGTH
from linecolor.raster.fill import (
    fill_under_ink,
    hint_fill_colours,
    paper_regions,
    region_fill_colours,
)
from linecolor.raster.resize import resize_float

__all__ = ["FillGuide", "postprocess", "regions_colour_layer"]


@dataclass(frozen=True)
class FillGuide:
    """The hint fills at both resolutions, for :func:`postprocess` of a ``fill_guide`` model (float32 colours:
    at the 4096² input cap every full-size colour array is 200 MB)."""

    work_fill: np.ndarray
    """float (H', W', 3) in [0, 255]: the region-mean fill the network saw (letterboxed canvas)."""
    work_filled: np.ndarray
    """bool (H', W'): where the network saw a fill."""
    labels: np.ndarray
    """int (H, W): the full-resolution paper regions (0 = ink), :func:`linecolor.raster.fill.paper_regions`."""
    num_regions: int
    full_fill: np.ndarray
    """float32 (H, W, 3): at full resolution, the hint-faithful fill (:func:`linecolor.raster.fill.hint_fill_colours`)
    for the ``regions`` composite, the region-mean fill for ``network``."""
    full_filled: np.ndarray
    """bool (H, W): paper pixels of regions holding a hint."""
    composite: str = "regions"

    @classmethod
    def from_condition(cls, cond: torch.Tensor, line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray,
                       composite: str = "regions") -> "FillGuide":
        """``cond``: the (9, H', W') network input; the rest: the full-resolution arrays it was made from."""
        if composite not in COMPOSITES:
            raise ValueError(f"composite must be one of {', '.join(COMPOSITES)}, got {composite!r}")
        channels = cond.detach().cpu().numpy()
        labels, n = paper_regions(line)
        if composite == "regions":
            fill, filled = hint_fill_colours(line, hint_rgb, hint_mask, labels=(labels, n), dtype=np.float32)
        else:
            fill, filled = region_fill_colours(line, hint_rgb, hint_mask, labels=(labels, n), dtype=np.float32)
        return cls((channels[5:8].transpose(1, 2, 0) + 1.0) * 127.5, channels[8] > 0.5, labels, n, fill, filled,
                   composite)


def _resize_rgb_float(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack([resize_float(rgb[..., c], size, Image.Resampling.BICUBIC) for c in range(3)], axis=-1)


def _fill_region_means(colours: np.ndarray, labels: np.ndarray, n: int, where: np.ndarray,
                       strength: float = 1.0) -> None:
    """In place: every pixel of ``where`` takes the mean of ``colours`` over its region's ``where`` pixels, moved
    towards white: ``255 + strength · (mean − 255)``."""
    lab = labels[where]
    counts = np.bincount(lab, minlength=n + 1).astype(np.float64)
    sums = np.stack([np.bincount(lab, weights=colours[..., c][where], minlength=n + 1) for c in range(3)],
                    axis=1).astype(np.float64)
    means = 255.0 + strength * (sums / np.maximum(counts, 1.0)[:, None] - 255.0)
    colours[where] = means.astype(colours.dtype)[lab]


def regions_colour_layer(hint_fill: np.ndarray, hinted: np.ndarray, labels: tuple[np.ndarray, int],
                         suggestions: np.ndarray | None = None,
                         suggestion_strength: float = SUGGESTION_STRENGTH) -> np.ndarray:
    """The flat colour layer of the ``regions`` composite, before the line art is multiplied on.

    Args:
        hint_fill: float32 (H, W, 3) in [0, 255], the hint-faithful fill
            (:func:`linecolor.raster.fill.hint_fill_colours`); used where ``hinted``.
        hinted: bool (H, W), the paper pixels of regions holding a hint.
        labels: :func:`linecolor.raster.fill.paper_regions` of the line art (label map, number of regions).
        suggestions: float32 (H, W, 3), the network's colours at full size, or ``None`` (unhinted regions white:
            the composite without a network, the ``hint_fill`` evaluation baseline). Overwritten in place.
        suggestion_strength: how far an unhinted region moves from white towards its mean suggestion.

    Returns:
        float32 (H, W, 3): hinted regions their hint fill, every other paper region one flat colour
        ``255 + strength · (mean suggestion − 255)``, and every ink pixel the colour of its nearest paper pixel
        (:func:`linecolor.raster.fill.fill_under_ink`: the line art multiplied on top then darkens the region's own
        colour beside each line, not a guess of the line's colour). Values may leave [0, 255] where ``suggestions``
        do; the caller clips.
    """
    label_map, n = labels
    if suggestions is None:
        colours = np.full(hint_fill.shape, 255.0, np.float32)
    else:
        colours = suggestions
        _fill_region_means(colours, label_map, n, (label_map > 0) & ~hinted, suggestion_strength)
    colours[hinted] = hint_fill[hinted]
    fill_under_ink(colours, label_map)
    return colours


def postprocess(output: np.ndarray, box: Letterbox, line: np.ndarray | None,
                guide: FillGuide | None = None, composite: str = "regions",
                suggestion_strength: float = SUGGESTION_STRENGTH) -> Image.Image:
    """Crop the network's (H', W', 3) uint8 output to the content, resize to the user's size and, when ``line``
    (uint8 (H, W), the original full-resolution line art) is given, multiply it back on so lines stay crisp.

    With a :class:`FillGuide` (``fill_guide`` models) the full-resolution regions of the user's line art decide
    the colours, in one of two ways (``composite``):

    * ``regions`` (default, :func:`regions_colour_layer`): regions holding hints take the hint-faithful fill and
      every other paper region the mean of the up-scaled network output over it, paled by ``suggestion_strength``
      (:data:`linecolor.limits.SUGGESTION_STRENGTH`): flat, crisp regions whose hinted colours are exactly the
      user's. Why not the network's own colours inside hinted regions: at its working size it blurs across region
      edges (the validation figures are in MODEL_CARD.md).
    * ``network``: the up-scaled output everywhere, sharpened inside hinted regions by the full-resolution fill
      ("detail transfer": ``up(output) + fill − up(output with the work fill pasted into filled pixels)``), so the
      network's shading survives; where the network kept the fill this is exactly the crisp full-size fill.
      ``suggestion_strength`` is not used.

    Without ``line`` (``overlay_lines=False``) a ``regions`` result is its colour layer alone: flats without lines.
    (``network`` does not carry colours under the lines: its up-scaled output is dark next to them too.)
    """
    if composite not in COMPOSITES:
        raise ValueError(f"composite must be one of {', '.join(COMPOSITES)}, got {composite!r}")
    if not (isinstance(suggestion_strength, (int, float)) and 0.0 <= suggestion_strength <= 1.0):
        raise ValueError(f"suggestion_strength must be in [0, 1], got {suggestion_strength!r}")
    if guide is not None and guide.composite != composite:
        raise ValueError(f"the fill guide was made for the {guide.composite!r} composite, not {composite!r}")
    cw, ch = box.content_size
    if guide is None:
        colours = np.asarray(Image.fromarray(output[:ch, :cw]).resize(box.original_size, Image.Resampling.BICUBIC),
                             dtype=np.float32)
    else:
        work = output[:ch, :cw].astype(np.float32)
        colours = _resize_rgb_float(work, box.original_size)  # float32 (H, W, 3)
        filled = guide.full_filled
        if composite == "network":
            pasted = np.where(guide.work_filled[:ch, :cw, None], guide.work_fill[:ch, :cw], work).astype(np.float32)
            correction = guide.full_fill - _resize_rgb_float(pasted, box.original_size)
            colours[filled] += correction[filled]
        else:
            colours = regions_colour_layer(guide.full_fill, filled, (guide.labels, guide.num_regions), colours,
                                           suggestion_strength)
        np.clip(colours, 0.0, 255.0, out=colours)
    if line is not None:
        colours *= line.astype(np.float32)[..., None] / 255.0
    return Image.fromarray(np.clip(colours + 0.5, 0, 255).astype(np.uint8))
