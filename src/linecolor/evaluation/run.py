"""One call for the whole evaluation: hints, every method, report (what ``linecolor evaluate`` runs)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from linecolor.data.names import EVALUATION_SOURCES, SOURCE_FOLDERS
from linecolor.errors import ConfigError, LinecolorError
from linecolor.evaluation import baselines as _baselines
from linecolor.evaluation.protocol import (
    DEFAULT_KS,
    DEFAULT_SIZES,
    evaluate,
    hints_digest,
    load_eval_hints,
    model_method,
    read_per_image,
    sample_eval_hints,
    save_eval_hints,
)
from linecolor.evaluation.report import write_report

__all__ = ["DATA_FILES", "run_evaluation"]

DATA_FILES = SOURCE_FOLDERS
"""Where each source lives under ``data_root`` (:data:`linecolor.data.names.SOURCE_FOLDERS`)."""


def run_evaluation(weights: Mapping[str, str | Path], out_dir: str | Path, *, data_root: str | Path = "../shared/data",
                   sources: Sequence[str] = EVALUATION_SOURCES, sizes: Sequence[int] = DEFAULT_SIZES,
                   ks: Sequence[int] = DEFAULT_KS, limit_per_source: int | None = None, seed: int = 0,
                   hints_file: str | Path | None = None, baselines: bool = True, progress: bool = True,
                   reuse: bool = True, split: str = "test") -> dict[str, Any]:
    """Evaluate trained weights and the classical baselines on the test splits (or, to choose between models, the
    ``val`` splits); write the report.

    Steps: (1) load the hints from ``hints_file`` if it exists, else draw them (:func:`sample_eval_hints`) and save
    them there (default ``out_dir/hints.json``) — keep that file to compare later models on the very same hints;
    (2) run every method (each ``weights`` entry through :func:`model_method`, then the baselines ``line_only``,
    ``region_fill``, ``levin`` and ``hint_fill`` when ``baselines``) with :func:`evaluate`; (3) :func:`write_report`.

    Args:
        weights: ``{method name: weights directory}`` (may be empty when only baselines are wanted).
        out_dir: output folder: ``hints.json``, ``per_image.csv``, ``results.csv``, ``results.md``,
            ``psnr_vs_hints.png``, ``grid.png``, ``evaluation.json``, ``samples/``.
        data_root: folder holding the sources as laid out in ``DATA_FILES``.
        sources, sizes, ks, limit_per_source, seed: the protocol (used only when the hints are drawn; with an
            existing ``hints_file``, ``sizes``/``ks`` select subsets of it and ``sources`` filters it).
        hints_file: where the hints are read from / written to.
        baselines: also run the baselines (:data:`linecolor.evaluation.baselines.BASELINES`).
        progress: progress lines on stderr.
        split: the split new hints are drawn on (an existing ``hints_file`` names its own; asking for another
            split than it names is refused).
        reuse: reuse per-image rows of an earlier run in ``out_dir`` on the same hints for methods whose
            fingerprint (weights sha256, baseline version) is unchanged — the baselines at 512² take most of the
            time (Levin ≈ 2 s per call), so a second model costs only its own time.

    Returns:
        ``{"results": EvaluationResults, "files": {name: path}, "hints_file": path}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_root = Path(data_root)
    unknown = [s for s in sources if s not in DATA_FILES]
    if unknown:
        raise ConfigError(f"unknown source(s) {', '.join(unknown)}; valid: {', '.join(DATA_FILES)}")
    data_paths = {s: data_root / DATA_FILES[s] for s in sources}
    absent = [str(p) for p in data_paths.values() if not p.exists()]
    if absent:
        raise LinecolorError(f"test data not found: {', '.join(absent)} (set data_root)")

    hints_path = Path(hints_file) if hints_file is not None else out_dir / "hints.json"
    if hints_path.is_file():
        doc = load_eval_hints(hints_path)
        if doc.get("split", "test") != split:
            raise ConfigError(f"{hints_path} holds hints for the {doc.get('split', 'test')} split, not {split}: "
                              f"use another output directory or --hints file")
        wanted = set(sources)
        doc = {**doc, "sources": [s for s in doc["sources"] if s in wanted],
               "items": [it for it in doc["items"] if it["source"] in wanted]}
        eval_sizes = [s for s in sizes if s in doc["sizes"]]
        eval_ks = [k for k in ks if k in doc["ks"]]
        if not eval_sizes or not eval_ks or not doc["items"]:
            raise ConfigError(f"{hints_path} has sizes {doc['sizes']}, ks {doc['ks']} and sources "
                              f"{sorted({i['source'] for i in doc['items']})} — none of the requested sizes "
                              f"{list(sizes)} / ks {list(ks)} / sources {list(sources)}; use another hints_file")
        if progress:
            print(f"using the hints in {hints_path}", file=sys.stderr)
    else:
        doc = sample_eval_hints(sources, data_paths, sizes, ks, seed, limit_per_source, split=split)
        save_eval_hints(doc, hints_path)
        eval_sizes, eval_ks = None, None
        if progress:
            print(f"drew evaluation hints for {len({(i['source'], i['name']) for i in doc['items']})} images "
                  f"→ {hints_path}", file=sys.stderr)

    methods: dict[str, Any] = {}
    fingerprints: dict[str, str] = {}
    for name, directory in weights.items():
        if name in _baselines.BASELINES and baselines:
            raise ConfigError(f"model name {name!r} clashes with a baseline's name")
        methods[name] = model_method(directory)
        fingerprints[name] = methods[name].fingerprint
    if baselines:
        for name, fn in _baselines.BASELINES.items():
            methods[name] = fn
            fingerprints[name] = f"baseline:{name}:v{_baselines.BASELINE_VERSIONS[name]}"
    if not methods:
        raise ConfigError("nothing to evaluate: no weights given and baselines=False")

    reuse_rows = None
    previous = out_dir / "evaluation.json"
    if reuse and previous.is_file() and (out_dir / "per_image.csv").is_file():
        try:
            info = json.loads(previous.read_text(encoding="utf-8"))
            if info.get("hints_digest") == hints_digest(doc):
                same = {m for m, f in info.get("fingerprints", {}).items() if f and fingerprints.get(m) == f}
                reuse_rows = [r for r in read_per_image(out_dir / "per_image.csv") if r["method"] in same]
        except (OSError, ValueError, KeyError):
            reuse_rows = None

    results = evaluate(methods, doc, data_paths, eval_sizes, eval_ks, out_dir, progress=progress,
                       fingerprints=fingerprints, reuse_rows=reuse_rows)
    files = write_report(results, out_dir)
    files.update({"per_image": out_dir / "per_image.csv", "hints": hints_path, "info": out_dir / "evaluation.json"})
    return {"results": results, "files": files, "hints_file": hints_path}
