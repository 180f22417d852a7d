"""Tests for linecolor.data.safebooru: CSV filtering and the resumable, rate-limited downloader.

Everything is offline: the CSV is written by the test and images are served by a ThreadingHTTPServer on
127.0.0.1 (port 0). A fake clock and sleep make the rate limiter and back-off run without waiting.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from linecolor.data.safebooru import (
    LOG_NAME,
    RateLimiter,
    SafebooruPost,
    download,
    filter_metadata,
    normalize_url,
)
from linecolor.errors import ConfigError, LinecolorError

HEADER = "id,created_at,rating,score,sample_url,sample_width,sample_height,preview_url,tags\n"


# ------------------------------------------------------------------------------------------------ CSV
def _row(i: int, tags: str, url: str | None = None, width: str = "800") -> str:
    url = url if url is not None else f"//safebooru.org//samples/1/sample_{i}.jpg"
    return (f'{i},"Mon Jan 01 00:00:00 -0500 2018",s,{i % 7},{url},{width},600,'
            f'//safebooru.org/thumbnails/1/thumbnail_{i}.jpg,"{tags}"\n')


@pytest.fixture()
def metadata_csv(tmp_path: Path) -> Path:
    rows = [
        _row(1, "1girl solo white_background upper_body smile"),
        _row(2, "1girl solo white_background"),  # no upper_body
        _row(3, "solo white_background upper_body monochrome"),  # excluded tag
        _row(4, "2girls white_background upper_body"),  # no solo
        _row(5, "Solo White_Background Upper_Body", url="https://example.org/5.png"),  # case-insensitive tags
        _row(6, "solo white_background upper_body", url="ftp://example.org/6.jpg"),  # not http(s): skipped
        _row(7, "solo white_background upper_body", width="abc"),  # malformed: skipped
        _row(8, "solo white_background upper_body blue_eyes"),
    ]
    path = tmp_path / "all_data.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


def test_filter_metadata_tags_urls_and_limit(metadata_csv: Path):
    posts = filter_metadata(metadata_csv, ["solo", "white_background", "upper_body"], ["monochrome"])
    assert [p.id for p in posts] == [1, 5, 8]
    first = posts[0]
    assert first.sample_url == "https://safebooru.org//samples/1/sample_1.jpg"
    assert first.preview_url == "https://safebooru.org/thumbnails/1/thumbnail_1.jpg"
    assert (first.sample_width, first.sample_height, first.rating, first.score) == (800, 600, "s", 1)
    assert first.tags == ("1girl", "solo", "white_background", "upper_body", "smile")
    assert posts[1].sample_url == "https://example.org/5.png"
    assert [p.id for p in filter_metadata(metadata_csv, "solo white_background", ())] == [1, 2, 3, 5, 8]
    assert [p.id for p in filter_metadata(metadata_csv, ["solo"], ["upper_body"])] == [2]
    assert [p.id for p in filter_metadata(metadata_csv, ["white_background"], [], limit=2)] == [1, 2]
    assert len(filter_metadata(metadata_csv)) == 6  # all but the ftp and malformed rows


def test_filter_metadata_streams_and_stops_at_limit(tmp_path: Path):
    # 3000 matching rows (> the reader's buffer), then bytes that are not UTF-8. With a limit the bad bytes are
    # never read; without one they are, and reported as a LinecolorError.
    path = tmp_path / "big.csv"
    body = HEADER + "".join(_row(i, "solo white_background") for i in range(3000))
    path.write_bytes(body.encode() + b'9999,x,s,1,//a/b.jpg,1,1,//a/c.jpg,"solo \xff\xfe"\n')
    assert [p.id for p in filter_metadata(path, ["solo"], limit=5)] == [0, 1, 2, 3, 4]
    with pytest.raises(LinecolorError, match="UTF-8"):
        filter_metadata(path, ["solo"])


def test_filter_metadata_errors(tmp_path: Path, metadata_csv: Path):
    with pytest.raises(LinecolorError, match="not found"):
        filter_metadata(tmp_path / "nope.csv", ["solo"])
    bad = tmp_path / "bad.csv"
    bad.write_text("id,tags\n1,solo\n", encoding="utf-8")
    with pytest.raises(LinecolorError, match="sample_url"):
        filter_metadata(bad, ["solo"])
    with pytest.raises(ConfigError, match="both included and excluded"):
        filter_metadata(metadata_csv, ["solo"], ["solo"])
    with pytest.raises(ConfigError, match="limit"):
        filter_metadata(metadata_csv, ["solo"], limit=0)
    with pytest.raises(ConfigError, match="without spaces"):
        filter_metadata(metadata_csv, ["solo smile"])


def test_normalize_url():
    assert normalize_url("//x.org/a.jpg") == "https://x.org/a.jpg"
    assert normalize_url(" http://x.org/a.jpg ") == "http://x.org/a.jpg"
    assert normalize_url("file:///etc/passwd") is None
    assert normalize_url("/relative/a.jpg") is None
    assert normalize_url("ftp://x.org/a.jpg") is None


# --------------------------------------------------------------------------------------------- server
def _png(rgb: tuple[int, int, int], size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), rgb).save(buf, format="PNG")
    return buf.getvalue()


class FakeClock:
    """Monotonic time that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class ImageServer:
    """Routes: /img/<n>.png, /missing (404), /flaky (500 then 200), /down (always 503), /text (200, not an
    image), /big (Content-Length over the limit), /big-stream (no Content-Length, over the limit), /slow (first
    answer after 1 s, then fast), /to-ftp (302 to ftp://)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.hits: Counter[str] = Counter()
        self.times: list[float] = []  # fake-clock time of each request
        self.images = {f"/img/{n}.png": _png((40 * n % 256, 100, 200)) for n in range(1, 6)}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _send(self, code: int, body: bytes, ctype: str = "image/png", length: bool = True,
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                if length:
                    self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path
                with server.lock:
                    server.hits[path] += 1
                    n = server.hits[path]
                    server.times.append(server.clock.monotonic())
                    server.agents.append(self.headers.get("User-Agent", ""))
                if path in server.images:
                    self._send(200, server.images[path])
                elif path == "/missing":
                    self._send(404, b"not here", "text/plain")
                elif path == "/flaky":
                    if n == 1:
                        self._send(500, b"oops", "text/plain")
                    else:
                        self._send(200, server.images["/img/5.png"])
                elif path == "/down":
                    self._send(503, b"busy", "text/plain", headers={"Retry-After": "7"})
                elif path == "/text":
                    self._send(200, b"<html>hello, not an image</html>", "text/html")
                elif path == "/big":
                    self._send(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 5000)
                elif path == "/big-stream":
                    self._send(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 5000, length=False)
                elif path == "/slow":
                    if n == 1:
                        time.sleep(1.0)
                    try:
                        self._send(200, server.images["/img/4.png"])
                    except OSError:  # the client timed out and hung up
                        pass
                elif path == "/to-ftp":
                    self._send(302, b"", "text/plain", headers={"Location": "ftp://127.0.0.1/x.png"})
                else:
                    self._send(404, b"", "text/plain")

        self.agents: list[str] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for key in list(os.environ):
        if key.lower().endswith("_proxy"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("no_proxy", "*")


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def server(clock: FakeClock):
    srv = ImageServer(clock)
    try:
        yield srv
    finally:
        srv.close()


def _post(i: int, url: str) -> SafebooruPost:
    return SafebooruPost(id=i, sample_url=url, sample_width=8, sample_height=8, tags=("solo",))


def _run(posts, out: Path, clock: FakeClock, **kw):
    kw.setdefault("max_bytes", 2000)
    kw.setdefault("timeout", 5.0)
    return download(posts, out, rate_limit_per_s=2.0, max_retries=3, progress=False, clock=clock.monotonic,
                    sleep=clock.sleep, **kw)


def _mixed_posts(server: ImageServer) -> list[SafebooruPost]:
    return [
        _post(1, server.url("/img/1.png")),
        _post(2, server.url("/img/2.png")),
        _post(3, server.url("/missing")),
        _post(4, server.url("/flaky")),
        _post(5, server.url("/text")),
        _post(6, server.url("/big")),
        _post(7, server.url("/big-stream")),
        _post(8, server.url("/down")),
        _post(9, "file:///etc/passwd"),
        _post(10, server.url("/to-ftp")),
    ]


def test_download_outcomes_retries_and_files(tmp_path: Path, server: ImageServer, clock: FakeClock):
    out = tmp_path / "images"
    report = _run(_mixed_posts(server), out, clock)
    assert (report.downloaded, report.not_found, report.invalid, report.too_large, report.failed,
            report.refused, report.skipped) == (3, 1, 1, 2, 2, 1, 0)
    assert report.total == 10
    # Files: exactly the three good images, byte-identical, named by the detected format; no .part left over.
    assert sorted(p.name for p in out.iterdir()) == sorted(["1.png", "2.png", "4.png", LOG_NAME])
    assert (out / "1.png").read_bytes() == server.images["/img/1.png"]
    assert (out / "4.png").read_bytes() == server.images["/img/5.png"]
    # Retries: flaky 500 → retried once; 404 not retried; 503 retried max_retries times; redirect to ftp refused.
    assert server.hits["/flaky"] == 2
    assert server.hits["/missing"] == 1
    assert server.hits["/down"] == 4
    assert server.hits["/text"] == 1 and server.hits["/big"] == 1
    assert server.hits["/to-ftp"] == 1 and "non-http(s)" in report.errors[10]
    assert len(server.hits) == 9  # the redirect target was never requested; file:// never reached the server
    assert report.requests == sum(server.hits.values())
    # Back-off: 1 s after the flaky 500; Retry-After 7 s (over the 1, 2, 4 s schedule) for the 503s.
    assert clock.sleeps.count(7.0) == 3
    assert 1.0 in clock.sleeps
    assert "HTTP 503" in report.errors[8] and "HTTP 404" in report.errors[3]
    assert "not an http(s) URL" in report.errors[9]
    assert all(a.startswith("linecolor/") for a in server.agents)
    # The log names every outcome.
    records = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]
    status = {r["id"]: r["status"] for r in records}
    assert status == {1: "ok", 2: "ok", 3: "not_found", 4: "ok", 5: "invalid", 6: "too_large", 7: "too_large",
                      8: "failed", 9: "refused", 10: "failed"}


def test_second_run_resumes_without_downloading_again(tmp_path: Path, server: ImageServer, clock: FakeClock):
    out = tmp_path / "images"
    posts = _mixed_posts(server)
    _run(posts, out, clock)
    before = Counter(server.hits)
    mtime = (out / "1.png").stat().st_mtime_ns
    again = _run(posts, out, clock)
    assert again.downloaded == 0
    assert again.skipped == 4  # three complete files and the recorded 404
    new_hits = server.hits - before
    # Complete and 404 posts are not requested again; transient/invalid ones are retried.
    for path in ("/img/1.png", "/img/2.png", "/flaky", "/missing"):
        assert new_hits[path] == 0, path
    assert new_hits["/text"] == 1
    assert (out / "1.png").stat().st_mtime_ns == mtime


def test_interrupted_part_is_redone_and_renamed_file_is_recovered(tmp_path: Path, server: ImageServer,
                                                                  clock: FakeClock):
    out = tmp_path / "images"
    out.mkdir()
    (out / ".1.part").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")  # a run was killed mid-download
    (out / "2.png").write_bytes(server.images["/img/2.png"])  # killed after the rename, before the log write
    # A log line claiming a file that has since been deleted, and a torn last line.
    (out / LOG_NAME).write_text(json.dumps({"id": 3, "status": "ok", "file": "3.png", "bytes": 10}) + "\n{\"id\": 9",
                                encoding="utf-8")
    posts = [_post(1, server.url("/img/1.png")), _post(2, server.url("/img/2.png")),
             _post(3, server.url("/img/3.png"))]
    report = _run(posts, out, clock)
    assert (report.downloaded, report.skipped) == (2, 1)
    assert server.hits["/img/2.png"] == 0
    assert not (out / ".1.part").exists()
    assert (out / "1.png").read_bytes() == server.images["/img/1.png"]
    assert (out / "3.png").read_bytes() == server.images["/img/3.png"]


def test_rate_limiter_spaces_requests(tmp_path: Path, server: ImageServer, clock: FakeClock):
    posts = [_post(i, server.url(f"/img/{i}.png")) for i in range(1, 6)] + [_post(6, server.url("/flaky"))]
    report = download(posts, tmp_path / "o", rate_limit_per_s=4.0, backoff_base=0.1, progress=False,
                      clock=clock.monotonic, sleep=clock.sleep)
    assert report.downloaded == 6 and report.requests == 7
    gaps = np.diff(server.times)
    assert len(gaps) == 6
    assert (gaps >= 0.25 - 1e-9).all(), gaps
    # Without retries nothing but the limiter sleeps, so requests come exactly 1/rate apart.
    np.testing.assert_allclose(gaps[:5], 0.25)


def test_rate_limiter_unit():
    clock = FakeClock()
    limiter = RateLimiter(2.0, clock=clock.monotonic, sleep=clock.sleep)
    t = []
    for _ in range(4):
        limiter.wait()
        t.append(clock.now)
        clock.now += 0.1  # some work between events
    np.testing.assert_allclose(np.diff(t), 0.5)
    clock.now += 10  # idle for a while: no burst credit beyond one event, no sleeping either
    n = len(clock.sleeps)
    limiter.wait()
    assert len(clock.sleeps) == n
    limiter.wait()
    assert clock.sleeps[-1] == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="rate_limit_per_s"):
        RateLimiter(0)


def test_timeout_is_retried(tmp_path: Path, server: ImageServer, clock: FakeClock):
    report = _run([_post(1, server.url("/slow"))], tmp_path / "o", clock, timeout=0.3)
    assert report.downloaded == 1 and report.requests == 2
    assert server.hits["/slow"] == 2


def test_download_validates_arguments(tmp_path: Path):
    with pytest.raises(ConfigError, match="max_bytes"):
        download([], tmp_path, max_bytes=0, progress=False)
    with pytest.raises(ConfigError, match="timeout"):
        download([], tmp_path, timeout=-1, progress=False)
    assert download([], tmp_path / "empty", progress=False).total == 0


# ------------------------------------------------------------------------------------ the whole data path
def test_prepare_safebooru_from_the_command_line(tmp_path: Path, server: ImageServer):
    """``linecolor prepare safebooru``: tag filter → resumable download → XDoG line art in the prepared format."""
    from linecolor.cli import main
    from linecolor.data.datasets import PreparedArrays

    rows = [_row(i, "solo white_background", url=server.url(f"/img/{i}.png")) for i in (1, 2, 3)]
    rows.append(_row(4, "solo white_background", url=server.url("/missing")))
    rows.append(_row(5, "2girls white_background", url=server.url("/img/5.png")))  # filtered out by the tags
    csv_path = tmp_path / "all_data.csv"
    csv_path.write_text(HEADER + "".join(rows), encoding="utf-8")
    out = tmp_path / "prepared"
    argv = ["prepare", "safebooru", str(csv_path), str(out), "--size", "32", "--rate", "1000", "--quiet"]
    assert main(argv) == 0
    images = tmp_path / "prepared.images"
    assert sorted(p.name for p in images.glob("*.png")) == ["1.png", "2.png", "3.png"]
    assert server.hits["/img/5.png"] == 0 and server.hits["/missing"] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == "colors" and sum(manifest["splits"].values()) == 3
    split = next(s for s, n in manifest["splits"].items() if n)
    arrays = PreparedArrays(out, split)
    assert arrays[0].color.shape == (32, 32, 3) and arrays[0].lines.shape[1:] == (32, 32)
    # A rerun downloads nothing again (the log says what is complete and what is gone) and needs --overwrite.
    assert main(argv) == 2
    assert main(argv + ["--overwrite"]) == 0
    assert server.hits["/img/1.png"] == 1 and server.hits["/missing"] == 1
