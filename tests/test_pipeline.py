"""ColorizationPipeline: sizes, modes, explicit randomness, line overlay, and clear errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from linecolor.errors import (
    ImageTooLarge,
    InputImageError,
    LinecolorError,
    UnsupportedImageFormat,
    WeightsError,
)
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.models.colorizer import Colorizer

from conftest import draw_pair, tiny_model_config


@pytest.fixture(scope="module")
def pipe() -> ColorizationPipeline:
    torch.manual_seed(0)
    return ColorizationPipeline(Colorizer(tiny_model_config(working_size=64)))


@pytest.fixture
def line_image() -> Image.Image:
    return Image.fromarray(draw_pair(1, 96).lines[0])


@pytest.mark.parametrize("size", [(96, 96), (130, 47), (20, 300), (1, 1)])
def test_output_has_the_input_size(pipe, size):
    line = Image.new("L", size, 255)
    out = pipe(line, [(0, 0, "#ff0000", 2)])
    assert out.mode == "RGB" and out.size == size


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "I;16", "CMYK", "1"])
def test_any_input_mode_is_accepted(pipe, line_image, mode):
    img = line_image.convert("RGB").convert(mode) if mode != "I;16" else line_image.convert("I;16")
    assert pipe(img).size == line_image.size


def test_deterministic_mode_repeats_and_stochastic_follows_the_seed(pipe, line_image):
    a = np.asarray(pipe(line_image, mode="deterministic"))
    b = np.asarray(pipe(line_image, mode="deterministic"))
    assert np.array_equal(a, b)
    s1 = np.asarray(pipe(line_image, mode="stochastic", seed=1))
    s1_again = np.asarray(pipe(line_image, mode="stochastic", seed=1))
    s2 = np.asarray(pipe(line_image, mode="stochastic", seed=2))
    assert np.array_equal(s1, s1_again)
    assert not np.array_equal(s1, s2)


def test_latent_shift_and_reference_change_the_palette(pipe, line_image):
    # The network composite shows the network's own colours pixel by pixel (the regions composite averages them per
    # region, which on this random tiny model hides most of the difference).
    base = np.asarray(pipe(line_image, composite="network"), dtype=np.int16)
    shifted = np.asarray(pipe(line_image, latent_shift=2.0, composite="network"), dtype=np.int16)
    assert np.abs(base - shifted).mean() > 0.5
    assert not np.array_equal(np.asarray(pipe(line_image)), np.asarray(pipe(line_image, latent_shift=2.0)))
    ref_red = Image.new("RGB", (64, 64), (230, 30, 30))
    ref_blue = Image.new("RGB", (64, 64), (30, 30, 230))
    r = np.asarray(pipe(line_image, reference=ref_red, mode="reference", composite="network"), dtype=np.int16)
    b = np.asarray(pipe(line_image, reference=ref_blue, mode="reference", composite="network"), dtype=np.int16)
    assert np.abs(r - b).mean() > 0.1


def test_lines_are_laid_back_on_top(pipe, line_image):
    out = np.asarray(pipe(line_image, [(48, 48, "#ffffff", 40)]))
    ink = np.asarray(line_image) == 0
    assert ink.any() and out[ink].max() == 0  # multiplied by black ink → black
    plain = np.asarray(pipe(line_image, overlay_lines=False))
    assert plain[ink].max() > 0  # without the overlay the network's own colours remain


def test_hints_as_rgba_layer_and_as_points_agree(pipe, line_image):
    layer = Image.new("RGBA", line_image.size, (0, 0, 0, 0))
    layer.putpixel((10, 12), (0, 128, 255, 255))
    from_layer = np.asarray(pipe(line_image, layer))
    from_points = np.asarray(pipe(line_image, [(10, 12, "#0080ff", 0.5)]))
    assert np.array_equal(from_layer, from_points)
    assert not np.array_equal(from_layer, np.asarray(pipe(line_image)))


def test_bad_inputs_raise_clear_errors(pipe, line_image, tmp_path):
    with pytest.raises(InputImageError, match="not found"):
        pipe(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(UnsupportedImageFormat, match="PNG, JPEG or WebP"):
        pipe(tmp_path / "notes.txt")
    gif = io.BytesIO()
    line_image.save(gif, format="GIF")
    with pytest.raises(UnsupportedImageFormat):
        pipe(gif.getvalue())
    png = io.BytesIO()
    line_image.save(png, format="PNG")
    with pytest.raises(InputImageError, match="not a decodable image"):
        pipe(png.getvalue()[: len(png.getvalue()) // 2])
    with pytest.raises(InputImageError, match="must be the same size"):
        pipe(line_image, Image.new("RGBA", (10, 10)))
    with pytest.raises(LinecolorError, match="mode must be one of"):
        pipe(line_image, mode="random")
    with pytest.raises(LinecolorError, match="latent_shift"):
        pipe(line_image, latent_shift=float("nan"))
    with pytest.raises(LinecolorError, match="seed"):
        pipe(line_image, mode="stochastic", seed=-1)
    with pytest.raises(LinecolorError, match="reference mode needs"):
        pipe(line_image, mode="reference")


def test_pixel_cap_is_checked_before_decoding(line_image):
    pipe = ColorizationPipeline(Colorizer(tiny_model_config(working_size=64)), max_pixels=50 * 50)
    with pytest.raises(ImageTooLarge, match="limit"):
        pipe(line_image)


def test_from_pretrained_without_bundled_weights_names_what_is_missing(monkeypatch, tmp_path):
    import linecolor.inference.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "DEFAULT_WEIGHTS_DIR", tmp_path / "weights" / "default")
    with pytest.raises(WeightsError, match="model.safetensors"):
        ColorizationPipeline.from_pretrained()


def test_pipeline_round_trip_through_save_pretrained(pipe, line_image, tmp_path):
    pipe.save_pretrained(tmp_path)
    again = ColorizationPipeline.from_pretrained(tmp_path, backend="plain")
    assert np.array_equal(np.asarray(pipe(line_image)), np.asarray(again(line_image)))


def test_from_pretrained_runs_the_fast_path_and_it_matches_the_plain_model(pipe, line_image, tmp_path, monkeypatch):
    """The studio, CLI and evaluation load through from_pretrained: by default on the fastest path available; the
    first load exports the graph, a later one runs it from the cache (without torch when onnxruntime is there)."""
    from linecolor.inference.graph import GraphRunner
    from linecolor.inference.runtime import InferenceRunner, onnxruntime_available

    monkeypatch.setenv("LINECOLOR_CACHE_DIR", str(tmp_path / "cache"))
    pipe.save_pretrained(tmp_path / "model")
    first = ColorizationPipeline.from_pretrained(tmp_path / "model")
    assert isinstance(first.model, InferenceRunner)
    assert first.model.backend == ("onnxruntime" if onnxruntime_available() else "eager")
    again = ColorizationPipeline.from_pretrained(tmp_path / "model")
    assert isinstance(again.model, GraphRunner if onnxruntime_available() else InferenceRunner)
    hints = [(30, 40, "#ff0000", 4), (70, 60, "#0044ff", 3)]
    for mode, seed in (("deterministic", None), ("stochastic", 5)):
        a = np.asarray(pipe(line_image, hints, mode=mode, seed=seed)).astype(int)
        for fast in (first, again):
            b = np.asarray(fast(line_image, hints, mode=mode, seed=seed)).astype(int)
            assert np.abs(a - b).max() <= 1, mode  # float rounding only: at most one 8-bit level


def test_a_sheet_without_lines_gets_no_suggested_wash():
    """Nothing drawn, nothing hinted: white, not the model's colour for the whole page (the studio's "Clear all"
    then Colorize gave a flat grey-lavender page); a hint on it still floods the one region."""
    pipe = ColorizationPipeline.from_pretrained()
    blank = Image.new("L", (200, 150), 255)
    assert (np.asarray(pipe(blank, mode="stochastic", seed=1)) == 255).all()
    hinted = np.asarray(pipe(blank, [(50, 50, "#3366cc", 6)]))
    assert (hinted == (0x33, 0x66, 0xCC)).all()
    # one line is enough for suggestions to come back
    drawn = Image.new("L", (200, 150), 255)
    drawn.paste(0, (100, 0, 103, 150))
    assert not (np.asarray(pipe(drawn)) == 255).all()
