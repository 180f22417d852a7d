"""The region head: a small learned classifier that picks each unhinted region's colour.

The generator paints pixels; a region's suggestion used to be the median of what it painted there. That median is
right (ΔE00 < 15 to the truth) little more often than plain white, because the network's colour at a pixel knows
nothing of the region as a whole. The head looks at the whole region — the network's median and mean colour in
it, its size, place and shape, whether it touches the border, how many neighbours it has, and the colours of its
hinted neighbours — and picks one colour from a fixed palette of colours common in the training data, white, the
network's median, its hinted neighbours' colour, or the colour of one of three hinted regions offered to it (the two
hints nearest the network's colour there and the hint on its mirror twin: :data:`HINT_SLOTS`). The palette lets it say
"skin", "eye white" or "emoji yellow" where the network's own colour is muddy.

* :func:`region_features` — the (n + 1, :data:`NUM_FEATURES`) features of one colouring (shape features come once
  per drawing from the :class:`~linecolor.inference.composite.WorkGrid`).
* :class:`RegionHead` — the classifier (one MLP, or an ensemble of them averaging their probabilities): its
  weights, feature scaling and palette, loaded from and saved to ``region_head.safetensors`` beside a model's
  weights; :meth:`RegionHead.choose` picks (deterministic: the most likely candidate; with a generator: a draw from
  the head's probabilities, the stochastic mode's variations), :meth:`RegionHead.ranked` gives a region's
  candidates best first.

It is trained by :mod:`linecolor.training.region_head`; the forward pass is three small matrix products in NumPy, so
it needs neither torch nor onnxruntime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.special import log_softmax, logsumexp
from skimage.color import deltaE_ciede2000, rgb2lab

from linecolor.errors import WeightsError
from linecolor.models.saved import file_sha256

__all__ = ["DRAW_TEMPERATURE", "HINT_SLOTS", "NUM_FEATURES", "REGION_HEAD_FILE", "RegionHead", "region_features"]

REGION_HEAD_FILE = "region_head.safetensors"
"""The head's file in a weights directory (optional: without it, suggestions are the network's median colour)."""
NETWORK_FILE = "model.safetensors"
"""The network's weights beside it: a head learnt one network's colours, and records that file's SHA-256."""
FEATURE_NAMES = (
    "median_L", "median_a", "median_b", "mean_L", "mean_a", "mean_b", "log_area", "centre_y", "centre_x",
    "box_h", "box_w", "box_fill", "touches_border", "log_neighbours", "log_hinted_regions", "hinted_neighbours",
    "near_L", "near_a", "near_b",
    *(f"{slot}_{name}" for slot in ("colour_slot", "twin_slot", "next_colour_slot")
      for name in ("present", "delta", "mirror", "area", "adjacent", "L", "a", "b")),
)
NUM_FEATURES = len(FEATURE_NAMES)
HINT_SLOTS = 3
"""Hinted regions offered to each unhinted region as candidates besides its hinted neighbours' mean colour: the one
whose colour is nearest the network's median there (the network saw the hints and often carries a hint's colour to
the other parts that share it, only muddied), the one nearest its place mirrored left to right on the canvas (in a
frontal view: the other eye, ear or hair piece; in a three-quarter view often another part), and the one whose
colour is second-nearest the median (empty with fewer than two hints). Each comes with features saying how well it
fits (colour distance, mirror distance, size ratio, whether it touches), so the head learns when to take it. On
validation a hint's colour was right for 38 % of the unhinted area at 2 hints, and 65 % at 5; the first two slots
missed every right hint on 3.4 % of it at 2 hints (the two picked the same hint) and 10.7 % at 5
(docs/measurements.md, output versions 19 and 20)."""
TWIN_SIZE_WEIGHT = 0.01
"""How a log-area difference weighs against the mirror distance (a share of the drawing) in choosing the twin slot:
size only breaks near-ties between regions at the same mirrored place."""
NO_SLOT_DISTANCE = 2.0
"""Mirror and size distances of an empty slot (no hints): beyond any real one (mirror distances are shares of the
drawing, at most √2)."""
DRAW_TEMPERATURE = 0.75
"""The stochastic mode's draws come from softmax(scores / this): above 1 the head's less likely colours come up more
often (more varied variations), below 1 less often. Validation (24 drawings per source, 2 hints, output version 15's
head): two seeds 25.7 ΔE00 apart over unhinted paper at 1.5, 20.4 at 1, 16.6 at 0.75 (every source ≥ 13.4), while a
variation's unhinted colours are right 51.0, 57.6 and 61.4 % of the time — at 1.5 a grid of variations showed
purple, blue and brown backgrounds and green faces, at 0.75 white backgrounds and skin tones. (The first head, less
sure of itself, needed 1.5 for seeds 10.5 ΔE00 apart: 8.9 at 1.)"""
REFERENCE_BONUS = 1.5
"""Reference mode (:meth:`RegionHead.towards`): a candidate colour on one of the reference's main colours scores
this much higher (the head's scores are log-odds: e^1.5 ≈ 4.5 times as likely), one :data:`REFERENCE_REACH` ΔE00
or further from all of them nothing, linearly in between. Chosen on validation (docs/measurements.md, output
versions 16–18: 2 until the reference's outlines stopped counting as one of its colours; since the reference's
regions carry their colours to matching regions, larger bonuses keep the accuracy but paint hair and jackets in the
reference's paper white)."""
REFERENCE_REACH = 15.0
"""CIEDE2000 within which a candidate counts as near a reference colour (:data:`REFERENCE_BONUS`)."""
LAB_SCALE = 50.0
"""CIELAB values are divided by this before they are features (L runs 0–100, a and b about ±100)."""


def _lab(rgb: np.ndarray) -> np.ndarray:
    return rgb2lab(np.clip(np.asarray(rgb, np.float64), 0, 255)[None] / 255.0)[0]


def region_features(shapes: np.ndarray, pairs: np.ndarray, median: np.ndarray, mean: np.ndarray,
                    hinted: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(features float64 (n + 1, NUM_FEATURES), extra float64 (n + 1, 1 + HINT_SLOTS, 3))``: every region's
    features (row 0, ink, is computed but meaningless), and its own candidates besides the palette and the
    network's median: its hinted neighbours' mean colour (white where it has none), then the colours of the
    :data:`HINT_SLOTS` hinted regions of :func:`_hint_slots` (white where there are no hints).

    Args:
        shapes: float (n + 1, 8) per-drawing shape features (``WorkGrid.shapes``: log area share, bounding-box
            centre y and x and height and width as shares of the drawing, area / box area, touches the border,
            log(1 + neighbours)).
        pairs: int (m, 2) adjacent region pairs (``WorkGrid.pairs``).
        median, mean: float (n + 1, 3) the network's median and mean RGB colour per region.
        hinted: bool (n + 1,) regions with a hint; ``table``: float (n + 1, 3) their RGB colours.
    """
    n1 = len(hinted)
    near_sum = np.zeros((n1, 3))
    near_count = np.zeros(n1)
    for a, b in ((pairs[:, 0], pairs[:, 1]), (pairs[:, 1], pairs[:, 0])):
        take = hinted[b] & ~hinted[a]
        np.add.at(near_sum, a[take], table[b[take]])
        np.add.at(near_count, a[take], 1.0)
    near = np.where(near_count[:, None] > 0, near_sum / np.maximum(near_count, 1)[:, None], 255.0)
    hinted_regions = np.full((n1, 1), np.log1p(float(hinted[1:].sum())))
    median_lab = _lab(median)
    slot_colours, slot_features = _hint_slots(shapes, pairs, median_lab, hinted, table)
    features = np.concatenate([median_lab / LAB_SCALE, _lab(mean) / LAB_SCALE, shapes, hinted_regions,
                               near_count[:, None], _lab(near) / LAB_SCALE, slot_features], axis=1)
    return features, np.concatenate([near[:, None], slot_colours], axis=1)


def _hint_slots(shapes: np.ndarray, pairs: np.ndarray, median_lab: np.ndarray, hinted: np.ndarray,
                table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(colours (n + 1, HINT_SLOTS, 3) RGB, features (n + 1, 8 · HINT_SLOTS))``: per region, the hinted region
    whose colour is nearest its network median (CIELAB distance: a ranking, so the plain Euclidean one), the hinted
    region nearest its mirror image (the bounding-box centre mirrored left to right; ties by size), and the hinted
    region whose colour is second-nearest the median, each described by: present, colour distance to the median,
    mirror distance, |log area ratio|, touches, its CIELAB colour (scaled by :data:`LAB_SCALE`). A slot without a
    hinted region to offer (every slot without hints, the last with one hint) is white and empty."""
    n1 = len(hinted)
    sources = np.flatnonzero(hinted[1:]) + 1
    colours = np.full((n1, HINT_SLOTS, 3), 255.0)
    features = np.zeros((n1, HINT_SLOTS, 8))
    white = _lab(np.full((1, 3), 255.0))
    features[:, :, 1] = (np.linalg.norm(median_lab - white, axis=1) / LAB_SCALE)[:, None]  # empty slots: white
    features[:, :, 2:4] = NO_SLOT_DISTANCE
    features[:, :, 5:8] = white / LAB_SCALE
    if not len(sources):
        return colours, features.reshape(n1, -1)
    source_lab = _lab(table[sources])
    mirrored = np.column_stack([shapes[sources, 1], 1.0 - shapes[sources, 2]])
    by_colour = _nearest(median_lab, source_lab, count=min(2, len(sources)))  # the colour slot, then the next
    by_mirror = _nearest(np.column_stack([shapes[:, 1:3], TWIN_SIZE_WEIGHT * shapes[:, 0]]),
                         np.column_stack([mirrored, TWIN_SIZE_WEIGHT * shapes[sources, 0]]))[:, 0]
    picks = (by_colour[:, 0], by_mirror, *by_colour.T[1:])
    touching = np.concatenate([pairs[:, 0] * n1 + pairs[:, 1], pairs[:, 1] * n1 + pairs[:, 0]])
    for slot, pick in enumerate(picks):
        chosen = sources[pick]
        colours[:, slot] = table[chosen]
        features[:, slot] = np.column_stack([
            np.ones(n1), np.linalg.norm(median_lab - source_lab[pick], axis=1) / LAB_SCALE,
            np.linalg.norm(shapes[:, 1:3] - mirrored[pick], axis=1), np.abs(shapes[:, 0] - shapes[chosen, 0]),
            np.isin(np.arange(n1) * n1 + chosen, touching), source_lab[pick] / LAB_SCALE])
    return colours, features.reshape(n1, -1)


def _nearest(points: np.ndarray, targets: np.ndarray, count: int = 1) -> np.ndarray:
    """int (N, count): for each of ``points`` the indices of its ``count`` nearest ``targets`` rows (Euclidean),
    nearest first, all distinct (``count`` ≤ the number of targets; ties go to the lower index). Squared distances
    as |t|² − 2 p·t (|p|² is the same along a row), one matrix product for all ranks: a 4K drawing has thousands
    of regions and may have hundreds of hinted ones, and the full (N, T, D) difference array cost 0.3 s a stroke."""
    squared = (targets ** 2).sum(axis=1)[None] - 2.0 * points @ targets.T
    rows = np.arange(len(points))
    picks = np.empty((len(points), count), np.int64)
    for k in range(count):
        picks[:, k] = squared.argmin(axis=1)
        squared[rows, picks[:, k]] = np.inf  # taken: the next rank is another target
    return picks


@dataclass(frozen=True)
class RegionHead:
    """An ensemble of M two-hidden-layer MLPs over region features whose outputs score the candidate colours: the
    palette's colours, then the network's median, then the hinted neighbours' mean colour and the hint slots
    (:data:`HINT_SLOTS`). The members share the palette and feature scaling and differ in their training seed;
    their probabilities are averaged (:meth:`logits`)."""

    weights: tuple[np.ndarray, ...]
    """(W1 (M, F, H), b1 (M, H), W2 (M, H, H), b2 (M, H), W3 (M, H, C), b3 (M, C)), float32; C =
    :attr:`num_candidates`, M = :attr:`members`. A single MLP's arrays without the leading M axis are taken as one
    member (all files written before 2026-12-07's `--members` option hold those)."""
    feature_mean: np.ndarray
    feature_std: np.ndarray
    palette: np.ndarray
    """float32 (P, 3) RGB colours the head may pick besides the two per-region candidates."""
    reference: np.ndarray | None = None
    """float64 (R, 3) CIELAB: a reference picture's main colours (:meth:`towards`), or None."""

    def __post_init__(self):
        if self.weights and self.weights[0].ndim == 2:  # one MLP: the ensemble of one
            object.__setattr__(self, "weights", tuple(w[None] for w in self.weights))

    @property
    def members(self) -> int:
        """How many MLPs vote."""
        return int(self.weights[0].shape[0]) if self.weights else 0

    @property
    def num_candidates(self) -> int:
        """Its scores' width: the palette, the network's median and :attr:`num_extra` per-region candidates."""
        return int(self.weights[-1].shape[-1]) if self.weights else len(self.palette) + 2 + HINT_SLOTS

    @property
    def num_extra(self) -> int:
        """How many of :func:`region_features`' per-region candidates (``extra``) it scores: all 1 +
        :data:`HINT_SLOTS` (since output version 19), or only the hinted neighbours' colour (a head made by hand
        with P + 2 outputs)."""
        return self.num_candidates - len(self.palette) - 1

    def logits(self, features: np.ndarray) -> np.ndarray:
        """float32 (N, C) scores of the candidates for each row of ``features``: a single MLP's outputs, or for an
        ensemble the log of its members' mean probabilities (so softmax of the scores is that mean). Why ensembles
        exist: heads fitted to the same regions with other seeds differ by a point or two of accuracy and by a
        factor of two in how far they follow the network's colours (the latent-shift slider). The bundled head is a
        single MLP: two 3-member ensembles tried on validation were as accurate as the best single heads but
        followed the slider less (docs/measurements.md, "Region head experiments not shipped")."""
        w1, b1, w2, b2, w3, b3 = self.weights
        x = ((features - self.feature_mean) / self.feature_std).astype(np.float32)
        h = np.maximum(x @ w1 + b1[:, None], 0.0)  # (M, N, H)
        h = np.maximum(h @ w2 + b2[:, None], 0.0)
        out = h @ w3 + b3[:, None]  # (M, N, C)
        if len(out) == 1:
            return out[0]
        return (logsumexp(log_softmax(out, axis=2), axis=0) - np.log(len(out))).astype(np.float32)

    def towards(self, reference_rgb: np.ndarray) -> RegionHead:
        """This head in reference mode: candidates near one of ``reference_rgb`` (the reference picture's main
        colours, (R, 3) RGB: :func:`~linecolor.raster.palette.image_colours`) score up to :data:`REFERENCE_BONUS`
        higher, so regions without hints take the reference's colours where the head finds them likely at all.
        (The style latent alone moved the network's colours towards the reference, but the head then mostly
        picked the same palette colours: reference mode changed little a user could see.)"""
        return replace(self, reference=_lab(np.asarray(reference_rgb, np.float64).reshape(-1, 3)))

    def scores(self, features: np.ndarray, median: np.ndarray, near: np.ndarray) -> np.ndarray:
        """float (N, C): :meth:`logits`, plus in reference mode (:meth:`towards`) each candidate's bonus for
        being near a reference colour."""
        logits = self.logits(features)
        if self.reference is None or not len(self.reference) or not len(logits):
            return logits
        lab = _lab(self.candidates(median, near).reshape(-1, 3))
        distance = np.min([deltaE_ciede2000(lab, np.broadcast_to(r, lab.shape)) for r in self.reference], axis=0)
        bonus = REFERENCE_BONUS * np.clip(1.0 - distance / REFERENCE_REACH, 0.0, 1.0)
        return logits + bonus.reshape(logits.shape)

    def candidates(self, median: np.ndarray, near: np.ndarray) -> np.ndarray:
        """float32 (N, :attr:`num_candidates`, 3) RGB candidates per region: the palette, the network's median, then
        the first :attr:`num_extra` of ``near`` ((N, E, 3) :func:`region_features`' ``extra``, or (N, 3): the
        hinted neighbours' colour alone)."""
        n = len(median)
        fixed = np.broadcast_to(self.palette[None], (n, len(self.palette), 3))
        extra = np.asarray(near).reshape(n, -1, 3)
        if extra.shape[1] < self.num_extra:
            raise ValueError(f"the head scores {self.num_extra} per-region candidates, {extra.shape[1]} given")
        return np.concatenate([fixed, median[:, None], extra[:, :self.num_extra]], axis=1).astype(np.float32)

    def choose(self, features: np.ndarray, median: np.ndarray, near: np.ndarray,
               rng: np.random.Generator | None = None, temperature: float = DRAW_TEMPERATURE) -> np.ndarray:
        """float32 (N, 3) RGB: each region's most likely candidate, or with ``rng`` a draw from the head's
        probabilities (softmax of the scores over ``temperature``)."""
        logits = self.scores(features, median, near)
        if rng is None:
            pick = logits.argmax(axis=1)
        else:
            p = _softmax(logits / temperature)
            pick = (p.cumsum(axis=1) < rng.random((len(p), 1))).sum(axis=1).clip(0, p.shape[1] - 1)
        return self.candidates(median, near)[np.arange(len(pick)), pick]

    def ranked(self, features: np.ndarray, median: np.ndarray, near: np.ndarray) -> np.ndarray:
        """float32 (N, C, 3): every region's candidates, most likely first."""
        order = np.argsort(-self.scores(features, median, near), axis=1, kind="stable")
        return np.take_along_axis(self.candidates(median, near), order[..., None], axis=1)

    # ---------------------------------------------------------------------------------------- files
    def save(self, directory: str | Path, metadata: dict[str, str] | None = None) -> Path:
        """Write ``region_head.safetensors`` into ``directory``, recording the SHA-256 of the network's weights
        there (when present) so that :meth:`load` can refuse a head left beside another network."""
        from safetensors.numpy import save_file

        path = Path(directory) / REGION_HEAD_FILE
        network = Path(directory) / NETWORK_FILE
        if network.is_file():
            metadata = {"network_sha256": file_sha256(network)} | (metadata or {})
        tensors = {f"layer{i // 2}.{'weight' if i % 2 == 0 else 'bias'}": np.ascontiguousarray(w, np.float32)
                   for i, w in enumerate(self.weights)}
        tensors |= {"feature_mean": self.feature_mean.astype(np.float32),
                    "feature_std": self.feature_std.astype(np.float32), "palette": self.palette.astype(np.float32)}
        meta = {"features": json.dumps(FEATURE_NAMES)} | (metadata or {})
        save_file(tensors, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> RegionHead | None:
        """The head saved in ``directory``, or None when it has none.

        Raises:
            WeightsError: the file is unreadable, was made for other features or for another network than the
                ``model.safetensors`` beside it, or has inconsistent shapes. Each message says how to go on:
                ``linecolor train-head DIR --force`` makes a new head, deleting the file leaves the network alone.
        """
        path = Path(directory) / REGION_HEAD_FILE
        if not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
        except Exception as exc:  # safetensors raises its own error types for damaged files
            raise WeightsError(f"{path}: not a readable region head ({exc}){_REMEDY}") from exc
        try:
            features = json.loads(meta.get("features", "[]"))
        except ValueError:
            features = None
        if features != list(FEATURE_NAMES):
            raise WeightsError(f"{path}: made for other region features than this version computes{_REMEDY}")
        network = Path(directory) / NETWORK_FILE
        if "network_sha256" in meta and network.is_file() and file_sha256(network) != meta["network_sha256"]:
            raise WeightsError(f"{path}: trained for another network than {network.name} beside it{_REMEDY}")
        try:
            weights = tuple(tensors[f"layer{i}.{kind}"] for i in range(3) for kind in ("weight", "bias"))
            head = cls(weights, tensors["feature_mean"], tensors["feature_std"], tensors["palette"])
        except KeyError as exc:
            raise WeightsError(f"{path}: missing tensor {exc}") from None
        w1, b1, w2, b2, w3, b3 = head.weights
        m = head.members
        shapes_ok = (all(w.ndim == 3 for w in (w1, w2, w3)) and w1.shape[1] == NUM_FEATURES
                     and b1.shape == (m, w1.shape[2]) and w2.shape[:2] == (m, w1.shape[2])
                     and b2.shape == (m, w2.shape[2]) and w3.shape[:2] == (m, w2.shape[2])
                     and b3.shape == (m, w3.shape[2]) and 1 <= head.num_extra <= 1 + HINT_SLOTS
                     and head.feature_mean.shape == head.feature_std.shape == (NUM_FEATURES,)
                     and head.palette.ndim == 2 and head.palette.shape[1] == 3)
        if not shapes_ok or not all(np.isfinite(t).all() for t in tensors.values()) or (head.feature_std <= 0).any():
            raise WeightsError(f"{path}: inconsistent or non-finite region head tensors")
        return head


_REMEDY = ": make a new one with `linecolor train-head DIR --force`, or delete the file to use the network alone"


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
