"""Simulated user colour hints, after Zhang et al. 2017 ("Real-Time User-Guided Image Colorization").

A *hint* is a small square patch of the ground-truth colour image, revealed to the generator as
``hint_rgb`` (the patch's per-channel median colour) and ``hint_mask`` (where hints are). During training
the number of hints is geometric (keep adding one with probability ``p``: mean ``p/(1-p)``, ``P(0) = 1-p``),
each side is drawn uniformly from ``[patch_min, patch_max]`` pixels at ``reference_size`` and scaled with the
image, and the top-left corner comes from a Gaussian centred on the image (or uniformly).

Patches are plain ``(top, left, side)`` integer triples in pixel units of the image they were drawn for, so
an evaluation set of hints can be stored as JSON (:func:`patches_to_json`) and re-rendered identically
(:func:`render_hints`).

Arrays: colour images are ``uint8 (H, W, 3)`` RGB in ``[0, 255]``; ``hint_rgb`` is ``uint8 (H, W, 3)``
(0 outside hints) and ``hint_mask`` is ``bool (H, W)``. Converting them to the network's ``[-1, 1]`` /
``{0, 1}`` channels is the job of the one shared preprocessing function, not of this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence

import numpy as np

from linecolor.config import HintConfig
from linecolor.data.validate import check_color, check_rng
from linecolor.errors import ConfigError, InputImageError, LinecolorError

__all__ = [
    "Patch",
    "patch_side_range",
    "patches_from_json",
    "patches_to_json",
    "render_hints",
    "sample_hint_patches",
    "sample_point_hints",
    "simulate_hints",
]

Patch = tuple[int, int, int]
"""A square hint patch ``(top, left, side)`` in pixels; it covers rows ``top:top+side``, columns ``left:left+side``."""

_JSON_FORMAT = "linecolor-hint-patches"
_JSON_VERSION = 1


# ------------------------------------------------------------------------------------------- checks
def _check_size(height: object, width: object) -> tuple[int, int]:
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InputImageError(f"image {name} must be a positive integer, got {v!r}")
    return int(height), int(width)  # type: ignore[arg-type]


def _check_config(config: object) -> HintConfig:
    if not isinstance(config, HintConfig):
        raise ConfigError(f"config must be a linecolor.config.HintConfig, got {type(config).__name__}")
    return config


# ----------------------------------------------------------------------------------------- sampling
def patch_side_range(height: int, width: int, config: HintConfig) -> tuple[int, int]:
    """Inclusive range of patch sides for an image of this size.

    ``[patch_min, patch_max]`` (defined at ``config.reference_size``) multiplied by
    ``min(height, width) / reference_size``, rounded half up, at least 1 pixel and at most the image's shorter side.

    Returns:
        ``(lo, hi)`` with ``1 <= lo <= hi <= min(height, width)``.
    """
    height, width = _check_size(height, width)
    config = _check_config(config)
    short = min(height, width)
    scale = short / config.reference_size
    lo = min(max(1, math.floor(config.patch_min * scale + 0.5)), short)  # round half up (not Python's half-even)
    hi = min(max(lo, math.floor(config.patch_max * scale + 0.5)), short)
    return lo, hi


def _sample_sides_and_positions(height: int, width: int, count: int, rng: np.random.Generator,
                                side_range: tuple[int, int], position: str, sigma: float) -> list[Patch]:
    lo, hi = side_range
    # Uniform integer side within the *scaled* bounds (rather than scaling a side drawn at the reference size), so
    # the distribution stays uniform at every size and the range at 128 px is exactly half of that at 256 px.
    sides = rng.integers(lo, hi + 1, size=count)
    if position == "uniform":
        tops = rng.integers(0, height - sides + 1)
        lefts = rng.integers(0, width - sides + 1)
    else:
        # Zhang et al.: the top-left corner is N(centred patch, σ) per axis, rounded and clipped into the image.
        tops = np.rint(rng.normal((height - sides) / 2.0, sigma * height))
        lefts = np.rint(rng.normal((width - sides) / 2.0, sigma * width))
        tops = np.clip(tops, 0, height - sides).astype(np.int64)
        lefts = np.clip(lefts, 0, width - sides).astype(np.int64)
    return [(int(top), int(left), int(side)) for top, left, side in zip(tops, lefts, sides)]


def sample_hint_patches(height: int, width: int, rng: np.random.Generator,
                        config: HintConfig | None = None) -> list[Patch]:
    """Draw the training-time hint patches for one image (count, sizes and positions; no colours).

    Args:
        height, width: image size in pixels (positive integers).
        rng: the only source of randomness.
        config: hint distribution; ``None`` means ``HintConfig()`` (the paper's values).

    Returns:
        A list of ``(top, left, side)`` integer triples, every patch fully inside the image. Its length is
        geometric: ``P(n) = (1-p)·p^n`` with ``p = config.continue_probability``, capped at ``config.max_hints``
        (mean 7 and 12.5 % empty for ``p = 7/8``).
    """
    height, width = _check_size(height, width)
    rng = check_rng(rng)
    config = _check_config(HintConfig() if config is None else config)
    # "Keep adding with probability p" stops after the first failure: the number of hints is the number of
    # Bernoulli(1-p) trials before the first success, i.e. numpy's geometric (which counts the success) minus 1.
    count = min(int(rng.geometric(1.0 - config.continue_probability)) - 1, config.max_hints)
    return _sample_sides_and_positions(height, width, count, rng, patch_side_range(height, width, config),
                                       config.position, config.gaussian_sigma)


def sample_point_hints(color: np.ndarray, k: int, rng: np.random.Generator, radius: int | None = 2, *,
                       config: HintConfig | None = None) -> list[Patch]:
    """Exactly ``k`` hint patches for evaluation (e.g. PSNR against the number of hints).

    Positions follow the training rule (``config.position``); the size is fixed when ``radius`` is given,
    so results at different hint counts are comparable.

    Args:
        color: ground-truth image ``uint8 (H, W, 3)``; only its size is used here — colours are taken by
            :func:`render_hints`, so the returned list can be stored (:func:`patches_to_json`) and re-rendered.
        k: number of hints, ``>= 0``.
        rng: the only source of randomness.
        radius: every patch is a ``(2·radius+1)``-pixel square (clamped to the image), in pixels of *this* image;
            ``None`` draws each side from the training distribution of ``config`` instead.
        config: position rule (and size rule when ``radius`` is ``None``); ``None`` means ``HintConfig()``.

    Returns:
        ``k`` triples ``(top, left, side)``, each fully inside the image.
    """
    color = check_color(color)
    rng = check_rng(rng)
    config = _check_config(HintConfig() if config is None else config)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ConfigError(f"k (number of hints) must be a non-negative integer, got {k!r}")
    height, width = color.shape[:2]
    if radius is None:
        side_range = patch_side_range(height, width, config)
    else:
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
            raise ConfigError(f"radius must be a non-negative integer or None, got {radius!r}")
        side = min(2 * int(radius) + 1, height, width)
        side_range = (side, side)
    return _sample_sides_and_positions(height, width, int(k), rng, side_range, config.position,
                                       config.gaussian_sigma)


# ---------------------------------------------------------------------------------------- rendering
def _check_patches(patches: Iterable[Sequence[int]], height: int, width: int) -> list[Patch]:
    out = []
    for i, p in enumerate(patches):
        try:
            top, left, side = (int(v) for v in p)
            ok_types = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in p)
        except (TypeError, ValueError):
            raise InputImageError(f"hint patch {i} must be (top, left, side) integers, got {p!r}") from None
        if not ok_types:
            raise InputImageError(f"hint patch {i} must be (top, left, side) integers, got {p!r}")
        if side < 1 or top < 0 or left < 0 or top + side > height or left + side > width:
            raise InputImageError(
                f"hint patch {i} (top={top}, left={left}, side={side}) does not lie inside the {height}×{width} image")
        out.append((top, left, side))
    return out


def render_hints(color: np.ndarray, patches: Iterable[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Paint each patch with the per-channel median colour of the ground truth inside it.

    Args:
        color: ground truth ``uint8 (H, W, 3)`` RGB in ``[0, 255]``.
        patches: ``(top, left, side)`` triples, each fully inside the image. Where patches overlap, the later one
            wins (as in Zhang et al.'s implementation).

    Returns:
        ``hint_rgb``: ``uint8 (H, W, 3)``, the patch medians (rounded half to even) inside patches, 0 elsewhere;
        ``hint_mask``: ``bool (H, W)``, True inside patches.

    Raises:
        InputImageError: a wrongly shaped/typed image or a patch outside it.
    """
    color = check_color(color)
    height, width = color.shape[:2]
    checked = _check_patches(patches, height, width)
    hint_rgb = np.zeros_like(color)
    hint_mask = np.zeros((height, width), dtype=bool)
    for top, left, side in checked:
        block = color[top:top + side, left:left + side].reshape(-1, 3)
        median = np.rint(np.median(block, axis=0)).astype(np.uint8)  # (3,)
        hint_rgb[top:top + side, left:left + side] = median
        hint_mask[top:top + side, left:left + side] = True
    return hint_rgb, hint_mask


def simulate_hints(color: np.ndarray, rng: np.random.Generator,
                   config: HintConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Training hints for one image: :func:`sample_hint_patches` then :func:`render_hints`.

    Call it on the *augmented* colour image (after hue jitter), so hints and target agree by construction.

    Args:
        color: ground truth ``uint8 (H, W, 3)`` RGB.
        rng: the only source of randomness.
        config: hint distribution; ``None`` means ``HintConfig()``.

    Returns:
        ``(hint_rgb uint8 (H, W, 3), hint_mask bool (H, W))`` as in :func:`render_hints`.
    """
    color = check_color(color)
    patches = sample_hint_patches(color.shape[0], color.shape[1], rng, config)
    return render_hints(color, patches)


# --------------------------------------------------------------------------------------------- JSON
def patches_to_json(patches: Iterable[Sequence[int]], *, height: int | None = None,
                    width: int | None = None) -> str:
    """Serialise hint patches to a JSON string.

    Args:
        patches: ``(top, left, side)`` triples.
        height, width: optionally the size of the image they were drawn for; stored and checked on loading, because
            patches are in pixels of that image.

    Returns:
        ``{"format": "linecolor-hint-patches", "version": 1, "height": …, "width": …,
        "patches": [[top, left, side], …]}`` as text.
    """
    if (height is None) != (width is None):
        raise ConfigError("give both height and width of the image, or neither")
    if height is not None:
        height, width = _check_size(height, width)
        checked = _check_patches(patches, height, width)
    else:
        checked = _check_patches(patches, 2**62, 2**62)
    doc = {"format": _JSON_FORMAT, "version": _JSON_VERSION, "height": height, "width": width,
           "patches": [list(p) for p in checked]}
    return json.dumps(doc)


def patches_from_json(text: str | bytes, *, height: int | None = None, width: int | None = None) -> list[Patch]:
    """Parse the output of :func:`patches_to_json`.

    Args:
        text: the JSON document.
        height, width: if given, every patch must lie inside an image of this size, and the stored size (if any)
            must match it.

    Returns:
        The list of ``(top, left, side)`` triples, in the stored order.

    Raises:
        LinecolorError: not valid JSON, another format, or malformed patches; InputImageError when the patches do
        not fit the given image size.
    """
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LinecolorError(f"hint patches: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != _JSON_FORMAT:
        raise LinecolorError(f"hint patches: not a {_JSON_FORMAT!r} JSON document")
    if doc.get("version") != _JSON_VERSION:
        raise LinecolorError(f"hint patches: unsupported version {doc.get('version')!r} (expected {_JSON_VERSION})")
    raw = doc.get("patches")
    if not isinstance(raw, list) or not all(isinstance(p, list) and len(p) == 3 for p in raw):
        raise LinecolorError("hint patches: 'patches' must be a list of [top, left, side] lists")
    stored_h, stored_w = doc.get("height"), doc.get("width")
    if height is not None or width is not None:
        height, width = _check_size(height, width)
        if stored_h is not None and (stored_h, stored_w) != (height, width):
            raise InputImageError(f"hint patches were drawn for a {stored_h}×{stored_w} image, "
                                  f"not {height}×{width}")
        return _check_patches(raw, height, width)
    if stored_h is not None:
        stored_h, stored_w = _check_size(stored_h, stored_w)
        return _check_patches(raw, stored_h, stored_w)
    return _check_patches(raw, 2**62, 2**62)
