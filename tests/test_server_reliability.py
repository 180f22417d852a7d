"""Reliability of the studio server beyond test_server.py (anchors: docs/RELIABILITY.md, section D).

Refused formats (ICO, PDF, BLP, EPS), odd and cap-sized geometry, decompression bombs measured by RSS in a fresh
process, no CORS, slots freed by clients that disconnect (real waitress), start-up with broken or pickled weights,
and a bounded soak of the bundled model under waitress (``-m soak``). Every server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from linecolor.config import ServerConfig
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.limits import MAX_IMAGE_PIXELS
from linecolor.models.colorizer import Colorizer
from linecolor.server import create_app

from conftest import draw_pair, stop_process, tiny_model_config
from test_server import assert_json_error, assert_still_serves, png_bytes, post_colorize

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SERVER_START_TIMEOUT_S = 90.0


# ------------------------------------------------------------------------------------------- fixtures
def tiny_pipeline(fill_guide: bool = False) -> ColorizationPipeline:
    torch.manual_seed(0)
    return ColorizationPipeline(Colorizer(tiny_model_config(working_size=64, fill_guide=fill_guide)))


@pytest.fixture(scope="module", params=[False, True], ids=["5ch", "9ch-fill-guide"])
def any_client(request):
    """A client of an app with the production limits (ServerConfig()) and a tiny model of either input layout."""
    return create_app(ServerConfig(), pipeline=tiny_pipeline(request.param)).test_client()


@pytest.fixture(scope="module")
def client():
    return create_app(ServerConfig(), pipeline=tiny_pipeline()).test_client()


@pytest.fixture(scope="module")
def line_png() -> bytes:
    return png_bytes(Image.fromarray(draw_pair(3, 64).lines[0]))


# ----------------------------------------------------------------------------------- image builders
def image_bytes(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def blank_png(width: int, height: int) -> bytes:
    """A 1-bit PNG of any declared size, built row-block by row-block (a few KB even for huge sizes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    block = max(1, min(height, (1 << 20) // len(row)))
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row * min(block, height - y)) for y in range(0, height, block)]
    idat = b"".join(parts) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real 8×8 greyscale JPEG whose SOF0 header is rewritten to declare ``width``×``height`` (≤ 65535)."""
    data = bytearray(image_bytes(Image.new("L", (8, 8), 255), "JPEG"))
    sof = data.find(b"\xff\xc0")
    assert sof > 0, "Pillow wrote no baseline SOF0 marker"
    # FFC0, length (2), precision (1), height (2), width (2)
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


MINIMAL_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
               b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")
MINIMAL_EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\n"
               b"newpath 0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n")
# DOS EPS binary header: magic, PostScript offset/length, no WMF/TIFF preview, checksum 0xFFFF.
DOS_EPS = struct.pack("<4sIIIIIIH", b"\xc5\xd0\xd3\xc6", 30, len(MINIMAL_EPS), 0, 0, 0, 0, 0xFFFF) + MINIMAL_EPS

REFUSED_FORMATS = {
    # name: (bytes, format Pillow itself would recognise, or None where Pillow cannot read it)
    "ico": (image_bytes(Image.new("RGBA", (32, 32), (0, 0, 0, 255)), "ICO"), "ICO"),
    "ico-256": (image_bytes(Image.new("RGBA", (256, 256), (0, 0, 0, 255)), "ICO", sizes=[(256, 256)]), "ICO"),
    "pdf-pillow": (image_bytes(Image.new("RGB", (16, 16), (255, 255, 255)), "PDF"), None),
    "pdf-minimal": (MINIMAL_PDF, None),
    "blp2": (image_bytes(Image.new("P", (16, 16)), "BLP"), "BLP"),
    "blp1": (image_bytes(Image.new("P", (16, 16)), "BLP", blp_version="BLP1"), "BLP"),
    "eps-pillow": (image_bytes(Image.new("RGB", (16, 16), (255, 255, 255)), "EPS"), "EPS"),
    "eps-minimal": (MINIMAL_EPS, "EPS"),
    "eps-dos-binary": (DOS_EPS, "EPS"),
}


# ------------------------------------------------------------------------------ D1.5: refused formats
@pytest.mark.parametrize("name", sorted(REFUSED_FORMATS))
@pytest.mark.parametrize("part", ["line", "hints"])
def test_refused_formats_get_415_json_and_the_next_request_succeeds(client, line_png, name, part):
    data, pillow_format = REFUSED_FORMATS[name]
    if pillow_format is not None:  # the payload is a genuine file of that format, one Pillow would happily open
        assert Image.open(io.BytesIO(data)).format == pillow_format
    response = post_colorize(client, data) if part == "line" else post_colorize(client, line_png, hints=data)
    body = assert_json_error(response, 415, "PNG, JPEG or WebP")
    assert body["error"]["code"] == "unsupported_format"
    assert ("line image" if part == "line" else "hint image") in body["error"]["message"]
    assert_still_serves(client, line_png)


# ------------------------------------------------------------------------------------ D1.6: geometry
@pytest.mark.parametrize("size", [(1, 1), (1, 8192), (8192, 1), (3, 4097), (8191, 2)], ids=str)
def test_degenerate_sizes_colour_to_a_png_of_the_same_size(any_client, size):
    line = Image.new("L", size, 255)
    line.putpixel((0, 0), 0)
    response = post_colorize(any_client, png_bytes(line))
    assert response.status_code == 200, response.data[:300]
    assert response.mimetype == "image/png"
    assert Image.open(io.BytesIO(response.data)).size == size
    hints = Image.new("RGBA", size, (0, 0, 0, 0))
    hints.putpixel((size[0] - 1, size[1] - 1), (200, 30, 30, 255))
    response = post_colorize(any_client, png_bytes(line), hints=png_bytes(hints))
    assert response.status_code == 200 and Image.open(io.BytesIO(response.data)).size == size


def test_the_pixel_cap_is_the_documented_one():
    assert ServerConfig().max_pixels == MAX_IMAGE_PIXELS == 4096 * 4096


@pytest.mark.slow
def test_just_under_the_pixel_cap_is_coloured_at_full_size(client):
    w, h = 4096, 4095  # cap − 4096 pixels
    line = Image.new("L", (w, h), 255)
    line.paste(0, (100, 100, w - 100, 104))
    line.paste(0, (100, 100, 104, h - 100))
    data = png_bytes(line)
    assert len(data) < 200_000  # mostly white: cheap to send
    response = post_colorize(client, data)
    assert response.status_code == 200, response.data[:300]
    out = Image.open(io.BytesIO(response.data))
    assert out.size == (w, h)
    assert np.asarray(out.convert("L").crop((90, 90, 300, 300))).min() < 60  # the line survived at full size


@pytest.mark.parametrize("size", [(4097, 4096), (4096 + 1, 4096 + 1), (1, 4096 * 4096 + 1), (9000, 9000)], ids=str)
def test_just_over_the_pixel_cap_is_413_naming_the_limit(client, line_png, size):
    data = blank_png(*size)
    assert len(data) < 2_000_000
    body = assert_json_error(post_colorize(client, data), 413, f"more than the limit of {4096 * 4096} pixels")
    assert f"{size[0]}×{size[1]}" in body["error"]["message"]
    assert_still_serves(client, line_png)


@pytest.mark.parametrize("size", [(20000, 20000), (65535, 3000)], ids=str)
def test_far_over_the_cap_is_413(client, line_png, size):
    # Beyond twice Pillow's own bomb limit Image.open itself refuses; the answer is the same 413.
    assert_json_error(post_colorize(client, blank_png(*size)), 413, "too large")
    assert_still_serves(client, line_png)


def test_hint_layer_over_the_cap_is_413(client, line_png):
    assert_json_error(post_colorize(client, line_png, hints=blank_png(4097, 4096)), 413, "hint image", "limit")


# ------------------------------------------------------------------------- D1.1/D1.2: upload sizes
def padded_png(pad_bytes: int) -> bytes:
    """A valid 64×64 line PNG made ``pad_bytes`` larger by an ancillary chunk of CR LF (which Pillow skips)."""
    base = png_bytes(Image.fromarray(draw_pair(3, 64).lines[0]))
    pad = b"\r\n" * (pad_bytes // 2)
    chunk = struct.pack(">I", len(pad)) + b"pdDg" + pad + struct.pack(">I", zlib.crc32(b"pdDg" + pad) & 0xFFFFFFFF)
    return base[:33] + chunk + base[33:]  # right after the signature (8) and IHDR (25)


@pytest.mark.parametrize("size", [70_000, 200_000, 1_000_000, 3_000_000])
def test_uploads_over_64_kib_are_accepted(client, size):
    # Line breaks at the end of Werkzeug's 64 KiB read chunks are held back in its parse buffer; with
    # MAX_FORM_MEMORY_SIZE at 64 KiB that overflowed and legal uploads of any size over 64 KiB got a random 413.
    data = padded_png(size)
    assert Image.open(io.BytesIO(data)).size == (64, 64)
    body, content_type = multipart({"line": ("line.png", data)})
    response = client.post("/api/colorize", data=body, content_type=content_type)
    assert response.status_code == 200, response.data[:300]
    assert Image.open(io.BytesIO(response.data)).size == (64, 64)


def test_text_field_limits(client, line_png):
    points = [[i % 64, (i // 64) % 64, "#a0b0c0", 1] for i in range(10_000)]  # the most the API accepts
    text = json.dumps(points)
    assert 64 * 1024 < len(text) < 500_000
    body, content_type = multipart({"line": ("line.png", line_png), "points": text})
    assert client.post("/api/colorize", data=body, content_type=content_type).status_code == 200
    # The oversized field goes first: when Werkzeug aborts a parse with 413 it does not close the temp files of
    # file parts it already read (they are closed when garbage-collected, with a ResourceWarning).
    body, content_type = multipart({"points": "[" + " " * 600_000 + "]", "line": ("line.png", line_png)})
    assert_json_error(client.post("/api/colorize", data=body, content_type=content_type), 413)
    assert_still_serves(client, line_png)


# ------------------------------------------------------------- D1.4: bombs refused before allocation
BOMB_PROBE = r"""
import gc, json, re, sys, threading, time
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(1)
from linecolor.config import ServerConfig
from linecolor.raster.imageio import open_image
from linecolor.server import create_app
from test_server_reliability import blank_png, jpeg_declaring, tiny_pipeline, png_bytes, post_colorize, draw_pair
from PIL import Image

def kb(key):
    with open("/proc/self/status") as f:
        return int(re.search(key + r":\s+(\d+) kB", f.read()).group(1))

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False

def measure(fn):
    gc.collect()
    exact = reset_peak()
    base = kb("VmRSS")
    peak = [base]
    stop = threading.Event()
    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], kb("VmRSS"))
            time.sleep(0.002)
    t = threading.Thread(target=sample)
    t.start()
    try:
        result = fn()
    finally:
        stop.set()
        t.join()
    top = max(peak[0], kb("VmHWM") if exact else 0)
    return result, (top - base) / 1024.0, exact

client = create_app(ServerConfig(), pipeline=tiny_pipeline()).test_client()
good = png_bytes(Image.fromarray(draw_pair(1, 64).lines[0]))
assert post_colorize(client, good).status_code == 200  # warm every lazy import and allocation first
bombs = {
    "png 30000x30000": blank_png(30000, 30000),
    "png 9000x9000": blank_png(9000, 9000),
    "jpeg 30000x30000": jpeg_declaring(30000, 30000),
    "jpeg 65535x65535": jpeg_declaring(65535, 65535),
    "jpeg 9000x9000": jpeg_declaring(9000, 9000),
}
out = {}
for name, data in bombs.items():
    response, growth, exact = measure(lambda: post_colorize(client, data))
    body = response.get_json() or {}
    out[name] = {"status": response.status_code, "message": body.get("error", {}).get("message", ""),
                 "growth_mb": growth, "exact_peak": exact, "bytes": len(data)}
# Control: the same instrument around actually decoding a 9000x9000 bomb (81 MB of pixels) must see it.
control = bombs["png 9000x9000"]
_, growth, exact = measure(lambda: open_image(control, max_pixels=10**9).size)
out["control: decode png 9000x9000"] = {"growth_mb": growth, "exact_peak": exact}
out["after"] = {"status": post_colorize(client, good).status_code}
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_decompression_bombs_are_refused_before_pixel_buffers_exist():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", BOMB_PROBE, str(TESTS)], capture_output=True, text=True,
                          timeout=180, env=env, cwd=REPO)
    match = re.search(r"^RESULT (.*)$", proc.stdout, re.M)
    assert proc.returncode == 0 and match, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(match.group(1))
    print(json.dumps(result, indent=1))
    for name, r in result.items():
        if not name.startswith(("png", "jpeg")):
            continue
        assert r["status"] == 413, (name, r)
        assert "too large" in r["message"] or "limit" in r["message"], (name, r)
        # Decoding would need ≥ 81 MB (9000², 1 byte per pixel) up to 4.3 GB (65535²); a refusal costs almost nothing.
        assert r["growth_mb"] < 30, (name, r)
    assert result["png 9000x9000"]["message"].endswith(f"more than the limit of {4096 * 4096} pixels")
    assert result["control: decode png 9000x9000"]["growth_mb"] > 60, result  # the instrument does see a decode
    assert result["after"]["status"] == 200


# ---------------------------------------------------------------------------------------- D1.12: CORS
def test_cross_origin_requests_get_no_cors_grant(client, line_png):
    evil = "http://evil.example"
    responses = {
        "POST colorize": client.post("/api/colorize", data={"line": (io.BytesIO(line_png), "l.png")},
                                     content_type="multipart/form-data", headers={"Origin": evil}),
        "POST colorize (bad)": client.post("/api/colorize", data={}, content_type="multipart/form-data",
                                           headers={"Origin": evil}),
        "GET ready": client.get("/api/ready", headers={"Origin": evil}),
        "GET page": client.get("/", headers={"Origin": evil}),
    }
    for path in ("/api/colorize", "/api/lineart", "/api/ready"):
        responses[f"OPTIONS {path}"] = client.options(path, headers={
            "Origin": evil, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-requested-with"})
    assert responses["POST colorize"].status_code == 200  # served (a browser cannot read it), but granted nothing
    for name, response in responses.items():
        granted = {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}
        assert granted == {}, (name, granted)
        assert evil not in str(response.headers), name
        assert "Origin" not in response.headers.get("Vary", ""), name


# ------------------------------------------------------------------- servers in a subprocess (waitress)
class ServerProcess:
    """A linecolor server in a subprocess on 127.0.0.1 with an OS-chosen port read from its start-up line."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        full_env.update(env or {})
        self.proc = subprocess.Popen([sys.executable, *args], stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=REPO, env=full_env)
        self.host, self.port, self.banner = "127.0.0.1", 0, ""

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-6000:]

    def wait_ready(self, timeout_s: float = SERVER_START_TIMEOUT_S) -> "ServerProcess":
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            m = re.search(r"serving on http://127\.0\.0\.1:(\d+)/ — (.*)", self.log())
            if m:
                self.port, self.banner = int(m.group(1)), m.group(2)
                try:
                    if self.request("GET", "/api/health", timeout=5)[0] == 200:
                        return self
                except OSError:
                    pass
            time.sleep(0.1)
        raise AssertionError(f"server did not answer /api/health within {timeout_s:.0f} s:\n{self.log()}")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def colorize(self, line: bytes, timeout: float = 60.0, **fields: str) -> tuple[int, dict[str, str], bytes]:
        body, content_type = multipart({"line": ("line.png", line), **fields})
        return self.request("POST", "/api/colorize", body, {"Content-Type": content_type}, timeout)

    def json(self, path: str) -> tuple[int, dict]:
        status, _, data = self.request("GET", path, timeout=10)
        return status, json.loads(data)

    def stop(self) -> None:
        stop_process(self.proc, self._log, timeout_s=15)


def multipart(fields: dict[str, tuple[str, bytes] | str]) -> tuple[bytes, str]:
    boundary = "linecolorreliability"
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, data = value
            head = (f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    "Content-Type: application/octet-stream\r\n\r\n")
        else:
            head, data = f'Content-Disposition: form-data; name="{name}"\r\n\r\n', value.encode()
        parts.append(f"--{boundary}\r\n".encode() + head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def raw_request(port: int, path: str, body: bytes, content_type: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def wait_for(predicate, timeout_s: float, interval_s: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value (returned) or ``timeout_s`` passes (returns None)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    return None


# ------------------------------------------------------------------- D3.22: clients that disconnect
SLOW_SERVER = r"""
import sys, threading, time
sys.path.insert(0, sys.argv[1])
from PIL import Image
import linecolor.server.app as app_module
from linecolor.config import ServerConfig
from conftest import StandInPipeline, tiny_model_config

delay, queue_size = float(sys.argv[2]), int(sys.argv[3])
calls = {"started": 0, "finished": 0}
lock = threading.Lock()

class SlowPipeline(StandInPipeline):
    config = tiny_model_config()

    def __call__(self, line, hints, reference, **kwargs):
        with lock:
            calls["started"] += 1
        time.sleep(delay)
        with lock:
            calls["finished"] += 1
        return Image.new("RGB", (8, 8), (255, 255, 255))

real_create_app = app_module.create_app

def create_app(config=None, *, pipeline=None):
    # The production serve() path (waitress, its settings) with a deterministic stand-in model and a probe route.
    app = real_create_app(config, pipeline=SlowPipeline())

    @app.get("/_test/state")
    def state():
        with lock:
            return {"in_flight": app.extensions["colorizer"].gate.in_flight, **calls}

    return app

app_module.create_app = create_app
app_module.serve(ServerConfig(host="127.0.0.1", port=0, queue_size=queue_size, threads=8))
"""


@pytest.mark.slow
def test_clients_that_disconnect_free_their_slots(tmp_path, line_png):
    delay, queue_size = 3.0, 2
    capacity = 1 + queue_size
    server = ServerProcess(["-c", SLOW_SERVER, str(TESTS), str(delay), str(queue_size)], tmp_path / "server.log")
    sockets: list[socket.socket] = []
    try:
        server.wait_ready()

        def state() -> dict:
            return server.json("/_test/state")[1]

        body, content_type = multipart({"line": ("line.png", line_png)})
        for _ in range(capacity):  # every slot taken: one running, queue_size waiting
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            s.sendall(raw_request(server.port, "/api/colorize", body, content_type))
            sockets.append(s)
        assert wait_for(lambda: state()["in_flight"] == capacity, 10), state()
        status, headers, _ = server.colorize(line_png, timeout=10)
        assert status == 503 and "Retry-After" in headers  # full: the gate is really saturated
        assert state()["started"] == 1

        t_close = time.monotonic()
        for s in sockets:
            s.close()  # gone before any answer
        sockets.clear()

        # The queued requests of departed clients leave the queue at once (only the running computation, which cannot
        # be interrupted, keeps its slot until it ends) ...
        freed = wait_for(lambda: state()["in_flight"] <= 1, delay - 0.5)
        assert freed, (f"queued requests of disconnected clients still hold their slots "
                       f"{time.monotonic() - t_close:.1f} s after the disconnect: {state()}")
        # ... so a new client is admitted (not 503) while the abandoned computation is still running, and served.
        status, _, data = server.colorize(line_png, timeout=4 * delay + 10)
        assert status == 200 and data.startswith(b"\x89PNG"), (status, data[:200])
        final = wait_for(lambda: (lambda s: s if s["in_flight"] == 0 else None)(state()), 2 * delay + 5)
        assert final, state()
        # The model ran for the first (abandoned, already running) request and the new one: never for the queued
        # requests whose clients had gone.
        assert final["started"] == 2 and final["finished"] == 2, final
    finally:
        for s in sockets:
            s.close()
        server.stop()


def test_gate_drops_queued_requests_of_departed_clients_without_running_them():
    from linecolor.server.gate import ClientGone, InferenceGate

    gate = InferenceGate(queue_size=2, queue_timeout_s=10, request_timeout_s=10)
    release = threading.Event()
    ran: list[str] = []
    gone = {"b": False, "c": False}
    outcome: dict[str, object] = {}

    def first():
        ran.append("a")
        release.wait(10)
        return "a"

    def call(name, fn, client_gone=None):
        try:
            outcome[name] = gate.run(fn, client_gone)
        except Exception as exc:  # noqa: BLE001 - recorded for the asserts
            outcome[name] = exc

    threads = [threading.Thread(target=call, args=("a", first))]
    threads[0].start()
    assert wait_for(lambda: ran == ["a"], 5)
    for name in ("b", "c"):
        threads.append(threading.Thread(target=call, args=(name, lambda n=name: ran.append(n) or n,
                                                           lambda n=name: gone[n])))
        threads[-1].start()
    assert wait_for(lambda: gate.in_flight == 3, 5)
    gone["b"] = True  # b's client leaves while a runs: b leaves the queue at once, a keeps running
    assert wait_for(lambda: gate.in_flight == 2, 2), gate.in_flight
    assert isinstance(outcome.get("b"), ClientGone) and "a" not in outcome
    release.set()
    for t in threads:
        t.join(10)
    assert outcome["a"] == "a" and outcome["c"] == "c" and ran == ["a", "c"]
    assert gate.in_flight == 0
    gone_at_start = gate.run(lambda: "d", lambda: False)  # a live client with a free gate runs normally
    assert gone_at_start == "d"
    gate.shutdown()


# ----------------------------------------------------------------------- D3.23/24: start-up faults
class ArbitraryCode:
    """Unpickling this creates ``path`` - proof that a pickle was loaded."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _valid_weights(directory: Path) -> Path:
    torch.manual_seed(0)
    Colorizer(tiny_model_config()).save_pretrained(directory)
    return directory


def _drop_sha(directory: Path) -> None:
    cfg = json.loads((directory / "config.json").read_text())
    cfg.pop("_weights_sha256")
    (directory / "config.json").write_text(json.dumps(cfg))


def _truncate(directory: Path, keep_sha: bool) -> Path:
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    if not keep_sha:
        _drop_sha(directory)
    return directory


def _mismatched_config(directory: Path, digest: bool = True) -> Path:
    cfg = json.loads((directory / "config.json").read_text())
    cfg["generator"]["base_channels"] = 8  # the safetensors were written for 4; the SHA still matches
    if not digest:  # weights saved before they recorded their config's digest: the shapes must catch it
        from safetensors.torch import load_file, save_file

        save_file(load_file(directory / "model.safetensors"), directory / "model.safetensors", metadata={"format": "pt"})
        cfg.pop("_weights_sha256")
    (directory / "config.json").write_text(json.dumps(cfg))
    return directory


def _pickled_state(path: Path, sentinel: Path) -> None:
    state = dict(Colorizer(tiny_model_config()).state_dict())
    state["payload"] = ArbitraryCode(sentinel)
    torch.save(state, path)


def _pickle_file(directory: Path, sentinel: Path, name: str) -> Path:
    directory.mkdir()
    _pickled_state(directory / name, sentinel)
    return directory / name


def _pickle_in_directory(directory: Path, sentinel: Path) -> Path:
    _valid_weights(directory)
    (directory / "model.safetensors").unlink()
    _pickled_state(directory / "pytorch_model.bin", sentinel)
    return directory


START_UP_FAULTS = {
    # name: (build(tmp_dir, sentinel) → weights path, fragments of the /api/ready reason)
    "no model.safetensors": (lambda d, s: (_valid_weights(d), (d / "model.safetensors").unlink(), d)[-1],
                             ["weights file missing", "model.safetensors"]),
    "no config.json": (lambda d, s: (_valid_weights(d), (d / "config.json").unlink(), d)[-1],
                       ["config.json missing"]),
    "truncated safetensors (SHA recorded)": (lambda d, s: _truncate(_valid_weights(d), True), ["SHA-256"]),
    "truncated safetensors (no SHA)": (lambda d, s: _truncate(_valid_weights(d), False),
                                       ["not a readable safetensors file"]),
    "config mismatches safetensors": (lambda d, s: _mismatched_config(_valid_weights(d)),
                                      ["not the configuration these weights were saved with"]),
    "config mismatches safetensors without a config digest": (
        lambda d, s: _mismatched_config(_valid_weights(d), digest=False), ["does not match config.json",
                                                                            "size mismatch"]),
    "pickle .pt file as weights": (lambda d, s: _pickle_file(d, s, "model.pt"), ["safetensors required"]),
    "pickle .bin file as weights": (lambda d, s: _pickle_file(d, s, "pytorch_model.bin"), ["safetensors required"]),
    "pickle .bin in the weights dir": (_pickle_in_directory, ["safetensors required"]),
}


@pytest.mark.parametrize("fault", list(START_UP_FAULTS))
def test_start_up_faults_leave_the_server_live_but_not_ready(tmp_path, line_png, fault):
    build, fragments = START_UP_FAULTS[fault]
    sentinel = tmp_path / "pickle-was-loaded"
    weights = build(tmp_path / "weights", sentinel)
    app = create_app(ServerConfig(weights=str(weights)))
    client = app.test_client()
    assert client.get("/api/health").status_code == 200
    ready = client.get("/api/ready")
    assert ready.status_code == 503 and ready.get_json()["ready"] is False
    reason = ready.get_json()["reason"]
    for fragment in fragments:
        assert fragment in reason, reason
    assert "Traceback" not in reason
    assert_json_error(post_colorize(client, line_png), 503, "no model is loaded")
    assert not sentinel.exists(), "a pickle was unpickled"


def test_the_valid_weights_the_faults_start_from_do_load(tmp_path, line_png):
    """Control for the start-up faults: before it is broken, each weights directory loads and serves."""
    client = create_app(ServerConfig(weights=str(_valid_weights(tmp_path / "weights")))).test_client()
    assert client.get("/api/ready").status_code == 200
    assert_still_serves(client, line_png)


@pytest.mark.slow
def test_cli_serve_with_truncated_weights_stays_up_and_not_ready(tmp_path, line_png):
    weights = _truncate(_valid_weights(tmp_path / "weights"), keep_sha=False)
    server = ServerProcess(["-m", "linecolor", "serve", "--host", "127.0.0.1", "--port", "0", "--weights",
                            str(weights), "--threads", "2"], tmp_path / "server.log")
    try:
        server.wait_ready()
        assert server.banner.startswith("NO MODEL LOADED") and "not a readable safetensors" in server.banner
        status, ready = server.json("/api/ready")
        assert status == 503 and "not a readable safetensors" in ready["reason"]
        status, headers, data = server.colorize(line_png)
        assert status == 503 and headers["Content-Type"] == "application/json"
        assert json.loads(data)["error"]["code"] == "not_ready"
        assert server.proc.poll() is None  # still up, no crash loop
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------- D2.18: soak
SOAK_REQUESTS = int(os.environ.get("LINECOLOR_SOAK_REQUESTS", "500"))
SOAK_TIME_LIMIT_S = float(os.environ.get("LINECOLOR_SOAK_TIME_LIMIT_S", "600"))
SOAK_MAX_RSS_GROWTH_MB = 100.0


def _proc_status_kb(pid: int, key: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(key + r":\s+(\d+) kB", text).group(1))


def _open_files(pid: int) -> list[str]:
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
            out.append(target)
    return out


@pytest.mark.soak
@pytest.mark.slow
def test_soak_bundled_model_under_waitress(tmp_path):
    """SOAK_REQUESTS sequential 512² colourisations by the bundled model under `linecolor serve`: all 200, RSS
    flat from request 50 on, no file handles kept, nothing written to TMPDIR or the cache directory, and the
    server's own graph cache ($LINECOLOR_CACHE_DIR) written at start-up only."""
    assert SOAK_REQUESTS >= 100, "the soak compares request 50 with the last one"
    server_tmp, server_cache = tmp_path / "server-tmp", tmp_path / "server-cache"
    graph_cache = tmp_path / "graph-cache"
    server_tmp.mkdir()
    server_cache.mkdir()
    server = ServerProcess(["-m", "linecolor", "serve", "--host", "127.0.0.1", "--port", "0", "--threads", "4"],
                           tmp_path / "server.log", env={"TMPDIR": str(server_tmp), "XDG_CACHE_HOME": str(server_cache),
                                                         "LINECOLOR_CACHE_DIR": str(graph_cache)})
    t_start = time.monotonic()
    try:
        server.wait_ready()
        status, ready = server.json("/api/ready")
        assert status == 200, ready
        model = ready["model"]
        graph_cache_at_start = sorted(str(p.relative_to(graph_cache)) for p in graph_cache.rglob("*"))
        lines = [png_bytes(Image.fromarray(draw_pair(i, 512).lines[0])) for i in range(6)]
        # A >500 kB upload: Werkzeug spools it to a temp file (in TMPDIR), which must not outlive the request.
        noise = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
        lines.append(png_bytes(Image.fromarray(noise)))
        assert len(lines[-1]) > 600_000
        pid = server.proc.pid
        rss: dict[int, float] = {}
        files_50: list[str] = []
        tmp_50: list[str] = []
        failures: list[tuple[int, int, bytes]] = []
        for i in range(SOAK_REQUESTS):
            if time.monotonic() - t_start > SOAK_TIME_LIMIT_S:
                pytest.fail(f"soak exceeded its {SOAK_TIME_LIMIT_S:.0f} s limit after {i} requests")
            fields: dict[str, str] = {}
            if i % 3 == 1:
                fields["points"] = json.dumps([[100 + i % 300, 200, "#d03020", 4], [400, 100, "#2060d0", 6]])
            if model["style_latent"] and i % 4 == 2:
                fields.update(mode="stochastic", seed=str(i))
            status, headers, data = server.colorize(lines[i % len(lines)], timeout=120, **fields)
            if status != 200 or Image.open(io.BytesIO(data)).size != (512, 512):
                failures.append((i, status, data[:200]))
            if i + 1 in (1, 10, 50, 100, 200, 300, 400, SOAK_REQUESTS):
                rss[i + 1] = _proc_status_kb(pid, "VmRSS") / 1024.0
            if i + 1 == 50:
                files_50, tmp_50 = sorted(_open_files(pid)), sorted(os.listdir(server_tmp))
        wall = time.monotonic() - t_start
        written = sorted(os.listdir(server_tmp)) + [str(p.relative_to(server_cache)) for p in server_cache.rglob("*")]
        report = {"requests": SOAK_REQUESTS, "wall_s": round(wall, 1), "model": model,
                  "rss_mb": {k: round(v, 1) for k, v in rss.items()},
                  "rss_growth_50_to_end_mb": round(rss[SOAK_REQUESTS] - rss[50], 1),
                  "peak_rss_mb": round(_proc_status_kb(pid, "VmHWM") / 1024.0, 1),
                  "open_files_50": files_50, "open_files_end": sorted(_open_files(pid)),
                  "tmpdir_50": tmp_50, "written_to_tmpdir_or_cache": written}
        print("SOAK " + json.dumps(report))
        assert not failures, failures[:5]
        assert server.proc.poll() is None
        assert report["rss_growth_50_to_end_mb"] < SOAK_MAX_RSS_GROWTH_MB, report
        assert report["open_files_end"] == files_50, report
        assert sorted(os.listdir(server_tmp)) == tmp_50, f"files appeared in TMPDIR during the soak: {report}"
        # Nothing at all, not even once per process: onnxruntime ≥ 1.2x on Linux writes a telemetry session file
        # (.ses) to TMPDIR and a device id + event cache under $XDG_CACHE_HOME unless ORT_DISABLE_TELEMETRY=1 is
        # set before it is imported (microsoft/onnxruntime#27379).
        assert written == [], f"the server wrote files outside its own paths: {written}"
        if model["backend"] == "onnxruntime":
            assert graph_cache_at_start, "the exported graph was not kept in the server's graph cache"
        graph_cache_at_end = sorted(str(p.relative_to(graph_cache)) for p in graph_cache.rglob("*"))
        assert graph_cache_at_end == graph_cache_at_start, "the graph cache changed while serving requests"
    finally:
        server.stop()
