"""User hints in: ``x,y,#rrggbb[,r]`` points and RGBA hint layers → the (hint_rgb, hint_mask) arrays of
:mod:`linecolor.inference.conditioning`, with every check a user-facing error (:class:`~linecolor.errors.LinecolorError`).
Limits come from :mod:`linecolor.limits`.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from linecolor.errors import InputImageError, LinecolorError
from linecolor.limits import DEFAULT_HINT_RADIUS, MAX_HINT_PAINTED_PIXELS, MAX_HINT_POINTS, MAX_HINT_RADIUS

__all__ = ["HintPoint", "check_same_size", "hints_from_points", "hints_from_rgba", "parse_color", "parse_points"]

HintPoint = tuple[float, float, str, float]
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


def parse_color(value: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` (or ``rrggbb``) → (r, g, b) in 0–255."""
    m = _HEX.match(value.strip()) if isinstance(value, str) else None
    if not m:
        raise LinecolorError(f"colour {_short(value)} is not of the form #rrggbb")
    v = m.group(1)
    return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)


def parse_points(text: str) -> list[HintPoint]:
    """Parse ``"x,y,#rrggbb[,r];x,y,#rrggbb[,r];…"`` (the CLI's ``--points``) into hint points (radius default
    :data:`~linecolor.limits.DEFAULT_HINT_RADIUS`)."""
    points: list[HintPoint] = []
    for i, item in enumerate(p for p in text.split(";") if p.strip()):
        parts = [s.strip() for s in item.split(",")]
        if len(parts) not in (3, 4):
            raise LinecolorError(f"hint point {i + 1} ({item!r}) is not of the form x,y,#rrggbb[,radius]")
        try:
            x, y = float(parts[0]), float(parts[1])
            r = float(parts[3]) if len(parts) == 4 else DEFAULT_HINT_RADIUS
        except ValueError:
            raise LinecolorError(f"hint point {i + 1} ({item!r}): x, y and radius must be numbers") from None
        parse_color(parts[2])
        points.append((x, y, parts[2], r))
    return points


def hints_from_points(points: Iterable[Sequence], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Draw filled discs for ``(x, y, "#rrggbb", radius)`` points on an image of ``size = (W, H)``; later points
    paint over earlier ones.

    Every point is checked before anything is drawn, and the work is bounded up front: at most
    :data:`~linecolor.limits.MAX_HINT_POINTS` points, whose discs (clipped to the image) cover at most
    :data:`~linecolor.limits.MAX_HINT_PAINTED_PIXELS` pixels in all. A disc of radius under 1 is one pixel.
    """
    w, h = size
    points = list(points)
    if len(points) > MAX_HINT_POINTS:
        raise LinecolorError(f"{len(points)} hint points is more than the limit of {MAX_HINT_POINTS}")
    checked = [_check_point(i, point, w, h) for i, point in enumerate(points)]
    painted = sum(_clipped_box_area(x, y, r, w, h) for x, y, _, r in checked)
    if painted > MAX_HINT_PAINTED_PIXELS:
        raise LinecolorError(f"the hint points paint {painted} pixels in all (overlaps counted again), more than the "
                             f"limit of {MAX_HINT_PAINTED_PIXELS}; send large hint areas as a hint image instead")
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for x, y, rgb, radius in checked:
        if radius < 1:
            layer.putpixel((int(x), int(y)), rgb + (255,))
        else:
            draw.ellipse([x - radius + 0.5, y - radius + 0.5, x + radius - 0.5, y + radius - 0.5], fill=rgb + (255,))
    return hints_from_rgba(layer)


def _check_point(i: int, point: Sequence, w: int, h: int) -> tuple[float, float, tuple[int, int, int], float]:
    """One point as ``(x, y, rgb, radius)`` floats, or a :class:`LinecolorError` naming what is wrong with it."""
    if not isinstance(point, (list, tuple)) or len(point) not in (3, 4):
        raise LinecolorError(f"hint point {i + 1} must be (x, y, '#rrggbb'[, radius]), got {_short(point)}")
    values = {"x": point[0], "y": point[1], "radius": point[3] if len(point) == 4 else DEFAULT_HINT_RADIUS}
    numbers: dict[str, float] = {}
    for name, v in values.items():
        try:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError
            number = float(v)  # OverflowError for integers beyond a float's range
        except (TypeError, OverflowError):
            number = math.nan
        if not math.isfinite(number):
            raise LinecolorError(f"hint point {i + 1}: {name} must be a finite number, got {_short(v)}")
        numbers[name] = number
    x, y, radius = numbers["x"], numbers["y"], numbers["radius"]
    if not (0 <= x < w and 0 <= y < h):
        raise LinecolorError(f"hint point {i + 1} at ({x:g}, {y:g}) lies outside the {w}×{h} image")
    if not (0 < radius <= MAX_HINT_RADIUS):
        raise LinecolorError(f"hint point {i + 1}: radius must be in (0, {MAX_HINT_RADIUS:g}], got {radius:g}")
    return x, y, parse_color(point[2]), radius


def _clipped_box_area(x: float, y: float, radius: float, w: int, h: int) -> int:
    """Pixels of the disc's bounding box that lie in the image: what drawing the disc costs."""
    bw = min(w, math.ceil(x + radius)) - max(0, math.floor(x - radius))
    bh = min(h, math.ceil(y + radius)) - max(0, math.floor(y - radius))
    return max(1, bw) * max(1, bh)


def _short(value: object) -> str:
    """``repr(value)`` cut to 40 characters, for error messages about untrusted values."""
    try:
        text = repr(value)
    except ValueError:  # an integer of more digits than Python converts to text
        return f"<{type(value).__name__} too long to show>"
    return text if len(text) <= 40 else text[:37] + "..."


def hints_from_rgba(layer: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """An RGBA hint layer (alpha > 0 marks a hint pixel, RGB its colour) → (hint_rgb, hint_mask).

    ``hint_rgb`` is a read-only view of the decoded layer, not a copy: copying three of every four bytes took
    170 ms of a 4096² layer, more than decoding it."""
    rgba = np.asarray(layer if layer.mode == "RGBA" else layer.convert("RGBA"))  # convert() copies even RGBA
    return rgba[..., :3], rgba[..., 3] > 0


def check_same_size(line_size: tuple[int, int], other_size: tuple[int, int], what: str) -> None:
    if tuple(line_size) != tuple(other_size):
        raise InputImageError(f"{what} is {other_size[0]}×{other_size[1]} but the line image is "
                              f"{line_size[0]}×{line_size[1]}; they must be the same size")
