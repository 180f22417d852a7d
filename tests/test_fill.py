"""The region-fill guide: the fill itself, the generator's zero start on it, and the full-resolution sharpening."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

from linecolor.evaluation.baselines import flat_regions, hint_fill, region_fill
from linecolor.inference.composite import WorkGrid, compose, fill_guide
from linecolor.inference.conditioning import build_condition, letterbox_geometry
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.limits import SUGGESTION_STRENGTH
from linecolor.models import Colorizer
from linecolor.raster.colouring import assign_hints, colour_layer
from linecolor.raster.fill import (
    fill_under_ink,
    hint_fill_colours,
    paper_regions,
    region_fill_colours,
)
from linecolor.raster.regions import analyse

from conftest import tiny_model_config


def two_boxes(size: int = 64, width: int = 2) -> np.ndarray:
    """Paper with two closed rectangles side by side: three regions (left box, right box, outside)."""
    img = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(img)
    d.rectangle([size // 8, size // 4, size // 2 - 2, 3 * size // 4], outline=0, width=width)
    d.rectangle([size // 2 + 2, size // 4, 7 * size // 8, 3 * size // 4], outline=0, width=width)
    return np.asarray(img).copy()


def hints_at(shape: tuple[int, int], points: list[tuple[int, int, tuple[int, int, int]]]):
    rgb = np.zeros(shape + (3,), np.uint8)
    mask = np.zeros(shape, bool)
    for y, x, colour in points:
        rgb[y, x], mask[y, x] = colour, True
    return rgb, mask


def test_region_fill_takes_the_mean_hint_of_each_region_and_ignores_ink():
    line = two_boxes()
    rgb, mask = hints_at(line.shape, [(32, 16, (255, 0, 0)), (33, 17, (0, 0, 255)), (4, 4, (0, 255, 0))])
    rgb[16, 16], mask[16, 16] = (9, 9, 9), True  # on the left box's top edge: ink, ignored
    assert line[16, 16] < 128
    colour, filled = region_fill_colours(line, rgb, mask)
    assert filled[32, 16] and filled[2, 2] and not filled[32, 48]  # left box, outside; right box has no hint
    np.testing.assert_allclose(colour[40, 20], [127.5, 0, 127.5])  # mean of red and blue
    np.testing.assert_allclose(colour[2, 60], [0, 255, 0])
    np.testing.assert_allclose(colour[32, 48], [255, 255, 255])  # unhinted: white
    assert not filled[line < 128].any()
    # The baseline is this fill with the line multiplied on.
    base = region_fill(line, rgb, mask)
    np.testing.assert_array_equal(base[40, 20], [128, 0, 128])


def test_no_hints_fill_nothing():
    line = two_boxes()
    colour, filled = region_fill_colours(line, *hints_at(line.shape, []))
    assert not filled.any() and (colour == 255).all()


def test_condition_carries_the_fill_channels():
    line = two_boxes()
    rgb, mask = hints_at(line.shape, [(32, 16, (255, 0, 0))])
    plain = build_condition(line, rgb, mask, binarize=True)
    guided = build_condition(line, rgb, mask, binarize=True, fill_guide=True)
    assert plain.shape == (5, 64, 64) and guided.shape == (9, 64, 64)
    assert torch.equal(guided[:5], plain)
    assert guided[8, 32, 20] == 1 and guided[8, 32, 48] == 0
    assert torch.allclose(guided[5:8, 32, 20], torch.tensor([1.0, -1.0, -1.0]))
    assert (guided[5:8, 32, 48] == 0).all()


@pytest.mark.parametrize("variant", ["ladder", "spade"])
def test_untrained_fill_guided_generator_returns_the_fill(variant):
    """The zero-started output layer makes a fresh model answer exactly the paint-bucket fill where there is one."""
    torch.manual_seed(0)
    model = Colorizer(tiny_model_config(variant, fill_guide=True)).eval()
    line = two_boxes()
    rgb, mask = hints_at(line.shape, [(32, 16, (200, 40, 10))])
    cond = build_condition(line, rgb, mask, binarize=True, fill_guide=True)[None]
    with torch.no_grad():
        out = model(cond, None)[0]
    filled = cond[0, 8] > 0.5
    expected = torch.tensor([200, 40, 10]) / 127.5 - 1
    assert torch.allclose(out[:, filled].T, expected.expand(int(filled.sum()), 3), atol=1e-3)
    assert torch.allclose(out[:, ~filled], torch.zeros(1), atol=1e-6)  # elsewhere: nothing learned yet
    # A trained-looking model (non-zero output layer) no longer returns the plain fill.
    with torch.no_grad():
        model.generator.to_rgb.bias.fill_(0.5)
        assert not torch.allclose(model(cond, None)[0][:, filled].T, expected.expand(int(filled.sum()), 3), atol=0.1)


def regions_setup(hints=((128, 64, (255, 0, 0)),)):
    """Two boxes at 256², hints in them, the network working at 64²: (analysis, colours, letterbox, work grid)."""
    full = two_boxes(256, width=4)
    rgb, mask = hints_at(full.shape, list(hints))
    analysis = analyse(full)
    colours = assign_hints(analysis, rgb, mask)
    box = letterbox_geometry((256, 256), 64)
    grid = WorkGrid.of(analysis, box)
    small_line = np.asarray(Image.fromarray(full).resize((64, 64), Image.Resampling.BOX))
    return analysis, colours, box, grid, fill_guide(colours, grid, box, small_line)


def test_network_composite_keeps_crisp_full_resolution_regions_where_the_network_returns_the_fill():
    """When the network returns the fill it saw, the full-size output is the full-size flat colour, not a blurred
    up-scale of the 64² output."""
    analysis, colours, box, grid, fill = regions_setup(((128, 64, (255, 0, 0)), (128, 192, (0, 0, 255))))
    network_out = np.where(fill[1][..., None], fill[0], 200).astype(np.uint8)
    sharp = np.asarray(compose(analysis, colours, network_out, box, grid, fill, composite="network",
                               overlay_lines=False)).astype(float)
    flat = colour_layer(analysis, colours).astype(float)
    hinted = colours.hinted[analysis.labels]
    blurred = np.stack([np.asarray(Image.fromarray(network_out[..., c]).resize((256, 256), Image.Resampling.BICUBIC))
                        for c in range(3)], axis=-1).astype(float)
    err_sharp, err_blurred = np.abs(sharp - flat)[hinted].mean(), np.abs(blurred - flat)[hinted].mean()
    assert err_sharp < 1.0 < err_blurred, (err_sharp, err_blurred)


def test_pipeline_with_a_fill_guided_model_colours_hinted_regions():
    torch.manual_seed(0)
    pipe = ColorizationPipeline(Colorizer(tiny_model_config(fill_guide=True)))
    line = two_boxes(200, width=3)
    out = np.asarray(pipe(Image.fromarray(line), [(50, 100, "#ff0000", 3)]))
    assert out.shape == (200, 200, 3)
    inside = out[80:120, 35:80].reshape(-1, 3)
    assert (np.abs(inside.astype(int) - [255, 0, 0]).max(axis=1) <= 2).mean() > 0.99


def test_hint_fill_keeps_each_hint_colour_where_the_mean_fill_averages_them():
    line = np.full((256, 256), 255, np.uint8)
    line[:, 128] = 0  # two regions; all hints in the left one
    rgb, mask = hints_at(line.shape, [])
    rgb[40:45, 20:25], mask[40:45, 20:25] = (255, 0, 0), True
    rgb[200:205, 90:95], mask[200:205, 90:95] = (0, 0, 255), True
    mean, filled = region_fill_colours(line, rgb, mask)
    local, filled_too = hint_fill_colours(line, rgb, mask)
    np.testing.assert_array_equal(filled, filled_too)
    assert filled[:, :128].all() and not filled[:, 129:].any()
    np.testing.assert_allclose(mean[42, 22], [127.5, 0, 127.5])  # the paint bucket: both dots purple
    assert local[42, 22, 0] > 200 and local[42, 22, 2] < 55  # the red dot stays red
    assert local[202, 92, 2] > 200 and local[202, 92, 0] < 55  # the blue dot stays blue
    np.testing.assert_allclose(local[120, 60], [127.5, 0, 127.5], atol=1.0)  # far from both: the region mean
    assert (local[:, 129:] == 255).all()  # nothing leaks across the line
    out = hint_fill(line, rgb, mask)
    assert out.dtype == np.uint8 and np.array_equal(out[42, 22], np.rint(local[42, 22]))  # paper: no darkening


def test_regions_composite_gives_flat_network_colours_to_unhinted_regions():
    analysis, colours, box, grid, fill = regions_setup()
    ramp = np.linspace(0, 255, 64)
    network_out = np.stack([np.tile(ramp, (64, 1))] * 3, axis=-1).round().astype(np.uint8)  # a left-right ramp
    out = np.asarray(compose(analysis, colours, network_out, box, grid, fill, suggestion_strength=1.0,
                             overlay_lines=False)).astype(int)
    right_box = out[70:186, 140:220]
    assert np.ptp(right_box.reshape(-1, 3), axis=0).max() == 0  # one flat colour from the network's ramp
    assert 100 < right_box[0, 0, 0] < 250
    left_box = out[70:186, 40:110]
    assert (left_box == [255, 0, 0]).all()  # the hint, not the ramp
    with pytest.raises(ValueError, match="composite"):
        compose(analysis, colours, network_out, box, grid, fill, composite="blend")


def test_pipeline_rejects_an_unknown_composite():
    from linecolor.errors import LinecolorError

    pipe = ColorizationPipeline(Colorizer(tiny_model_config(fill_guide=True)))
    with pytest.raises(LinecolorError, match="composite"):
        pipe(Image.fromarray(two_boxes()), composite="blend")


def test_fill_under_ink_gives_every_ink_pixel_its_nearest_paper_colour():
    line = np.full((9, 12), 255, np.uint8)
    line[:, 5:8] = 60  # a 3-pixel-wide vertical line between a left and a right region
    labels, _ = paper_regions(line)
    colours = np.zeros((9, 12, 3), np.float32)
    colours[:, :5] = (255, 0, 0)
    colours[:, 8:] = (0, 0, 255)
    colours[:, 5:8] = (7, 7, 7)  # whatever the layer held under the line
    fill_under_ink(colours, labels)
    np.testing.assert_array_equal(colours[:, 5], np.tile([255, 0, 0], (9, 1)))  # next to the left region
    np.testing.assert_array_equal(colours[:, 7], np.tile([0, 0, 255], (9, 1)))  # next to the right region
    assert colours[4, 6].tolist() in ([255, 0, 0], [0, 0, 255])  # the middle: one of its two equally near sides
    np.testing.assert_array_equal(colours[:, :5], np.tile([255, 0, 0], (9, 5, 1)))  # paper untouched
    for labels_only in (np.zeros((4, 4), int), np.ones((4, 4), int)):  # all ink, all paper: nothing to do
        layer = np.arange(48.0).reshape(4, 4, 3)
        fill_under_ink(layer, labels_only)
        np.testing.assert_array_equal(layer, np.arange(48.0).reshape(4, 4, 3))


def test_hint_fill_darkens_the_region_colour_under_anti_aliased_lines():
    line = np.full((64, 64), 255, np.uint8)
    line[:, 31] = 100  # an anti-aliased edge pixel (ink: below the threshold)
    line[:, 32] = 0
    rgb, mask = hints_at(line.shape, [(20, 10, (200, 40, 0))])
    out = hint_fill(line, rgb, mask)
    np.testing.assert_array_equal(out[10, 31], np.rint(np.array([200, 40, 0]) * 100 / 255))  # not grey 100
    assert (out[:, 32] == 0).all()
    np.testing.assert_array_equal(out[10, 40], [255, 255, 255])  # the unhinted right side stays paper


def test_suggestion_strength_pales_the_network_colour_of_unhinted_regions_towards_white():
    analysis, colours, box, grid, fill = regions_setup()
    network_out = np.full((64, 64, 3), (55, 155, 255), np.uint8)
    right = {s: np.asarray(compose(analysis, colours, network_out, box, grid, fill, suggestion_strength=s,
                                   overlay_lines=False))[120, 180].astype(int)
             for s in (0.0, 0.5, 1.0, SUGGESTION_STRENGTH)}
    np.testing.assert_array_equal(right[0.0], [255, 255, 255])
    np.testing.assert_array_equal(right[1.0], [55, 155, 255])
    np.testing.assert_array_equal(right[0.5], [155, 205, 255])
    expected = np.rint(255 + SUGGESTION_STRENGTH * (np.array([55, 155, 255]) - 255))
    np.testing.assert_array_equal(right[SUGGESTION_STRENGTH], expected)
    left = np.asarray(compose(analysis, colours, network_out, box, grid, fill, suggestion_strength=0.0))[120, 60]
    np.testing.assert_array_equal(left, [255, 0, 0])  # hinted regions keep the hint at every strength


def test_suggestions_leave_out_the_networks_dark_copy_of_the_lines():
    """The network darkens the working pixels along its lines; averaged in, a small region's suggestion turned
    grey. The mean is taken away from the lines, so a region the network paints blue is suggested blue."""
    from linecolor.inference.composite import line_rim, suggestions

    analysis, colours, box, grid, fill = regions_setup()
    network_out = np.full((64, 64, 3), (55, 155, 255), np.uint8)
    rim = line_rim(grid)
    assert rim.any() and not rim.all()
    network_out[rim] = 30
    right = grid.labels[32, 48]
    np.testing.assert_allclose(suggestions(network_out, grid, 1.0)[right], [55, 155, 255], atol=0.01)


def test_suggestions_take_the_colour_most_of_a_region_has():
    """The network blurs a neighbour's colour into a region's edge; averaged in, the suggestion became a muted
    in-between colour the network painted nowhere. A region painted blue over most of its area is suggested blue
    even when a third of it (away from the lines) carries the neighbour's red."""
    from linecolor.inference.composite import line_rim, suggestions

    analysis, colours, box, grid, fill = regions_setup()
    right = grid.labels[32, 48]
    inside = (grid.labels == right) & ~line_rim(grid)
    network_out = np.full((64, 64, 3), (55, 155, 255), np.uint8)
    cols = np.nonzero(inside)[1]
    bled = inside & (np.arange(64)[None, :] < np.quantile(cols, 0.33))
    assert 0.2 < bled.sum() / inside.sum() < 0.45
    network_out[bled] = (230, 40, 40)
    np.testing.assert_allclose(suggestions(network_out, grid, 1.0)[right], [55, 155, 255], atol=0.01)


def test_region_medians_are_numpys_medians_per_label_and_channel():
    from linecolor.inference.composite import region_medians

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (40, 30, 3)).astype(np.uint8)
    labels = rng.integers(0, 7, (40, 30))
    labels[labels == 4] = 5  # label 4 has no pixel; 7 (count 8) is past every label
    where = rng.random((40, 30)) < 0.6
    medians, counts = region_medians(image, labels, 8, where)
    for label in range(8):
        inside = where & (labels == label)
        assert counts[label] == inside.sum()
        expected = np.median(image[inside], axis=0) if inside.any() else np.zeros(3)
        np.testing.assert_array_equal(medians[label], expected)
    assert counts[4] == 0 and counts[7] == 0
    assert any(c > 0 and c % 2 == 0 for c in counts)  # an even count: the mean of the two middle values


def test_the_network_composite_shades_the_regions_flats():
    """Where the network's colour is even inside a region, the network composite is the regions composite, at
    every suggestion strength (unhinted regions take the suggestion, hinted ones their hints)."""
    analysis, colours, box, grid, fill = regions_setup()
    network_out = np.full((64, 64, 3), (55, 155, 255), np.uint8)
    for strength in (0.0, 0.5, 1.0):
        flat, shaded = (np.asarray(compose(analysis, colours, network_out, box, grid, fill, composite=c,
                                           suggestion_strength=strength)).astype(int) for c in ("regions", "network"))
        assert np.abs(flat - shaded).max() <= 1, strength


def test_the_network_composite_keeps_the_networks_shading_but_not_its_dark_rims_along_lines():
    from linecolor.inference.composite import shading_ratio
    from linecolor.limits import SHADING_STRENGTH

    analysis, colours, box, grid, fill = regions_setup()
    ys, xs = np.mgrid[0:64, 0:64]
    # The network shades the right box from dark (top) to light (bottom) and draws a dark rim along every line.
    network_out = np.repeat((140 + ys * 1.5)[..., None], 3, axis=2)
    small_ink = grid.line[:64, :64] < 128
    near_ink = ndimage.binary_dilation(small_ink, iterations=2)
    network_out[near_ink & ~small_ink] = 30
    network_out = network_out.astype(np.uint8)
    ratio = shading_ratio(network_out, grid)
    right = grid.labels == grid.labels[32, 48]
    inner = right & ~ndimage.binary_dilation(small_ink, iterations=3)
    # The gradient survives inside the region (top darker than bottom, by the shading strength) ...
    top, bottom = ratio[16, 48, 0], ratio[48, 48, 0]
    assert bottom - top > 0.05 and (bottom - top) == pytest.approx(SHADING_STRENGTH * 32 * 1.5 / (188 + 8), abs=0.03)
    # ... the rim beside the lines does not: it takes its neighbours' shading, not the network's dark 30.
    rim = right & near_ink & ~small_ink
    assert ratio[rim].min() > ratio[inner].min() - 0.05
    shaded = np.asarray(compose(analysis, colours, network_out, box, grid, fill, composite="network",
                                suggestion_strength=1.0, overlay_lines=False)).astype(int)
    flat = np.asarray(compose(analysis, colours, network_out, box, grid, fill, composite="regions",
                              suggestion_strength=1.0, overlay_lines=False)).astype(int)
    full_right = analysis.labels == analysis.labels[128, 192]
    beside = full_right & ndimage.binary_dilation(analysis.line < 128, iterations=3)
    assert (shaded[beside] < flat[beside] - 40).mean() < 0.02  # no dark halo at full size either


def test_regions_composite_at_strength_0_is_the_flat_regions_baseline():
    """The ablation row of the evaluation is exactly the composite without the network's colours."""
    torch.manual_seed(0)
    pipe = ColorizationPipeline(Colorizer(tiny_model_config(fill_guide=True)))
    line = two_boxes(200, width=3)
    line[60:140, 100] = 90  # an anti-aliased stroke inside the right box: ink, coloured under by its neighbours
    rgb, mask = hints_at(line.shape, [(100, 50, (200, 60, 20)), (100, 170, (20, 90, 200))])
    alpha = np.where(mask, 255, 0).astype(np.uint8)
    out = np.asarray(pipe(Image.fromarray(line), Image.fromarray(np.dstack([rgb, alpha]), "RGBA"),
                          suggestion_strength=0.0)).astype(int)
    baseline = flat_regions(line, rgb, mask).astype(int)
    assert np.abs(out - baseline).max() <= 1  # integer vs float rounding of the multiplied line
    assert (out[2:10, 2:10] == 255).all()  # the unhinted outside stays white


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf"), True, "0.5"])  # None: the model's default
def test_pipeline_rejects_a_suggestion_strength_outside_0_1(bad):
    from linecolor.errors import LinecolorError

    pipe = ColorizationPipeline(Colorizer(tiny_model_config(fill_guide=True)))
    with pytest.raises(LinecolorError, match="suggestion_strength"):
        pipe(Image.fromarray(two_boxes()), suggestion_strength=bad)


def test_hint_fill_is_the_same_at_every_size():
    """The same drawing and strokes at 128², 256² and 512² (nearest-neighbour copies) fill the same, once the
    larger fills are averaged back to 128²: σ and the prior are both relative to the image. (Weighing the prior
    against a sum of per-pixel weights, as the first version did, lets a 4× larger stroke outweigh it 4× more.)"""
    line = two_boxes(128, width=2)
    rgb = np.zeros((128, 128, 3), np.uint8)
    mask = np.zeros((128, 128), bool)
    for (y, x), colour in [((50, 30), (230, 40, 40)), ((80, 50), (40, 40, 230)), ((60, 90), (40, 200, 40))]:
        rgb[y - 2:y + 3, x - 2:x + 3], mask[y - 2:y + 3, x - 2:x + 3] = colour, True
    small, filled = hint_fill_colours(line, rgb, mask)
    assert filled[50, 30] and filled[60, 90] and not filled[5, 5]
    for factor in (2, 4):
        up = [np.repeat(np.repeat(a, factor, 0), factor, 1) for a in (line, rgb, mask)]
        big, big_filled = hint_fill_colours(*up)
        np.testing.assert_array_equal(big_filled[::factor, ::factor], filled)
        back = big.reshape(128, factor, 128, factor, 3).mean(axis=(1, 3))
        paper = filled & ~ndimage.binary_dilation(line < 128)  # away from lines, where pixels do not mix
        gap = np.abs(back - small)[paper]
        assert gap.max() < 2.0, (factor, gap.max())  # the first version: 31 levels
    # the blend really varies inside the left box (so the comparison is not between two flat means)
    assert np.ptp(small[filled & (np.arange(128)[None, :] < 64)], axis=0).max() > 50


def test_hint_fill_on_cells_matches_the_direct_gaussian_blend():
    """From σ = 16 px the blend's sums are taken on cells (768²: σ = 24 px, 3-px cells); the colours must stay
    within a couple of levels of the direct full-resolution formula, and equal the region mean beyond the reach."""
    from linecolor.raster.fill import HINT_FILL_PRIOR, HINT_FILL_SIGMA

    size = 768
    line = two_boxes(size, width=4)
    rgb = np.zeros((size, size, 3), np.uint8)
    mask = np.zeros((size, size), bool)
    for (y, x), colour in [((300, 150), (230, 40, 40)), ((330, 190), (40, 40, 230)), ((400, 600), (40, 200, 40))]:
        rgb[y - 4:y + 5, x - 4:x + 5], mask[y - 4:y + 5, x - 4:x + 5] = colour, True
    colour, filled = hint_fill_colours(line, rgb, mask)
    labels, _ = paper_regions(line)
    s = HINT_FILL_SIGMA * size / 256
    direct = np.full_like(colour, 255.0)
    for r in np.unique(labels[mask & (labels > 0)]):
        region = labels == r
        m = (mask & region).astype(np.float64)
        weight = ndimage.gaussian_filter(m, s, mode="constant", truncate=3.0)
        mean = rgb[mask & region].mean(axis=0)
        for c in range(3):
            weighted = ndimage.gaussian_filter(rgb[..., c] * m, s, mode="constant", truncate=3.0)
            direct[..., c][region] = ((weighted + HINT_FILL_PRIOR * mean[c]) / (weight + HINT_FILL_PRIOR))[region]
    gap = np.abs(colour - direct)[filled]
    assert gap.mean() < 0.05 and gap.max() < 2.0, (gap.mean(), gap.max())
    left = labels == labels[300, 150]
    assert np.ptp(colour[filled & left], axis=0).max() > 50  # a real blend, not flat
    # 290 px from the nearest hint (the reach is 3σ + one cell = 75 px): exactly the region's mean hint colour
    np.testing.assert_array_equal(colour[560, 370], rgb[mask & left].mean(axis=0))
