"""Builders for the three paired sources in ``../shared/data``: OpenMoji, DiceBear adventurer, Fluent Emoji.

Each ``iter_*`` function yields lightweight :class:`SourceRecord` objects (name, group, split and the SVG
bytes or paths); nothing is rasterised until :meth:`SourceRecord.load` is called, so listing a source or
counting its splits is cheap.

Split rule (fixed, group-aware, reproducible without linecolor)
----------------------------------------------------------------
Every record belongs to a *group*; all records of a group land in the same split::

    u = int.from_bytes(hashlib.sha256(f"{source}:{group}".encode("utf-8")).digest()[:8], "big") / 2**64
    split = "train" if u < 0.90 else "val" if u < 0.95 else "test"

``source`` is the lower-case source name (``openmoji``, ``dicebear``, ``fluent``; ``paired`` and
``colors`` for user folders prepared by :func:`linecolor.data.datasets.prepare_dataset`, whose group is the
file-name stem). Groups:

* OpenMoji: ``skintone_base_hexcode`` from ``package/data/openmoji.json``, falling back to ``hexcode``
  (a base emoji and its skin-tone variants share a split);
* DiceBear: the 5-digit id (each avatar its own group);
* Fluent: ``codepoint_group`` from ``manifest.csv`` (person/man/woman variants share a split).

Resulting split counts (records train/val/test, computed with :func:`split_counts` on the data of
``../shared/data``):

* OpenMoji 17.0.0 — 4,495 emoji in 2,465 groups: train 4,113 / val 215 / test 167;
* DiceBear adventurer — 3,000 avatars: train 2,718 / val 139 / test 143;
* Fluent Emoji — 1,543 emoji in 1,359 groups: train 1,402 / val 74 / test 67.

Pair conventions
----------------
:meth:`SourceRecord.load` rasterises both SVGs with cairosvg at ``size × size`` and composites them on
white. ``color``: uint8 ``(S, S, 3)`` RGB. ``lines``: uint8 ``(L, S, S)``, 255 paper, 0 ink, anti-aliased:

* style 0 (``"source"``): OpenMoji — the ``black/`` outline SVG rendered to grey (human-drawn lines);
  DiceBear — the ``_line.svg`` rendered to grey (exact designer ink); Fluent — :func:`flat_region_edges`
  of ``flat.svg`` (its alpha gives the silhouette), line width ``max(1, round(S / 128))`` px, paired with
  the gradient-shaded ``color.svg``;
* style 1 (``"xdog"``, when ``extra_xdog=True``, the default): :func:`xdog` of the colour image
  (grey, not binarised) — a second, classical line style at negligible cost (~1 ms at 128 px). On
  OpenMoji and DiceBear it resembles the real outline; on Fluent it is weaker (gradient shading, low
  contrast), which is the point of having diverse extractors.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from linecolor.data.names import SOURCES
from linecolor.data.pair import Pair
from linecolor.errors import InputImageError, LinecolorError
from linecolor.raster.lines import flat_region_edges, xdog

__all__ = [
    "DatasetError",
    "SOURCES",
    "SPLITS",
    "SPLIT_RULE",
    "SourceRecord",
    "assign_split",
    "iter_openmoji",
    "iter_dicebear",
    "iter_fluent",
    "iter_paired_svgs",
    "iter_source",
    "rasterize_svg",
    "split_counts",
]

SPLITS = ("train", "val", "test")
SPLIT_RULE = (
    "u = int.from_bytes(sha256(f'{source}:{group}'.encode('utf-8')).digest()[:8], 'big') / 2**64; "
    "split = 'train' if u < 0.90 else 'val' if u < 0.95 else 'test'"
)
_MAX_MEMBER_BYTES = 16 * 1024 * 1024  # no SVG or metadata file of OpenMoji comes near this
_MAX_SVG_BYTES = 8 * 1024 * 1024


class DatasetError(LinecolorError, ValueError):
    """A dataset source, folder or prepared directory is missing, malformed, foreign or empty."""


# ------------------------------------------------------------------------------------------ splits
def assign_split(source: str, group: str) -> str:
    """The split (``"train"``, ``"val"`` or ``"test"``) of ``group`` within ``source`` (see the module doc)."""
    digest = hashlib.sha256(f"{source}:{group}".encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < 0.90:
        return "train"
    if u < 0.95:
        return "val"
    return "test"


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


# ---------------------------------------------------------------------------------- rasterising
def rasterize_svg(svg: bytes, size: int, *, name: str = "SVG") -> tuple[np.ndarray, np.ndarray]:
    """Render an SVG at ``size × size`` with cairosvg and composite it on white.

    Args:
        svg: the SVG document's bytes.
        size: output width and height in pixels (the sources all have square view boxes).
        name: how error messages refer to this SVG.

    Returns:
        ``(rgb, alpha)``: uint8 ``(size, size, 3)`` RGB on white, uint8 ``(size, size)`` opacity (255 opaque).

    Raises:
        InputImageError: the SVG cannot be rendered (cairosvg raises many exception types — XML errors,
            cairo memory errors — so every failure is wrapped into this one).
    """
    import cairosvg  # imported lazily: cairo loading is not free and most of linecolor never needs it

    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise InputImageError(f"{name}: size must be a positive integer, got {size!r}")
    if len(svg) > _MAX_SVG_BYTES:
        raise InputImageError(f"{name}: SVG of {len(svg)} bytes is larger than the {_MAX_SVG_BYTES}-byte limit")
    try:
        png = cairosvg.svg2png(bytestring=svg, output_width=int(size), output_height=int(size))
        rgba = Image.open(io.BytesIO(png)).convert("RGBA")
    except Exception as exc:  # noqa: BLE001 — see Raises
        raise InputImageError(f"{name}: cairosvg could not render it ({type(exc).__name__}: {exc})") from exc
    if rgba.size != (size, size):  # cairosvg honours output_width/height; guard anyway
        rgba = rgba.resize((size, size), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    canvas.alpha_composite(rgba)
    rgb = np.asarray(canvas.convert("RGB"), dtype=np.uint8).copy()
    alpha = np.asarray(rgba, dtype=np.uint8)[..., 3].copy()
    return rgb, alpha


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb, "RGB").convert("L"), dtype=np.uint8).copy()


# ----------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class SourceRecord:
    """One line/colour pair of a source, not yet rasterised. Picklable (for worker processes).

    Attributes:
        source: ``"openmoji"``, ``"dicebear"`` or ``"fluent"``.
        name: the emoji hexcode / 5-digit avatar id / Fluent slug.
        group: the split group (see the module doc).
        split: ``"train"``, ``"val"`` or ``"test"``.
        color_svg: the colour SVG (``bytes``) or its path.
        line_svg: the line SVG (OpenMoji ``black/``, DiceBear ``_line``) or Fluent's ``flat.svg``; bytes or path.
    """

    source: str
    name: str
    group: str
    split: str
    color_svg: bytes | Path
    line_svg: bytes | Path

    def _bytes(self, ref: bytes | Path) -> bytes:
        if isinstance(ref, (bytes, bytearray)):
            return bytes(ref)
        try:
            return Path(ref).read_bytes()
        except OSError as exc:
            raise InputImageError(f"{self.source} {self.name}: cannot read {ref}: {exc}") from exc

    def load(self, size: int, *, extra_xdog: bool = True) -> Pair:
        """Rasterise the pair at ``size × size``.

        Args:
            size: side in pixels.
            extra_xdog: append XDoG of the colour image as a second line style.

        Returns:
            :class:`~linecolor.data.pair.Pair` with ``color`` uint8 ``(S, S, 3)`` and ``lines`` uint8
            ``(L, S, S)`` (L = 2 with ``extra_xdog``, else 1; 255 paper, 0 ink).

        Raises:
            InputImageError: an SVG cannot be read or rendered.
        """
        label = f"{self.source} {self.name}"
        color, _ = rasterize_svg(self._bytes(self.color_svg), size, name=f"{label} colour SVG")
        line_rgb, line_alpha = rasterize_svg(self._bytes(self.line_svg), size, name=f"{label} line SVG")
        if self.source == "fluent":
            line = flat_region_edges(line_rgb, line_alpha, thickness=max(1, round(size / 128)))
        else:
            line = _gray(line_rgb)
        styles = [line]
        if extra_xdog:
            styles.append(xdog(color))
        return Pair(color=color, lines=np.stack(styles, axis=0), name=self.name)


def _filter(records: list[SourceRecord], split: str | None) -> Iterator[SourceRecord]:
    for r in records:
        if split is None or r.split == split:
            yield r


# ---------------------------------------------------------------------------------------- OpenMoji
def iter_openmoji(tarball_path: str | Path, split: str | None = None) -> Iterator[SourceRecord]:
    """Pairs of the OpenMoji npm tarball (``openmoji-<version>.tgz``), read with :mod:`tarfile`, not extracted.

    The tarball is read in one sequential pass; only ``package/black/svg/*.svg``, ``package/color/svg/*.svg``
    and ``package/data/openmoji.json`` are kept (as bytes, a few kB each). Emoji present in only one of
    ``black/`` and ``color/`` have no pair and are not yielded.

    Args:
        tarball_path: path of the ``.tgz``.
        split: ``None`` for all records, else only ``"train"``, ``"val"`` or ``"test"``.

    Yields:
        :class:`SourceRecord` sorted by hexcode; ``line_svg`` = black outline SVG bytes, ``color_svg`` =
        colour SVG bytes; group = ``skintone_base_hexcode`` or else ``hexcode``.

    Raises:
        DatasetError: missing or unreadable tarball, no ``package/data/openmoji.json``, no pairs.
    """
    _check_split(split)
    yield from _filter(_openmoji_records(Path(tarball_path)), split)


def _openmoji_records(path: Path) -> list[SourceRecord]:
    if not path.is_file():
        raise DatasetError(f"OpenMoji tarball not found: {path}")
    black: dict[str, bytes] = {}
    color: dict[str, bytes] = {}
    meta_bytes: bytes | None = None
    try:
        with tarfile.open(path, mode="r:*") as tf:
            for member in tf:
                if not member.isfile():
                    continue
                parts = member.name.split("/")
                if len(parts) == 4 and parts[0] == "package" and parts[1] in ("black", "color") \
                        and parts[2] == "svg" and parts[3].lower().endswith(".svg"):
                    target = black if parts[1] == "black" else color
                elif member.name == "package/data/openmoji.json":
                    target = None
                else:
                    continue
                if member.size > _MAX_MEMBER_BYTES:
                    raise DatasetError(f"{path}: member {member.name} is {member.size} bytes, larger than expected")
                fh = tf.extractfile(member)
                if fh is None:
                    continue
                data = fh.read()
                if target is None:
                    meta_bytes = data
                else:
                    target[parts[3][:-4]] = data
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable tar archive ({exc})") from exc
    if meta_bytes is None:
        raise DatasetError(f"{path}: no package/data/openmoji.json — not an OpenMoji package tarball")
    try:
        meta = json.loads(meta_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: package/data/openmoji.json is not valid JSON ({exc})") from exc
    if not isinstance(meta, list):
        raise DatasetError(f"{path}: package/data/openmoji.json is not a list of emoji entries")
    groups: dict[str, str] = {}
    for entry in meta:
        if isinstance(entry, dict) and entry.get("hexcode"):
            hexcode = str(entry["hexcode"])
            groups[hexcode] = str(entry.get("skintone_base_hexcode") or hexcode)
    names = sorted(set(black) & set(color))
    if not names:
        raise DatasetError(f"{path}: no emoji with both package/black/svg and package/color/svg files")
    records = []
    for name in names:
        group = groups.get(name, name)
        records.append(SourceRecord("openmoji", name, group, assign_split("openmoji", group),
                                    color_svg=color[name], line_svg=black[name]))
    return records


# ---------------------------------------------------------------------------------------- DiceBear
def iter_dicebear(directory: str | Path, split: str | None = None) -> Iterator[SourceRecord]:
    """Pairs of the composed DiceBear adventurer folder: ``{id:05d}_line.svg`` ↔ ``{id:05d}_color.svg``.

    Args:
        directory: the ``dicebear-adventurer`` folder.
        split: ``None`` for all records, else one split name.

    Yields:
        :class:`SourceRecord` sorted by id; name = group = the 5-digit id; SVGs as paths.

    Raises:
        DatasetError: missing folder, no pairs, or a line SVG without a colour SVG (or vice versa),
            listed by id.
    """
    _check_split(split)
    yield from _filter(_dicebear_records(Path(directory)), split)


def _dicebear_records(root: Path) -> list[SourceRecord]:
    return _paired_svg_records(root, "dicebear")


def iter_paired_svgs(source: str, directory: str | Path, split: str | None = None) -> Iterator[SourceRecord]:
    """Pairs of a composed avatar folder, ``{id:05d}_line.svg`` ↔ ``{id:05d}_color.svg`` (``bigheads``: the
    @bigheads/core avatars; ``toonhead``: the DiceBear ToonHead avatars; ``dicebear``: the Adventurer ones).

    The split group is the ``line_group`` column of the folder's ``manifest.csv`` where it has one (avatars that
    share a line drawing stay in one split), else the id.

    Raises:
        DatasetError: missing folder, no pairs, a line SVG without a colour SVG (or vice versa), listed by id.
    """
    _check_split(split)
    yield from _filter(_paired_svg_records(Path(directory), source), split)


def _line_groups(root: Path) -> dict[str, str]:
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        return {}
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "line_group" not in rows[0]:
        return {}
    return {f"{int(r['id']):05d}": f"{int(r['line_group']):05d}" for r in rows if r.get("id") and r.get("line_group")}


def _paired_svg_records(root: Path, source: str) -> list[SourceRecord]:
    if not root.is_dir():
        raise DatasetError(f"{source} folder not found: {root}")
    lines = {p.name[: -len("_line.svg")]: p for p in root.glob("*_line.svg")}
    colors = {p.name[: -len("_color.svg")]: p for p in root.glob("*_color.svg")}
    unpaired = sorted(set(lines) ^ set(colors))
    if unpaired:
        raise DatasetError(f"{root}: {len(unpaired)} {source} ids lack a line or colour SVG: "
                           f"{', '.join(unpaired[:20])}{' …' if len(unpaired) > 20 else ''}")
    if not lines:
        raise DatasetError(f"{root}: no *_line.svg / *_color.svg pairs — not a {source} folder")
    groups = _line_groups(root)
    return [SourceRecord(source, i, groups.get(i, i), assign_split(source, groups.get(i, i)), color_svg=colors[i],
                         line_svg=lines[i]) for i in sorted(lines)]


# ------------------------------------------------------------------------------------------ Fluent
def iter_fluent(directory: str | Path, split: str | None = None) -> Iterator[SourceRecord]:
    """Pairs of the Fluent Emoji folder: ``{slug}/flat.svg`` (lines derived) ↔ ``{slug}/color.svg``.

    Rows of ``manifest.csv`` with ``cairosvg_ok`` other than 1 are left out (none in the shipped data).

    Args:
        directory: the ``fluent-emoji`` folder (with ``manifest.csv``).
        split: ``None`` for all records, else one split name.

    Yields:
        :class:`SourceRecord` sorted by slug; group = ``codepoint_group``; ``line_svg`` = the flat SVG path.

    Raises:
        DatasetError: missing folder or manifest, manifest without the needed columns, missing SVG files.
    """
    _check_split(split)
    yield from _filter(_fluent_records(Path(directory)), split)


def _fluent_records(root: Path) -> list[SourceRecord]:
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise DatasetError(f"Fluent Emoji manifest not found: {manifest}")
    with manifest.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing_cols = {"slug", "codepoint_group"} - set(reader.fieldnames or ())
        if missing_cols:
            raise DatasetError(f"{manifest}: missing column(s) {', '.join(sorted(missing_cols))}")
        rows = [r for r in reader if r.get("cairosvg_ok", "1").strip() in ("1", "")]
    records, missing = [], []
    for row in sorted(rows, key=lambda r: r["slug"]):
        slug = row["slug"]
        flat, color = root / slug / "flat.svg", root / slug / "color.svg"
        if not (flat.is_file() and color.is_file()):
            missing.append(slug)
            continue
        group = row["codepoint_group"] or slug
        records.append(SourceRecord("fluent", slug, group, assign_split("fluent", group),
                                    color_svg=color, line_svg=flat))
    if missing:
        raise DatasetError(f"{root}: {len(missing)} manifest rows lack flat.svg or color.svg: "
                           f"{', '.join(missing[:20])}{' …' if len(missing) > 20 else ''}")
    if not records:
        raise DatasetError(f"{manifest}: no usable rows")
    return records


# ----------------------------------------------------------------------------------------- helpers
def iter_source(source: str, path: str | Path, split: str | None = None) -> Iterator[SourceRecord]:
    """Dispatch to :func:`iter_openmoji`, :func:`iter_dicebear`, :func:`iter_fluent` or
    :func:`iter_paired_svgs` (``bigheads``, ``toonhead``) by name."""
    if source == "openmoji":
        return iter_openmoji(path, split)
    if source == "dicebear":
        return iter_dicebear(path, split)
    if source == "fluent":
        return iter_fluent(path, split)
    if source in ("bigheads", "toonhead"):
        return iter_paired_svgs(source, path, split)
    raise DatasetError(f"unknown source {source!r}; valid sources: {', '.join(SOURCES)}")


def split_counts(source: str, path: str | Path) -> dict[str, int]:
    """Number of records per split of a source (no rasterising; OpenMoji reads its tarball once, ~1 s).

    Returns:
        ``{"train": n, "val": n, "test": n, "groups": number of distinct groups}``.
    """
    counts = Counter({s: 0 for s in SPLITS})
    groups = set()
    for record in iter_source(source, path):
        counts[record.split] += 1
        groups.add(record.group)
    return {**{s: counts[s] for s in SPLITS}, "groups": len(groups)}
