"""The output composite: what decides every output colour.

The drawing's gap-closed regions (:mod:`linecolor.raster.regions`, analysed once per drawing) and the hint strokes
(:func:`linecolor.raster.colouring.assign_hints`) decide every *hinted* region: one flat colour each, hints never
crossing a line or a closed gap. The network, run at its working size, does what no region fill can: it suggests
colours for the regions nobody hinted and, in the ``network`` composite, adds its shading.

* :class:`WorkGrid` — the region map seen at the network's working size (cached per drawing and letterbox).
* :func:`fill_guide` — the hinted regions' flat colours at the working size: the 4 fill channels a ``fill_guide``
  network reads (:func:`linecolor.inference.conditioning.build_condition`).
* :func:`suggestions` — each unhinted region's colour: the network's median colour there, or, with a
  :class:`~linecolor.inference.region_head.RegionHead`, the head's pick; moved towards white by the suggestion
  strength.
* :func:`compose` — the full-resolution image: ``regions`` (flat: every region one colour, lines multiplied on) or
  ``network`` (those flats shaded by the network, :func:`shading_ratio`).
* :func:`compose_layers` — the same result as separate layers (flats, shading, lines, hints) for PSD / OpenRaster.

Colours: uint8 (H, W, 3) at full resolution, float (n + 1, 3) in [0, 255] per region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from linecolor.inference.conditioning import Letterbox, letterbox_line
from linecolor.inference.region_head import RegionHead, region_features
from linecolor.limits import (
    COMPOSITES,
    LINE_RIM_PX,
    SHADING_CLIP,
    SHADING_OFFSET,
    SHADING_SMOOTH_PX,
    SHADING_STRENGTH,
    SUGGESTION_STRENGTH,
)
from linecolor.raster.colouring import RegionColours, colour_layer, multiply_lines
from linecolor.raster.fill import INK_THRESHOLD
from linecolor.raster.layered import Layer, LayeredImage, shading_layers
from linecolor.raster.palette import Palette
from linecolor.raster.regions import LineAnalysis
from linecolor.raster.resize import resize_float

__all__ = ["LAYER_NAMES", "WorkGrid", "compose", "compose_layers", "fill_guide", "head_inputs", "line_rim",
           "network_medians", "region_medians", "region_table", "shading_ratio", "suggestions"]

LAYER_NAMES = ("flats", "shading", "highlights", "lines", "hints")
"""The layers of :func:`compose_layers`, bottom first (``shading`` and ``highlights`` only with shading)."""


@dataclass(frozen=True)
class WorkGrid:
    """A drawing's regions and line sampled on the network's working canvas (the same for every stroke on it)."""

    labels: np.ndarray
    """int32 (ch, cw): the region under each working pixel of the content (its centre, nearest neighbour)."""
    representative: np.ndarray
    """int64 (n + 1, 2): a working pixel (y, x) inside or next to each region, for regions too small to own one."""
    line: np.ndarray
    """uint8 (H', W'): the letterboxed line art the network sees (:func:`letterbox_line`; at 4096² it takes about
    0.4 s, which a new stroke no longer pays)."""
    shapes: np.ndarray
    """float64 (n + 1, 8): each region's shape features for the region head
    (:func:`~linecolor.inference.region_head.region_features`): log of its share of the drawing's area, its
    bounding box's centre y and x and height and width as shares of the drawing, its area over its box's, whether it
    touches the drawing's border, log(1 + its neighbours)."""
    pairs: np.ndarray
    """int64 (m, 2): the pairs of regions that touch on the working grid (each pair once, smaller label first)."""

    @classmethod
    def of(cls, analysis: LineAnalysis, box: Letterbox) -> "WorkGrid":
        cw, ch = box.content_size
        h, w = analysis.shape
        ys = np.minimum(((np.arange(ch) + 0.5) * h / ch).astype(np.int64), h - 1)
        xs = np.minimum(((np.arange(cw) + 0.5) * w / cw).astype(np.int64), w - 1)
        labels = analysis.extended[ys[:, None], xs[None, :]].astype(np.int32)
        n = analysis.num_regions
        representative = np.zeros((n + 1, 2), np.int64)
        shapes = np.zeros((n + 1, 8))
        shapes[:, 0] = np.log(analysis.areas / (h * w) + 1e-6)
        for r, sl in enumerate(ndimage.find_objects(analysis.labels), start=1):
            if sl is not None:
                cy, cx = (sl[0].start + sl[0].stop) / 2.0, (sl[1].start + sl[1].stop) / 2.0
                representative[r] = (min(int(cy * ch / h), ch - 1), min(int(cx * cw / w), cw - 1))
                bh, bw = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
                shapes[r, 1:6] = (cy / h, cx / w, bh / h, bw / w, analysis.areas[r] / (bh * bw))
        ext = analysis.extended
        shapes[np.unique(np.concatenate([ext[0], ext[-1], ext[:, 0], ext[:, -1]])), 6] = 1.0
        a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()]).astype(np.int64)
        b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()]).astype(np.int64)
        apart = a != b
        keys = np.unique(np.minimum(a, b)[apart] * (n + 1) + np.maximum(a, b)[apart])
        pairs = np.stack([keys // (n + 1), keys % (n + 1)], axis=1)
        shapes[:, 7] = np.log1p(np.bincount(pairs.ravel(), minlength=n + 1))
        line = letterbox_line(analysis.line, box)
        line.setflags(write=False)  # shared by every stroke and request on this drawing
        return cls(labels, representative, line, shapes, pairs)


def fill_guide(colours: RegionColours, grid: WorkGrid, box: Letterbox,
               line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The hinted regions' flat colours on the working canvas: ``(fill uint8 (H', W', 3), filled bool (H', W'))``,
    white and False outside hinted regions, on ink and in the padding.

    ``line``: the letterboxed line art the network sees (uint8 (H', W')); as in training, where the fill is the
    paint bucket of that line (:func:`linecolor.raster.fill.region_fill_colours`), its ink stays unfilled, so a
    drawing without gaps gives the network exactly the tensor it was trained on."""
    pw, ph = box.canvas_size
    ch, cw = grid.labels.shape
    table = np.clip(np.rint(colours.table), 0, 255).astype(np.uint8)
    fill = np.full((ph, pw, 3), 255, np.uint8)
    filled = np.zeros((ph, pw), bool)
    filled[:ch, :cw] = colours.hinted[grid.labels] & (line[:ch, :cw] >= INK_THRESHOLD)
    fill[:ch, :cw] = np.where(filled[:ch, :cw, None], table[grid.labels], 255)
    return fill, filled


def suggestions(output: np.ndarray, grid: WorkGrid, strength: float = SUGGESTION_STRENGTH, *,
                head: RegionHead | None = None, colours: RegionColours | None = None,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """float32 (n + 1, 3): every region's suggested colour, moved towards white: ``255 + strength · (c − 255)``.

    Without a ``head``, c is the region's median colour (per channel) in the network's working-size ``output``
    (uint8 (ch, cw, 3), the content part) (:func:`network_medians`). With a head and the hinted regions'
    ``colours``, c is the head's pick for the region (:meth:`RegionHead.choose`: its most likely candidate, or with
    ``rng`` a draw from its probabilities).

    Why the median and not the mean: the network blurs its neighbours' colours into a region's edges and leaves
    noise inside it, and a mean mixes those into a muted in-between colour the network painted nowhere. The median
    is the colour most of the region has (validation, output version 13: unhinted accuracy unchanged, seeds
    8.2 → 12.8 ΔE00 apart; docs/measurements.md)."""
    chosen = network_medians(output, grid)
    if head is not None and colours is not None:
        features, near = head_inputs(output, grid, colours, chosen)
        chosen = head.choose(features, chosen, near, rng).astype(np.float64)
    return (255.0 + strength * (chosen - 255.0)).astype(np.float32)


def network_medians(output: np.ndarray, grid: WorkGrid) -> np.ndarray:
    """float64 (n + 1, 3): every region's median colour in the network's ``output`` (as :func:`suggestions`),
    leaving out the working pixels within :data:`~linecolor.limits.LINE_RIM_PX` of ink (:func:`line_rim`) where a
    region has others; a region with no working pixel of its own takes the colour at its representative pixel."""
    n = len(grid.representative) - 1
    labels = grid.labels
    away = ~line_rim(grid)
    has_away = np.bincount(labels[away].ravel(), minlength=n + 1) > 0
    # One pass: a region's pixels away from the lines, or all of them where it has none away.
    medians, counts = region_medians(output, labels, n + 1, away | ~has_away[labels])
    missing = counts == 0
    rep = grid.representative[missing]
    medians[missing] = output[rep[:, 0], rep[:, 1]]
    return medians


def head_inputs(output: np.ndarray, grid: WorkGrid, colours: RegionColours, medians: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """The region head's features of this colouring and every region's own candidates (its hinted neighbours' mean
    colour, then the hint slots' colours): ``(features (n + 1, F), near (n + 1, 1 + HINT_SLOTS, 3))``
    (:func:`~linecolor.inference.region_head.region_features`), with ``medians`` from :func:`network_medians`."""
    n = len(grid.representative) - 1
    means, counts = _region_means(output, grid.labels, n + 1, ~line_rim(grid))
    means[counts == 0] = medians[counts == 0]
    return region_features(grid.shapes, grid.pairs, medians, means, colours.hinted, colours.table)


def line_rim(grid: WorkGrid) -> np.ndarray:
    """bool (ch, cw): the working pixels of the content that are ink or within
    :data:`~linecolor.limits.LINE_RIM_PX` of it (the network's own soft copy of the lines)."""
    ch, cw = grid.labels.shape
    return ndimage.binary_dilation(grid.line[:ch, :cw] < INK_THRESHOLD, iterations=LINE_RIM_PX)


def _region_means(image: np.ndarray, labels: np.ndarray, count: int, where: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """float64 (count, 3) mean colour of ``image`` per label (over ``where`` when given; 0 for none) and the pixel
    counts (count,)."""
    lab = labels if where is None else labels[where]
    pixels = image.reshape(-1, 3) if where is None else image[where]
    counts = np.bincount(lab.ravel(), minlength=count)
    sums = np.stack([np.bincount(lab.ravel(), weights=pixels[..., c].ravel().astype(np.float64), minlength=count)
                     for c in range(3)], axis=1)
    return sums / np.maximum(counts, 1)[:, None], counts


def region_medians(image: np.ndarray, labels: np.ndarray, count: int, where: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """float64 (count, 3) per-channel median colour of uint8 ``image`` per label over the pixels ``where`` is True
    (0 for a label with none), as :func:`numpy.median` gives it (even counts: the mean of the two middle values),
    and the pixel counts (count,). One sort of ``label · 256 + value`` keys per channel finds every label's middle
    values at once: this runs on every stroke, and :func:`scipy.ndimage.median` took 4 ms per call at 128² against
    1 ms here."""
    lab = labels[where].astype(np.int64)
    counts = np.bincount(lab, minlength=count)
    medians = np.zeros((count, 3))
    present = np.flatnonzero(counts)
    if not len(present):
        return medians, counts
    starts = (np.cumsum(counts) - counts)[present]
    n = counts[present]
    pixels = image[where]
    for c in range(3):
        keys = np.sort(lab * 256 + pixels[:, c])  # by label, then by value (uint8 values fit under 256)
        low, high = keys[starts + (n - 1) // 2] % 256, keys[starts + n // 2] % 256
        medians[present, c] = (low + high) / 2.0
    return medians, counts


def compose(analysis: LineAnalysis, colours: RegionColours, output: np.ndarray, box: Letterbox, grid: WorkGrid,
            fill: tuple[np.ndarray, np.ndarray], *, composite: str = "regions",
            suggestion_strength: float = SUGGESTION_STRENGTH, overlay_lines: bool = True,
            palette: Palette | None = None, head: RegionHead | None = None,
            rng: np.random.Generator | None = None) -> Image.Image:
    """The full-resolution result.

    Args:
        analysis, colours: the drawing's regions and the hinted regions' colours.
        output: uint8 (H', W', 3), the network's output on the working canvas (or None without a network: the
            unhinted regions stay white).
        box, grid: where the content lies on the canvas, and the regions seen there.
        fill: the hinted regions' flat colours at the working size, :func:`fill_guide` (what a ``fill_guide``
            network read); unused since output version 11, accepted so that one argument tuple serves every
            composite function.
        composite: ``regions`` — every region one flat colour (hinted: its hints', unhinted: the network's
            suggestion at ``suggestion_strength``), colour running on under the lines; ``network`` — those flats
            shaded by the network: times each working pixel's colour relative to its region's mean
            (:func:`shading_ratio`), up-scaled. Until output version 11 it was the network's output up-scaled with
            the hinted flats transferred in as an offset: blurred, with dark halos along every line, and 3.6 dB
            below the flats on the validation split (docs/measurements.md).
        overlay_lines: multiply the line art on top (without it: the colour layer alone, flats without lines).
        palette: with one, each unhinted region's suggestion becomes the palette colour nearest to it.
        head, rng: the region head that picks unhinted regions' colours, and the generator of its draws (None:
            its most likely colour); see :func:`suggestions`.
    """
    if composite not in COMPOSITES:
        raise ValueError(f"composite must be one of {', '.join(COMPOSITES)}, got {composite!r}")
    cw, ch = box.content_size
    layer = colour_layer(analysis, colours, _suggested(analysis, colours, output, box, grid, suggestion_strength,
                                                       palette, head, rng))
    if output is not None and composite == "network":
        layer = _network_layer(output[:ch, :cw], grid, box, layer)
    return Image.fromarray(multiply_lines(layer, analysis.line) if overlay_lines else layer)


def compose_layers(analysis: LineAnalysis, colours: RegionColours, output: np.ndarray, box: Letterbox,
                   grid: WorkGrid, fill: tuple[np.ndarray, np.ndarray], hint_rgb: np.ndarray, hint_mask: np.ndarray,
                   *, composite: str = "regions", suggestion_strength: float = SUGGESTION_STRENGTH,
                   palette: Palette | None = None, head: RegionHead | None = None,
                   rng: np.random.Generator | None = None) -> LayeredImage:
    """:func:`compose`'s result as layers an artist can finish (arguments as there; ``hint_rgb`` uint8 (H, W, 3)
    and ``hint_mask`` bool (H, W) are the hints as drawn). Bottom first:

    * ``flats`` — every region one flat colour, running on under the lines (a magic wand selects a region): the
      ``regions`` composite's colour layer;
    * ``shading`` (multiply) and ``highlights`` (screen) — only for the ``network`` composite: what turns the flats
      into the network's shaded colours (:func:`linecolor.raster.layered.shading_layers`);
    * ``lines`` (multiply) — the line art;
    * ``hints`` (hidden) — the hint strokes, transparent elsewhere.

    The visible layers flatten to ``compose(..., overlay_lines=True)``: exactly for ``regions``, within one level
    per channel for ``network``.
    """
    if composite not in COMPOSITES:
        raise ValueError(f"composite must be one of {', '.join(COMPOSITES)}, got {composite!r}")
    cw, ch = box.content_size
    flats = colour_layer(analysis, colours, _suggested(analysis, colours, output, box, grid, suggestion_strength,
                                                       palette, head, rng))
    layers = [Layer("flats", flats)]
    if output is not None and composite == "network":
        shadows, highlights = shading_layers(flats, _network_layer(output[:ch, :cw], grid, box, flats))
        layers += [Layer("shading", shadows, "multiply"), Layer("highlights", highlights, "screen")]
    layers.append(Layer("lines", np.repeat(analysis.line[..., None], 3, axis=2), "multiply"))
    hints = np.zeros((*hint_mask.shape, 4), np.uint8)
    hints[hint_mask, :3] = hint_rgb[hint_mask]
    hints[hint_mask, 3] = 255
    layers.append(Layer("hints", hints, visible=False))
    return LayeredImage(tuple(layers))


def region_table(analysis: LineAnalysis, colours: RegionColours, output: np.ndarray | None, box: Letterbox,
                 grid: WorkGrid, fill: tuple[np.ndarray, np.ndarray], *,
                 suggestion_strength: float = SUGGESTION_STRENGTH, palette: Palette | None = None,
                 head: RegionHead | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """float32 (n + 1, 3): the flat colour every region gets in the ``regions`` composite (and the ``flats``
    layer): hinted regions their hints', the rest the suggestion (arguments as :func:`compose`; ``fill`` is
    accepted so that the same argument tuple serves both)."""
    return colours.with_unhinted(_suggested(analysis, colours, output, box, grid, suggestion_strength, palette,
                                            head, rng))


def _suggested(analysis: LineAnalysis, colours: RegionColours, output: np.ndarray | None, box: Letterbox,
               grid: WorkGrid, strength: float, palette: Palette | None, head: RegionHead | None,
               rng: np.random.Generator | None) -> np.ndarray | None:
    """The unhinted regions' colours (:func:`suggestions`), snapped to ``palette`` when there is one; None (white)
    without a network or on a sheet without lines (there is nothing to suggest a colour for: the network's colour
    for a blank sheet is a wash over the whole page). At strength 0 the regions stay white, palette or not."""
    if output is None or not _has_lines(analysis):
        return None
    cw, ch = box.content_size
    unhinted = suggestions(output[:ch, :cw], grid, strength, head=head, colours=colours, rng=rng)
    if palette is not None and strength > 0:
        unhinted = palette.nearest(unhinted)
    return unhinted


def _has_lines(analysis: LineAnalysis) -> bool:
    return analysis.num_regions > 1 or bool((analysis.line < INK_THRESHOLD).any())


def _network_layer(work: np.ndarray, grid: WorkGrid, box: Letterbox, flats: np.ndarray) -> np.ndarray:
    """The ``network`` composite's colour layer (see :func:`compose`), uint8 (H, W, 3): ``flats`` times the
    network's shading, :func:`shading_ratio` up-scaled to full resolution."""
    up = _upscale(shading_ratio(work, grid), box.original_size)
    return np.clip(np.rint(flats * up), 0, 255).astype(np.uint8)


def shading_ratio(work: np.ndarray, grid: WorkGrid, strength: float = SHADING_STRENGTH) -> np.ndarray:
    """float32 (ch, cw, 3): the network's shading on the working canvas's content — each pixel's colour divided by
    its region's mean (per channel, both offset by :data:`~linecolor.limits.SHADING_OFFSET`), clipped to
    1 ± :data:`~linecolor.limits.SHADING_CLIP`, moved towards 1 by ``strength``.

    Pixels within :data:`~linecolor.limits.LINE_RIM_PX` working pixels of ink (:func:`line_rim`) neither count
    towards a region's mean nor keep their own ratio: they take the nearest kept pixel's. The network darkens them
    (it draws its own soft copy of the line), and up-scaled they became the dark halos the first ``network``
    composite had along every line. A region without a kept pixel (thinner than the rim at the working size) takes
    the nearest kept pixel's ratio too, a neighbour's shading. The ratio is then smoothed with a Gaussian of
    :data:`~linecolor.limits.SHADING_SMOOTH_PX` working pixels (across region borders too: the ratios are near 1
    on both sides, and the flats keep the borders sharp)."""
    work = work.astype(np.float32)
    labels = grid.labels
    kept = ~line_rim(grid)
    means, counts = _region_means(work, labels, len(grid.representative), kept)
    kept &= counts[labels] > 0
    ratio = np.ones_like(work)
    ratio[kept] = (work[kept] + SHADING_OFFSET) / (means[labels[kept]] + SHADING_OFFSET)
    if kept.any() and not kept.all():
        nearest = ndimage.distance_transform_edt(~kept, return_distances=False, return_indices=True)
        ratio = ratio[nearest[0], nearest[1]]
    ratio = np.clip(ratio, 1.0 - SHADING_CLIP, 1.0 + SHADING_CLIP)
    for c in range(3):  # the network's pixel-level unevenness, up-scaled, showed as blotches on unhinted regions
        ratio[..., c] = ndimage.gaussian_filter(ratio[..., c], SHADING_SMOOTH_PX)
    return (1.0 + strength * (ratio - 1.0)).astype(np.float32)


def _upscale(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack([resize_float(rgb[..., c], size, Image.Resampling.BICUBIC) for c in range(3)], axis=-1)
