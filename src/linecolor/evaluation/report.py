"""Turn :class:`~linecolor.evaluation.protocol.EvaluationResults` into the files a reader looks at.

* ``results.md`` — per size, one markdown table per metric (PSNR, SSIM, ΔE00), rows = test set × method (combined
  first), columns = K; the best value of each column within a test set in bold; the Zhang et al. 2017 ImageNet PSNR
  curve as a reference row (different data); mean seconds per method call; images and skipped items.
* ``results.csv`` — the aggregates (``method, test_set, size, k, n, psnr, ssim, deltae00, seconds``).
* ``psnr_vs_hints.png`` — PSNR against K on the combined test set, one line per method, one panel per size, the
  Zhang et al. curve dashed.
* ``grid.png`` — qualitative grid for the fixed sample images: line | hints | each method | ground truth.

matplotlib (Agg backend) is imported only here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from linecolor.evaluation.protocol import AGGREGATE_FIELDS, COMBINED, EvaluationResults, Sample, write_csv

__all__ = ["ZHANG_2017_PSNR", "ZHANG_2017_LABEL", "hints_preview", "write_report"]

ZHANG_2017_PSNR = {0: 24.43, 1: 25.37, 2: 26.20, 5: 27.39, 10: 28.42, 20: 29.34, 50: 30.42, 100: 31.13}
"""Zhang et al. 2017, PSNR (dB) vs number of random hints on ImageNet at 256² (their Fig. 4 / Table)."""
ZHANG_2017_LABEL = "Zhang et al. 2017 (ImageNet photos, different data)"

_METRICS = (
    ("psnr", "PSNR (dB, higher is better)", max, "{:.2f}"),
    ("ssim", "SSIM (higher is better)", max, "{:.3f}"),
    ("deltae00", "Hint adherence: mean CIEDE2000 inside hinted pixels (lower is better; noticeable above ~2–3)",
     min, "{:.2f}"),
)


def _fmt(fmt: str, v: float) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def _markdown(results: EvaluationResults) -> str:
    info = results.info
    table = {m: results.table(m) for m, *_ in _METRICS}
    n_images = {(a["test_set"], a["size"]): a["n"] for a in results.aggregates}
    sets = [COMBINED, *results.sources]
    lines = ["# Evaluation results", ""]
    protocol = info.get("protocol", {})
    radius = protocol.get("radius", {})
    sizes_txt = ", ".join(f"{s}² ({2 * int(radius.get(str(s), 0)) + 1}×{2 * int(radius.get(str(s), 0)) + 1} px)"
                          for s in results.sizes)
    lines += [
        f"{str(info.get('split', 'test')).capitalize()} splits of {', '.join(results.sources)}; "
        f"hints K ∈ {{{', '.join(map(str, results.ks))}}} revealed from "
        f"the ground truth (square patches at {sizes_txt}, {protocol.get('position', '?')} positions, colour = patch "
        f"median; nested: the K-hint set contains every smaller set), seed {info.get('seed')}, "
        f"limit per source {info.get('limit_per_source')}. Every method saw the same hints "
        f"(hints digest `{str(info.get('hints_digest', ''))[:12]}`).",
        "",
        "Images per source: " + ", ".join(f"{s} {info.get('images', {}).get(s, '?')}" for s in results.sources)
        + f"; skipped (could not be rasterised): {len(results.skipped)}"
        + (" — " + ", ".join(sorted({f"{d['source']}/{d['name']}" for d in results.skipped})) if results.skipped
           else "") + ".",
        "",
        "Methods: " + ", ".join(f"`{m}`" for m in results.methods) + ". Baselines: `line_only` = white paper with the "
        "line art; `region_fill` = paint bucket (each line-bounded region takes the mean colour of its hints); "
        "`levin` = colourisation by optimisation (Levin et al. 2004) propagating the hints with line-art affinities.",
        "",
    ]
    for size in results.sizes:
        lines += [f"## {size} × {size}", ""]
        for metric, title, best_fn, fmt in _METRICS:
            lines += [f"### {title}", "", "| test set | method | " + " | ".join(f"K={k}" for k in results.ks) + " |",
                      "|---|---|" + "---:|" * len(results.ks)]
            for test_set in sets:
                best = {}
                for k in results.ks:
                    vals = [table[metric].get((m, test_set, size, k), math.nan) for m in results.methods]
                    vals = [v for v in vals if not math.isnan(v)]
                    best[k] = best_fn(vals) if vals and min(vals) != max(vals) else None  # no bold on ties
                for m in results.methods:
                    cells = []
                    for k in results.ks:
                        v = table[metric].get((m, test_set, size, k), math.nan)
                        txt = _fmt(fmt, v)
                        if len(results.methods) > 1 and best[k] is not None and not math.isnan(v) and v == best[k]:
                            txt = f"**{txt}**"
                        cells.append(txt)
                    label = f"{test_set} ({n_images.get((test_set, size), 0)})" if m == results.methods[0] else ""
                    lines.append(f"| {label} | {m} | " + " | ".join(cells) + " |")
            if metric == "psnr":
                lines.append(f"| reference | {ZHANG_2017_LABEL}, 256² | "
                             + " | ".join(_fmt(fmt, ZHANG_2017_PSNR.get(k, math.nan)) for k in results.ks) + " |")
            lines.append("")
    seconds = results.table("seconds")
    timed_ks = [k for k in results.ks if k > 0] or results.ks
    lines += [f"## Time per method call (s, mean over all images and K ∈ {{{', '.join(map(str, timed_ks))}}})", "",
              "| method | " + " | ".join(f"{s}²" for s in results.sizes) + " |",
              "|---|" + "---:|" * len(results.sizes)]
    for m in results.methods:
        cells = []
        for s in results.sizes:
            vals = [seconds.get((m, COMBINED, s, k), math.nan) for k in timed_ks]
            vals = [v for v in vals if not math.isnan(v)]
            cells.append(_fmt("{:.3f}", float(np.mean(vals)) if vals else math.nan))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Per-image values: `per_image.csv`; aggregates: `results.csv`; plot: `psnr_vs_hints.png`; "
              "qualitative grid: `grid.png`.", ""]
    return "\n".join(lines)


def _plot(results: EvaluationResults, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    table = results.table("psnr")
    xs = list(range(len(results.ks)))
    fig, axes = plt.subplots(1, len(results.sizes), figsize=(5.5 * len(results.sizes), 4.2), squeeze=False,
                             sharey=True)
    for ax, size in zip(axes[0], results.sizes):
        for m in results.methods:
            ax.plot(xs, [table.get((m, COMBINED, size, k), math.nan) for k in results.ks], marker="o", label=m)
        ref = [ZHANG_2017_PSNR.get(k, math.nan) for k in results.ks]
        ax.plot(xs, ref, linestyle="--", color="grey", marker="x", label=ZHANG_2017_LABEL)
        ax.set_xticks(xs, [str(k) for k in results.ks])
        ax.set_xlabel("number of hints K")
        ax.set_title(f"combined {results.info.get('split', 'test')} set, {size}×{size}")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("PSNR (dB)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    rows_of_legend = math.ceil(len(labels) / min(4, len(labels)))
    fig.tight_layout(rect=(0, 0.06 * rows_of_legend + 0.02, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def hints_preview(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray, *, min_side: int = 9,
                  scale: int = 2) -> np.ndarray:
    """The line art faded, with each hint drawn as a square of its colour (at least ``min_side`` px, black frame).

    Drawn at ``scale``× the image size (nearest-neighbour) so frames survive the grid's down-sampling.
    """
    base = (255 - (255 - line.astype(np.float32)) * 0.35).astype(np.uint8)
    h, w = line.shape
    img = Image.fromarray(base, "L").convert("RGB").resize((w * scale, h * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    labels, _ = ndimage.label(hint_mask)
    for index, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        (r0, r1), (c0, c1) = (sl[0].start, sl[0].stop), (sl[1].start, sl[1].stop)
        colour = tuple(int(v) for v in np.median(hint_rgb[sl][labels[sl] == index], axis=0))
        cy, cx = (r0 + r1) / 2 * scale, (c0 + c1) / 2 * scale
        half = max(r1 - r0, c1 - c0, min_side) / 2 * scale
        draw.rectangle([cx - half, cy - half, cx + half - 1, cy + half - 1], fill=colour, outline=(0, 0, 0),
                       width=scale)
    return np.asarray(img)


def _grid(samples: Sequence[Sample], methods: Sequence[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    cols = ["line", "hints", *methods, "ground truth"]
    rows = max(1, len(samples))
    height = 2.4 * rows + 0.4
    fig, axes = plt.subplots(rows, len(cols), figsize=(2.4 * len(cols), height), squeeze=False)
    for i, s in enumerate(samples):
        panels = [np.repeat(s.line[..., None], 3, axis=2), hints_preview(s.line, s.hint_rgb, s.hint_mask),
                  *[s.outputs.get(m) for m in methods], s.target]
        for j, img in enumerate(panels):
            ax = axes[i][j]
            if img is not None:
                ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j], fontsize=8)
        axes[i][0].set_ylabel(f"{s.source}\n{s.name}", fontsize=7)
    if samples:
        fig.suptitle(f"{samples[0].size}×{samples[0].size}, K = {samples[0].k} hints", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / height))  # it ignores the suptitle: keep 0.3 in above the titles
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(results: EvaluationResults, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write ``results.md``, ``results.csv``, ``psnr_vs_hints.png`` and ``grid.png``; return their paths."""
    out_dir = Path(out_dir) if out_dir is not None else Path(results.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out_dir / "results.md",
        "csv": out_dir / "results.csv",
        "plot": out_dir / "psnr_vs_hints.png",
        "grid": out_dir / "grid.png",
    }
    paths["markdown"].write_text(_markdown(results), encoding="utf-8")
    write_csv(paths["csv"], results.aggregates, AGGREGATE_FIELDS)
    _plot(results, paths["plot"])
    _grid(results.samples, results.methods, paths["grid"])
    return paths


def zhang_reference(ks: Sequence[int]) -> Mapping[int, float]:
    """The Zhang et al. 2017 PSNR values at the given K (those it reports)."""
    return {k: ZHANG_2017_PSNR[k] for k in ks if k in ZHANG_2017_PSNR}
