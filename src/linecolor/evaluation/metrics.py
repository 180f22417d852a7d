"""Image-quality metrics of the evaluation, all against the ground-truth colour image.

* :func:`psnr` — peak signal-to-noise ratio in dB over all RGB values (``skimage.metrics``, data range 255), as in
  Zhang et al. 2017. Identical images give ``PSNR_CAP`` (100 dB) instead of infinity, so means stay finite.
* :func:`ssim` — structural similarity on RGB (``skimage.metrics.structural_similarity``, data range 255,
  ``channel_axis=2``, skimage's default 7×7 uniform window).
* :func:`hint_adherence` — mean CIEDE2000 colour difference (``skimage.color.deltaE_ciede2000`` on
  ``rgb2lab``) between each hinted pixel's hint colour and the output at that pixel; NaN when there are no hints.
  An artist notices ΔE00 above ~2–3.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from linecolor.errors import InputImageError

__all__ = ["PSNR_CAP", "hint_adherence", "image_metrics", "psnr", "ssim"]

PSNR_CAP = 100.0
"""PSNR reported for (near-)identical images, in dB (instead of +inf)."""


def _check_pair(output: np.ndarray, target: np.ndarray) -> None:
    for name, a in (("output", output), ("target", target)):
        if not (isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3):
            raise InputImageError(f"{name} must be a uint8 (H, W, 3) RGB array, got "
                                  f"{getattr(a, 'dtype', type(a))} {getattr(a, 'shape', '')}")
    if output.shape != target.shape:
        raise InputImageError(f"output {output.shape} and target {target.shape} differ in shape")


def psnr(output: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB of ``output`` against ``target`` (uint8 RGB, same shape), capped at :data:`PSNR_CAP`."""
    _check_pair(output, target)
    if np.array_equal(output, target):
        return PSNR_CAP
    value = float(peak_signal_noise_ratio(target, output, data_range=255))
    return min(value, PSNR_CAP)


def ssim(output: np.ndarray, target: np.ndarray) -> float:
    """SSIM of ``output`` against ``target`` on RGB (1.0 for identical images)."""
    _check_pair(output, target)
    return float(structural_similarity(target, output, data_range=255, channel_axis=2))


def hint_adherence(output: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray) -> float:
    """Mean CIEDE2000 between the hint colour and the output over hinted pixels (NaN without hints).

    Pixel-weighted: every hint pixel counts once (evaluation hints are equal-sized squares, so this is the mean
    over hints up to overlaps).
    """
    _check_pair(output, hint_rgb)
    if hint_mask.shape != output.shape[:2]:
        raise InputImageError(f"hint_mask {hint_mask.shape} does not match the image {output.shape[:2]}")
    mask = np.asarray(hint_mask, dtype=bool)
    if not mask.any():
        return math.nan
    a = rgb2lab(output[mask][:, None, :])  # (N, 1, 3)
    b = rgb2lab(hint_rgb[mask][:, None, :])
    return float(np.mean(deltaE_ciede2000(b, a)))


def image_metrics(output: np.ndarray, target: np.ndarray, hint_rgb: np.ndarray,
                  hint_mask: np.ndarray) -> dict[str, float]:
    """``{"psnr": …, "ssim": …, "deltae00": …}`` for one output."""
    return {"psnr": psnr(output, target), "ssim": ssim(output, target),
            "deltae00": hint_adherence(output, hint_rgb, hint_mask)}
