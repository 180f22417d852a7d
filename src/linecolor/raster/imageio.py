"""Safe image opening shared by the pipeline, the CLI, the datasets and the server.

Only PNG, JPEG and WebP are ever opened (format-specific decoders are where Pillow's bomb and
memory CVEs live), and the cost of decoding is bounded before any pixel is decoded: a file is refused
before it is read when it is larger than any legal image could be, the declared pixel count is checked
against a cap (a 30000×30000 PNG of a few kilobytes is refused without allocating its buffer), and a
JPEG's scans are counted (a progressive JPEG re-decodes the whole image once per scan, so a few hundred
kilobytes of repeated scans could keep a worker busy for minutes). Images are turned upright by their
EXIF orientation, as browsers and image viewers show them, so hint coordinates refer to what the user
sees.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Callable

from PIL import Image, ImageOps, UnidentifiedImageError

from linecolor.errors import ImageTooLarge, InputImageError, LinecolorError, UnsupportedImageFormat
from linecolor.limits import IMAGE_FORMATS, MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS, MAX_JPEG_SCANS

# Magic numbers of the formats we open; anything else is refused before Pillow sees it.
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
}


def sniff_format(head: bytes) -> str | None:
    """The image format named by the first bytes, or ``None`` for anything linecolor does not open."""
    fmt = next((f for sig, f in _SIGNATURES.items() if head.startswith(sig)), None)
    if fmt is None and len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        fmt = "WEBP"
    return fmt if fmt in IMAGE_FORMATS else None


ImageInput = str | Path | bytes | BinaryIO | Image.Image
"""What :func:`open_image` (and so every image argument of the pipeline) takes."""


def open_image(source: ImageInput, *, max_pixels: int = MAX_IMAGE_PIXELS,
               name: str = "image") -> Image.Image:
    """Open and fully decode an image, refusing other formats and oversized images with a clear error.

    Args:
        source: a path, raw bytes, a binary file object, or an already-open PIL image (returned as is after the
            size check).
        max_pixels: largest accepted width × height, checked on the header before decoding.
        name: how the error messages refer to this input (e.g. ``"line image"``).

    Returns:
        A loaded PIL image in its original mode, upright by its EXIF orientation (an already-open image is
        returned as given: its caller decided how to open it).

    Raises:
        InputImageError: missing file, empty or undecodable data.
        UnsupportedImageFormat: not PNG, JPEG or WebP.
        ImageTooLarge: more than ``max_pixels`` pixels, a file over
            :data:`~linecolor.limits.MAX_IMAGE_FILE_BYTES`, or a JPEG of more than
            :data:`~linecolor.limits.MAX_JPEG_SCANS` scans.
    """
    if isinstance(source, Image.Image):
        check_size(source.size, max_pixels, name)
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise InputImageError(f"{name}: file not found: {path}")
        if not path.is_file():
            raise InputImageError(f"{name}: not a file: {path}")
        label = f"{name} ({path})"
        try:
            size = path.stat().st_size
            _check_file_size(size, label)
            data = path.read_bytes()
        except OSError as exc:
            raise InputImageError(f"{label}: cannot be read ({exc.strerror or exc})") from exc
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name
    else:
        data = source.read(MAX_IMAGE_FILE_BYTES + 1)
        label = name
    _check_file_size(len(data), label)
    if not data:
        raise InputImageError(f"{label}: empty file, not a decodable image")
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise UnsupportedImageFormat(f"{label}: not a PNG, JPEG or WebP image (only these formats are opened)")
    try:
        with warnings.catch_warnings():
            # Pillow only *warns* between MAX_IMAGE_PIXELS and twice that; our own cap below is stricter anyway.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[fmt])
            check_size(image.size, max_pixels, label)
            if fmt == "JPEG":
                _check_jpeg_scans(data, label)
            image.load()
            image = _upright(image)
    except (ImageTooLarge, UnsupportedImageFormat):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"{label}: image too large: more than the limit of {max_pixels} pixels ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputImageError(f"{label}: not a decodable image ({exc})") from exc
    return image


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of an image linecolor would open, without decoding any pixel; ``None`` for
    anything else (the real open reports what is wrong)."""
    fmt = sniff_format(data[:16])
    if fmt is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=[fmt]) as image:
                return image.size
    except Exception:  # noqa: BLE001 — a header Pillow cannot read: the caller falls back to a default
        return None


def _check_file_size(size: int, label: str) -> None:
    if size > MAX_IMAGE_FILE_BYTES:
        raise ImageTooLarge(f"{label}: the file is larger than {MAX_IMAGE_FILE_BYTES // 2**20} MiB, more than any "
                            "image within the pixel limit needs; it was not read")


def count_jpeg_scans(data: bytes) -> int:
    """Start-of-scan (SOS) segments in a JPEG stream, counted by walking its segments, without decoding.

    Inside entropy-coded data a 0xFF byte is always followed by 0x00 (stuffing) or a restart marker (0xD0–0xD7),
    so the next other 0xFF xx is the next segment. A baseline JPEG has one scan per frame, a progressive one
    typically 6–12. (Neither Pillow nor libjpeg exposes the scan count before decoding, hence this walk.)
    """
    scans, i, n = 0, 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            i += 1  # garbage between segments: decoders skip it too
            continue
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:  # end of image
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # stand-alone markers
            i += 2
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        i += 2 + length
        if marker == 0xDA:
            scans += 1
            # Entropy-coded data follows the SOS header: find the next marker that is not stuffing or a restart.
            while True:
                i = data.find(b"\xff", i)
                if i < 0 or i + 1 >= n:
                    return scans
                follower = data[i + 1]
                if follower == 0x00 or 0xD0 <= follower <= 0xD7 or follower == 0xFF:
                    i += 1 if follower == 0xFF else 2
                    continue
                break
    return scans


def _check_jpeg_scans(data: bytes, label: str) -> None:
    scans = count_jpeg_scans(data)
    if scans > MAX_JPEG_SCANS:
        raise ImageTooLarge(f"{label}: a JPEG of {scans} scans is more than the limit of {MAX_JPEG_SCANS} (each scan "
                            "decodes the whole image again); save it as a baseline or ordinary progressive JPEG")


def _upright(image: Image.Image) -> Image.Image:
    """The image turned by its EXIF orientation (tag 274), as viewers show it; unchanged without one.

    A damaged EXIF block is not the user's problem: the image is kept as stored rather than refused."""
    try:
        orientation = image.getexif().get(274, 1)
    except Exception:  # noqa: BLE001 — Pillow raises many types on malformed EXIF; the pixels are still good
        return image
    if orientation in (None, 1) or not isinstance(orientation, int) or not 1 <= orientation <= 8:
        return image
    upright = ImageOps.exif_transpose(image)
    return upright if upright is not None else image


def check_size(size: tuple[int, int], max_pixels: int, label: str) -> None:
    """Refuse a (width, height) with no pixels or more than ``max_pixels`` (``label`` names the input)."""
    w, h = size
    if w < 1 or h < 1:
        raise InputImageError(f"{label}: image has no pixels ({w}×{h})")
    if w * h > max_pixels:
        raise ImageTooLarge(f"{label}: {w}×{h} = {w * h} pixels is more than the limit of {max_pixels} pixels")


SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def save_image(image: Image.Image, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``image`` to ``path`` (format from the suffix) without ever leaving a partial or clobbered file.

    The image is written under a temporary name beside ``path`` and renamed into place, so an interrupted write
    leaves the old file (or none), never half an image.

    Raises:
        LinecolorError: ``path`` is a folder, has no image suffix, already exists and ``overwrite`` is false, or
            cannot be written (the message names the OS's reason: permission, read-only, disk full).
    """
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise LinecolorError(f"output {path} must end in {', '.join(SAVE_FORMATS)}")
    if path.is_dir():
        raise LinecolorError(f"output {path} is a folder, not an image file name")
    if path.exists() and not overwrite:
        raise LinecolorError(f"output {path} already exists; it is not replaced unless asked (--overwrite)")
    return write_atomically(path, lambda tmp: (image.convert("RGB") if fmt == "JPEG" and image.mode != "RGB"
                                               else image).save(tmp, format=fmt))


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary name beside ``path`` and rename the result into place: an interrupted
    write leaves the old file (or none), never half a file.

    Raises:
        LinecolorError: the file cannot be written (the message names the OS's reason).
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # the folder itself is unwritable or gone: nothing was left there
        raise LinecolorError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any mode → RGB, compositing transparency onto ``background`` (line art is drawn on white paper)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit/32-bit greyscale: scale to 8 bit rather than clip (Pillow's convert("L") clips to 255).
        import numpy as np

        arr = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, background + (255,))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return image.convert("RGB")


def to_gray(image: Image.Image) -> Image.Image:
    """Any mode → 8-bit greyscale ``L`` on white paper."""
    return to_rgb(image).convert("L")
