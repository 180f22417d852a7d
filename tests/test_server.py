"""The studio's HTTP API through Flask's test client: every endpoint, every class of bad input, overload."""

from __future__ import annotations

import io
import json
import struct
import threading
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from linecolor.config import ServerConfig
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.models.colorizer import Colorizer
from linecolor.server import create_app

from conftest import StandInPipeline, draw_pair, tiny_model_config


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid 1-bit greyscale PNG declaring width×height pixels, a few hundred KB compressed."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def pipeline() -> ColorizationPipeline:
    torch.manual_seed(0)
    return ColorizationPipeline(Colorizer(tiny_model_config(working_size=64)))


@pytest.fixture
def app(pipeline):
    return create_app(ServerConfig(max_content_length=2 * 1024 * 1024, max_pixels=2048 * 2048), pipeline=pipeline)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def line_png() -> bytes:
    return png_bytes(Image.fromarray(draw_pair(2, 96).lines[0]))


def post_colorize(client, line: bytes | None, **fields):
    data = {k: v for k, v in fields.items()}
    if line is not None:
        data["line"] = (io.BytesIO(line), "line.png")
    for key in ("hints", "reference"):
        if isinstance(data.get(key), bytes):
            data[key] = (io.BytesIO(data[key]), f"{key}.png")
    return client.post("/api/colorize", data=data, content_type="multipart/form-data")


def assert_json_error(response, status: int, *fragments: str) -> dict:
    assert response.status_code == status, (response.status_code, response.data[:300])
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body["error"]) == {"code", "message", "request_id"}
    assert body["error"]["request_id"] == response.headers["X-Request-Id"]
    assert b"Traceback" not in response.data
    for fragment in fragments:
        assert fragment in body["error"]["message"], body
    return body


def assert_still_serves(client, line_png: bytes) -> None:
    response = post_colorize(client, line_png)
    assert response.status_code == 200 and response.mimetype == "image/png"


# ---------------------------------------------------------------------------------------- endpoints
def test_health_ready_and_examples(client):
    assert client.get("/api/health").get_json() == {"status": "ok"}
    ready = client.get("/api/ready")
    assert ready.status_code == 200 and ready.get_json()["model"]["variant"] == "ladder"
    examples = client.get("/api/examples")
    assert examples.status_code == 200 and isinstance(examples.get_json()["examples"], list)


def test_limits_come_from_the_library(client):
    """The studio's controls are built from this answer: it must be exactly the library's one set of limits."""
    from linecolor import limits

    body = client.get("/api/limits").get_json()
    assert body == limits.as_dict()
    assert body["modes"] == list(limits.MODES) and body["composites"] == list(limits.COMPOSITES)
    assert body["latent_shift"]["max"] == limits.MAX_LATENT_SHIFT
    assert body["suggestion_strength"]["default"] == limits.SUGGESTION_STRENGTH
    # The server enforces the same numbers it publishes.
    over = {"latent_shift": str(limits.MAX_LATENT_SHIFT + 0.1), "seed": str(limits.MAX_SEED + 1)}
    for field, value in over.items():
        response = client.post("/api/colorize", data={"line": (io.BytesIO(b"x"), "l.png"), field: value},
                               content_type="multipart/form-data")
        assert response.status_code == 400 and field in response.get_json()["error"]["message"], field


def test_colorize_returns_a_png_of_the_line_size_and_the_seed(client, line_png):
    response = post_colorize(client, line_png, mode="stochastic", seed="42", latent_shift="0.5",
                             points=json.dumps([[10, 10, "#ff0000", 3]]))
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.headers["X-Linecolor-Seed"] == "42"
    image = Image.open(io.BytesIO(response.data))
    assert image.size == (96, 96)
    again = post_colorize(client, line_png, mode="stochastic", seed="42", latent_shift="0.5",
                          points=json.dumps([[10, 10, "#ff0000", 3]]))
    assert again.data == response.data
    fresh = post_colorize(client, line_png, mode="stochastic")
    assert int(fresh.headers["X-Linecolor-Seed"]) >= 0
    # No seed is reported where none is used.
    assert "X-Linecolor-Seed" not in post_colorize(client, line_png, mode="deterministic").headers


def test_colorize_with_hint_layer_and_reference(client, line_png):
    layer = Image.new("RGBA", (96, 96), (0, 0, 0, 0))
    layer.putpixel((40, 40), (0, 200, 0, 255))
    with_hints = post_colorize(client, line_png, hints=png_bytes(layer))
    without = post_colorize(client, line_png)
    assert with_hints.status_code == 200 and with_hints.data != without.data
    ref = png_bytes(Image.new("RGB", (32, 32), (200, 30, 30)))
    assert post_colorize(client, line_png, mode="reference", reference=ref).status_code == 200


def test_lineart_cleans_a_sketch(client):
    sketch = Image.new("L", (80, 60), 255)
    for x in range(10, 70):
        sketch.putpixel((x, 30), 90)
        sketch.putpixel((x, 31), 120)
    response = client.post("/api/lineart", data={"image": (io.BytesIO(png_bytes(sketch)), "s.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 200
    out = np.asarray(Image.open(io.BytesIO(response.data)).convert("L"))
    assert out.shape == (60, 80) and set(np.unique(out)) <= {0, 255} and (out[25:36, 15:65] == 0).any()


def test_page_is_served_with_safe_headers(client):
    response = client.get("/")
    assert response.status_code == 200 and b"<html" in response.data.lower()
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "Access-Control-Allow-Origin" not in response.headers


# ---------------------------------------------------------------------------------------- bad input
BAD_IMAGES = {
    "random bytes": (bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)), 415),
    "truncated png": (None, 400),
    "tiff": (png_bytes(Image.new("RGB", (8, 8)), "TIFF"), 415),
    "gif": (png_bytes(Image.new("RGB", (8, 8)), "GIF"), 415),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', 415),
    "bomb": (None, 413),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_get_4xx_json(client, line_png, case):
    data, status = BAD_IMAGES[case]
    if case == "truncated png":
        data = line_png[: len(line_png) // 2]
    if case == "bomb":
        data = png_bomb()
    assert_json_error(post_colorize(client, data), status)
    assert_still_serves(client, line_png)


def test_empty_and_missing_bodies(client, line_png):
    assert_json_error(client.post("/api/colorize"), 415, "multipart")
    assert_json_error(client.post("/api/colorize", data={}, content_type="multipart/form-data"), 400, "required")
    assert_json_error(post_colorize(client, b""), 400, "empty")
    assert_json_error(client.post("/api/colorize", data={"line": "data:image/png;base64,AAAA"},
                                  content_type="multipart/form-data"), 400, "file part")
    assert_json_error(client.post("/api/colorize", data={"line": "http://169.254.169.254/x.png"},
                                  content_type="multipart/form-data"), 400, "not fetched")
    assert_still_serves(client, line_png)


def test_mismatched_hint_size(client, line_png):
    assert_json_error(post_colorize(client, line_png, hints=png_bytes(Image.new("RGBA", (10, 10)))), 400,
                      "same size")


@pytest.mark.parametrize("field,value", [
    ("seed", "nan"), ("seed", "-1"), ("seed", "1e400"), ("seed", "99999999999999999999999"), ("seed", "abc"),
    ("latent_shift", "nan"), ("latent_shift", "inf"), ("latent_shift", "-inf"), ("latent_shift", "1e308"),
    ("latent_shift", "-4"), ("latent_shift", "two"), ("mode", "random"), ("points", "[[1e9, 5, \"#ff0000\", 3]]"),
    ("points", "{}"), ("points", "[[5, 5, \"red\", 3]]"), ("points", "[[\"nan\", 5, \"#ff0000\", 3]]"),
    ("points", "not json"), ("composite", "blend"), ("suggestion_strength", "1.5"),
    ("suggestion_strength", "-0.1"), ("suggestion_strength", "nan"), ("suggestion_strength", "strong"),
])
def test_bad_numbers_and_fields(client, line_png, field, value):
    assert_json_error(post_colorize(client, line_png, **{field: value}), 400)


def test_composite_and_suggestion_strength_reach_the_pipeline(line_png):
    seen = []

    class Recording(SlowPipeline):
        def __call__(self, line, hints, reference, **kwargs):
            seen.append(kwargs)
            return super().__call__(line, hints, reference, **kwargs)

    client = create_app(ServerConfig(), pipeline=Recording(0.0)).test_client()
    assert post_colorize(client, line_png).status_code == 200
    assert post_colorize(client, line_png, composite="network", suggestion_strength="0.25").status_code == 200
    # No field: None, the model's own default (default_suggestion_strength), not a server-wide number.
    assert (seen[0]["composite"], seen[0]["suggestion_strength"]) == ("regions", None)
    assert (seen[1]["composite"], seen[1]["suggestion_strength"]) == ("network", 0.25)


def test_oversize_body_and_too_many_parts(client, line_png):
    # A raw multipart body (the test client would spool a >500 kB dict upload to a temp file it never closes).
    boundary = "linecolorboundary"
    big = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"line\"; filename=\"l.png\"\r\n"
           "Content-Type: image/png\r\n\r\n").encode() + b"\0" * (3 * 1024 * 1024) + f"\r\n--{boundary}--\r\n".encode()
    response = client.post("/api/colorize", data=big, content_type=f"multipart/form-data; boundary={boundary}")
    assert_json_error(response, 413)
    many = {f"f{i}": "x" for i in range(100)}
    assert_json_error(post_colorize(client, line_png, **many), 413)
    assert_still_serves(client, line_png)


def test_wrong_method_unknown_route_and_static_probes(client):
    assert_json_error(client.get("/api/colorize"), 405)
    assert_json_error(client.get("/api/nothing"), 404)
    for probe in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static//etc/passwd",
                  "/static/..\\app.py"):
        response = client.get(probe, follow_redirects=True)
        assert response.status_code == 404, probe
        assert b"import" not in response.data


def test_exception_inside_inference_is_a_500_with_request_id(line_png):
    class Broken(StandInPipeline):
        config = tiny_model_config()

        def __call__(self, *args, **kwargs):
            raise RuntimeError("boom")

    client = create_app(ServerConfig(), pipeline=Broken()).test_client()
    body = assert_json_error(post_colorize(client, line_png), 500)
    assert "boom" not in body["error"]["message"] and body["error"]["request_id"]
    assert client.get("/api/health").status_code == 200


def test_not_ready_without_weights(tmp_path, line_png):
    client = create_app(ServerConfig(weights=str(tmp_path / "missing"))).test_client()
    assert client.get("/api/health").status_code == 200
    ready = client.get("/api/ready")
    assert ready.status_code == 503 and "not found" in ready.get_json()["reason"]
    assert_json_error(post_colorize(client, line_png), 503, "no model is loaded")
    (tmp_path / "pickled").mkdir()
    Colorizer(tiny_model_config()).save_pretrained(tmp_path / "pickled")
    torch.save({"x": torch.zeros(1)}, tmp_path / "pickled" / "model.safetensors")
    cfg = json.loads((tmp_path / "pickled" / "config.json").read_text())
    cfg.pop("_weights_sha256")
    (tmp_path / "pickled" / "config.json").write_text(json.dumps(cfg))
    client = create_app(ServerConfig(weights=str(tmp_path / "pickled"))).test_client()
    assert "safetensors required" in client.get("/api/ready").get_json()["reason"]


def test_served_weights_run_on_the_fast_path(tmp_path, line_png):
    """The studio loads its weights through from_pretrained, so it colours on the fastest available backend."""
    from linecolor.inference.runtime import onnxruntime_available

    torch.manual_seed(0)
    Colorizer(tiny_model_config(fill_guide=True)).save_pretrained(tmp_path / "weights")
    client = create_app(ServerConfig(weights=str(tmp_path / "weights"))).test_client()
    model = client.get("/api/ready").get_json()["model"]
    assert model["backend"] == ("onnxruntime" if onnxruntime_available() else "eager")
    assert model["fill_guide"] is True
    from linecolor.limits import SUGGESTION_STRENGTH_WITHOUT_HEAD

    assert (model["region_head"], model["suggestion_strength"]) == (False, SUGGESTION_STRENGTH_WITHOUT_HEAD)
    assert post_colorize(client, line_png).status_code == 200


# ------------------------------------------------------------------------------------------- overload
class SlowPipeline(StandInPipeline):
    """A stand-in model that takes ``delay`` seconds and returns a white image."""

    config = tiny_model_config()

    def __init__(self, delay: float):
        super().__init__()
        self.delay = delay

    def __call__(self, line, hints, reference, **kwargs):
        time.sleep(self.delay)
        return Image.new("RGB", (8, 8), (255, 255, 255))


def test_queue_admits_exactly_q_plus_one_and_health_stays_fast(line_png):
    q = 2
    app = create_app(ServerConfig(queue_size=q), pipeline=SlowPipeline(0.6))
    results: list[int] = []
    retry_after: list[str] = []
    lock = threading.Lock()

    def worker():
        response = post_colorize(app.test_client(), line_png)
        with lock:
            results.append(response.status_code)
            if response.status_code == 503:
                retry_after.append(response.headers.get("Retry-After", ""))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
        time.sleep(0.02)  # ordered arrival: the first q+1 are admitted
    t0 = time.perf_counter()
    health = app.test_client().get("/api/health")
    health_s = time.perf_counter() - t0
    for t in threads:
        t.join(30)
    assert sorted(results) == [200] * (q + 1) + [503] * (8 - q - 1)
    assert all(v.isdigit() and int(v) >= 1 for v in retry_after)
    assert health.status_code == 200 and health_s < 0.5


def test_queue_wait_and_request_timeouts(line_png):
    app = create_app(ServerConfig(queue_size=1, queue_timeout_s=0.2, request_timeout_s=0.3),
                     pipeline=SlowPipeline(1.0))
    statuses: dict[str, int] = {}

    def first():
        statuses["first"] = post_colorize(app.test_client(), line_png).status_code

    t = threading.Thread(target=first)
    t.start()
    time.sleep(0.05)
    second = post_colorize(app.test_client(), line_png)
    t.join(10)
    assert statuses["first"] == 504
    assert_json_error(second, 503, "queue")
    time.sleep(1.0)  # the timed-out computation finishes and frees its slot
    assert app.extensions["colorizer"].gate.in_flight == 0


# ------------------------------------------------------------------------------ analysis once per drawing
def ring_png(gap: int = 8, size: int = 160) -> bytes:
    image = Image.new("L", (size, size), 255)
    ImageDraw.Draw(image).ellipse([30, 30, 130, 130], outline=0, width=4)
    line = np.asarray(image).copy()
    line[80 - gap // 2:80 + gap // 2, 120:140] = 255  # a gap in the ring's right side
    return png_bytes(Image.fromarray(line))


def test_analyse_once_then_colour_by_id_gives_the_same_image(client):
    line = ring_png()
    points = json.dumps([[80, 80, "#d03020", 6]])
    analysed = client.post("/api/analyse", data={"line": (io.BytesIO(line), "l.png")},
                           content_type="multipart/form-data")
    assert analysed.status_code == 200
    info = analysed.get_json()
    assert (info["width"], info["height"]) == (160, 160) and info["regions"] >= 2 and info["closures"] >= 1
    by_line = post_colorize(client, line, points=points)
    by_id = post_colorize(client, None, analysis=info["id"], points=points)
    assert by_line.status_code == by_id.status_code == 200
    assert by_line.headers["X-Linecolor-Analysis"] == info["id"] == by_id.headers["X-Linecolor-Analysis"]
    assert by_line.data == by_id.data
    out = np.asarray(Image.open(io.BytesIO(by_id.data)))
    assert (out[80, 80] == (208, 48, 32)).all() and (out[5, 5] != (208, 48, 32)).any()  # no leak through the gap
    regions = client.get(f"/api/regions/{info['id']}")
    assert regions.status_code == 200 and regions.mimetype == "image/png"
    labels = np.asarray(Image.open(io.BytesIO(regions.data))).astype(np.int64)
    labels = (labels[..., 0] << 16) | (labels[..., 1] << 8) | labels[..., 2]
    assert labels.shape == (160, 160) and labels[80, 80] != labels[5, 5] and labels.max() == info["regions"]


def test_an_unknown_or_malformed_analysis_id_asks_for_the_line_again(client):
    for bad in ("0" * 32, "../../etc/passwd", "x" * 500):
        assert_json_error(post_colorize(client, None, analysis=bad), 404, "send the line image again")
    assert_json_error(client.get("/api/regions/" + "f" * 32), 404)
    assert_json_error(post_colorize(client, ring_png(), analysis="0" * 32), 400, "not both")


@pytest.mark.parametrize("gap", ["-1", "nan", "1e9", "wide"])
def test_bad_gap_fields_are_refused(client, gap):
    assert_json_error(post_colorize(client, ring_png(), gap=gap), 400, "gap")


def test_the_gap_field_controls_the_closing(client):
    line, points = ring_png(gap=8), json.dumps([[80, 80, "#d03020", 6]])
    closed = np.asarray(Image.open(io.BytesIO(post_colorize(client, line, points=points, gap="auto").data)))
    bucket = np.asarray(Image.open(io.BytesIO(post_colorize(client, line, points=points, gap="0").data)))
    assert (closed[5, 5] != (208, 48, 32)).any() and (bucket[5, 5] == (208, 48, 32)).all()


def test_sketch_clean_up_returns_line_art_whose_regions_close(client):
    from scipy import ndimage

    sketch = Image.new("RGB", (480, 480), (250, 248, 240))  # a pencil ring on off-white paper, a 6 px gap
    ImageDraw.Draw(sketch).ellipse([90, 90, 390, 390], outline=(90, 90, 90), width=3)
    sketch = np.asarray(sketch).copy()
    sketch[237:243, 380:400] = (250, 248, 240)
    assert ndimage.label(np.asarray(Image.fromarray(sketch).convert("L")) >= 128)[0][240, 240] == \
        ndimage.label(np.asarray(Image.fromarray(sketch).convert("L")) >= 128)[0][15, 15]  # the sketch leaks
    response = client.post("/api/lineart", data={"image": (io.BytesIO(png_bytes(Image.fromarray(sketch))), "s.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 200
    cleaned = np.asarray(Image.open(io.BytesIO(response.data)).convert("L"))
    labels, _ = ndimage.label(cleaned >= 128)  # a plain paint bucket on the result
    assert labels[240, 240] != labels[15, 15]
