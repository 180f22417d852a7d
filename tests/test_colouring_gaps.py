"""Colour does not flow from a small hinted shape through a gap left open into the large paper behind it
(linecolor.raster.colouring, issue #13), while one shape with a narrow waist still takes its hint whole."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from linecolor.raster import colouring
from linecolor.raster.colouring import assign_hints, colour_layer
from linecolor.raster.regions import analyse

from conftest import hint_discs

RED, BLUE = (200, 0, 0), (0, 0, 200)


def _box_with_open_wall() -> np.ndarray:
    """A 400 × 500 frame with a 46 px square box inside (4 px walls), its right wall open over 26 px: wider than
    the automatic gap (4 px) closes, so the box and the paper around it are one region."""
    line = np.full((400, 500), 255, np.uint8)
    line[[0, -1], :] = 0
    line[:, [0, -1]] = 0
    line[100:104, 100:150] = 0
    line[146:150, 100:150] = 0
    line[100:150, 100:104] = 0
    line[100:150, 146:150] = 0
    line[112:138, 146:150] = 255
    return line


BOX, BEHIND = (125, 120), (300, 350)


def test_a_hint_in_a_small_shape_does_not_flood_the_paper_behind_its_open_gap():
    analysis = analyse(_box_with_open_wall())
    assert analysis.region_at(*BOX[::-1]) == analysis.region_at(*BEHIND[::-1]), "the gap must stay open for this test"
    rgb, mask = hint_discs(analysis.shape, [(*BOX, RED)])
    layer = colour_layer(analysis, assign_hints(analysis, rgb, mask))
    inside = layer[106:144, 106:144].reshape(-1, 3)
    assert (inside == RED).all(axis=1).mean() > 0.95
    assert (layer[BEHIND] == 255).all() and (layer[20, 20] == 255).all()  # left as unhinted paper: white
    # ... or the suggestion for the region, like any unhinted paper
    suggestion = np.full((analysis.num_regions + 1, 3), 90.0, np.float32)
    layer = colour_layer(analysis, assign_hints(analysis, rgb, mask), suggestion)
    assert (layer[BEHIND] == 90).all() and (layer[BOX] == RED).all()


def test_two_colours_in_the_small_shape_divide_it_and_still_leave_the_paper_behind_it():
    analysis = analyse(_box_with_open_wall())
    rgb, mask = hint_discs(analysis.shape, [(112, 112, RED), (138, 112, BLUE)])
    colours = assign_hints(analysis, rgb, mask)
    layer = colour_layer(analysis, colours)
    assert (layer[112, 112] == RED).all() and (layer[138, 112] == BLUE).all()
    assert (layer[BEHIND] == 255).all()


def test_a_hint_in_the_large_paper_still_colours_the_small_shape_open_to_it():
    """Colour passes a gap into a room smaller than the one it was put in: the region is one region."""
    analysis = analyse(_box_with_open_wall())
    rgb, mask = hint_discs(analysis.shape, [(*BEHIND, RED)])
    layer = colour_layer(analysis, assign_hints(analysis, rgb, mask))
    assert (layer[BOX] == RED).all() and (layer[20, 20] == RED).all()


def test_a_hint_in_a_pocket_merged_as_a_sliver_does_not_flood_the_region_it_joined():
    """A small U open towards the frame's top wall: its ends are closed onto the wall, and the pocket they cut off
    is a sliver the analysis joins to the paper around it (one region, two separate pieces of paper). A hint in the
    pocket colours only the pocket; a hint outside colours both, as one region."""
    line = np.full((240, 300), 255, np.uint8)
    line[:4, :], line[-4:, :], line[:, :4], line[:, -4:] = 0, 0, 0, 0
    line[15:29, 100:104] = 0
    line[15:29, 116:120] = 0
    line[25:29, 100:120] = 0
    analysis = analyse(line, gap=40)
    assert analysis.num_closures == 2 and analysis.region_at(110, 10) == analysis.region_at(150, 200)
    rgb, mask = hint_discs(line.shape, [(10, 110, RED)])
    layer = colour_layer(analysis, assign_hints(analysis, rgb, mask))
    assert (layer[10, 110] == RED).all() and (layer[200, 150] == 255).all()
    rgb, mask = hint_discs(line.shape, [(200, 150, RED)])
    layer = colour_layer(analysis, assign_hints(analysis, rgb, mask))
    assert (layer[10, 110] == RED).all() and (layer[200, 150] == RED).all()


def _hourglass(left: int) -> np.ndarray:
    """A closed hourglass outline lying on its side, its lobes joined by a 10 px waist between two corners that come
    close (no stroke ends there); the left lobe reaches to ``left``."""
    image = Image.new("L", (420, 240), 255)
    ImageDraw.Draw(image).polygon([(left, 20), (207, 115), (400, 20), (400, 220), (207, 125), (left, 220)],
                                  outline=0, width=3)
    return np.asarray(image).copy()


def test_one_shape_with_a_narrow_waist_takes_its_hint_whole():
    """An hourglass is one region drawn as one: a hint in either lobe, the small one too, colours both."""
    for left, hint in ((20, (120, 100)), (20, (120, 330)), (150, (120, 170))):
        line = _hourglass(left)
        analysis = analyse(line, gap=4)
        assert analysis.region_at(190, 120) == analysis.region_at(300, 120)
        assert all(np.hypot(y - 120, x - 207) > 50 for y, x in analysis.stroke_ends.tolist())  # none at the waist
        rgb, mask = hint_discs(line.shape, [(*hint, RED)])
        layer = colour_layer(analysis, assign_hints(analysis, rgb, mask))
        assert (layer[120, 190] == RED).all() and (layer[120, 330] == RED).all() and (layer[120, 230] == RED).all()


def test_the_rooms_are_found_once_per_drawing_and_region(monkeypatch):
    analysis = analyse(_box_with_open_wall())
    calls = []
    find = colouring._find_gap_rooms
    monkeypatch.setattr(colouring, "_find_gap_rooms", lambda *a: calls.append(1) or find(*a))
    for colour in (RED, BLUE, RED):
        rgb, mask = hint_discs(analysis.shape, [(*BOX, colour)])
        assert (colour_layer(analysis, assign_hints(analysis, rgb, mask))[BEHIND] == 255).all()
    assert len(calls) == 1
