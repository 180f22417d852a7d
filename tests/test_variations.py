"""Variations to choose from (issue 14): several stochastic colourings of one drawing from one batched network pass,
from Python and from ``POST /api/variations``."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from linecolor.errors import LinecolorError
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.limits import MAX_SEED, MAX_VARIATIONS, VARIATION_COUNT, VARIATION_PREVIEW_PX

from conftest import tiny_fill_api

EXAMPLES = Path(__file__).resolve().parents[1] / "src/linecolor/server/static/examples"
AVATAR = EXAMPLES / "dicebear-adventurer-00267.png"
HINTS = [(256, 60, "#d04a2c", 8)]


@pytest.fixture(scope="module")
def pipe() -> ColorizationPipeline:
    return ColorizationPipeline.from_pretrained()


def test_each_variation_is_the_colouring_with_its_seed(pipe):
    analysis = pipe.analyse(str(AVATAR))
    seeds = [3, 11, 2**40]
    images = pipe.variations(analysis, HINTS, seeds)
    assert len(images) == len(seeds)
    for seed, image in zip(seeds, images):
        alone = np.asarray(pipe(analysis, HINTS, mode="stochastic", seed=seed)).astype(int)
        assert image.size == (512, 512)
        assert np.abs(np.asarray(image).astype(int) - alone).max() <= 2, seed  # batched: within a level or two
    # different seeds colour the unhinted regions differently (the bundled model's latent shows)
    a, b = (np.asarray(i).astype(int) for i in images[:2])
    assert np.abs(a - b).mean() > 2.0


def test_variations_keep_the_options_and_scale_to_previews(pipe):
    analysis = pipe.analyse(str(AVATAR))
    shaded = pipe.variations(analysis, HINTS, [5], composite="network", latent_shift=1.5, suggestion_strength=1.0)[0]
    alone = pipe(analysis, HINTS, mode="stochastic", seed=5, composite="network", latent_shift=1.5,
                 suggestion_strength=1.0)
    assert np.abs(np.asarray(shaded).astype(int) - np.asarray(alone).astype(int)).max() <= 2
    preview = pipe.variations(analysis, HINTS, [5], max_side=100)[0]
    assert preview.size == (100, 100)
    palette = ["#123456", "#ffffff", "#d04a2c"]
    snapped = pipe.variations(analysis, HINTS, [5], palette=palette)[0]
    alone = pipe(analysis, HINTS, mode="stochastic", seed=5, palette=palette)
    assert np.array_equal(np.asarray(snapped), np.asarray(alone))
    assert not np.array_equal(np.asarray(snapped), np.asarray(pipe.variations(analysis, HINTS, [5])[0]))


@pytest.mark.parametrize("seeds, kwargs, message", [
    ([], {}, "1 to"),
    (list(range(MAX_VARIATIONS + 1)), {}, "1 to"),
    ([-1], {}, "whole number"),
    ([MAX_SEED + 1], {}, "whole number"),
    ([1.5], {}, "whole number"),
    ([True], {}, "whole number"),
    ([1], {"max_side": 0}, "max_side"),
    ([1], {"latent_shift": 99.0}, "latent"),
    ([1], {"composite": "oil"}, "composite"),
])
def test_bad_variation_requests_are_refused(pipe, seeds, kwargs, message):
    with pytest.raises(LinecolorError, match=message):
        pipe.variations(str(AVATAR), HINTS, seeds, **kwargs)


def _decode(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_api_variations():
    client, line_png = tiny_fill_api()

    def post(**fields):
        return client.post("/api/variations", data={"line": (io.BytesIO(line_png), "l.png"), **fields},
                           content_type="multipart/form-data")

    resp = post()
    assert resp.status_code == 200, resp.data
    body = resp.get_json()
    seeds = [v["seed"] for v in body["variations"]]
    assert len(seeds) == VARIATION_COUNT == len(set(seeds)) and body["analysis"]
    assert all(_decode(v["image"]).size == (96, 96) for v in body["variations"])  # smaller than a preview: as is

    # given seeds come back in order, and each preview is /api/colorize's picture with that seed
    resp = post(seeds="7, 8")
    assert resp.status_code == 200, resp.data
    got = resp.get_json()["variations"]
    assert [v["seed"] for v in got] == [7, 8]
    for v in got:
        full = client.post("/api/colorize", data={"line": (io.BytesIO(line_png), "l.png"), "mode": "stochastic",
                                                  "seed": str(v["seed"])}, content_type="multipart/form-data")
        assert full.status_code == 200
        same = np.abs(np.asarray(_decode(v["image"]).convert("RGB")).astype(int)
                      - np.asarray(Image.open(io.BytesIO(full.data)).convert("RGB")).astype(int))
        assert same.max() <= 2
    again = client.post("/api/variations", data={"analysis": body["analysis"], "seeds": "7,8"},
                        content_type="multipart/form-data")
    assert again.status_code == 200 and again.get_json()["variations"] == got

    for fields in ({"count": "0"}, {"count": str(MAX_VARIATIONS + 1)}, {"count": "x"},
                   {"seeds": ",".join(["1"] * (MAX_VARIATIONS + 1))}, {"seeds": "1,-2"}, {"seeds": "1,,2"},
                   {"seeds": str(MAX_SEED + 1)}, {"seeds": "1", "count": "2"}, {"latent_shift": "9"},
                   {"composite": "oil"}, {"palette": "[1]"}):
        resp = post(**fields)
        assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "bad_field", (fields, resp.data)
    assert post(count=str(MAX_VARIATIONS)).status_code == 200
    assert post(seeds="3", count="").status_code == 200  # an empty field is an absent one
    assert client.post("/api/variations", data={"analysis": "0" * 64}, content_type="multipart/form-data"
                       ).status_code == 404


def test_api_variations_scale_large_drawings_to_previews():
    client, _ = tiny_fill_api()
    buffer = io.BytesIO()
    Image.open(AVATAR).resize((1000, 600)).save(buffer, format="PNG")
    resp = client.post("/api/variations", data={"line": (io.BytesIO(buffer.getvalue()), "l.png"), "count": "2"},
                       content_type="multipart/form-data")
    assert resp.status_code == 200, resp.data
    sizes = {_decode(v["image"]).size for v in resp.get_json()["variations"]}
    assert sizes == {(VARIATION_PREVIEW_PX, round(VARIATION_PREVIEW_PX * 600 / 1000))}


def test_api_variations_of_a_model_without_a_style_latent_say_why_there_are_none():
    import torch

    from conftest import draw_pair, tiny_model_config
    from linecolor.config import ServerConfig
    from linecolor.models.colorizer import Colorizer
    from linecolor.server import create_app

    torch.manual_seed(0)
    pipe = ColorizationPipeline(Colorizer(tiny_model_config(working_size=64, fill_guide=True, use_style_latent=False)))
    client = create_app(ServerConfig(), pipeline=pipe).test_client()
    buffer = io.BytesIO()
    Image.fromarray(draw_pair(3, 96).lines[0]).save(buffer, format="PNG")
    resp = client.post("/api/variations", data={"line": (io.BytesIO(buffer.getvalue()), "l.png")},
                       content_type="multipart/form-data")
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "no_style_latent"
    assert "no variations" in resp.get_json()["error"]["message"]
