"""Tests of linecolor.raster.lines on small synthetic drawings (no shared data except one optional smoke test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

from linecolor.errors import InputImageError
from linecolor.raster.lines import (
    binarize,
    change_thickness,
    clean_sketch,
    drawn_outlines,
    flat_region_edges,
    random_thickness,
    xdog,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
S = 128
EIGHT = np.ones((3, 3), bool)


def red_circle(size: int = S, radius: int = 34, fill=(200, 40, 40)) -> np.ndarray:
    img = Image.new("RGB", (size, size), "white")
    c = size // 2
    ImageDraw.Draw(img).ellipse([c - radius, c - radius, c + radius, c + radius], fill=fill)
    return np.asarray(img).copy()


def distance_from_centre(size: int = S) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    c = size // 2
    return np.hypot(yy - c, xx - c)


def drawing_with_lines() -> np.ndarray:
    """Line art: a 1-px diagonal, a 3-px horizontal bar, a 2-px circle outline (three separate ink components)."""
    img = Image.new("L", (S, S), 255)
    d = ImageDraw.Draw(img)
    d.line([(10, 10), (60, 40)], fill=0, width=1)
    d.line([(10, 100), (110, 100)], fill=0, width=3)
    d.ellipse([70, 15, 115, 60], outline=0, width=2)
    return np.asarray(img).copy()


# -------------------------------------------------------------------------------------------- xdog
def test_xdog_on_flat_circle_is_a_line_along_the_edge():
    img = red_circle()
    out = xdog(img)
    assert out.dtype == np.uint8 and out.shape == (S, S)
    assert (out > 200).mean() > 0.90  # mostly paper
    r = distance_from_centre()
    assert (out[r < 34 - 5] > 200).all(), "interior of the flat shape must stay white"
    assert (out[r > 34 + 5] > 200).all(), "far background must stay white"
    # Every direction around the circle crosses dark ink near the radius.
    ring = (r > 34 - 3) & (r < 34 + 3)
    angles = np.arctan2(*np.mgrid[:S, :S] - S // 2)
    for a in np.linspace(-np.pi, np.pi, 24, endpoint=False):
        sector = ring & (np.abs(np.angle(np.exp(1j * (angles - a)))) < 0.15)
        assert out[sector].min() < 100, f"no dark edge at angle {a:.2f}"


def test_xdog_grey_and_rgb_agree_and_binarize_flag():
    grey = np.asarray(Image.fromarray(red_circle()).convert("L")).copy()
    out = xdog(grey, binarize=True)
    assert set(np.unique(out)) <= {0, 255}
    assert (out == 0).any()
    flat = np.full((32, 32), 180, np.uint8)
    assert (xdog(flat) == 255).all()  # no edges, no ink


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.float32), np.zeros((8, 8, 4), np.uint8),
                                 np.zeros((0, 5), np.uint8)])
def test_xdog_rejects_bad_input(bad):
    with pytest.raises(InputImageError):
        xdog(bad)


# ---------------------------------------------------------------------------------------- binarize
def test_binarize_gives_only_ink_and_paper():
    ramp = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    out = binarize(ramp)
    assert set(np.unique(out)) == {0, 255}
    assert out[0, 127] == 0 and out[0, 128] == 255
    assert (binarize(ramp, threshold=10)[0, :10] == 0).all() and binarize(ramp, threshold=10)[0, 10] == 255
    with pytest.raises(InputImageError):
        binarize(ramp, threshold=0)
    with pytest.raises(InputImageError):
        binarize(ramp.astype(np.int32))


# --------------------------------------------------------------------------------------- thickness
def test_thicker_increases_ink():
    line = drawing_with_lines()
    thick = change_thickness(line, 1)
    assert thick.dtype == np.uint8 and thick.shape == line.shape
    assert (thick < 128).sum() > 1.5 * (line < 128).sum()
    assert (thick[line < 128] < 128).all()  # thickening never removes ink


def test_thinner_decreases_ink_but_keeps_every_line():
    line = drawing_with_lines()
    thin = change_thickness(line, -1)
    ink, thin_ink = line < 128, thin < 128
    assert thin_ink.sum() < ink.sum()
    assert not (thin_ink & ~ink).any()  # thinning never adds ink
    labels, n = ndi.label(ink, structure=EIGHT)
    assert n == 3
    for k in range(1, n + 1):
        assert thin_ink[labels == k].any(), f"line {k} was erased"
    assert ndi.label(thin_ink, structure=EIGHT)[1] == n, "a line was broken into pieces or erased"
    # the 1-px diagonal survives completely
    one_px = labels == labels[10, 10]
    assert thin_ink[one_px].mean() > 0.9


def test_thickness_zero_is_a_copy_and_random_thickness_uses_rng():
    line = drawing_with_lines()
    same = change_thickness(line, 0)
    assert same is not line and np.array_equal(same, line)
    a = random_thickness(line, np.random.default_rng(5), 2)
    b = random_thickness(line, np.random.default_rng(5), 2)
    assert np.array_equal(a, b)
    radius = int(np.random.default_rng(5).integers(-2, 3))
    assert np.array_equal(a, change_thickness(line, radius))
    radii_seen = {int(np.random.default_rng(s).integers(-2, 3)) for s in range(40)}
    assert radii_seen == {-2, -1, 0, 1, 2}
    assert np.array_equal(random_thickness(line, np.random.default_rng(1), 0), line)
    with pytest.raises(InputImageError):
        random_thickness(line, np.random.default_rng(0), -1)


# ------------------------------------------------------------------------------ flat_region_edges
def test_flat_region_edges_between_two_halves():
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, :32] = (220, 40, 40)
    img[:, 32:] = (40, 60, 200)
    out = flat_region_edges(img)
    assert set(np.unique(out)) <= {0, 255}
    cols = np.nonzero((out == 0).any(axis=0))[0]
    assert set(cols) <= {31, 32}, f"line away from the boundary: columns {cols}"
    assert ((out == 0).sum(axis=1) == 1).all(), "exactly one 1-px line per row"


def test_flat_region_edges_antialiased_boundary_gives_a_single_line():
    # A circle drawn at 4× and downsampled: real anti-aliasing on its edge.
    big = Image.new("RGB", (4 * S, 4 * S), (250, 220, 60))
    ImageDraw.Draw(big).ellipse([4 * 30, 4 * 30, 4 * 98, 4 * 98], fill=(30, 120, 60))
    img = np.asarray(big.resize((S, S), Image.Resampling.BOX)).copy()
    out = flat_region_edges(img)
    ink = out == 0
    r = distance_from_centre()
    assert ink[(r > 31) & (r < 37)].sum() > 150  # the boundary is drawn all round
    assert not ink[(r < 29) | (r > 39)].any()  # nothing inside the regions
    # At most two pixels on any horizontal/vertical cut through the edge: no doubled line.
    for row in range(40, 88, 4):
        hits = np.nonzero(ink[row, : S // 2])[0]
        assert 1 <= len(hits) <= 2 and np.ptp(hits) <= 1, f"row {row}: {hits}"
    thick = flat_region_edges(img, thickness=3)
    assert (thick == 0).sum() > 2 * ink.sum()


def test_flat_region_edges_ignores_differences_below_tolerance():
    img = np.zeros((32, 32, 3), np.uint8)
    img[:, :16] = (120, 120, 120)
    img[:, 16:] = (123, 121, 120)  # ΔE ≈ 1
    assert (flat_region_edges(img, tolerance=6.0) == 255).all()
    assert (flat_region_edges(img, tolerance=0.5) == 0).any()


def test_flat_region_edges_draws_the_alpha_silhouette():
    alpha_img = Image.new("L", (S, S), 0)
    ImageDraw.Draw(alpha_img).ellipse([30, 30, 98, 98], fill=255)
    alpha = np.asarray(alpha_img).copy()
    white = np.full((S, S, 3), 255, np.uint8)  # a white shape composited on white: only alpha shows it
    assert (flat_region_edges(white) == 255).all()
    out = flat_region_edges(white, alpha)
    r = distance_from_centre()
    ink = out == 0
    assert ink[(r > 31) & (r < 37)].sum() > 150
    assert not ink[(r < 30) | (r > 38)].any()
    with pytest.raises(InputImageError):
        flat_region_edges(white, alpha[:-1])


# ---------------------------------------------------------------------------------- clean_sketch
def noisy_pencil_stroke(rng: np.random.Generator, width: int = 6, specks: int = 60
                        ) -> tuple[np.ndarray, tuple[tuple[int, int], tuple[int, int]]]:
    ends = ((16, 20), (112, 100))
    img = Image.new("L", (S, S), 255)
    ImageDraw.Draw(img).line(ends, fill=90, width=width)
    a = np.asarray(img).astype(np.float64)
    a += rng.normal(0, 12, a.shape)  # paper and graphite noise
    stroke = a < 200
    a[stroke & (rng.random(a.shape) < 0.15)] += 80  # pencil grain: light holes inside the stroke
    for y, x in zip(rng.integers(0, S - 2, specks), rng.integers(0, S - 2, specks)):
        a[y:y + 2, x:x + 2] = rng.integers(40, 120)  # 2×2 dark specks
    return np.clip(a, 0, 255).astype(np.uint8), ends


def _distance_to_segment(p0, p1) -> np.ndarray:
    yy, xx = np.mgrid[:S, :S].astype(np.float64)
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy), 0, 1)
    return np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))


def test_clean_sketch_gives_one_thin_binary_line_and_drops_specks():
    img, ends = noisy_pencil_stroke(np.random.default_rng(0))
    out = clean_sketch(img)
    assert out.dtype == np.uint8 and out.shape == (S, S)
    assert set(np.unique(out)) <= {0, 255}
    ink = out == 0
    dist = _distance_to_segment(*ends)
    assert not ink[dist > 4].any(), "specks or stray lines survived away from the stroke"
    length = np.hypot(112 - 16, 100 - 20)
    # A thin line: about one pixel per unit length (not the 6-px-wide stroke, not two outlines).
    assert 0.6 * length < ink.sum() < 1.3 * length
    assert ndi.label(ink, structure=EIGHT)[1] == 1
    assert ndi.label(~ink)[1] == 1, "the line has loops (the stroke was outlined, not centred)"
    # It follows the whole stroke.
    for t in np.linspace(0.05, 0.95, 10):
        x, y = 16 + t * 96, 20 + t * 80
        near = np.hypot(*(np.mgrid[:S, :S] - np.array([y, x])[:, None, None])) < 3
        assert ink[near].any(), f"gap in the line at t={t:.2f}"
    thicker = clean_sketch(img, target_thickness=3)
    assert 2 * ink.sum() < (thicker == 0).sum()


def test_clean_sketch_centres_wide_strokes_with_the_top_hat():
    img, ends = noisy_pencil_stroke(np.random.default_rng(1), width=11, specks=0)
    ink = clean_sketch(img, stroke_radius=6) == 0
    assert ndi.label(~ink)[1] == 1 and ndi.label(ink, structure=EIGHT)[1] == 1
    assert not ink[_distance_to_segment(*ends) > 6].any()
    # XDoG alone outlines an 11-px stroke on both sides: two lines or loops, never one centred line.
    outlined = clean_sketch(img, stroke_radius=0) == 0
    assert ndi.label(~outlined)[1] > 1 or ndi.label(outlined, structure=EIGHT)[1] > 1 or \
        outlined.sum() > 1.5 * ink.sum()


def test_clean_sketch_rejects_bad_arguments():
    img = np.full((16, 16), 255, np.uint8)
    assert (clean_sketch(img) == 255).all()
    with pytest.raises(InputImageError):
        clean_sketch(img, target_thickness=0)
    with pytest.raises(InputImageError):
        clean_sketch(img.astype(np.float64))


def test_smoke_real_pencil_sketch():
    path = SHARED / "sketches" / "fig14_pepper.png"
    if not path.is_file():
        pytest.skip("../shared/data/sketches not available")
    from linecolor.raster.imageio import open_image, to_gray

    gray = np.asarray(to_gray(open_image(path))).copy()
    lines = xdog(gray)
    assert (lines > 200).mean() > 0.8
    clean = clean_sketch(gray)
    assert set(np.unique(clean)) <= {0, 255}
    assert 0.01 < (clean == 0).mean() < 0.15


def outlined_picture() -> np.ndarray:
    """A coloured drawing: a 2-px black outline round a red disc, a wide black bar, a 2-px red stripe, white paper."""
    picture = Image.new("RGB", (96, 96), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    draw.ellipse([10, 10, 50, 50], fill=(210, 40, 40), outline=(0, 0, 0), width=2)
    draw.rectangle([60, 10, 85, 40], fill=(0, 0, 0))  # black hair: a colour, not a line
    draw.rectangle([10, 70, 85, 71], fill=(220, 20, 20))  # a thin red stripe: a colour too
    return np.asarray(picture).copy()


def test_drawn_outlines_are_thin_dark_strokes_not_dark_areas_or_thin_colours():
    picture = outlined_picture()
    outlines = drawn_outlines(picture)
    ink = (picture.max(axis=2) < 60)
    ring = ink.copy()
    ring[:, 55:] = False
    assert outlines[ring].mean() > 0.9  # the disc's outline
    assert not outlines[10:41, 60:86][3:-3, 3:-3].any()  # inside the wide black bar
    assert not outlines[70:72].any()  # the red stripe
    assert not outlines[~ink].any()  # nothing but dark pixels
    # a wider disk takes the bar as a stroke too: the disk sets how wide a line may be
    assert drawn_outlines(picture, radius=20)[25, 72]


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32)])
def test_drawn_outlines_rejects_what_is_not_an_rgb_picture(bad):
    with pytest.raises(InputImageError):
        drawn_outlines(bad)
    with pytest.raises(InputImageError):
        drawn_outlines(np.zeros((8, 8, 3), np.uint8), radius=0)
