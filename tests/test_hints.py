"""Tests for linecolor.data.hints (simulated user hints after Zhang et al. 2017)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from linecolor.config import HintConfig
from linecolor.data.hints import (
    patch_side_range,
    patches_from_json,
    patches_to_json,
    render_hints,
    sample_hint_patches,
    sample_point_hints,
    simulate_hints,
)
from linecolor.errors import ConfigError, InputImageError, LinecolorError

N_DRAWS = 4000


def _random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def draws_256() -> list[list[tuple[int, int, int]]]:
    rng = np.random.default_rng(1234)
    return [sample_hint_patches(256, 256, rng, HintConfig()) for _ in range(N_DRAWS)]


def test_count_is_geometric_with_mean_7_and_one_eighth_empty(draws_256):
    counts = np.array([len(p) for p in draws_256])
    assert abs(counts.mean() - 7.0) < 0.4
    assert abs((counts == 0).mean() - 0.125) < 0.02
    # Geometric, not e.g. Poisson(7): P(1) = (1-p)·p ≈ 0.109.
    assert abs((counts == 1).mean() - 0.125 * 0.875) < 0.02


def test_max_hints_caps_the_count():
    rng = np.random.default_rng(0)
    cfg = HintConfig(max_hints=3)
    counts = [len(sample_hint_patches(64, 64, rng, cfg)) for _ in range(500)]
    assert max(counts) == 3
    cfg0 = HintConfig(continue_probability=0.0)
    assert all(len(sample_hint_patches(64, 64, rng, cfg0)) == 0 for _ in range(50))


def test_sides_within_range_and_patches_inside(draws_256):
    sides = []
    for patches in draws_256:
        for top, left, side in patches:
            assert 2 <= side <= 20
            assert 0 <= top and top + side <= 256
            assert 0 <= left and left + side <= 256
            sides.append(side)
    # Uniform over 2..20: every value is used and the mean is 11.
    assert set(sides) == set(range(2, 21))
    assert abs(np.mean(sides) - 11.0) < 0.3


@pytest.mark.parametrize("position", ["gaussian", "uniform"])
def test_patches_inside_non_square_small_images(position):
    rng = np.random.default_rng(7)
    cfg = HintConfig(position=position, gaussian_sigma=2.0)  # wide Gaussian: clipping is exercised a lot
    for h, w in [(9, 40), (40, 9), (1, 1), (3, 200)]:
        lo, hi = patch_side_range(h, w, cfg)
        assert 1 <= lo <= hi <= min(h, w)
        for _ in range(200):
            for top, left, side in sample_hint_patches(h, w, rng, cfg):
                assert lo <= side <= hi
                assert 0 <= top <= h - side and 0 <= left <= w - side


def test_sizes_scale_with_image_size():
    cfg = HintConfig()
    assert patch_side_range(256, 256, cfg) == (2, 20)
    assert patch_side_range(128, 128, cfg) == (1, 10)
    assert patch_side_range(128, 512, cfg) == (1, 10)  # the shorter side sets the scale
    assert patch_side_range(512, 512, cfg) == (4, 40)
    rng = np.random.default_rng(3)
    s128 = [s for _ in range(2000) for (_, _, s) in sample_hint_patches(128, 128, rng, cfg)]
    s256 = [s for _ in range(2000) for (_, _, s) in sample_hint_patches(256, 256, rng, cfg)]
    assert min(s128) == 1 and max(s128) == 10
    assert abs(np.mean(s128) / np.mean(s256) - 0.5) < 0.03


def test_hint_colour_is_patch_median():
    color = _random_image(64, 48, seed=5)
    rng = np.random.default_rng(11)
    patches = [p for _ in range(20) for p in sample_hint_patches(64, 48, rng, HintConfig())]
    assert len(patches) > 20
    for patch in patches:
        hint_rgb, hint_mask = render_hints(color, [patch])
        top, left, side = patch
        expected = np.rint(np.median(color[top:top + side, left:left + side].reshape(-1, 3), axis=0))
        assert hint_mask.sum() == side * side
        assert hint_mask[top:top + side, left:left + side].all()
        np.testing.assert_array_equal(hint_rgb[top:top + side, left:left + side].reshape(-1, 3),
                                      np.broadcast_to(expected, (side * side, 3)))
        assert not hint_rgb[~hint_mask].any()


def test_render_dtypes_shapes_and_overlap_order():
    color = np.zeros((10, 10, 3), np.uint8)
    color[:, 5:] = (200, 100, 50)
    hint_rgb, hint_mask = render_hints(color, [(0, 0, 4), (0, 3, 4)])  # second covers columns 3..6
    assert hint_rgb.dtype == np.uint8 and hint_rgb.shape == (10, 10, 3)
    assert hint_mask.dtype == bool and hint_mask.shape == (10, 10)
    # Patch 2 has 2 black and 2 coloured columns → median 0.5·(0, 200) etc. rounded half to even.
    np.testing.assert_array_equal(hint_rgb[0, 3], [100, 50, 25])
    np.testing.assert_array_equal(hint_rgb[0, 0], [0, 0, 0])
    assert hint_mask[:4, :7].all() and hint_mask.sum() == 28


def test_render_rejects_bad_input():
    color = _random_image(16, 16)
    with pytest.raises(InputImageError, match="inside"):
        render_hints(color, [(10, 10, 8)])
    with pytest.raises(InputImageError, match="integers"):
        render_hints(color, [(1, 2)])
    with pytest.raises(InputImageError, match=r"\(H, W, 3\)"):
        render_hints(color[..., 0], [])
    with pytest.raises(InputImageError, match="uint8"):
        render_hints(color.astype(np.float32), [])


def test_same_seed_same_output_different_seed_differs():
    color = _random_image(96, 96)
    a = simulate_hints(color, np.random.default_rng(42), HintConfig())
    b = simulate_hints(color, np.random.default_rng(42), HintConfig())
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    many_a = [sample_hint_patches(96, 96, np.random.default_rng(1), HintConfig()) for _ in range(3)]
    assert many_a[0] == many_a[1] == many_a[2]
    rng_b = np.random.default_rng(2)
    assert sample_hint_patches(96, 96, np.random.default_rng(1), HintConfig()) != \
        sample_hint_patches(96, 96, rng_b, HintConfig())


def test_rng_must_be_a_generator():
    with pytest.raises(LinecolorError, match="Generator"):
        sample_hint_patches(32, 32, np.random.RandomState(0), HintConfig())  # type: ignore[arg-type]
    with pytest.raises(InputImageError, match="height"):
        sample_hint_patches(0, 32, np.random.default_rng(0), HintConfig())


def _mean_centre_distance(position: str) -> float:
    rng = np.random.default_rng(99)
    cfg = HintConfig(position=position)
    d = [np.hypot(top + side / 2 - 128, left + side / 2 - 128)
         for _ in range(1000) for (top, left, side) in sample_hint_patches(256, 256, rng, cfg)]
    return float(np.mean(d))


def test_uniform_and_gaussian_positions_differ():
    gaussian, uniform = _mean_centre_distance("gaussian"), _mean_centre_distance("uniform")
    # Uniform over the square: E|d| ≈ 0.38·256 ≈ 98 (less a little for patch size); Gaussian σ = 64 is
    # Rayleigh-like with mean σ·√(π/2) ≈ 80, lowered further by clipping.
    assert uniform > 90
    assert gaussian < 82
    assert uniform - gaussian > 12


def test_sample_point_hints_exact_count_and_json_round_trip():
    color = _random_image(80, 120, seed=8)
    for k in (0, 1, 5, 37):
        patches = sample_point_hints(color, k, np.random.default_rng(k), radius=3)
        assert len(patches) == k
        assert all(side == 7 for (_, _, side) in patches)
        text = patches_to_json(patches, height=80, width=120)
        again = patches_from_json(text, height=80, width=120)
        assert again == patches
        a, b = render_hints(color, patches), render_hints(color, again)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    # radius=None: the training size distribution at this image's scale (80 px → 1..6).
    sizes = {s for (_, _, s) in sample_point_hints(color, 300, np.random.default_rng(0), radius=None)}
    assert sizes == set(range(1, 7))


def test_sample_point_hints_is_deterministic_and_validates():
    color = _random_image(40, 40)
    assert sample_point_hints(color, 10, np.random.default_rng(5)) == \
        sample_point_hints(color, 10, np.random.default_rng(5))
    with pytest.raises(ConfigError, match="non-negative"):
        sample_point_hints(color, -1, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="radius"):
        sample_point_hints(color, 3, np.random.default_rng(0), radius=-2)
    # A radius larger than the image is clamped to the image.
    assert sample_point_hints(color, 1, np.random.default_rng(0), radius=100) == [(0, 0, 40)]


def test_json_rejects_bad_documents():
    with pytest.raises(LinecolorError, match="JSON"):
        patches_from_json("{not json")
    with pytest.raises(LinecolorError, match="linecolor-hint-patches"):
        patches_from_json('{"patches": [[0, 0, 1]]}')
    good = patches_to_json([(0, 0, 4)], height=10, width=10)
    with pytest.raises(InputImageError, match="10×10"):
        patches_from_json(good, height=20, width=20)
    doc = good.replace("[[0, 0, 4]]", "[[0, 0, 40]]")
    with pytest.raises(InputImageError, match="inside"):
        patches_from_json(doc)
    doc = good.replace("[[0, 0, 4]]", "[[0, 0, 4.5]]")
    with pytest.raises(InputImageError, match="integers"):
        patches_from_json(doc)


def test_config_fields_are_used():
    # A config that differs only in patch_max changes the sizes drawn.
    rng = np.random.default_rng(0)
    big = dataclasses.replace(HintConfig(), patch_min=30, patch_max=30)
    assert {s for _ in range(50) for (_, _, s) in sample_hint_patches(256, 256, rng, big)} == {30}
