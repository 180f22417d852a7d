"""Palettes (issue 16): GIMP .gpl files round-trip, and with a palette the suggestions for unhinted regions are
palette colours."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage.color import deltaE_ciede2000, rgb2lab

from linecolor.errors import LinecolorError
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.limits import MAX_PALETTE_COLOURS
from linecolor.raster.palette import IMAGE_COLOURS, Palette, image_colours, parse_gpl, read_gpl, write_gpl

from conftest import PYTHON, tiny_fill_api

CAT = Path(__file__).resolve().parents[1] / "src/linecolor/server/static/examples/openmoji-cat-face.png"
GIMP_STYLE = """GIMP Palette
Name: Skin and hair
Columns: 4
#
# a comment, then colours with and without names
255 224 189\tlight skin
 93  64  55\tdark hair with spaces in its name
 30 144 255
"""


def test_a_gimp_palette_round_trips(tmp_path):
    palette = parse_gpl(GIMP_STYLE)
    assert palette.name == "Skin and hair"
    assert palette.colours.tolist() == [[255, 224, 189], [93, 64, 55], [30, 144, 255]]
    assert palette.names == ("light skin", "dark hair with spaces in its name", "")
    path = write_gpl(palette, tmp_path / "skin.gpl")
    again = read_gpl(path)
    assert again.name == palette.name and again.names == palette.names
    np.testing.assert_array_equal(again.colours, palette.colours)
    assert path.read_text(encoding="utf-8").startswith("GIMP Palette\n")
    with pytest.raises(LinecolorError, match="already exists"):
        write_gpl(palette, path)


@pytest.mark.parametrize("text, message", [
    ("JASC-PAL\n0100\n", "not a GIMP palette"),
    ("GIMP Palette\nName: x\n#\n", "no colours"),
    ("GIMP Palette\n255 0\n", "line 2"),
    ("GIMP Palette\n10 20 300 too bright\n", "line 2"),
    ("GIMP Palette\n" + "1 2 3\n" * (MAX_PALETTE_COLOURS + 1), f"more than {MAX_PALETTE_COLOURS}"),
])
def test_bad_palettes_are_refused_with_the_reason(text, message):
    with pytest.raises(LinecolorError, match=message):
        parse_gpl(text)


def test_nearest_is_by_perceived_colour():
    palette = Palette.from_hex(["#d02020", "#2040e0", "#f0f0f0", "#202020"])
    got = palette.nearest(np.array([[250, 10, 10], [40, 60, 200], [255, 255, 255], [60, 50, 50]], np.float32))
    assert palette.hex() == ["#d02020", "#2040e0", "#f0f0f0", "#202020"]
    assert got.astype(int).tolist() == [[208, 32, 32], [32, 64, 224], [240, 240, 240], [32, 32, 32]]


@pytest.fixture(scope="module")
def bundled() -> ColorizationPipeline:
    return ColorizationPipeline.from_pretrained()


def test_unhinted_regions_take_palette_colours(bundled):
    hints = [(256, 300, "#f5a623", 8)]
    palette = ["#bfe3f5", "#6b3e26", "#fff3e0"]
    flats = np.asarray(bundled(CAT, hints, palette=palette, overlay_lines=False)).reshape(-1, 3)
    allowed = {(0xF5, 0xA6, 0x23)} | {tuple(int(h[i:i + 2], 16) for i in (1, 3, 5)) for h in palette}
    assert {tuple(c) for c in np.unique(flats, axis=0)} <= allowed
    without = np.asarray(bundled(CAT, hints, overlay_lines=False)).reshape(-1, 3)
    assert not {tuple(c) for c in np.unique(without, axis=0)} <= allowed  # the palette is what made the difference
    # strength 0 still means "leave them white", palette or not
    white = np.asarray(bundled(CAT, hints, palette=palette, overlay_lines=False, suggestion_strength=0.0))
    assert {tuple(c) for c in np.unique(white.reshape(-1, 3), axis=0)} == {(255, 255, 255), (0xF5, 0xA6, 0x23)}
    layers = bundled.layered(CAT, hints, palette=palette)
    np.testing.assert_array_equal(layers.layer("flats").pixels, np.asarray(bundled(CAT, hints, palette=palette,
                                                                                   overlay_lines=False)))


@pytest.mark.slow
def test_cli_palette_is_read_before_the_model_and_used(tmp_path):
    Image.open(CAT).save(tmp_path / "cat.png")
    (tmp_path / "bad.gpl").write_text("not a palette\n", encoding="utf-8")
    run = [PYTHON, "-m", "linecolor", "colorize", "cat.png", "--points", "256,300,#f5a623,8", "--no-overlay"]
    result = subprocess.run(run + ["--palette", "bad.gpl", "--weights", "missing"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "not a GIMP palette" in result.stderr and "missing" not in result.stderr
    (tmp_path / "two.gpl").write_text("GIMP Palette\n191 227 245 sky\n107 62 38 bark\n", encoding="utf-8")
    result = subprocess.run(run + ["--palette", "two.gpl", "--out", "out.png"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    colours = {tuple(c) for c in np.unique(np.asarray(Image.open(tmp_path / "out.png")).reshape(-1, 3), axis=0)}
    assert colours <= {(0xF5, 0xA6, 0x23), (191, 227, 245), (107, 62, 38)}


def test_api_palette_field():
    client, line_png = tiny_fill_api()

    def post(palette: str):
        return client.post("/api/colorize", data={"line": (io.BytesIO(line_png), "l.png"),
                                                  "palette": palette, "points": '[[30, 30, "#d03020", 5]]'},
                           content_type="multipart/form-data")

    resp = post(json.dumps(["#102030", "#e0e0a0"]))
    assert resp.status_code == 200
    for bad in ('"#102030"', "[1, 2]", "[" * 5000, json.dumps(["#102030"] * (MAX_PALETTE_COLOURS + 1)), "[]"):
        resp = post(bad)
        assert resp.status_code == 400 and "palette" in resp.get_json()["error"]["message"], (bad[:20], resp.data)


def test_a_pictures_main_colours_are_its_flat_colours_most_first():
    picture = np.zeros((100, 100, 3), np.uint8)
    picture[:] = (255, 255, 255)
    picture[:, :30] = (200, 20, 20)
    picture[:, 30:40] = (20, 20, 200)
    picture[50, 50] = (0, 255, 0)  # a speck is no main colour
    np.testing.assert_array_equal(image_colours(picture), [[255, 255, 255], [200, 20, 20], [20, 20, 200]])


def test_a_photos_main_colours_are_few_seeded_and_near_its_pixels():
    rng = np.random.default_rng(3)
    photo = np.clip(rng.normal(0, 12, (300, 400, 3)) + np.where(np.arange(400)[None, :, None] < 200,
                                                                  [[[210, 160, 120]]], [[[40, 90, 160]]]), 0, 255)
    photo = photo.astype(np.uint8)
    colours = image_colours(photo)
    assert 2 <= len(colours) <= IMAGE_COLOURS
    np.testing.assert_array_equal(colours, image_colours(photo))  # the same picture, the same colours
    lab_colours = rgb2lab(colours[None] / 255.0)[0]
    for centre in ([210, 160, 120], [40, 90, 160]):  # both halves are represented
        centre_lab = rgb2lab(np.array([[centre]]) / 255.0)[0, 0]
        assert deltaE_ciede2000(lab_colours, np.broadcast_to(centre_lab, lab_colours.shape)).min() < 10


def test_a_coloured_drawings_outlines_are_not_among_its_main_colours_but_a_black_area_is():
    picture = Image.new("RGB", (400, 400), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    for k in range(4):  # four outlined discs: their black lines cover about 5 % of the picture
        box = [20 + 95 * k, 40, 100 + 95 * k, 120]
        draw.ellipse(box, fill=(240, 200, 40), outline=(0, 0, 0), width=8)
    assert 0.03 < (np.asarray(picture).max(axis=2) < 60).mean()
    colours = image_colours(np.asarray(picture))
    np.testing.assert_array_equal(colours, [[255, 255, 255], [240, 200, 40]])
    draw.rectangle([20, 200, 380, 380], fill=(0, 0, 0))  # a wide black area is one of its colours
    colours = image_colours(np.asarray(picture))
    assert [0, 0, 0] in colours.tolist() and [240, 200, 40] in colours.tolist()
