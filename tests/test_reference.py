"""A reference picture decoded once (linecolor.inference.reference): the bytes cache and the pipeline's use of it."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from linecolor.errors import LinecolorError
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.inference.reference import Reference, ReferenceCache, picture_page
from linecolor.models.colorizer import Colorizer
from linecolor.raster.consistency import MATCH_GRID

from conftest import draw_pair, tiny_model_config


def png(size: tuple[int, int], rgb: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, rgb).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_cache_decodes_bytes_once_and_keeps_within_its_bytes():
    decoded = []

    def decode(data: bytes) -> Reference:
        decoded.append(data)
        return Reference.open(data)

    red, blue, green = png((20, 10), (250, 30, 30)), png((20, 10), (30, 30, 250)), png((20, 10), (30, 250, 30))
    cache = ReferenceCache(2 * 20 * 10 * 3)  # room for the pixels of two of them
    first = cache.open(red, decode)
    assert cache.open(red, decode) is first and decoded == [red]
    assert (cache.hits, cache.misses) == (1, 1)
    cache.open(blue, decode)
    cache.open(red, decode)  # red is now the most recently used...
    cache.open(green, decode)  # ...so blue is dropped to make room
    assert len(cache) == 2
    cache.open(red, decode)
    cache.open(blue, decode)
    assert decoded == [red, blue, green, blue]


def test_a_broken_reference_is_refused_and_not_kept():
    cache = ReferenceCache(1 << 20)
    with pytest.raises(LinecolorError, match="reference image"):
        cache.open(b"not a picture", Reference.open)
    assert len(cache) == 0 and cache.misses == 1
    with pytest.raises(ValueError, match="max_bytes"):
        ReferenceCache(-1)


def test_a_reference_sent_as_bytes_again_is_decoded_and_encoded_once(monkeypatch):
    """The studio sends its reference with every stroke: the second stroke neither decodes it nor runs the style
    encoder on it again, and colours exactly as the first."""
    torch.manual_seed(0)
    pipe = ColorizationPipeline(Colorizer(tiny_model_config(working_size=64)))
    line = Image.fromarray(draw_pair(1, 96).lines[0])
    data = png((40, 30), (250, 30, 30))
    encoded = []
    encode = pipe.model.encode_style
    monkeypatch.setattr(pipe.model, "encode_style", lambda image: encoded.append(image.shape) or encode(image))
    first = np.asarray(pipe(line, reference=data, mode="reference", composite="network"))
    again = np.asarray(pipe(line, reference=data, mode="reference", composite="network"))
    np.testing.assert_array_equal(first, again)
    assert (pipe.references.hits, pipe.references.misses) == (1, 1) and len(encoded) == 1
    # the same picture decoded by the caller colours the same (a fresh Reference: encoded once more)
    np.testing.assert_array_equal(np.asarray(pipe(line, reference=Image.open(io.BytesIO(data)), mode="reference",
                                                  composite="network")), first)
    assert len(encoded) == 2
    other = np.asarray(pipe(line, reference=png((40, 30), (30, 30, 250)), mode="reference", composite="network"))
    assert not np.array_equal(other, first)  # other bytes, another reference
    with pytest.raises(LinecolorError, match="reference image"):
        pipe(line, reference=b"not a picture", mode="reference")
    assert len(pipe.references) == 2


def test_a_pictures_page_is_its_flat_colour_regions_with_their_colours():
    """A coloured drawing divides along its outlines and between its flat colours, each part its own colour."""
    picture = Image.new("RGB", (160, 120), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    draw.ellipse([10, 10, 70, 70], fill=(220, 40, 40), outline=(0, 0, 0), width=3)
    draw.rectangle([90, 20, 150, 100], fill=(40, 60, 220))  # no outline: divided from the paper by its colour
    page = picture_page(np.asarray(picture))
    assert page.grid.shape == (MATCH_GRID, MATCH_GRID)
    # the grid stretches the picture over 128 × 128 cells: the disc's centre (40, 40) is at cell (43, 32)
    assert tuple(page.colours[page.grid[43, 32]].round()) == (220, 40, 40)
    assert tuple(page.colours[page.grid[64, 96]].round()) == (40, 60, 220)
    assert tuple(page.colours[page.grid[120, 5]].round()) == (255, 255, 255)
    assert len({page.grid[43, 32], page.grid[64, 96], page.grid[120, 5]}) == 3


def test_reference_mode_gives_regions_that_match_the_references_their_colours():
    """With a coloured copy of the drawing as its reference, every region takes its colour there: the reference's
    regions are matched to the drawing's as a page series matches pages. Without matching it would not."""
    torch.manual_seed(0)
    pipe = ColorizationPipeline(Colorizer(tiny_model_config(working_size=64, fill_guide=True)))
    pair = draw_pair(5, 128)
    line, reference = Image.fromarray(pair.lines[0]), Image.fromarray(pair.color)
    ink = pair.lines[0] < 128
    truth = pair.color[~ink].astype(int)

    def right(out) -> float:
        return float((np.abs(np.asarray(out)[~ink].astype(int) - truth).max(axis=1) <= 2).mean())

    matched = pipe(line, reference=reference, mode="reference", overlay_lines=False)
    assert right(matched) > 0.95
    pipe._reference_pages = lambda reference: ()  # this pipeline without the matching
    assert right(pipe(line, reference=reference, mode="reference", overlay_lines=False)) < 0.9
