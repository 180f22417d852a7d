"""Tests of linecolor.data.datasets: folder sources, prepare_dataset on folders, PreparedArrays."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from linecolor.data.datasets import (
    ColorFolder,
    DatasetError,
    Pair,
    PairedFolder,
    PairSource,
    PreparedArrays,
    fit_pair,
    prepare_dataset,
)
from linecolor.data.sources import SPLITS, assign_split
from linecolor.errors import InputImageError

COLOURS = [(220, 40, 40), (40, 160, 60), (40, 60, 200), (240, 200, 40), (160, 60, 180), (30, 30, 30)]


def colour_image(k: int, w: int = 40, h: int = 40) -> Image.Image:
    img = Image.new("RGB", (w, h), "white")
    ImageDraw.Draw(img).ellipse([w // 5, h // 5, w - w // 5, h - h // 5], fill=COLOURS[k % len(COLOURS)],
                                outline=(0, 0, 0), width=2)
    return img


def line_image(w: int = 40, h: int = 40, width: int = 2) -> Image.Image:
    img = Image.new("L", (w, h), 255)
    ImageDraw.Draw(img).ellipse([w // 5, h // 5, w - w // 5, h - h // 5], outline=0, width=width)
    return img


def make_paired(root: Path, names=("a", "b", "c"), styles=("",), layout="suffix", size=(40, 40)) -> Path:
    """styles: "" = root/line/<name>.png; other styles by ``layout``: "suffix" (<name>__<style>) or "dir"."""
    (root / "color").mkdir(parents=True)
    (root / "line").mkdir()
    for k, name in enumerate(names):
        colour_image(k, *size).save(root / "color" / f"{name}.png")
        for j, style in enumerate(styles):
            if style == "":
                path = root / "line" / f"{name}.png"
            elif layout == "suffix":
                path = root / "line" / f"{name}__{style}.png"
            else:
                (root / "line" / style).mkdir(exist_ok=True)
                path = root / "line" / style / f"{name}.png"
            line_image(*size, width=1 + j).save(path)
    return root


# -------------------------------------------------------------------------------------- PairedFolder
def test_paired_folder_single_style(tmp_path):
    folder = make_paired(tmp_path / "p")
    assert isinstance(folder, Path)
    ds = PairedFolder(folder)
    assert isinstance(ds, PairSource)
    assert len(ds) == 3 and ds.names == ["a", "b", "c"] and ds.line_styles == ("",)
    pair = ds[1]
    assert pair.name == "b"
    assert pair.color.shape == (40, 40, 3) and pair.color.dtype == np.uint8
    assert pair.lines.shape == (1, 40, 40) and pair.lines.dtype == np.uint8
    assert tuple(pair.color[20, 20]) == COLOURS[1]
    assert pair.lines[0, 20, 20] == 255 and (pair.lines[0] < 128).any()
    assert ds[-1].name == "c"
    with pytest.raises(IndexError):
        ds[3]


@pytest.mark.parametrize("layout", ["suffix", "dir"])
def test_paired_folder_several_styles(tmp_path, layout):
    folder = make_paired(tmp_path / "p", styles=("", "thick", "bold"), layout=layout)
    ds = PairedFolder(folder)
    assert ds.line_styles == ("", "bold", "thick") and ds.num_line_styles == 3
    pair = ds[0]
    assert pair.lines.shape == (3, 40, 40)
    ink = (pair.lines < 128).sum(axis=(1, 2))
    assert ink[0] < ink[2] < ink[1]  # widths 1 (default), 2 (thick), 3 (bold) in style order "", bold, thick


def test_paired_folder_other_formats_and_transparency(tmp_path):
    root = tmp_path / "p"
    (root / "color").mkdir(parents=True)
    (root / "line").mkdir()
    colour_image(0).save(root / "color" / "x.JPG", format="JPEG", quality=95)
    line_image().save(root / "line" / "x.webp", format="WEBP", lossless=True)
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).rectangle([10, 10, 30, 30], fill=(0, 0, 255, 255))
    rgba.save(root / "color" / "y.png")
    line_image().save(root / "line" / "y.png")
    ds = PairedFolder(root)
    assert ds.names == ["x", "y"]
    x, y = ds[0], ds[1]
    assert np.abs(x.color[20, 20].astype(int) - COLOURS[0]).max() < 12
    assert tuple(y.color[0, 0]) == (255, 255, 255) and tuple(y.color[20, 20]) == (0, 0, 255)


def test_paired_folder_reports_unmatched_names(tmp_path):
    folder = make_paired(tmp_path / "p", names=("a", "b", "c", "d"))
    (folder / "line" / "b.png").unlink()
    (folder / "line" / "d.png").unlink()
    line_image().save(folder / "line" / "zzz.png")
    with pytest.raises(DatasetError) as err:
        PairedFolder(folder)
    msg = str(err.value)
    assert "without line art" in msg and "b" in msg and "d" in msg
    assert "without a colour image" in msg and "zzz.png" in msg


def test_paired_folder_structure_errors(tmp_path):
    with pytest.raises(DatasetError, match="color"):
        PairedFolder(tmp_path)
    folder = make_paired(tmp_path / "p", styles=("", "thick"))
    (folder / "line" / "a__thick.png").unlink()
    with pytest.raises(DatasetError, match="same line styles"):
        PairedFolder(folder)
    other = make_paired(tmp_path / "q")
    (other / "color" / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="notes.txt"):
        PairedFolder(other)
    dup = make_paired(tmp_path / "r")
    colour_image(0).save(dup / "color" / "a.jpg")
    with pytest.raises(DatasetError, match="same name"):
        PairedFolder(dup)


def test_paired_folder_size_mismatch_raises_on_load(tmp_path):
    folder = make_paired(tmp_path / "p")
    line_image(50, 40).save(folder / "line" / "b.png")
    ds = PairedFolder(folder)  # construction does not decode images
    ds[0]
    with pytest.raises(InputImageError, match="same size"):
        ds[1]


def test_pair_validates_arrays():
    with pytest.raises(InputImageError):
        Pair(color=np.zeros((4, 4, 3), np.uint8), lines=np.zeros((1, 4, 5), np.uint8), name="x")
    with pytest.raises(InputImageError):
        Pair(color=np.zeros((4, 4), np.uint8), lines=np.zeros((1, 4, 4), np.uint8), name="x")
    with pytest.raises(InputImageError):
        Pair(color=np.zeros((4, 4, 3), np.uint8), lines=np.zeros((0, 4, 4), np.uint8), name="x")


def test_fit_pair_letterboxes_with_white():
    color = np.zeros((20, 40, 3), np.uint8)  # black, wide
    lines = np.zeros((2, 20, 40), np.uint8)  # all ink
    out = fit_pair(Pair(color=color, lines=lines, name="w"), 16)
    assert out.color.shape == (16, 16, 3) and out.lines.shape == (2, 16, 16)
    assert (out.color[:4] == 255).all() and (out.color[12:] == 255).all()  # white bars top and bottom
    assert (out.color[4:12] == 0).all() and (out.lines[:, 4:12] == 0).all() and (out.lines[:, :4] == 255).all()


# --------------------------------------------------------------------------------------- ColorFolder
def test_color_folder_extractors(tmp_path):
    root = tmp_path / "colors"
    root.mkdir()
    for k in range(2):
        colour_image(k, 64, 48).save(root / f"img{k}.png")
    xd = ColorFolder(root, "xdog")
    pair = xd[0]
    assert pair.color.shape == (48, 64, 3) and pair.lines.shape == (1, 48, 64)
    assert (pair.lines[0] > 200).mean() > 0.8 and (pair.lines[0] < 100).any()
    flat = ColorFolder(root, "flat")[1]
    assert set(np.unique(flat.lines)) <= {0, 255} and (flat.lines == 0).any()
    sized = ColorFolder(root, "flat", size=32)[0]
    assert sized.color.shape == (32, 32, 3) and sized.lines.shape == (1, 32, 32)
    assert (sized.color[:4] == 255).all()  # letterbox padding of a 64×48 image
    with pytest.raises(DatasetError, match="extractor"):
        ColorFolder(root, "canny")
    with pytest.raises(DatasetError, match="not found"):
        ColorFolder(tmp_path / "nope")


def test_color_folder_cache(tmp_path):
    root = tmp_path / "colors"
    root.mkdir()
    colour_image(0).save(root / "a.png")
    cache = tmp_path / "cache"
    ds = ColorFolder(root, "xdog", cache_dir=cache)
    first = ds[0].lines[0]
    files = list(cache.glob("*.png"))
    assert len(files) == 1 and np.array_equal(np.asarray(Image.open(files[0])), first)
    # A later load reads the cache (proved by changing the cached file) ...
    marker = np.full_like(first, 7)
    Image.fromarray(marker).save(files[0])
    assert np.array_equal(ColorFolder(root, "xdog", cache_dir=cache)[0].lines[0], marker)
    # ... until the colour image is newer than the cache entry.
    st = files[0].stat()
    os.utime(root / "a.png", (st.st_atime + 10, st.st_mtime + 10))
    assert np.array_equal(ColorFolder(root, "xdog", cache_dir=cache)[0].lines[0], first)
    assert not list(cache.glob("*.tmp-*"))


# ----------------------------------------------------------------------------------- prepare_dataset
def test_prepare_paired_folder(tmp_path):
    names = tuple(f"n{k:02d}" for k in range(8))
    folder = make_paired(tmp_path / "p", names=names, styles=("", "thick"), size=(48, 32))
    (folder / "color" / "n03.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage, not a real PNG")
    out = tmp_path / "prepared"
    m = prepare_dataset("paired", folder, out, size=32, progress=False)
    assert m["source"] == "paired" and m["size"] == 32 and m["num_line_styles"] == 2
    assert m["line_styles"] == ["", "thick"]
    assert m["skipped"] == 1 and m["skipped_items"][0]["name"] == "n03"
    assert sum(m["splits"].values()) == 7
    expected = {s: [n for n in names if n != "n03" and assign_split("paired", n) == s] for s in SPLITS}
    assert m["splits"] == {s: len(v) for s, v in expected.items()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "prepared"]  # no tmp dir left
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "test", "train", "val"]
    folder_ds = PairedFolder(folder)
    for s in SPLITS:
        ds = PreparedArrays(out, s)
        assert ds.names == expected[s] and ds.groups == expected[s]
        assert ds.color.shape == (len(ds), 32, 32, 3) and ds.line.shape == (len(ds), 2, 32, 32)
        for i, name in enumerate(ds.names):
            pair = ds[i]
            ref = fit_pair(folder_ds[folder_ds.names.index(name)], 32)
            assert pair.name == name
            assert np.array_equal(pair.color, ref.color) and np.array_equal(pair.lines, ref.lines)
            assert (pair.color[:5] == 255).all() and (pair.lines[:, :5] == 255).all()  # white letterbox
            pair.color[0, 0] = 0  # items are writable copies, not views of the memmap


def test_prepare_colors_folder_and_limit(tmp_path):
    root = tmp_path / "colors"
    root.mkdir()
    for k in range(5):
        colour_image(k, 40, 40).save(root / f"c{k}.png")
    m = prepare_dataset("colors", root, tmp_path / "out", size=32, extractor="flat", limit=3, progress=False)
    assert sum(m["splits"].values()) == 3 and m["num_line_styles"] == 1 and m["line_styles"] == ["flat"]
    names = sum((PreparedArrays(tmp_path / "out", s).names for s in SPLITS), [])
    assert sorted(names) == ["c0", "c1", "c2"]


def test_prepare_refuses_to_overwrite_and_replaces_atomically(tmp_path):
    folder = make_paired(tmp_path / "p")
    out = tmp_path / "out"
    out.mkdir()  # an empty directory may be filled
    prepare_dataset("paired", folder, out, size=16, progress=False)
    before = (out / "manifest.json").read_text()
    with pytest.raises(DatasetError, match="not empty"):
        prepare_dataset("paired", folder, out, size=24, progress=False)
    assert (out / "manifest.json").read_text() == before
    m = prepare_dataset("paired", folder, out, size=24, progress=False, overwrite=True)
    assert m["size"] == 24 and json.loads((out / "manifest.json").read_text())["size"] == 24
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "p"]


def test_prepare_with_zero_usable_images_fails_cleanly(tmp_path):
    root = tmp_path / "colors"
    root.mkdir()
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DatasetError, match="no usable images"):
        prepare_dataset("colors", root, tmp_path / "out", size=16, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["colors"]


def test_prepare_argument_errors(tmp_path):
    folder = make_paired(tmp_path / "p")
    with pytest.raises(DatasetError, match="unknown source"):
        prepare_dataset("imagenet", folder, tmp_path / "o", size=16)
    with pytest.raises(DatasetError, match="size"):
        prepare_dataset("paired", folder, tmp_path / "o", size=0)
    with pytest.raises(DatasetError, match="workers"):
        prepare_dataset("paired", folder, tmp_path / "o", size=16, workers=0)


def test_prepare_with_worker_processes_matches_single_process(tmp_path):
    folder = make_paired(tmp_path / "p", names=tuple(f"n{k}" for k in range(6)))
    one = prepare_dataset("paired", folder, tmp_path / "one", size=16, progress=False)
    two = prepare_dataset("paired", folder, tmp_path / "two", size=16, progress=False, workers=2)
    assert one["splits"] == two["splits"]
    for s in SPLITS:
        a, b = PreparedArrays(tmp_path / "one", s), PreparedArrays(tmp_path / "two", s)
        assert a.names == b.names and np.array_equal(a.color, b.color) and np.array_equal(a.line, b.line)


# ------------------------------------------------------------------------------------ PreparedArrays
@pytest.fixture
def prepared(tmp_path) -> Path:
    folder = make_paired(tmp_path / "p", names=tuple(f"n{k:02d}" for k in range(6)))
    prepare_dataset("paired", folder, tmp_path / "prep", size=16, progress=False)
    return tmp_path / "prep"


def test_prepared_arrays_are_memory_mapped(prepared):
    ds = PreparedArrays(prepared, "train")
    assert isinstance(ds.color, np.memmap) and isinstance(ds.line, np.memmap)
    assert ds.size == 16 and ds.num_line_styles == 1 and len(ds) == ds.manifest["splits"]["train"]
    assert isinstance(ds, PairSource)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_prepared_arrays_errors(prepared, tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        PreparedArrays(tmp_path / "missing", "train")
    with pytest.raises(DatasetError, match="no manifest"):
        PreparedArrays(tmp_path / "p", "train")
    with pytest.raises(DatasetError, match="unknown split"):
        PreparedArrays(prepared, "validation")
    manifest = prepared / "manifest.json"
    good = json.loads(manifest.read_text())
    manifest.write_text("{ not json")
    with pytest.raises(DatasetError, match="corrupt manifest"):
        PreparedArrays(prepared, "train")
    manifest.write_text(json.dumps({**good, "format": "something-else"}))
    with pytest.raises(DatasetError, match="not a linecolor prepared dataset"):
        PreparedArrays(prepared, "train")
    manifest.write_text(json.dumps({**good, "format_version": 2}))
    with pytest.raises(DatasetError, match="format_version"):
        PreparedArrays(prepared, "train")
    manifest.write_text(json.dumps({**good, "splits": {**good["splits"], "train": good["splits"]["train"] + 1}}))
    with pytest.raises(DatasetError, match="manifest says"):
        PreparedArrays(prepared, "train")
    manifest.write_text(json.dumps(good))
    PreparedArrays(prepared, "train")
    color = prepared / "train" / "color.npy"
    color.write_bytes(color.read_bytes()[:100])  # truncated
    with pytest.raises(DatasetError, match="corrupt"):
        PreparedArrays(prepared, "train")
    color.unlink()
    with pytest.raises(DatasetError, match="missing"):
        PreparedArrays(prepared, "train")
