"""The one preprocessing path: value ranges, hint resizing, and train/inference agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from linecolor.config import AugmentConfig, HintConfig
from linecolor.errors import LinecolorError
from linecolor.inference.conditioning import (
    build_condition,
    letterbox_geometry,
    letterbox_inputs,
)
from linecolor.inference.hints import hints_from_points, parse_points
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.models.colorizer import Colorizer
from linecolor.training.dataset import SampleSpec, make_sample

from conftest import draw_pair, tiny_model_config


def test_condition_channels_and_ranges():
    line = np.full((8, 8), 255, np.uint8)
    line[2, :] = 0
    line[5, :] = 100  # grey: binarised to ink
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[1, 1] = (255, 0, 128)
    mask = np.zeros((8, 8), bool)
    mask[1, 1] = True
    rgb[4, 4] = (255, 255, 255)  # not a hint: must not leak into the RGB channels
    cond = build_condition(line, rgb, mask, binarize=True)
    assert cond.shape == (5, 8, 8) and cond.dtype == torch.float32
    assert cond[0, 0, 0] == 1 and cond[0, 2, 0] == -1 and cond[0, 5, 0] == -1
    assert torch.allclose(cond[1:4, 1, 1], torch.tensor([1.0, -1.0, 128 / 127.5 - 1]), atol=1e-6)
    assert torch.count_nonzero(cond[1:4]) == 3  # only the one hint pixel carries colour
    assert cond[4].sum() == 1 and set(cond[4].unique().tolist()) == {0.0, 1.0}
    grey = build_condition(line, rgb, mask, binarize=False)
    assert -1 < float(grey[0, 5, 0]) < 0


@pytest.mark.parametrize("fill_guide", [False, True])
def test_training_and_inference_build_identical_tensors(fill_guide):
    """The original demo fed hints in [0,1] to a model trained on [-1,1]; this pins both paths together."""
    pair = draw_pair(3, size=64)
    # Training path with augmentation that changes nothing geometric or chromatic.
    no_aug = AugmentConfig(flip=False, crop_scale_min=1.0, hue_jitter=0, saturation_jitter=0, value_jitter=0,
                           thickness_max_radius=0)
    spec = SampleSpec(64, HintConfig(), no_aug, binarize_line=True, seed=0, fill_guide=fill_guide)
    train_sample = make_sample(pair.color, pair.lines, np.random.default_rng(7), spec)
    # The hints the trainer simulated, as the uint8 RGBA layer a user would paint (the mapping is exact).
    cond_t = train_sample["cond"]
    hint_mask = cond_t[4].numpy() > 0
    hint_rgb = np.round((cond_t[1:4].permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.uint8)
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[..., :3] = hint_rgb
    layer[..., 3] = hint_mask * 255
    # Inference path: the same line and the same hints, through the pipeline's own preprocessing.
    pipe = ColorizationPipeline(Colorizer(tiny_model_config(working_size=64, fill_guide=fill_guide)))
    captured = {}
    pipe.model.register_forward_pre_hook(lambda module, args: captured.setdefault("cond", args[0].clone()))
    pipe(Image.fromarray(pair.lines[0]), Image.fromarray(layer))
    assert hint_mask.any(), "the seed must produce at least one hint for this test to mean anything"
    # Inference takes the fill channels from its gap-closed regions, training from the paint bucket: on a drawing
    # without gaps (nothing to close) the two are the same regions, so the tensors must be identical.
    assert pipe.analyse(Image.fromarray(pair.lines[0])).num_closures == 0
    assert torch.equal(captured["cond"][0], train_sample["cond"])


def test_letterbox_keeps_aspect_and_pads_to_multiple_of_32():
    box = letterbox_geometry((300, 100), 256)
    assert box.content_size == (256, 85) and box.canvas_size == (256, 96)
    line = np.zeros((100, 300), np.uint8)
    rgb = np.zeros((100, 300, 3), np.uint8)
    mask = np.zeros((100, 300), bool)
    mask[50, 150] = True  # a single pixel hint must survive a down-scale with its colour
    rgb[50, 150] = (10, 200, 30)
    l2, r2, m2 = letterbox_inputs(line, rgb, mask, box)
    assert l2.shape == (96, 256) and r2.shape == (96, 256, 3) and m2.shape == (96, 256)
    assert (l2[85:] == 255).all() and not m2[85:].any()  # padding is paper without hints
    assert m2.sum() >= 1
    assert tuple(r2[m2][0]) == (10, 200, 30)


def test_points_are_drawn_and_validated():
    rgb, mask = hints_from_points([(10, 10, "#ff0000", 3), (30.5, 5, "00ff00")], (40, 20))
    assert mask[10, 10] and tuple(rgb[10, 10]) == (255, 0, 0)
    assert mask[5, 30] and tuple(rgb[5, 30]) == (0, 255, 0)
    assert 15 < mask.sum() < 80
    with pytest.raises(LinecolorError, match="outside"):
        hints_from_points([(50, 10, "#ff0000", 3)], (40, 20))
    with pytest.raises(LinecolorError, match="#rrggbb"):
        hints_from_points([(5, 5, "red", 3)], (40, 20))
    with pytest.raises(LinecolorError, match="finite"):
        hints_from_points([(float("nan"), 5, "#ff0000", 3)], (40, 20))
    assert parse_points("1,2,#aabbcc;3,4,#000000,5") == [(1.0, 2.0, "#aabbcc", 3.0), (3.0, 4.0, "#000000", 5.0)]
    with pytest.raises(LinecolorError, match="point 2"):
        parse_points("1,2,#aabbcc;oops")


def test_thin_lines_survive_the_downscale_to_the_working_size():
    """A 1-pixel line at 512 px must still be ink after letterboxing to 128 px and binarisation."""
    line = np.full((512, 512), 255, np.uint8)
    line[200, 50:450] = 0
    line[50:450, 300] = 0
    box = letterbox_geometry((512, 512), 128)
    l2, _, _ = letterbox_inputs(line, np.zeros((512, 512, 3), np.uint8), np.zeros((512, 512), bool), box)
    cond = build_condition(l2, np.zeros((128, 128, 3), np.uint8), np.zeros((128, 128), bool), binarize=True)
    ink = cond[0] < 0
    assert ink[49:52, 15:110].any(dim=0).all(), "horizontal line broken"
    assert ink[15:110, 74:77].any(dim=1).all(), "vertical line broken"
