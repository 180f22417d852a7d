"""Argument checks shared by the training-data modules (hint simulation, augmentation)."""

from __future__ import annotations

import numpy as np

from linecolor.errors import InputImageError, LinecolorError

__all__ = ["check_color", "check_rng"]


def check_rng(rng: object) -> np.random.Generator:
    """``rng`` if it is a ``numpy.random.Generator`` (randomness is always passed in, seeded by the caller)."""
    if not isinstance(rng, np.random.Generator):
        raise LinecolorError(
            f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def check_color(color: object, name: str = "colour image") -> np.ndarray:
    """``color`` if it is a uint8 (H, W, 3) array, else an :class:`InputImageError` naming ``name``."""
    if not isinstance(color, np.ndarray):
        raise InputImageError(f"{name} must be a numpy array of shape (H, W, 3), got {type(color).__name__}")
    if color.ndim != 3 or color.shape[2] != 3 or color.shape[0] < 1 or color.shape[1] < 1:
        raise InputImageError(f"{name} must have shape (H, W, 3), got {color.shape}")
    if color.dtype != np.uint8:
        raise InputImageError(f"{name} must be uint8 in [0, 255], got dtype {color.dtype}")
    return color
