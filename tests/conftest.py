"""Shared fixtures: synthetic line/colour pairs drawn by the tests and tiny model configs (CPU, seconds)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from linecolor.config import (
    AugmentConfig,
    DataConfig,
    DiscriminatorConfig,
    ExperimentConfig,
    GeneratorConfig,
    HintConfig,
    LossConfig,
    ModelConfig,
    StyleEncoderConfig,
    TrainConfig,
)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

PALETTE = [(220, 60, 50), (60, 140, 220), (250, 200, 40), (80, 180, 90), (170, 90, 200), (240, 140, 60)]


@dataclass
class SyntheticPair:
    color: np.ndarray  # (H, W, 3) uint8
    lines: np.ndarray  # (1, H, W) uint8
    name: str


def stop_process(proc: subprocess.Popen, log, timeout_s: float = 10.0) -> None:
    """SIGTERM a server subprocess (SIGKILL if it has not exited after ``timeout_s``), then close its log file."""
    try:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
    finally:
        log.close()


def draw_pair(index: int, size: int = 64) -> SyntheticPair:
    """A flat-coloured drawing of 1–3 outlined shapes on white and its black outline (exactly aligned)."""
    rng = np.random.default_rng(index)
    color = Image.new("RGB", (size, size), (255, 255, 255))
    line = Image.new("L", (size, size), 255)
    dc, dl = ImageDraw.Draw(color), ImageDraw.Draw(line)
    width = max(1, size // 32)
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = rng.integers(2, size // 2, 2)
        x1, y1 = x0 + rng.integers(size // 4, size // 2, 2)
        fill = PALETTE[int(rng.integers(len(PALETTE)))]
        box = [int(x0), int(y0), int(min(x1, size - 3)), int(min(y1, size - 3))]
        if rng.random() < 0.5:
            dc.ellipse(box, fill=fill, outline=(0, 0, 0), width=width)
            dl.ellipse(box, fill=255, outline=0, width=width)
        else:
            dc.rectangle(box, fill=fill, outline=(0, 0, 0), width=width)
            dl.rectangle(box, fill=255, outline=0, width=width)
    return SyntheticPair(np.asarray(color).copy(), np.asarray(line)[None].copy(), f"synthetic-{index:03d}")


class SyntheticPairs:
    """A pair source of ``n`` synthetic drawings (the PairSource protocol: len + getitem → .color/.lines/.name)."""

    def __init__(self, n: int = 8, size: int = 64):
        self.items = [draw_pair(i, size) for i in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> SyntheticPair:
        return self.items[i]


def hint_discs(shape: tuple[int, int], points) -> tuple[np.ndarray, np.ndarray]:
    """Hints as the colouring reads them: ``(rgb uint8 (H, W, 3), mask bool (H, W))`` with a disc of radius 4 px in
    ``colour`` at each ``(y, x, colour)`` of ``points``."""
    rgb = np.zeros(shape + (3,), np.uint8)
    mask = np.zeros(shape, bool)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for y, x, colour in points:
        disc = np.hypot(yy - y, xx - x) <= 4
        rgb[disc], mask[disc] = colour, True
    return rgb, mask


def tiny_model_config(variant: str = "ladder", working_size: int = 64, **gen) -> ModelConfig:
    return ModelConfig(
        generator=GeneratorConfig(variant=variant, base_channels=4, spade_hidden_channels=8, latent_dim=8, **gen),
        style_encoder=StyleEncoderConfig(base_channels=4, input_size=64),
        working_size=working_size,
    )


def tiny_experiment(steps: int = 4, image_size: int = 64, **train) -> ExperimentConfig:
    train_defaults = dict(steps=steps, batch_size=2, warmup_steps=1, checkpoint_every=2, log_every=1,
                          image_every=0, seed=0)
    train_defaults.update(train)
    return ExperimentConfig(
        model=tiny_model_config(working_size=image_size),
        discriminator=DiscriminatorConfig(base_channels=4, num_layers=3),
        data=DataConfig(image_size=image_size),
        hints=HintConfig(),
        augment=AugmentConfig(),
        loss=LossConfig(),
        train=TrainConfig(**train_defaults),
    )


@pytest.fixture
def synthetic_pairs() -> SyntheticPairs:
    return SyntheticPairs(8, 64)


@pytest.fixture
def tiny_config() -> ModelConfig:
    return tiny_model_config()


def write_paired_folder(root: Path, n: int = 6, size: int = 64) -> Path:
    """``root/color/*.png`` + ``root/line/*.png`` from :func:`draw_pair`."""
    (root / "color").mkdir(parents=True, exist_ok=True)
    (root / "line").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pair = draw_pair(i, size)
        Image.fromarray(pair.color).save(root / "color" / f"{pair.name}.png")
        Image.fromarray(pair.lines[0]).save(root / "line" / f"{pair.name}.png")
    return root


class StandInPipeline:
    """Base of the tests' stand-in models for the server: the analysis part of ColorizationPipeline's interface,
    with an analysis that is only an id (the stand-ins never look at the line)."""

    config = None
    region_head = None
    default_suggestion_strength = 0.625  # as a real pipeline without a region head

    def __init__(self) -> None:
        from linecolor.raster.regions import AnalysisCache

        self.analyses = AnalysisCache(1 << 20)

    def analyse(self, line, gap=None):
        from types import SimpleNamespace

        return line if hasattr(line, "id") else SimpleNamespace(id="0" * 32, shape=(8, 8), num_regions=1, gap=0.0,
                                                                stroke_width=1.0, num_closures=0)


def tiny_fill_api():
    """(Flask test client of a server with a seeded tiny fill-guided model, a 96² synthetic line drawing as PNG
    bytes): for API tests that need a real pipeline but no trained weights."""
    import io

    from linecolor.config import ServerConfig
    from linecolor.inference.pipeline import ColorizationPipeline
    from linecolor.models.colorizer import Colorizer
    from linecolor.server import create_app

    torch.manual_seed(0)
    pipeline = ColorizationPipeline(Colorizer(tiny_model_config(working_size=64, fill_guide=True)))
    buffer = io.BytesIO()
    Image.fromarray(draw_pair(3, 96).lines[0]).save(buffer, format="PNG")
    return create_app(ServerConfig(), pipeline=pipeline).test_client(), buffer.getvalue()
