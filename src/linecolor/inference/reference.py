"""A reference picture (reference mode) decoded once: its pixels for the style encoder and, on first use, its main
colours for the region head (:meth:`~linecolor.inference.region_head.RegionHead.towards`) and its regions, which
take their colours to the drawing's regions of the same place and shape (:attr:`Reference.page`).

A whole folder or a series of pages coloured after one reference opens it once (:meth:`Reference.open`), so a broken
reference is refused before the first page instead of once per page, and the pages do not decode it again. A
reference sent as bytes again and again (the studio sends it with every stroke) is decoded once while it stays in a
:class:`ReferenceCache`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from linecolor.bounded_cache import BoundedCache
from linecolor.errors import InputImageError
from linecolor.limits import MAX_IMAGE_PIXELS
from linecolor.raster.consistency import PageColours
from linecolor.raster.imageio import ImageInput, check_size, open_image, to_rgb
from linecolor.raster.lines import INK_THRESHOLD, drawn_outlines, flat_region_edges
from linecolor.raster.palette import image_colours, outline_radius
from linecolor.raster.regions import analyse

PAGE_SIDE = 512
"""A reference is divided into regions (:func:`picture_page`) at most this many px a side: its regions are matched
on a 128² grid (:data:`~linecolor.raster.consistency.MATCH_GRID`), so more detail would only cost time."""


@dataclass(frozen=True, eq=False)
class Reference:
    """A decoded reference picture. Independent of any model: one can serve several pipelines.

    Attributes:
        pixels: uint8 (H, W, 3), read-only.
    """

    pixels: np.ndarray

    def __post_init__(self) -> None:
        shape = getattr(self.pixels, "shape", None)
        if getattr(self.pixels, "dtype", None) != np.uint8 or len(shape or ()) != 3 or shape[2] != 3:
            raise InputImageError(f"reference image: pixels must be uint8 (H, W, 3), got "
                                  f"{getattr(self.pixels, 'dtype', type(self.pixels).__name__)} {shape}")
        if self.pixels.flags.writeable:  # the caller's array: a copy, so the colours found once stay its colours
            frozen = self.pixels.copy()
            frozen.setflags(write=False)
            object.__setattr__(self, "pixels", frozen)

    @classmethod
    def open(cls, source: ReferenceInput, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Reference:
        """``source`` as a :class:`Reference`: a path, bytes, a binary file or a PIL image is decoded (with the
        checks of :func:`~linecolor.raster.imageio.open_image`); a :class:`Reference` is returned as it is once its
        size is within ``max_pixels``.

        Raises:
            InputImageError, UnsupportedImageFormat, ImageTooLarge: as :func:`open_image`, naming the
                "reference image".
        """
        if isinstance(source, Reference):
            check_size(source.pixels.shape[1::-1], max_pixels, "reference image")  # opened under another limit?
            return source
        pixels = np.asarray(to_rgb(open_image(source, max_pixels=max_pixels, name="reference image")))
        pixels.setflags(write=False)  # a fresh array of its own (PIL copies out): nobody else can change it
        return cls(pixels)

    @cached_property
    def page(self) -> PageColours:
        """The picture as a coloured page: its flat-colour regions and each one's colour (:func:`picture_page`).
        Reference mode matches them against the drawing's regions, as a page series matches its pages
        (:func:`~linecolor.raster.consistency.carry_colours`). Found on first use (0.4 s for 512²)."""
        return picture_page(self.pixels)

    @cached_property
    def colours(self) -> np.ndarray:
        """The picture's main colours, uint8 (R, 3), most common first (:func:`image_colours`). Found on first use
        (15 ms for 512², 52 ms for 4096² on the development CPU): only a pipeline with a region head asks."""
        return image_colours(self.pixels)


ReferenceInput = Reference | ImageInput
"""What ``reference=`` takes anywhere in the pipeline."""


def picture_page(pixels: np.ndarray) -> PageColours:
    """uint8 (H, W, 3) ``pixels`` as a :class:`~linecolor.raster.consistency.PageColours`: the picture, scaled to
    at most :data:`PAGE_SIDE` px a side, is divided along its inked outlines
    (:func:`~linecolor.raster.lines.drawn_outlines`) and the edges between its flat colours
    (:func:`~linecolor.raster.lines.flat_region_edges`) by the region engine (:func:`~linecolor.raster.regions.analyse`,
    which closes small gaps); each region's colour is the median of its pixels off those lines (white where it has
    none)."""
    from PIL import Image

    from linecolor.inference.composite import region_medians

    small = Image.fromarray(pixels, "RGB")
    small.thumbnail((PAGE_SIDE, PAGE_SIDE))
    picture = np.asarray(small)
    lines = (flat_region_edges(picture) < INK_THRESHOLD) | drawn_outlines(picture, outline_radius(max(picture.shape[:2])))
    analysis = analyse(np.where(lines, 0, 255).astype(np.uint8))
    table, counts = region_medians(picture, analysis.labels, analysis.num_regions + 1, ~lines)
    table[counts == 0] = 255.0
    return PageColours.of(analysis, table)


class ReferenceCache:
    """References decoded from bytes, by the bytes' SHA-256, least recently used dropped first, bounded by the bytes
    their pixels hold (:class:`~linecolor.bounded_cache.BoundedCache`). Thread-safe (two threads missing on the same
    bytes at once both decode; one copy stays).

    Only bytes are kept: a path may name a file that changes, and a PIL image or a :class:`Reference` is already
    decoded by its caller.
    """

    def __init__(self, max_bytes: int):
        self._cache: BoundedCache[str, Reference] = BoundedCache(max_bytes, lambda r: r.pixels.nbytes)
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    def open(self, data: bytes, decode: Callable[[bytes], Reference]) -> Reference:
        """The reference of ``data``: the kept one, or ``decode(data)``, kept if its pixels fit. A decoding error
        propagates and nothing is kept."""
        key = hashlib.sha256(data).hexdigest()
        found = self._cache.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        return self._cache.put(key, decode(data))
