"""Every user-facing limit and default, assigned once.

The pipeline checks its arguments against these, the CLI builds its choices and help from them, the server
validates form fields with them, and the studio reads them from ``GET /api/limits`` (:func:`as_dict`) instead of
typing them into JavaScript. Nothing here imports anything heavier than the standard library, so the CLI's
``--help`` and the server's start-up can name them without loading torch.
"""

from __future__ import annotations

from typing import Any

MAX_IMAGE_PIXELS = 4096 * 4096
"""Largest image (width × height) accepted, checked on the header before any pixel is decoded."""

MODES = ("deterministic", "stochastic", "reference")
"""How the style latent z is chosen: ``deterministic`` (z = 0), ``stochastic`` (z ~ N(0, I) from a seed),
``reference`` (z = the style of a reference colour image)."""

COMPOSITES = ("regions", "network")
"""How a ``fill_guide`` model's output reaches full resolution: ``regions`` (one flat colour per line-bounded
region) or ``network`` (those regions shaded by the network); see :mod:`linecolor.inference.composite`."""

MAX_PALETTE_COLOURS = 256
"""Most colours a palette may have (GIMP's own palettes have up to 256)."""
MAX_PALETTE_FILE_BYTES = 1 << 20
"""Largest ``.gpl`` file read (256 colour lines with long names are a few KiB)."""

OUTPUT_FORMATS = ("png", "psd", "ora")
"""What a colouring is delivered as: a flattened PNG, or its layers (:mod:`linecolor.raster.layered`) as a
Photoshop file or OpenRaster (Krita, GIMP, MyPaint)."""

BACKENDS = ("auto", "plain", "eager", "onnxruntime", "compile")
"""How the network may be executed (:func:`linecolor.inference.runtime.optimize_for_inference`): ``auto`` picks
the fastest available, ``plain`` is the unmodified PyTorch model (the reference)."""

MAX_SEED = 2**63 - 1
"""Largest seed of the stochastic mode (seeds are 0 … this)."""
STUDIO_MAX_SEED = 2**31 - 1
"""Largest seed the studio draws or accepts in its seed field (JavaScript integers stay exact up to 2⁵³, and a
31-bit seed is short enough to read out and type back)."""

VARIATION_COUNT = 4
"""Variations the studio shows side by side (``POST /api/variations``): enough to choose from, few enough to judge
at a glance."""
MAX_VARIATIONS = 8
"""Most variations one call colours (:meth:`linecolor.ColorizationPipeline.variations`): one batched network pass,
but every variation is composed at full size, so the cost grows with the count."""
VARIATION_PREVIEW_PX = 256
"""Longest side, in pixels, of the previews ``POST /api/variations`` sends (the studio shows them as thumbnails;
the chosen one is then coloured at full size)."""

MAX_LATENT_SHIFT = 3.0
"""``latent_shift`` lies in [−this, this]. z is trained to follow N(0, I), so ±3 already moves every entry by three
standard deviations; beyond that the generator sees inputs it never met in training."""
LATENT_SHIFT_STEP = 0.1
"""Granularity of the studio's latent-shift slider."""

SUGGESTION_STRENGTH = 1.0
"""Default of how strongly the model's colours show in regions without hints (``regions`` composite): each such
region takes ``white + strength · (suggested colour − white)``; 0 leaves them paper white, 1 the suggestion as it
is. 1 since output version 14, where a region head picks each region's colour: paled, its picks are right less
often (validation: 75.6 / 69.3 / 58.1 % at 1 against 72.1 / 61.2 / 54.8 % at 0.625 with the first head); it was
0.625 for the network's own median colour, a hedge that cost less PSNR when wrong (docs/measurements.md). A model
without a region head keeps that: :data:`SUGGESTION_STRENGTH_WITHOUT_HEAD`
(:attr:`linecolor.ColorizationPipeline.default_suggestion_strength` picks)."""
SUGGESTION_STRENGTH_WITHOUT_HEAD = 0.625
"""The default strength for a model without a region head, whose suggestion is the network's own median colour:
chosen on validation at output version 13 (a pale hedge costs less PSNR than a wrong full colour)."""
SUGGESTION_STRENGTH_RANGE = (0.0, 1.0)

SHADING_STRENGTH = 0.5
"""How much of the network's shading the ``network`` composite lays on the flats (0: none, 1: all of it; see
:func:`linecolor.inference.composite.shading_ratio`). Chosen on the validation split against 1.0: better PSNR and
fewer halos on every source, and at 1.0 the network's uneven shading shows as pale blotches on faces
(docs/measurements.md)."""
LINE_RIM_PX = 2
"""Working pixels next to ink whose network colour neither an unhinted region's suggestion nor the shading uses:
the network draws its own soft, dark copy of the lines there. Up-scaled it was a dark halo along every line of the
``network`` composite (2 against 1 on the validation split: half the halos or fewer), and averaged into a region's
suggestion it greyed faces and eye whites (docs/measurements.md, output version 11)."""
SHADING_SMOOTH_PX = 3.0
"""σ, in working pixels, of the Gaussian that smooths the network's shading: unsmoothed, its pixel-level unevenness
showed as blotches on regions nobody hinted (pale patches on faces, mottled hair). Validation, 3 against 1.5 and
none: fewer halos and the least PSNR lost (docs/measurements.md)."""
SHADING_CLIP = 0.5
"""The network's shading may darken a colour to half or lighten it by half, no more."""
SHADING_OFFSET = 8.0
"""Added to a pixel's and its region's mean level before dividing (levels of 255): near-black regions, where a
ratio of small numbers is mostly noise, are shaded less."""

DEFAULT_HINT_RADIUS = 3.0
"""Radius in pixels of a hint point given without one (``x,y,#rrggbb``)."""
MAX_HINT_RADIUS = 4096.0
"""Largest radius of one hint point, in pixels (the longest image side accepted)."""
MAX_HINT_POINTS = 10_000
"""Most hint points in one call (a studio session's strokes are sent as a hint image, not as points)."""
MAX_HINT_PAINTED_PIXELS = 4 * MAX_IMAGE_PIXELS
"""Most pixels the hint points of one call may paint, overlaps counted each time: four times the largest image.
Drawing costs time in proportion to it, so a few kilobytes of large overlapping discs cannot hold the worker for
minutes; larger hint areas come as a hint image."""

MAX_GAP = 512.0
"""Largest gap setting, in pixels: gaps in the lines up to the setting are closed (``None`` or "auto": a few stroke
widths, :data:`linecolor.raster.regions.AUTO_GAP_STROKE_WIDTHS`; 0: none, a plain paint bucket)."""
STUDIO_GAPS = (0, 2, 4, 8, 16, 32, 64)
"""The gap settings the studio offers besides "auto", in pixels of the drawing."""

MAX_IMAGE_FILE_BYTES = 256 * 2**20
"""Largest image file read, in bytes, checked before reading: the largest legal image (:data:`MAX_IMAGE_PIXELS`
pixels of 16-bit RGBA, stored uncompressed) needs 128 MiB, so anything over twice that is not an image we would
accept."""
MAX_JPEG_SCANS = 100
"""Most scans in one JPEG. Encoders write 1 (baseline) or about 10 (progressive); each scan makes the decoder pass
over the whole image again, so thousands of tiny repeated scans turn a small file into minutes of work."""
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
"""The only image formats ever opened (format-specific decoders are where Pillow's bomb and memory bugs live)."""
MAX_CONFIG_FILE_BYTES = 1 * 2**20
"""Largest experiment config (``--config``) or model ``config.json`` read, in bytes; real ones are a few KiB."""
MAX_PARAMETERS = 400_000_000
"""Largest model loaded (1.6 GB of float32): four times the paper's generator (95 M parameters at base_channels 64),
counted on PyTorch's meta device before any memory is allocated."""


def as_dict() -> dict[str, Any]:
    """The limits a client needs, as JSON-ready values (served by ``GET /api/limits``)."""
    return {
        "modes": list(MODES),
        "composites": list(COMPOSITES),
        "output_formats": list(OUTPUT_FORMATS),
        "palette": {"max_colours": MAX_PALETTE_COLOURS},
        "seed": {"min": 0, "max": STUDIO_MAX_SEED, "api_max": MAX_SEED},
        "variations": {"count": VARIATION_COUNT, "max": MAX_VARIATIONS, "preview_px": VARIATION_PREVIEW_PX},
        "latent_shift": {"min": -MAX_LATENT_SHIFT, "max": MAX_LATENT_SHIFT, "step": LATENT_SHIFT_STEP,
                         "default": 0.0},
        # "default" is a model with a region head's; /api/ready's model.suggestion_strength is the served model's.
        "suggestion_strength": {"min": SUGGESTION_STRENGTH_RANGE[0], "max": SUGGESTION_STRENGTH_RANGE[1],
                                "default": SUGGESTION_STRENGTH},
        "hint_radius": {"default": DEFAULT_HINT_RADIUS, "max": MAX_HINT_RADIUS},
        "max_hint_points": MAX_HINT_POINTS,
        "gap": {"max": MAX_GAP, "choices": list(STUDIO_GAPS), "default": "auto"},
        "max_image_pixels": MAX_IMAGE_PIXELS,
        "image_formats": list(IMAGE_FORMATS),
    }
