"""Layered results (issue 16): PSD and OpenRaster files with flats, shading, lines and hidden hints that open in
psd-tools and per the OpenRaster spec and flatten to the PNG output."""

from __future__ import annotations

import io
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from psd_tools import PSDImage
from psd_tools.constants import BlendMode

from linecolor.errors import LinecolorError
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.raster.colouring import multiply_lines
from linecolor.raster.layered import Layer, LayeredImage, layered_bytes, shading_layers, write_layered

from conftest import PYTHON, draw_pair, tiny_fill_api

FLATTEN_TOLERANCE = 2
"""Levels per channel a layered file's flattening may differ from the PNG output (the issue's bound)."""
CAT = Path(__file__).resolve().parents[1] / "src/linecolor/server/static/examples/openmoji-cat-face.png"
CAT_HINTS = [(256, 300, "#f5a623", 8), (40, 470, "#bfe3f5", 8), (256, 418, "#fff3e0", 4)]
ORA_OPS = {"svg:src-over": "normal", "svg:multiply": "multiply", "svg:screen": "screen"}


def flatten_ora(data: bytes) -> tuple[list[dict], np.ndarray]:
    """An OpenRaster file's layers (top first, as stack.xml lists them) and their flattening, computed here from the
    spec's blend formulas — independent of the writer's own flattening."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        stack = ET.fromstring(zf.read("stack.xml"))
        layers = []
        for node in stack.iter("layer"):
            with Image.open(io.BytesIO(zf.read(node.get("src")))) as im:
                pixels = np.asarray(im.convert("RGBA"), dtype=np.float64)
            layers.append({"name": node.get("name"), "op": node.get("composite-op"),
                           "visible": node.get("visibility", "visible") == "visible", "pixels": pixels})
    h, w = layers[0]["pixels"].shape[:2]
    out = np.full((h, w, 3), 255.0)
    for layer in reversed(layers):
        if not layer["visible"]:
            continue
        src, alpha = layer["pixels"][..., :3], layer["pixels"][..., 3:] / 255.0
        blend = {"svg:multiply": out * src / 255.0, "svg:screen": 255.0 - (255.0 - out) * (255.0 - src) / 255.0,
                 "svg:src-over": src}[layer["op"]]
        out = blend * alpha + out * (1.0 - alpha)
    return layers, np.rint(out).astype(np.uint8)


@pytest.fixture(scope="module")
def bundled() -> ColorizationPipeline:
    return ColorizationPipeline.from_pretrained()


# ------------------------------------------------------------------------------------------------ the raster part
def test_flatten_multiplies_like_the_png_composite():
    rng = np.random.default_rng(0)
    flats = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    line = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    stack = LayeredImage((Layer("flats", flats), Layer("lines", np.repeat(line[..., None], 3, 2), "multiply"),
                          Layer("hints", np.full((40, 50, 4), 200, np.uint8), visible=False)))
    np.testing.assert_array_equal(stack.flatten(), multiply_lines(flats, line))


def test_shadows_and_highlights_rebuild_any_shading():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for target in (rng.integers(0, 256, base.shape, dtype=np.uint8),  # anything, darker or lighter
                   np.clip(base.astype(int) + rng.integers(-30, 31, base.shape), 0, 255).astype(np.uint8)):
        shadows, highlights = shading_layers(base, target)
        stack = LayeredImage((Layer("flats", base), Layer("shading", shadows, "multiply"),
                              Layer("highlights", highlights, "screen")))
        assert np.abs(stack.flatten().astype(int) - target).max() <= 1


def test_layers_are_checked():
    with pytest.raises(ValueError, match="blend"):
        Layer("x", np.zeros((2, 2, 3), np.uint8), "overlay")
    with pytest.raises(ValueError, match="uint8"):
        Layer("x", np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="one size"):
        LayeredImage((Layer("a", np.zeros((2, 2, 3), np.uint8)), Layer("b", np.zeros((3, 2, 3), np.uint8))))
    with pytest.raises(ValueError, match="differ"):
        LayeredImage((Layer("a", np.zeros((2, 2, 3), np.uint8)), Layer("a", np.zeros((2, 2, 3), np.uint8))))


def test_write_layered_never_replaces_a_file_unasked(tmp_path):
    stack = LayeredImage((Layer("flats", np.full((8, 8, 3), 90, np.uint8)),))
    target = tmp_path / "a.ora"
    target.write_bytes(b"the user's file")
    with pytest.raises(LinecolorError, match="already exists"):
        write_layered(stack, target)
    assert target.read_bytes() == b"the user's file"
    write_layered(stack, target, overwrite=True)
    assert zipfile.is_zipfile(target)
    with pytest.raises(LinecolorError, match=".psd"):
        write_layered(stack, tmp_path / "a.tiff")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ora"]  # no temporary file left behind


# ------------------------------------------------------------------------------------------------ from the pipeline
@pytest.mark.parametrize("composite", ["regions", "network"])
def test_layers_flatten_to_the_png_output(bundled, composite):
    png = np.asarray(bundled(CAT, CAT_HINTS, composite=composite, mode="stochastic", seed=5)).astype(int)
    stack = bundled.layered(CAT, CAT_HINTS, composite=composite, mode="stochastic", seed=5)
    shaded = ("shading", "highlights") if composite == "network" else ()
    assert stack.names == ("flats", *shaded, "lines", "hints")
    difference = np.abs(stack.flatten().astype(int) - png).max()
    assert difference <= (0 if composite == "regions" else 1)
    # flats: one flat colour per region (a magic wand selects a region), the hint colours where hinted
    flats = stack.layer("flats").pixels
    analysis = bundled.analyse(CAT)
    for region in np.unique(analysis.labels)[1:20]:
        assert len(np.unique(flats[analysis.labels == region], axis=0)) == 1
    assert tuple(flats[300, 256]) == (0xF5, 0xA6, 0x23)
    hints = stack.layer("hints")
    assert not hints.visible and hints.pixels.shape[2] == 4
    assert tuple(hints.pixels[300, 256]) == (0xF5, 0xA6, 0x23, 255) and hints.pixels[5, 5, 3] == 0


def test_psd_opens_with_its_layers_and_flattens_to_the_png(bundled):
    png = np.asarray(bundled(CAT, CAT_HINTS, composite="network")).astype(int)
    psd = PSDImage.open(io.BytesIO(layered_bytes(bundled.layered(CAT, CAT_HINTS, composite="network"), ".psd")))
    assert psd.size == (512, 512)
    assert [(layer.name, layer.blend_mode, layer.visible) for layer in psd] == [
        ("flats", BlendMode.NORMAL, True), ("shading", BlendMode.MULTIPLY, True),
        ("highlights", BlendMode.SCREEN, True), ("lines", BlendMode.MULTIPLY, True),
        ("hints", BlendMode.NORMAL, False)]
    composited = np.asarray(psd.composite().convert("RGB")).astype(int)  # psd-tools' own compositor
    assert np.abs(composited - png).max() <= FLATTEN_TOLERANCE
    merged = np.asarray(psd.topil().convert("RGB")).astype(int)  # the merged image viewers show
    assert np.abs(merged - png).max() <= FLATTEN_TOLERANCE


def test_ora_follows_the_spec_and_flattens_to_the_png(bundled):
    png = np.asarray(bundled(CAT, CAT_HINTS, composite="network")).astype(int)
    data = layered_bytes(bundled.layered(CAT, CAT_HINTS, composite="network"), ".ora")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        first = zf.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
        assert zf.read("mimetype") == b"image/openraster"
        names = set(zf.namelist())
        assert {"stack.xml", "mergedimage.png", "Thumbnails/thumbnail.png"} <= names
        with Image.open(io.BytesIO(zf.read("Thumbnails/thumbnail.png"))) as thumb:
            assert max(thumb.size) <= 256
        merged = np.asarray(Image.open(io.BytesIO(zf.read("mergedimage.png"))).convert("RGB")).astype(int)
    assert data[30:38] == b"mimetype" and data[38:54] == b"image/openraster"  # what `file` looks for
    layers, flattened = flatten_ora(data)
    assert [(layer["name"], ORA_OPS[layer["op"]], layer["visible"]) for layer in layers] == [
        ("hints", "normal", False), ("lines", "multiply", True), ("highlights", "screen", True),
        ("shading", "multiply", True), ("flats", "normal", True)]
    assert np.abs(flattened.astype(int) - png).max() <= FLATTEN_TOLERANCE
    assert np.abs(merged - png).max() <= FLATTEN_TOLERANCE


# ------------------------------------------------------------------------------------------------ CLI and API
def _cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "linecolor", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_cli_writes_psd_and_ora_by_suffix_and_folders_by_format(tmp_path):
    Image.open(CAT).save(tmp_path / "cat.png")
    points = ";".join(f"{x},{y},{c},{r}" for x, y, c, r in CAT_HINTS)
    for name in ("cat.psd", "cat.ora", "cat-flat.png"):
        result = _cli("colorize", "cat.png", "--points", points, "--out", name, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    png = np.asarray(Image.open(tmp_path / "cat-flat.png").convert("RGB")).astype(int)
    psd = PSDImage.open(tmp_path / "cat.psd")
    assert [layer.name for layer in psd] == ["flats", "lines", "hints"]
    assert np.abs(np.asarray(psd.composite().convert("RGB")).astype(int) - png).max() <= FLATTEN_TOLERANCE
    _, flattened = flatten_ora((tmp_path / "cat.ora").read_bytes())
    assert np.abs(flattened.astype(int) - png).max() <= FLATTEN_TOLERANCE
    # a folder: --format chooses; every output is a layered file
    (tmp_path / "lines").mkdir()
    for i in range(2):
        Image.fromarray(draw_pair(i, 96).lines[0]).save(tmp_path / "lines" / f"p{i}.png")
    result = _cli("colorize", "lines", "--format", "ora", "--out", "coloured", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "coloured").iterdir()) == ["p0.ora", "p1.ora"]


@pytest.mark.parametrize("argv, message", [
    (["lines", "--out", "single.png"], "looks like a file name"),  # before: a folder called single.png
    (["cat.png", "--out", "cat.ora", "--no-overlay"], "--no-overlay"),
    (["cat.png", "--out", "cat.psd", "--format", "ora"], "--format ora"),
    (["cat.png", "--out", "cat.tiff"], ".psd, .ora"),
])
def test_cli_refuses_bad_layered_arguments_before_loading_a_model(tmp_path, argv, message):
    Image.open(CAT).save(tmp_path / "cat.png")
    (tmp_path / "lines").mkdir()
    Image.open(CAT).save(tmp_path / "lines" / "a.png")
    result = _cli("colorize", *argv, "--weights", tmp_path / "no-such-model", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "no-such-model" not in result.stderr  # refused before the model was looked at
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.png", "lines"]


def test_api_returns_layered_attachments():
    client, line_png = tiny_fill_api()
    fields = {"points": '[[30, 30, "#d03020", 5]]', "composite": "network"}

    def post(**extra):
        return client.post("/api/colorize", data={"line": (io.BytesIO(line_png), "l.png"), **fields,
                                                  **extra}, content_type="multipart/form-data")

    png = np.asarray(Image.open(io.BytesIO(post().data)).convert("RGB")).astype(int)
    resp = post(format="psd")
    assert resp.status_code == 200 and resp.mimetype == "image/vnd.adobe.photoshop"
    assert "attachment" in resp.headers["Content-Disposition"] and "linecolor.psd" in resp.headers["Content-Disposition"]
    psd = PSDImage.open(io.BytesIO(resp.data))
    assert np.abs(np.asarray(psd.composite().convert("RGB")).astype(int) - png).max() <= FLATTEN_TOLERANCE
    resp = post(format="ora")
    assert resp.status_code == 200 and resp.mimetype == "image/openraster"
    layers, flattened = flatten_ora(resp.data)
    assert [layer["name"] for layer in layers] == ["hints", "lines", "highlights", "shading", "flats"]
    assert np.abs(flattened.astype(int) - png).max() <= FLATTEN_TOLERANCE
    resp = post(format="tiff")
    assert resp.status_code == 400 and "format" in resp.get_json()["error"]["message"]


# ------------------------------------------------------------------------------------------------ real programs
GIMP_SCRIPT = """(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "{src}" "{src}")))
       (layers (vector->list (cadr (gimp-image-get-layers image)))))
  (for-each (lambda (layer)
              (gimp-message (string-append "LAYER " (car (gimp-item-get-name layer)) " "
                                           (number->string (car (gimp-layer-get-mode layer))) " "
                                           (number->string (car (gimp-item-get-visible layer))))))
            layers)
  (let ((flat (car (gimp-image-flatten image))))
    (file-png-save RUN-NONINTERACTIVE image flat "{out}" "{out}" 0 9 0 0 0 0 0)))"""
GIMP_MODES = {28: "normal", 30: "multiply", 31: "screen"}  # GIMP 2.10's layer modes (the non-legacy ones)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gimp") is None, reason="GIMP is not installed (apt install gimp)")
def test_gimp_opens_the_psd_with_its_layers_and_flattens_it_to_the_png(bundled, tmp_path):
    png = np.asarray(bundled(CAT, CAT_HINTS, composite="network")).astype(int)
    write_layered(bundled.layered(CAT, CAT_HINTS, composite="network"), tmp_path / "cat.psd")
    script = GIMP_SCRIPT.format(src=tmp_path / "cat.psd", out=tmp_path / "flat.png")
    result = subprocess.run(["gimp", "-i", "-d", "-f", "-c", "-b", script, "-b", "(gimp-quit 0)"],
                            capture_output=True, text=True, timeout=300)
    layers = [line.split("LAYER ", 1)[1].split() for line in (result.stdout + result.stderr).splitlines()
              if "LAYER " in line]
    assert [(name, GIMP_MODES.get(int(mode)), visible) for name, mode, visible in layers] == [
        ("hints", "normal", "0"), ("lines", "multiply", "1"), ("highlights", "screen", "1"),
        ("shading", "multiply", "1"), ("flats", "normal", "1")], result.stderr[-2000:]
    flat = np.asarray(Image.open(tmp_path / "flat.png").convert("RGB")).astype(int)
    assert np.abs(flat - png).max() <= FLATTEN_TOLERANCE


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("krita") is None or shutil.which("xvfb-run") is None,
                    reason="Krita and xvfb-run are not installed (apt install krita xvfb)")
@pytest.mark.parametrize("suffix", [".ora", ".psd"])
def test_krita_exports_the_layered_file_as_the_png(bundled, tmp_path, suffix):
    png = np.asarray(bundled(CAT, CAT_HINTS, composite="network")).astype(int)
    write_layered(bundled.layered(CAT, CAT_HINTS, composite="network"), tmp_path / ("cat" + suffix))
    result = subprocess.run(["xvfb-run", "-a", "krita", str(tmp_path / ("cat" + suffix)), "--export",
                             "--export-filename", str(tmp_path / "flat.png")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    flat = np.asarray(Image.open(tmp_path / "flat.png").convert("RGB")).astype(int)
    assert np.abs(flat - png).max() <= FLATTEN_TOLERANCE
