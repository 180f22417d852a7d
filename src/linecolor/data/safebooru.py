"""The original work's data path: select posts from the Safebooru metadata and download their images.

The original (KAIST CS470, 2019) trained on Safebooru images tagged ``white_background`` and ``solo``
(+ ``upper_body``). Its metadata is the Kaggle "Safebooru" CSV (about 3 M rows; columns ``id, created_at,
rating, score, sample_url, sample_width, sample_height, preview_url, tags``, tags space-separated).

* :func:`filter_metadata` streams that CSV with the ``csv`` module (never loading it whole) and keeps the
  posts that carry every include tag and none of the exclude tags.
* :func:`download` fetches their sample images politely and resumably: one request per ``1/rate`` seconds
  at most, retries with exponential back-off on 5xx/429/timeouts, gives up on 404/410 and records it, writes
  ``.<id>.part`` and renames it into place only after the bytes decode as a PNG/JPEG/WebP image, and keeps a
  JSON-lines log (``.download_log.jsonl``) so that a rerun continues where the last one stopped.

Nothing here runs at import time and no test touches the network (the tests serve files from 127.0.0.1).
Respect the site's terms and rate limits; the images keep their artists' copyright.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import json
import logging
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from linecolor.errors import ConfigError, InputImageError, LinecolorError
from linecolor.limits import MAX_IMAGE_PIXELS
from linecolor.raster.imageio import open_image
from linecolor.version import __version__

__all__ = ["DEFAULT_INCLUDE_TAGS", "DownloadReport", "RateLimiter", "SafebooruPost", "download", "filter_metadata",
           "normalize_url", "prepare_safebooru"]

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("id", "created_at", "rating", "score", "sample_url", "sample_width", "sample_height",
                    "preview_url", "tags")
LOG_NAME = ".download_log.jsonl"
"""Hidden (like the ``.part`` files), so the download folder reads as a plain folder of images."""
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
_RETRY_STATUS = frozenset({408, 425, 429}) | frozenset(range(500, 600))
_GONE_STATUS = frozenset({404, 410})
_CHUNK = 64 * 1024


# ----------------------------------------------------------------------------------------- metadata
@dataclass(frozen=True)
class SafebooruPost:
    """One row of the Safebooru metadata CSV (the fields the data path needs)."""

    id: int
    """Post id; also the downloaded file's stem (``<id>.jpg`` …)."""
    sample_url: str
    """Absolute http(s) URL of the sample image (``//host/…`` in the CSV is normalised to ``https://host/…``)."""
    sample_width: int
    sample_height: int
    tags: tuple[str, ...]
    """The post's tags, in CSV order."""
    rating: str = ""
    score: int | None = None
    created_at: str = ""
    preview_url: str = ""


def normalize_url(url: str) -> str | None:
    """``//host/path`` → ``https://host/path``; returns ``None`` unless the result is an absolute http(s) URL."""
    url = url.strip()
    if url.startswith("//"):
        url = "https:" + url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def _tag_set(tags: Iterable[str] | str, what: str) -> frozenset[str]:
    if isinstance(tags, str):  # a single string is read like the CSV: space-separated tags
        return frozenset(tags.lower().split())
    out = set()
    for t in tags:
        if not isinstance(t, str) or not t.strip() or any(c.isspace() for c in t.strip()):
            raise ConfigError(f"{what}: every tag must be a non-empty string without spaces, got {t!r}")
        out.add(t.strip().lower())
    return frozenset(out)


def filter_metadata(csv_path: str | os.PathLike[str], include_tags: Iterable[str] | str = (),
                    exclude_tags: Iterable[str] | str = (), *, limit: int | None = None) -> list[SafebooruPost]:
    """Posts of the Safebooru metadata CSV that have all ``include_tags`` and none of ``exclude_tags``.

    The file is streamed row by row. Tags are compared case-insensitively. Rows with a malformed id, size or
    URL (or a URL that is not http(s)) are skipped and counted in a log message.

    Args:
        csv_path: the Kaggle ``all_data.csv`` (UTF-8, with a header row).
        include_tags: tags every kept post must carry (a list, or one space-separated string).
        exclude_tags: tags no kept post may carry.
        limit: stop after this many matching posts (``None``: all).

    Returns:
        Matching posts in file order.

    Raises:
        LinecolorError: missing file, missing columns, or a file that is not UTF-8 CSV.
        ConfigError: bad tags or limit.
    """
    path = Path(csv_path)
    include = _tag_set(include_tags, "include_tags")
    exclude = _tag_set(exclude_tags, "exclude_tags")
    if include & exclude:
        raise ConfigError(f"tags both included and excluded: {', '.join(sorted(include & exclude))}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer or None, got {limit!r}")
    if not path.is_file():
        raise LinecolorError(f"Safebooru metadata CSV not found: {path}")
    posts: list[SafebooruPost] = []
    skipped = 0
    try:
        with path.open("r", encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise LinecolorError(f"{path}: not the Safebooru metadata CSV; missing columns: {', '.join(missing)}")
            for row in reader:
                tags = (row.get("tags") or "").split()
                tag_set = {t.lower() for t in tags}
                if not include <= tag_set or exclude & tag_set:
                    continue
                post = _parse_row(row, tuple(tags))
                if post is None:
                    skipped += 1
                    continue
                posts.append(post)
                if limit is not None and len(posts) >= limit:
                    break
    except UnicodeDecodeError as exc:
        raise LinecolorError(f"{path}: not UTF-8 text ({exc})") from exc
    except csv.Error as exc:
        raise LinecolorError(f"{path}: malformed CSV ({exc})") from exc
    if skipped:
        log.info("%s: skipped %d matching rows with a malformed id, size or URL", path, skipped)
    return posts


def _parse_row(row: dict[str, str | None], tags: tuple[str, ...]) -> SafebooruPost | None:
    url = normalize_url(row.get("sample_url") or "")
    try:
        post_id = int(row.get("id") or "")
        width = int(row.get("sample_width") or "")
        height = int(row.get("sample_height") or "")
    except ValueError:
        return None
    if url is None or post_id < 0 or width < 1 or height < 1:
        return None
    score_text = (row.get("score") or "").strip()
    try:
        score = int(score_text) if score_text else None
    except ValueError:
        score = None
    return SafebooruPost(id=post_id, sample_url=url, sample_width=width, sample_height=height, tags=tags,
                         rating=(row.get("rating") or "").strip(), score=score,
                         created_at=(row.get("created_at") or "").strip(),
                         preview_url=normalize_url(row.get("preview_url") or "") or "")


# ------------------------------------------------------------------------------------------ download
class RateLimiter:
    """At most ``rate_per_s`` events per second: each :meth:`wait` returns no earlier than ``1/rate`` after the
    previous one (a token bucket of capacity 1).

    ``clock`` (monotonic seconds) and ``sleep`` are injectable so tests need not wait in real time.
    """

    def __init__(self, rate_per_s: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if isinstance(rate_per_s, bool) or not isinstance(rate_per_s, (int, float)) or not rate_per_s > 0:
            raise ConfigError(f"rate_limit_per_s must be a number > 0, got {rate_per_s!r}")
        self.interval = 0.0 if math.isinf(rate_per_s) else 1.0 / rate_per_s
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        """Block (via ``sleep``) until the next event is allowed, and claim it."""
        now = self._clock()
        if self._next is not None and now < self._next:
            self._sleep(self._next - now)
            now = self._clock()
        self._next = max(now, self._next or now) + self.interval


@dataclass
class DownloadReport:
    """Outcome counts of one :func:`download` run (each post is counted once)."""

    downloaded: int = 0
    """Images fetched and verified in this run."""
    skipped: int = 0
    """Posts needing no request: already complete, or recorded as 404/410 by an earlier run."""
    not_found: int = 0
    """Posts answered 404/410 in this run (recorded; not requested again by later runs)."""
    failed: int = 0
    """Posts that still failed after the retries (5xx, timeouts, connection errors) or got another 4xx/3xx."""
    invalid: int = 0
    """Responses that were not a decodable PNG/JPEG/WebP image (deleted)."""
    too_large: int = 0
    """Responses larger than ``max_bytes`` (aborted, deleted)."""
    refused: int = 0
    """Posts whose URL is not http(s) (never requested)."""
    requests: int = 0
    """HTTP requests made, retries included."""
    bytes_downloaded: int = 0
    errors: dict[int, str] = field(default_factory=dict)
    """Post id → reason, for every post that did not end up on disk in this run."""

    @property
    def total(self) -> int:
        return (self.downloaded + self.skipped + self.not_found + self.failed + self.invalid + self.too_large
                + self.refused)


class _TooLarge(Exception):
    pass


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s) (urllib would also follow one to ftp://)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"refused redirect to a non-http(s) URL: {newurl}",
                                         headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _read_log(path: Path) -> dict[int, dict]:
    """Last record per post id; a torn last line (from a crash mid-write) is ignored."""
    state: dict[int, dict] = {}
    if not path.is_file():
        return state
    with path.open("r", encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("id"), int):
                state[rec["id"]] = rec
    return state


def _existing_file(out_dir: Path, post_id: int, max_pixels: int) -> Path | None:
    """A verified ``<id>.<ext>`` left by a run that stopped between the rename and the log write."""
    for ext in _EXTENSIONS.values():
        p = out_dir / f"{post_id}.{ext}"
        if p.is_file():
            try:
                open_image(p, max_pixels=max_pixels, name=f"post {post_id}")
            except InputImageError:
                continue
            return p
    return None


def download(posts: Iterable[SafebooruPost], out_dir: str | os.PathLike[str], *, rate_limit_per_s: float = 1.0,
             timeout: float = 30.0, max_retries: int = 3, max_bytes: int = DEFAULT_MAX_BYTES,
             user_agent: str | None = None, progress: bool = True, max_pixels: int = MAX_IMAGE_PIXELS,
             backoff_base: float = 1.0, backoff_max: float = 60.0,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> DownloadReport:
    """Download the posts' sample images into ``out_dir`` as ``<id>.png|jpg|webp``, resumably and politely.

    Per post: skip it if the log says it is complete (and the file is there with the logged size) or gone
    (404/410); refuse URLs that are not http(s); otherwise request it (every request, retries included, goes
    through a :class:`RateLimiter`), retrying up to ``max_retries`` times with back-off
    ``min(backoff_max, backoff_base·2^attempt)`` (or a longer ``Retry-After``) on 5xx/408/425/429, timeouts and
    connection errors. The body is streamed into ``.<id>.part`` (aborted beyond ``max_bytes``), checked with
    :func:`linecolor.raster.imageio.open_image`, and renamed into place with ``os.replace``. Every outcome is appended to
    ``out_dir/.download_log.jsonl``. A stale ``.part`` from an interrupted run is simply overwritten.

    Args:
        posts: from :func:`filter_metadata`.
        out_dir: created if missing.
        rate_limit_per_s: most requests per second (``math.inf``: no limit).
        timeout: socket timeout per request, seconds.
        max_retries: retries after the first attempt for transient failures.
        max_bytes: largest accepted response body.
        user_agent: ``User-Agent`` header; default ``linecolor/<version>``.
        progress: show a tqdm progress bar.
        max_pixels: largest accepted image (width × height) when verifying.
        backoff_base, backoff_max: back-off schedule, seconds.
        clock, sleep: injectable monotonic clock and sleep (tests use fake ones).

    Returns:
        A :class:`DownloadReport`.
    """
    for name, v, lo in (("timeout", timeout, 0.0), ("backoff_base", backoff_base, -1.0),
                        ("backoff_max", backoff_max, -1.0)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not v > lo:
            raise ConfigError(f"{name} must be a finite number > {max(lo, 0)}, got {v!r}")
    for name, v, lo in (("max_retries", max_retries, 0), ("max_bytes", max_bytes, 1), ("max_pixels", max_pixels, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ConfigError(f"{name} must be an integer >= {lo}, got {v!r}")
    limiter = RateLimiter(rate_limit_per_s, clock=clock, sleep=sleep)
    agent = user_agent or f"linecolor/{__version__}"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / LOG_NAME
    state = _read_log(log_path)
    # Only the handlers needed for http(s); ProxyHandler keeps honouring *_proxy / no_proxy from the environment.
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    report = DownloadReport()
    posts = list(posts)

    with log_path.open("a", encoding="utf-8") as log_file, \
            tqdm(posts, desc="safebooru", unit="img", disable=not progress) as bar:

        def record(post: SafebooruPost, status: str, **extra) -> None:
            rec = {"id": post.id, "url": post.sample_url, "status": status, "time": time.time(), **extra}
            state[post.id] = rec
            log_file.write(json.dumps(rec, sort_keys=True) + "\n")
            log_file.flush()

        for post in bar:
            if isinstance(post.id, bool) or not isinstance(post.id, int) or post.id < 0:
                raise ConfigError(f"post id must be a non-negative integer, got {post.id!r}")
            prev = state.get(post.id)
            if prev is not None and prev.get("status") == "ok":
                f = out / str(prev.get("file", ""))
                if prev.get("file") and f.is_file() and f.stat().st_size == prev.get("bytes"):
                    report.skipped += 1
                    continue
            elif prev is not None and prev.get("status") == "not_found":
                report.skipped += 1
                continue
            elif prev is None:
                found = _existing_file(out, post.id, max_pixels)
                if found is not None:
                    record(post, "ok", file=found.name, bytes=found.stat().st_size)
                    report.skipped += 1
                    continue
            url = normalize_url(post.sample_url)
            if url is None:
                report.refused += 1
                report.errors[post.id] = f"not an http(s) URL: {post.sample_url!r}"
                record(post, "refused", error=report.errors[post.id])
                continue
            _download_one(post, url, out, opener, limiter, report, record, agent=agent, timeout=timeout,
                          max_retries=max_retries, max_bytes=max_bytes, max_pixels=max_pixels,
                          backoff_base=backoff_base, backoff_max=backoff_max, sleep=sleep)
    log.info("safebooru download: %d downloaded, %d skipped, %d not found, %d failed, %d invalid, %d too large, "
             "%d refused, %d requests", report.downloaded, report.skipped, report.not_found, report.failed,
             report.invalid, report.too_large, report.refused, report.requests)
    return report


def _retry_after(exc: urllib.error.HTTPError) -> float:
    value = exc.headers.get("Retry-After") if exc.headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else 0.0
    except ValueError:  # an HTTP date; rare enough to fall back to our own back-off
        return 0.0


def _download_one(post: SafebooruPost, url: str, out: Path, opener: urllib.request.OpenerDirector,
                  limiter: RateLimiter, report: DownloadReport, record: Callable[..., None], *, agent: str,
                  timeout: float, max_retries: int, max_bytes: int, max_pixels: int, backoff_base: float,
                  backoff_max: float, sleep: Callable[[float], None]) -> None:
    part = out / f".{post.id}.part"
    request = urllib.request.Request(url, headers={
        "User-Agent": agent, "Accept": "image/png,image/jpeg,image/webp;q=0.9,*/*;q=0.1"})
    last_error = ""
    delay = 0.0
    try:
        for attempt in range(max_retries + 1):
            if attempt:
                sleep(delay)
            limiter.wait()
            report.requests += 1
            delay = min(backoff_max, backoff_base * 2 ** attempt)
            try:
                size, digest = _fetch(opener, request, part, timeout, max_bytes)
            except urllib.error.HTTPError as exc:
                exc.close()
                last_error = f"HTTP {exc.code} {exc.reason}"
                if exc.code in _GONE_STATUS:
                    report.not_found += 1
                    report.errors[post.id] = last_error
                    record(post, "not_found", error=last_error)
                    return
                if exc.code in _RETRY_STATUS:
                    delay = max(delay, min(backoff_max, _retry_after(exc)))
                    continue
                break  # another 4xx (or a refused redirect): retrying will not help
            except _TooLarge:
                report.too_large += 1
                report.errors[post.id] = f"response larger than max_bytes={max_bytes}"
                record(post, "too_large", error=report.errors[post.id])
                return
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                last_error = f"{type(reason).__name__}: {reason}"
                continue
            report.bytes_downloaded += size
            try:
                image = open_image(part, max_pixels=max_pixels, name=f"post {post.id}")
            except InputImageError as exc:
                report.invalid += 1
                report.errors[post.id] = str(exc)
                record(post, "invalid", error=str(exc), bytes=size)
                return
            final = out / f"{post.id}.{_EXTENSIONS[image.format]}"
            os.replace(part, final)
            report.downloaded += 1
            record(post, "ok", file=final.name, bytes=size, sha256=digest, format=image.format,
                   width=image.width, height=image.height, attempts=attempt + 1)
            return
        report.failed += 1
        report.errors[post.id] = last_error
        record(post, "failed", error=last_error, attempts=attempt + 1)
    finally:
        part.unlink(missing_ok=True)


def _fetch(opener: urllib.request.OpenerDirector, request: urllib.request.Request, part: Path, timeout: float,
           max_bytes: int) -> tuple[int, str]:
    """Stream one response body into ``part``; returns (bytes, sha256 hex). Raises urllib errors or _TooLarge."""
    with opener.open(request, timeout=timeout) as resp:
        if resp.status != 200:
            raise urllib.error.HTTPError(request.full_url, resp.status, f"unexpected status {resp.status}",
                                         resp.headers, None)
        length = resp.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > max_bytes:
            raise _TooLarge()
        size = 0
        sha = hashlib.sha256()
        with part.open("wb") as f:
            while chunk := resp.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:  # no or lying Content-Length
                    raise _TooLarge()
                sha.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    return size, sha.hexdigest()


# ------------------------------------------------------------------------------------- whole data path
DEFAULT_INCLUDE_TAGS = ("white_background", "solo")
"""The original work's tag filter (it added ``upper_body`` for its 8,644-image experiment)."""


def prepare_safebooru(csv_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, size: int,
                      include_tags: Iterable[str] | str = DEFAULT_INCLUDE_TAGS, exclude_tags: Iterable[str] | str = (),
                      limit: int | None = None, images_dir: str | os.PathLike[str] | None = None,
                      rate_limit_per_s: float = 1.0, extractor: str = "xdog", overwrite: bool = False,
                      progress: bool = True, **download_options) -> tuple[DownloadReport, dict]:
    """The paper's data path in one call (``linecolor prepare safebooru``): tag filter → download → line extraction.

    :func:`filter_metadata` picks the posts, :func:`download` fetches them into ``images_dir`` (default: the folder
    ``<out_dir>.images`` beside ``out_dir``; kept between runs, so a rerun only fetches what is missing), and
    :func:`linecolor.data.datasets.prepare_dataset` turns the downloaded colour images into the prepared format
    with ``extractor`` line art (source ``colors``).

    Returns:
        ``(download report, prepared manifest)``.

    Raises:
        LinecolorError: no post matches the tags; :class:`~linecolor.data.sources.DatasetError` when no downloaded
            image is usable (or ``out_dir`` exists without ``overwrite``).
    """
    from linecolor.data.datasets import prepare_dataset

    out = Path(out_dir)
    images = Path(images_dir) if images_dir is not None else out.with_name(out.name + ".images")
    posts = filter_metadata(csv_path, include_tags, exclude_tags, limit=limit)
    if not posts:
        raise LinecolorError(f"no post in {csv_path} has the tags {include_tags!r} without {exclude_tags!r}")
    report = download(posts, images, rate_limit_per_s=rate_limit_per_s, progress=progress, **download_options)
    manifest = prepare_dataset("colors", images, out, size=size, extractor=extractor, progress=progress,
                               overwrite=overwrite)
    return report, manifest
