"""Real-browser tests of the web studio: Playwright (sync API) driving Debian's Chromium against `linecolor serve`.

The server runs as a subprocess (waitress, any free port) with a tiny random-weight model saved by the test, so
results are noise-like but real: the page must load an example, send hint strokes, show results that depend on the
hint colour, undo, switch modes, get new seeds and download a PNG — with no console errors. A second server started
with missing weights must show the not-ready banner and disable Colorize. A third one with a fill-guide model must
offer the suggestion-strength slider and the shading choice and send them with each colorize request; the first
(non-fill-guide) model must have them disabled and not send them.

When ``CI`` is set these tests must run (missing Chromium or Playwright fails them); elsewhere they skip with the
reason. The screenshot goes to ``test-artifacts/studio.png`` (git-ignored).
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import stop_process, tiny_model_config

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO / "test-artifacts"
SERVER_START_TIMEOUT_S = 60.0
RESULT_TIMEOUT_MS = 30_000


def _require_browser():
    """The Playwright sync API, or skip (fail under CI) when the browser stack is missing."""
    in_ci = bool(os.environ.get("CI"))
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (install Debian's chromium package: apt-get install chromium)"
        if in_ci:
            pytest.fail(message + "; CI must run the browser tests")
        pytest.skip(message)
    try:
        from playwright import sync_api
    except ImportError as exc:  # pragma: no cover - depends on the environment
        if in_ci:
            pytest.fail(f"playwright is not installed ({exc}); CI must run the browser tests")
        pytest.skip(f"playwright is not installed ({exc}); pip install -e '.[test]'")
    return sync_api


# ------------------------------------------------------------------------------------------------ server
class Server:
    """`python -m linecolor serve` on 127.0.0.1 with an OS-chosen port, read from its start-up line."""

    def __init__(self, weights: Path, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "linecolor", "serve", "--host", "127.0.0.1", "--port", "0",
             "--weights", str(weights), "--threads", "4"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO, env=env)
        self.url = ""

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def wait_ready(self, timeout_s: float = SERVER_START_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            if not self.url:
                m = re.search(r"serving on (http://127\.0\.0\.1:\d+)/", self.log())
                if m:
                    self.url = m.group(1)
            if self.url:
                try:
                    with urllib.request.urlopen(self.url + "/api/health", timeout=2) as resp:
                        if resp.status == 200:
                            return self.url
                except (urllib.error.URLError, OSError):
                    pass
            time.sleep(0.2)
        raise AssertionError(f"server did not answer /api/health within {timeout_s:.0f} s:\n{self.log()}")

    def stop(self) -> None:
        stop_process(self.proc, self._log, timeout_s=10)


@pytest.fixture(scope="module")
def browser():
    sync_api = _require_browser()
    pw = sync_api.sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory) -> Iterator[str]:
    _require_browser()
    from linecolor.models.colorizer import Colorizer

    tmp = tmp_path_factory.mktemp("studio")
    weights = tmp / "tiny-model"
    Colorizer(tiny_model_config(working_size=64)).save_pretrained(weights)
    server = Server(weights, tmp / "server.log")
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fill_studio_url(tmp_path_factory) -> Iterator[str]:
    """A server whose tiny model uses the fill guide (the suggestion-strength and shading controls apply)."""
    _require_browser()
    from linecolor.models.colorizer import Colorizer

    tmp = tmp_path_factory.mktemp("studio-fill")
    weights = tmp / "tiny-fill-model"
    Colorizer(tiny_model_config(working_size=64, fill_guide=True)).save_pretrained(weights)
    server = Server(weights, tmp / "server.log")
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 720}, accept_downloads=True)
    p = context.new_page()
    p.set_default_timeout(RESULT_TIMEOUT_MS)
    try:
        yield p
    finally:
        context.close()


# ------------------------------------------------------------------------------------------------ helpers
LAYER_STATS = """(id) => {
  const c = document.getElementById(id);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let opaque = 0, nonWhite = 0, h = 2166136261 >>> 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0) opaque++;
    if (d[i + 3] > 0 && (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250)) nonWhite++;
    for (let k = 0; k < 4; k++) { h ^= d[i + k]; h = Math.imul(h, 16777619) >>> 0; }
  }
  return {width: c.width, height: c.height, opaque, nonWhite, hash: h};
}"""

SETTLED = """() => document.body.dataset.inflight === '0'
  && document.getElementById('result-canvas').dataset.editVersion === document.body.dataset.editVersion"""
SETTLED_OR_ERROR = "() => (" + SETTLED + ")() || document.getElementById('status').classList.contains('error')"


def stats(page, canvas_id: str) -> dict:
    return page.evaluate(LAYER_STATS, canvas_id)


def wait_result(page) -> dict:
    """Wait until the result on screen belongs to the current drawing and no request is pending."""
    page.wait_for_function(SETTLED_OR_ERROR, timeout=RESULT_TIMEOUT_MS)
    status = page.locator("#status")
    assert "error" not in (status.get_attribute("class") or ""), f"the page shows an error: {status.inner_text()}"
    return stats(page, "result-canvas")


def stroke(page, points: list[tuple[float, float]]) -> None:
    """Drag the mouse through ``points`` given as fractions of the hint canvas's on-screen box."""
    box = page.locator("#hint-canvas").bounding_box()
    assert box is not None
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=6)
    page.mouse.up()


def set_colour(page, hex_colour: str) -> None:
    page.locator("#color").fill(hex_colour)
    assert page.locator("#color-hex").input_value() == hex_colour


def form_fields(request) -> dict[str, str]:
    """The text fields of a multipart/form-data request (file parts are left out). Chromium only hands Playwright
    the body of a FormData request with file parts to a route handler, not to request events."""
    content_type = request.headers["content-type"]
    assert content_type.startswith("multipart/form-data"), content_type
    assert request.post_data_buffer, "the colorize request has no body"
    fields = form_fields_any(request)
    assert "mode" in fields, f"no mode field in the multipart body: {sorted(fields)}"
    return fields


class ColorizeRequests:
    """Records the form fields of every POST /api/colorize the page sends (a pass-through route)."""

    def __init__(self, page):
        self.page = page
        self.seen: list[dict[str, str] | Exception] = []
        self.files: list[dict[str, tuple[int, int]]] = []
        """Per request, the pixel size of each PNG file part by field name."""
        page.route("**/api/colorize", self._handle)

    def _handle(self, route) -> None:
        try:
            self.files.append(png_part_sizes(route.request) if route.request.method == "POST" else {})
            self.seen.append(form_fields(route.request) if route.request.method == "POST" else {})
        except Exception as exc:  # noqa: BLE001 - reported by next(); the request must still go through
            self.seen.append(exc)
        route.continue_()

    def next(self, action) -> dict[str, str]:
        """Run ``action`` and return the fields of the first colorize request sent after it started."""
        n = len(self.seen)
        action()
        deadline = time.monotonic() + RESULT_TIMEOUT_MS / 1000
        while len(self.seen) <= n:
            assert time.monotonic() < deadline, "no colorize request was sent"
            self.page.wait_for_timeout(50)
        got = self.seen[n]
        if isinstance(got, Exception):
            raise got
        return got


def api_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read().decode("utf-8"))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.size


# ------------------------------------------------------------------------------------------------ tests
def test_studio_end_to_end(page, studio_url):
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    page.goto(studio_url + "/")
    page.wait_for_selector("body[data-ready='true'][data-started='1']")
    assert page.locator("#not-ready").is_hidden()
    assert page.locator("#colorize").is_enabled()
    # the bundled examples are listed, and their attribution reaches the About footer
    n_examples = page.locator("#examples option").count() - 1
    assert n_examples >= 5
    about = page.locator("#about").inner_text()
    assert "OpenMoji" in about and "CC BY-SA 4.0" in about and "David Revoy" in about

    # choose an example (not the one loaded at start) and wait for its first, hint-free result
    page.select_option("#examples", "openmoji-cat-face")
    page.wait_for_function("() => document.getElementById('doc-size').textContent.trim() === '512 × 512'")
    wait_result(page)
    line = stats(page, "line-canvas")
    assert (line["width"], line["height"]) == (512, 512)
    assert 0 < line["nonWhite"] < 512 * 512 // 2, "the example's line art did not reach the line canvas"
    assert stats(page, "hint-canvas")["opaque"] == 0

    # a red hint stroke → a result for exactly that drawing
    page.click("#tool-hint")
    set_colour(page, "#e02020")
    stroke(page, [(0.3, 0.55), (0.4, 0.6), (0.5, 0.62)])
    hints_red = stats(page, "hint-canvas")
    assert hints_red["opaque"] > 100, "the stroke left no hint on the hint layer"
    red = wait_result(page)
    assert red["opaque"] == 512 * 512 and red["nonWhite"] > 0, "the result canvas is still blank"

    # a blue stroke elsewhere → a different result
    set_colour(page, "#2040e0")
    stroke(page, [(0.55, 0.3), (0.65, 0.35), (0.7, 0.45)])
    hints_both = stats(page, "hint-canvas")
    assert hints_both["hash"] != hints_red["hash"]
    blue = wait_result(page)
    assert blue["hash"] != red["hash"], "the result did not change with a new hint colour"

    # undo with the button and with Ctrl+Z, redo with Ctrl+Shift+Z: the hint layer follows exactly
    page.click("#undo")
    assert stats(page, "hint-canvas")["hash"] == hints_red["hash"]
    page.click("#redo")
    assert stats(page, "hint-canvas")["hash"] == hints_both["hash"]
    page.locator("#hint-canvas").focus()
    page.keyboard.press("Control+z")
    assert stats(page, "hint-canvas")["hash"] == hints_red["hash"]
    page.keyboard.press("Control+Shift+Z")
    assert stats(page, "hint-canvas")["hash"] == hints_both["hash"]
    page.keyboard.press("Control+z")
    assert stats(page, "hint-canvas")["hash"] == hints_red["hash"]
    assert wait_result(page)["hash"] == red["hash"], "deterministic mode: same drawing, same result"

    # stochastic mode and "New variation": a new seed is shown and used
    page.select_option("#mode", "stochastic")
    wait_result(page)
    seed_before = page.locator("#seed").input_value()
    assert re.fullmatch(r"\d+", seed_before), f"no seed shown: {seed_before!r}"
    page.click("#new-variation")
    page.wait_for_function("(s) => document.getElementById('seed').value !== s", arg=seed_before)
    wait_result(page)
    assert re.fullmatch(r"\d+", page.locator("#seed").input_value())
    assert "seed " + page.locator("#seed").input_value() in page.locator("#result-meta").inner_text()

    # latent shift is sent and the result is still a full picture
    page.locator("#latent-shift").fill("1.5")
    assert page.locator("#latent-shift-value").inner_text() == "1.5"
    assert wait_result(page)["opaque"] == 512 * 512

    # download the result
    with page.expect_download() as info:
        page.click("#download")
    download = info.value
    assert download.suggested_filename.endswith(".png")
    assert png_size(Path(download.path()).read_bytes()) == (512, 512)

    # download the hint layer: an RGBA PNG of the drawing's size
    with page.expect_download() as info:
        page.click("#download-hints")
    from PIL import Image

    with Image.open(info.value.path()) as im:
        assert im.mode == "RGBA" and im.size == (512, 512)

    assert page.locator("#status.error").count() == 0, page.locator("#status").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "studio.png"), full_page=True)
    assert not problems, "\n".join(problems)

    # a refused request: the page shows the server's error.message inline and keeps the drawing and the result
    hints_now, result_now = stats(page, "hint-canvas")["hash"], stats(page, "result-canvas")["hash"]
    body = '{"error": {"code": "busy", "message": "the model is busy, try again", "request_id": "req-42"}}'
    page.route("**/api/colorize", lambda route: route.fulfill(status=503, content_type="application/json", body=body))
    page.click("#colorize")
    page.wait_for_selector("#status.error")
    assert "the model is busy, try again" in page.locator("#status").inner_text()
    assert stats(page, "hint-canvas")["hash"] == hints_now
    assert stats(page, "result-canvas")["hash"] == result_now
    assert page.locator("#colorize").is_enabled()


def test_studio_without_model_shows_banner(page, browser, tmp_path):
    server = Server(tmp_path / "no-such-weights", tmp_path / "server.log")
    try:
        url = server.wait_ready()
        page.set_viewport_size({"width": 1600, "height": 1100})
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready='false'][data-started='1']")
        banner = page.locator("#not-ready")
        assert banner.is_visible()
        assert "No model is loaded" in banner.inner_text()
        assert page.locator("#colorize").is_disabled()
        # drawing still works, and the examples still load
        assert page.locator("#examples option").count() > 1
        stroke(page, [(0.2, 0.2), (0.4, 0.4)])
        assert stats(page, "hint-canvas")["opaque"] > 0
        # pointer coordinates map onto canvas pixels although the canvas is CSS-scaled (a box of about 800 px)
        box = page.locator("#hint-canvas").bounding_box()
        assert box is not None and abs(box["width"] - 512) > 20, box
        page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + 0.25 * box["height"])
        rgba = page.evaluate("() => Array.from(document.getElementById('hint-canvas').getContext('2d')"
                             ".getImageData(384, 128, 1, 1).data)")
        assert rgba == [0xE0, 0x48, 0x3C, 255], rgba
        assert stats(page, "result-canvas")["opaque"] == 0
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "studio-not-ready.png"))
    finally:
        server.stop()


def test_fill_guide_controls_are_sent(page, fill_studio_url):
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    model = api_json(fill_studio_url + "/api/ready")["model"]
    limits = api_json(fill_studio_url + "/api/limits")
    assert model["fill_guide"] is True and limits["composites"] == ["regions", "network"]
    # The model's own default: this tiny model has no region head, so not the library's default for one.
    default = model["suggestion_strength"]
    assert model["region_head"] is False and 0 < default < limits["suggestion_strength"]["default"] <= 1

    # the start-up example's first colorize request carries the model's default strength and flat regions
    requests = ColorizeRequests(page)
    fields = requests.next(lambda: page.goto(fill_studio_url + "/"))
    page.wait_for_selector("body[data-ready='true'][data-started='1']")
    assert float(fields["suggestion_strength"]) == pytest.approx(default, abs=1e-9), fields
    assert fields["composite"] == "regions", fields
    slider, readout, composite = page.locator("#suggestion-strength"), page.locator("#suggestion-strength-value"), \
        page.locator("#composite")
    assert slider.is_enabled() and composite.is_enabled()
    assert float(readout.inner_text()) == pytest.approx(default, abs=1e-9)
    assert abs(float(slider.input_value()) - default) <= 0.025 + 1e-9, slider.input_value()
    assert "without hints" in (slider.get_attribute("title") or "")
    assert page.locator("label[for='suggestion-strength']").inner_text().strip() == "Suggestions"
    assert [o.strip() for o in composite.locator("option").all_inner_texts()] == ["Flat regions", "Network shading"]
    assert composite.input_value() == "regions"
    wait_result(page)
    meta = page.locator("#result-meta").inner_text()
    assert "suggestions " + readout.inner_text() in meta and "flat regions" in meta, meta

    # slider to 0: the readout follows, and the next request (sent by the change alone) asks for 0.00
    fields = requests.next(lambda: slider.fill("0"))
    assert readout.inner_text() == "0.00"
    assert fields["suggestion_strength"] == "0.00", fields
    assert fields["composite"] == "regions", fields
    assert wait_result(page)["opaque"] == 512 * 512
    assert "suggestions 0.00" in page.locator("#result-meta").inner_text()

    # a mid value goes out with two decimals
    fields = requests.next(lambda: slider.fill("0.35"))
    assert readout.inner_text() == "0.35"
    assert fields["suggestion_strength"] == "0.35", fields
    wait_result(page)

    # network shading: sent as composite=network, the strength stays as set
    fields = requests.next(lambda: page.select_option("#composite", "network"))
    assert fields["composite"] == "network", fields
    assert fields["suggestion_strength"] == "0.35", fields
    assert wait_result(page)["opaque"] == 512 * 512
    meta = page.locator("#result-meta").inner_text()
    assert "network shading" in meta and "suggestions 0.35" in meta, meta
    # the shading lies on the same flats, so the strength still applies: a change goes out with network shading
    assert page.locator("#suggestion-strength").is_enabled()
    fields = requests.next(lambda: slider.fill("0.5"))
    assert (fields["suggestion_strength"], fields["composite"]) == ("0.50", "network"), fields
    wait_result(page)

    # an explicit Colorize keeps both settings
    fields = requests.next(lambda: page.click("#colorize"))
    assert (fields["suggestion_strength"], fields["composite"]) == ("0.50", "network"), fields
    wait_result(page)
    assert page.locator("#status.error").count() == 0, page.locator("#status").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "studio-fill-guide.png"), full_page=True)
    assert not problems, "\n".join(problems)


def test_fill_guide_controls_disabled_without_fill_guide(page, studio_url):
    assert api_json(studio_url + "/api/ready")["model"]["fill_guide"] is False
    requests = ColorizeRequests(page)
    fields = requests.next(lambda: page.goto(studio_url + "/"))
    page.wait_for_selector("body[data-ready='true'][data-started='1']")
    assert "suggestion_strength" not in fields and "composite" not in fields, fields
    for selector in ("#suggestion-strength", "#composite"):
        control = page.locator(selector)
        assert control.is_disabled(), selector
        assert "no fill guide" in (control.get_attribute("title") or ""), selector
    wait_result(page)
    meta = page.locator("#result-meta").inner_text()
    assert "suggestions" not in meta and "shading" not in meta, meta


def test_paint_bucket_fills_a_gapped_region_and_strokes_reuse_the_analysis(page, studio_url, tmp_path):
    """The bucket gives the whole region under the click the hint colour, without leaking through a gap in its
    outline; the region under the pointer is highlighted; later strokes send the analysis id, not the line."""
    import numpy as np
    from PIL import Image, ImageDraw

    drawing = Image.new("L", (512, 512), 255)
    ImageDraw.Draw(drawing).ellipse([96, 96, 416, 416], outline=0, width=6)
    pixels = np.asarray(drawing).copy()
    pixels[250:262, 400:420] = 255  # a 12 px gap in the ring's right side
    path = tmp_path / "gapped-ring.png"
    Image.fromarray(pixels).save(path)
    requests = ColorizeRequests(page)
    page.goto(studio_url + "/")
    page.wait_for_selector("body[data-ready='true'][data-started='1']")
    first = requests.next(lambda: page.set_input_files("#file-input", str(path)))
    assert "analysis" not in first and first.get("gap") == "auto", first
    wait_result(page)
    set_colour(page, "#20a040")
    page.keyboard.press("f")
    assert page.locator("#tool-bucket").get_attribute("aria-checked") == "true"
    box = page.locator("#hint-canvas").bounding_box()
    inside = (box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.mouse.move(*inside)
    page.wait_for_function("() => document.body.dataset.hoverRegion && document.body.dataset.hoverRegion !== '0'")
    fields = requests.next(lambda: page.mouse.click(*inside))
    assert fields.get("analysis") and "gap" not in fields, fields  # the server's analysis, not the line again
    wait_result(page)
    hints = page.evaluate("""() => {
      const d = document.getElementById('hint-canvas').getContext('2d').getImageData(0, 0, 512, 512).data;
      const at = (x, y) => Array.from(d.slice(4 * (y * 512 + x), 4 * (y * 512 + x) + 4));
      return {centre: at(256, 256), outside: at(20, 20), right: at(470, 256)};
    }""")
    assert hints["centre"] == [32, 160, 64, 255] and hints["outside"][3] == 0 and hints["right"][3] == 0, hints
    result = page.evaluate("""() => {
      const d = document.getElementById('result-canvas').getContext('2d').getImageData(0, 0, 512, 512).data;
      const at = (x, y) => Array.from(d.slice(4 * (y * 512 + x), 4 * (y * 512 + x) + 3));
      return {centre: at(256, 256), outside: at(20, 20), right: at(470, 256)};
    }""")
    assert result["centre"] == [32, 160, 64], result
    assert result["outside"] != [32, 160, 64] and result["right"] != [32, 160, 64], result  # no leak
    page.screenshot(path=str(ARTIFACTS / "studio-bucket.png"))


def test_studio_downloads_the_result_as_psd_and_ora_layers(page, fill_studio_url):
    """The PSD and ORA buttons deliver the picture on screen as layers: flats, shading, highlights, lines and hidden
    hints, flattening to the PNG download within 2 levels (the same request, so the same seed and colours)."""
    import numpy as np
    from PIL import Image
    from psd_tools import PSDImage
    from test_layered import FLATTEN_TOLERANCE, flatten_ora

    page.goto(fill_studio_url + "/")
    page.wait_for_selector("body[data-ready='true'][data-started='1']")
    wait_result(page)
    assert page.locator("#download-psd").is_enabled() and page.locator("#download-ora").is_enabled()
    page.select_option("#mode", "stochastic")
    page.select_option("#composite", "network")
    page.click("#tool-hint")
    set_colour(page, "#d02060")
    stroke(page, [(0.3, 0.55), (0.4, 0.6)])
    wait_result(page)
    files = {}
    for button in ("download", "download-psd", "download-ora"):
        with page.expect_download() as info:
            page.click("#" + button)
        files[button] = (info.value.suggested_filename, Path(info.value.path()).read_bytes())
    seed = page.locator("#seed").input_value()
    assert files["download-psd"][0] == f"linecolor-result-seed{seed}.psd"
    assert files["download-ora"][0] == f"linecolor-result-seed{seed}.ora"
    png = np.asarray(Image.open(io.BytesIO(files["download"][1])).convert("RGB")).astype(int)
    psd = PSDImage.open(io.BytesIO(files["download-psd"][1]))
    assert [layer.name for layer in psd] == ["flats", "shading", "highlights", "lines", "hints"]
    assert not psd[4].visible
    assert np.abs(np.asarray(psd.composite().convert("RGB")).astype(int) - png).max() <= FLATTEN_TOLERANCE
    layers, flattened = flatten_ora(files["download-ora"][1])
    assert [layer["name"] for layer in layers] == ["hints", "lines", "highlights", "shading", "flats"]
    assert np.abs(flattened.astype(int) - png).max() <= FLATTEN_TOLERANCE
    assert "Saved the layers as ORA" in page.locator("#status").inner_text()


def test_studio_palette_loads_names_saves_and_colours_suggestions(page, fill_studio_url, tmp_path):
    """A .gpl loads into named swatches, "Suggestions from the palette" sends it (unhinted regions then take
    palette colours), a swatch can be added and named, and Save writes a .gpl that reads back the same."""
    import numpy as np
    from PIL import Image

    from linecolor.raster.palette import parse_gpl

    gpl = tmp_path / "skin.gpl"
    gpl.write_text("GIMP Palette\nName: Skin\n#\n240 200 170\tcheek\n 40  90 200\tsky\n", encoding="utf-8")
    requests = ColorizeRequests(page)
    page.goto(fill_studio_url + "/")
    page.wait_for_selector("body[data-ready='true'][data-started='1']")
    wait_result(page)
    page.set_input_files("#palette-input", str(gpl))
    page.wait_for_function("() => document.querySelectorAll('#palette-colors .swatch').length === 2")
    assert page.locator("#palette-name").inner_text() == "Skin"
    assert page.locator("#palette-colors .swatch").first.get_attribute("title") == "cheek #f0c8aa"
    fields = requests.next(lambda: page.check("#palette-snap"))
    assert json.loads(fields["palette"]) == ["#f0c8aa", "#285ac8"]
    wait_result(page)
    with page.expect_download() as info:
        page.click("#download")
    colours = {tuple(c) for c in np.unique(np.asarray(Image.open(info.value.path()).convert("RGB")).reshape(-1, 3),
                                           axis=0)}
    # no hints yet: every region is a palette colour (lines multiply them darker, so look for the pure ones)
    assert {(240, 200, 170), (40, 90, 200)} & colours
    # add the current hint colour and name it; the saved file reads back with the name
    set_colour(page, "#12ab34")
    page.click("#palette-add")
    page.once("dialog", lambda dialog: dialog.accept("leaf"))
    page.locator("#palette-colors .swatch").nth(2).dblclick()
    page.wait_for_function("() => document.querySelectorAll('#palette-colors .swatch')[2].title === 'leaf #12ab34'")
    with page.expect_download() as info:
        page.click("#palette-save")
    assert info.value.suggested_filename == "Skin.gpl"
    saved = parse_gpl(Path(info.value.path()).read_text(encoding="utf-8"))
    assert saved.name == "Skin" and saved.names == ("cheek", "sky", "leaf")
    assert saved.hex() == ["#f0c8aa", "#285ac8", "#12ab34"]
    # Shift+click removes a swatch; a bad file is refused with its reason and keeps the palette
    page.locator("#palette-colors .swatch").nth(1).click(modifiers=["Shift"])
    page.wait_for_function("() => document.querySelectorAll('#palette-colors .swatch').length === 2")
    (tmp_path / "bad.gpl").write_text("JASC-PAL\n", encoding="utf-8")
    page.set_input_files("#palette-input", str(tmp_path / "bad.gpl"))
    page.wait_for_selector("#status.error")
    assert "not a GIMP palette" in page.locator("#status").inner_text()
    assert page.locator("#palette-colors .swatch").count() == 2


# ------------------------------------------------------------------------------------------------ rough edges (#16)
def _colour_png(size: tuple[int, int]) -> bytes:
    """A coloured picture with black outlines (a reference)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (250, 240, 200))
    ImageDraw.Draw(image).ellipse((10, 10, size[0] - 10, size[1] - 10), fill=(40, 120, 220), outline=0, width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _png_upload(name: str, size: tuple[int, int]) -> dict:
    from PIL import Image, ImageDraw

    image = Image.new("L", size, 255)
    ImageDraw.Draw(image).ellipse((10, 10, size[0] - 10, size[1] - 10), outline=0, width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {"name": name, "mimeType": "image/png", "buffer": buffer.getvalue()}


def test_reference_mode_sends_the_loaded_reference_with_every_colouring(page, fill_studio_url):
    """Reference mode waits for a reference, then sends it (a large picture scaled down to the studio's 512 px, as
    a PNG file part) with each colouring."""
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(fill_studio_url + "/")
    page.wait_for_selector("body[data-ready='true'][data-started='1']")
    wait_result(page)
    requests = ColorizeRequests(page)
    page.select_option("#mode", "reference")
    page.wait_for_function("() => document.getElementById('status').textContent.includes('load a reference image')")
    assert len(requests.seen) == 0  # nothing is sent without a reference
    picture = {"name": "palette.png", "mimeType": "image/png", "buffer": _colour_png((1200, 800))}
    fields = requests.next(lambda: page.set_input_files("#reference-input", files=[picture]))
    assert fields["mode"] == "reference"
    first = wait_result(page)
    assert requests.files[-1].get("reference") == (512, 341), requests.files[-1]
    fields = requests.next(lambda: stroke(page, [(0.3, 0.3), (0.7, 0.7)]))
    assert fields["mode"] == "reference" and wait_result(page)["hash"] != first["hash"]  # a stroke colours again...
    assert requests.files[-1].get("reference") == (512, 341)  # ...with the reference sent again
    page.click("#clear-reference")
    assert page.locator("#reference-canvas").is_hidden()
    assert not problems, problems


def test_ctrl_z_undoes_the_stroke_even_with_the_hex_field_focused(page, fill_studio_url):
    page.goto(fill_studio_url + "/")
    page.wait_for_selector("body[data-ready='true'][data-started='1']")
    wait_result(page)
    page.click("#tool-hint")
    page.fill("#color-hex", "#11aa33")  # typed, applied, and the field keeps the focus
    before = stats(page, "hint-canvas")["hash"]
    stroke(page, [(0.3, 0.3), (0.5, 0.5)])
    after = stats(page, "hint-canvas")["hash"]
    assert after != before
    page.keyboard.press("Control+z")
    assert stats(page, "hint-canvas")["hash"] == before
    page.keyboard.press("Control+Shift+Z")
    assert stats(page, "hint-canvas")["hash"] == after
    page.focus("#color-hex")  # clicked back into the field, nothing edited: Ctrl+Z is still the drawing's undo
    page.keyboard.press("Control+z")
    assert stats(page, "hint-canvas")["hash"] == before
    assert page.locator("#color-hex").input_value() == "#11aa33"


def test_the_seed_field_shows_a_seed_only_in_stochastic_mode(page, fill_studio_url):
    page.goto(fill_studio_url + "/")
    page.wait_for_selector("body[data-ready='true'][data-started='1']")
    wait_result(page)
    page.select_option("#mode", "stochastic")
    wait_result(page)
    seed = page.locator("#seed").input_value()
    assert re.fullmatch(r"\d+", seed)
    page.select_option("#mode", "deterministic")
    wait_result(page)
    assert page.locator("#seed").input_value() == "", "a stale seed is shown in deterministic mode"
    assert "seed" not in page.locator("#result-meta").inner_text()
    requests = ColorizeRequests(page)
    fields = requests.next(lambda: page.select_option("#mode", "stochastic"))
    assert fields.get("seed") == seed and page.locator("#seed").input_value() == seed  # the variation comes back
    wait_result(page)


def test_variations_show_seeds_side_by_side_and_a_click_colours_with_one(page, fill_studio_url):
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(fill_studio_url + "/")
    page.wait_for_selector("body[data-ready='true'][data-started='1']")
    wait_result(page)
    strip = page.locator("#variations")
    assert strip.is_hidden() and page.locator("#show-variations").is_enabled()
    count = api_json(fill_studio_url + "/api/limits")["variations"]["count"]
    page.click("#show-variations")
    page.wait_for_function(f"() => document.querySelectorAll('#variations .variation').length === {count}")
    buttons = strip.locator(".variation")
    seeds = [buttons.nth(i).get_attribute("data-seed") for i in range(count)]
    assert all(re.fullmatch(r"\d+", s) for s in seeds) and len(set(seeds)) == count, seeds
    page.wait_for_function("() => [...document.querySelectorAll('#variations img')].every(i => i.complete && "
                           "i.naturalWidth > 0)")  # every preview decodes
    assert strip.is_visible() and "stale" not in (strip.get_attribute("class") or "")
    assert page.locator("#variations .variation[aria-pressed='true']").count() == 0  # deterministic result shown

    # a click colours the drawing at full size in stochastic mode with that seed, and marks it chosen
    requests = ColorizeRequests(page)
    fields = requests.next(lambda: buttons.nth(2).click())
    assert (fields.get("mode"), fields.get("seed")) == ("stochastic", seeds[2]), fields
    wait_result(page)
    assert page.locator("#seed").input_value() == seeds[2] and page.locator("#mode").input_value() == "stochastic"
    assert buttons.nth(2).get_attribute("aria-pressed") == "true"
    assert page.locator("#variations .variation[aria-pressed='true']").count() == 1
    assert seeds[2] in page.locator("#result-meta").inner_text()

    # an edit leaves the previews out of date (dimmed) until asked for again; a new picture clears them
    stroke(page, [(0.3, 0.3), (0.4, 0.35)])
    wait_result(page)
    assert "stale" in (strip.get_attribute("class") or "")
    page.click("#show-variations")
    page.wait_for_function("() => !document.getElementById('variations').classList.contains('stale')")
    page.locator("#latent-shift").fill("1")  # previews of another latent shift are another picture
    wait_result(page)
    assert "stale" in (strip.get_attribute("class") or "")
    page.set_input_files("#file-input", files=[_png_upload("wide.png", (768, 512))])
    page.wait_for_function("() => document.getElementById('doc-size').textContent.trim() === '768 × 512'")
    assert strip.is_hidden() and strip.locator(".variation").count() == 0
    assert not problems, "\n".join(problems)


def test_clear_all_gives_a_blank_default_sheet_that_colours_white(page, fill_studio_url):
    page.goto(fill_studio_url + "/")
    page.wait_for_selector("body[data-ready='true'][data-started='1']")
    wait_result(page)
    page.set_input_files("#file-input", files=[_png_upload("wide.png", (768, 512))])
    page.wait_for_function("() => document.getElementById('doc-size').textContent.trim() === '768 × 512'")
    wait_result(page)
    page.click("#clear-all")
    assert page.locator("#doc-size").inner_text().strip() == "512 × 512"
    page.click("#colorize")
    result = wait_result(page)
    assert (result["width"], result["height"]) == (512, 512)
    assert result["nonWhite"] == 0, "a blank sheet was coloured"
    page.click("#undo")  # the picture and its size come back
    assert page.locator("#doc-size").inner_text().strip() == "768 × 512"


def test_an_error_is_not_overwritten_by_an_earlier_request_finishing(page, fill_studio_url):
    page.goto(fill_studio_url + "/")
    page.wait_for_selector("body[data-ready='true'][data-started='1']")
    wait_result(page)
    held = []
    page.route("**/api/colorize", lambda route: held.append(route))
    page.click("#colorize")
    deadline = time.monotonic() + 30
    while not held:
        assert time.monotonic() < deadline, "no colorize request was sent"
        page.wait_for_timeout(50)
    page.set_input_files("#file-input", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hi"}])
    page.wait_for_selector("#status.error")
    message = page.locator("#status").inner_text()
    assert "notes.txt" in message or "Unsupported" in message, message
    held[0].continue_()
    page.wait_for_function("() => document.body.dataset.inflight === '0'")
    page.wait_for_timeout(500)
    assert page.locator("#status").inner_text() == message
    assert "error" in (page.locator("#status").get_attribute("class") or "")


def test_the_result_stays_in_view_while_painting_at_1024_by_700(browser, fill_studio_url):
    context = browser.new_context(viewport={"width": 1024, "height": 700})
    try:
        page = context.new_page()
        page.set_default_timeout(RESULT_TIMEOUT_MS)
        page.goto(fill_studio_url + "/")
        page.wait_for_selector("body[data-ready='true'][data-started='1']")
        wait_result(page)
        drawing, result = (page.locator(f"#{i}").bounding_box() for i in ("hint-canvas", "result-canvas"))
        for box in (drawing, result):
            assert box["y"] >= 0 and box["y"] + box["height"] <= 700, (drawing, result)  # both wholly on screen
        assert result["x"] >= drawing["x"] + drawing["width"], "the result is not beside the drawing"
        assert min(drawing["width"], result["width"]) >= 300, "the canvases are too small to paint on"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "studio-1024x700.png"))
    finally:
        context.close()


def test_suggested_here_shows_the_models_colours_and_a_click_fills_the_region(page, fill_studio_url):
    page.goto(fill_studio_url + "/")
    page.wait_for_selector("body[data-ready='true'][data-started='1']")
    wait_result(page)
    box = page.locator("#hint-canvas").bounding_box()
    before = stats(page, "hint-canvas")
    # rest the pointer on the drawing: the region map is fetched, then the suggestions for that region
    for _ in range(3):
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=3)
        page.wait_for_timeout(400)
        page.mouse.move(box["x"] + box["width"] * 0.05, box["y"] + box["height"] * 0.05, steps=3)
        if page.locator("#suggestions .swatch").count():
            break
    page.wait_for_function("() => document.querySelectorAll('#suggestions .swatch').length >= 1")
    assert page.locator("#suggestions-row").is_visible()
    swatch = page.locator("#suggestions .swatch").first
    colour = swatch.get_attribute("data-color")
    assert re.fullmatch(r"#[0-9a-f]{6}", colour)
    swatch.click()
    wait_result(page)
    after = stats(page, "hint-canvas")
    assert after["opaque"] > before["opaque"] + 1000, "the region was not filled with the suggestion"
    assert page.locator("#color-hex").input_value() == colour


def test_the_clean_up_thickness_says_what_it_is_and_is_sent(page, studio_url):
    """The drop-down beside "Clean up sketch" was labelled only "default"; every choice now names a thickness and
    the one shown is the one the clean-up request carries."""
    page.goto(studio_url + "/")
    page.wait_for_selector("body[data-ready='true'][data-started='1']")
    options = [o.strip() for o in page.locator("#thickness option").all_inner_texts()]
    assert options == ["thin lines", "medium lines", "bold lines", "heavy lines"], options
    assert page.locator("#thickness option:checked").inner_text().strip() == "medium lines"
    sent: list[str] = []

    def record(route):
        sent.append(form_fields_any(route.request).get("thickness", ""))
        route.continue_()

    page.route("**/api/lineart", record)
    page.select_option("#thickness", "3")
    page.click("#cleanup")
    deadline = time.monotonic() + 30
    while not sent:
        assert time.monotonic() < deadline, "no clean-up request was sent"
        page.wait_for_timeout(50)
    assert sent == ["3"]


def png_part_sizes(request) -> dict[str, tuple[int, int]]:
    """The pixel size of each PNG file part of a multipart request, by field name."""
    content_type = request.headers["content-type"]
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + (request.post_data_buffer or b""))
    return {part.get_param("name", header="content-disposition"): png_size(part.get_payload(decode=True))
            for part in msg.iter_parts() if part.get_filename() is not None}


def form_fields_any(request) -> dict[str, str]:
    """The text fields of any multipart request (see :func:`form_fields`, which expects a colorize request)."""
    content_type = request.headers["content-type"]
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + (request.post_data_buffer or b""))
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True).decode("utf-8")
            for part in msg.iter_parts() if part.get_filename() is None}
