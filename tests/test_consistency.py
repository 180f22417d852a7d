"""Consistent pages (issue 16): the same character drawn on two pages gets the same colours region by region."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage.color import deltaE_ciede2000, rgb2lab

from linecolor.errors import LinecolorError
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.raster.consistency import MIN_MATCH_IOU, best_matches

from conftest import PYTHON

SAME_COLOUR_DELTA_E = 5.0  # the bound for "the same colours"
HINTS = [(190, 40, "#6b3e26", 6), (100, 230, "#f2c9a0", 6), (145, 175, "#3a6fd8", 4), (239, 175, "#3a6fd8", 4),
         (20, 370, "#e8f4ff", 6)]
# A point inside each region both pages share: hair, face, left eye, right eye, background.
SHARED = [(190, 40), (100, 230), (145, 175), (239, 175), (20, 370)]


def character(mouth_open: bool, eye_shift: int = 0) -> Image.Image:
    """The same head twice: hair, face, eyes; the expression (mouth) differs."""
    image = Image.new("L", (384, 384), 255)
    draw = ImageDraw.Draw(image)
    draw.ellipse((60, 60, 324, 340), outline=0, width=5)
    draw.rectangle((60, 20, 324, 120), outline=0, width=5)
    for x in (120, 214):
        draw.ellipse((x + eye_shift, 150, x + 50 + eye_shift, 200), outline=0, width=4)
    if mouth_open:
        draw.ellipse((150, 240, 234, 300), outline=0, width=4)
    else:
        draw.line((150, 270, 234, 270), fill=0, width=4)
    return image


def delta_e(a: np.ndarray, b: np.ndarray) -> float:
    return float(deltaE_ciede2000(rgb2lab(a[None, None] / 255.0), rgb2lab(b[None, None] / 255.0))[0, 0])


@pytest.fixture(scope="module")
def bundled() -> ColorizationPipeline:
    return ColorizationPipeline.from_pretrained()


def test_a_second_page_without_hints_keeps_the_first_pages_colours(bundled):
    series = bundled.page_series(overlay_lines=False)
    first = np.asarray(series(character(False), HINTS)).astype(float)
    second = np.asarray(series(character(True))).astype(float)
    alone = np.asarray(bundled(character(True), overlay_lines=False)).astype(float)
    for x, y in SHARED:
        assert delta_e(first[y, x], second[y, x]) <= SAME_COLOUR_DELTA_E, (x, y, first[y, x], second[y, x])
    # without the series the second page takes fresh suggestions: the test would notice if nothing were carried
    assert max(delta_e(first[y, x], alone[y, x]) for x, y in SHARED) > SAME_COLOUR_DELTA_E


def test_a_new_region_is_not_forced_into_an_old_ones_colour():
    """The open mouth, part of the face on the first page, matches nothing there. The region head may still suggest
    the face's colour for it (a region inside a hinted face: since output version 19 a hint slot offers it), which
    is a suggestion, not a carry; the network's own colours alone tell the two apart."""
    series = ColorizationPipeline.from_pretrained(region_head=None).page_series(overlay_lines=False)
    first = np.asarray(series(character(False), HINTS)).astype(float)
    second = np.asarray(series(character(True))).astype(float)
    assert delta_e(second[230, 100], first[230, 100]) <= SAME_COLOUR_DELTA_E  # the face is carried
    assert delta_e(second[270, 192], first[230, 100]) > SAME_COLOUR_DELTA_E  # the mouth is not


def test_hints_on_the_later_page_win_and_unmatched_regions_are_left_alone(bundled):
    series = bundled.page_series(overlay_lines=False)
    series(character(False), HINTS)
    second = np.asarray(series(character(False), [(100, 230, "#40c040", 6)])).astype(float)
    assert tuple(second[230, 100].astype(int)) == (0x40, 0xC0, 0x40)  # the new hint, not the carried colour
    assert delta_e(second[40, 190], np.array([0x6B, 0x3E, 0x26], float)) <= SAME_COLOUR_DELTA_E


def test_matching_needs_the_same_place_and_shape():
    grid = np.zeros((128, 128), np.int32)
    grid[10:60, 10:60] = 1
    grid[70:120, 70:120] = 2
    same, moved = grid.copy(), np.zeros_like(grid)
    moved[40:90, 40:90] = 1  # the square moved by 30 cells: IoU well below the threshold
    match, iou = best_matches(same, grid)
    assert match[1:].tolist() == [1, 2] and iou[1:].tolist() == [1.0, 1.0]
    match, iou = best_matches(moved, grid)
    assert iou[1] < MIN_MATCH_IOU


def test_bad_options_are_refused_when_the_series_is_made(bundled):
    with pytest.raises(LinecolorError, match="seed"):
        bundled.page_series(seed=-1)


@pytest.mark.slow
def test_cli_consistent_folder(tmp_path):
    pages = tmp_path / "pages"
    pages.mkdir()
    character(False).save(pages / "p1.png")
    character(True).save(pages / "p2.png")
    hints = tmp_path / "hints"
    hints.mkdir()
    layer = Image.new("RGBA", (384, 384), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for x, y, colour, r in HINTS:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    layer.save(hints / "p1.png")  # only the first page is hinted
    result = subprocess.run([PYTHON, "-m", "linecolor", "colorize", "pages", "--hints", "hints", "--consistent",
                             "--no-overlay", "--out", "out"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    first, second = (np.asarray(Image.open(tmp_path / "out" / f"p{i}.png")).astype(float) for i in (1, 2))
    for x, y in SHARED:
        assert delta_e(first[y, x], second[y, x]) <= SAME_COLOUR_DELTA_E
    single = subprocess.run([PYTHON, "-m", "linecolor", "colorize", "pages/p1.png", "--consistent"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert single.returncode == 2 and "folder" in single.stderr
    assert not Path(tmp_path / "pages" / "p1_colored.png").exists()


def test_regions_too_small_for_the_grid_are_counted():
    grid = np.zeros((128, 128), np.int32)
    grid[10:60, 10:60] = 1
    match, iou = best_matches(grid, grid, regions=5)  # regions 2–5 exist in the drawing but cover no grid cell
    assert len(match) == 6 and iou[1] == 1.0 and (iou[2:] == 0).all()
