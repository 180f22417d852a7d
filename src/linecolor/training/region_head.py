"""Training the region head (:mod:`linecolor.inference.region_head`) of a trained network.

1. :func:`collect_examples` — colour training drawings with the network (deterministic, a few hint dots each) and
   record, for every unhinted region of the pipeline's own analysis, what the head reads
   (:meth:`~linecolor.inference.pipeline.ColorizationPipeline.region_inputs`) and the region's true colour (the
   median of the colour image over its paper).
2. :func:`train_region_head` — a palette of the true colours (k-means in CIELAB, weighted towards large regions)
   plus white, then one MLP or an ensemble of them (:data:`~linecolor.training.head_recipe.HEAD_MEMBERS`, other
   seeds) trained to put its probability on the candidates within ΔE00 :data:`TRAIN_DELTA_E` of the truth (stricter
   than the 15 of ``linecolor evaluate --learned``), each region weighted by √(its pixels) + 1 so large regions
   count more without drowning small ones.

Both are seeded; the same data, seed and settings give the same head. ``linecolor train-head`` runs them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.cluster.vq import kmeans2
from skimage.color import deltaE_ciede2000, rgb2lab

from linecolor.data.pair import Pair
from linecolor.errors import LinecolorError
from linecolor.inference.composite import region_medians
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.inference.region_head import NUM_FEATURES, RegionHead
from linecolor.training.head_recipe import HEAD_MEMBERS, HIDDEN_UNITS, PALETTE_COLOURS, TRAINING_STEPS

__all__ = ["HINT_COUNTS", "RIGHT_DELTA_E", "TRAIN_DELTA_E", "RegionExamples", "collect_examples", "describe",
           "sample_pairs", "train_region_head"]

HINT_COUNTS = (0, 1, 2, 3, 5, 8)
"""Hint dots per training colouring (one count per colouring, drawn evenly): from none to most of a drawing."""
COLOURINGS_PER_DRAWING = 3
"""Times each training drawing is coloured, each with its own hint draw (the drawing is analysed once)."""
MIN_HINTED_SHARE = 0.0005
"""Regions smaller than this share of the drawing get no hint dot (as the evaluation's protocol)."""
RIGHT_DELTA_E = 15.0
"""A pick within this CIEDE2000 of the truth counts as right in ``linecolor evaluate --learned``."""
TRAIN_DELTA_E = 10.0
"""A candidate within this CIEDE2000 of the truth is a right answer in training. Stricter than the evaluation's 15
on purpose: at 15 the head learnt hedges — a light grey is within 15 of white *and* of many light colours — and
painted white backgrounds grey (validation, 24 drawings per source: PSNR with no hints 11.5 dB against 15.2 without a
head). At 10 it picks white for them (14.7 dB) and keeps most of the accuracy (docs/measurements.md, version 14)."""
PAPER_LEVEL = 250
"""Pixels of the line art at least this light are paper: a region's true colour is its median there."""


@dataclass
class RegionExamples:
    """Unhinted regions of many colourings, one row each."""

    features: np.ndarray
    """float64 (N, F)."""
    medians: np.ndarray
    """float64 (N, 3) the network's median colour (RGB)."""
    near: np.ndarray
    """float64 (N, 1 + HINT_SLOTS, 3) the region's own candidates (RGB): its hinted neighbours' mean colour, then the
    hint slots' (:func:`linecolor.inference.region_head.region_features`)."""
    truth: np.ndarray
    """float64 (N, 3) the true colour (RGB)."""
    pixels: np.ndarray
    """int64 (N,) the region's paper pixels."""
    provenance: str = ""
    """What was coloured to collect them (sources, drawings, size, seed), recorded in the head's file."""

    def __len__(self) -> int:
        return len(self.truth)

    @classmethod
    def concatenate(cls, parts: Sequence[RegionExamples], provenance: str = "") -> RegionExamples:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS), provenance=provenance)

    def save(self, path: str | Path) -> None:
        """As a ``.npz`` (:meth:`load` reads it back): collecting takes minutes, fitting seconds."""
        np.savez_compressed(path, provenance=np.array(self.provenance), **{f: getattr(self, f) for f in _FIELDS})

    @classmethod
    def load(cls, path: str | Path) -> RegionExamples:
        try:
            with np.load(path) as data:
                provenance = str(data["provenance"]) if "provenance" in data else "not recorded"
                examples = cls(*(data[f] for f in _FIELDS), provenance=provenance)
        except (OSError, KeyError, ValueError) as exc:
            raise LinecolorError(f"{path}: not a region-head example file ({exc})") from exc
        if examples.features.ndim != 2 or examples.features.shape[1] != NUM_FEATURES:
            raise LinecolorError(f"{path}: made for other region features than this version computes")
        return examples


_FIELDS = ("features", "medians", "near", "truth", "pixels")


def collect_examples(pipe: ColorizationPipeline, pairs: Iterable[Pair], rng: np.random.Generator,
                     colourings: int = COLOURINGS_PER_DRAWING,
                     progress: Callable[[int], None] | None = None) -> RegionExamples:
    """:class:`RegionExamples` of ``pairs`` (their first line style) coloured by ``pipe`` ``colourings`` times each,
    each time with a hint count from :data:`HINT_COUNTS` and hinted regions drawn by ``rng``: one dot at the
    region's deepest point in its true colour."""
    rows: list[tuple[np.ndarray, ...]] = []
    for index, pair in enumerate(pairs):
        line, colour = pair.lines[0], pair.color
        analysis = pipe.analyse(Image.fromarray(line, "L"))
        n = analysis.num_regions
        labels = analysis.labels.astype(np.int64)
        paper = (line >= PAPER_LEVEL) & (labels > 0)
        truth, pixels = region_medians(colour, labels, n + 1, paper)
        truth[pixels == 0] = 255.0  # no paper of its own: never an example (kept below only where pixels > 0)
        for _ in range(colourings):
            hints = _hint_dots(analysis, truth, pixels, int(rng.choice(HINT_COUNTS)), rng)
            seen = pipe.region_inputs(analysis, hints)
            keep = np.flatnonzero(~seen.hinted & (pixels > 0))
            keep = keep[keep > 0]
            rows.append((seen.features[keep], seen.medians[keep], seen.near[keep], truth[keep], pixels[keep]))
        if progress is not None:
            progress(index + 1)
    if not rows or not sum(len(r[0]) for r in rows):
        raise LinecolorError("no unhinted regions to learn from: the drawings have no regions")
    return RegionExamples(*(np.concatenate([r[i] for r in rows]) for i in range(5)))


def _hint_dots(analysis, truth: np.ndarray, pixels: np.ndarray, count: int,
               rng: np.random.Generator) -> list[tuple[int, int, str, float]]:
    """``count`` hint dots (x, y, "#rrggbb", radius) in distinct regions of at least :data:`MIN_HINTED_SHARE` of the
    drawing, each at the region's deepest point in its true colour."""
    h, w = analysis.shape
    candidates = np.flatnonzero(pixels >= MIN_HINTED_SHARE * h * w)
    candidates = candidates[candidates > 0]
    if not count or not len(candidates):
        return []
    chosen = rng.choice(candidates, size=min(count, len(candidates)), replace=False)
    depth = analysis.depth.astype(np.float64)
    dots = []
    for r in chosen:
        inside = analysis.labels == r
        y, x = np.unravel_index(np.argmax(np.where(inside, depth, -1.0)), inside.shape)
        radius = max(1.0, min(4.0, depth[y, x] / 4.0 - 1.0))  # depth is in quarter pixels: the dot stays inside
        hex_colour = "#" + "".join(f"{int(round(c)):02x}" for c in truth[r])
        dots.append((int(x), int(y), hex_colour, radius))
    return dots


def _lab(rgb: np.ndarray) -> np.ndarray:
    return rgb2lab(np.asarray(rgb, np.float64)[None] / 255.0)[0]


def train_region_head(examples: RegionExamples, *, palette_size: int = PALETTE_COLOURS, hidden: int = HIDDEN_UNITS,
                      epochs: int = TRAINING_STEPS,
                      learning_rate: float = 3e-3, weight_decay: float = 1e-4, right_delta_e: float = TRAIN_DELTA_E,
                      seed: int = 0, members: int = HEAD_MEMBERS) -> RegionHead:
    """A :class:`RegionHead` fitted to ``examples``: one palette, then ``members`` MLPs (full-batch Adam for
    ``epochs`` steps each), member m's initial weights drawn with torch seed ``seed + 1000 · m`` (so one member is
    the single head of the same seed).

    Raises:
        LinecolorError: fewer examples than palette colours, or settings out of range.
    """
    if (palette_size < 1 or hidden < 1 or epochs < 1 or members < 1 or not math.isfinite(learning_rate)
            or learning_rate <= 0):
        raise LinecolorError("palette_size, hidden, epochs and members must be ≥ 1 and the learning rate > 0")
    if len(examples) < palette_size:
        raise LinecolorError(f"{len(examples)} regions are too few to learn a {palette_size}-colour palette from")
    import torch

    rng = np.random.default_rng(seed)
    truth_lab = _lab(examples.truth)
    weight = np.sqrt(examples.pixels.astype(np.float64)) + 1.0
    sample = rng.choice(len(truth_lab), size=min(20000, len(truth_lab)), p=weight / weight.sum())
    distinct = np.unique(truth_lab[sample].round(2), axis=0)
    if len(distinct) <= palette_size:  # few colours (small or synthetic data): they are the palette
        centres = distinct
    else:
        centres, _ = kmeans2(truth_lab[sample], palette_size, seed=int(rng.integers(2**31)), minit="++")
    palette = np.clip(_lab_to_rgb(np.vstack([centres, _lab(np.array([[255.0, 255.0, 255.0]]))])), 0, 255)
    head_shape = RegionHead((), np.zeros(NUM_FEATURES), np.ones(NUM_FEATURES), palette.astype(np.float32))
    candidates = head_shape.candidates(examples.medians, examples.near)  # (N, P + 2 + HINT_SLOTS, 3)
    right = np.stack([deltaE_ciede2000(truth_lab, _lab(candidates[:, c])) < right_delta_e
                      for c in range(candidates.shape[1])], axis=1)

    mean = examples.features.mean(axis=0)
    std = examples.features.std(axis=0) + 1e-6
    x = torch.tensor((examples.features - mean) / std, dtype=torch.float32)
    y = torch.tensor(right, dtype=torch.float32)
    w = torch.tensor(weight / weight.mean(), dtype=torch.float32)
    fitted = [_fit_member(x, y, w, hidden, epochs, learning_rate, weight_decay, seed + 1000 * m)
              for m in range(members)]
    weights = tuple(np.stack([member[i] for member in fitted]) for i in range(6))
    return RegionHead(weights, mean.astype(np.float32), std.astype(np.float32), palette.astype(np.float32))


def _fit_member(x, y, w, hidden: int, epochs: int, learning_rate: float, weight_decay: float,
                seed: int) -> tuple[np.ndarray, ...]:
    """One MLP's (W1, b1, W2, b2, W3, b3) fitted to features ``x``, right-candidate marks ``y`` and region weights
    ``w`` (torch tensors)."""
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                              torch.nn.ReLU(), torch.nn.Linear(hidden, y.shape[1]))
    optimiser = torch.optim.Adam(net.parameters(), learning_rate, weight_decay=weight_decay)
    for _ in range(epochs):
        optimiser.zero_grad()
        p = torch.softmax(net(x), dim=1)
        # The probability the head puts on a right candidate, in log: a pick is right when any right one wins.
        loss = -(torch.log((p * y).sum(dim=1) + 1e-4) * w).mean()
        loss.backward()
        optimiser.step()
    layers = [m for m in net if isinstance(m, torch.nn.Linear)]
    return tuple(t.detach().numpy().astype(np.float32) for m in layers for t in (m.weight.T, m.bias))


def _lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    from skimage.color import lab2rgb

    return lab2rgb(lab[None])[0] * 255.0


def describe(examples: RegionExamples, head: RegionHead, file=sys.stderr) -> None:
    """How often the head's pick is right on ``examples`` (training fit), next to white and the network's median."""
    truth = _lab(examples.truth)
    picks = head.choose(examples.features, examples.medians.astype(np.float32), examples.near.astype(np.float32))
    weight = examples.pixels.astype(np.float64)

    def share(colours: np.ndarray) -> float:
        return float((weight * (deltaE_ciede2000(truth, _lab(colours)) < RIGHT_DELTA_E)).sum() / weight.sum())

    print(f"region head on its {len(examples)} training regions (share of pixels right): head {share(picks):.3f}, "
          f"network median {share(examples.medians):.3f}, white {share(np.full_like(examples.truth, 255)):.3f}",
          file=file)


def sample_pairs(records: Sequence, limit: int | None, size: int, file=sys.stderr) -> Iterable[Pair]:
    """The pairs of ``records`` (``SourceRecord``), at most ``limit`` evenly spread, rasterised at ``size``; a
    drawing that cannot be rendered is skipped with a line on ``file``."""
    if limit is not None and len(records) > limit:
        records = [records[i] for i in np.linspace(0, len(records) - 1, limit).round().astype(int)]
    for record in records:
        try:
            yield record.load(size, extra_xdog=False)
        except LinecolorError as exc:
            print(f"skipped {record.source} {record.name}: {exc}", file=file)
