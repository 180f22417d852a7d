"""The command line as a user runs it: every --help, the end-to-end prepare → train → export → colorize on
generated data, and bad input that must give one clear message and exit status 2 (never a traceback)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import PYTHON, write_paired_folder

COMMANDS = ["prepare", "train", "export", "colorize", "evaluate", "bench", "serve"]
TINY_TOML = """
[model]
working_size = 64
[model.generator]
base_channels = 4
spade_hidden_channels = 8
latent_dim = 8
[model.style_encoder]
base_channels = 4
input_size = 64
[discriminator]
base_channels = 4
num_layers = 3
[data]
image_size = 64
[train]
batch_size = 2
warmup_steps = 1
checkpoint_every = 2
log_every = 1
image_every = 2
num_threads = 1
"""


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([PYTHON, "-m", "linecolor", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help(command):
    out = run_cli(*([command] if command else []), "--help")
    assert out.returncode == 0, out.stderr
    assert "usage: linecolor" in out.stdout
    if command:
        assert command in out.stdout


def assert_clean_error(out: subprocess.CompletedProcess, *fragments: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    for fragment in fragments:
        assert fragment in out.stderr, out.stderr


@pytest.mark.slow
def test_end_to_end_prepare_train_export_colorize(tmp_path):
    src = write_paired_folder(tmp_path / "pairs", n=8, size=80)
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY_TOML)
    out = run_cli("prepare", "paired", src, tmp_path / "prepared", "--size", "64", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "prepared 8 pairs" in out.stdout
    out = run_cli("train", tmp_path / "run", "--config", cfg, "--data", tmp_path / "prepared", "--steps", "4",
                  "--quiet")
    assert out.returncode == 0, out.stderr
    assert "completed: steps 0 → 4" in out.stdout
    out = run_cli("export", tmp_path / "run", tmp_path / "model")
    assert out.returncode == 0, out.stderr
    assert {p.name for p in (tmp_path / "model").iterdir()} == {"config.json", "model.safetensors"}

    line = src / "line" / "synthetic-000.png"
    out = run_cli("colorize", line, "--weights", tmp_path / "model", "--out", tmp_path / "one.png",
                  "--points", "20,20,#ff0000,4;60,60,#0000ff")
    assert out.returncode == 0, out.stderr
    with Image.open(tmp_path / "one.png") as result:
        assert result.size == (80, 80) and result.mode == "RGB"

    hints = tmp_path / "hints"
    hints.mkdir()
    layer = Image.new("RGBA", (80, 80), (0, 0, 0, 0))
    layer.putpixel((30, 30), (0, 255, 0, 255))
    layer.save(hints / "synthetic-001.png")
    out = run_cli("colorize", src / "line", "--weights", tmp_path / "model", "--out", tmp_path / "folder",
                  "--hints", hints, "--mode", "stochastic", "--seed", "3")
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "folder").glob("*.png"))) == 8

    # Resuming a finished run does nothing; asking for more steps continues from the last checkpoint.
    out = run_cli("train", tmp_path / "run", "--config", cfg, "--data", tmp_path / "prepared", "--steps", "6",
                  "--quiet")
    assert out.returncode == 0 and "steps 4 → 6" in out.stdout, out.stderr

    # Bad input to colorize, with the real model: clear message, status 2.
    (tmp_path / "notes.txt").write_text("hello")
    assert_clean_error(run_cli("colorize", tmp_path / "missing.png", "--weights", tmp_path / "model"),
                       "not found")
    assert_clean_error(run_cli("colorize", tmp_path / "notes.txt", "--weights", tmp_path / "model"),
                       "not a PNG, JPEG or WebP")
    Image.new("RGBA", (10, 10)).save(tmp_path / "small_hints.png")
    assert_clean_error(run_cli("colorize", line, "--weights", tmp_path / "model", "--hints",
                               tmp_path / "small_hints.png"), "same size")
    assert_clean_error(run_cli("colorize", line, "--weights", tmp_path / "model", "--points", "500,5,#ff0000"),
                       "outside")


def test_colorize_without_weights_names_the_missing_files(tmp_path):
    Image.new("L", (64, 64), 255).save(tmp_path / "line.png")
    assert_clean_error(run_cli("colorize", tmp_path / "line.png", "--weights", tmp_path / "nowhere"),
                       "model directory not found")


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "inf", "strong"])
def test_colorize_rejects_a_bad_suggestion_strength_before_loading_a_model(tmp_path, value):
    Image.new("L", (64, 64), 255).save(tmp_path / "line.png")
    # A missing weights folder would be the error if the model were loaded first.
    assert_clean_error(run_cli("colorize", tmp_path / "line.png", "--weights", tmp_path / "nowhere",
                               "--suggestion-strength", value), "--suggestion-strength")


def test_colorize_with_suggestion_strength_and_composite(tmp_path):
    line = np.full((48, 64), 255, np.uint8)
    line[:, 31:33] = 0  # two regions; hint the left one
    Image.fromarray(line).save(tmp_path / "line.png")
    outs = {}
    for name, extra in {"white": ["--suggestion-strength", "0"], "network": ["--composite", "network"]}.items():
        out = run_cli("colorize", tmp_path / "line.png", "--points", "10,20,#ff0000,3", "--out",
                      tmp_path / f"{name}.png", *extra)
        assert out.returncode == 0, out.stderr
        outs[name] = np.asarray(Image.open(tmp_path / f"{name}.png").convert("RGB"))
    assert (outs["white"][:, 40:] == 255).all()  # strength 0: the unhinted right side stays paper
    assert tuple(outs["white"][20, 10]) == (255, 0, 0)
    assert outs["network"].shape == (48, 64, 3) and not np.array_equal(outs["network"], outs["white"])


def test_train_config_errors_are_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nstesp = 3\n")
    assert_clean_error(run_cli("train", tmp_path / "run", "--config", bad), "train.stesp", "did you mean 'steps'")
    assert_clean_error(run_cli("train", tmp_path / "run", "--variant", "unet", "--data", tmp_path),
                       "unknown generator variant 'unet'", "ladder, spade")
    assert_clean_error(run_cli("train", tmp_path / "run", "--steps", "3"), "data.train_dirs is empty")
    assert_clean_error(run_cli("train", tmp_path / "run", "--data", tmp_path / "nope", "--steps", "3"))


def test_cli_python_and_server_give_identical_images(tmp_path):
    """One inference path: the same drawing, hints and gap setting through the CLI, Python and the HTTP API give
    the same bytes of image."""
    import io
    import json

    import torch
    from PIL import ImageDraw

    from conftest import tiny_model_config
    from linecolor.config import ServerConfig
    from linecolor.inference.pipeline import ColorizationPipeline
    from linecolor.models.colorizer import Colorizer
    from linecolor.server import create_app

    torch.manual_seed(0)
    weights = tmp_path / "weights"
    Colorizer(tiny_model_config(working_size=64, fill_guide=True)).save_pretrained(weights)
    drawing = Image.new("L", (200, 160), 255)
    ImageDraw.Draw(drawing).ellipse([30, 20, 170, 140], outline=0, width=3)
    pixels = np.asarray(drawing).copy()
    pixels[75:83, 160:175] = 255  # a gap
    line = tmp_path / "line.png"
    Image.fromarray(pixels).save(line)
    points = [(100, 80, "#c03050", 5), (10, 10, "#3060c0", 4)]

    python = np.asarray(ColorizationPipeline.from_pretrained(weights)(line, points, gap=12))
    out = tmp_path / "cli.png"
    result = run_cli("colorize", line, "--weights", weights, "--gap", "12", "--out", out,
                     "--points", ";".join(f"{x},{y},{c},{r}" for x, y, c, r in points))
    assert result.returncode == 0, result.stderr
    cli = np.asarray(Image.open(out).convert("RGB"))
    client = create_app(ServerConfig(weights=str(weights))).test_client()
    response = client.post("/api/colorize", data={"line": (io.BytesIO(line.read_bytes()), "line.png"), "gap": "12",
                                                  "points": json.dumps([list(p) for p in points])},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.data[:300]
    server = np.asarray(Image.open(io.BytesIO(response.data)).convert("RGB"))
    assert python.shape == (160, 200, 3)
    assert np.array_equal(python, cli) and np.array_equal(python, server)
    assert (python[80, 100] == (192, 48, 80)).all()  # the hint's region, flat
    assert not (python[5, 5] == (192, 48, 80)).all()  # and not through the gap


@pytest.mark.parametrize("options, message", [
    (["--hints", "nope.png"], "--hints nope.png: no such file"),
    (["--mode", "reference"], "reference mode needs a reference image"),
    (["--mode", "reference", "--reference", "nope.png"], "--reference nope.png: no such file"),
    (["--seed", "-5"], "seed must be an integer"),
    (["--latent-shift", "100"], "latent_shift must be a finite number"),
    (["--latent-shift", "nan"], "latent_shift must be a finite number"),
    (["--mode", "stochastic", "--reference", "line.png"], "use mode='reference'"),
    (["--mode", "reference", "--reference", "broken.png"], "reference image (broken.png): not a PNG"),
])
def test_colorize_argument_errors_come_before_the_model_loads(tmp_path, options, message):
    """Issue 16: these were reported only after the model had loaded (4–24 s). A missing model directory would be
    reported first if the model were loaded first."""
    Image.new("L", (64, 64), 255).save(tmp_path / "line.png")
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    result = subprocess.run([PYTHON, "-m", "linecolor", "colorize", "line.png", "--weights", "no-such-model",
                             "--out", "out.png", *options], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "no-such-model" not in result.stderr
    assert not (tmp_path / "out.png").exists()
