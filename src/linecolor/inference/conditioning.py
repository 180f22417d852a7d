"""The network's input: line art and hints as the generator's conditioning tensor, and the letterbox that puts a
drawing of any size on the network's working canvas. Shared by training and inference, so their tensors cannot
drift apart (the original demo fed hints in [0, 1] to a model trained on [-1, 1]; a test compares the two paths).

Array conventions (numpy, before the network):
    line       uint8 (H, W): 255 paper, 0 ink.
    hint_rgb   uint8 (H, W, 3): colour of each hint pixel (ignored where the mask is False).
    hint_mask  bool  (H, W): True where the user placed a hint.

Tensor conventions (the network's input, see :mod:`linecolor.models.generator`):
    cond (5, H, W) float32 = [line ∈ [-1, 1] (paper +1, ink −1), hint RGB ∈ [-1, 1] (0 where no hint), mask ∈ {0, 1}]
    and, with ``fill_guide`` (9, H, W): + [region-fill RGB ∈ [-1, 1] (0 where not filled), filled ∈ {0, 1}]
    (:func:`linecolor.raster.fill.region_fill_colours` of the same line and hints).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from linecolor.raster.fill import INK_THRESHOLD, region_fill_colours
from linecolor.raster.resize import resize_float, resize_line

__all__ = ["BINARIZE_THRESHOLD", "Letterbox", "build_condition", "image_to_tensor", "letterbox_geometry",
           "letterbox_inputs", "tensor_to_image"]

BINARIZE_THRESHOLD = INK_THRESHOLD
"""The network sees a line pixel as ink at or below this value (see :data:`linecolor.raster.fill.INK_THRESHOLD`)."""


def build_condition(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray, *,
                    binarize: bool, fill_guide: bool = False,
                    fill: tuple[np.ndarray, np.ndarray] | None = None) -> torch.Tensor:
    """Line art and hints (uint8/bool arrays, same H×W) → the generator's (5, H, W) float32 input, or (9, H, W)
    with ``fill_guide`` (see the module docstring).

    ``fill``: with ``fill_guide``, the fill channels' ``(colour uint8 (H, W, 3), filled bool (H, W))`` computed by
    the caller (inference passes the hinted regions of the gap-closed analysis,
    :func:`linecolor.inference.composite.fill_guide`); by default the paint bucket of ``line`` (what training
    sees on its clean line art)."""
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
        fill, filled = fill if fill is not None else region_fill_colours(line, hint_rgb, hint_mask)
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

    The line uses :func:`linecolor.raster.resize.resize_line`, exactly as training crops do.

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
        resample = Image.Resampling.BOX if cw < line.shape[1] else Image.Resampling.NEAREST
        mask_r_f = resize_float(mask_f, (cw, ch), resample)
        # One channel at a time: a float32 copy of a 4096² RGB layer would be 200 MB.
        weighted_r = np.stack([resize_float(hint_rgb[..., c].astype(np.float32) * mask_f, (cw, ch), resample)
                               for c in range(3)], axis=-1)
        mask_r = mask_r_f > 1e-6
        rgb_r = np.zeros((ch, cw, 3), np.uint8)
        rgb_r[mask_r] = np.clip(weighted_r[mask_r] / mask_r_f[mask_r][:, None] + 0.5, 0, 255).astype(np.uint8)
    line_p = np.full((ph, pw), 255, np.uint8)
    rgb_p = np.zeros((ph, pw, 3), np.uint8)
    mask_p = np.zeros((ph, pw), bool)
    line_p[:ch, :cw], rgb_p[:ch, :cw], mask_p[:ch, :cw] = line_r, rgb_r, mask_r
    return line_p, rgb_p, mask_p
