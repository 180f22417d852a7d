"""Line extraction and line-art manipulation.

Convention everywhere in linecolor: line art is a ``uint8`` array of shape ``(H, W)`` with
255 = paper (white) and 0 = ink (black); intermediate values are anti-aliased or soft ink.
"Ink pixels" below means pixels darker than 128.

Functions:

* :func:`xdog` — eXtended Difference-of-Gaussians (Winnemöller, Kyprianidis & Olsen 2012 /
  Winnemöller 2011, "XDoG: advanced image stylization with eXtended Difference-of-Gaussians")
  on a grey or RGB image: lines along edges, paper elsewhere.
* :func:`binarize` — threshold to pure ink/paper.
* :func:`change_thickness` / :func:`random_thickness` — thicker or thinner ink (augmentation).
* :func:`flat_region_edges` — boundaries between flat colour regions plus the silhouette, for
  flat-colour vector art (Fluent emoji ``flat.svg``).
* :func:`clean_sketch` — rough pencil sketch (or colour picture) → clean binary line art.
* :func:`drawn_outlines` — the thin dark strokes of a colour picture (its inked outlines), as a mask.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import color as skcolor
from skimage import morphology, segmentation

from linecolor.errors import InputImageError

__all__ = [
    "xdog",
    "binarize",
    "change_thickness",
    "random_thickness",
    "flat_region_edges",
    "clean_sketch",
    "drawn_outlines",
    "INK_THRESHOLD",
]

INK_THRESHOLD = 128
"""Pixels of a line image darker than this count as ink."""
OUTLINE_RADIUS = 2
""":func:`drawn_outlines`: strokes up to ``2 * this + 1`` px wide are outlines; wider dark areas (black hair, a
night sky) are colours of the picture."""
OUTLINE_CONTRAST = 15.0
""":func:`drawn_outlines`: an outline pixel is more than this many CIELAB L* units darker than the stroke's
surroundings (black lines on dark purple hair, L* 25, are 20 darker: at 25 they were missed on validation avatars)..."""
OUTLINE_MAX_LIGHTNESS = 35.0
"""...and either darker than this L* itself (ink; a strong red is L* 47–53, so a thin coloured stripe on white is
not a line) or next to such a pixel (the anti-aliased edge of ink, grey on white)."""


# ------------------------------------------------------------------------------------------ checks
def _check_uint8(image: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InputImageError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputImageError(f"{name}: expected dtype uint8 (0..255), got {image.dtype}")
    if image.size == 0:
        raise InputImageError(f"{name}: image has no pixels (shape {image.shape})")
    return image


def _check_line(line: np.ndarray, name: str = "line image") -> np.ndarray:
    _check_uint8(line, name)
    if line.ndim != 2:
        raise InputImageError(f"{name}: expected a (H, W) grey line image, got shape {line.shape}")
    return line


def _check_rgb(image: np.ndarray, name: str) -> np.ndarray:
    _check_uint8(image, name)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputImageError(f"{name}: expected a (H, W, 3) RGB image, got shape {image.shape}")
    return image


def _gray_float(image: np.ndarray, name: str = "image") -> np.ndarray:
    """(H,W) or (H,W,3) uint8 → (H,W) float64 luminance in [0, 1]."""
    _check_uint8(image, name)
    if image.ndim == 2:
        return image.astype(np.float64) / 255.0
    if image.ndim == 3 and image.shape[2] == 3:
        return skcolor.rgb2gray(image)  # Rec. 709 luminance, float in [0, 1]
    raise InputImageError(
        f"{name}: expected a (H, W) grey or (H, W, 3) RGB uint8 image, got shape {image.shape} "
        "(composite an RGBA image onto white first, e.g. with linecolor.raster.imageio.to_rgb)"
    )


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _ink_footprint(width: int) -> np.ndarray:
    """Footprint that turns a 1-px line into a line ``width`` px wide.

    Odd widths use a disk of radius (width-1)/2 (round); even widths a width×width square, because a
    disk always has an odd diameter.
    """
    if width % 2 == 1:
        return morphology.disk((width - 1) // 2).astype(bool)
    return morphology.footprint_rectangle((width, width)).astype(bool)


def _draw_mask(mask: np.ndarray, width: int) -> np.ndarray:
    """Boolean ink mask (1-px lines) → uint8 line image with lines ``width`` px wide."""
    if width > 1:
        mask = ndi.binary_dilation(mask, structure=_ink_footprint(width))
    return np.where(mask, 0, 255).astype(np.uint8)


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputImageError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# -------------------------------------------------------------------------------------------- XDoG
def xdog(
    image: np.ndarray,
    *,
    sigma: float = 0.8,
    k: float = 1.6,
    tau: float = 0.98,
    epsilon: float = -0.02,
    phi: float = 50.0,
    binarize: bool = False,
) -> np.ndarray:
    """eXtended Difference-of-Gaussians line drawing of an image (Winnemöller 2011).

    With the grey image ``I`` in [0, 1]::

        D = G_sigma * I  -  tau * G_{k·sigma} * I
        T(D) = 1                            where D >= epsilon
             = 1 + tanh(phi · (D - epsilon)) otherwise

    ``tau < 1`` leaves flat areas at ``(1 - tau)·I >= 0 >= epsilon`` (paper), and only the dark side
    of an edge (or a thin dark stroke) dips below ``epsilon`` and becomes ink. Flat colour fills are
    therefore white inside with a line along their outline; the contrast an edge needs is roughly
    ``|epsilon| / 0.12`` in luminance (≈ 0.17 with the defaults), so edges between colours of similar
    brightness (yellow on white) are missed — use :func:`flat_region_edges` for flat vector art.

    Args:
        image: ``(H, W)`` grey or ``(H, W, 3)`` RGB, uint8 0..255.
        sigma: standard deviation in pixels of the smaller Gaussian (line scale). 0.8 gives 1–2 px lines.
        k: ratio of the two Gaussians' sigmas (1.6 approximates a Laplacian of Gaussian).
        tau: weight of the wider Gaussian (< 1; closer to 1 = more sensitive to weak edges).
        epsilon: threshold on ``D`` below which a pixel becomes ink. The default (-0.02, tuned on the
            Pepper pencil sketches and rasterised emoji) keeps pencil shading mostly white.
        phi: steepness of the soft ramp below ``epsilon``; 50 gives soft but dark lines, ~200 near-binary.
        binarize: threshold the result to {0, 255} with :func:`binarize`.

    Returns:
        ``(H, W)`` uint8 line image, 255 = paper, 0 = ink.

    Raises:
        InputImageError: wrong dtype or shape.
    """
    gray = _gray_float(image, "xdog input")
    if not (sigma > 0 and k > 0):
        raise InputImageError(f"xdog: sigma and k must be positive, got sigma={sigma!r}, k={k!r}")
    g1 = ndi.gaussian_filter(gray, sigma, mode="nearest")
    g2 = ndi.gaussian_filter(gray, sigma * k, mode="nearest")
    d = g1 - tau * g2
    out = np.where(d >= epsilon, 1.0, 1.0 + np.tanh(phi * (d - epsilon)))
    result = _to_uint8(out)
    return _binarize(result, INK_THRESHOLD) if binarize else result


def _binarize(line: np.ndarray, threshold: int) -> np.ndarray:
    return np.where(line < threshold, 0, 255).astype(np.uint8)


def binarize(line: np.ndarray, threshold: int = INK_THRESHOLD) -> np.ndarray:
    """Threshold a line image to pure ink and paper.

    Args:
        line: ``(H, W)`` uint8 line image (255 paper, 0 ink).
        threshold: pixels with value ``< threshold`` become ink (0), the rest paper (255). 1..255.

    Returns:
        ``(H, W)`` uint8 containing only 0 and 255.
    """
    _check_line(line)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer)) or not 1 <= threshold <= 255:
        raise InputImageError(f"binarize: threshold must be an integer in 1..255, got {threshold!r}")
    return _binarize(line, int(threshold))


# --------------------------------------------------------------------------------------- thickness
def change_thickness(line: np.ndarray, radius: int) -> np.ndarray:
    """Make the ink thicker (``radius > 0``) or thinner (``radius < 0``) by ``|radius|`` pixels.

    Grey-level morphology with a disk footprint of radius ``|radius|``: thickening is an erosion of the
    white paper (every pixel takes the darkest value within the disk), thinning a dilation of the paper.
    Thinning never erases a line: pixels on the skeleton of the original ink
    (:func:`skimage.morphology.skeletonize` of ``line < 128``) keep their original value, so a 1-px line
    survives and every connected ink component stays present (and connected).

    Args:
        line: ``(H, W)`` uint8 line image, 255 paper, 0 ink (grey anti-aliasing allowed).
        radius: integer pixels; 0 returns an unchanged copy.

    Returns:
        ``(H, W)`` uint8 line image.
    """
    _check_line(line)
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)):
        raise InputImageError(f"change_thickness: radius must be an integer, got {radius!r}")
    radius = int(radius)
    if radius == 0:
        return line.copy()
    footprint = morphology.disk(abs(radius))
    if radius > 0:
        return morphology.erosion(line, footprint)
    thinned = morphology.dilation(line, footprint)
    skeleton = morphology.skeletonize(line < INK_THRESHOLD)
    thinned[skeleton] = line[skeleton]
    return thinned


def random_thickness(line: np.ndarray, rng: np.random.Generator, max_radius: int) -> np.ndarray:
    """:func:`change_thickness` with a radius drawn uniformly from the integers ``[-max_radius, max_radius]``.

    Args:
        line: ``(H, W)`` uint8 line image.
        rng: the only source of randomness.
        max_radius: non-negative integer; 0 always returns a copy (still consumes one draw).

    Returns:
        ``(H, W)`` uint8 line image.
    """
    if isinstance(max_radius, bool) or not isinstance(max_radius, (int, np.integer)) or max_radius < 0:
        raise InputImageError(f"random_thickness: max_radius must be a non-negative integer, got {max_radius!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"random_thickness: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    radius = int(rng.integers(-max_radius, max_radius + 1))
    return change_thickness(line, radius)


# ----------------------------------------------------------------------------- flat-region edges
def flat_region_edges(
    image_rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    *,
    tolerance: float = 6.0,
    thickness: int = 1,
) -> np.ndarray:
    """Line art from flat-colour art: the boundaries between flat colour regions and the silhouette.

    Method (all library operations):

    1. Colour in CIELAB (:func:`skimage.color.rgb2lab`), plus the alpha channel scaled to 0..100 as a
       fourth channel so the silhouette is an edge even where the shape's border colour is white.
    2. A pixel is *flat* when the colour range over its 3×3 neighbourhood (per-channel max − min,
       Euclidean norm ≈ the largest ΔE76 between two neighbours) is at most ``tolerance``. Anti-aliased
       pixels of an edge are not flat, the interiors of regions are.
    3. Each connected flat area is a marker; :func:`skimage.segmentation.watershed` on the colour
       gradient grows them over the anti-aliased bands with ``watershed_line=True``, which leaves a
       single 1-px line between regions along the ridge of the gradient — so an anti-aliased edge gives
       one line, not two.
    4. The line is widened to ``thickness`` px.

    Args:
        image_rgb: ``(H, W, 3)`` uint8 RGB, transparent parts already composited on any flat colour (white).
        alpha: ``(H, W)`` uint8 opacity (255 opaque) or None (no silhouette channel; edges against the
            background colour are still found when the colours differ).
        tolerance: largest ΔE (CIELAB, with alpha on the same 0..100 scale) still counted as the same
            flat colour. Regions whose colours differ by less are merged (no line between them).
        thickness: line width in pixels (>= 1).

    Returns:
        ``(H, W)`` uint8 line image with only 0 (line) and 255 (paper).
    """
    _check_rgb(image_rgb, "flat_region_edges image")
    h, w = image_rgb.shape[:2]
    thickness = _check_positive_int(thickness, "flat_region_edges: thickness")
    if not tolerance > 0:
        raise InputImageError(f"flat_region_edges: tolerance must be positive, got {tolerance!r}")
    channels = [skcolor.rgb2lab(image_rgb)]
    if alpha is not None:
        _check_uint8(alpha, "flat_region_edges alpha")
        if alpha.shape != (h, w):
            raise InputImageError(
                f"flat_region_edges: alpha shape {alpha.shape} does not match the image's {(h, w)}"
            )
        channels.append(alpha.astype(np.float64)[..., None] * (100.0 / 255.0))
    feats = np.concatenate(channels, axis=2)
    if h < 2 or w < 2:
        return np.full((h, w), 255, np.uint8)

    # Colour range over each 3×3 neighbourhood, per channel, then its norm.
    rng = np.stack(
        [ndi.maximum_filter(feats[..., c], size=3, mode="nearest") - ndi.minimum_filter(feats[..., c], size=3,
                                                                                           mode="nearest")
         for c in range(feats.shape[2])],
        axis=2,
    )
    spread = np.sqrt((rng**2).sum(axis=2))
    flat = spread <= tolerance
    markers, n = ndi.label(flat)
    if n <= 1:
        # One flat region (or none): no boundary between regions. Every non-flat pixel is then an edge band
        # of something smaller than a marker; draw the band's skeleton so thin strokes are not lost.
        mask = morphology.skeletonize(~flat) if n == 1 else np.zeros((h, w), bool)
        return _draw_mask(mask, thickness)
    # Gradient magnitude of the colour features (Sobel per channel, summed in quadrature).
    grad = np.sqrt(sum(ndi.sobel(feats[..., c], axis=0) ** 2 + ndi.sobel(feats[..., c], axis=1) ** 2
                       for c in range(feats.shape[2])))
    labels = segmentation.watershed(grad, markers, watershed_line=True)
    mask = labels == 0
    return _draw_mask(mask, thickness)


# ----------------------------------------------------------------------------------- sketch clean-up
def clean_sketch(
    image: np.ndarray,
    *,
    target_thickness: int = 1,
    sigma: float = 1.2,
    speck_size: int | None = None,
    stroke_radius: int = 3,
    stroke_contrast: float = 0.3,
) -> np.ndarray:
    """Rough pencil sketch (or colour picture) → clean binary line art with uniform line width.

    Steps:

    1. Ink candidates: binarised :func:`xdog` with ``sigma`` (1.2, a little coarser than the default, which
       joins the broken pencil strokes of the Pepper sketches into continuous lines), united with *dark
       thin strokes* — pixels where the black top-hat (:func:`skimage.morphology.black_tophat`, disk of
       ``stroke_radius``) exceeds ``stroke_contrast``. XDoG alone outlines a stroke wider than ~3 px on
       both sides (two lines); the top-hat fills strokes up to ``2·stroke_radius + 1`` px wide so the
       skeleton runs down their middle, while large dark areas (black hair in a colour picture) are left
       to XDoG's outline.
    2. Holes of up to 8 px inside strokes (pencil grain) are filled
       (:func:`skimage.morphology.remove_small_holes`).
    3. Thickness normalisation: :func:`skimage.morphology.skeletonize`; line pieces whose skeleton has at most
       ``speck_size`` pixels (specks, grain) are removed (:func:`skimage.morphology.remove_small_objects`,
       8-connectivity); the rest is widened to ``target_thickness``.

    Args:
        image: ``(H, W)`` grey or ``(H, W, 3)`` RGB uint8 (dark lines on light paper).
        target_thickness: output line width in pixels (>= 1).
        sigma: XDoG line scale in pixels.
        speck_size: connected line pieces whose skeleton has this many pixels or fewer are removed; ``None``
            scales it with the image: ``max(6, min(H, W) // 32)`` (13 px for a 430×503 scan).
        stroke_radius: radius of the top-hat disk; strokes up to ``2r+1`` px wide become one centred line
            (0 = off).
        stroke_contrast: how much darker (0..1 luminance) than the surrounding paper a stroke must be.

    Returns:
        ``(H, W)`` uint8 with only 0 (ink) and 255 (paper).
    """
    gray = _gray_float(image, "clean_sketch input")
    target_thickness = _check_positive_int(target_thickness, "clean_sketch: target_thickness")
    if speck_size is None:
        speck_size = max(6, min(gray.shape) // 32)
    if isinstance(speck_size, bool) or not isinstance(speck_size, (int, np.integer)) or speck_size < 0:
        raise InputImageError(f"clean_sketch: speck_size must be a non-negative integer, got {speck_size!r}")
    if isinstance(stroke_radius, bool) or not isinstance(stroke_radius, (int, np.integer)) or stroke_radius < 0:
        raise InputImageError(f"clean_sketch: stroke_radius must be a non-negative integer, got {stroke_radius!r}")
    ink = xdog(image, sigma=sigma, binarize=True) < INK_THRESHOLD
    if stroke_radius > 0:
        ink |= morphology.black_tophat(gray, morphology.disk(int(stroke_radius))) > stroke_contrast
    ink = morphology.remove_small_holes(ink, max_size=8)
    skeleton = morphology.skeletonize(ink)
    if speck_size > 0:
        # Measured on the skeleton (a length), not on the ink blob: XDoG turns a 2×2 pencil speck into a blob of
        # 10–20 px, but its skeleton stays a few pixels long, while a real stroke's skeleton is long.
        skeleton = morphology.remove_small_objects(skeleton, max_size=int(speck_size), connectivity=2)
    return _draw_mask(skeleton, target_thickness)


# ---------------------------------------------------------------------------------- outlines of pictures
def drawn_outlines(image: np.ndarray, radius: int = OUTLINE_RADIUS) -> np.ndarray:
    """bool (H, W): the thin dark strokes of the colour picture ``image`` (uint8 (H, W, 3)) — its inked outlines.

    A pixel is part of a stroke where the black top-hat of the lightness (:func:`skimage.morphology.black_tophat`,
    a disk of ``radius`` px) exceeds :data:`OUTLINE_CONTRAST`: a structure narrower than the disk, darker than its
    surroundings. A stroke pixel is an outline where it is ink (darker than :data:`OUTLINE_MAX_LIGHTNESS`) or
    touches ink (its anti-aliased edge). Dark areas wider than the disk are not outlines. The disk is in pixels:
    the default suits a thumbnail of about 100 px a side (a 4K picture's strokes are wider than it at the
    picture's own size).
    """
    _check_rgb(image, "picture")
    _check_positive_int(radius, "radius")
    lightness = skcolor.rgb2lab(image)[..., 0]
    stroke = morphology.black_tophat(lightness, morphology.disk(radius, decomposition="sequence")) > OUTLINE_CONTRAST
    ink = stroke & (lightness < OUTLINE_MAX_LIGHTNESS)
    return ink | (stroke & ndi.binary_dilation(ink, structure=np.ones((3, 3), bool)))
