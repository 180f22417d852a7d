"""Layered results: the colouring as separate layers an artist finishes in Krita, GIMP or Photoshop.

A :class:`LayeredImage` is a stack of full-size uint8 layers, bottom first, each with a blend mode (``normal``,
``multiply`` or ``screen``: the three every program reads the same way) and a visibility. :meth:`LayeredImage.flatten`
composites the visible ones in 8-bit integer arithmetic, with the same rounding as
:func:`linecolor.raster.colouring.multiply_lines`, so the flattened stack equals the PNG output exactly where no
shading is involved. :func:`write_layered` writes it as OpenRaster (``.ora``, the open format Krita, GIMP and
MyPaint share) or Photoshop (``.psd``, via psd-tools, which GIMP, Krita, Clip Studio and Photoshop read).

OpenRaster is written here by hand: it is a zip of PNGs and one XML file (https://www.openraster.org/), and no
maintained Python library writes it. PSD is written with psd-tools, whose composite is also the independent check
of our flattening in the tests.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image

from linecolor.errors import LinecolorError
from linecolor.raster.imageio import write_atomically

__all__ = ["BLEND_MODES", "LAYERED_SUFFIXES", "Layer", "LayeredImage", "shading_layers", "write_layered"]

BLEND_MODES = ("normal", "multiply", "screen")
"""Blend modes a :class:`Layer` may use."""
LAYERED_SUFFIXES = {".ora": "OpenRaster", ".psd": "Photoshop"}
"""File suffixes :func:`write_layered` writes, and the format each names."""

ORA_MIMETYPE = b"image/openraster"
ORA_THUMBNAIL_SIDE = 256  # the spec's largest thumbnail side
_ORA_OPS = {"normal": "svg:src-over", "multiply": "svg:multiply", "screen": "svg:screen"}


@dataclass(frozen=True)
class Layer:
    """One layer: ``pixels`` uint8 (H, W, 3) or (H, W, 4) (RGBA: straight alpha), drawn with ``blend``."""

    name: str
    pixels: np.ndarray
    blend: str = "normal"
    visible: bool = True

    def __post_init__(self) -> None:
        if self.blend not in BLEND_MODES:
            raise ValueError(f"blend must be one of {', '.join(BLEND_MODES)}, got {self.blend!r}")
        if self.pixels.dtype != np.uint8 or self.pixels.ndim != 3 or self.pixels.shape[2] not in (3, 4):
            raise ValueError(f"layer {self.name!r}: pixels must be uint8 (H, W, 3|4), got {self.pixels.dtype} "
                             f"{self.pixels.shape}")


@dataclass(frozen=True)
class LayeredImage:
    """A stack of same-size layers, bottom first."""

    layers: tuple[Layer, ...]

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("a layered image needs at least one layer")
        shapes = {layer.pixels.shape[:2] for layer in self.layers}
        if len(shapes) != 1:
            raise ValueError(f"all layers must have one size, got {sorted(shapes)}")
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must differ, got {names}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        h, w = self.layers[0].pixels.shape[:2]
        return w, h

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r}; the layers are {', '.join(self.names)}")

    def flatten(self) -> np.ndarray:
        """uint8 (H, W, 3): the visible layers composited bottom to top over white paper."""
        w, h = self.size
        out = np.full((h, w, 3), 255, np.uint16)
        for layer in self.layers:
            if not layer.visible:
                continue
            src = layer.pixels[..., :3].astype(np.uint16)
            if layer.blend == "multiply":
                blended = (out * src + 127) // 255
            elif layer.blend == "screen":
                blended = 255 - ((255 - out) * (255 - src) + 127) // 255
            else:
                blended = src
            if layer.pixels.shape[2] == 4:
                alpha = layer.pixels[..., 3:].astype(np.uint16)
                blended = (blended * alpha + out * (255 - alpha) + 127) // 255
            out = blended
        return out.astype(np.uint8)


def shading_layers(base: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split the difference between flat colours ``base`` and a shaded ``target`` (both uint8 (H, W, 3)) into a
    ``multiply`` layer (the shadows) and a ``screen`` layer above it (the highlights), so that base × shadows
    screened with highlights equals ``target`` within about one level per channel.

    Multiply alone can only darken and screen alone only lighten; a network's shading does both, and the pair is
    exact while each stays a blend mode every program implements identically.
    """
    b = base.astype(np.float64)
    t = target.astype(np.float64)
    darker = t < b
    shadows = np.full(base.shape, 255, np.uint8)
    shadows[darker] = np.clip(np.rint(255.0 * t[darker] / b[darker]), 0, 255).astype(np.uint8)
    after = (base.astype(np.uint16) * shadows + 127) // 255  # what the multiply leaves, rounded as flatten() does
    a = after.astype(np.float64)
    lighter = t > a
    highlights = np.zeros(base.shape, np.uint8)
    highlights[lighter] = np.clip(np.rint(255.0 - 255.0 * (255.0 - t[lighter]) / (255.0 - a[lighter])), 0,
                                  255).astype(np.uint8)
    return shadows, highlights


def write_layered(image: LayeredImage, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``image`` as OpenRaster or PSD (by the suffix, :data:`LAYERED_SUFFIXES`), under a temporary name
    renamed into place (an interrupted write never leaves half a file).

    Raises:
        LinecolorError: an unknown suffix, ``path`` is a folder, exists and ``overwrite`` is false, or cannot be
            written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in LAYERED_SUFFIXES:
        raise LinecolorError(f"a layered output must end in {' or '.join(LAYERED_SUFFIXES)}, got {path}")
    if path.is_dir():
        raise LinecolorError(f"output {path} is a folder, not a file name")
    if path.exists() and not overwrite:
        raise LinecolorError(f"output {path} already exists; it is not replaced unless asked (--overwrite)")
    data = layered_bytes(image, suffix)
    return write_atomically(path, lambda tmp: tmp.write_bytes(data))


def layered_bytes(image: LayeredImage, suffix: str) -> bytes:
    """The file contents of ``image`` in the format of ``suffix`` (``.ora`` or ``.psd``)."""
    if suffix == ".ora":
        return _ora_bytes(image)
    if suffix == ".psd":
        return _psd_bytes(image)
    raise LinecolorError(f"a layered output must end in {' or '.join(LAYERED_SUFFIXES)}, got {suffix!r}")


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _ora_bytes(image: LayeredImage) -> bytes:
    """OpenRaster 0.0.5: ``mimetype`` first and stored (so ``file`` recognises it), ``stack.xml`` listing the
    layers top first, one PNG per layer, ``mergedimage.png`` and a thumbnail."""
    w, h = image.size
    merged = image.flatten()
    thumbnail = Image.fromarray(merged)
    thumbnail.thumbnail((ORA_THUMBNAIL_SIDE, ORA_THUMBNAIL_SIDE))
    entries = []
    for index, layer in enumerate(reversed(image.layers)):
        entries.append(
            f'  <layer name={quoteattr(layer.name)} src="data/layer{index}.png" x="0" y="0" opacity="1.0" '
            f'visibility="{"visible" if layer.visible else "hidden"}" composite-op="{_ORA_OPS[layer.blend]}"/>')
    stack = (f'<?xml version="1.0" encoding="UTF-8"?>\n<image version="0.0.5" w="{w}" h="{h}" xres="72" yres="72">\n'
             f' <stack>\n' + "\n".join(entries) + "\n </stack>\n</image>\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), ORA_MIMETYPE, compress_type=zipfile.ZIP_STORED)
        zf.writestr("stack.xml", stack)
        for index, layer in enumerate(reversed(image.layers)):
            zf.writestr(f"data/layer{index}.png", _png(layer.pixels), compress_type=zipfile.ZIP_STORED)
        zf.writestr("mergedimage.png", _png(merged), compress_type=zipfile.ZIP_STORED)
        thumb = io.BytesIO()
        thumbnail.save(thumb, format="PNG")
        zf.writestr("Thumbnails/thumbnail.png", thumb.getvalue(), compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()


def _psd_bytes(image: LayeredImage) -> bytes:
    """A PSD with one pixel layer per layer (blend mode and visibility kept) and our flattening as its merged
    image (what viewers and thumbnails show)."""
    from psd_tools import PSDImage
    from psd_tools.api.layers import PixelLayer
    from psd_tools.constants import BlendMode

    modes = {"normal": BlendMode.NORMAL, "multiply": BlendMode.MULTIPLY, "screen": BlendMode.SCREEN}
    psd = PSDImage.new("RGB", image.size, color=(255, 255, 255))
    for layer in image.layers:
        pil = Image.fromarray(layer.pixels)
        pixel_layer = PixelLayer.frompil(pil, psd, layer.name)
        pixel_layer.blend_mode = modes[layer.blend]
        pixel_layer.visible = layer.visible
        psd.append(pixel_layer)
    buffer = io.BytesIO()
    psd.save(buffer)
    return buffer.getvalue()
