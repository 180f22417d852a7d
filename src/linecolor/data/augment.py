"""Training augmentation of (colour, line art) pairs, driven by :class:`linecolor.config.AugmentConfig`.

Geometry (flip, random resized crop) is applied identically to the colour image and to every line style;
colour jitter (hue/saturation/value) only to the colour image. Hints are sampled *afterwards* from the
jittered colour image (:func:`linecolor.data.hints.simulate_hints`), so target and hints are jittered
identically by construction — nothing here touches hints.

Arrays: colour ``uint8 (H, W, 3)`` RGB in ``[0, 255]``; line art ``uint8 (L, H, W)`` with ``L`` line styles
(extractors) of the same drawing, white paper = 255 and ink = 0. Line-thickness augmentation is done by
the line-processing code, not here.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from skimage.color import hsv2rgb, rgb2hsv

from linecolor.config import AugmentConfig
from linecolor.data.validate import check_color, check_rng
from linecolor.errors import ConfigError, InputImageError
from linecolor.raster.resize import resize_line

__all__ = ["augment_pair", "cut_line_gaps", "fade_line", "hflip", "hsv_jitter", "random_resized_crop"]


def _check_lines(lines: object, color: np.ndarray | None = None) -> np.ndarray:
    if not isinstance(lines, np.ndarray):
        raise InputImageError(f"line art must be a numpy array of shape (L, H, W), got {type(lines).__name__}")
    if lines.ndim != 3 or min(lines.shape) < 1:
        raise InputImageError(f"line art must have shape (L, H, W) with L >= 1 styles, got {lines.shape}")
    if lines.dtype != np.uint8:
        raise InputImageError(f"line art must be uint8 in [0, 255], got dtype {lines.dtype}")
    if color is not None and lines.shape[1:] != color.shape[:2]:
        raise InputImageError(
            f"line art is {lines.shape[1]}×{lines.shape[2]} but the colour image is "
            f"{color.shape[0]}×{color.shape[1]}")
    return lines


def _check_out_size(out_size: object) -> int:
    if isinstance(out_size, bool) or not isinstance(out_size, (int, np.integer)) or out_size < 1:
        raise ConfigError(f"out_size must be a positive integer, got {out_size!r}")
    return int(out_size)


# ------------------------------------------------------------------------------------------- geometry
def hflip(color: np.ndarray, lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror colour and line art left ↔ right.

    Args:
        color: ``uint8 (H, W, 3)``.
        lines: ``uint8 (L, H, W)``.

    Returns:
        New contiguous arrays of the same shapes and dtypes (``hflip(*hflip(c, l)) == (c, l)``).
    """
    color = check_color(color)
    lines = _check_lines(lines, color)
    return np.ascontiguousarray(color[:, ::-1]), np.ascontiguousarray(lines[:, :, ::-1])


def _resize_color(color: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    # Pillow's BILINEAR widens its kernel when down-scaling (proper anti-aliasing) and, unlike LANCZOS, does not
    # ring around the hard edges of flat-coloured illustrations.
    out = Image.fromarray(color).resize((out_w, out_h), resample=Image.Resampling.BILINEAR)  # (H, W, 3) → "RGB"
    return np.asarray(out)


def _draw_crop(h: int, w: int, rng: np.random.Generator, scale_min: float) -> tuple[int, int, int]:
    short = min(h, w)
    side = int(round(rng.uniform(scale_min, 1.0) * short))
    side = min(max(side, 1), short)
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    return top, left, side


def random_resized_crop(color: np.ndarray, lines: np.ndarray, rng: np.random.Generator, out_size: int,
                        scale_min: float) -> tuple[np.ndarray, np.ndarray]:
    """A random square crop resized to ``out_size``, with identical geometry for colour and every line style.

    The crop side is ``round(u · min(H, W))`` with ``u ~ U[scale_min, 1]``; its top-left corner is uniform over
    all positions inside the image. Colour is resized with Pillow's anti-aliased bilinear filter, lines with
    :func:`resize_line` (thin lines stay visible).

    Args:
        color: ``uint8 (H, W, 3)``.
        lines: ``uint8 (L, H, W)``, same ``H, W``.
        rng: the only source of randomness (draws: one uniform, two integers).
        out_size: output side ``S``.
        scale_min: in ``(0, 1]``; 1 keeps the full shorter side (a random square window of non-square images).

    Returns:
        ``(color uint8 (S, S, 3), lines uint8 (L, S, S))``.
    """
    color = check_color(color)
    lines = _check_lines(lines, color)
    rng = check_rng(rng)
    out_size = _check_out_size(out_size)
    if not (isinstance(scale_min, (int, float)) and 0.0 < scale_min <= 1.0):
        raise ConfigError(f"scale_min must be in (0, 1], got {scale_min!r}")
    top, left, side = _draw_crop(color.shape[0], color.shape[1], rng, float(scale_min))
    rows, cols = slice(top, top + side), slice(left, left + side)
    out_color = _resize_color(np.ascontiguousarray(color[rows, cols]), out_size, out_size)
    out_lines = np.stack([resize_line(np.ascontiguousarray(line[rows, cols]), out_size, out_size) for line in lines])
    return out_color, out_lines


# --------------------------------------------------------------------------------------------- colour
def hsv_jitter(color: np.ndarray, rng: np.random.Generator, hue: float, saturation: float,
               value: float) -> np.ndarray:
    """Random hue rotation and saturation/value change of a colour image.

    Draws (in this order) ``dh ~ U[-hue, hue]`` (fraction of the hue circle), ``fs ~ U[1-saturation, 1+saturation]``
    and ``fv ~ U[1-value, 1+value]``; then ``H ← (H + dh) mod 1``, ``S ← clip(S·fs, 0, 1)`` and
    ``V ← V^γ`` with ``γ = log(fv/2) / log(1/2)``. The value change is a gamma curve rather than a plain
    ``V·fv`` so that a mid-grey ``V = 1/2`` is scaled by exactly ``fv`` while paper white (``V = 1``) and black
    (``V = 0``) stay fixed — darkening the white paper would teach the model that paper is grey. Grey pixels
    (``S = 0``) keep ``S = 0`` and so stay grey.

    Uses scikit-image's ``rgb2hsv``/``hsv2rgb`` on float32 input. Pillow's ``convert("HSV")`` round trip is faster
    but quantises H, S and V to 8 bits (errors of up to 7 levels with no jitter at all, and hue steps of 1/256), so
    the exact one is used (timings in docs/measurements.md).

    Args:
        color: ``uint8 (H, W, 3)`` RGB.
        rng: the only source of randomness (always three draws, even for zero jitter).
        hue, saturation, value: jitter amplitudes in ``[0, 1]``.

    Returns:
        A new ``uint8 (H, W, 3)`` array. With all amplitudes 0 it equals ``color`` up to float rounding (±1 level).
    """
    color = check_color(color)
    rng = check_rng(rng)
    for name, v in (("hue", hue), ("saturation", saturation), ("value", value)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            raise ConfigError(f"{name} jitter must be a number in [0, 1], got {v!r}")
    dh = rng.uniform(-hue, hue)
    fs = rng.uniform(1.0 - saturation, 1.0 + saturation)
    fv = rng.uniform(1.0 - value, 1.0 + value)
    if dh == 0.0 and fs == 1.0 and fv == 1.0:
        return color.copy()
    # The jitter is a function of each pixel's colour alone, and flat-colour art has a few thousand distinct colours
    # in 16 k pixels: converting each distinct colour once gives the same bytes about three times faster (training
    # data loading is bound by this function, measured in docs/measurements.md).
    packed = (color[..., 0].astype(np.int32) << 16) | (color[..., 1].astype(np.int32) << 8) | color[..., 2]
    distinct, inverse = np.unique(packed.ravel(), return_inverse=True)
    palette = np.stack([distinct >> 16, (distinct >> 8) & 255, distinct & 255], axis=-1)[None]  # (1, K, 3)
    hsv = rgb2hsv(palette.astype(np.float32) / np.float32(255.0))  # (1, K, 3) float32 in [0, 1]
    hsv[..., 0] = (hsv[..., 0] + np.float32(dh)) % np.float32(1.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * np.float32(fs), 0.0, 1.0)
    if fv != 1.0:
        # fv ∈ (0, 2]: γ ∈ [0, ∞). fv = 0 would need γ = ∞ (everything black except white); keep it finite.
        gamma = math.log(max(fv, 1e-6) / 2.0) / math.log(0.5)
        hsv[..., 2] = np.power(hsv[..., 2], np.float32(gamma))
    rgb = np.clip(np.rint(hsv2rgb(hsv)[0] * 255.0), 0, 255).astype(np.uint8)  # (K, 3)
    return rgb[inverse.reshape(color.shape[:2])]


# ------------------------------------------------------------------------------------------- pipeline
def augment_pair(color: np.ndarray, lines: np.ndarray, rng: np.random.Generator, config: AugmentConfig | None,
                 out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Augment one training pair: flip, random resized crop, colour jitter, and one line style.

    Steps (random draws in this order, so equal seeds give equal results): pick one of the ``L`` line styles
    uniformly; flip horizontally with probability 1/2 if ``config.flip``; random resized crop to ``out_size``
    (side ≥ ``config.crop_scale_min`` of the shorter side); HSV jitter of the colour image with the config's
    amplitudes. Only the chosen style is resized (its geometry is the one all styles would get).

    Hints must be sampled afterwards from the returned (jittered) colour image, so hints and target share
    the same jitter by construction.

    Args:
        color: ``uint8 (H, W, 3)`` RGB.
        lines: ``uint8 (L, H, W)`` line styles, paper 255, ink 0.
        rng: the only source of randomness.
        config: augmentation settings; ``None`` means ``AugmentConfig()``.
        out_size: output side ``S``.

    Returns:
        ``(color uint8 (S, S, 3), line uint8 (S, S))``.
    """
    color = check_color(color)
    lines = _check_lines(lines, color)
    rng = check_rng(rng)
    config = AugmentConfig() if config is None else config
    if not isinstance(config, AugmentConfig):
        raise ConfigError(f"config must be a linecolor.config.AugmentConfig, got {type(config).__name__}")
    out_size = _check_out_size(out_size)

    style = int(rng.integers(lines.shape[0]))
    line = lines[style:style + 1]  # (1, H, W)
    if config.flip and rng.random() < 0.5:
        color, line = hflip(color, line)
    color, line = random_resized_crop(color, line, rng, out_size, config.crop_scale_min)
    color = hsv_jitter(color, rng, config.hue_jitter, config.saturation_jitter, config.value_jitter)
    return color, line[0]


# ----------------------------------------------------------------------------------------- line art
def cut_line_gaps(line: np.ndarray, rng: np.random.Generator, max_gaps: int) -> np.ndarray:
    """A copy of ``line`` (uint8 (H, W), 255 paper) with 0 … ``max_gaps`` small gaps: squares of 2–4 px side set to
    paper, each centred on an ink pixel drawn uniformly (draws: the count, then per gap a pixel and a side)."""
    out = line.copy()
    ys, xs = np.nonzero(line < 128)
    count = int(rng.integers(0, max_gaps + 1)) if ys.size else 0
    for _ in range(count):
        i = int(rng.integers(ys.size))
        half = int(rng.integers(1, 3))  # side 2 or 4
        y, x = int(ys[i]), int(xs[i])
        out[max(0, y - half):y + half, max(0, x - half):x + half] = 255
    return out


def fade_line(line: np.ndarray, rng: np.random.Generator, max_fade: float) -> np.ndarray:
    """``line`` with its ink lightened by a fraction drawn from [0, max_fade] (one draw): ``255 − (255 − v)(1 − f)``."""
    fade = float(rng.uniform(0.0, max_fade))
    return np.clip(255.0 - (255.0 - line.astype(np.float32)) * (1.0 - fade) + 0.5, 0, 255).astype(np.uint8)
