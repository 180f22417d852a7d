"""Tests for linecolor.data.augment (flip, random resized crop, HSV jitter, the training pair pipeline)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage.color import hsv2rgb, rgb2hsv
from skimage.draw import disk

from linecolor.config import AugmentConfig
from linecolor.data.augment import augment_pair, hflip, hsv_jitter, random_resized_crop
from linecolor.errors import ConfigError, InputImageError, LinecolorError
from linecolor.raster.resize import resize_line


def _pair(h: int = 120, w: int = 160, styles: int = 3, centre=(40, 110), radius=14):
    """White colour image with a red disk; line styles with the same disk in ink (style i also has value i)."""
    color = np.full((h, w, 3), 255, np.uint8)
    rr, cc = disk(centre, radius, shape=(h, w))
    color[rr, cc] = (220, 30, 40)
    lines = np.full((styles, h, w), 255, np.uint8)
    lines[:, rr, cc] = 0
    return color, lines


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    assert len(ys) > 0
    return np.array([ys.mean(), xs.mean()])


def _inside(mask: np.ndarray) -> bool:
    """The mask is non-empty and keeps two pixels away from the border."""
    return bool(mask.any()) and not (mask[:2].any() or mask[-2:].any() or mask[:, :2].any() or mask[:, -2:].any())


def test_hflip_is_an_aligned_involution():
    color, lines = _pair()
    fc, fl = hflip(color, lines)
    assert fc.shape == color.shape and fl.shape == lines.shape
    assert fc.dtype == np.uint8 and fl.dtype == np.uint8
    assert fc.flags.c_contiguous and fl.flags.c_contiguous
    assert not np.array_equal(fc, color)
    np.testing.assert_array_equal(fc[:, ::-1], color)
    # Aligned: the red disk and the ink disk moved to the same mirrored place.
    np.testing.assert_allclose(_centroid(fc[..., 1] < 128), _centroid(fl[0] < 128))
    np.testing.assert_allclose(_centroid(fc[..., 1] < 128)[1], 160 - 1 - 110, atol=0.01)
    back_c, back_l = hflip(fc, fl)
    np.testing.assert_array_equal(back_c, color)
    np.testing.assert_array_equal(back_l, lines)


def test_random_resized_crop_shapes_and_alignment():
    color, lines = _pair()
    centres = []
    for seed in range(40):
        c, ln = random_resized_crop(color, lines, np.random.default_rng(seed), out_size=64, scale_min=0.6)
        assert c.shape == (64, 64, 3) and c.dtype == np.uint8
        assert ln.shape == (3, 64, 64) and ln.dtype == np.uint8
        colour_mask = c[..., 1] < 128
        if not _inside(colour_mask):  # compare whole disks only; a cut disk's centroid depends on the threshold
            continue
        cc = _centroid(colour_mask)
        for s in range(3):  # every style got the same geometry
            np.testing.assert_allclose(_centroid(ln[s] < 128), cc, atol=0.75)
        centres.append(cc)
    assert len(centres) > 10
    # The crop really is random: the disk lands in different places.
    assert np.ptp(np.array(centres), axis=0).max() > 5


def test_crop_side_within_scale_range():
    # A checkerboard of 1-pixel columns reveals the crop's side: resized to out_size=side it would be identical.
    h, w = 50, 80
    color = np.zeros((h, w, 3), np.uint8)
    color[..., 0] = np.arange(w)[None, :]  # red channel = column index
    color[..., 1] = np.arange(h)[:, None]  # green channel = row index
    lines = np.full((1, h, w), 255, np.uint8)
    for seed in range(30):
        c, _ = random_resized_crop(color, lines, np.random.default_rng(seed), out_size=200, scale_min=0.5)
        # Linear ramps survive bilinear up-scaling: the crop spans these column/row ranges.
        span_x = int(c[..., 0].max()) - int(c[..., 0].min()) + 1
        span_y = int(c[..., 1].max()) - int(c[..., 1].min()) + 1
        assert abs(span_x - span_y) <= 1  # square
        assert 25 - 1 <= span_x <= 50


def test_thin_lines_survive_downscaling():
    h = w = 512
    line = np.full((h, w), 255, np.uint8)
    line[:, 301] = 0  # one-pixel vertical line
    line[77, :] = 0  # one-pixel horizontal line
    for out in (128, 100, 37):
        small = resize_line(line, out, out)
        assert small.shape == (out, out)
        assert small.min(axis=0).min() < 128
        # Every row still crosses the vertical line at ≥ 50 % darkness, every column the horizontal one.
        assert (small.min(axis=1) <= 128).all()
        assert (small.min(axis=0) <= 128).all()
        # Plain anti-aliased resizing would have lost them (this is why resize_line exists).
        plain = np.asarray(Image.fromarray(line).resize((out, out), Image.Resampling.BILINEAR))
        assert plain.min() > 128


def test_hsv_jitter_zero_is_identity_and_returns_a_new_array():
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = hsv_jitter(color, np.random.default_rng(1), 0.0, 0.0, 0.0)
    np.testing.assert_array_equal(out, color)
    assert out is not color and not np.shares_memory(out, color)
    # A vanishing but non-zero hue shift goes through the HSV round trip: equal within rounding.
    tiny = hsv_jitter(color, np.random.default_rng(1), 1e-9, 0.0, 0.0)
    assert np.abs(tiny.astype(int) - color).max() <= 1


def test_hsv_jitter_shifts_hue_by_the_drawn_amount():
    color = np.zeros((8, 8, 3), np.uint8)
    color[:4] = (200, 40, 40)  # saturated red
    color[4:] = (40, 160, 60)  # saturated green
    changed = 0
    for seed in range(8):
        out = hsv_jitter(color, np.random.default_rng(seed), 0.1, 0.0, 0.0)
        dh = np.random.default_rng(seed).uniform(-0.1, 0.1)  # the first draw of hsv_jitter
        shift = (rgb2hsv(out)[..., 0] - rgb2hsv(color)[..., 0] + 0.5) % 1.0 - 0.5
        np.testing.assert_allclose(shift, dh, atol=0.01)
        changed += abs(dh) > 0.01 and not np.array_equal(out, color)
    assert changed >= 5


def test_hsv_jitter_is_the_same_pixel_by_pixel_as_on_the_whole_image():
    """hsv_jitter converts each distinct colour once; that must give exactly the per-pixel conversion of the image
    (a reference written here with the same draws and float32 arithmetic on every pixel)."""
    rng = np.random.default_rng(3)
    flat = rng.integers(0, 256, (6, 3), dtype=np.uint8)[rng.integers(0, 6, (32, 40))]  # few colours, like flat art
    noisy = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)  # every pixel its own colour
    for color in (flat, noisy):
        for seed in range(4):
            out = hsv_jitter(color, np.random.default_rng(seed), 0.2, 0.3, 0.3)
            draws = np.random.default_rng(seed)
            dh, fs, fv = draws.uniform(-0.2, 0.2), draws.uniform(0.7, 1.3), draws.uniform(0.7, 1.3)
            hsv = rgb2hsv(color.astype(np.float32) / np.float32(255.0))
            hsv[..., 0] = (hsv[..., 0] + np.float32(dh)) % np.float32(1.0)
            hsv[..., 1] = np.clip(hsv[..., 1] * np.float32(fs), 0.0, 1.0)
            hsv[..., 2] = np.power(hsv[..., 2], np.float32(np.log(fv / 2.0) / np.log(0.5)))
            expected = np.clip(np.rint(hsv2rgb(hsv) * 255.0), 0, 255).astype(np.uint8)
            np.testing.assert_array_equal(out, expected)


def test_hsv_jitter_keeps_white_black_and_grey():
    color = np.zeros((4, 4, 3), np.uint8)
    color[0] = 255
    color[1] = 0
    color[2] = 128
    color[3] = (10, 200, 90)
    for seed in range(10):
        out = hsv_jitter(color, np.random.default_rng(seed), 0.5, 0.0, 0.0)
        np.testing.assert_array_equal(out[:3], color[:3])  # achromatic pixels untouched by hue
        # Full jitter: white and black stay exactly white and black; greys stay grey.
        out = hsv_jitter(color, np.random.default_rng(seed), 0.5, 0.3, 0.3)
        np.testing.assert_array_equal(out[0], color[0])
        np.testing.assert_array_equal(out[1], color[1])
        assert (out[2] == out[2, :, :1]).all()


def test_value_jitter_scales_mid_grey():
    grey = np.full((2, 2, 3), 128, np.uint8)
    for seed in range(5):
        fv = np.random.default_rng(seed)
        fv.uniform(-0.0, 0.0), fv.uniform(1.0, 1.0)
        factor = fv.uniform(0.8, 1.2)
        out = hsv_jitter(grey, np.random.default_rng(seed), 0.0, 0.0, 0.2)
        assert abs(int(out[0, 0, 0]) - 128 * factor) <= 1.5


def test_hsv_jitter_validates():
    color = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ConfigError, match="hue"):
        hsv_jitter(color, np.random.default_rng(0), 1.5, 0.0, 0.0)
    with pytest.raises(LinecolorError, match="Generator"):
        hsv_jitter(color, 0, 0.1, 0.0, 0.0)  # type: ignore[arg-type]


def test_augment_pair_shapes_determinism_and_alignment():
    color, lines = _pair()
    cfg = AugmentConfig()
    a = augment_pair(color, lines, np.random.default_rng(5), cfg, 64)
    b = augment_pair(color, lines, np.random.default_rng(5), cfg, 64)
    assert a[0].shape == (64, 64, 3) and a[0].dtype == np.uint8
    assert a[1].shape == (64, 64) and a[1].dtype == np.uint8
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    differs = 0
    flipped_x = []
    for seed in range(40):
        c, ln = augment_pair(color, lines, np.random.default_rng(seed), cfg, 64)
        differs += not np.array_equal(c, a[0])
        paint = (c.astype(int).max(axis=2) - c.astype(int).min(axis=2)) > 60  # the jittered, saturated disk
        if not _inside(paint):
            continue
        cc = _centroid(paint)
        np.testing.assert_allclose(_centroid(ln < 128), cc, atol=0.75)
        flipped_x.append(cc[1])
    assert differs >= 39
    # The disk sits right of centre; flips put it on the left about half the time.
    flipped_x = np.array(flipped_x)
    assert (flipped_x < 32).sum() >= 5 and (flipped_x > 32).sum() >= 5


def test_augment_pair_picks_styles_uniformly():
    h, w = 32, 32
    color = np.full((h, w, 3), 200, np.uint8)
    lines = np.stack([np.full((h, w), 40 * i, np.uint8) for i in range(3)])  # style i is flat grey 40·i
    rng = np.random.default_rng(0)
    picks = [int(augment_pair(color, lines, rng, AugmentConfig(), 32)[1][16, 16]) // 40 for _ in range(600)]
    counts = np.bincount(picks, minlength=3)
    assert counts.sum() == 600
    assert (np.abs(counts - 200) < 45).all()


def test_augment_without_flip_or_crop_is_geometry_preserving():
    color, lines = _pair(h=64, w=64)
    cfg = AugmentConfig(flip=False, crop_scale_min=1.0, hue_jitter=0.0, saturation_jitter=0.0, value_jitter=0.0)
    c, ln = augment_pair(color, lines, np.random.default_rng(0), cfg, 64)
    np.testing.assert_array_equal(c, color)
    np.testing.assert_array_equal(ln, lines[0])


def test_bad_inputs_raise_linecolor_errors():
    color, lines = _pair()
    with pytest.raises(InputImageError, match="160"):
        augment_pair(color, lines[:, :, :100], np.random.default_rng(0), AugmentConfig(), 64)
    with pytest.raises(InputImageError, match="uint8"):
        hflip(color.astype(np.float32), lines)
    with pytest.raises(ConfigError, match="out_size"):
        random_resized_crop(color, lines, np.random.default_rng(0), 0, 0.5)
    with pytest.raises(ConfigError, match="scale_min"):
        random_resized_crop(color, lines, np.random.default_rng(0), 32, 0.0)


def test_cut_line_gaps_erases_small_squares_on_ink_only_and_is_seeded():
    from linecolor.data.augment import cut_line_gaps

    line = np.full((64, 64), 255, np.uint8)
    line[32, :] = 0
    a = cut_line_gaps(line, np.random.default_rng(3), 6)
    b = cut_line_gaps(line, np.random.default_rng(3), 6)
    assert np.array_equal(a, b) and np.array_equal(line[32], np.zeros(64, np.uint8))  # the input is untouched
    erased = (line < 128) & (a >= 128)
    assert 0 < erased.sum() <= 6 * 4 and ((a < 128) <= (line < 128)).all()  # only ink was erased, no ink added
    assert np.array_equal(cut_line_gaps(np.full((8, 8), 255, np.uint8), np.random.default_rng(0), 5),
                          np.full((8, 8), 255, np.uint8))


def test_fade_line_keeps_paper_white_and_ink_darker_than_paper():
    from linecolor.data.augment import fade_line

    line = np.array([[0, 128, 255]], np.uint8)
    faded = fade_line(line, np.random.default_rng(0), 0.5)
    assert faded[0, 2] == 255 and 0 <= faded[0, 0] <= 128 and faded[0, 0] <= faded[0, 1] <= 255
    assert np.array_equal(fade_line(line, np.random.default_rng(0), 0.0), line)
