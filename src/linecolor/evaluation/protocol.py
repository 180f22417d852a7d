"""The evaluation protocol: fixed hints for the test splits, every method on the same inputs, per-image metrics.

After Zhang et al. 2017 ("Real-Time User-Guided Image Colorization"): for each test image, ``K`` hints are revealed
from the ground-truth colour image (``K`` in ``DEFAULT_KS``) and the output is compared with the ground truth
(PSNR, SSIM) and with the hints under it (CIEDE2000), at every evaluation size.

Hint sampling (:func:`sample_eval_hints`)
-----------------------------------------
* Images: the ``test`` split of each source (:func:`linecolor.data.sources.iter_source`), ordered by a stable hash
  of ``source/name`` (:func:`item_key`); ``limit_per_source`` keeps the first N in that order — a fixed pseudo-random
  subset, and a larger limit is a superset of a smaller one.
* Per image and size, one ``numpy.random.default_rng((seed, item_key(source, name)))`` draws ``max(ks)`` patches
  with :func:`linecolor.data.hints.sample_point_hints`; the set for ``K`` is the first ``K`` of them, so hint sets are
  *nested* (the K=5 set contains the K=2 set) and the PSNR-vs-K curve measures the value of added information, not
  of a lucky re-draw.
* The same generator state is used at every size, so at 512 px the hints sit at (almost exactly) twice the
  256-px coordinates — both sizes see the same hints.
* Positions: the training rule, a Gaussian centred on the image with σ = ¼ of the side, clipped
  (``HintConfig(position="gaussian")``, Zhang et al.'s distribution). Chosen over uniform because every test image
  is a centred subject on white paper: uniform positions waste a large share of hints on the background, which is
  not where a user puts them.
* Size: fixed square patches of side ``2·r+1`` with ``r = hint_radius(size)`` = 2 px at 256² (5×5, a small brush
  dot), scaled with the image (4 px → 9×9 at 512²), so the hint *area* fraction is the same at both sizes and the
  same at every K.
* Colours: each patch's per-channel median of the ground truth at that size (:func:`render_hints`), computed when
  the hints are rendered. The JSON holds only positions (and the protocol parameters); colours are re-derived
  identically from the same deterministic rasterisation, so every method sees exactly the same hint pixels.

Evaluation (:func:`evaluate`)
-----------------------------
A *method* is any callable ``(line uint8 (H, W), hint_rgb uint8 (H, W, 3), hint_mask bool (H, W)) -> uint8 RGB
(H, W, 3)``; baselines are in :mod:`linecolor.evaluation.baselines`, :func:`model_method` wraps trained weights.
The line given to methods is line style 0 (the source's own line art; no XDoG), at the evaluation size.
Images whose SVG cannot be rasterised are skipped and counted (one OpenMoji test item).

Outputs in ``out_dir``: ``per_image.csv`` (one row per method × image × size × K, written as it goes),
``results.csv`` (aggregates, see :func:`aggregate`), ``evaluation.json`` (what was run, skipped items, method
fingerprints) and ``samples/`` (line, hints, ground truth and every method's output for the fixed grid images at
the grid size and K), from which :mod:`linecolor.evaluation.report` draws the qualitative grid.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from linecolor.config import HintConfig
from linecolor.data.hints import render_hints, sample_point_hints
from linecolor.data.sources import iter_source
from linecolor.errors import ConfigError, InputImageError, LinecolorError
from linecolor.evaluation.metrics import image_metrics

__all__ = [
    "DEFAULT_KS",
    "DEFAULT_SIZES",
    "EVAL_SPLIT",
    "EvaluationResults",
    "HINTS_FORMAT",
    "Method",
    "Sample",
    "aggregate",
    "evaluate",
    "hint_radius",
    "item_key",
    "load_eval_hints",
    "load_results",
    "model_method",
    "sample_eval_hints",
    "save_eval_hints",
]

Method = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

DEFAULT_KS = (0, 1, 2, 5, 10, 20, 50)
DEFAULT_SIZES = (256, 512)
EVAL_SPLIT = "test"
HINT_RADIUS_AT_256 = 2
HINT_POSITION = "gaussian"
HINTS_FORMAT = "linecolor-eval-hints"
HINTS_VERSION = 1
GRID_PER_SOURCE = 2
PER_IMAGE_FIELDS = ("method", "source", "name", "size", "k", "psnr", "ssim", "deltae00", "seconds")
AGGREGATE_FIELDS = ("method", "test_set", "size", "k", "n", "psnr", "ssim", "deltae00", "seconds")
COMBINED = "combined"


# ------------------------------------------------------------------------------------------- hints
def item_key(source: str, name: str) -> int:
    """Stable 64-bit hash of ``source/name`` (sha256), used for the subset order and the per-image seed."""
    return int.from_bytes(hashlib.sha256(f"{source}/{name}".encode("utf-8")).digest()[:8], "big")


def hint_radius(size: int) -> int:
    """Hint patch radius at an evaluation size: 2 px at 256², scaled with the size (4 px at 512²)."""
    return max(0, int(math.floor(HINT_RADIUS_AT_256 * size / 256 + 0.5)))


def _check_ks_sizes(ks: Iterable[int], sizes: Iterable[int]) -> tuple[list[int], list[int]]:
    ks, sizes = list(ks), list(sizes)
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0]
    bad_s = [s for s in sizes if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 8]
    if bad or not ks:
        raise ConfigError(f"ks must be a non-empty list of non-negative integers, got {ks!r}")
    if bad_s or not sizes:
        raise ConfigError(f"sizes must be a non-empty list of integers >= 8, got {sizes!r}")
    return sorted({int(k) for k in ks}), sorted({int(s) for s in sizes})


def _split_records(source: str, path: str | Path, limit: int | None, split: str = EVAL_SPLIT) -> list:
    records = sorted(iter_source(source, path, split=split), key=lambda r: item_key(source, r.name))
    return records if limit is None else records[:limit]


def sample_eval_hints(sources: Sequence[str], data_paths: Mapping[str, str | Path],
                      sizes: Sequence[int] = DEFAULT_SIZES, ks: Sequence[int] = DEFAULT_KS, seed: int = 0,
                      limit_per_source: int | None = None, split: str = EVAL_SPLIT) -> dict:
    """Draw the evaluation hints once (see the module doc); nothing is rasterised.

    Args:
        sources: source names (``openmoji``, ``dicebear``, ``fluent``).
        data_paths: ``{source: path}`` as accepted by :func:`linecolor.data.sources.iter_source`.
        sizes: evaluation sizes (square images of ``size × size``).
        ks: hint counts; sets are nested prefixes of one draw of ``max(ks)`` patches.
        seed: the protocol seed.
        limit_per_source: keep only the first N images of each source (stable hash order); ``None`` = all.
        split: ``test`` to report, ``val`` to choose settings and models; recorded in the hints file, which the
            evaluation then reads its images from.

    Returns:
        A JSON-serialisable dict: ``{"format", "version", "seed", "ks", "sizes", "split", "sources",
        "limit_per_source", "protocol": {...}, "items": [{"source", "name", "size", "hints": {"<K>": [[top, left,
        side], ...]}}, ...]}``.
    """
    ks_l, sizes_l = _check_ks_sizes(ks, sizes)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if limit_per_source is not None and (not isinstance(limit_per_source, int) or limit_per_source < 1):
        raise ConfigError(f"limit_per_source must be a positive integer or None, got {limit_per_source!r}")
    missing = [s for s in sources if s not in data_paths]
    if missing:
        raise ConfigError(f"no data path for source(s) {', '.join(missing)}")
    config = HintConfig(position=HINT_POSITION)
    kmax = max(ks_l)
    items = []
    for source in sources:
        for record in _split_records(source, data_paths[source], limit_per_source, split):
            for size in sizes_l:
                rng = np.random.default_rng((int(seed), item_key(source, record.name)))
                shape_only = np.zeros((size, size, 3), np.uint8)  # sample_point_hints uses only the size
                patches = sample_point_hints(shape_only, kmax, rng, radius=hint_radius(size), config=config)
                items.append({"source": source, "name": record.name, "size": size,
                              "hints": {str(k): [list(p) for p in patches[:k]] for k in ks_l}})
    return {
        "format": HINTS_FORMAT, "version": HINTS_VERSION, "seed": int(seed), "ks": ks_l, "sizes": sizes_l,
        "split": split, "sources": list(sources), "limit_per_source": limit_per_source,
        "protocol": {
            "position": HINT_POSITION, "gaussian_sigma": config.gaussian_sigma,
            "radius": {str(s): hint_radius(s) for s in sizes_l},
            "colour": "per-channel median of the ground truth inside the patch, at that size",
            "nested": "the hints for K are the first K of one draw of max(ks) patches per image and size",
            "rng": "numpy.random.default_rng((seed, int.from_bytes(sha256(f'{source}/{name}')[:8], 'big')))",
            "order": "test records sorted by the same hash; limit_per_source keeps the first N",
        },
        "items": items,
    }


def save_eval_hints(doc: Mapping, path: str | Path) -> Path:
    """Write the hints document (from :func:`sample_eval_hints`) as one JSON file."""
    _validate_hints(doc)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
    return path


def load_eval_hints(source: str | Path | Mapping) -> dict:
    """Read (and check) a hints document; a dict is checked and returned as is."""
    if isinstance(source, Mapping):
        doc = dict(source)
    else:
        try:
            doc = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LinecolorError(f"cannot read evaluation hints {source}: {exc}") from exc
    _validate_hints(doc)
    return doc


def _validate_hints(doc: Mapping) -> None:
    if not isinstance(doc, Mapping) or doc.get("format") != HINTS_FORMAT:
        raise LinecolorError(f"not a {HINTS_FORMAT!r} document")
    if doc.get("version") != HINTS_VERSION:
        raise LinecolorError(f"evaluation hints: unsupported version {doc.get('version')!r}")
    ks = [str(k) for k in doc.get("ks", [])]
    for i, item in enumerate(doc.get("items", [])):
        size = item.get("size")
        hints = item.get("hints", {})
        if not isinstance(size, int) or sorted(hints) != sorted(ks):
            raise LinecolorError(f"evaluation hints: item {i} ({item.get('source')}/{item.get('name')}) is malformed")
        for k, patches in hints.items():
            if len(patches) != int(k):
                raise LinecolorError(f"evaluation hints: item {i} has {len(patches)} patches for K={k}")
            for p in patches:
                if (len(p) != 3 or not all(isinstance(v, int) for v in p) or p[2] < 1 or p[0] < 0 or p[1] < 0
                        or p[0] + p[2] > size or p[1] + p[2] > size):
                    raise LinecolorError(f"evaluation hints: item {i} has a bad patch {p!r} for size {size}")


def hints_digest(doc: Mapping) -> str:
    """SHA-256 of a hints document (:func:`load_eval_hints`): two evaluations are comparable row by row only if
    their digests agree."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------------- methods
def model_method(weights_dir: str | Path, *, device: str = "cpu") -> Method:
    """Wrap trained weights (a ``save_pretrained`` / ``linecolor export`` directory) as an evaluation method.

    The pipeline runs in deterministic mode (z = 0) at its own working size and multiplies the full-resolution line
    back on. The returned callable has ``.pipeline`` and ``.fingerprint`` (sha256 of ``config.json``,
    ``model.safetensors`` and the region head's file, used to reuse earlier results of the *same* weights).
    """
    from linecolor.inference.pipeline import OUTPUT_VERSION, ColorizationPipeline
    from linecolor.inference.region_head import REGION_HEAD_FILE

    pipe = ColorizationPipeline.from_pretrained(weights_dir, device=device)

    def method(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray) -> np.ndarray:
        alpha = np.where(hint_mask, 255, 0).astype(np.uint8)
        hints = Image.fromarray(np.dstack([hint_rgb, alpha]), "RGBA")
        out = pipe(Image.fromarray(line, "L"), hints, mode="deterministic")
        return np.asarray(out.convert("RGB"))

    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors", REGION_HEAD_FILE):
        file = Path(weights_dir) / name
        if file.is_file():
            digest.update(file.read_bytes())
    method.pipeline = pipe  # type: ignore[attr-defined]
    # The pipeline's output version too: the same weights through changed pre/post-processing are another method.
    method.fingerprint = (  # type: ignore[attr-defined]
        f"model:{digest.hexdigest()}:pipeline-v{OUTPUT_VERSION}:suggestions-{pipe.default_suggestion_strength}")
    return method


def _fingerprint(name: str, method: Method, given: Mapping[str, str] | None) -> str | None:
    if given and name in given:
        return given[name]
    return getattr(method, "fingerprint", None)


# ----------------------------------------------------------------------------------------- results
@dataclass
class Sample:
    """One grid image: inputs, ground truth and every method's output (uint8 arrays)."""

    source: str
    name: str
    size: int
    k: int
    line: np.ndarray
    hint_rgb: np.ndarray
    hint_mask: np.ndarray
    target: np.ndarray
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class EvaluationResults:
    """What :func:`evaluate` measured.

    Attributes:
        methods: method names in evaluation order.
        sources: source names (test sets; ``"combined"`` pools them).
        sizes, ks: evaluated sizes and hint counts.
        rows: per-image rows (``PER_IMAGE_FIELDS``).
        aggregates: from :func:`aggregate`.
        skipped: ``{"source", "name", "size", "reason"}`` for images that could not be loaded.
        samples: grid images (:class:`Sample`).
        out_dir: where the files are.
        info: the ``evaluation.json`` content (seed, hints digest, fingerprints, counts).
    """

    methods: list[str]
    sources: list[str]
    sizes: list[int]
    ks: list[int]
    rows: list[dict[str, Any]]
    aggregates: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    samples: list[Sample]
    out_dir: Path
    info: dict[str, Any] = field(default_factory=dict)

    def table(self, metric: str = "psnr") -> dict[tuple[str, str, int, int], float]:
        """``{(method, test_set, size, k): value}`` of one aggregate metric."""
        return {(a["method"], a["test_set"], a["size"], a["k"]): a[metric] for a in self.aggregates}


def _nanmean(values: list[float]) -> float:
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    return float(arr.mean()) if arr.size else math.nan


def aggregate(rows: Iterable[Mapping[str, Any]], methods: Sequence[str], sources: Sequence[str],
              sizes: Sequence[int], ks: Sequence[int]) -> list[dict[str, Any]]:
    """Means per method × test set × size × K.

    Test sets are each source and ``"combined"`` (all images of all sources pooled, so larger sources weigh more,
    as in a single test set). PSNR and SSIM are means of per-image values; ΔE00 is the mean over images that have
    hints (NaN at K = 0); ``seconds`` is the mean time of one method call; ``n`` the number of images.
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["method"], r["source"], int(r["size"]), int(r["k"]))].append(r)
    out = []
    for method in methods:
        for test_set in [*sources, COMBINED]:
            for size in sizes:
                for k in ks:
                    picked = [r for s in (sources if test_set == COMBINED else [test_set])
                              for r in groups.get((method, s, size, k), [])]
                    out.append({
                        "method": method, "test_set": test_set, "size": size, "k": k, "n": len(picked),
                        "psnr": _nanmean([float(r["psnr"]) for r in picked]),
                        "ssim": _nanmean([float(r["ssim"]) for r in picked]),
                        "deltae00": _nanmean([float(r["deltae00"]) for r in picked]),
                        "seconds": _nanmean([float(r["seconds"]) for r in picked]),
                    })
    return out


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.10g}"
    return v


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], fields: Sequence[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _fmt(r[k]) for k in fields})
    return path


def read_per_image(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``per_image.csv`` with numbers parsed."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows.append({**r, "size": int(r["size"]), "k": int(r["k"]), "psnr": float(r["psnr"]),
                         "ssim": float(r["ssim"]), "deltae00": float(r["deltae00"]), "seconds": float(r["seconds"])})
    return rows


# --------------------------------------------------------------------------------------- evaluation
def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "_"


def _grid_items(doc: Mapping, sources: Sequence[str], per_source: int = GRID_PER_SOURCE) -> list[tuple[str, str]]:
    picked: list[tuple[str, str]] = []
    for source in sources:
        names = sorted({it["name"] for it in doc["items"] if it["source"] == source},
                       key=lambda n: item_key(source, n))
        picked += [(source, n) for n in names[:per_source]]
    return picked


def _as_output(out: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    arr = np.asarray(out.convert("RGB") if isinstance(out, Image.Image) else out)
    if arr.dtype != np.uint8 or arr.shape != (*shape, 3):
        raise LinecolorError(f"method {name!r} returned {arr.dtype} {arr.shape}, expected uint8 {(*shape, 3)}")
    return arr


def _hints_preview(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray) -> np.ndarray:
    """RGBA hint layer for samples/ (alpha marks hints)."""
    return np.dstack([hint_rgb, np.where(hint_mask, 255, 0).astype(np.uint8)])


def evaluate(methods: Mapping[str, Method], hints_json: str | Path | Mapping, data_paths: Mapping[str, str | Path],
             sizes: Sequence[int] | None = None, ks: Sequence[int] | None = None, out_dir: str | Path = "evaluation",
             *, progress: bool = True, fingerprints: Mapping[str, str] | None = None,
             reuse_rows: Iterable[Mapping[str, Any]] | None = None, grid_size: int = 256,
             grid_k: int = 10) -> EvaluationResults:
    """Run every method on every test image, size and K of the hints file; write per-image and aggregate CSVs.

    Args:
        methods: ``{name: callable(line, hint_rgb, hint_mask) -> uint8 RGB}`` (see :func:`model_method`).
        hints_json: path of a hints file or the dict from :func:`sample_eval_hints`.
        data_paths: ``{source: path}`` for every source in the hints file.
        sizes, ks: subsets of the file's sizes / Ks to evaluate (``None``: all of them).
        out_dir: output folder (created).
        progress: print one line per image and size to stderr.
        fingerprints: ``{name: id}`` identifying what a method computes (default: the callable's ``fingerprint``
            attribute); rows of ``reuse_rows`` are reused only for methods with a fingerprint.
        reuse_rows: per-image rows of an earlier run *on the same hints* whose methods have the same fingerprints;
            those (method, source, name, size, K) cells are not recomputed (grid samples always are).
        grid_size, grid_k: size and K of the qualitative samples (nearest available when absent).

    Returns:
        :class:`EvaluationResults` (also written: ``per_image.csv``, ``results.csv``, ``evaluation.json``,
        ``samples/``).
    """
    if not methods:
        raise ConfigError("no methods to evaluate")
    doc = load_eval_hints(hints_json)
    sizes_l = list(doc["sizes"]) if sizes is None else _check_ks_sizes([0], sizes)[1]
    ks_l = list(doc["ks"]) if ks is None else _check_ks_sizes(ks, [8])[0]
    missing_s = [s for s in sizes_l if s not in doc["sizes"]]
    missing_k = [k for k in ks_l if k not in doc["ks"]]
    if missing_s or missing_k:
        raise ConfigError(f"the hints file has sizes {doc['sizes']} and ks {doc['ks']}; "
                          f"asked for missing sizes {missing_s} / ks {missing_k}")
    sources = [s for s in doc["sources"] if any(it["source"] == s for it in doc["items"])]
    missing = [s for s in sources if s not in data_paths]
    if missing:
        raise ConfigError(f"no data path for source(s) {', '.join(missing)}")
    grid_size = min(sizes_l, key=lambda s: (abs(s - grid_size), s))
    grid_k = min(ks_l, key=lambda k: (abs(k - grid_k), k))
    grid = set(_grid_items(doc, sources))

    out_dir = Path(out_dir)
    (out_dir / "samples").mkdir(parents=True, exist_ok=True)
    names = list(methods)
    prints = {n: _fingerprint(n, methods[n], fingerprints) for n in names}
    reusable: dict[tuple, Mapping[str, Any]] = {}
    for r in reuse_rows or []:
        if r["method"] in names and prints.get(r["method"]):
            reusable[(r["method"], r["source"], r["name"], int(r["size"]), int(r["k"]))] = r

    by_item: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for it in doc["items"]:
        if it["source"] in sources and it["size"] in sizes_l:
            by_item[(it["source"], it["name"])][it["size"]] = it["hints"]
    n_items = len(by_item)

    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    samples: list[Sample] = []
    reused = 0
    start = time.perf_counter()
    per_image_path = out_dir / "per_image.csv"
    with open(per_image_path, "w", newline="", encoding="utf-8") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=list(PER_IMAGE_FIELDS))
        writer.writeheader()
        done = 0
        split = doc.get("split", EVAL_SPLIT)
        for source in sources:
            records = {r.name: r for r in iter_source(source, data_paths[source], split=split)}
            for (src, name), per_size in by_item.items():
                if src != source:
                    continue
                done += 1
                record = records.get(name)
                if record is None:
                    raise LinecolorError(f"{source}/{name} of the hints file is not in the {split} split of "
                                         f"{data_paths[source]}; were the hints drawn from other data?")
                for size in sizes_l:
                    t0 = time.perf_counter()
                    todo = [(n, k) for n in names for k in ks_l if (n, source, name, size, k) not in reusable]
                    in_grid = (source, name) in grid and size == grid_size
                    if not todo and not in_grid:
                        for n in names:
                            for k in ks_l:
                                row = {f: reusable[(n, source, name, size, k)][f] for f in PER_IMAGE_FIELDS}
                                rows.append(row)
                                writer.writerow({f: _fmt(row[f]) for f in PER_IMAGE_FIELDS})
                                reused += 1
                        continue
                    try:
                        pair = record.load(size, extra_xdog=False)
                    except InputImageError as exc:
                        skipped.append({"source": source, "name": name, "size": size, "reason": str(exc)})
                        if progress:
                            print(f"[{done}/{n_items}] {source}/{name} @{size}: skipped ({exc})", file=sys.stderr)
                        continue
                    line, target = pair.lines[0], pair.color
                    for k in ks_l:
                        hint_rgb, hint_mask = render_hints(target, per_size[size][str(k)])
                        sample = None
                        if in_grid and k == grid_k:
                            sample = Sample(source, name, size, k, line, hint_rgb, hint_mask, target)
                            samples.append(sample)
                        for n in names:
                            key = (n, source, name, size, k)
                            if key in reusable and sample is None:
                                row = {f: reusable[key][f] for f in PER_IMAGE_FIELDS}
                                reused += 1
                            else:
                                t = time.perf_counter()
                                out = _as_output(methods[n](line, hint_rgb, hint_mask), line.shape, n)
                                seconds = time.perf_counter() - t
                                if sample is not None:
                                    sample.outputs[n] = out
                                if key in reusable:
                                    row = {f: reusable[key][f] for f in PER_IMAGE_FIELDS}
                                    reused += 1
                                else:
                                    row = {"method": n, "source": source, "name": name, "size": size, "k": k,
                                           **image_metrics(out, target, hint_rgb, hint_mask), "seconds": seconds}
                            rows.append(row)
                            writer.writerow({f: _fmt(row[f]) for f in PER_IMAGE_FIELDS})
                    csv_file.flush()
                    if progress:
                        elapsed = time.perf_counter() - start
                        print(f"[{done}/{n_items}] {source}/{name} @{size}: {time.perf_counter() - t0:.1f} s "
                              f"(elapsed {elapsed / 60:.1f} min)", file=sys.stderr)

    aggregates = aggregate(rows, names, sources, sizes_l, ks_l)
    write_csv(out_dir / "results.csv", aggregates, AGGREGATE_FIELDS)
    sample_index = _write_samples(out_dir / "samples", samples, names)
    counts = {s: len({(r["name"]) for r in rows if r["source"] == s}) for s in sources}
    info = {
        "hints_digest": hints_digest(doc), "seed": doc["seed"], "split": doc.get("split", EVAL_SPLIT),
        "limit_per_source": doc.get("limit_per_source"), "protocol": doc.get("protocol", {}),
        "methods": names, "fingerprints": prints, "sources": sources, "sizes": sizes_l, "ks": ks_l,
        "images": counts, "skipped": skipped, "grid": {"size": grid_size, "k": grid_k, "items": sample_index},
        "reused_rows": reused, "wall_seconds": time.perf_counter() - start,
    }
    (out_dir / "evaluation.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    if progress:
        print(f"evaluated {sum(counts.values())} images × {len(sizes_l)} sizes × {len(ks_l)} K × "
              f"{len(names)} methods in {info['wall_seconds'] / 60:.1f} min "
              f"({reused} rows reused, {len(skipped)} skipped)",
              file=sys.stderr)
    return EvaluationResults(names, sources, sizes_l, ks_l, rows, aggregates, skipped, samples, out_dir, info)


def _write_samples(folder: Path, samples: list[Sample], names: list[str]) -> list[dict[str, Any]]:
    index = []
    for s in samples:
        stem = _safe(f"{s.source}__{s.name}__{s.size}__k{s.k}")
        d = folder / stem
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(s.line, "L").save(d / "line.png")
        Image.fromarray(_hints_preview(s.line, s.hint_rgb, s.hint_mask), "RGBA").save(d / "hints.png")
        Image.fromarray(s.target, "RGB").save(d / "target.png")
        files = {}
        for n in names:
            if n in s.outputs:
                files[n] = f"out_{_safe(n)}.png"
                Image.fromarray(s.outputs[n], "RGB").save(d / files[n])
        index.append({"source": s.source, "name": s.name, "size": s.size, "k": s.k, "dir": stem, "outputs": files})
    return index


def _read_png(path: Path, mode: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert(mode))


def load_results(out_dir: str | Path) -> EvaluationResults:
    """Re-read an evaluation folder written by :func:`evaluate` (to redraw the report or merge runs)."""
    out_dir = Path(out_dir)
    try:
        info = json.loads((out_dir / "evaluation.json").read_text(encoding="utf-8"))
        rows = read_per_image(out_dir / "per_image.csv")
    except (OSError, json.JSONDecodeError, KeyError, ValueError) as exc:
        raise LinecolorError(f"{out_dir} does not hold a complete evaluation: {exc}") from exc
    samples = []
    for entry in info.get("grid", {}).get("items", []):
        d = out_dir / "samples" / entry["dir"]
        try:
            hints = _read_png(d / "hints.png", "RGBA")
            sample = Sample(entry["source"], entry["name"], entry["size"], entry["k"], _read_png(d / "line.png", "L"),
                            np.ascontiguousarray(hints[..., :3]), hints[..., 3] > 0,
                            _read_png(d / "target.png", "RGB"))
            for n, f in entry["outputs"].items():
                sample.outputs[n] = _read_png(d / f, "RGB")
        except OSError:
            continue
        samples.append(sample)
    aggregates = aggregate(rows, info["methods"], info["sources"], info["sizes"], info["ks"])
    return EvaluationResults(info["methods"], info["sources"], info["sizes"], info["ks"], rows, aggregates,
                             info.get("skipped", []), samples, out_dir, info)
