"""Evaluation: metrics, baselines, hint protocol, evaluate + report, model wrapper (synthetic data only)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image

from linecolor.data.hints import render_hints
from linecolor.data.pair import Pair
from linecolor.errors import ConfigError, InputImageError, LinecolorError
from linecolor.evaluation import (
    BASELINES,
    evaluate,
    hint_adherence,
    levin,
    line_only,
    load_eval_hints,
    load_results,
    model_method,
    protocol,
    psnr,
    region_fill,
    run_evaluation,
    sample_eval_hints,
    save_eval_hints,
    ssim,
    write_report,
)
from linecolor.evaluation.metrics import PSNR_CAP
from linecolor.models.colorizer import Colorizer

from conftest import draw_pair, tiny_model_config

RED, BLUE = (220, 30, 30), (30, 30, 220)


# ---------------------------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models run faster on one thread, above all on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ring_line(size: int = 64, radius: float = 18.0, width: float = 2.0) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    d = np.hypot(yy - size / 2, xx - size / 2)
    return np.where(np.abs(d - radius) <= width / 2 + 0.5, 0, 255).astype(np.uint8)


def hints_at(size: int, spots: list[tuple[int, int, tuple[int, int, int]]], half: int = 1):
    rgb = np.zeros((size, size, 3), np.uint8)
    mask = np.zeros((size, size), bool)
    for r, c, colour in spots:
        rgb[r - half:r + half + 1, c - half:c + half + 1] = colour
        mask[r - half:r + half + 1, c - half:c + half + 1] = True
    return rgb, mask


@dataclass
class FakeRecord:
    source: str
    name: str
    index: int
    broken: bool = False
    split: str = "test"

    def load(self, size: int, *, extra_xdog: bool = True) -> Pair:
        if self.broken:
            raise InputImageError(f"{self.name}: cannot rasterise")
        p = draw_pair(self.index, size)
        return Pair(color=p.color, lines=p.lines, name=self.name)


FAKE = {"openmoji": [FakeRecord("openmoji", "a", 1), FakeRecord("openmoji", "b", 2),
                     FakeRecord("openmoji", "broken", 0, broken=True)],
        "fluent": [FakeRecord("fluent", "c", 3)]}


@pytest.fixture
def fake_sources(monkeypatch, tmp_path):
    def fake_iter(source, path, split=None):
        return iter([r for r in FAKE[source] if split is None or r.split == split])

    monkeypatch.setattr(protocol, "iter_source", fake_iter)
    paths = {"openmoji": tmp_path / "openmoji-17.0.0.tgz", "fluent": tmp_path / "fluent-emoji"}
    paths["openmoji"].write_bytes(b"")
    paths["fluent"].mkdir()
    return paths


def fake_method(line, hint_rgb, hint_mask):
    out = np.repeat(line[..., None], 3, axis=2).copy()
    out[hint_mask] = hint_rgb[hint_mask]
    return out


# ---------------------------------------------------------------------------------------- metrics
def test_metrics_on_identical_images_and_exact_hints():
    img = np.asarray(Image.fromarray(draw_pair(4, 48).color))
    assert psnr(img, img) in (math.inf, PSNR_CAP)
    assert ssim(img, img) == pytest.approx(1.0)
    other = img.copy()
    other[:8] = 0
    assert 0 < psnr(other, img) < 40 and ssim(other, img) < 1
    hint_rgb, hint_mask = render_hints(img, [(10, 10, 5), (30, 20, 3)])
    exact = img.copy()
    exact[hint_mask] = hint_rgb[hint_mask]
    assert hint_adherence(exact, hint_rgb, hint_mask) == pytest.approx(0.0, abs=1e-9)
    assert hint_adherence(255 - exact, hint_rgb, hint_mask) > 10
    assert math.isnan(hint_adherence(img, hint_rgb, np.zeros_like(hint_mask)))


# --------------------------------------------------------------------------------------- baselines
def test_line_only_is_paper_with_lines():
    line = ring_line()
    out = line_only(line, *hints_at(64, [(32, 32, RED)]))
    assert out.dtype == np.uint8 and out.shape == (64, 64, 3)
    assert np.array_equal(out[..., 0], line) and np.array_equal(out[..., 2], line)


def test_region_fill_fills_the_closed_circle_and_stops_at_the_line():
    line = ring_line()
    out = region_fill(line, *hints_at(64, [(32, 32, RED)]))
    yy, xx = np.mgrid[:64, :64]
    d = np.hypot(yy - 32, xx - 32)
    inside, outside = d < 15, d > 21
    assert np.all(out[inside] == RED)
    assert np.all(out[outside] == 255)
    assert np.all(out[line < 128] == 0)  # the line is multiplied on
    # two hints in one region → their mean; a hint on the line is ignored
    out2 = region_fill(line, *hints_at(64, [(30, 30, RED), (34, 34, BLUE), (32, 14, (0, 255, 0))]))
    assert np.all(np.abs(out2[32, 32].astype(int) - np.array([125, 30, 125])) <= 1)
    assert np.all(out2[outside] == 255)


def test_levin_propagates_within_regions_more_than_across_a_line():
    size = 64
    spots = [(32, 8, RED), (32, 55, BLUE)]
    blank = np.full((size, size), 255, np.uint8)
    wall = blank.copy()
    wall[:, 31:33] = 0  # a strong vertical line, full height
    open_out = levin(blank, *hints_at(size, spots)).astype(int)
    wall_out = levin(wall, *hints_at(size, spots)).astype(int)

    def redness(img, c):
        return img[32, c, 0] - img[32, c, 2]

    # without the line the colours meet half-way; with it each side keeps its own hint's colour
    assert redness(wall_out, 29) > redness(open_out, 29) + 40
    assert redness(wall_out, 35) < redness(open_out, 35) - 40
    assert redness(wall_out, 29) > 100 and redness(wall_out, 35) < -100
    # hint pixels are reproduced
    rgb, mask = hints_at(size, spots)
    assert np.abs(wall_out[mask] - rgb[mask]).max() <= 1
    # the literal paper variant keeps Y from the line art, so it is paler but follows the same hue
    literal = levin(wall, rgb, mask, luma_from_line=True).astype(int)
    assert literal[32, 8, 0] > literal[32, 8, 2] and literal[32, 8].mean() > wall_out[32, 8].mean()
    # no hints → the line only
    assert np.array_equal(levin(wall, rgb, np.zeros_like(mask)), line_only(wall, rgb, mask))


def test_baselines_reject_mismatched_shapes():
    for fn in BASELINES.values():
        with pytest.raises(InputImageError):
            fn(np.full((8, 8), 255, np.uint8), np.zeros((8, 9, 3), np.uint8), np.zeros((8, 8), bool))


# ----------------------------------------------------------------------------------------- hints
def test_eval_hints_are_nested_seeded_and_round_trip(fake_sources, tmp_path):
    doc = sample_eval_hints(["openmoji", "fluent"], fake_sources, (64, 128), (0, 2, 5, 10), seed=3)
    assert {(i["source"], i["name"], i["size"]) for i in doc["items"]} == {
        (s, n, z) for s, n in [("openmoji", "a"), ("openmoji", "b"), ("openmoji", "broken"), ("fluent", "c")]
        for z in (64, 128)}
    for item in doc["items"]:
        h = item["hints"]
        assert [len(h[k]) for k in ("0", "2", "5", "10")] == [0, 2, 5, 10]
        assert h["10"][:5] == h["5"] and h["5"][:2] == h["2"]
        assert all(p[2] == 2 * protocol.hint_radius(item["size"]) + 1 for p in h["10"])
    # the same seed gives the same hints, another seed others; larger sizes put hints at ~2× the coordinates
    assert sample_eval_hints(["openmoji", "fluent"], fake_sources, (64, 128), (0, 2, 5, 10), seed=3) == doc
    other = sample_eval_hints(["openmoji", "fluent"], fake_sources, (64, 128), (0, 2, 5, 10), seed=4)
    assert other["items"] != doc["items"]
    small = next(i for i in doc["items"] if i["name"] == "a" and i["size"] == 64)["hints"]["10"]
    big = next(i for i in doc["items"] if i["name"] == "a" and i["size"] == 128)["hints"]["10"]
    assert np.mean([abs(2 * s[0] - b[0]) for s, b in zip(small, big)]) < 4
    # limit keeps a hash-ordered prefix
    one = sample_eval_hints(["openmoji"], fake_sources, (64,), (0, 2), seed=3, limit_per_source=1)
    assert len(one["items"]) == 1
    path = save_eval_hints(doc, tmp_path / "h" / "hints.json")
    assert load_eval_hints(path) == doc
    json.loads(path.read_text())
    bad = json.loads(path.read_text())
    bad["items"][0]["hints"]["2"] = [[0, 0, 999], [0, 0, 1]]
    with pytest.raises(LinecolorError):
        load_eval_hints(bad)


# ------------------------------------------------------------------------------- evaluate + report
@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny_weights")
    Colorizer(tiny_model_config(working_size=64)).save_pretrained(directory)
    return directory


def test_model_method_wraps_a_pipeline(tiny_weights):
    method = model_method(tiny_weights)
    pair = draw_pair(5, 96)
    hint_rgb, hint_mask = render_hints(pair.color, [(40, 40, 5)])
    out = method(pair.lines[0], hint_rgb, hint_mask)
    assert out.dtype == np.uint8 and out.shape == (96, 96, 3)
    assert np.array_equal(out, method(pair.lines[0], hint_rgb, hint_mask))  # deterministic mode
    assert method.fingerprint.startswith("model:") and method.fingerprint == model_method(tiny_weights).fingerprint


def test_evaluate_and_report_write_every_file(fake_sources, tiny_weights, tmp_path):
    ks = (0, 2, 10)
    doc = sample_eval_hints(["openmoji", "fluent"], fake_sources, (64,), ks, seed=0)
    methods = {"tiny": model_method(tiny_weights), "fake": fake_method, **BASELINES}
    out = tmp_path / "eval"
    res = evaluate(methods, doc, fake_sources, None, None, out, progress=False)
    files = write_report(res)
    for name in ("results.md", "results.csv", "psnr_vs_hints.png", "grid.png", "per_image.csv", "evaluation.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in ("grid.png", "psnr_vs_hints.png"):
        with Image.open(out / name) as image:
            assert image.size[0] > 200
    assert files["markdown"] == out / "results.md"

    assert [(s["source"], s["name"]) for s in res.skipped] == [("openmoji", "broken")]
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(methods) * 3 * len(ks)  # 3 loadable images × 1 size
    grid = set(protocol._grid_items(doc, ["openmoji", "fluent"])) - {("openmoji", "broken")}
    assert {(s.source, s.name) for s in res.samples} == grid
    assert all(set(s.outputs) == set(methods) for s in res.samples)

    md = (out / "results.md").read_text()
    header = "| test set | method | " + " | ".join(f"K={k}" for k in ks) + " |"
    assert md.count(header) == 3  # PSNR, SSIM, ΔE00 at the one size
    for m in methods:
        table_rows = [line for line in md.splitlines() if line.startswith("|") and f"| {m} |" in line
                      and len(line.strip("|").split("|")) == 2 + len(ks)]
        assert len(table_rows) == 3 * 3  # 3 metrics × (combined, openmoji, fluent)
    assert "Zhang et al. 2017" in md and "openmoji/broken" in md

    agg = {(a["method"], a["test_set"], a["k"]): a for a in res.aggregates}
    assert set(agg) == {(m, t, k) for m in methods for t in ("openmoji", "fluent", "combined") for k in ks}
    assert agg[("fake", "combined", 0)]["n"] == 3 and math.isnan(agg[("fake", "combined", 0)]["deltae00"])
    assert agg[("fake", "combined", 10)]["deltae00"] == pytest.approx(0.0, abs=1e-9)  # it pastes the hints
    assert agg[("region_fill", "combined", 10)]["psnr"] > agg[("line_only", "combined", 10)]["psnr"]
    assert agg[("line_only", "combined", 0)]["psnr"] == agg[("line_only", "combined", 10)]["psnr"]

    again = load_results(out)
    assert again.methods == res.methods and len(again.rows) == len(res.rows) and len(again.samples) == len(grid)
    assert again.table("psnr") == pytest.approx(res.table("psnr"), rel=1e-8, nan_ok=True)


def test_run_evaluation_reuses_rows_of_unchanged_methods(fake_sources, tmp_path):
    root = fake_sources["openmoji"].parent
    kwargs = dict(data_root=root, sources=("openmoji", "fluent"), sizes=(64,), ks=(0, 2, 5), progress=False)
    first = run_evaluation({}, tmp_path / "ev", **kwargs)
    assert (tmp_path / "ev" / "hints.json").is_file() and first["results"].info["reused_rows"] == 0
    second = run_evaluation({}, tmp_path / "ev", **kwargs)
    assert second["results"].info["reused_rows"] > 0
    assert second["results"].table("psnr") == pytest.approx(first["results"].table("psnr"), nan_ok=True)


def test_run_evaluation_on_the_val_split_reads_only_val_images_and_keeps_its_hints_to_it(fake_sources, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.setitem(FAKE, "openmoji", [*FAKE["openmoji"], FakeRecord("openmoji", "v", 5, split="val")])
    root = fake_sources["openmoji"].parent
    kwargs = dict(data_root=root, sources=("openmoji",), sizes=(64,), ks=(0, 2), progress=False)
    out = run_evaluation({}, tmp_path / "ev", split="val", **kwargs)
    doc = json.loads((tmp_path / "ev" / "hints.json").read_text())
    assert doc["split"] == "val" and {item["name"] for item in doc["items"]} == {"v"}
    assert out["results"].rows and {row["name"] for row in out["results"].rows} == {"v"}
    report = (tmp_path / "ev" / "results.md").read_text(encoding="utf-8")
    assert "Val splits of openmoji" in report and "Test splits" not in report  # the report names its split
    with pytest.raises(ConfigError, match="val split"):  # test-split numbers never come from val hints
        run_evaluation({}, tmp_path / "ev", **kwargs)


def test_a_changed_baseline_version_recomputes_only_that_baseline(fake_sources, tmp_path, monkeypatch):
    from linecolor.evaluation import baselines

    assert set(baselines.BASELINE_VERSIONS) == set(baselines.BASELINES)  # every baseline is versioned
    root = fake_sources["openmoji"].parent
    kwargs = dict(data_root=root, sources=("openmoji",), sizes=(64,), ks=(0, 2), progress=False)
    first = run_evaluation({}, tmp_path / "ev", **kwargs)
    monkeypatch.setitem(baselines.BASELINE_VERSIONS, "hint_fill", "changed")
    second = run_evaluation({}, tmp_path / "ev", **kwargs)
    rows_per_method = len(first["results"].rows) // len(baselines.BASELINES)
    assert second["results"].info["reused_rows"] == len(first["results"].rows) - rows_per_method
    assert second["results"].info["fingerprints"]["hint_fill"] == "baseline:hint_fill:vchanged"
