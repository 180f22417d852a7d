"""Line analysis: the ink of a drawing and a full-resolution region map in which colour cannot pass through gaps.

Computed once per drawing (:func:`analyse`), identified by a content hash of the line art and the settings, and
reused for every hint stroke (:mod:`linecolor.raster.colouring` colours it). Torch-free.

How gaps are closed (the idea of G'MIC's smart colouring, Fourey, Tschumperlé & Revoy 2018: close where a line
*ends*, never where two lines merely come close):

1. **Ink.** A pixel is ink when it is darker than the paper by at least a quarter of the drawing's contrast
   (:func:`ink_threshold`): anti-aliased edges and light pencil count as ink, grey paper does not.
2. **Stroke ends.** The ink is thinned to its centre lines (a skeleton), branches shorter than a stroke width are
   pruned (spurs on the sides of thick lines, the prongs a gap leaves on a thick line's end), and a centre-line
   pixel with one neighbour is a stroke end. Its direction is the way the stroke was heading over its last two
   stroke widths; the closing stroke starts from the tip of the unpruned centre line.
3. **Closing strokes.** From each end, an invisible straight closing stroke goes to the nearest ink ahead of it
   (within :data:`END_CONE_DEGREES` of its direction) that is not the stroke itself, if that ink is within the
   gap setting: another end facing it (a broken outline) or the side of another line (a line that stops short).
   The stroke's own ink is what is connected to the end without leaving a disc of the gap's radius around it, so
   the other side of a gap in a small outline still counts as "other". With the automatic gap setting, two ends
   left open that head straight at each other are joined across up to :data:`FACING_GAP_FACTOR` times the gap,
   but only where those strokes together divide the paper into large parts (a head open at the chin; not cheek
   lines either side of a nose). A gap set by hand is a hard limit. The strokes that went to the side of a line
   are kept apart too (``side_closures``): the rooms they alone cut off may be one region the artist drew (a glyph
   stroke stopping short of its frame), which the colouring takes into account.
4. **Regions.** The paper, cut by the ink and the closing strokes, splits into 4-connected regions. A sliver
   smaller than :data:`SLIVER_STRIPS` strips of gap × stroke width that a closing stroke cut off joins its neighbour: a closing
   must seal the gap without inventing regions the artist did not draw.
5. **Ink takes its nearest region** (``extended``): colour runs on under the lines, and the line art multiplied on
   top darkens each region's own colour.

Large drawings are analysed on a coarser grid (steps 2–3, each cell the darkest of its pixels so thin lines
survive), with strokes of at least :data:`COARSE_STROKE_PX` cells; the regions themselves are always labelled at
full resolution, with the coarse grid's ink as a barrier too (so they have the topology the ends were found on).

Arrays: ``line`` uint8 (H, W), 255 paper, 0 ink (any grey in between); label maps (H, W), 0 = ink, 1…n regions.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.draw import line as draw_line
from skimage.morphology import skeletonize

from linecolor.bounded_cache import BoundedCache
from linecolor.errors import LinecolorError
from linecolor.limits import MAX_GAP

__all__ = ["AUTO_GAP_STROKE_WIDTHS", "AnalysisCache", "LineAnalysis", "analyse", "analysis_id", "close_gaps",
           "ink_mask", "ink_threshold", "SKETCH_GAP_FRACTION", "stroke_width"]

ANALYSIS_VERSION = 5
"""Part of every analysis id: bumped when the algorithm changes, so no cache serves an analysis of older code."""
AUTO_GAP_STROKE_WIDTHS = 4.0
"""With ``gap=None`` the engine closes gaps up to this many stroke widths (the drawing's median line width)."""
MIN_AUTO_GAP = 4.0
"""The automatic gap is at least this many pixels (thin one-pixel lines still have gaps of a few pixels)."""
END_CONE_DEGREES = 60.0
"""A closing stroke leaves a stroke end at most this far from the stroke's direction."""
SPUR_STROKE_WIDTHS = 1.0
"""Centre-line branches shorter than this many stroke widths are spurs or the prongs of a forked end, not strokes
(:func:`_pruned`)."""
FACING_GAP_FACTOR = 2.0
"""With the automatic gap, two stroke ends that face each other (each heading at the other within
:data:`FACING_CONE_DEGREES`) and found no closer closing stroke are joined up to this many times the gap: a broken
outline's two ends pointing at one another are a gap even when wide (G'MIC likewise closes curved gaps three times
as long as straight ones), while a line stopping short of another's side is as often meant to stay open. (The
bundled panda's head is open at the chin by about 6 stroke widths on both sides, the automatic gap is 4.)"""
FACING_MIN_AREA = 4.0
"""...and only when their closing stroke divides a region into two parts each at least this many times the stroke's
length squared (:func:`_draw_dividing`; G'MIC too keeps a closing only if it makes regions of some size)."""
FACING_CONE_DEGREES = 30.0
"""How straight at each other two ends must head to be joined across a wide gap (:data:`FACING_GAP_FACTOR`)."""
SIDE_GAP_FRACTION = 0.75
"""A closing stroke from a stroke end to the *side* of another line (not to another end) is at most this fraction
of the gap setting long."""
DIRECTION_STROKE_WIDTHS = 2.0
"""A stroke end's direction is measured over this many stroke widths of its centre line."""
SLIVER_STRIPS = 2.0
"""A region smaller than this many strips of gap × stroke width that a closing stroke cut off joins its neighbour
(the pocket a closing stroke leaves inside the gap it seals is about one such strip; proportional to the gap, not
its square, so a large gap setting does not swallow the small regions an artist drew)."""
SLIVER_CLOSURE_SHARE = 0.25
"""...and at least this share of its border runs along closing strokes: what a closing stroke *cut off*, not a small
region an artist drew that merely has a closing stroke nearby (a head's round interior beside a sealed junction)."""
COARSE_STROKE_PX = 5.0
"""Stroke ends are found on a grid coarse enough to be fast but with strokes at least this many cells wide."""
SPECK_CELLS = 3
"""On a drawing analysed on a coarser grid, paper regions smaller than this many grid cells count as line."""
INK_CONTRAST_FRACTION = 0.25
"""Ink is darker than the paper by at least this fraction of the drawing's contrast (:func:`ink_threshold`)."""
MIN_CONTRAST = 32
"""Below this difference between paper and the darkest pixels, a drawing has no ink at all (a blank page)."""


def ink_threshold(line: np.ndarray, fraction: float = INK_CONTRAST_FRACTION) -> int:
    """The grey level below which a pixel is ink: ``paper − fraction · (paper − dark)``, where paper is the median
    grey (most of a line drawing is paper) and dark the 0.2th percentile. 0 for a blank page."""
    sample = line[:: max(1, line.shape[0] // 512), :: max(1, line.shape[1] // 512)]
    paper, dark = np.percentile(sample, [50, 0.2])
    if paper - dark < MIN_CONTRAST:
        dark = float(line.min())
        if paper - dark < MIN_CONTRAST:
            return 0
    return int(np.ceil(paper - fraction * (paper - dark)))


def ink_mask(line: np.ndarray) -> np.ndarray:
    """bool (H, W): the ink of ``line`` (:func:`ink_threshold`)."""
    return line < ink_threshold(line)


def analysis_id(line: np.ndarray, gap: float | None) -> str:
    """Content hash of a line drawing and the analysis settings: equal drawings and settings, equal ids."""
    h = hashlib.sha256()
    h.update(f"linecolor-analysis:{ANALYSIS_VERSION}:{line.shape}:{gap!r}:".encode())
    h.update(np.ascontiguousarray(line, dtype=np.uint8).data)
    return h.hexdigest()[:32]


@dataclass(frozen=True, eq=False)
class LineAnalysis:
    """What :func:`analyse` found in one drawing; read-only, shared between strokes, threads and requests."""

    id: str
    """:func:`analysis_id` of the line art and the gap setting."""
    line: np.ndarray
    """uint8 (H, W): the line art analysed (multiplied onto every colouring)."""
    labels: np.ndarray
    """(H, W) uint16 or int32: 0 on ink and closing strokes (and, on drawings analysed on a coarser grid, the
    paper that grid counted as ink), 1…n the regions."""
    extended: np.ndarray
    """Same shape and dtype: ``labels`` with every ink and closing-stroke pixel given its nearest region's label."""
    num_regions: int
    areas: np.ndarray
    """int64 (n + 1,): pixels per region (index 0: ink and closing strokes)."""
    depth: np.ndarray
    """uint16 (H, W): each pixel's distance to the nearest ink or closing stroke, in quarter pixels."""
    gap: float
    """The gap setting used, in pixels (resolved from ``None`` to :data:`AUTO_GAP_STROKE_WIDTHS` stroke widths)."""
    stroke_width: float
    """Median stroke width of the drawing, in pixels (:func:`stroke_width`)."""
    ink_level: int
    """Pixels below this grey level are ink (:func:`ink_threshold`)."""
    closures: np.ndarray = field(repr=False)
    """bool (H, W): the closing strokes (paper pixels the analysis treats as line)."""
    num_closures: int = 0
    """Closing strokes drawn."""
    stroke_ends: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int32), repr=False)
    """int32 (k, 2): ``(y, x)`` of every stroke end found (step 2), closed or not (on a drawing analysed on a coarser
    grid, the centre of the end's grid cell): where a gap may be. :mod:`linecolor.raster.colouring` keeps a small
    hinted shape's colour from flowing through a pass beside one into much larger paper."""
    side_closures: np.ndarray | None = field(default=None, repr=False)
    """bool (H, W): the closing strokes that go from a stroke end to the *side* of another line (a subset of
    ``closures``; None: none). A line that stops short of another's side is as often drawn that way (a glyph
    stroke inside its frame) as it is a gap, so :mod:`linecolor.raster.colouring` lets a room such strokes alone
    cut off take the colour of the paper across them."""

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape

    @property
    def nbytes(self) -> int:
        """Memory held by the image-sized arrays (what :class:`AnalysisCache` counts; ``stroke_ends`` is a few
    bytes)."""
        arrays = (self.line, self.labels, self.extended, self.areas, self.depth, self.closures, self.side_closures)
        return sum(a.nbytes for a in arrays if a is not None)

    def region_at(self, x: int, y: int) -> int:
        """The region under pixel (x, y); a pixel on ink belongs to its nearest region."""
        return int(self.extended[y, x])


def analyse(line: np.ndarray, gap: float | None = None) -> LineAnalysis:
    """Find the ink and the gap-closed regions of ``line`` (uint8 (H, W), 255 paper); see the module docstring.

    Args:
        line: the line art.
        gap: close gaps up to this many pixels; ``None`` picks :data:`AUTO_GAP_STROKE_WIDTHS` times the drawing's
            stroke width (at least :data:`MIN_AUTO_GAP`), and up to :data:`FACING_GAP_FACTOR` times that between
            stroke ends that face each other where it divides the paper; 0 closes nothing (the paint bucket's
            regions).

    Raises:
        LinecolorError: ``gap`` is negative, not a number or above :data:`MAX_GAP`; ``line`` is not uint8 (H, W).
    """
    if not (isinstance(line, np.ndarray) and line.ndim == 2 and line.dtype == np.uint8 and line.size):
        raise LinecolorError(f"line must be a non-empty uint8 (H, W) array, got {getattr(line, 'shape', line)!r}")
    if gap is not None and (isinstance(gap, bool) or not isinstance(gap, (int, float)) or not 0 <= gap <= MAX_GAP):
        raise LinecolorError(f"gap must be a number of pixels in [0, {MAX_GAP:g}] or None (automatic), got {gap!r}")
    level = ink_threshold(line)
    ink = line < level
    stroke = stroke_width(ink)
    closing = float(gap) if gap is not None else max(MIN_AUTO_GAP, AUTO_GAP_STROKE_WIDTHS * stroke)
    closures = bridges = sealed = np.zeros(line.shape, bool)
    to_side = None
    count = 0
    ends = np.zeros((0, 2), np.int32)
    if closing > 0 and ink.any():
        facing = FACING_GAP_FACTOR * closing if gap is None else closing
        closures, bridges, sealed, to_side, count, ends = _closing_strokes(ink, closing, stroke, facing)
    barrier = ink | closures | bridges | sealed
    labels, n = ndimage.label(~barrier)
    if sealed.any():
        # Paper the seal shut in, no bigger than a couple of grid cells (between two strokes a pixel apart), is
        # part of the line, not a region: it would show as a white speck in it.
        areas = np.bincount(labels.ravel(), minlength=n + 1)
        specks = areas < SPECK_CELLS * _grid_factor(stroke) ** 2
        specks[0] = True
        if specks[1:].any():
            barrier |= specks[labels]
            labels, n = ndimage.label(~barrier)
    extended = _extend_into_ink(labels, barrier)
    if count:
        # Only what the closing strokes cut off is a sliver; bridges seal corners, they make no new regions.
        labels, extended, n = _absorb_slivers(labels, extended, n, closures, closing, stroke)
    closures = closures | bridges
    dtype = np.uint16 if n < np.iinfo(np.uint16).max else np.int32
    labels, extended = labels.astype(dtype), extended.astype(dtype)
    areas = np.bincount(labels.ravel(), minlength=n + 1).astype(np.int64)
    distance = ndimage.distance_transform_cdt(~barrier, metric="chessboard") if barrier.any() else \
        np.full(line.shape, 1 << 14)
    depth = np.minimum(distance.astype(np.int64) * 4, np.iinfo(np.uint16).max).astype(np.uint16)
    return LineAnalysis(analysis_id(line, gap), np.ascontiguousarray(line), labels, extended, int(n), areas, depth,
                        closing, stroke, level, closures, count, ends, to_side)


def stroke_width(ink: np.ndarray) -> float:
    """Median stroke width of ``ink`` in pixels: twice the median distance to paper on the strokes' centre lines
    (local maxima of the chessboard distance), minus one.

    A median over centre lines is blind to the blobs where strokes meet and to anti-aliased fringes; its known
    bias is that a stroke only two pixels wide has both its pixels as maxima and reads as one pixel.
    """
    if not ink.any():
        return 1.0
    inside = ndimage.distance_transform_cdt(ink, metric="chessboard")
    ridge = (inside == ndimage.maximum_filter(inside, size=3)) & ink  # local maxima: the centre lines
    return max(1.0, float(2.0 * np.median(inside[ridge]) - 1.0))


def _grid_factor(stroke: float) -> int:
    """Pixels per side of the cells stroke ends are found on (strokes stay :data:`COARSE_STROKE_PX` cells wide)."""
    return max(1, int(stroke // COARSE_STROKE_PX))


def _coarse(ink: np.ndarray, factor: int) -> np.ndarray:
    """``ink`` on a grid of ``factor``-pixel cells: a cell is ink when any of its pixels is."""
    if factor == 1:
        return ink
    h, w = ink.shape
    hc, wc = -(-h // factor), -(-w // factor)
    padded = np.zeros((hc * factor, wc * factor), bool)
    padded[:h, :w] = ink
    return padded.reshape(hc, factor, wc, factor).any(axis=(1, 3))


_NEIGHBOURS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _closing_strokes(ink: np.ndarray, gap: float, stroke: float, facing_gap: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, int, np.ndarray]:
    """Steps 2–3, closing gaps up to ``gap`` pixels (up to ``facing_gap`` between ends facing each other).

    Returns bool (H, W) closing strokes (on paper only), bool (H, W) bridges (paper that the coarse grid counted as
    ink around the ends, drawn with the closing strokes), bool (H, W) the seal (all paper that the coarse grid
    counted as ink, a barrier like ink; see below), bool (H, W) the closing strokes that go to the side of a line
    (not to another end; a subset of the first; None if there are none), how many strokes were drawn, and int32
    (k, 2) the full-resolution ``(y, x)`` of every stroke end found (stubs included; the centre of its grid
    cell)."""
    factor = _grid_factor(stroke)
    coarse = _coarse(ink, factor)
    gap_c, stroke_c = gap / factor, max(1.0, stroke / factor)
    prune = max(2, int(round(SPUR_STROKE_WIDTHS * stroke_c)))
    full = skeletonize(coarse)
    skeleton = _pruned(full, prune)
    removed = full & ~skeleton
    steps = max(3, int(round(DIRECTION_STROKE_WIDTHS * stroke_c)))
    found = []  # (tip y, tip x, direction): the direction from the pruned line, the tip from the unpruned one
    for y, x in np.argwhere(_tips(skeleton)):
        direction = _end_direction(skeleton, int(y), int(x), steps)
        if direction is not None:
            found.append((*_tip(removed, int(y), int(x), direction, prune), direction))
    stubs = _stub_ends(full, skeleton, removed, found)
    # Near another stroke end: the ink a closing stroke reaches there closes a broken line end to end. Cut-off
    # branches count too: a line broken right next to a junction keeps only a stub there, which the pruning removed.
    near_end = removed.copy()
    for y, x, _ in found + stubs:
        near_end[y, x] = True
    near_end = ndimage.binary_dilation(near_end, iterations=max(1, int(round(stroke_c)))) & coarse
    hc, wc = coarse.shape
    radius = int(math.ceil(gap_c))
    side_limit = SIDE_GAP_FRACTION * gap_c
    cos_cone = math.cos(math.radians(END_CONE_DEGREES))
    closures = np.zeros(coarse.shape, bool)
    to_side = np.zeros(coarse.shape, bool)
    drawn = 0
    closed: set[int] = set()  # indices into ``found`` of the ends that drew a closing stroke
    for index, (y, x, direction) in enumerate(found + stubs):
        stub = index >= len(found)
        y0, y1, x0, x1 = max(0, y - radius), min(hc, y + radius + 1), max(0, x - radius), min(wc, x + radius + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dy, dx = yy - y, xx - x
        dist = np.hypot(dy, dx)
        disc = coarse[y0:y1, x0:x1] & (dist <= gap_c)
        own, _ = ndimage.label(disc, structure=np.ones((3, 3), bool))
        mine = own[y - y0, x - x0]
        ahead = (dy * direction[0] + dx * direction[1]) >= cos_cone * dist
        candidates = disc & (own != mine) & ahead
        # Another end facing this one: up to the whole gap. The side of a line: only up to a fraction of it (a
        # line stopping short of another is as often meant to stay open, a hair strand, as it is a gap).
        ends_ahead = candidates & near_end[y0:y1, x0:x1]
        # A stub (below) is too short to be sure of its heading: it may only meet another end.
        pick = ends_ahead if ends_ahead.any() or stub else candidates & (dist <= side_limit)
        if not pick.any():
            continue
        k = np.argmin(np.where(pick, dist, np.inf))
        rr, cc = draw_line(y, x, int(yy.flat[k]), int(xx.flat[k]))
        closures[rr, cc] = True
        if not ends_ahead.any():
            to_side[rr, cc] = True
        drawn += 1
        if not stub:
            closed.add(index)
    thickness = max(1, int(round(stroke_c / 2.0)))
    facing_cone = math.cos(math.radians(FACING_CONE_DEGREES))
    pairs = _facing_pairs(found, closed, coarse, facing_gap / factor, gap_c, facing_cone, stroke_c)
    if pairs:
        drawn += _draw_dividing(pairs, found, coarse | ndimage.binary_dilation(closures, iterations=thickness),
                                closures, thickness)
    if drawn:
        # As thick as the strokes they continue: a thin closing stroke that starts a little off the end's centre
        # would leave part of the opening beside it.
        closures = ndimage.binary_dilation(closures, iterations=thickness)
    bridges = sealed = np.zeros(ink.shape, bool)
    if factor > 1:
        # The coarse grid's ink is a barrier too, everywhere: the ends and their closing strokes were found on it,
        # so the regions must be cut with the same topology. Where it joins strokes that the full-resolution ink
        # leaves a pixel apart (anti-aliased corners, a gap cut barely wider than its stroke), the fine paper would
        # otherwise leak through a channel no closing stroke was drawn for, since no end was seen there.
        sealed = np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)[: ink.shape[0], : ink.shape[1]]
        if found:
            # Around the ends, where such channels are gaps, the seal is drawn with the closing strokes.
            tips = np.zeros(coarse.shape, bool)
            tips[tuple(np.array([(y, x) for y, x, _ in found]).T)] = True
            near = coarse & (ndimage.distance_transform_edt(~tips) <= gap_c)
            bridges = np.repeat(np.repeat(near, factor, axis=0), factor, axis=1)[: ink.shape[0], : ink.shape[1]]
        closures = np.repeat(np.repeat(closures, factor, axis=0), factor, axis=1)[: ink.shape[0], : ink.shape[1]]
    tips = np.array([(y, x) for y, x, _ in found + stubs], np.int64).reshape(-1, 2) * factor + factor // 2
    tips = np.minimum(tips, np.array(ink.shape) - 1).astype(np.int32)
    side = None
    if to_side.any():  # thickened and brought to full resolution like the closing strokes above
        side = np.repeat(np.repeat(ndimage.binary_dilation(to_side, iterations=thickness), factor, axis=0), factor,
                         axis=1)[: ink.shape[0], : ink.shape[1]] & ~ink
    return closures & ~ink, bridges & ~ink, sealed & ~ink, side, drawn, tips


def _facing_pairs(ends: list[tuple[int, int, tuple[float, float]]], closed: set[int], coarse: np.ndarray,
                  limit: float, gap: float, cos_cone: float, stroke: float) -> list[tuple[int, int]]:
    """Pairs ``(a, b)`` of indices into ``ends`` (``(y, x, direction)``) that step 3 left open and that face each
    other: further apart than ``gap`` but at most ``limit`` cells, each heading at the other within the cone, and
    no ink on the straight line between them farther than a stroke width from both (it would cut across another
    line, not close a gap). Each end joins at most one pair, its nearest."""
    open_ends = [i for i in range(len(ends)) if i not in closed]
    candidates = []
    for i, a in enumerate(open_ends):
        ya, xa, da = ends[a]
        for b in open_ends[i + 1:]:
            yb, xb, db = ends[b]
            dy, dx = yb - ya, xb - xa
            dist = math.hypot(dy, dx)
            if not gap < dist <= limit:
                continue
            if (dy * da[0] + dx * da[1]) < cos_cone * dist or -(dy * db[0] + dx * db[1]) < cos_cone * dist:
                continue
            rr, cc = draw_line(ya, xa, yb, xb)
            inner = (np.hypot(rr - ya, cc - xa) > stroke) & (np.hypot(rr - yb, cc - xb) > stroke)
            if coarse[rr[inner], cc[inner]].any():
                continue
            candidates.append((dist, a, b))
    pairs, used = [], set()
    for _, a, b in sorted(candidates):
        if a not in used and b not in used:
            pairs.append((a, b))
            used.update((a, b))
    return pairs


def _draw_dividing(pairs: list[tuple[int, int]], ends: list[tuple[int, int, tuple[float, float]]],
                   barrier: np.ndarray, closures: np.ndarray, thickness: int) -> int:
    """Draw into ``closures`` the closing strokes of the facing pairs that, together, divide the paper (cut by
    ``barrier``): each kept stroke borders two regions of at least :data:`FACING_MIN_AREA` times its length squared.
    Strokes that fail are dropped one at a time (the one furthest below its bound first) until all that remain
    pass. Returns how many were drawn.

    Why: a wide closing stroke is only right where the drawing has an enclosed shape to seal (a head open at the
    chin on both sides, which takes two strokes together). Facing ends that divide nothing (cheek lines either side
    of a nose, waves) or only a pocket (between two spikes of a virus) are lines the artist left open."""
    h, w = barrier.shape
    strokes = []  # (box, the stroke's cells in it, thickened, the area each side needs); boxes keep this cheap
    for a, b in pairs:
        rr, cc = draw_line(ends[a][0], ends[a][1], ends[b][0], ends[b][1])
        pad = thickness + 2
        box = (slice(max(0, rr.min() - pad), min(h, rr.max() + pad + 1)),
               slice(max(0, cc.min() - pad), min(w, cc.max() + pad + 1)))
        cells = np.zeros((box[0].stop - box[0].start, box[1].stop - box[1].start), bool)
        cells[rr - box[0].start, cc - box[1].start] = True
        strokes.append((box, cells, ndimage.binary_dilation(cells, iterations=thickness),
                        FACING_MIN_AREA * rr.size ** 2))
    while strokes:
        drawn = barrier.copy()
        for box, _, thick, _ in strokes:
            drawn[box] |= thick
        labels, n = ndimage.label(~drawn)
        areas = np.bincount(labels.ravel(), minlength=n + 1)
        margins = []
        for box, _, thick, needed in strokes:
            beside = np.unique(labels[box][ndimage.binary_dilation(thick) & ~drawn[box]])
            sides = np.sort(areas[beside[beside > 0]])
            margins.append(sides[-2] / needed if sides.size >= 2 else 0.0)
        worst = int(np.argmin(margins))
        if margins[worst] >= 1.0:
            for box, cells, _, _ in strokes:
                closures[box] |= cells  # thickened with the others by the caller
            return len(strokes)
        del strokes[worst]
    return 0


def _stub_ends(full: np.ndarray, skeleton: np.ndarray, removed: np.ndarray,
               found: list[tuple[int, int, tuple[float, float]]]) -> list[tuple[int, int, tuple[float, float]]]:
    """Stroke ends whose whole stroke the pruning removed: a gap cut right next to a corner or a junction leaves
    only a stub there, shorter than the pruning, so the pruned centre lines show no end at all.

    Each is ``(tip y, tip x, direction)``: a tip of the unpruned centre line on a cut-off branch that is not the tip
    of an end found already, heading from where the branch leaves the pruned line to the tip. Only branches at
    least two cells long count (single-cell bumps are noise)."""
    branches, count = ndimage.label(removed, structure=np.ones((3, 3), bool))
    if count == 0:
        return []
    taken = {(y, x) for y, x, _ in found}
    attached = removed & ndimage.binary_dilation(skeleton, structure=np.ones((3, 3), bool))
    sizes = np.bincount(branches.ravel(), minlength=count + 1)
    boxes = ndimage.find_objects(branches)
    stubs = []
    for y, x in np.argwhere(_tips(full) & removed):
        y, x = int(y), int(x)
        if any(abs(y - ty) <= 1 and abs(x - tx) <= 1 for ty, tx in taken):
            continue
        branch = branches[y, x]
        if sizes[branch] < 2:
            continue
        box = boxes[branch - 1]
        roots = np.argwhere(attached[box] & (branches[box] == branch)) + (box[0].start, box[1].start)
        if roots.size == 0:  # a free-standing bit of line, not a stub of a longer stroke
            continue
        ry, rx = roots[np.argmax((roots[:, 0] - y) ** 2 + (roots[:, 1] - x) ** 2)]
        norm = math.hypot(y - ry, x - rx)
        if norm >= 2:
            stubs.append((y, x, ((y - ry) / norm, (x - rx) / norm)))
    return stubs


def _tip(removed: np.ndarray, y: int, x: int, direction: tuple[float, float], prune: int) -> tuple[int, int]:
    """Where a pruned stroke end really ended: the cut-off centre-line cell farthest ahead of it (itself if none)."""
    h, w = removed.shape
    y0, y1, x0, x1 = max(0, y - prune - 1), min(h, y + prune + 2), max(0, x - prune - 1), min(w, x + prune + 2)
    cy, cx = np.nonzero(removed[y0:y1, x0:x1])
    if cy.size == 0:
        return y, x
    ahead = (cy + y0 - y) * direction[0] + (cx + x0 - x) * direction[1]
    across = np.abs(-(cy + y0 - y) * direction[1] + (cx + x0 - x) * direction[0])
    score = ahead - across  # straight ahead, not out along one prong of a forked end
    k = int(np.argmax(score))
    return (int(cy[k] + y0), int(cx[k] + x0)) if score[k] > 0 else (y, x)


def _end_direction(skeleton: np.ndarray, y: int, x: int, steps: int) -> tuple[float, float] | None:
    """Unit (dy, dx) pointing out of a stroke end: from the centre line ``steps`` cells behind it to the end.

    The walk back goes on through junctions, always to the neighbour that keeps the heading best, so a stroke end
    that a gap has forked into two prongs gets the direction of the stroke itself. None for an isolated dot.
    """
    h, w = skeleton.shape
    path = [(y, x)]
    seen = {(y, x)}
    heading = None
    while len(path) <= steps:
        cy, cx = path[-1]
        best, best_score = None, -2.0
        for dy, dx in _NEIGHBOURS:
            cell = (cy + dy, cx + dx)
            if not (0 <= cell[0] < h and 0 <= cell[1] < w) or not skeleton[cell] or cell in seen:
                continue
            score = 0.0 if heading is None else (dy * heading[0] + dx * heading[1]) / math.hypot(dy, dx)
            if score > best_score:
                best, best_score = cell, score
        if best is None:
            break
        seen.add(best)
        heading = (best[0] - y, best[1] - x)
        norm = math.hypot(*heading)
        heading = (heading[0] / norm, heading[1] / norm)
        path.append(best)
    by, bx = path[-1]
    norm = math.hypot(y - by, x - bx)
    if len(path) < 3 or norm == 0:
        return None
    return (y - by) / norm, (x - bx) / norm


_RING = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]
"""The 8 neighbours in order around a cell."""


def _tips(skeleton: np.ndarray) -> np.ndarray:
    """bool (H, W): centre-line cells that end a line: their centre-line neighbours form one group around them
    (the crossing number is 1) or they have none. Counting groups rather than neighbours also finds the end of
    a line whose last cells form a little knot, as thinning leaves at thick ends."""
    padded = np.pad(skeleton, 1).astype(np.int8)
    h, w = skeleton.shape
    ring = [padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in _RING]
    crossings = sum(np.abs(ring[(i + 1) % 8] - ring[i]) for i in range(8)) // 2
    return skeleton & (crossings <= 1)


def _pruned(skeleton: np.ndarray, length: int) -> np.ndarray:
    """The centre lines without branches shorter than ``length`` cells: every end is cut back ``length`` times.

    Why: the centre line of a thick or anti-aliased stroke has spurs (bumps on its sides) and a gap cut into it
    leaves a forked end; both would look like stroke ends pointing the wrong way. Cut back, spurs and prongs
    vanish and a real end sits ``length`` cells inside its stroke, which is where its closing stroke starts (it
    crosses the stroke's own ink, which changes nothing).
    """
    pruned = skeleton.copy()
    for _ in range(length):
        tips = _tips(pruned)
        if not tips.any():
            break
        pruned &= ~tips
    return pruned


def _absorb_slivers(labels: np.ndarray, extended: np.ndarray, n: int, closures: np.ndarray, gap: float,
                    stroke: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Step 4: a region smaller than SLIVER_STRIPS · gap · stroke with at least SLIVER_CLOSURE_SHARE of its border
    along closing strokes joins the neighbour it shares the longest border with (through ink or the closing stroke). The closing stroke stays: it still seals
    the gap, it just does not make a region of the sliver it cut off.

    Returns ``(labels, extended, n)`` renumbered 1…n.
    """
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    near_closure = np.unique(extended[ndimage.binary_dilation(closures, iterations=2)])
    slivers = near_closure[(near_closure > 0) & (areas[near_closure] < SLIVER_STRIPS * gap * stroke)]
    if slivers.size:
        # Border pixels of each region (paper next to ink or a closing stroke), and those next to a closing stroke.
        border = ndimage.binary_dilation(labels == 0) & (labels > 0)
        along = ndimage.binary_dilation(closures, iterations=2) & border
        total = np.bincount(labels[border], minlength=n + 1)
        on_closure = np.bincount(labels[along], minlength=n + 1)
        slivers = slivers[on_closure[slivers] >= SLIVER_CLOSURE_SHARE * np.maximum(total[slivers], 1)]
    if slivers.size == 0:
        return labels, extended, n
    target = np.arange(n + 1)
    contacts = _boundary_lengths(extended, n)
    best: dict[int, tuple[int, int]] = {}
    sliver_set = set(slivers.tolist())
    for key, count in contacts.items():
        a, b = divmod(key, n + 1)
        for small, other in ((a, b), (b, a)):
            if small in sliver_set and other not in sliver_set and count > best.get(small, (0, 0))[0]:
                best[small] = (count, other)
    for small, (_, other) in best.items():
        target[small] = other
    _, mapping = np.unique(target, return_inverse=True)  # old label → new label; 0 stays 0
    mapping = mapping.astype(np.int32).ravel()
    return mapping[labels], mapping[extended], int(mapping.max())


def _boundary_lengths(labels: np.ndarray, n: int) -> dict[int, int]:
    """``{a · (n + 1) + b: count}`` of 4-neighbour pixel pairs with labels 0 < a < b."""
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    keep = (a != b) & (a > 0) & (b > 0)
    a, b = a[keep].astype(np.int64), b[keep].astype(np.int64)
    keys, counts = np.unique(np.minimum(a, b) * (n + 1) + np.maximum(a, b), return_counts=True)
    return dict(zip(keys.tolist(), counts.tolist()))


def _extend_into_ink(labels: np.ndarray, barrier: np.ndarray) -> np.ndarray:
    """``labels`` with every barrier pixel (ink, closing stroke) given a neighbouring region's label, layer by layer
    from the paper inwards (breadth first in 4-connectivity: a region at the smallest city-block distance).

    Why not ``distance_transform_edt(..., return_indices=True)``: that costs two int32 index arrays and a pass over
    the whole image, while ink is a few per cent of a drawing and a stroke is only a few layers thick.
    """
    extended = labels.copy()
    ys, xs = np.nonzero(barrier)
    h, w = labels.shape
    while ys.size:
        found = np.zeros(ys.size, extended.dtype)
        for dy, dx in ((0, -1), (0, 1), (-1, 0), (1, 0)):
            ny, nx = np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)
            take = found == 0
            found[take] = extended[ny[take], nx[take]]
        done = found > 0
        if not done.any():  # ink with no paper anywhere (an all-ink image)
            break
        extended[ys[done], xs[done]] = found[done]
        ys, xs = ys[~done], xs[~done]
    return extended


SKETCH_GAP_FRACTION = 0.09
"""Gaps a cleaned-up sketch's closing strokes bridge, as a fraction of the drawing's short side: its strokes were
thinned to a pixel or two, so their width no longer says how far apart a sketch's strokes stop, and a pencil
sketch's strokes stop far apart (on the bundled Pepper sketch, 0.02 left face, hat and background one region; 0.09
separates them; 0.12 starts cutting the face apart)."""


def close_gaps(line: np.ndarray, gap: float | None = None) -> np.ndarray:
    """``line`` with the analysis' closing strokes drawn in as ink (black): line art whose regions close, for a
    paint bucket in any program (what the studio's sketch clean-up returns). ``gap``: as in :func:`analyse`."""
    analysis = analyse(line, gap)
    closed = line.copy()
    closed[analysis.closures] = 0
    return closed


class AnalysisCache:
    """Analyses by id, least recently used dropped first, bounded by the bytes their arrays hold
    (:class:`~linecolor.bounded_cache.BoundedCache`). Thread-safe.

    ``get_or_compute(line, gap)`` hashes the drawing (:func:`analysis_id`) and analyses it only the first time, so
    each later stroke on the same drawing costs only the colouring.
    """

    def __init__(self, max_bytes: int):
        self._cache: BoundedCache[str, LineAnalysis] = BoundedCache(max_bytes, lambda a: a.nbytes)
        self.hits = 0
        self.misses = 0

    @property
    def max_bytes(self) -> int:
        return self._cache.max_bytes

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def nbytes(self) -> int:
        return self._cache.nbytes

    def get(self, analysis_id_: str) -> LineAnalysis | None:
        return self._cache.get(analysis_id_)

    def put(self, analysis: LineAnalysis) -> LineAnalysis:
        return self._cache.put(analysis.id, analysis)

    def get_or_compute(self, line: np.ndarray, gap: float | None = None) -> LineAnalysis:
        found = self.get(analysis_id(line, gap))
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        return self.put(analyse(line, gap))
