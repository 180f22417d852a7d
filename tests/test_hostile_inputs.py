"""Hostile input, class by class (issue 15): each test below failed on the code before its fix.

1 idle connections, 2 oversize bodies, 3 decode-work bombs, 4 hint-drawing amplification, 5 numbers that gave 500,
6 EXIF orientation, 7 Host header, 8 absurd model configs, 9 CLI file-system errors, 10 CLI outputs over inputs,
11 oversize files in a folder, 12 bad --config files, 13 NaN weights; and Retry-After. The servers listen on
127.0.0.1 only; every count and wait is bounded.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from linecolor.cli import main as cli_main
from linecolor.config import ExperimentConfig, ServerConfig, load_config
from linecolor.errors import ConfigError, ImageTooLarge, LinecolorError, WeightsError
from linecolor.inference.hints import hints_from_points
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.limits import MAX_HINT_PAINTED_PIXELS, MAX_IMAGE_FILE_BYTES, MAX_JPEG_SCANS
from linecolor.models.colorizer import Colorizer
from linecolor.raster.imageio import count_jpeg_scans, open_image
from linecolor.server import create_app

from conftest import draw_pair, tiny_model_config
from test_server import assert_json_error, png_bytes, post_colorize
from test_server_reliability import ServerProcess, wait_for

TESTS = Path(__file__).resolve().parent

STAND_IN_SERVER = r"""
import sys
sys.path.insert(0, sys.argv[1])
import linecolor.server.app as app_module
from linecolor.config import ServerConfig
from conftest import StandInPipeline, tiny_model_config

class Pipeline(StandInPipeline):
    config = tiny_model_config()

real_create_app = app_module.create_app
app_module.create_app = lambda config=None, *, pipeline=None: real_create_app(config, pipeline=Pipeline())
app_module.serve(ServerConfig(host="127.0.0.1", port=0))  # the production waitress settings
"""


@pytest.fixture(scope="module")
def stand_in_server(tmp_path_factory):
    """``serve()`` with its default ServerConfig (the real waitress settings) and a stand-in model."""
    root = tmp_path_factory.mktemp("server")
    script = root / "server.py"
    script.write_text(STAND_IN_SERVER)
    server = ServerProcess([str(script), str(TESTS)], root / "server.log").wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return Colorizer(tiny_model_config(fill_guide=True)).save_pretrained(tmp_path_factory.mktemp("weights") / "m")


@pytest.fixture(scope="module")
def client(tiny_weights):
    return create_app(ServerConfig(), pipeline=ColorizationPipeline.from_pretrained(tiny_weights)).test_client()


def line_png(size: int = 64) -> bytes:
    return png_bytes(Image.fromarray(draw_pair(3, size).lines[0]))


def read_response(sock: socket.socket, timeout_s: float) -> bytes:
    """Everything the server sends until it closes the connection or ``timeout_s`` passes."""
    sock.settimeout(timeout_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


# ------------------------------------------------------------------------------- 1. connection slots
@pytest.mark.slow
def test_idle_half_sent_connections_neither_block_health_nor_stay_open(stand_in_server):
    """Before: waitress's 100-connection limit and 120 s channel timeout; 100 sockets holding half a request line
    made /api/health unreachable for up to two minutes."""
    port = stand_in_server.port
    idle = []
    try:
        for _ in range(150):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /api/hea")
            idle.append(s)
        t0 = time.monotonic()
        status, _, _ = stand_in_server.request("GET", "/api/health", timeout=5)
        assert status == 200 and time.monotonic() - t0 < 5
        # The idle ones are closed by the server after its channel timeout (10 s), not kept for 120 s.
        timeout_s = ServerConfig().channel_timeout_s
        t0 = time.monotonic()
        assert read_response(idle[0], timeout_s + 10) == b""
        assert time.monotonic() - t0 < timeout_s + 5
    finally:
        for s in idle:
            s.close()


# ------------------------------------------------------------------------------- 2. oversize bodies
def test_an_oversize_body_is_refused_on_its_content_length_before_it_is_sent(stand_in_server):
    """Before: waitress spooled up to 1 GB to a temporary file before Flask's 16 MB limit answered 413; a client
    that announced 200 MB and sent nothing got no answer at all."""
    s = socket.create_connection(("127.0.0.1", stand_in_server.port), timeout=5)
    try:
        s.sendall(b"POST /api/colorize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x"
                  b"\r\nContent-Length: 200000000\r\nExpect: 100-continue\r\n\r\n")
        t0 = time.monotonic()
        answer = read_response(s, 5)
    finally:
        s.close()
    # waitress may send its "100 Continue" first; the 413 follows at once and the connection is closed.
    assert b"HTTP/1.1 413" in answer and time.monotonic() - t0 < 5, answer[:200]


# ---------------------------------------------------------------------------- 3. decode-work bombs
def jpeg_scans(data: bytes) -> list[bytes]:
    """The SOS segments (header + entropy-coded data) of a JPEG, in order."""
    out, i = [], data.find(b"\xff\xda")
    while i >= 0:
        j = data.find(b"\xff\xda", i + 2)
        out.append(data[i:j if j >= 0 else data.rfind(b"\xff\xd9")])
        i = j
    return out


def scan_bomb(side: int, repeats: int) -> bytes:
    """A progressive JPEG whose smallest scan is repeated ``repeats`` times: each costs a pass over the image."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (200, 100, 50)).save(buf, "JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    eoi = data.rfind(b"\xff\xd9")
    return data[:eoi] + min(jpeg_scans(data), key=len) * repeats + data[eoi:]


def test_jpeg_scan_bombs_are_refused_before_decoding(client):
    """Before: this 43 KB file took 4.5 s to decode (1024², 3000 scans; 18 s for 2048² at 73 KB)."""
    bomb = scan_bomb(1024, 3000)
    assert len(bomb) < 100_000 and count_jpeg_scans(bomb) > MAX_JPEG_SCANS
    t0 = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="scans"):
        open_image(bomb)
    assert time.perf_counter() - t0 < 1.0
    assert_json_error(post_colorize(client, bomb), 413, "scans")
    # Ordinary progressive and baseline JPEGs still open.
    for progressive in (True, False):
        buf = io.BytesIO()
        Image.fromarray(draw_pair(1, 96).lines[0]).save(buf, "JPEG", progressive=progressive)
        assert count_jpeg_scans(buf.getvalue()) <= 12
        assert open_image(buf.getvalue()).size == (96, 96)


# ------------------------------------------------------------------------ 4. hint-drawing amplification
def test_hint_points_cannot_paint_more_than_the_cap():
    """Before: every disc was drawn, so 10 points of radius 4096 on a 4096² image cost seconds, thousands of them
    minutes. Now the painted area is summed before drawing and refused over four full images."""
    size = (4096, 4096)
    points = [(2048.0, 2048.0, "#ff0000", 4096.0)] * 10
    t0 = time.perf_counter()
    with pytest.raises(LinecolorError, match="paint"):
        hints_from_points(points, size)
    assert time.perf_counter() - t0 < 0.5
    assert MAX_HINT_PAINTED_PIXELS == 4 * size[0] * size[1]
    # Up to the cap it is drawn, later points over earlier ones.
    rgb, mask = hints_from_points([(10.0, 10.0, "#ff0000", 4096.0), (10.0, 10.0, "#0000ff", 2.0)], (64, 48))
    assert mask.all() and tuple(rgb[40, 60]) == (255, 0, 0) and tuple(rgb[10, 10]) == (0, 0, 255)


# ---------------------------------------------------------------------------------- 5. no more 500s
def test_odd_numbers_in_points_are_400_or_work(client):
    line = line_png()
    # A radius under 0.5 paints one pixel (before: Pillow's "x1 must be >= x0", a 500).
    response = post_colorize(client, line, points=json.dumps([[10, 10, "#ff0000", 0.3]]))
    assert response.status_code == 200, response.data[:200]
    # A 400-digit integer (before: OverflowError, 500) and nesting deeper than Python's recursion limit (before:
    # RecursionError, 500).
    assert_json_error(post_colorize(client, line, points=f"[[{'9' * 400}, 10, \"#ff0000\", 3]]"), 400, "finite")
    assert_json_error(post_colorize(client, line, points="[" * 100_000 + "]" * 100_000), 400, "points")
    assert_json_error(post_colorize(client, line, points=f"[[10, 10, \"#ff0000\", {'9' * 5000}]]"), 400, "points")


def test_cli_radius_under_half_a_pixel_colours(tmp_path, tiny_weights, capsys):
    line = tmp_path / "line.png"
    line.write_bytes(line_png())
    code = cli_main(["colorize", str(line), "--weights", str(tiny_weights), "--points", "10,10,#ff0000,0.3",
                     "--out", str(tmp_path / "out.png")])
    assert code == 0, capsys.readouterr().err
    with Image.open(tmp_path / "out.png") as out:
        assert out.size == (64, 64)


# -------------------------------------------------------------------------------- 6. EXIF orientation
def sideways_photo(fmt: str) -> bytes:
    """A 60×20 image stored sideways: a phone's Orientation = 6 (the viewer turns it 90° clockwise to 20×60)."""
    stored = np.full((20, 60, 3), 255, np.uint8)
    stored[:, :10] = 0  # a black band at the stored left edge: the top once upright
    exif = Image.Exif()
    exif[274] = 6
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, fmt, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_images_are_opened_upright_by_their_exif_orientation(fmt):
    image = open_image(sideways_photo(fmt))
    assert image.size == (20, 60)  # before: (60, 20), as stored
    rgb = np.asarray(image.convert("RGB")).astype(int)
    assert rgb[:8].mean() < 60 and rgb[15:].mean() > 200  # the band is at the top, as a viewer shows it


def test_hint_points_refer_to_the_upright_image(tiny_weights):
    pipe = ColorizationPipeline.from_pretrained(tiny_weights)
    # (15, 50) lies inside the upright 20×60 image and outside the stored 60×20 one.
    out = pipe(sideways_photo("JPEG"), [(15.0, 50.0, "#ff0000", 2.0)])
    assert out.size == (20, 60)


# --------------------------------------------------------------------------------------- 7. Host header
def test_only_configured_host_names_are_answered_and_no_redirect_reflects_host(stand_in_server):
    def raw_get(path: str, host: str) -> bytes:
        s = socket.create_connection(("127.0.0.1", stand_in_server.port), timeout=5)
        try:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            return read_response(s, 5)
        finally:
            s.close()

    assert raw_get("/api/health", f"127.0.0.1:{stand_in_server.port}").startswith(b"HTTP/1.1 200")
    assert raw_get("/api/health", "localhost").startswith(b"HTTP/1.1 200")
    rebound = raw_get("/api/health", "attacker.example")
    assert rebound.startswith(b"HTTP/1.1 400") and b"attacker" not in rebound.split(b"\r\n\r\n")[0]
    # Before: 308 with "Location: http://<Host>/api/health" for a doubled slash.
    merged = raw_get("//api//health", f"127.0.0.1:{stand_in_server.port}")
    assert not merged.startswith(b"HTTP/1.1 30") and b"Location" not in merged.split(b"\r\n\r\n")[0]
    assert ServerConfig(host="0.0.0.0").trusted_hosts() is None
    assert ServerConfig(host="10.0.0.5").trusted_hosts() == ["10.0.0.5", "127.0.0.1", "localhost"]
    assert ServerConfig(allowed_hosts=("studio.lan",)).trusted_hosts() == ["studio.lan"]


# ---------------------------------------------------------------------------------- 8. absurd configs
def edit_config(directory: Path, *, drop_sha: bool = False, **generator) -> None:
    path = directory / "config.json"
    raw = json.loads(path.read_text())
    raw["generator"].update(generator)
    if drop_sha:
        raw.pop("_weights_sha256")
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize("edit", [
    dict(base_channels=10**9),
    dict(spade_hidden_channels=2**31),
    dict(latent_dim=-1),
    dict(base_channels=True),
])
def test_absurd_model_configs_are_refused_before_allocating(tmp_path, tiny_weights, edit):
    import shutil

    model = Path(shutil.copytree(tiny_weights, tmp_path / "m"))
    edit_config(model, **edit)
    t0 = time.perf_counter()
    with pytest.raises(WeightsError, match="must be an integer"):
        Colorizer.from_pretrained(model)
    assert time.perf_counter() - t0 < 2.0


def test_working_size_and_parameter_count_are_bounded(tmp_path, tiny_weights):
    import shutil

    model = Path(shutil.copytree(tiny_weights, tmp_path / "m"))
    raw = json.loads((model / "config.json").read_text())
    raw["working_size"] = 2**31
    (model / "config.json").write_text(json.dumps(raw))
    with pytest.raises(WeightsError, match="working_size"):
        Colorizer.from_pretrained(model)
    raw["working_size"] = 64
    raw["generator"].update(base_channels=256, max_channels=2048, spade_hidden_channels=2048)
    (model / "config.json").write_text(json.dumps(raw))
    with pytest.raises(WeightsError, match="parameters, more than"):  # counted on the meta device: no allocation
        Colorizer.from_pretrained(model)


def test_config_json_is_covered_by_the_checksum(tmp_path, tiny_weights):
    """Before: the weights' SHA-256 lived in config.json, so an edited config (with that line dropped) loaded."""
    import shutil

    model = Path(shutil.copytree(tiny_weights, tmp_path / "m"))
    edit_config(model, drop_sha=True, binarize_line=False)  # same tensors, different behaviour
    with pytest.raises(WeightsError, match="not the configuration these weights were saved with"):
        Colorizer.from_pretrained(model)


def test_a_model_that_fails_to_load_in_any_way_leaves_the_server_up(monkeypatch, tiny_weights):
    def explode(*args, **kwargs):
        raise RuntimeError("simulated allocator failure")

    monkeypatch.setattr(ColorizationPipeline, "from_pretrained", explode)
    client = create_app(ServerConfig(weights=str(tiny_weights))).test_client()  # before: the RuntimeError escaped
    assert client.get("/api/health").status_code == 200
    ready = client.get("/api/ready")
    assert ready.status_code == 503 and "simulated allocator failure" in ready.get_json()["reason"]


# ---------------------------------------------------------------------------------------- 13. NaN weights
@pytest.mark.parametrize("poison", ["nan", "overflow"])
def test_weights_that_cannot_colour_are_refused(tmp_path, poison):
    torch.manual_seed(0)
    model = Colorizer(tiny_model_config(fill_guide=True))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if poison == "nan":
                p.fill_(float("nan"))
            elif name.endswith("weight"):
                p.mul_(1e30)  # finite weights whose output overflows
    directory = model.save_pretrained(tmp_path / "m")
    edit_config(directory, drop_sha=True)  # no checksum to catch it either
    for backend in ("plain", "auto"):
        with pytest.raises(WeightsError, match="NaN|not finite"):
            ColorizationPipeline.from_pretrained(directory, backend=backend)
    client = create_app(ServerConfig(weights=str(directory))).test_client()
    ready = client.get("/api/ready")
    assert ready.status_code == 503, ready.get_json()  # before: ready, and every answer a black image


# ------------------------------------------------------------------------------- 9–11. CLI file safety
@pytest.fixture
def drawings(tmp_path) -> Path:
    folder = tmp_path / "drawings"
    folder.mkdir()
    for i, name in enumerate(("a.png", "a.jpg", "b.png")):
        Image.fromarray(draw_pair(i, 64).lines[0]).convert("RGB").save(folder / name)
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_cli_never_writes_over_its_inputs(drawings, tiny_weights, capsys):
    before = snapshot(drawings)
    weights = ["--weights", str(tiny_weights)]
    # A folder written into itself (before: a.png replaced by its own colouring).
    assert cli_main(["colorize", str(drawings), "--out", str(drawings), *weights]) == 2
    assert "input folder" in capsys.readouterr().err
    # --out naming the input, even with --overwrite.
    assert cli_main(["colorize", str(drawings / "a.png"), "--out", str(drawings / "a.png"), "--overwrite",
                     *weights]) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    assert snapshot(drawings) == before


def test_cli_folder_runs_keep_every_output_and_skip_bad_entries(tmp_path, drawings, tiny_weights, capsys):
    (drawings / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with open(drawings / "huge.png", "wb") as f:  # sparse: 300 MiB on paper, nothing on disk
        f.truncate(MAX_IMAGE_FILE_BYTES + 2**20)
    out = tmp_path / "out"
    code = cli_main(["colorize", str(drawings), "--out", str(out), "--weights", str(tiny_weights)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    # a.png and a.jpg no longer both land on a.png; the bad entries are reported, the rest coloured.
    assert sorted(p.name for p in out.iterdir()) == ["a_jpg.png", "a_png.png", "b.png"]
    assert "broken.png" in err and "huge.png" in err and "MiB" in err
    # A second run keeps the outputs it finds unless asked to replace them.
    stamp = (out / "b.png").stat().st_mtime_ns
    (drawings / "broken.png").unlink()
    (drawings / "huge.png").unlink()
    assert cli_main(["colorize", str(drawings), "--out", str(out), "--weights", str(tiny_weights)]) == 1
    assert "already exists" in capsys.readouterr().err and (out / "b.png").stat().st_mtime_ns == stamp
    assert cli_main(["colorize", str(drawings), "--out", str(out), "--weights", str(tiny_weights),
                     "--overwrite"]) == 0
    assert (out / "b.png").stat().st_mtime_ns != stamp


def test_cli_file_system_errors_are_messages(tmp_path, drawings, tiny_weights, capsys):
    line = drawings / "b.png"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    weights = ["--weights", str(tiny_weights)]
    # An --out whose folder cannot exist (before: NotADirectoryError traceback).
    assert cli_main(["colorize", str(line), "--out", str(blocker / "x.png"), *weights]) == 2
    assert "cannot write" in capsys.readouterr().err
    # An --out that is a folder: the image goes into it (before: IsADirectoryError traceback).
    folder = tmp_path / "results"
    folder.mkdir()
    assert cli_main(["colorize", str(line), "--out", str(folder), *weights]) == 0
    assert (folder / "b_colored.png").is_file()
    # An existing output is not replaced without --overwrite.
    assert cli_main(["colorize", str(line), "--out", str(folder), *weights]) == 2
    assert "already exists" in capsys.readouterr().err
    # A folder run whose --out is a file.
    assert cli_main(["colorize", str(drawings), "--out", str(blocker), *weights]) == 2
    assert "is a file" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ 12. bad --config
@pytest.mark.parametrize("name, content, fragment", [
    ("binary.toml", bytes(range(256)) * 4, "not a text file"),
    ("list.json", b"[1, 2, 3]", "top level must be a table"),
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("deep.toml", b"a = " + b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("huge.toml", b"# " + b"x" * (2 * 2**20), "larger than"),
])
def test_bad_config_files_are_one_clear_error(tmp_path, capsys, name, content, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=fragment):
        load_config(ExperimentConfig, path)
    assert cli_main(["train", str(tmp_path / "run"), "--config", str(path), "--steps", "1"]) == 2
    assert fragment in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- Retry-After
def test_retry_after_prices_the_queue_by_the_jobs_sizes():
    """Before: the median duration times the admitted count with a 1 s default, so three 2 s jobs queued after a
    1 s/megapixel history answered 3 s while the queue needed about 6 s."""
    from linecolor.server.gate import BASE_COST_MEGAPIXELS, InferenceGate, Overloaded

    gate = InferenceGate(queue_size=2, queue_timeout_s=30, request_timeout_s=30)
    try:
        rate_job = 1.0 - BASE_COST_MEGAPIXELS  # 1 megapixel (with the base cost) in 1 s: 1 s per megapixel
        gate.run(lambda: time.sleep(1.0), megapixels=rate_job)
        threads = [threading.Thread(target=gate.run, args=(lambda: time.sleep(2.0),),
                                    kwargs={"megapixels": 2.0 - BASE_COST_MEGAPIXELS}) for _ in range(3)]
        for t in threads:
            t.start()
        assert wait_for(lambda: gate.in_flight == 3, 5)
        t0 = time.monotonic()
        with pytest.raises(Overloaded) as refused:
            gate.run(lambda: None)
        real_wait = 6.0 - (time.monotonic() - t0) - 0.2
        assert 0.75 * real_wait <= refused.value.retry_after_s <= 1.5 * real_wait + 1, refused.value.retry_after_s
        for t in threads:
            t.join(15)
    finally:
        gate.shutdown()
