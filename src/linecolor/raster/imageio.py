"""Safe image opening shared by the pipeline, the CLI, the datasets and the server.

Only PNG, JPEG and WebP are ever opened (format-specific decoders are where Pillow's bomb and
memory CVEs live), and the declared pixel count is checked against a cap *before* any pixel is
decoded, so a 30000×30000 PNG of a few kilobytes is refused without allocating its buffer.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from linecolor.errors import ImageTooLarge, InputImageError, UnsupportedImageFormat
from linecolor.limits import IMAGE_FORMATS, MAX_IMAGE_PIXELS

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


def open_image(source: str | Path | bytes | BinaryIO | Image.Image, *, max_pixels: int = MAX_IMAGE_PIXELS,
               name: str = "image") -> Image.Image:
    """Open and fully decode an image, refusing other formats and oversized images with a clear error.

    Args:
        source: a path, raw bytes, a binary file object, or an already-open PIL image (returned as is after the
            size check).
        max_pixels: largest accepted width × height, checked on the header before decoding.
        name: how the error messages refer to this input (e.g. ``"line image"``).

    Returns:
        A loaded PIL image in its original mode.

    Raises:
        InputImageError: missing file, empty or undecodable data.
        UnsupportedImageFormat: not PNG, JPEG or WebP.
        ImageTooLarge: more than ``max_pixels`` pixels.
    """
    if isinstance(source, Image.Image):
        _check_size(source.size, max_pixels, name)
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise InputImageError(f"{name}: file not found: {path}")
        if not path.is_file():
            raise InputImageError(f"{name}: not a file: {path}")
        data = path.read_bytes()
        label = f"{name} ({path})"
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name
    else:
        data = source.read()
        label = name
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
            _check_size(image.size, max_pixels, label)
            image.load()
    except (ImageTooLarge, UnsupportedImageFormat):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"{label}: image too large: more than the limit of {max_pixels} pixels ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputImageError(f"{label}: not a decodable image ({exc})") from exc
    return image


def _check_size(size: tuple[int, int], max_pixels: int, label: str) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise InputImageError(f"{label}: image has no pixels ({w}×{h})")
    if w * h > max_pixels:
        raise ImageTooLarge(f"{label}: {w}×{h} = {w * h} pixels is more than the limit of {max_pixels} pixels")


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
