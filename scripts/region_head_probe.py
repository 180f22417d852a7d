"""Probe for issue 14's first target: how much better than today's suggestions could a small per-region colour
classifier do, fed what the pipeline knows about each unhinted region?

Research tooling, not part of the product (nothing in ``src/`` uses it). It colours drawings of a split with the
bundled model through the pipeline's own steps, at 512² with the evaluation's hint draws (0, 2 and 5 hints, seeded
as ``linecolor evaluate --learned`` seeds them), and records for every unhinted region of the pipeline's analysis:

* features — the network's median and mean colour there (CIELAB), log area, bounding box (centre, size, fill),
  whether it touches the border, log neighbour count, the number of hinted regions and the mean colour of its
  hinted neighbours;
* the truth — the median colour of the true colour image over the region, and its scored pixels (the weight).

It then trains a two-layer MLP (torch, CPU, full batch) that picks one of: a palette of k-means colours of the
training regions' true colours, white, the network's median, the hinted neighbours' colour — trained to put its
probability on the candidates within ΔE00 15 of the truth — and reports, per image then averaged (as the
evaluation does), the share of unhinted scored pixels whose pick is right, next to white, the network's median at
full strength and at the default suggestion strength. Region maps are the pipeline's, not the clean line art's, so
the numbers are close to, not equal to, ``evaluate --learned``'s.

    python scripts/region_head_probe.py --train-limit 200 --val-limit 24 --hidden 48 --epochs 150
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from scipy.cluster.vq import kmeans2
from skimage.color import deltaE_ciede2000, rgb2lab

from linecolor.data.sources import iter_source
from linecolor.evaluation.learned import HINT_COUNTS, _hint_image
from linecolor.evaluation.protocol import item_key
from linecolor.evaluation.regions import PAPER_LEVEL, RIGHT_DELTA_E, place_hints, true_regions
from linecolor.evaluation.run import DATA_FILES
from linecolor.inference.composite import _region_means, region_medians, line_rim, suggestions
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.limits import SUGGESTION_STRENGTH_WITHOUT_HEAD

SOURCES = ("openmoji", "dicebear", "fluent", "bigheads", "toonhead")


def lab(rgb) -> np.ndarray:
    return rgb2lab(np.asarray(rgb, float)[None] / 255.0)[0]


def collect(pipe: ColorizationPipeline, data_root: Path, split: str, limit: int) -> list[dict]:
    rows: list[dict] = []
    t0 = time.monotonic()
    for source in SOURCES:
        records = list(iter_source(source, data_root / DATA_FILES[source], split))
        if len(records) > limit:
            records = [records[i] for i in np.linspace(0, len(records) - 1, limit).round().astype(int)]
        for index, record in enumerate(records):
            pair = record.load(512, extra_xdog=False)
            line, colour = pair.lines[0], pair.color
            truth = true_regions(line, colour)
            key = item_key(source, record.name)
            for draw, k in enumerate(HINT_COUNTS):
                rgb, mask, _ = place_hints(truth, np.random.default_rng([0, key, 10 + draw]), count=k)
                parts = pipe._render(Image.fromarray(line, "L"), _hint_image(rgb, mask), None, "deterministic", None,
                                     0.0, "regions", SUGGESTION_STRENGTH_WITHOUT_HEAD, None)
                rows += region_rows(parts.composite_args, line, colour, truth, (source, index, k))
        print(f"{split} {source}: {len(records)} drawings, {len(rows)} regions, {time.monotonic() - t0:.0f} s",
              file=sys.stderr, flush=True)
    return rows


def region_rows(composite_args, line, colour, truth, tag) -> list[dict]:
    analysis, colours, output, box, grid, _ = composite_args
    cw, ch = box.content_size
    work = output[:ch, :cw]
    n = analysis.num_regions
    labels = analysis.labels.astype(np.int64)
    median = suggestions(work, grid, 1.0)
    mean, _ = _region_means(work, grid.labels, n + 1, ~line_rim(grid))
    true_colour, true_count = region_medians(colour, labels, n + 1, (line >= PAPER_LEVEL) & (labels > 0))
    weight = np.bincount(labels[truth.scored_pixels].ravel(), minlength=n + 1)
    h, w = labels.shape
    border = np.zeros(n + 1, bool)
    border[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = True
    ext = analysis.extended
    a = np.concatenate([ext[:, :-1].ravel(), ext[:-1, :].ravel()])
    b = np.concatenate([ext[:, 1:].ravel(), ext[1:, :].ravel()])
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], 1)[a != b], axis=0)
    neighbours = np.bincount(pairs.ravel(), minlength=n + 1)
    hinted = colours.hinted
    near_sum, near_count = np.zeros((n + 1, 3)), np.zeros(n + 1)
    for x, y in pairs:
        for r, q in ((x, y), (y, x)):
            if hinted[q] and not hinted[r]:
                near_sum[r] += colours.table[q]
                near_count[r] += 1
    rows = []
    for r, sl in enumerate(ndimage.find_objects(labels.astype(np.int32)), start=1):
        if hinted[r] or sl is None or true_count[r] == 0:
            continue
        box_h, box_w = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        shape = [np.log(analysis.areas[r] / (h * w) + 1e-6), (sl[0].start + sl[0].stop) / 2 / h,
                 (sl[1].start + sl[1].stop) / 2 / w, box_h / h, box_w / w, analysis.areas[r] / (box_h * box_w),
                 float(border[r]), np.log1p(neighbours[r]), float(hinted.sum()), near_count[r]]
        rows.append({"tag": tag, "weight": float(weight[r]), "shape": shape, "median": median[r], "mean": mean[r],
                     "near": near_sum[r] / near_count[r] if near_count[r] else np.full(3, 255.0),
                     "truth": true_colour[r]})
    return rows


def features(rows: list[dict]) -> np.ndarray:
    return np.concatenate([lab([r["median"] for r in rows]) / 50, lab([r["mean"] for r in rows]) / 50,
                           np.array([r["shape"] for r in rows]), lab([r["near"] for r in rows]) / 50], axis=1)


def right_table(rows: list[dict], palette: np.ndarray) -> np.ndarray:
    """bool (N, P + 2): which candidate is within ΔE00 15 of the truth (the palette, the median, the neighbours)."""
    truth = lab([r["truth"] for r in rows])
    candidates = [np.broadcast_to(p, truth.shape) for p in palette]
    candidates += [lab([r["median"] for r in rows]), lab([r["near"] for r in rows])]
    return np.stack([deltaE_ciede2000(truth, c) < RIGHT_DELTA_E for c in candidates], axis=1)


def per_image_accuracy(rows: list[dict], right: np.ndarray) -> list[float]:
    """% right per image (weighted by scored pixels), averaged over images, at each hint count."""
    sums: dict[tuple, list[float]] = {}
    for r, ok in zip(rows, right):
        s = sums.setdefault(r["tag"], [0.0, 0.0])
        s[0] += r["weight"]
        s[1] += r["weight"] * ok
    return [100 * float(np.mean([b / a for tag, (a, b) in sums.items() if tag[2] == k and a > 0]))
            for k in HINT_COUNTS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--train-limit", type=int, default=200)
    parser.add_argument("--val-limit", type=int, default=24)
    parser.add_argument("--palette", type=int, default=48)
    parser.add_argument("--hidden", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=150)
    args = parser.parse_args()
    torch.manual_seed(0)
    pipe = ColorizationPipeline.from_pretrained()
    train, val = (collect(pipe, args.data_root, s, n) for s, n in (("train", args.train_limit),
                                                                   ("val", args.val_limit)))
    x_train, x_val = features(train), features(val)
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    truth = lab([r["truth"] for r in train])
    weight = np.array([r["weight"] for r in train])
    sample = np.random.default_rng(0).choice(len(truth), size=min(20000, len(truth)),
                                             p=np.sqrt(weight + 1) / np.sqrt(weight + 1).sum())
    centres, _ = kmeans2(truth[sample], args.palette, seed=0, minit="++")
    palette = np.vstack([centres, lab([[255, 255, 255]])])
    y_train, y_val = right_table(train, palette), right_table(val, palette)
    x = torch.tensor((x_train - mu) / sd, dtype=torch.float32)
    y = torch.tensor(y_train, dtype=torch.float32)
    sample_weight = torch.tensor(np.sqrt(weight) + 1, dtype=torch.float32)
    sample_weight /= sample_weight.mean()
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], args.hidden), torch.nn.ReLU(),
                              torch.nn.Linear(args.hidden, args.hidden), torch.nn.ReLU(),
                              torch.nn.Linear(args.hidden, y.shape[1]))
    optimiser = torch.optim.Adam(net.parameters(), 3e-3, weight_decay=1e-4)
    for _ in range(args.epochs):
        optimiser.zero_grad()
        p = torch.softmax(net(x), 1)
        loss = -(torch.log((p * y).sum(1) + 1e-4) * sample_weight).mean()  # probability on a right candidate
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        pick = net(torch.tensor((x_val - mu) / sd, dtype=torch.float32)).argmax(1).numpy()
    val_truth = lab([r["truth"] for r in val])
    # A network without a head: its median at the strength chosen for it (the head's own default is 1).
    default = lab([255 + SUGGESTION_STRENGTH_WITHOUT_HEAD * (np.asarray(r["median"]) - 255) for r in val])
    report = {
        "classifier": y_val[np.arange(len(val)), pick],
        "white": y_val[:, args.palette],
        "network median": y_val[:, args.palette + 1],
        f"network median at strength {SUGGESTION_STRENGTH_WITHOUT_HEAD}": deltaE_ciede2000(val_truth, default) < RIGHT_DELTA_E,
    }
    print(f"val, % of unhinted scored pixels right at K = {' / '.join(map(str, HINT_COUNTS))}:")
    for name, right in report.items():
        print(f"  {name}: " + " / ".join(f"{v:.1f}" for v in per_image_accuracy(val, right)))


if __name__ == "__main__":
    main()
