"""Training samples: pair source → augmentation → simulated hints → the shared :func:`build_condition`.

Resumable by construction: the run draws samples by a global position ``p = 0, 1, 2, …`` (step · batch · world +
rank · batch + j). Which pair ``p`` picks is a permutation seeded by (seed, epoch) and every random choice for that
sample comes from ``numpy.random.default_rng((seed, p))``, so the sample order and augmentation are pure functions
of (seed, p): skipping to a resumed step is exact and costs nothing (Lightning dropped stateful loaders for this).

Each sample is a dict:
    cond   (5 or 9, S, S) float32 — see :mod:`linecolor.inference.conditioning`
    target (3, S, S) float32 RGB in [-1, 1]
    ok     bool — False when the pair could not be decoded (the collate function drops and counts these)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from linecolor.config import AugmentConfig, HintConfig
from linecolor.data.augment import augment_pair, cut_line_gaps, fade_line
from linecolor.data.hints import simulate_hints
from linecolor.errors import LinecolorError
from linecolor.inference.conditioning import build_condition, image_to_tensor
from linecolor.raster.fill import region_fill_colours
from linecolor.raster.lines import random_thickness
from linecolor.training.losses import region_labels


class ConcatPairs:
    """Several pair sources seen as one (index → (source, item))."""

    def __init__(self, sources: Sequence):
        self.sources = list(sources)
        self.offsets = np.cumsum([0] + [len(s) for s in self.sources])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int):
        k = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.sources[k][index - int(self.offsets[k])]


@dataclass(frozen=True)
class SampleSpec:
    """How a training sample is produced (everything but the data)."""

    image_size: int
    hints: HintConfig
    augment: AugmentConfig
    binarize_line: bool
    seed: int
    fill_guide: bool = False
    """Add the region-fill guide channels (``GeneratorConfig.fill_guide``)."""


class TrainingDataset(Dataset):
    """Indexable by global draw position ``p`` (any non-negative integer, not bounded by the data size)."""

    def __init__(self, pairs, spec: SampleSpec):
        if len(pairs) == 0:
            raise LinecolorError("the training data is empty")
        self.pairs = pairs
        self.spec = spec
        self._perm_cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def pair_index(self, position: int) -> int:
        n = len(self.pairs)
        epoch, within = divmod(position, n)
        perm = self._perm_cache.get(epoch)
        if perm is None:
            perm = np.random.default_rng((self.spec.seed, 0x5EED, epoch)).permutation(n)
            self._perm_cache = {epoch: perm}  # only the current epoch is ever needed
        return int(perm[within])

    def __getitem__(self, position: int) -> dict:
        spec = self.spec
        rng = np.random.default_rng((spec.seed, position))
        try:
            pair = self.pairs[self.pair_index(position)]
        except (LinecolorError, OSError, ValueError) as exc:
            s = spec.image_size
            channels = 9 if spec.fill_guide else 5
            return {"cond": torch.zeros(channels, s, s), "target": torch.zeros(3, s, s), "ok": False, "error": str(exc)}
        return make_sample(pair.color, pair.lines, rng, spec)


def make_sample(color: np.ndarray, lines: np.ndarray, rng: np.random.Generator, spec: SampleSpec) -> dict:
    """One augmented sample from a colour image (H, W, 3) uint8 and its line styles (L, H, W) uint8."""
    color_a, line_a = augment_pair(color, lines, rng, spec.augment, spec.image_size)
    if spec.augment.thickness_max_radius:
        line_a = random_thickness(line_a, rng, spec.augment.thickness_max_radius)
    hint_rgb, hint_mask = simulate_hints(color_a, rng, spec.hints)
    # Gaps and faded ink change only what the network sees of the lines; its fill guide keeps the clean drawing's
    # regions, as the region engine's gap closing gives it at inference. (No draws when both are off.)
    seen = line_a
    if spec.augment.line_gaps:
        seen = cut_line_gaps(seen, rng, spec.augment.line_gaps)
    if spec.augment.line_fade:
        seen = fade_line(seen, rng, spec.augment.line_fade)
    fill = region_fill_colours(line_a, hint_rgb, hint_mask) if spec.fill_guide and seen is not line_a else None
    cond = build_condition(seen, hint_rgb, hint_mask, binarize=spec.binarize_line, fill_guide=spec.fill_guide,
                           fill=fill)
    return {"cond": cond, "target": image_to_tensor(color_a), "ok": True, "error": ""}


class PositionSampler(Sampler[int]):
    """Yields the global draw positions of this rank from ``start_step`` to ``total_steps`` (exclusive)."""

    def __init__(self, start_step: int, total_steps: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.start_step, self.total_steps = start_step, total_steps
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size

    def __iter__(self):
        b, w = self.batch_size, self.world_size
        for step in range(self.start_step, self.total_steps):
            base = step * b * w + self.rank * b
            yield from range(base, base + b)

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step) * self.batch_size


def collate(samples: list[dict]) -> dict:
    """Stack the decodable samples with the region labels of their line channel
    (:func:`linecolor.training.losses.region_labels`: labelled here, in the loader's worker processes, rather than
    between GPU steps); report how many were dropped."""
    good = [s for s in samples if s["ok"]]
    bad = [s["error"] for s in samples if not s["ok"]]
    if not good:
        return {"cond": None, "target": None, "labels": None, "num_bad": len(bad), "errors": bad}
    cond = torch.stack([s["cond"] for s in good])
    return {"cond": cond, "target": torch.stack([s["target"] for s in good]), "labels": region_labels(cond[:, 0]),
            "num_bad": len(bad), "errors": bad}
