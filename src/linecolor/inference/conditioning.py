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
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from linecolor.raster.fill import INK_THRESHOLD, region_fill_colours
from linecolor.raster.resize import resize_float, resize_line

if TYPE_CHECKING:  # torch is imported where a tensor is made: the torch-free graph path never needs it
    import torch

__all__ = ["BINARIZE_THRESHOLD", "Letterbox", "array_to_image", "build_condition", "condition_array", "image_to_tensor",
           "letterbox_geometry", "letterbox_hints", "letterbox_inputs", "letterbox_line", "tensor_to_image"]

BINARIZE_THRESHOLD = INK_THRESHOLD
"""The network sees a line pixel as ink at or below this value (see :data:`linecolor.raster.fill.INK_THRESHOLD`)."""


def condition_array(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray, *,
                    binarize: bool, fill_guide: bool = False,
                    fill: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Line art and hints (uint8/bool arrays, same H×W) → the generator's (5, H, W) float32 input, or (9, H, W)
    with ``fill_guide`` (see the module docstring), as a numpy array (what the torch-free graph runner takes).

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
    mask = np.ascontiguousarray(hint_mask, dtype=np.float32)[None]  # (1, H, W) in {0, 1}
    rgb = (hint_rgb.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)  # (3, H, W) in [-1, 1]
    channels = [(line_f / 127.5 - 1.0)[None], rgb * mask, mask]  # line (1, H, W) in [-1, 1]
    if fill_guide:
        fill, filled = fill if fill is not None else region_fill_colours(line, hint_rgb, hint_mask)
        filled_f = filled.astype(np.float32)[None]  # (1, H, W) in {0, 1}
        fill_f = (fill / 127.5 - 1.0).astype(np.float32).transpose(2, 0, 1)  # (3, H, W) in [-1, 1]
        channels += [fill_f * filled_f, filled_f]
    return np.concatenate(channels, axis=0)  # (5 or 9, H, W)


def build_condition(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray, *,
                    binarize: bool, fill_guide: bool = False,
                    fill: tuple[np.ndarray, np.ndarray] | None = None) -> torch.Tensor:
    """:func:`condition_array` as a torch tensor (for training and the bench; the pipeline keeps numpy arrays)."""
    import torch

    return torch.from_numpy(condition_array(line, hint_rgb, hint_mask, binarize=binarize, fill_guide=fill_guide,
                                            fill=fill))


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) RGB → float32 (3, H, W) in [-1, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray((rgb.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)))


def tensor_to_image(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] → uint8 (H, W, 3), rounded and clipped."""
    import torch

    arr = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return arr.permute(1, 2, 0).cpu().numpy()


def array_to_image(x: np.ndarray) -> np.ndarray:
    """:func:`tensor_to_image` of a numpy (3, H, W) array: the same float32 arithmetic, so the same bytes."""
    arr = np.rint((np.clip(x.astype(np.float32, copy=False), -1, 1) + np.float32(1)) * np.float32(127.5))
    return arr.astype(np.uint8).transpose(1, 2, 0)


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
    """Resize line and hints into ``box.content_size`` and pad (paper white, no hints) to ``box.canvas_size``:
    :func:`letterbox_line` and :func:`letterbox_hints` (apart, so a drawing's letterboxed line is computed once and
    only the hints are resized on each new stroke)."""
    return (letterbox_line(line, box), *letterbox_hints(hint_rgb, hint_mask, box))


def letterbox_line(line: np.ndarray, box: Letterbox) -> np.ndarray:
    """The line art resized into ``box.content_size`` and padded with paper to ``box.canvas_size``: uint8 (H', W').

    The line uses :func:`linecolor.raster.resize.resize_line`, exactly as training crops do: thin lines are widened
    before area-averaging so that the network's binarisation does not erase them at a large down-scale.
    """
    cw, ch = box.content_size
    pw, ph = box.canvas_size
    line_p = np.full((ph, pw), 255, np.uint8)
    line_p[:ch, :cw] = line if (line.shape[1], line.shape[0]) == (cw, ch) else resize_line(line, ch, cw)
    return line_p


def letterbox_hints(hint_rgb: np.ndarray, hint_mask: np.ndarray, box: Letterbox) -> tuple[np.ndarray, np.ndarray]:
    """The hints resized into ``box.content_size`` and padded (no hints) to ``box.canvas_size``: ``(rgb uint8
    (H', W', 3), mask bool (H', W'))``.

    Hints are resized by area-averaging ``rgb·mask`` and ``mask``, so a one-pixel dot survives a large
    down-scale as a hint pixel with its true colour (nearest-neighbour would drop it or shift its colour).
    """
    cw, ch = box.content_size
    pw, ph = box.canvas_size
    if (hint_mask.shape[1], hint_mask.shape[0]) == (cw, ch):
        rgb_r, mask_r = hint_rgb, hint_mask
    else:
        mask_f = hint_mask.astype(np.float32)
        resample = Image.Resampling.BOX if cw < hint_mask.shape[1] else Image.Resampling.NEAREST
        mask_r_f = resize_float(mask_f, (cw, ch), resample)
        # One channel at a time: a float32 copy of a 4096² RGB layer would be 200 MB.
        weighted_r = np.stack([resize_float(hint_rgb[..., c].astype(np.float32) * mask_f, (cw, ch), resample)
                               for c in range(3)], axis=-1)
        mask_r = mask_r_f > 1e-6
        rgb_r = np.zeros((ch, cw, 3), np.uint8)
        rgb_r[mask_r] = np.clip(weighted_r[mask_r] / mask_r_f[mask_r][:, None] + 0.5, 0, 255).astype(np.uint8)
    rgb_p = np.zeros((ph, pw, 3), np.uint8)
    mask_p = np.zeros((ph, pw), bool)
    rgb_p[:ch, :cw], mask_p[:ch, :cw] = rgb_r, mask_r
    return rgb_p, mask_p
