"""Consistent pages: a region that appeared on an earlier page keeps that page's colour.

Comics, character sheets and avatar sets draw the same character again and again: the same hair, jacket and face
outline, with another expression or pose detail. When such pages are coloured one after another, each page's
regions are matched against the regions of the pages coloured before it, and a region the user did not hint takes
the colour of its match, as if it had been hinted, instead of a fresh (and slightly different) suggestion.

Matching is by overlap on a common grid: both drawings are sampled on :data:`MATCH_GRID` × :data:`MATCH_GRID`
cells over the whole picture (so pages must share their framing, as template-based drawings do), and a region's
match is the earlier region it overlaps best, accepted when their intersection over union is at least
:data:`MIN_MATCH_IOU`. Newer pages are searched first. Regions that changed shape (an open mouth instead of a
closed one) find no match and take the model's suggestion as usual.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from linecolor.raster.colouring import RegionColours
from linecolor.raster.regions import LineAnalysis

__all__ = ["MATCH_GRID", "MIN_MATCH_IOU", "PageColours", "carry_colours"]

MATCH_GRID = 128
"""Cells per side of the grid on which regions of two pages are compared (enough for regions of a few per cent of
a page; small regions the grid misses are left to the usual colouring)."""
MIN_MATCH_IOU = 0.6
"""Least intersection over union for two regions to be the same: moved or reshaped parts stay below it."""


def region_grid(analysis: LineAnalysis) -> np.ndarray:
    """int32 (MATCH_GRID, MATCH_GRID): the region at each cell centre (0 on ink)."""
    h, w = analysis.shape
    ys = np.minimum(((np.arange(MATCH_GRID) + 0.5) * h / MATCH_GRID).astype(np.int64), h - 1)
    xs = np.minimum(((np.arange(MATCH_GRID) + 0.5) * w / MATCH_GRID).astype(np.int64), w - 1)
    return analysis.labels[ys[:, None], xs[None, :]].astype(np.int32)


@dataclass(frozen=True)
class PageColours:
    """What a coloured page passes on: its regions on the common grid and the colour each one got."""

    grid: np.ndarray
    """int32 (MATCH_GRID, MATCH_GRID), :func:`region_grid` of the page."""
    colours: np.ndarray
    """float32 (n + 1, 3) in [0, 255]: the flat colour every region of the page got (hinted or suggested)."""

    @classmethod
    def of(cls, analysis: LineAnalysis, table: np.ndarray) -> "PageColours":
        return cls(region_grid(analysis), np.asarray(table, np.float32).copy())


def best_matches(grid: np.ndarray, earlier: np.ndarray, regions: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For every region 1…n of ``grid`` (n = ``regions``, default the largest label on the grid; regions too small
    for the grid have no cells): the region of ``earlier`` it overlaps best and their IoU, as
    ``(match int64 (n + 1,), iou float64 (n + 1,))`` (0 and 0.0 where there is no overlap)."""
    n, m = max(int(grid.max()), regions or 0), int(earlier.max())
    area = np.bincount(grid.ravel(), minlength=n + 1)
    area_earlier = np.bincount(earlier.ravel(), minlength=m + 1)
    both = (grid > 0) & (earlier > 0)
    # Sparse: a noisy sketch has thousands of regions, and a dense n × m overlap table would not fit.
    pairs, inter = np.unique(grid[both].astype(np.int64) * (m + 1) + earlier[both], return_counts=True)
    own, other = pairs // (m + 1), pairs % (m + 1)
    iou = inter / (area[own] + area_earlier[other] - inter)
    order = np.lexsort((-iou, own))  # by region, best first
    first = order[np.r_[True, own[order][1:] != own[order][:-1]]] if len(order) else order
    match, best = np.zeros(n + 1, np.int64), np.zeros(n + 1)
    match[own[first]], best[own[first]] = other[first], iou[first]
    return match, best


def carry_colours(analysis: LineAnalysis, colours: RegionColours, pages: Sequence[PageColours]) -> RegionColours:
    """``colours`` with every unhinted region that matches a region of ``pages`` (newest last; searched newest
    first) taking that region's colour, as if it had been hinted. Hinted regions keep their hints' colours."""
    if not pages:
        return colours
    grid = region_grid(analysis)
    table, hinted = colours.table.copy(), colours.hinted.copy()
    for page in reversed(pages):
        match, iou = best_matches(grid, page.grid, len(hinted) - 1)
        take = (~hinted) & (iou >= MIN_MATCH_IOU)
        take[0] = False
        table[take] = page.colours[match[take]]
        hinted |= take
    return dataclasses.replace(colours, table=table, hinted=hinted)
