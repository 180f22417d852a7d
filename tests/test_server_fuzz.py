"""Property-based fuzzing of /api/colorize: any field values and mutated images give 200 or a documented 4xx JSON
error, never a 5xx, and the server keeps answering. Bounded in examples and time."""

from __future__ import annotations

import io

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from linecolor.config import ServerConfig
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.models.colorizer import Colorizer
from linecolor.server import create_app

from conftest import draw_pair, tiny_model_config

DOCUMENTED = {200, 400, 413, 415}


def _png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def client():
    torch.manual_seed(0)
    pipe = ColorizationPipeline(Colorizer(tiny_model_config(working_size=64)))
    return create_app(ServerConfig(max_pixels=512 * 512), pipeline=pipe).test_client()


SEED_LINE = _png(Image.fromarray(draw_pair(5, 48).lines[0]))
SEED_VARIANTS = [
    SEED_LINE,
    _png(Image.fromarray(draw_pair(6, 40).color), "JPEG"),
    _png(Image.fromarray(draw_pair(7, 40).color), "WEBP"),
    _png(Image.new("LA", (30, 20), (0, 0))),
    _png(Image.new("P", (16, 16))),
    _png(Image.new("I;16", (16, 16))),
    _png(Image.new("RGBA", (1, 64), (0, 0, 0, 0))),
]


@st.composite
def mutated_image(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEED_VARIANTS)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "zero"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            data[pos] = 0
    return bytes(data)


number_text = st.one_of(
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e309", "-0", "0x10", "", " ", "1_000", "١٢"]),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)
fields = st.fixed_dictionaries({}, optional={
    "mode": st.one_of(st.sampled_from(["deterministic", "stochastic", "reference"]), st.text(max_size=12)),
    "seed": number_text,
    "latent_shift": number_text,
    "suggestion_strength": number_text,
    "composite": st.one_of(st.sampled_from(["regions", "network"]), st.text(max_size=12)),
    "points": st.one_of(st.text(max_size=40), st.just("[[5, 5, \"#ff0000\", 2]]"), st.just("[[1e400, 5]]")),
})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(line=mutated_image(), extra=fields, send_reference=st.booleans())
def test_fuzzed_requests_never_5xx(client, line, extra, send_reference):
    data = {k: v for k, v in extra.items() if "\x00" not in v}
    data["line"] = (io.BytesIO(line), "line.png")
    if send_reference:
        data["reference"] = (io.BytesIO(SEED_VARIANTS[1]), "ref.jpg")
    response = client.post("/api/colorize", data=data, content_type="multipart/form-data")
    assert response.status_code in DOCUMENTED, (response.status_code, response.data[:300])
    if response.status_code != 200:
        assert response.get_json()["error"]["message"]
    else:
        assert response.mimetype == "image/png"


def test_server_still_answers_after_fuzzing(client):
    response = client.post("/api/colorize", data={"line": (io.BytesIO(SEED_LINE), "l.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 200
