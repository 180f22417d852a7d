"""Tests of linecolor.data.sources (and prepare_dataset on source data) with tiny generated fakes."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from linecolor.data.datasets import PreparedArrays, prepare_dataset
from linecolor.data.sources import (
    SPLITS,
    DatasetError,
    assign_split,
    iter_dicebear,
    iter_fluent,
    iter_openmoji,
    iter_source,
    split_counts,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def black_svg(r: int = 23) -> bytes:
    return (f'<svg viewBox="0 0 72 72" xmlns="http://www.w3.org/2000/svg"><circle cx="36" cy="36" r="{r}" '
            'fill="none" stroke="#000000" stroke-width="3"/></svg>').encode()


def color_svg(fill: str, r: int = 23) -> bytes:
    return (f'<svg viewBox="0 0 72 72" xmlns="http://www.w3.org/2000/svg"><circle cx="36" cy="36" r="{r}" '
            f'fill="{fill}" stroke="#000000" stroke-width="3"/></svg>').encode()


# ------------------------------------------------------------------------------------ split rule
def reference_split(source: str, group: str) -> str:
    """The documented rule, written out independently of the implementation."""
    h = hashlib.sha256(f"{source}:{group}".encode("utf-8")).digest()
    u = int.from_bytes(h[:8], byteorder="big") / float(2**64)
    return "train" if u < 0.9 else ("val" if u < 0.95 else "test")


def test_assign_split_follows_the_documented_rule():
    groups = [f"g{i}" for i in range(300)] + ["1F600", "00042", "1f3c3", "ü-ñ"]
    for source in ("openmoji", "dicebear", "fluent", "paired"):
        for g in groups:
            assert assign_split(source, g) == reference_split(source, g)
    # the source is part of the hash
    assert any(assign_split("openmoji", g) != assign_split("fluent", g) for g in groups)


def test_assign_split_proportions():
    splits = [assign_split("dicebear", f"{i:05d}") for i in range(20000)]
    frac = {s: splits.count(s) / len(splits) for s in SPLITS}
    assert 0.89 < frac["train"] < 0.91 and 0.04 < frac["val"] < 0.06 and 0.04 < frac["test"] < 0.06


# -------------------------------------------------------------------------------- fake OpenMoji
def variant_family() -> tuple[str, list[str]]:
    """A base hexcode with skin-tone variants, at least one of which would land in another split on its own
    (so a per-hexcode split would break the family apart and the test below would catch it)."""
    for i in range(4096):
        base = f"1F{i:03X}"
        variants = [f"{base}-{tone}" for tone in ("1F3FB", "1F3FC", "1F3FD")]
        if any(reference_split("openmoji", v) != reference_split("openmoji", base) for v in variants):
            return base, variants
    raise AssertionError("no suitable family found")


def make_openmoji_tarball(path: Path, *, corrupt: str | None = "1F602") -> dict[str, str]:
    """A tiny OpenMoji-like npm tarball; returns hexcode → expected group."""
    base, variants = variant_family()
    meta = [{"hexcode": "1F600", "skintone_base_hexcode": ""}, {"hexcode": "1F601", "skintone_base_hexcode": ""},
            {"hexcode": base, "skintone_base_hexcode": ""}]
    meta += [{"hexcode": v, "skintone_base_hexcode": base, "skintone": "1"} for v in variants]
    files = {"package/data/openmoji.json": json.dumps(meta).encode(), "package/LICENSE.txt": b"CC BY-SA 4.0"}
    colours = ["#FCEA2B", "#E27022", "#92D3F5", "#B1CC33", "#D22F27", "#A57939"]
    expected = {}
    for k, code in enumerate(["1F600", "1F601", base, *variants]):
        files[f"package/black/svg/{code}.svg"] = black_svg(20 + k)
        files[f"package/color/svg/{code}.svg"] = color_svg(colours[k], 20 + k)
        expected[code] = base if code in variants else code
    if corrupt:  # no metadata entry (group falls back to the hexcode) and an unrenderable colour SVG
        files[f"package/black/svg/{corrupt}.svg"] = black_svg()
        files[f"package/color/svg/{corrupt}.svg"] = b"<svg this is not XML"
        expected[corrupt] = corrupt
    files["package/black/svg/ONLYBLACK.svg"] = black_svg()  # no colour version: not a pair
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return expected


def test_iter_openmoji_groups_and_splits(tmp_path):
    tgz = tmp_path / "openmoji-0.0.0.tgz"
    expected = make_openmoji_tarball(tgz)
    records = list(iter_openmoji(tgz))
    assert [r.name for r in records] == sorted(expected)
    for r in records:
        assert r.source == "openmoji"
        assert r.group == expected[r.name]
        assert r.split == reference_split("openmoji", r.group)
        assert isinstance(r.color_svg, bytes) and isinstance(r.line_svg, bytes)
    base, variants = variant_family()
    assert len({r.split for r in records if r.group == base}) == 1
    for split in SPLITS:
        assert [r.name for r in iter_openmoji(tgz, split)] == [r.name for r in records if r.split == split]
    counts = split_counts("openmoji", tgz)
    assert sum(counts[s] for s in SPLITS) == len(records) and counts["groups"] == len(set(expected.values()))


def test_openmoji_record_load_shapes(tmp_path):
    tgz = tmp_path / "om.tgz"
    make_openmoji_tarball(tgz)
    rec = next(r for r in iter_openmoji(tgz) if r.name == "1F600")
    pair = rec.load(48)
    assert pair.color.shape == (48, 48, 3) and pair.color.dtype == np.uint8
    assert pair.lines.shape == (2, 48, 48) and pair.lines.dtype == np.uint8
    line = pair.lines[0]
    assert line[0, 0] == 255 and line[24, 24] == 255  # paper outside and inside the outline
    assert (line < 64).sum() > 50  # the outline circle is ink
    assert tuple(pair.color[24, 24]) == (0xFC, 0xEA, 0x2B)  # the flat fill
    assert tuple(pair.color[0, 0]) == (255, 255, 255)  # transparent background composited on white
    assert rec.load(48, extra_xdog=False).lines.shape == (1, 48, 48)


def test_openmoji_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        list(iter_openmoji(tmp_path / "missing.tgz"))
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"definitely not a tarball")
    with pytest.raises(DatasetError, match="tar"):
        list(iter_openmoji(bad))
    nometa = tmp_path / "nometa.tgz"
    with tarfile.open(nometa, "w:gz") as tf:
        info = tarfile.TarInfo("package/black/svg/1F600.svg")
        data = black_svg()
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(DatasetError, match="openmoji.json"):
        list(iter_openmoji(nometa))
    with pytest.raises(DatasetError, match="unknown split"):
        list(iter_openmoji(nometa, "training"))


def test_prepare_openmoji_group_aware_deterministic_and_skips_corrupt(tmp_path):
    tgz = tmp_path / "om.tgz"
    expected = make_openmoji_tarball(tgz, corrupt="1F602")
    out1, out2 = tmp_path / "prep1", tmp_path / "prep2"
    m1 = prepare_dataset("openmoji", tgz, out1, size=32, progress=False)
    m2 = prepare_dataset("openmoji", tgz, out2, size=32, progress=False)
    assert m1["format"] == "linecolor-prepared" and m1["format_version"] == 1 and m1["source"] == "openmoji"
    assert m1["size"] == 32 and m1["num_line_styles"] == 2
    assert m2["splits"] == m1["splits"]  # the same names in the same splits, run after run
    assert m1["skipped"] == 1 and m1["skipped_items"][0]["name"] == "1F602"
    assert sum(m1["splits"].values()) == len(expected) - 1
    assert json.loads((out1 / "manifest.json").read_text()) == m1
    assert not list(tmp_path.glob("*.tmp-*")), "temporary build directory left behind"
    base, variants = variant_family()
    split_of = {}
    for split in SPLITS:
        ds = PreparedArrays(out1, split)
        assert len(ds) == m1["splits"][split]
        assert ds.color.shape == (len(ds), 32, 32, 3) and ds.color.dtype == np.uint8
        assert ds.line.shape == (len(ds), 2, 32, 32) and ds.line.dtype == np.uint8
        for name, group in zip(ds.names, ds.groups):
            split_of[name] = split
            assert group == expected[name]
        # deterministic across runs: same names, same bytes
        other = PreparedArrays(out2, split)
        assert other.names == ds.names
        assert np.array_equal(np.asarray(other.color), np.asarray(ds.color))
        assert np.array_equal(np.asarray(other.line), np.asarray(ds.line))
    assert {split_of[v] for v in variants} == {split_of[base]}, "skin-tone variants split apart"
    assert split_of[base] == reference_split("openmoji", base)


# ------------------------------------------------------------------------------ DiceBear / Fluent
def make_dicebear(root: Path, n: int = 3) -> None:
    root.mkdir()
    for i in range(n):
        (root / f"{i:05d}_line.svg").write_bytes(
            b'<svg viewBox="0 0 762 762" xmlns="http://www.w3.org/2000/svg"><rect width="762" height="762" '
            b'fill="#fff"/><circle cx="381" cy="381" r="200" fill="#fff" stroke="#000" stroke-width="30"/></svg>')
        (root / f"{i:05d}_color.svg").write_bytes(
            b'<svg viewBox="0 0 762 762" xmlns="http://www.w3.org/2000/svg"><rect width="762" height="762" '
            b'fill="#fff"/><circle cx="381" cy="381" r="200" fill="#f2d3b1" stroke="#000" stroke-width="30"/></svg>')


def test_iter_dicebear(tmp_path):
    root = tmp_path / "dicebear"
    make_dicebear(root)
    records = list(iter_dicebear(root))
    assert [r.name for r in records] == ["00000", "00001", "00002"]
    assert all(r.group == r.name and r.split == reference_split("dicebear", r.name) for r in records)
    pair = records[0].load(40)
    assert pair.lines.shape == (2, 40, 40)
    ink = pair.lines[0] < 128
    assert ink.any() and (pair.color[ink].max(axis=1) < 128).all()  # exact pairs: ink is dark in colour too
    (root / "00003_line.svg").write_bytes((root / "00000_line.svg").read_bytes())
    with pytest.raises(DatasetError, match="00003"):
        list(iter_dicebear(root))


def make_fluent(root: Path) -> None:
    root.mkdir()
    rows = ["slug,emoji,group,codepoint_group,skin_tone_variants_in_source,cairosvg_ok"]
    for slug, group in (("1f600", "1f600"), ("1f468-200d-1f373", "1f468"), ("1f468", "1f468")):
        (root / slug).mkdir()
        (root / slug / "flat.svg").write_bytes(
            b'<svg viewBox="0 0 32 32" xmlns="http://www.w3.org/2000/svg"><circle cx="16" cy="16" r="12" '
            b'fill="#FFB02E"/><rect x="10" y="10" width="12" height="6" fill="#402A32"/></svg>')
        (root / slug / "color.svg").write_bytes(
            b'<svg viewBox="0 0 32 32" xmlns="http://www.w3.org/2000/svg"><defs><radialGradient id="g">'
            b'<stop offset="0" stop-color="#FFC83D"/><stop offset="1" stop-color="#F4A12E"/></radialGradient>'
            b'</defs><circle cx="16" cy="16" r="12" fill="url(#g)"/>'
            b'<rect x="10" y="10" width="12" height="6" fill="#402A32"/></svg>')
        rows.append(f"{slug},x,{slug},{group},0,1")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def test_iter_fluent_groups_and_derived_lines(tmp_path):
    root = tmp_path / "fluent"
    make_fluent(root)
    records = list(iter_fluent(root))
    assert [r.name for r in records] == sorted(["1f600", "1f468-200d-1f373", "1f468"])
    by_name = {r.name: r for r in records}
    assert by_name["1f468"].group == by_name["1f468-200d-1f373"].group == "1f468"
    assert by_name["1f468"].split == by_name["1f468-200d-1f373"].split == reference_split("fluent", "1f468")
    pair = by_name["1f600"].load(64)
    line = pair.lines[0]
    assert set(np.unique(line)) <= {0, 255}
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 31.5, xx - 31.5)
    assert (line[(r > 22) & (r < 26)] == 0).sum() > 80  # silhouette of the r=24 px circle
    assert (line[20:32, 20:44] == 0).any()  # boundary of the dark rectangle inside
    assert (line[r > 28] == 255).all() and line[40, 32] == 255  # background and a region interior stay paper
    (root / "1f600" / "color.svg").unlink()
    with pytest.raises(DatasetError, match="1f600"):
        list(iter_fluent(root))


def test_iter_source_dispatch_errors(tmp_path):
    with pytest.raises(DatasetError, match="unknown source"):
        iter_source("emoji", tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        list(iter_fluent(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="not found"):
        list(iter_dicebear(tmp_path / "nope"))


# --------------------------------------------------------------------- optional real-data smoke tests
def _smoke(source: str, path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} not available")
    for k, record in enumerate(iter_source(source, path)):
        if k >= 3:
            break
        pair = record.load(32)
        assert pair.color.shape == (32, 32, 3) and pair.lines.shape == (2, 32, 32)
        assert pair.lines.dtype == np.uint8 and (pair.lines[0] < 128).any()
        assert record.split == reference_split(source, record.group)


def test_smoke_real_openmoji():
    _smoke("openmoji", SHARED / "openmoji-17.0.0.tgz")


def test_smoke_real_dicebear():
    _smoke("dicebear", SHARED / "dicebear-adventurer")


def test_smoke_real_fluent():
    _smoke("fluent", SHARED / "fluent-emoji")
