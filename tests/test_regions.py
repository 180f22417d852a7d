"""The gap-tolerant region engine (linecolor.raster.regions) and the colouring on it (linecolor.raster.colouring)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from linecolor.errors import LinecolorError
from linecolor.evaluation.regions import cut_gaps, place_hints, region_metrics, true_regions
from linecolor.raster.colouring import assign_hints, colour_layer, multiply_lines
from linecolor.raster.regions import AnalysisCache, analyse, analysis_id, ink_threshold, stroke_width

SIZE = 240
WIDTH = 4


def ring(gap: float = 0.0, size: int = SIZE, width: int = WIDTH) -> np.ndarray:
    """A circle outline of ``width`` px on white, with one gap of ``gap`` px (along the stroke) on its right."""
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    c, r = size // 2, size // 3
    draw.ellipse([c - r, c - r, c + r, c + r], outline=0, width=width)
    line = np.asarray(image).copy()
    if gap:
        line[int(c - gap / 2): int(np.ceil(c + gap / 2)), c + r - 2 * width: c + r + 2 * width] = 255
    return line


def dots(shape, points) -> tuple[np.ndarray, np.ndarray]:
    """Hint layer with filled discs ``(y, x, radius, (r, g, b))``."""
    rgb = np.zeros(shape + (3,), np.uint8)
    mask = np.zeros(shape, bool)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for y, x, radius, colour in points:
        disc = (yy - y) ** 2 + (xx - x) ** 2 <= radius ** 2
        rgb[disc], mask[disc] = colour, True
    return rgb, mask


INSIDE, OUTSIDE = (SIZE // 2, SIZE // 2), (10, 10)


def test_a_ring_without_gaps_has_inside_and_outside():
    analysis = analyse(ring())
    assert analysis.num_regions == 2
    assert analysis.region_at(*INSIDE[::-1]) != analysis.region_at(*OUTSIDE[::-1])
    assert stroke_width(ring() < 128) == pytest.approx(WIDTH, abs=1.5)


@pytest.mark.parametrize("gap", [4, 8, 12])
def test_gaps_up_to_the_setting_are_closed(gap):
    line = ring(gap)
    assert analyse(line, gap=0).num_regions == 1  # a paint bucket leaks through the gap
    analysis = analyse(line, gap=16)
    assert analysis.num_closures >= 1
    assert analysis.region_at(*INSIDE[::-1]) != analysis.region_at(*OUTSIDE[::-1])


def test_gaps_wider_than_the_setting_stay_open():
    line = ring(24)
    analysis = analyse(line, gap=12)
    assert analysis.region_at(*INSIDE[::-1]) == analysis.region_at(*OUTSIDE[::-1])
    closed = analyse(line, gap=40)
    assert closed.region_at(*INSIDE[::-1]) != closed.region_at(*OUTSIDE[::-1])


def test_the_automatic_gap_follows_the_stroke_width_and_closes_a_few_widths():
    for width in (4, 8):
        measured = analyse(ring(width=width)).stroke_width
        analysis = analyse(ring(2.5 * measured, width=width))  # a gap of two and a half stroke widths
        assert analysis.gap == pytest.approx(4 * analysis.stroke_width)
        assert analysis.region_at(*INSIDE[::-1]) != analysis.region_at(*OUTSIDE[::-1])
    assert analyse(ring(width=8)).gap > analyse(ring(width=4)).gap


def test_lines_that_come_close_without_ending_are_not_closed():
    """An hourglass: two lines pass 6 px apart (no stroke ends there): one region, not two."""
    image = Image.new("L", (SIZE, SIZE), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(20, 20), (117, 120), (20, 220)], fill=0, width=3)
    draw.line([(220, 20), (123, 120), (220, 220)], fill=0, width=3)
    analysis = analyse(np.asarray(image), gap=16)
    assert analysis.region_at(120, 40) == analysis.region_at(120, 200)
    assert analysis.num_closures == 0


def test_bad_settings_are_refused():
    for bad in (-1, float("nan"), 1e9, "8", True):
        with pytest.raises(LinecolorError, match="gap"):
            analyse(ring(), gap=bad)
    with pytest.raises(LinecolorError, match="uint8"):
        analyse(ring().astype(np.float32))


def test_blank_and_grey_pages_have_no_ink():
    blank = np.full((50, 60), 255, np.uint8)
    assert ink_threshold(blank) == 0 and analyse(blank).num_regions == 1
    assert analyse(np.full((50, 60), 200, np.uint8)).num_regions == 1  # grey paper is paper


def test_pencil_grey_lines_are_ink():
    line = ring(0).astype(np.int32)
    pencil = np.where(line < 128, 170, 245).astype(np.uint8)  # light grey strokes on off-white paper
    analysis = analyse(pencil)
    assert analysis.region_at(*INSIDE[::-1]) != analysis.region_at(*OUTSIDE[::-1])


# ------------------------------------------------------------------------------------------ colouring
def test_hints_colour_only_their_region_through_a_closed_gap():
    analysis = analyse(ring(8), gap=16)
    rgb, mask = dots(analysis.shape, [(*INSIDE, 5, (220, 40, 30))])
    layer = colour_layer(analysis, assign_hints(analysis, rgb, mask))
    assert (layer[INSIDE] == (220, 40, 30)).all()
    assert (layer[OUTSIDE] == 255).all()  # the unhinted outside stays white: no flooding through the gap


def test_two_colours_in_one_region_divide_it_into_flat_parts():
    line = np.full((120, 300), 255, np.uint8)
    line[[0, -1], :] = 0
    line[:, [0, -1]] = 0  # one long region
    analysis = analyse(line)
    rgb, mask = dots(line.shape, [(60, 40, 4, (200, 0, 0)), (60, 260, 4, (0, 0, 200))])
    colours = assign_hints(analysis, rgb, mask)
    assert len(colours.divisions) == 1
    layer = colour_layer(analysis, colours)
    left, right = layer[5:115, 5:100].reshape(-1, 3), layer[5:115, 200:295].reshape(-1, 3)
    assert (left == (200, 0, 0)).all() and (right == (0, 0, 200)).all()
    distinct = np.unique(layer[1:-1, 1:-1].reshape(-1, 3), axis=0)
    assert len(distinct) == 2  # each part flat: no blend between them


def test_similar_colours_in_one_region_are_one_colour():
    analysis = analyse(ring())
    rgb, mask = dots(analysis.shape, [(100, 100, 4, (200, 40, 30)), (140, 140, 4, (204, 42, 33))])
    colours = assign_hints(analysis, rgb, mask)
    assert not colours.divisions
    layer = colour_layer(analysis, colours)
    assert len(np.unique(layer[90:150, 90:150].reshape(-1, 3), axis=0)) == 1


def test_a_stroke_spilling_over_a_line_does_not_colour_the_neighbour():
    analysis = analyse(ring())
    c, r = SIZE // 2, SIZE // 3
    # A brush dot of radius 10 centred 2 px inside the ring's line (drawn on x = c + r − 4 … c + r): its rim
    # crosses the line by a few pixels.
    rgb, mask = dots(analysis.shape, [(c, c + r - WIDTH - 2, 10, (30, 160, 60))])
    assert mask[c, c + r + 2:].any()  # the dot does reach past the line
    layer = colour_layer(analysis, assign_hints(analysis, rgb, mask))
    assert (layer[INSIDE] == (30, 160, 60)).all()
    assert (layer[OUTSIDE] == 255).all() and (layer[c, c + r + 6] == 255).all()


def test_a_dot_on_a_line_colours_the_region_it_reaches_deepest():
    analysis = analyse(ring())
    c, r = SIZE // 2, SIZE // 3
    rgb, mask = dots(analysis.shape, [(c, c + r - 1, 2, (10, 20, 200))])
    colours = assign_hints(analysis, rgb, mask)
    assert colours.hinted.sum() == 1


def test_unhinted_regions_take_the_given_suggestions_and_lines_multiply_on():
    analysis = analyse(ring())
    rgb, mask = dots(analysis.shape, [(*INSIDE, 5, (220, 40, 30))])
    colours = assign_hints(analysis, rgb, mask)
    suggestion = np.full((analysis.num_regions + 1, 3), (100, 150, 200), np.float32)
    layer = colour_layer(analysis, colours, suggestion)
    assert (layer[OUTSIDE] == (100, 150, 200)).all() and (layer[INSIDE] == (220, 40, 30)).all()
    out = multiply_lines(layer, analysis.line)
    ink = analysis.line < 20
    assert (out[ink] <= 20).all() and (out[INSIDE] == (220, 40, 30)).all()
    assert np.array_equal(multiply_lines(layer, np.full(analysis.shape, 255, np.uint8)), layer)


# -------------------------------------------------------------------------------------------- cache
def test_the_cache_returns_the_same_analysis_and_is_bounded():
    first = ring(6)
    cache = AnalysisCache(max_bytes=3 * analyse(first).nbytes)
    a = cache.get_or_compute(first)
    assert cache.get_or_compute(first.copy()) is a and (cache.hits, cache.misses) == (1, 1)
    assert cache.get_or_compute(first, gap=3) is not a  # other settings, other analysis
    assert analysis_id(first, None) != analysis_id(first, 3) != analysis_id(ring(7), 3)
    for g in (2, 4, 6, 8, 10):
        cache.get_or_compute(first, gap=g)
    assert cache.nbytes <= cache.max_bytes and len(cache) == 3
    assert cache.get(a.id) is None  # the least recently used went first


# ------------------------------------------------------------------------------------------ metrics
def test_cut_gaps_cuts_seeded_gaps_and_the_metrics_see_the_leak():
    line = ring()
    colour = np.full(line.shape + (3,), 255, np.uint8)
    colour[np.asarray(Image.fromarray(line)) >= 0] = 255
    inside = analyse(line).labels == analyse(line).region_at(*INSIDE[::-1])
    colour[inside] = (200, 30, 30)
    truth = true_regions(line, colour)
    gapped, count = cut_gaps(line, np.random.default_rng(0))
    again, _ = cut_gaps(line, np.random.default_rng(0))
    assert count >= 2 and np.array_equal(gapped, again) and not np.array_equal(gapped, line)
    rgb, mask, hinted = place_hints(truth, np.random.default_rng(1), fraction=1.0)
    perfect = multiply_lines(np.where(inside[..., None], np.uint8((200, 30, 30)), np.uint8(255)), line)
    metrics = region_metrics(perfect, truth, hinted)
    assert metrics["hinted_pixel_accuracy"] == 1.0 and metrics["bleed"] == 0.0
    # Half hinted: only the inside (red) gets a hint; a paint bucket on the gapped copy floods the outside red.
    half_rgb, half_mask = rgb.copy(), mask & inside
    leak = multiply_lines(colour_layer(analyse(gapped, gap=0), assign_hints(analyse(gapped, gap=0), half_rgb,
                                                                             half_mask)), gapped)
    only_inside = np.zeros_like(hinted)
    only_inside[truth.labels[INSIDE]] = True
    assert region_metrics(leak, truth, only_inside)["intrusion"] > 0.9
    engine = analyse(gapped)
    kept = multiply_lines(colour_layer(engine, assign_hints(engine, half_rgb, half_mask)), gapped)
    assert region_metrics(kept, truth, only_inside)["intrusion"] < 0.01


def _disc_hints(shape, hints):
    rgb, mask = np.zeros((*shape, 3), np.uint8), np.zeros(shape, bool)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    for cy, cx, colour in hints:
        on = np.hypot(yy - cy, xx - cx) <= 4
        rgb[on], mask[on] = colour, True
    return rgb, mask


def test_a_hint_beside_an_unclosed_gap_does_not_flood_the_paper_behind_it():
    """Two rooms joined by a door too wide to close; one hint deep in the left room, one just inside the right room
    by the door: each room takes its own colour, the parts meet in the door (before output version 8 the hint by
    the door took most of the left room)."""
    line = np.full((200, 420), 255, np.uint8)
    line[[0, -1], :] = 0
    line[:, [0, -1]] = 0
    line[:, 208:212] = 0
    line[80:120, 208:212] = 255  # the door: a 40 px opening, wider than the gap setting
    analysis = analyse(line, gap=8)
    assert analysis.region_at(30, 100) == analysis.region_at(390, 100), "the door must stay open for this test"
    rgb, mask = _disc_hints(line.shape, [(100, 20, (200, 0, 0)), (100, 222, (0, 0, 200))])
    layer = colour_layer(analysis, assign_hints(analysis, rgb, mask))
    left, right = layer[5:195, 5:200].reshape(-1, 3), layer[5:195, 220:415].reshape(-1, 3)
    assert (left == (200, 0, 0)).all(axis=1).mean() > 0.97
    assert (right == (0, 0, 200)).all(axis=1).mean() > 0.97


def test_a_second_colour_near_the_rim_of_a_round_region_still_gets_its_side():
    line = np.full((300, 300), 255, np.uint8)
    yy, xx = np.mgrid[:300, :300]
    radius = np.hypot(yy - 150, xx - 150)
    line[(radius > 120) & (radius < 125)] = 0
    analysis = analyse(line)
    rgb, mask = _disc_hints(line.shape, [(150, 150, (200, 0, 0)), (150, 250, (0, 0, 200))])
    layer = colour_layer(analysis, assign_hints(analysis, rgb, mask))
    inside = radius < 118
    blue = (layer == (0, 0, 200)).all(axis=2) & inside
    assert 0.08 < blue.sum() / inside.sum() < 0.5  # a real part, on the rim hint's side
    assert blue[:, 200:].sum() > 0.9 * blue.sum()


@pytest.mark.parametrize("dark_share", [0.02, 0.5])
def test_multiply_lines_is_exact_on_sparse_and_dense_line_art(dark_share):
    """Both ways of multiplying (only the non-white line pixels, or every pixel) give round(colour · line / 255)."""
    rng = np.random.default_rng(3)
    layer = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    line = np.where(rng.random((64, 80)) < dark_share, rng.integers(0, 255, (64, 80)), 255).astype(np.uint8)
    expected = np.floor(layer.astype(np.float64) * line[..., None] / 255 + 0.5).astype(np.uint8)
    assert np.array_equal(multiply_lines(layer, line), expected)


def _chinless_head(opening: float, width: int = 6) -> np.ndarray:
    """A head like the bundled panda's: a circle outline open at the bottom, with a chin (an arc of the same
    circle) in the opening that leaves an ``opening`` px gap on each side; the ends head at each other."""
    image = Image.new("L", (SIZE, SIZE), 255)
    draw = ImageDraw.Draw(image)
    c, r, chin = SIZE // 2, 80, 30.0  # the chin spans ±30° around the bottom (90° in PIL's clockwise angles)
    side = chin + np.degrees(opening / r)
    box = [c - r, c - r, c + r, c + r]
    draw.arc(box, start=90 + side, end=450 - side, fill=0, width=width)
    draw.arc(box, start=90 - chin, end=90 + chin, fill=0, width=width)
    return np.asarray(image)


def test_the_automatic_gap_joins_wider_gaps_between_ends_that_face_each_other_where_they_enclose_a_shape():
    """Gaps of six stroke widths on both sides of a chin (more than the automatic four): two closing strokes
    together separate the head from the paper. A gap set by hand stays a hard limit."""
    head = _chinless_head(36)
    auto = analyse(head)
    assert auto.gap < 36 <= 2 * auto.gap, "the openings must lie between the automatic gap and twice it"
    assert auto.region_at(SIZE // 2, SIZE // 2) != auto.region_at(5, 5)
    manual = analyse(head, gap=auto.gap)
    assert manual.region_at(SIZE // 2, SIZE // 2) == manual.region_at(5, 5)


def test_facing_ends_that_divide_nothing_are_not_joined():
    """Two strokes on one line with a wide gap between them, in open paper (cheek lines either side of a nose):
    the ends face each other, but a closing stroke would only draw a line the artist left out."""
    image = Image.new("L", (SIZE, SIZE), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(20, 120), (100, 120)], fill=0, width=6)
    draw.line([(136, 120), (220, 120)], fill=0, width=6)
    analysis = analyse(np.asarray(image))
    assert analysis.gap < 36 <= 2 * analysis.gap
    assert analysis.num_closures == 0 and not analysis.closures.any()


def test_facing_ends_that_would_only_cut_off_a_pocket_are_not_joined():
    """Two hooks on a base line whose tips face each other 36 px apart (two spikes of a virus): joining them
    would cut off a pocket far smaller than the closing stroke's length squared, a region nobody drew."""
    image = Image.new("L", (SIZE, SIZE), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(40, 150), (200, 150)], fill=0, width=6)
    draw.line([(82, 150), (82, 130), (102, 130)], fill=0, width=6)
    draw.line([(158, 150), (158, 130), (138, 130)], fill=0, width=6)
    line = np.asarray(image)
    analysis = analyse(line)
    assert analysis.gap < 36 <= 2 * analysis.gap
    assert analysis.region_at(120, 140) == analysis.region_at(120, 60)
    assert analysis.num_closures == 0


def test_a_channel_the_coarse_grid_cannot_see_does_not_leak():
    """A thick ring (analysed on a grid of 2-pixel cells) cut through by a one-pixel channel: the grid sees no
    cut, so no stroke end and no closing stroke; the regions must still not leak through it."""
    line = ring(width=20).copy()
    c, r = SIZE // 2, SIZE // 3
    column = c + 1 if c % 2 == 0 else c  # odd: the cell it falls in also holds ink
    line[c - r - 20: c - r + 20, column] = 255
    assert analyse(line, gap=0).num_regions == 1, "the channel must cut the ring for this test"
    analysis = analyse(line)
    assert analysis.stroke_width >= 10, "the drawing must be analysed on a coarser grid for this test"
    assert analysis.region_at(*INSIDE[::-1]) != analysis.region_at(*OUTSIDE[::-1])


def ring_inside(size: int) -> np.ndarray:
    """The paper inside :func:`ring`'s circle (a little in from the stroke)."""
    yy, xx = np.mgrid[:size, :size]
    return np.hypot(yy - size // 2, xx - size // 2) < size // 3 - WIDTH


def test_run_region_evaluation_writes_its_report_on_the_split_asked_for(tmp_path, monkeypatch):
    """Two drawings of a fake source, the engine and the paint bucket: every row, the split passed through, the
    engine keeping every clean region's colour."""
    from linecolor.data import sources
    from linecolor.data.pair import Pair
    from linecolor.evaluation import baselines
    from linecolor.evaluation.regions import run_region_evaluation

    class Record:
        def __init__(self, name):
            self.name = name

        def load(self, size, extra_xdog=True):
            line = ring(size=size, width=4)
            colour = np.repeat(line[..., None], 3, axis=2).copy()
            colour[ring_inside(size)] = (200, 40, 40)
            return Pair(color=colour, lines=line[None], name=self.name)

    asked = []

    def fake_iter(source, path, split=None):
        asked.append(split)
        return iter([Record("a"), Record("b")])

    monkeypatch.setattr(sources, "iter_source", fake_iter)
    methods = {"flat_regions": baselines.flat_regions, "region_fill": baselines.region_fill}
    out = run_region_evaluation(methods, {"openmoji": tmp_path}, tmp_path / "out", size=SIZE, split="val",
                                progress=False)
    assert asked == ["val"]
    assert len(out["rows"]) == 2 * 2 * 2 * 2  # drawings × methods × clean/gapped × all/half
    clean = [r for r in out["rows"] if r["method"] == "flat_regions" and r["condition"] == "clean"
             and r["setting"] == "all"]
    assert all(r["hinted_pixel_accuracy"] == 1.0 for r in clean)
    assert "on the val splits" in out["files"]["md"].read_text()
    assert out["files"]["grid"].is_file()
