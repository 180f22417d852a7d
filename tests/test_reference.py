"""A reference picture decoded once (linecolor.inference.reference): the bytes cache and the pipeline's use of it."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from linecolor.errors import LinecolorError
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.inference.reference import Reference, ReferenceCache
from linecolor.models.colorizer import Colorizer

from conftest import draw_pair, tiny_model_config


def png(size: tuple[int, int], rgb: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, rgb).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_cache_decodes_bytes_once_and_keeps_within_its_bytes():
    decoded = []

    def decode(data: bytes) -> Reference:
        decoded.append(data)
        return Reference.open(data)

    red, blue, green = png((20, 10), (250, 30, 30)), png((20, 10), (30, 30, 250)), png((20, 10), (30, 250, 30))
    cache = ReferenceCache(2 * 20 * 10 * 3)  # room for the pixels of two of them
    first = cache.open(red, decode)
    assert cache.open(red, decode) is first and decoded == [red]
    assert (cache.hits, cache.misses) == (1, 1)
    cache.open(blue, decode)
    cache.open(red, decode)  # red is now the most recently used...
    cache.open(green, decode)  # ...so blue is dropped to make room
    assert len(cache) == 2
    cache.open(red, decode)
    cache.open(blue, decode)
    assert decoded == [red, blue, green, blue]


def test_a_broken_reference_is_refused_and_not_kept():
    cache = ReferenceCache(1 << 20)
    with pytest.raises(LinecolorError, match="reference image"):
        cache.open(b"not a picture", Reference.open)
    assert len(cache) == 0 and cache.misses == 1
    with pytest.raises(ValueError, match="max_bytes"):
        ReferenceCache(-1)


def test_a_reference_sent_as_bytes_again_is_decoded_and_encoded_once(monkeypatch):
    """The studio sends its reference with every stroke: the second stroke neither decodes it nor runs the style
    encoder on it again, and colours exactly as the first."""
    torch.manual_seed(0)
    pipe = ColorizationPipeline(Colorizer(tiny_model_config(working_size=64)))
    line = Image.fromarray(draw_pair(1, 96).lines[0])
    data = png((40, 30), (250, 30, 30))
    encoded = []
    encode = pipe.model.encode_style
    monkeypatch.setattr(pipe.model, "encode_style", lambda image: encoded.append(image.shape) or encode(image))
    first = np.asarray(pipe(line, reference=data, mode="reference", composite="network"))
    again = np.asarray(pipe(line, reference=data, mode="reference", composite="network"))
    np.testing.assert_array_equal(first, again)
    assert (pipe.references.hits, pipe.references.misses) == (1, 1) and len(encoded) == 1
    # the same picture decoded by the caller colours the same (a fresh Reference: encoded once more)
    np.testing.assert_array_equal(np.asarray(pipe(line, reference=Image.open(io.BytesIO(data)), mode="reference",
                                                  composite="network")), first)
    assert len(encoded) == 2
    other = np.asarray(pipe(line, reference=png((40, 30), (30, 30, 250)), mode="reference", composite="network"))
    assert not np.array_equal(other, first)  # other bytes, another reference
    with pytest.raises(LinecolorError, match="reference image"):
        pipe(line, reference=b"not a picture", mode="reference")
    assert len(pipe.references) == 2
