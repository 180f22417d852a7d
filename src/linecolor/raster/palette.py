"""Palettes: GIMP palette files (``.gpl``, also read by Krita and Inkscape) and snapping colours to a palette.

A palette is a named list of named RGB colours. With a palette, the colours linecolor suggests for regions
without hints become the palette colour nearest to the suggestion (CIEDE2000, scikit-image), so a page stays in
the artist's colours.

:func:`image_colours` finds the main colours of a picture (reference mode borrows them).

The ``.gpl`` format (GIMP's ``gimppalette-load.c``): a first line ``GIMP Palette``, optional ``Name:`` and
``Columns:`` lines, ``#`` comments, then one colour per line: three integers 0–255 and an optional name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab

from linecolor.errors import LinecolorError
from linecolor.limits import MAX_PALETTE_COLOURS, MAX_PALETTE_FILE_BYTES
from linecolor.raster.imageio import write_atomically

__all__ = ["Palette", "image_colours", "outline_radius", "read_gpl", "write_gpl"]

IMAGE_COLOURS = 8
"""At most this many main colours of a picture (:func:`image_colours`)."""
IMAGE_COLOUR_MIN_SHARE = 0.02
"""A main colour covers at least this share of the picture: anti-aliased edges and specks are not main colours."""
IMAGE_COLOUR_SIDE = 96
"""Pictures are scaled down to at most this many pixels a side before their colours are clustered (a 4K photo's
main colours are its thumbnail's; clustering 16 M pixels would take seconds)."""
GPL_HEADER = "GIMP Palette"


def outline_radius(long_side: int) -> int:
    """The disk :func:`~linecolor.raster.lines.drawn_outlines` uses on a picture ``long_side`` px long: its default
    on the thumbnail :func:`image_colours` reads, scaled up with the picture (11 px at 512)."""
    from linecolor.raster.lines import OUTLINE_RADIUS

    return max(OUTLINE_RADIUS, round(OUTLINE_RADIUS * long_side / IMAGE_COLOUR_SIDE))
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


@dataclass(frozen=True)
class Palette:
    """``colours`` (k, 3) uint8 RGB with one name each (may be empty), k in 1…:data:`MAX_PALETTE_COLOURS`."""

    colours: np.ndarray
    names: tuple[str, ...]
    name: str = "linecolor"

    def __post_init__(self) -> None:
        k = len(self.colours)
        if not 1 <= k <= MAX_PALETTE_COLOURS:
            raise LinecolorError(f"a palette needs 1 to {MAX_PALETTE_COLOURS} colours, got {k}")
        if self.colours.shape != (k, 3) or self.colours.dtype != np.uint8 or len(self.names) != k:
            raise ValueError("colours must be uint8 (k, 3) with k names")

    @classmethod
    def from_hex(cls, colours: Sequence[str], name: str = "linecolor") -> "Palette":
        """From ``"#rrggbb"`` strings (the API's and the studio's form)."""
        if isinstance(colours, (str, bytes)) or not isinstance(colours, Sequence):
            raise LinecolorError("a palette must be a list of \"#rrggbb\" colours")
        rgb = []
        for c in colours[:MAX_PALETTE_COLOURS + 1]:
            m = _HEX.fullmatch(c.strip()) if isinstance(c, str) else None
            if m is None:
                raise LinecolorError(f"palette colours must be \"#rrggbb\", got {str(c)[:40]!r}")
            rgb.append([int(m.group(1)[i:i + 2], 16) for i in (0, 2, 4)])
        return cls(np.array(rgb, np.uint8).reshape(-1, 3), ("",) * len(rgb), name)

    def hex(self) -> list[str]:
        return ["#%02x%02x%02x" % tuple(int(v) for v in c) for c in self.colours]

    def nearest(self, rgb: np.ndarray) -> np.ndarray:
        """float32 (m, 3): the palette colour nearest to each of ``rgb`` (m, 3) in [0, 255] by CIEDE2000."""
        lab = rgb2lab(np.clip(np.asarray(rgb, np.float64), 0, 255)[:, None, :] / 255.0)  # (m, 1, 3)
        own = rgb2lab(self.colours[None, :, :].astype(np.float64) / 255.0)  # (1, k, 3)
        distance = deltaE_ciede2000(np.broadcast_to(lab, (len(lab), len(self.colours), 3)),
                                    np.broadcast_to(own, (len(lab), len(self.colours), 3)))
        return self.colours[np.argmin(distance, axis=1)].astype(np.float32)


def read_gpl(source: str | Path) -> Palette:
    """Read a GIMP palette file.

    Raises:
        LinecolorError: not a GIMP palette, a malformed colour line (named by its number), no colours or too many,
            or a file over :data:`MAX_PALETTE_FILE_BYTES`.
    """
    path = Path(source)
    try:
        if path.stat().st_size > MAX_PALETTE_FILE_BYTES:
            raise LinecolorError(f"{path}: a palette file must be under {MAX_PALETTE_FILE_BYTES // 1024} KiB")
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise LinecolorError(f"cannot read the palette {path}: {exc.strerror or exc}") from exc
    return parse_gpl(text, str(path))


def parse_gpl(text: str, where: str = "palette") -> Palette:
    """A :class:`Palette` from the text of a ``.gpl`` file (see :func:`read_gpl`)."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != GPL_HEADER:
        raise LinecolorError(f"{where}: not a GIMP palette (the first line must be {GPL_HEADER!r})")
    name, colours, names = Path(where).stem, [], []
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("Name:"):
            name = line[5:].strip() or name
            continue
        if line.startswith("Columns:"):
            continue
        parts = line.split(None, 3)
        try:
            rgb = [int(v) for v in parts[:3]]
        except ValueError:
            rgb = []
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise LinecolorError(f"{where}, line {number}: expected 'R G B [name]' with 0–255, got {line[:60]!r}")
        colours.append(rgb)
        names.append(parts[3].strip() if len(parts) > 3 else "")
        if len(colours) > MAX_PALETTE_COLOURS:
            raise LinecolorError(f"{where}: more than {MAX_PALETTE_COLOURS} colours")
    if not colours:
        raise LinecolorError(f"{where}: the palette has no colours")
    return Palette(np.array(colours, np.uint8), tuple(names), name)


def gpl_text(palette: Palette) -> str:
    """The ``.gpl`` text of ``palette`` (what :func:`parse_gpl` reads back to the same palette)."""
    rows = [GPL_HEADER, f"Name: {palette.name}", "Columns: 8", "#"]
    for (r, g, b), label in zip(palette.colours.tolist(), palette.names):
        rows.append(f"{r:3d} {g:3d} {b:3d}" + (f"\t{label}" if label else ""))
    return "\n".join(rows) + "\n"


def write_gpl(palette: Palette, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``palette`` as a GIMP palette file (atomically; an existing file only with ``overwrite``)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise LinecolorError(f"{path} already exists; it is not replaced unless asked (--overwrite)")
    text = gpl_text(palette)
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def image_colours(rgb: np.ndarray, count: int = IMAGE_COLOURS, min_share: float = IMAGE_COLOUR_MIN_SHARE,
                  seed: int = 0) -> np.ndarray:
    """uint8 (k, 3), k ≤ ``count``: the main colours of the picture ``rgb`` (uint8 (H, W, 3)), most of it first —
    each covering at least ``min_share`` of it. Its inked outlines (:func:`~linecolor.raster.lines.drawn_outlines`
    on the thumbnail) are not among its colours: a coloured drawing's black lines cover 4–10 % of it, and reference
    mode would otherwise turn unhinted regions dark. A picture of at most ``count`` distinct colours (flat art
    without anti-aliasing) gives those colours exactly; any other, the centres of ``count`` k-means clusters in
    CIELAB (scipy, seeded: the same picture gives the same colours)."""
    from PIL import Image
    from scipy.cluster.vq import kmeans2
    from skimage.color import lab2rgb

    from linecolor.raster.lines import drawn_outlines

    small = Image.fromarray(np.ascontiguousarray(rgb, np.uint8), "RGB")
    small.thumbnail((IMAGE_COLOUR_SIDE, IMAGE_COLOUR_SIDE), Image.Resampling.NEAREST)  # no blended in-betweens
    thumbnail = np.asarray(small)
    outlines = drawn_outlines(thumbnail)
    pixels = thumbnail[~outlines] if not outlines.all() else thumbnail.reshape(-1, 3)
    distinct, counts = np.unique(pixels, axis=0, return_counts=True)
    if len(distinct) <= count:
        colours, shares = distinct, counts / counts.sum()
    else:
        lab = rgb2lab(pixels[None].astype(np.float64) / 255.0)[0]
        centres, assigned = kmeans2(lab, count, seed=seed, minit="++")
        shares = np.bincount(assigned, minlength=count) / len(assigned)
        colours = np.clip(np.rint(lab2rgb(centres[None])[0] * 255.0), 0, 255).astype(np.uint8)
    order = np.argsort(-shares, kind="stable")
    return colours[order][shares[order] >= min_share]
