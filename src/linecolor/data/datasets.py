"""Pair sources (folders, prepared arrays) and the compact prepared dataset format.

A *pair* is a colour image with one or more line-art renderings of it (:class:`Pair`). Anything with
``__len__`` and ``__getitem__(i) -> Pair`` is a :class:`PairSource`:

* :class:`PairedFolder` — your own colour images with matching line art;
* :class:`ColorFolder` — colour images only, lines extracted on the fly (XDoG or flat-region edges);
* :class:`PreparedArrays` — one split of a directory written by :func:`prepare_dataset`.

Prepared format (``format_version`` 1)
--------------------------------------
``prepare_dataset`` writes a directory::

    out_dir/manifest.json
    out_dir/<split>/color.npy    uint8 (N, S, S, 3)   RGB, letterboxed on white
    out_dir/<split>/line.npy     uint8 (N, L, S, S)   L line styles, 255 paper, 0 ink (grey anti-aliasing kept)
    out_dir/<split>/names.json   JSON list of the N item names (row order of the arrays)
    out_dir/<split>/groups.json  JSON list of the N split groups

for each split in ``train``, ``val``, ``test`` (a split may have N = 0). ``manifest.json``::

    {"format": "linecolor-prepared", "format_version": 1,
     "source": "openmoji" | "dicebear" | "fluent" | "paired" | "colors",
     "size": S, "num_line_styles": L, "line_styles": [L style names],
     "splits": {"train": n, "val": n, "test": n},
     "skipped": n, "skipped_items": [{"name": ..., "reason": ...}, ...  (at most 100)],
     "split_rule": "<the rule in words>", "linecolor_version": "..."}

Arrays are plain ``.npy`` files, read with ``numpy.load(mmap_mode="r")`` so training touches only the rows
it uses. Splits follow :func:`linecolor.data.sources.assign_split` (sha256 of ``"{source}:{group}"``); for
``paired``/``colors`` folders the group is the file-name stem.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from linecolor.data.pair import Pair, PairSource
from linecolor.data.sources import (
    SOURCES,
    SPLIT_RULE,
    SPLITS,
    DatasetError,
    SourceRecord,
    assign_split,
    iter_source,
)
from linecolor.errors import InputImageError, LinecolorError
from linecolor.limits import MAX_IMAGE_PIXELS
from linecolor.raster.imageio import open_image, to_gray, to_rgb
from linecolor.raster.lines import flat_region_edges, xdog

__all__ = [
    "Pair",
    "PairSource",
    "PairedFolder",
    "ColorFolder",
    "PreparedArrays",
    "DatasetError",
    "fit_pair",
    "prepare_dataset",
    "FORMAT",
    "FORMAT_VERSION",
    "IMAGE_EXTENSIONS",
    "PREPARE_SOURCES",
]

FORMAT = "linecolor-prepared"
FORMAT_VERSION = 1
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
PREPARE_SOURCES = (*SOURCES, "paired", "colors")
"""What :func:`prepare_dataset` reads (``linecolor prepare`` also reads ``safebooru``, through
:func:`linecolor.data.safebooru.prepare_safebooru`)."""
EXTRACTORS = ("xdog", "flat")
_MAX_SKIPPED_LISTED = 100


def _index(index: int, n: int, what: str) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"{what} indices must be integers, got {type(index).__name__}")
    i = int(index)
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(f"{what} index {index} out of range for {n} items")
    return i


# ----------------------------------------------------------------------------------- letterboxing
def _resize(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a uint8 (H,W) or (H,W,3) array: area averaging (BOX) when shrinking, bicubic when enlarging."""
    h, w = arr.shape[:2]
    if (w, h) == (width, height):
        return arr
    shrinking = width * height < w * h
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(arr).resize((width, height), method), dtype=np.uint8)


def _fit_geometry(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    """(new_w, new_h, top, left) of an h×w image scaled to fit a size×size square, centred."""
    scale = size / max(h, w)
    nw, nh = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
    return nw, nh, (size - nh) // 2, (size - nw) // 2


def _fit_plane(arr: np.ndarray, size: int, fill: int) -> np.ndarray:
    """Letterbox a uint8 (H,W) or (H,W,3) array into size×size, padding with ``fill``."""
    nw, nh, top, left = _fit_geometry(arr.shape[0], arr.shape[1], size)
    out = np.full((size, size, *arr.shape[2:]), fill, np.uint8)
    out[top:top + nh, left:left + nw] = _resize(arr, nw, nh)
    return out


def fit_pair(pair: Pair, size: int) -> Pair:
    """Fit a pair into ``size × size``: scale to fit (aspect kept), centre, pad with white (colour and lines).

    Resampling: area averaging when shrinking, bicubic when enlarging (Pillow).

    Args:
        pair: any :class:`Pair` (H×W).
        size: output side in pixels.

    Returns:
        :class:`Pair` with ``color`` uint8 ``(size, size, 3)`` and ``lines`` uint8 ``(L, size, size)``.
    """
    if pair.color.shape[:2] == (size, size):
        return pair
    color = _fit_plane(pair.color, size, 255)
    lines = np.stack([_fit_plane(line, size, 255) for line in pair.lines])
    return Pair(color=color, lines=lines, name=pair.name)


# ---------------------------------------------------------------------------------- folder helpers
def _list_images(folder: Path, where: str) -> list[Path]:
    """Image files directly in ``folder`` (hidden files ignored); other file types are an error."""
    images, others = [], []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.is_dir():
            continue
        (images if p.suffix.lower() in IMAGE_EXTENSIONS else others).append(p)
    if others:
        raise DatasetError(f"{where}: {len(others)} file(s) that are not .png/.jpg/.jpeg/.webp images: "
                           + ", ".join(p.name for p in others[:10]) + (" …" if len(others) > 10 else ""))
    return images


def _by_stem(paths: list[Path], where: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    dupes = []
    for p in paths:
        if p.stem in out:
            dupes.append(f"{out[p.stem].name} / {p.name}")
        out[p.stem] = p
    if dupes:
        raise DatasetError(f"{where}: several files with the same name: {', '.join(dupes[:10])}")
    return out


def _load_rgb(path: Path, max_pixels: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB uint8 (H,W,3) on white, alpha uint8 (H,W) or None)."""
    img = open_image(path, max_pixels=max_pixels, name="colour image")
    alpha = None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        alpha = np.asarray(img.convert("RGBA"), dtype=np.uint8)[..., 3].copy()
    return np.asarray(to_rgb(img), dtype=np.uint8).copy(), alpha


def _load_gray(path: Path, max_pixels: int) -> np.ndarray:
    return np.asarray(to_gray(open_image(path, max_pixels=max_pixels, name="line image")), dtype=np.uint8).copy()


def _list_preview(items: list[str], limit: int = 20) -> str:
    return ", ".join(items[:limit]) + (f" … ({len(items)} in all)" if len(items) > limit else "")


# ---------------------------------------------------------------------------------- PairedFolder
class PairedFolder:
    """Colour images with their line art, matched by file name.

    Accepted layouts (extensions ``.png``, ``.jpg``, ``.jpeg``, ``.webp``, any case; hidden files ignored)::

        root/color/<name>.<ext>                  the colour image (required)
        root/line/<name>.<ext>                   line style "" (the default style)
        root/line/<name>__<style>.<ext>          line style <style>
        root/line/<style>/<name>.<ext>           line style <style>

    Layouts may be mixed, but every name must have the same set of line styles (so that a prepared dataset
    has a fixed L). Styles are ordered: the default style first, then the others by name. A line file
    ``a__b.png`` is the default line of colour ``a__b`` when that colour exists, else style ``b`` of ``a``.
    Transparent colour images are composited on white; line images are converted to grey on white.

    Raises at construction (:class:`DatasetError`): missing ``color``/``line`` folders, no colour images,
    non-image files, colour names without any line and line files without a colour (both listed),
    names with differing style sets. A line/colour size mismatch raises :class:`InputImageError` when that
    item is loaded.
    """

    def __init__(self, root: str | Path, *, max_pixels: int = MAX_IMAGE_PIXELS):
        self.root = Path(root)
        self.max_pixels = max_pixels
        color_dir, line_dir = self.root / "color", self.root / "line"
        for d in (color_dir, line_dir):
            if not d.is_dir():
                raise DatasetError(f"paired folder {self.root}: missing sub-folder {d.name}/ "
                                   "(expected root/color/<name>.png and root/line/<name>.png)")
        colors = _by_stem(_list_images(color_dir, str(color_dir)), str(color_dir))
        if not colors:
            raise DatasetError(f"paired folder {self.root}: no colour images in {color_dir}")
        lines: dict[str, dict[str, Path]] = {}
        orphans: list[str] = []

        def add(name: str, style: str, path: Path) -> None:
            if name not in colors:
                orphans.append(str(path.relative_to(self.root)))
                return
            styles = lines.setdefault(name, {})
            if style in styles:
                raise DatasetError(f"paired folder {self.root}: two line files for {name!r} style {style!r}: "
                                   f"{styles[style].relative_to(self.root)} and {path.relative_to(self.root)}")
            styles[style] = path

        for path in _list_images(line_dir, str(line_dir)):
            stem = path.stem
            if stem in colors or "__" not in stem:
                add(stem, "", path)
            else:
                name, style = stem.rsplit("__", 1)
                add(name, style, path)
        for sub in sorted(p for p in line_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for path in _list_images(sub, str(sub)):
                add(path.stem, sub.name, path)
        problems = []
        missing = sorted(set(colors) - set(lines))
        if missing:
            problems.append(f"{len(missing)} colour image(s) without line art: {_list_preview(missing)}")
        if orphans:
            problems.append(f"{len(orphans)} line image(s) without a colour image: {_list_preview(sorted(orphans))}")
        if problems:
            raise DatasetError(f"paired folder {self.root}: " + "; ".join(problems))
        style_sets = {name: frozenset(s) for name, s in lines.items()}
        reference = max(set(style_sets.values()), key=lambda s: sum(v == s for v in style_sets.values()))
        odd = sorted(n for n, s in style_sets.items() if s != reference)
        if odd:
            shown = [f"{n} has {sorted(style_sets[n])}" for n in odd]
            raise DatasetError(f"paired folder {self.root}: every name needs the same line styles "
                               f"(most have {sorted(reference)}); {_list_preview(shown)}")
        self.line_styles: tuple[str, ...] = tuple(sorted(reference, key=lambda s: (s != "", s)))
        self.names: list[str] = sorted(colors)
        self._colors = colors
        self._lines = lines

    @property
    def num_line_styles(self) -> int:
        return len(self.line_styles)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Pair:
        """Load pair ``index``: ``color`` uint8 (H,W,3), ``lines`` uint8 (L,H,W) in :attr:`line_styles` order.

        Raises:
            InputImageError: undecodable image, or a line image whose size differs from the colour image's.
        """
        name = self.names[_index(index, len(self), "PairedFolder")]
        color, _ = _load_rgb(self._colors[name], self.max_pixels)
        lines = []
        for style in self.line_styles:
            path = self._lines[name][style]
            line = _load_gray(path, self.max_pixels)
            if line.shape != color.shape[:2]:
                raise InputImageError(
                    f"{path}: line image is {line.shape[1]}×{line.shape[0]} but its colour image "
                    f"{self._colors[name].name} is {color.shape[1]}×{color.shape[0]}; they must be the same size")
            lines.append(line)
        return Pair(color=color, lines=np.stack(lines), name=name)


# ----------------------------------------------------------------------------------- ColorFolder
class ColorFolder:
    """Colour images only (directly in ``root``); line art extracted when an item is loaded.

    Args:
        root: folder of ``.png``/``.jpg``/``.jpeg``/``.webp`` colour images (hidden files ignored, other
            files are an error).
        extractor: ``"xdog"`` — :func:`linecolor.raster.lines.xdog` of the colour image (grey, soft lines), for
            pictures and shaded art; ``"flat"`` — :func:`linecolor.raster.lines.flat_region_edges` (binary
            boundaries of flat colour regions plus the alpha silhouette), for flat vector-style art.
        cache_dir: if given, extracted lines are stored there as ``<name>.<extractor>.<size|orig>.png`` and
            reused while they are newer than the colour file (written atomically).
        size: if given, each colour image is first letterboxed into ``size × size`` (white padding) and the
            lines are extracted at that size (line width then matches the training size); else native size.

    Items: :class:`Pair` with ``lines`` of shape ``(1, H, W)``.
    """

    def __init__(self, root: str | Path, extractor: str = "xdog", cache_dir: str | Path | None = None, *,
                 size: int | None = None, max_pixels: int = MAX_IMAGE_PIXELS):
        self.root = Path(root)
        if extractor not in EXTRACTORS:
            raise DatasetError(f"unknown line extractor {extractor!r}; valid extractors: {', '.join(EXTRACTORS)}")
        if not self.root.is_dir():
            raise DatasetError(f"colour folder not found: {self.root}")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise DatasetError(f"size must be a positive integer or None, got {size!r}")
        self.extractor = extractor
        self.size = size
        self.max_pixels = max_pixels
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._paths = _by_stem(_list_images(self.root, str(self.root)), str(self.root))
        if not self._paths:
            raise DatasetError(f"colour folder {self.root}: no .png/.jpg/.jpeg/.webp images")
        self.names: list[str] = sorted(self._paths)
        self.line_styles: tuple[str, ...] = (extractor,)

    @property
    def num_line_styles(self) -> int:
        return 1

    def __len__(self) -> int:
        return len(self.names)

    def _extract(self, color: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
        if self.extractor == "xdog":
            return xdog(color)
        # Line width grows with the image like rasterised line art does: 1 px up to ~190 px, 2 px at 256, ...
        return flat_region_edges(color, alpha, thickness=max(1, round(max(color.shape[:2]) / 128)))

    def __getitem__(self, index: int) -> Pair:
        """Load item ``index``: ``color`` uint8 (H,W,3) (``(size,size,3)`` if ``size``), ``lines`` uint8 (1,H,W)."""
        name = self.names[_index(index, len(self), "ColorFolder")]
        path = self._paths[name]
        color, alpha = _load_rgb(path, self.max_pixels)
        if self.size is not None:
            if alpha is not None:
                alpha = _fit_plane(alpha, self.size, 0)  # the letterbox padding is transparent background
            color = _fit_plane(color, self.size, 255)
        cache = None
        if self.cache_dir is not None:
            cache = self.cache_dir / f"{name}.{self.extractor}.{self.size or 'orig'}.png"
            if cache.is_file() and cache.stat().st_mtime >= path.stat().st_mtime:
                try:
                    line = _load_gray(cache, self.max_pixels)
                    if line.shape == color.shape[:2]:
                        return Pair(color=color, lines=line[None], name=name)
                except InputImageError:
                    pass  # a damaged cache entry is recomputed and rewritten below
        line = self._extract(color, alpha)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f"{cache.name}.tmp-{os.getpid()}")
            Image.fromarray(line, "L").save(tmp, format="PNG")
            os.replace(tmp, cache)
        return Pair(color=color, lines=line[None], name=name)


# -------------------------------------------------------------------------------- PreparedArrays
class PreparedArrays:
    """One split of a prepared dataset directory (see the module doc), memory-mapped.

    Args:
        directory: the directory written by :func:`prepare_dataset`.
        split: ``"train"``, ``"val"`` or ``"test"``.

    Attributes:
        manifest: the parsed ``manifest.json``.
        size: S. ``num_line_styles``: L. ``line_styles``: style names.
        color: read-only memmap uint8 ``(N, S, S, 3)``; ``line``: uint8 ``(N, L, S, S)``.
        names, groups: lists of N strings.

    Items: :class:`Pair` with copies (writable) of one row.

    Raises:
        DatasetError: the directory is missing, not a linecolor prepared dataset, of a newer format version,
            or its files are missing, corrupt or inconsistent with the manifest.
    """

    def __init__(self, directory: str | Path, split: str):
        self.directory = Path(directory)
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        self.split = split
        self.manifest = read_manifest(self.directory)
        m = self.manifest
        self.size: int = m["size"]
        self.num_line_styles: int = m["num_line_styles"]
        self.line_styles: tuple[str, ...] = tuple(m.get("line_styles") or [str(i) for i in range(self.num_line_styles)])
        n = m["splits"][split]
        where = f"prepared dataset {self.directory} ({split})"
        sdir = self.directory / split
        try:
            self.color = np.load(sdir / "color.npy", mmap_mode="r", allow_pickle=False)
            self.line = np.load(sdir / "line.npy", mmap_mode="r", allow_pickle=False)
        except FileNotFoundError as exc:
            raise DatasetError(f"{where}: missing array file {exc.filename}") from exc
        except (ValueError, OSError, EOFError) as exc:
            raise DatasetError(f"{where}: corrupt array file ({exc})") from exc
        s, L = self.size, self.num_line_styles
        expected = {"color.npy": (self.color, (n, s, s, 3)), "line.npy": (self.line, (n, L, s, s))}
        for fname, (arr, shape) in expected.items():
            if arr.dtype != np.uint8 or arr.shape != shape:
                raise DatasetError(f"{where}: {fname} is {arr.dtype} {arr.shape}, the manifest says uint8 {shape}")
        self.names = _read_str_list(sdir / "names.json", n, where)
        groups_path = sdir / "groups.json"
        self.groups = _read_str_list(groups_path, n, where) if groups_path.exists() else list(self.names)

    def __len__(self) -> int:
        return self.color.shape[0]

    def __getitem__(self, index: int) -> Pair:
        """Row ``index``: ``color`` uint8 (S,S,3), ``lines`` uint8 (L,S,S), the row's name."""
        i = _index(index, len(self), "PreparedArrays")
        return Pair(color=np.array(self.color[i]), lines=np.array(self.line[i]), name=self.names[i])


def _read_str_list(path: Path, n: int, where: str) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DatasetError(f"{where}: missing {path.name}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise DatasetError(f"{where}: {path.name} is not valid JSON ({exc})") from exc
    if not isinstance(data, list) or len(data) != n or not all(isinstance(x, str) for x in data):
        raise DatasetError(f"{where}: {path.name} must be a list of {n} strings")
    return data


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Read and validate ``directory/manifest.json`` of a prepared dataset.

    Raises:
        DatasetError: missing directory or manifest, invalid JSON, foreign format, unsupported version,
            missing or ill-typed fields.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"prepared dataset not found: {directory} (create it with `linecolor prepare`)")
    path = directory / "manifest.json"
    if not path.is_file():
        raise DatasetError(f"{directory} is not a prepared dataset: no manifest.json "
                           "(create it with `linecolor prepare`)")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: corrupt manifest, not valid JSON ({exc})") from exc
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise DatasetError(f"{path}: not a linecolor prepared dataset (format is "
                           f"{m.get('format') if isinstance(m, dict) else None!r}, expected {FORMAT!r})")
    version = m.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise DatasetError(f"{path}: unsupported format_version {version!r} (this linecolor reads "
                           f"version {FORMAT_VERSION}; upgrade linecolor or re-run prepare)")
    problems = []
    for key in ("size", "num_line_styles"):
        if isinstance(m.get(key), bool) or not isinstance(m.get(key), int) or m[key] < 1:
            problems.append(f"{key} must be a positive integer, got {m.get(key)!r}")
    splits = m.get("splits")
    if not isinstance(splits, dict) or any(
            isinstance(splits.get(s), bool) or not isinstance(splits.get(s), int) or splits[s] < 0 for s in SPLITS):
        problems.append(f"splits must map each of {', '.join(SPLITS)} to a count, got {splits!r}")
    if problems:
        raise DatasetError(f"{path}: corrupt manifest: " + "; ".join(problems))
    return m


# ------------------------------------------------------------------------------- prepare_dataset
@dataclass(frozen=True)
class _Item:
    name: str
    group: str
    split: str


class _SourceLoader:
    """Picklable loader of source records (rasterised directly at the target size)."""

    def __init__(self, records: list[SourceRecord], extra_xdog: bool):
        self.records = records
        self.extra_xdog = extra_xdog

    def load(self, index: int, size: int) -> Pair:
        return self.records[index].load(size, extra_xdog=self.extra_xdog)


class _FolderLoader:
    """Picklable loader of a folder PairSource, letterboxed to the target size."""

    def __init__(self, source: PairedFolder | ColorFolder):
        self.source = source

    def load(self, index: int, size: int) -> Pair:
        return fit_pair(self.source[index], size)


_WORKER_STATE: dict[str, Any] = {}


def _init_worker(loader: Any, size: int) -> None:
    _WORKER_STATE["loader"] = loader
    _WORKER_STATE["size"] = size


def _load_one(index: int) -> tuple[int, np.ndarray | None, np.ndarray | None, str | None]:
    """Worker: load item ``index``; an input error becomes a skip reason instead of an exception."""
    try:
        pair = _WORKER_STATE["loader"].load(index, _WORKER_STATE["size"])
    except LinecolorError as exc:
        return index, None, None, str(exc)
    return index, pair.color, pair.lines, None


def _build(source: str, input_path: Path, size: int, extractor: str, extra_xdog: bool
           ) -> tuple[list[_Item], Any, tuple[str, ...]]:
    if source in SOURCES:
        records = list(iter_source(source, input_path))
        items = [_Item(r.name, r.group, r.split) for r in records]
        styles = ("source", "xdog") if extra_xdog else ("source",)
        return items, _SourceLoader(records, extra_xdog), styles
    if source == "paired":
        folder: PairedFolder | ColorFolder = PairedFolder(input_path)
    else:
        folder = ColorFolder(input_path, extractor, size=size)
    items = [_Item(n, n, assign_split(source, n)) for n in folder.names]
    return items, _FolderLoader(folder), tuple(folder.line_styles)


def prepare_dataset(
    source: str,
    input_path: str | Path,
    out_dir: str | Path,
    *,
    size: int,
    limit: int | None = None,
    extractor: str = "xdog",
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
    extra_xdog: bool = True,
) -> dict[str, Any]:
    """Rasterise/load every pair of a source, fit it into ``size × size`` and write the prepared format.

    Args:
        source: ``"openmoji"`` (``input_path`` = the ``.tgz``), ``"dicebear"``, ``"fluent"`` (their folders),
            ``"paired"`` (a :class:`PairedFolder`) or ``"colors"`` (a :class:`ColorFolder`).
        input_path: tarball or folder.
        out_dir: output directory (see the module doc for the layout).
        size: square side S in pixels (aspect kept, white padding).
        limit: only the first ``limit`` items in name order (before splitting), for samples and tests.
        extractor: line extractor of ``"colors"`` folders: ``"xdog"`` or ``"flat"``.
        workers: processes; > 1 uses a ``spawn`` multiprocessing pool (workers re-import the caller's main
            module, so a script calling this needs an ``if __name__ == "__main__":`` guard; the CLI has one).
        progress: show a tqdm progress bar (stderr).
        overwrite: replace an existing non-empty ``out_dir`` (only after the new one is complete).
        extra_xdog: for the three built-in sources, add XDoG of the colour image as line style 1.

    Returns:
        The manifest dict (also written to ``out_dir/manifest.json``).

    Raises:
        DatasetError: unknown source/extractor, bad arguments, unusable input, existing ``out_dir`` without
            ``overwrite``, or zero usable images. Undecodable/unrenderable items are skipped and listed in the
            manifest (``skipped``, ``skipped_items``), not fatal.

    The directory is built in ``<out_dir>.tmp-<pid>`` next to ``out_dir`` and moved into place with
    ``os.replace``, so an interrupted run never leaves a half-written dataset under ``out_dir``.
    """
    from tqdm import tqdm

    from linecolor.version import __version__

    if source not in PREPARE_SOURCES:
        raise DatasetError(f"unknown source {source!r}; valid sources: {', '.join(PREPARE_SOURCES)}")
    if extractor not in EXTRACTORS:
        raise DatasetError(f"unknown line extractor {extractor!r}; valid extractors: {', '.join(EXTRACTORS)}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise DatasetError(f"size must be an integer >= 8, got {size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DatasetError(f"limit must be a positive integer or None, got {limit!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise DatasetError(f"workers must be a positive integer, got {workers!r}")
    input_path, out_dir = Path(input_path), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetError(f"output path {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise DatasetError(f"output directory {out_dir} exists and is not empty (pass overwrite=True / --overwrite "
                           "to replace it)")

    items, loader, styles = _build(source, input_path, size, extractor, extra_xdog)
    if limit is not None:
        items = items[:limit]
    L = len(styles)
    expected = {s: sum(it.split == s for it in items) for s in SPLITS}

    tmp = out_dir.parent / f"{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
        arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for s in SPLITS:
            (tmp / s).mkdir()
            arrays[s] = (
                np.lib.format.open_memmap(tmp / s / "color.npy", mode="w+", dtype=np.uint8,
                                          shape=(expected[s], size, size, 3)),
                np.lib.format.open_memmap(tmp / s / "line.npy", mode="w+", dtype=np.uint8,
                                          shape=(expected[s], L, size, size)),
            )
        written = {s: [] for s in SPLITS}  # items written, in row order
        skipped: list[dict[str, str]] = []
        indices = range(len(items))
        bar = tqdm(total=len(items), desc=f"prepare {source} @{size}px", unit="img", disable=not progress)

        def consume(result: tuple[int, np.ndarray | None, np.ndarray | None, str | None]) -> None:
            i, color, lines, reason = result
            item = items[i]
            if reason is not None:
                skipped.append({"name": item.name, "reason": reason})
            elif lines.shape[0] != L:
                skipped.append({"name": item.name, "reason": f"{lines.shape[0]} line styles, expected {L}"})
            else:
                row = len(written[item.split])
                arrays[item.split][0][row] = color
                arrays[item.split][1][row] = lines
                written[item.split].append(item)
            bar.update(1)

        try:
            if workers == 1 or len(items) < 2:
                _init_worker(loader, size)
                try:
                    for i in indices:
                        consume(_load_one(i))
                finally:
                    _WORKER_STATE.clear()
            else:
                ctx = multiprocessing.get_context("spawn")
                with ctx.Pool(workers, initializer=_init_worker, initargs=(loader, size)) as pool:
                    for result in pool.imap(_load_one, indices, chunksize=8):
                        consume(result)
        finally:
            bar.close()

        total = sum(len(w) for w in written.values())
        if total == 0:
            raise DatasetError(f"{source} {input_path}: no usable images ({len(skipped)} skipped"
                               + (f"; first reason: {skipped[0]['reason']}" if skipped else "") + ")")
        for s in SPLITS:
            color_arr, line_arr = arrays[s]
            n = len(written[s])
            if n < expected[s]:  # items were skipped: rewrite the arrays at their real length
                for fname, arr in (("color.npy", color_arr), ("line.npy", line_arr)):
                    part = tmp / s / f"{fname}.part"
                    small = np.lib.format.open_memmap(part, mode="w+", dtype=np.uint8, shape=(n, *arr.shape[1:]))
                    small[:] = arr[:n]
                    small.flush()
                    del small
                    os.replace(part, tmp / s / fname)
            else:
                color_arr.flush()
                line_arr.flush()
            (tmp / s / "names.json").write_text(json.dumps([it.name for it in written[s]], ensure_ascii=False),
                                                encoding="utf-8")
            (tmp / s / "groups.json").write_text(json.dumps([it.group for it in written[s]], ensure_ascii=False),
                                                 encoding="utf-8")
        arrays.clear()
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "source": source,
            "size": size,
            "num_line_styles": L,
            "line_styles": list(styles),
            "splits": {s: len(written[s]) for s in SPLITS},
            "skipped": len(skipped),
            "skipped_items": skipped[:_MAX_SKIPPED_LISTED],
            "split_rule": SPLIT_RULE + ("; group = file-name stem" if source in ("paired", "colors") else ""),
            "linecolor_version": __version__,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
        _move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """``os.replace`` the finished ``tmp`` onto ``out_dir``; an existing ``out_dir`` is moved aside first and
    deleted only after the new directory is in place."""
    if out_dir.is_dir() and any(out_dir.iterdir()):
        old = out_dir.parent / f"{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
        try:
            os.replace(tmp, out_dir)
        except BaseException:
            os.replace(old, out_dir)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)  # an empty existing directory is replaced atomically by rename(2)
