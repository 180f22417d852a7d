"""Suggestions at a point (issue 16): the model's colours for the region under the cursor, from Python and the API."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

from linecolor.errors import LinecolorError
from linecolor.inference.pipeline import ColorizationPipeline, distinct_colours

from conftest import tiny_fill_api

CAT = Path(__file__).resolve().parents[1] / "src/linecolor/server/static/examples/openmoji-cat-face.png"


def test_distinct_colours_keeps_the_first_of_near_duplicates():
    got = distinct_colours([np.array([200.0, 40, 40]), np.array([202.0, 42, 41]), np.array([40.0, 60, 200]),
                            np.array([41.0, 60, 201]), np.array([250.0, 250, 250])], 3)
    assert got == ["#c82828", "#283cc8", "#fafafa"]
    assert distinct_colours([np.array([10.0, 10, 10])] * 4, 3) == ["#0a0a0a"]


def test_suggest_at_gives_the_regions_colours_in_the_composite():
    pipe = ColorizationPipeline.from_pretrained()
    colours = pipe.suggest_at(str(CAT), 256, 300)
    assert 1 <= len(colours) <= 3 and all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours)
    # the first is the deterministic suggestion the regions composite shows there at full strength
    shown = np.asarray(pipe(str(CAT), overlay_lines=False, suggestion_strength=1.0))[300, 256]
    first = np.array([int(colours[0][i:i + 2], 16) for i in (1, 3, 5)])
    assert np.abs(first - shown.astype(int)).max() <= 1
    with pytest.raises(LinecolorError, match="outside"):
        pipe.suggest_at(str(CAT), 600, 10)


def test_api_suggest():
    client, line_png = tiny_fill_api()

    def post(**fields):
        return client.post("/api/suggest", data={"line": (io.BytesIO(line_png), "l.png"), **fields},
                           content_type="multipart/form-data")

    resp = post(x="40", y="40")
    assert resp.status_code == 200, resp.data
    body = resp.get_json()
    assert 1 <= len(body["colours"]) <= 3 and body["region"] >= 0 and body["analysis"]
    again = client.post("/api/suggest", data={"analysis": body["analysis"], "x": "40", "y": "40"},
                        content_type="multipart/form-data")
    assert again.status_code == 200 and again.get_json()["colours"] == body["colours"]
    assert post(x="40", y="40", palette='["#102030"]').get_json()["colours"] == ["#102030"]
    assert post(x="40", y="40", palette="[1]").status_code == 400
    assert post(x="40").status_code == 400
    assert post(x="4000", y="4").status_code == 400
    assert client.post("/api/suggest", data={"analysis": "0" * 64, "x": "1", "y": "1"},
                       content_type="multipart/form-data").status_code == 404


def test_suggestions_snap_to_a_palette():
    pipe = ColorizationPipeline.from_pretrained()
    palette = ["#f5a623", "#bfe3f5", "#283cc8"]
    colours = pipe.suggest_at(str(CAT), 256, 300, palette=palette)
    assert colours and set(colours) <= set(palette)
