"""The one place where images become network tensors and back — shared by training and inference.

The original demo normalised hints to [0, 1] while its model was trained on [-1, 1]; keeping exactly one
:func:`build_condition` used by both the training dataset and :class:`~linecolor.pipeline.ColorizationPipeline`
(and a test comparing the two) makes that class of bug impossible.

Array conventions (numpy, before the network):
    line       uint8 (H, W): 255 paper, 0 ink.
    hint_rgb   uint8 (H, W, 3): colour of each hint pixel (ignored where the mask is False).
    hint_mask  bool  (H, W): True where the user placed a hint.

Tensor conventions (the network's input, see :mod:`linecolor.models.generator`):
    cond (5, H, W) float32 = [line ∈ [-1, 1] (paper +1, ink −1), hint RGB ∈ [-1, 1] (0 where no hint), mask ∈ {0, 1}]
    and, with ``fill_guide`` (9, H, W): + [region-fill RGB ∈ [-1, 1] (0 where not filled), filled ∈ {0, 1}]
    (:func:`linecolor.fill.region_fill_colours` of the same line and hints).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from linecolor.config import COMPOSITES, SUGGESTION_STRENGTH
from linecolor.data.augment import resize_line
from linecolor.errors import InputImageError, LinecolorError
from linecolor.fill import INK_THRESHOLD, fill_under_ink, hint_fill_colours, paper_regions, region_fill_colours

BINARIZE_THRESHOLD = INK_THRESHOLD
MAX_HINT_RADIUS = 4096
HintPoint = tuple[float, float, str, float]
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


# ------------------------------------------------------------------------------------------ tensors
def build_condition(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray, *,
                    binarize: bool, fill_guide: bool = False) -> torch.Tensor:
    """Line art and hints (uint8/bool arrays, same H×W) → the generator's (5, H, W) float32 input, or (9, H, W)
    with ``fill_guide`` (see the module docstring)."""
    if line.ndim != 2:
        raise ValueError(f"line must be (H, W), got shape {line.shape}")
    h, w = line.shape
    if hint_rgb.shape != (h, w, 3) or hint_mask.shape != (h, w):
        raise ValueError(f"hint arrays must be ({h}, {w}, 3) and ({h}, {w}); "
                         f"got {hint_rgb.shape} and {hint_mask.shape}")
    line_f = line.astype(np.float32)
    if binarize:
        # A pixel at least half dark is ink: resize_line guarantees exactly that much darkness for thin lines.
        line_f = np.where(line_f > BINARIZE_THRESHOLD, 255.0, 0.0).astype(np.float32)
    line_t = torch.from_numpy(line_f / 127.5 - 1.0)[None]  # (1, H, W) in [-1, 1]
    mask = torch.from_numpy(np.ascontiguousarray(hint_mask, dtype=np.float32))[None]  # (1, H, W) in {0, 1}
    rgb = torch.from_numpy(hint_rgb.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)  # (3, H, W) in [-1, 1]
    channels = [line_t, rgb * mask, mask]
    if fill_guide:
        fill, filled = region_fill_colours(line, hint_rgb, hint_mask)
        filled_t = torch.from_numpy(filled.astype(np.float32))[None]  # (1, H, W) in {0, 1}
        fill_t = torch.from_numpy((fill / 127.5 - 1.0).astype(np.float32)).permute(2, 0, 1)  # (3, H, W) in [-1, 1]
        channels += [fill_t * filled_t, filled_t]
    return torch.cat(channels, dim=0)  # (5 or 9, H, W)


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) RGB → float32 (3, H, W) in [-1, 1]."""
    return torch.from_numpy(rgb.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1).contiguous()


def tensor_to_image(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] → uint8 (H, W, 3), rounded and clipped."""
    arr = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return arr.permute(1, 2, 0).cpu().numpy()


# --------------------------------------------------------------------------------------------- hints
def parse_color(value: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` (or ``rrggbb``) → (r, g, b) in 0–255."""
    m = _HEX.match(value.strip()) if isinstance(value, str) else None
    if not m:
        raise LinecolorError(f"colour {value!r} is not of the form #rrggbb")
    v = m.group(1)
    return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)


def parse_points(text: str) -> list[HintPoint]:
    """Parse ``"x,y,#rrggbb[,r];x,y,#rrggbb[,r];…"`` (the CLI's ``--points``) into hint points (radius default 3)."""
    points: list[HintPoint] = []
    for i, item in enumerate(p for p in text.split(";") if p.strip()):
        parts = [s.strip() for s in item.split(",")]
        if len(parts) not in (3, 4):
            raise LinecolorError(f"hint point {i + 1} ({item!r}) is not of the form x,y,#rrggbb[,radius]")
        try:
            x, y = float(parts[0]), float(parts[1])
            r = float(parts[3]) if len(parts) == 4 else 3.0
        except ValueError:
            raise LinecolorError(f"hint point {i + 1} ({item!r}): x, y and radius must be numbers") from None
        parse_color(parts[2])
        points.append((x, y, parts[2], r))
    return points


def hints_from_points(points: Iterable[Sequence], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Draw filled discs for ``(x, y, "#rrggbb", radius)`` points on an image of ``size = (W, H)``."""
    w, h = size
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for i, point in enumerate(points):
        if len(point) not in (3, 4):
            raise LinecolorError(f"hint point {i + 1} must be (x, y, '#rrggbb'[, radius]), got {point!r}")
        x, y, colour = point[0], point[1], point[2]
        radius = point[3] if len(point) == 4 else 3.0
        for name, v in (("x", x), ("y", y), ("radius", radius)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise LinecolorError(f"hint point {i + 1}: {name} must be a finite number, got {v!r}")
        if not (0 <= x < w and 0 <= y < h):
            raise LinecolorError(f"hint point {i + 1} at ({x}, {y}) lies outside the {w}×{h} image")
        if not (0 < radius <= MAX_HINT_RADIUS):
            raise LinecolorError(f"hint point {i + 1}: radius must be in (0, {MAX_HINT_RADIUS}], got {radius}")
        rgb = parse_color(colour)
        draw.ellipse([x - radius + 0.5, y - radius + 0.5, x + radius - 0.5, y + radius - 0.5], fill=rgb + (255,))
        if radius < 1:
            layer.putpixel((int(x), int(y)), rgb + (255,))
    return hints_from_rgba(layer)


def hints_from_rgba(layer: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """An RGBA hint layer (alpha > 0 marks a hint pixel, RGB its colour) → (hint_rgb, hint_mask)."""
    rgba = np.asarray(layer.convert("RGBA"))
    return np.ascontiguousarray(rgba[..., :3]), rgba[..., 3] > 0


# ------------------------------------------------------------------------------------------ geometry
@dataclass(frozen=True)
class Letterbox:
    """Where the content sits in the padded working canvas."""

    original_size: tuple[int, int]
    """(W, H) of the user's image."""
    content_size: tuple[int, int]
    """(w, h) of the resized content inside the canvas."""
    canvas_size: tuple[int, int]
    """(W', H') of the canvas: multiples of the network's down-sampling factor."""


def letterbox_geometry(size: tuple[int, int], working_size: int, multiple: int = 32) -> Letterbox:
    """Scale ``size`` so its long side is ``working_size``; pad each side up to a multiple of ``multiple``."""
    w, h = size
    scale = working_size / max(w, h)
    cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
    pw, ph = math.ceil(cw / multiple) * multiple, math.ceil(ch / multiple) * multiple
    return Letterbox((w, h), (cw, ch), (pw, ph))


def letterbox_inputs(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray,
                     box: Letterbox) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize line and hints into ``box.content_size`` and pad (paper white, no hints) to ``box.canvas_size``.

    The line uses :func:`linecolor.data.augment.resize_line`, exactly as training crops do.

    Hints are resized by area-averaging ``rgb·mask`` and ``mask``, so a one-pixel dot survives a large
    down-scale as a hint pixel with its true colour (nearest-neighbour would drop it or shift its colour).
    """
    cw, ch = box.content_size
    pw, ph = box.canvas_size
    if (line.shape[1], line.shape[0]) == (cw, ch):
        line_r, rgb_r, mask_r = line, hint_rgb, hint_mask
    else:
        # The same line resize as training crops use: thin lines are widened before area-averaging so that the
        # network's binarisation does not erase them at a large down-scale.
        line_r = resize_line(line, ch, cw)
        mask_f = hint_mask.astype(np.float32)
        weighted = hint_rgb.astype(np.float32) * mask_f[..., None]
        resample = Image.Resampling.BOX if cw < line.shape[1] else Image.Resampling.NEAREST
        mask_r_f = _resize_float(mask_f, (cw, ch), resample)
        weighted_r = np.stack([_resize_float(weighted[..., c], (cw, ch), resample) for c in range(3)], axis=-1)
        mask_r = mask_r_f > 1e-6
        rgb_r = np.zeros((ch, cw, 3), np.uint8)
        rgb_r[mask_r] = np.clip(weighted_r[mask_r] / mask_r_f[mask_r][:, None] + 0.5, 0, 255).astype(np.uint8)
    line_p = np.full((ph, pw), 255, np.uint8)
    rgb_p = np.zeros((ph, pw, 3), np.uint8)
    mask_p = np.zeros((ph, pw), bool)
    line_p[:ch, :cw], rgb_p[:ch, :cw], mask_p[:ch, :cw] = line_r, rgb_r, mask_r
    return line_p, rgb_p, mask_p


def _resize_float(channel: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    return np.asarray(Image.fromarray(channel.astype(np.float32)).resize(size, resample))




@dataclass(frozen=True)
class FillGuide:
    """The hint fills at both resolutions, for :func:`postprocess` of a ``fill_guide`` model (float32 colours:
    at the 4096² input cap every full-size colour array is 200 MB)."""

    work_fill: np.ndarray
    """float (H', W', 3) in [0, 255]: the region-mean fill the network saw (letterboxed canvas)."""
    work_filled: np.ndarray
    """bool (H', W'): where the network saw a fill."""
    labels: np.ndarray
    """int (H, W): the full-resolution paper regions (0 = ink), :func:`linecolor.fill.paper_regions`."""
    num_regions: int
    full_fill: np.ndarray
    """float32 (H, W, 3): at full resolution, the hint-faithful fill (:func:`linecolor.fill.hint_fill_colours`)
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
    return np.stack([_resize_float(rgb[..., c], size, Image.Resampling.BICUBIC) for c in range(3)], axis=-1)


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


def postprocess(output: np.ndarray, box: Letterbox, line: np.ndarray | None,
                guide: FillGuide | None = None, composite: str = "regions",
                suggestion_strength: float = SUGGESTION_STRENGTH) -> Image.Image:
    """Crop the network's (H', W', 3) uint8 output to the content, resize to the user's size and, when ``line``
    (uint8 (H, W), the original full-resolution line art) is given, multiply it back on so lines stay crisp.

    With a :class:`FillGuide` (``fill_guide`` models) the full-resolution regions of the user's line art decide
    the colours, in one of two ways (``composite``):

    * ``regions`` (default): regions holding hints take the hint-faithful fill
      (:func:`linecolor.fill.hint_fill_colours`) and every other paper region takes the mean of the up-scaled
      network output over it, paled by ``suggestion_strength`` (:data:`linecolor.config.SUGGESTION_STRENGTH`):
      flat, crisp regions whose hinted colours are exactly the user's. Chosen on the validation split: the
      network's own corrections inside hinted regions cost PSNR at every K there (at 128² it blurs across region
      edges; 0.2–1.0 dB), while its colours for unhinted regions are what lifts the composite above the paint
      bucket (all 428 validation images, stage-3 model: 0.77–2.70 dB at K = 1…50).
    * ``network``: the up-scaled output everywhere, sharpened inside hinted regions by the full-resolution fill
      ("detail transfer": ``up(output) + fill − up(output with the work fill pasted into filled pixels)``), so the
      network's shading survives; where the network kept the fill this is exactly the crisp full-size fill.
      ``suggestion_strength`` is not used.

    In ``regions`` the flat colours then run on under the lines (:func:`linecolor.fill.fill_under_ink`), so the line
    art multiplied on top darkens the colour beside each line, not the network's guess of the line's own colour;
    without ``line`` (``overlay_lines=False``) the result is that colour layer alone, flats without lines. (In
    ``network`` the up-scaled output is dark next to the lines too, so carrying it under them would not help.)
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
            _fill_region_means(colours, guide.labels, guide.num_regions, (guide.labels > 0) & ~filled,
                               suggestion_strength)
            colours[filled] = guide.full_fill[filled]
            fill_under_ink(colours, guide.labels)
        np.clip(colours, 0.0, 255.0, out=colours)
    if line is not None:
        colours *= line.astype(np.float32)[..., None] / 255.0
    return Image.fromarray(np.clip(colours + 0.5, 0, 255).astype(np.uint8))


def check_same_size(line_size: tuple[int, int], other_size: tuple[int, int], what: str) -> None:
    if tuple(line_size) != tuple(other_size):
        raise InputImageError(f"{what} is {other_size[0]}×{other_size[1]} but the line image is "
                              f"{line_size[0]}×{line_size[1]}; they must be the same size")
