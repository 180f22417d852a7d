"""A room that closing strokes to the side of a line cut off a hinted region takes its colour (issue #13: a glyph
stroke stopping short of its frame), while a closed gap in an outline still passes no colour."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from linecolor.raster.colouring import assign_hints, colour_layer
from linecolor.raster.regions import analyse

from conftest import hint_discs

RED, BLUE = (200, 40, 30), (0, 0, 200)
SIZE, WIDTH = 240, 8


def _framed_cross() -> np.ndarray:
    """A square frame with a cross inside whose top and left arms stop two stroke widths short of the frame (an
    enclosed ideograph): the frame's inside is one region, but the closing strokes from those two arm ends to the
    frame cut its top-left corner off as a room of its own."""
    image = Image.new("L", (SIZE, SIZE), 255)
    draw = ImageDraw.Draw(image)
    draw.rectangle([20, 20, 219, 219], outline=0, width=WIDTH)
    draw.line([(80, 28 + 2 * WIDTH), (80, 150)], fill=0, width=WIDTH)
    draw.line([(28 + 2 * WIDTH, 80), (150, 80)], fill=0, width=WIDTH)
    return np.asarray(image).copy()


CORNER, MAIN = (50, 50), (160, 160)


def test_a_room_cut_off_by_closing_strokes_to_a_frame_takes_the_hint_across_them():
    analysis = analyse(_framed_cross())
    assert analysis.region_at(*CORNER[::-1]) != analysis.region_at(*MAIN[::-1]), "the corner must be closed off"
    assert analysis.side_closures is not None and not (analysis.side_closures & ~analysis.closures).any()
    rgb, mask = hint_discs(analysis.shape, [(*MAIN, RED)])
    layer = colour_layer(analysis, assign_hints(analysis, rgb, mask))
    assert (layer[CORNER] == RED).all() and (layer[MAIN] == RED).all()
    assert (layer[5, 5] == 255).all()  # the paper outside the frame stays white


def test_a_hinted_corner_keeps_its_own_colour_and_a_hint_there_colours_no_larger_paper():
    analysis = analyse(_framed_cross())
    rgb, mask = hint_discs(analysis.shape, [(*MAIN, RED), (*CORNER, BLUE)])
    layer = colour_layer(analysis, assign_hints(analysis, rgb, mask))
    assert (layer[CORNER] == BLUE).all() and (layer[MAIN] == RED).all()
    rgb, mask = hint_discs(analysis.shape, [(*CORNER, BLUE)])
    layer = colour_layer(analysis, assign_hints(analysis, rgb, mask))
    assert (layer[CORNER] == BLUE).all() and (layer[MAIN] == 255).all()


def test_a_closed_gap_between_two_stroke_ends_passes_no_colour():
    """A small box whose outline is broken (two ends facing each other): the gap is closed, and a hint in the
    paper around the box does not colour the box, although the box is smaller."""
    line = np.full((SIZE, SIZE), 255, np.uint8)
    line[:6, :], line[-6:, :], line[:, :6], line[:, -6:] = 0, 0, 0, 0
    line[60:66, 60:120], line[114:120, 60:120], line[60:120, 60:66], line[60:120, 114:120] = 0, 0, 0, 0
    line[84:94, 114:120] = 255  # a gap of 10 px in its right wall
    analysis = analyse(line)
    assert analysis.region_at(90, 90) != analysis.region_at(200, 200), "the gap must be closed for this test"
    rgb, mask = hint_discs(analysis.shape, [(200, 200, RED)])
    layer = colour_layer(analysis, assign_hints(analysis, rgb, mask))
    assert (layer[200, 200] == RED).all() and (layer[90, 90] == 255).all()
