"""The bundled default model: it loads, and with 10 hints it colours held-out test pairs clearly better than the
bare line art (a regression guard, not a quality claim: the evaluation in docs/eval/ is the quality claim)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from linecolor.evaluation.baselines import line_only
from linecolor.evaluation.metrics import hint_adherence, psnr
from linecolor.inference.pipeline import DEFAULT_WEIGHTS_DIR, ColorizationPipeline

PAIRS = Path(__file__).parent / "data" / "pairs"
STEMS = sorted(p.name[: -len("-line.png")] for p in PAIRS.glob("*-line.png"))
MARGIN_DB = 1.0
"""Required mean PSNR gain over line-only at K = 10, fixed before measuring (region fill gains ≈ 5 dB there)."""


@pytest.fixture(scope="module")
def pipe() -> ColorizationPipeline:
    return ColorizationPipeline.from_pretrained()


def load(stem: str) -> tuple[np.ndarray, np.ndarray, Image.Image]:
    line = np.asarray(Image.open(PAIRS / f"{stem}-line.png").convert("L"))
    color = np.asarray(Image.open(PAIRS / f"{stem}-color.png").convert("RGB"))
    return line, color, Image.open(PAIRS / f"{stem}-hints10.png").convert("RGBA")


def test_the_test_pairs_cover_every_source():
    assert {s.split("-")[0] for s in STEMS} == {"openmoji", "dicebear", "fluent"} and len(STEMS) == 6


def test_bundled_weights_load_with_their_config():
    assert (DEFAULT_WEIGHTS_DIR / "model.safetensors").is_file() and (DEFAULT_WEIGHTS_DIR / "config.json").is_file()
    pipe = ColorizationPipeline.from_pretrained(backend="plain")
    assert pipe.config.working_size >= 64


def test_ten_hints_beat_the_bare_line_art(pipe):
    gains, adherence = [], []
    for stem in STEMS:
        line, color, hints = load(stem)
        mask = np.asarray(hints)[..., 3] > 0
        assert mask.any(), stem
        out = np.asarray(pipe(Image.fromarray(line), hints).convert("RGB"))
        assert out.shape == color.shape
        empty = np.zeros_like(color)
        gains.append(psnr(out, color) - psnr(line_only(line, empty, mask), color))
        adherence.append(hint_adherence(out, np.asarray(hints)[..., :3], mask))
    assert np.mean(gains) > MARGIN_DB, dict(zip(STEMS, np.round(gains, 2)))
    # Following the hints is what 10 hints are for: the hinted pixels carry (roughly) their hint colours.
    assert np.mean(adherence) < 10.0, dict(zip(STEMS, np.round(adherence, 2)))
