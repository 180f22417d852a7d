"""The one inference path: line art + hints → coloured image. Used by the Python API, the CLI and the server.

>>> pipe = ColorizationPipeline.from_pretrained("weights/")                       # doctest: +SKIP
>>> out = pipe("line.png", hints=[(40, 60, "#ff8800", 5)], mode="stochastic", seed=3)  # doctest: +SKIP

Steps: the line image is turned to 8-bit grey on white paper (:mod:`linecolor.raster.imageio`) and analysed once
per drawing — its ink and gap-closed regions (:mod:`linecolor.raster.regions`, cached by content); the hints are
parsed (:mod:`linecolor.inference.hints`) and decide the colour of every hinted region
(:mod:`linecolor.raster.colouring`); line, hints and those regions' colours are letterboxed to the model's working
size (long side = ``working_size``, padded to a multiple of 32) as the conditioning tensor
(:mod:`linecolor.inference.conditioning`, shared with training); the network colours it with a style latent z
chosen by the mode (:mod:`linecolor.inference.runtime` runs it); the output composite
(:mod:`linecolor.inference.composite`) gives every region its colour at full size — the hints' where there are
hints, elsewhere the region head's pick from the network's colours (:mod:`linecolor.inference.region_head`; the
network's median colour for a model without one) — and multiplies the original line art on top. Every user-facing limit
is in :mod:`linecolor.limits`.

Modes and z:
    deterministic  z = 0 + latent_shift (the same output every time)
    stochastic     z ~ N(0, I) drawn from a ``torch.Generator`` seeded with ``seed``, + latent_shift; the region
                   head draws each unhinted region's colour from its probabilities (seeded by ``seed`` too)
    reference      z = μ(reference image) + latent_shift (borrow a reference's palette); the region head favours
                   candidate colours near the reference's main colours (:meth:`RegionHead.towards`)

The network runs from its cached ONNX graph without torch when one is there
(:class:`~linecolor.inference.graph.GraphRunner`); stochastic and reference modes import torch when first used.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import numpy as np
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

from linecolor.errors import LinecolorError, WeightsError
from linecolor.inference.composite import (
    WorkGrid,
    compose,
    compose_layers,
    fill_guide,
    head_inputs,
    network_medians,
    region_table,
    suggestions,
)
from linecolor.inference.conditioning import (
    array_to_image,
    condition_array,
    image_to_tensor,
    letterbox_geometry,
    letterbox_hints,
)
from linecolor.inference.graph import GraphRunner
from linecolor.inference.reference import Reference, ReferenceCache, ReferenceInput
from linecolor.inference.region_head import RegionHead
from linecolor.inference.hints import (
    check_same_size,
    hints_from_points,
    hints_from_rgba,
)
from linecolor.limits import (
    COMPOSITES,
    MAX_IMAGE_PIXELS,
    MAX_LATENT_SHIFT,
    MAX_SEED,
    MAX_VARIATIONS,
    MODES,
    SUGGESTION_STRENGTH,
    SUGGESTION_STRENGTH_RANGE,
    SUGGESTION_STRENGTH_WITHOUT_HEAD,
)
from linecolor.raster.colouring import SAME_COLOUR_DELTA_E, assign_hints
from linecolor.raster.consistency import PageColours, carry_colours
from linecolor.raster.imageio import ImageInput, open_image, to_gray
from linecolor.raster.layered import LayeredImage
from linecolor.raster.palette import Palette, read_gpl
from linecolor.raster.regions import AnalysisCache, LineAnalysis

if TYPE_CHECKING:  # torch loads only where a torch model runs: a cached graph colours without it (inference.graph)
    import torch

    from linecolor.models.colorizer import Colorizer

__all__ = ["CARRIED_PAGES", "DEFAULT_WEIGHTS_DIR", "OUTPUT_VERSION", "ColorizationPipeline", "PageSeries",
           "RegionInputs", "as_palette", "option_problems"]

OUTPUT_VERSION = 21
"""Bumped whenever the pipeline's output for the same weights and inputs changes (its history is in
docs/measurements.md); part of the evaluation's fingerprint, so results of older code are never reused."""
SUGGESTIONS_AT_A_POINT = 3
"""How many colours :meth:`ColorizationPipeline.suggest_at` offers at most."""
REGION_HEAD_DRAW_KEY = 1404
"""First word of the seed sequence of the region head's draws in stochastic mode (then the mode's seed)."""
SUGGESTION_STYLE_SEED = 20261130
"""Seed of the fixed styles :meth:`ColorizationPipeline.suggest_at` asks the model for (besides z = 0)."""

CARRIED_PAGES = 8
"""Pages a :class:`PageSeries` remembers (a character seen eight pages ago is still matched;
memory stays a few hundred KB)."""
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights" / "default"
DEFAULT_ANALYSIS_CACHE_BYTES = 512 * 1024 * 1024
"""Memory the analyses of recent drawings may hold (a 4096² drawing's takes about 130 MB)."""
DEFAULT_REFERENCE_CACHE_BYTES = 128 * 1024 * 1024
"""Memory the pixels of references recently sent as bytes may hold (a 4096² picture's take 48 MB, a 1024² one's 3):
the studio sends its reference with every stroke, and decoding a 4096² PNG takes about half a second."""
_WORK_GRIDS = 16
"""Recent drawings whose region map at the working size is kept (a few kB each)."""

HintsInput = ImageInput | Sequence[Sequence[Any]] | None


class ColorizationPipeline:
    """Colour a line drawing following colour hints.

    Args:
        model: a :class:`~linecolor.models.colorizer.Colorizer` (put in eval mode here; run as it is, the plain
            reference path) or an :class:`~linecolor.inference.runtime.InferenceRunner` wrapping one (what
            :meth:`from_pretrained` builds by default).
        device: where the network runs (CPU by default; nothing here assumes CUDA).
        max_pixels: largest input image accepted, checked before decoding.
        analysis_cache_bytes: memory for the line analyses of recent drawings
            (:class:`~linecolor.raster.regions.AnalysisCache`): colouring the same drawing again, with new hints,
            skips the analysis.
    """

    def __init__(self, model: Colorizer | GraphRunner, *, device: str | torch.device = "cpu",
                 max_pixels: int = MAX_IMAGE_PIXELS, analysis_cache_bytes: int = DEFAULT_ANALYSIS_CACHE_BYTES,
                 region_head: RegionHead | None = None):
        if isinstance(model, GraphRunner):
            if str(device) != "cpu":
                raise ValueError(f"a cached ONNX graph runs on the CPU only, not {device}")
            self.device: Any = "cpu"
            self.model: Any = model
        else:
            import torch

            self.device = torch.device(device)
            self.model = model.to(self.device).eval()
        self.config = model.config
        self.max_pixels = max_pixels
        self.region_head = region_head
        """Picks unhinted regions' colours (:mod:`linecolor.inference.region_head`); None: the network's median."""
        self.analyses = AnalysisCache(analysis_cache_bytes)
        self.references = ReferenceCache(DEFAULT_REFERENCE_CACHE_BYTES)
        """References sent as bytes, decoded once (:meth:`open_reference`)."""
        self._reference_styles: weakref.WeakKeyDictionary[Reference, np.ndarray] = weakref.WeakKeyDictionary()
        self._reference_styles_lock = threading.Lock()
        self._grids: OrderedDict[tuple, WorkGrid] = OrderedDict()
        self._grids_lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, directory: str | Path | None = None, *, device: str | torch.device = "cpu",
                        backend: str = "auto", **kwargs: Any) -> "ColorizationPipeline":
        """Load weights saved by ``save_pretrained`` / ``linecolor export``; ``None`` means the bundled default.

        ``backend`` picks the execution path (:func:`linecolor.inference.runtime.optimize_for_inference`): ``auto``, the
        fastest available (onnxruntime, else the fused eager module; the same function as the plain model within
        float rounding, checked by tests), or ``plain``, the unmodified PyTorch model (the reference). A fast path
        is warmed up here, so its one-off cost (ONNX export, session) is not paid by the first image; on either path
        weights whose output on an empty drawing is not finite are refused (:class:`~linecolor.errors.WeightsError`).
        With ``auto`` on the CPU, weights whose exported graph an earlier run cached are run from it without
        importing torch (:class:`~linecolor.inference.graph.GraphRunner`; same graph, same output).
        """
        if directory is None:
            directory = DEFAULT_WEIGHTS_DIR
            if not (directory / "model.safetensors").is_file():
                raise WeightsError(
                    f"no bundled default weights in this installation (expected {directory}/model.safetensors and "
                    "config.json); pass a weights directory made by `linecolor train` + `linecolor export`")
        if "region_head" not in kwargs:  # region_head=None: the network alone, whatever file lies there
            kwargs["region_head"] = RegionHead.load(directory)
        if backend == "auto" and str(device) == "cpu":
            graph = GraphRunner.from_cache(directory, lambda runner: _torch_twin(directory, runner))
            if graph is not None:  # torch-free: these weights' graph is cached
                return cls(graph.warmup(), device=device, **kwargs)  # warmup refuses non-finite output
        from linecolor.inference.runtime import load_runner

        return cls(load_runner(directory, device, backend), device=device, **kwargs)

    def save_pretrained(self, directory: str | Path) -> Path:
        """The network's weights and config into ``directory``, and the region head's beside them if it has one."""
        path = self.model.save_pretrained(directory)
        if self.region_head is not None:
            self.region_head.save(directory)
        return path

    def preload(self) -> threading.Thread | None:
        """When the network runs from a cached graph (no torch), start loading what stochastic and reference modes
        need (torch and the torch model) on a daemon thread, and return it: a server calls this once it is ready,
        so the first variation a user asks for does not wait seconds for it. None when there is nothing to load.
        A failure there is left for that first request to raise, with its own message."""
        if not isinstance(self.model, GraphRunner):
            return None

        def load() -> None:
            try:
                self.model.torch_runner()
            except Exception:  # noqa: BLE001 - raised again, and reported, by the request that needs it
                pass

        thread = threading.Thread(target=load, name="linecolor-preload", daemon=True)
        thread.start()
        return thread

    # -------------------------------------------------------------------------------------- analysis
    def analyse(self, line: ImageInput | LineAnalysis, gap: float | None = None) -> LineAnalysis:
        """The line analysis of a drawing (ink and gap-closed regions, :func:`linecolor.raster.regions.analyse`),
        from the cache when the same drawing was analysed with the same ``gap`` before.

        Args:
            line: the line art (path, bytes, file or PIL image), or an analysis (returned as it is).
            gap: close gaps up to this many pixels (``None``: automatic, a few stroke widths; 0: none).
        """
        if isinstance(line, LineAnalysis):
            return line
        image = open_image(line, max_pixels=self.max_pixels, name="line image")
        return self.analyses.get_or_compute(np.asarray(to_gray(image)), gap)

    def _work_grid(self, analysis: LineAnalysis, box) -> WorkGrid:
        key = (analysis.id, box)
        with self._grids_lock:
            grid = self._grids.get(key)
            if grid is not None:
                self._grids.move_to_end(key)
                return grid
        grid = WorkGrid.of(analysis, box)
        with self._grids_lock:
            self._grids[key] = grid
            while len(self._grids) > _WORK_GRIDS:
                self._grids.popitem(last=False)
        return grid

    # ------------------------------------------------------------------------------------------ call
    def __call__(self, line: ImageInput | LineAnalysis, hints: HintsInput = None,
                 reference: ReferenceInput | None = None,
                 *, mode: str = "deterministic", seed: int | None = None, latent_shift: float = 0.0,
                 overlay_lines: bool = True, composite: str = "regions",
                 suggestion_strength: float | None = None, gap: float | None = None,
                 palette: PaletteInput = None) -> Image.Image:
        """Colour ``line``.

        Args:
            line: the line art (path, bytes, file or PIL image; any size and mode; transparency is paper), or its
                analysis from :meth:`analyse` (then nothing is decoded or analysed again).
            hints: an RGBA image of the line's size (alpha > 0 marks a hint pixel, RGB its colour), or a list of
                ``(x, y, "#rrggbb", radius)`` points in the line image's pixel coordinates, or ``None``.
            reference: a colour image whose palette to borrow (needed by, and only used in, ``reference`` mode),
                or the same already opened (:meth:`open_reference`).
            mode: ``deterministic``, ``stochastic`` or ``reference``.
            seed: seed of the style latent in ``stochastic`` mode (a fresh random seed when ``None``).
            latent_shift: offset added to every entry of z, moving the whole palette (the paper's demo slider).
            overlay_lines: multiply the original full-resolution line art onto the result (without it, a
                ``regions`` result is the flat colour layer alone, its colours running on under the lines).
            composite: ``regions`` (every gap-closed region one flat colour: hinted ones their hints', the rest
                the network's suggestion) or ``network`` (the network's output with its shading, the hinted
                regions' colours transferred in); see :func:`linecolor.inference.composite.compose`.
            suggestion_strength: in [0, 1], how strongly the network's colours show in regions without hints
                (``regions`` composite): 0 leaves them white, 1 the network's full colour
                (``None``: :attr:`default_suggestion_strength`). Ignored by the ``network`` composite.
            gap: close gaps in the lines up to this many pixels (``None``: automatic; 0: a plain paint bucket);
                ignored when ``line`` is an analysis (it has its own).
            palette: a :class:`~linecolor.raster.palette.Palette`, a ``.gpl`` file or a list of ``"#rrggbb"``:
                regions without hints take the palette colour nearest to the model's suggestion (``regions``
                composite).

        Returns:
            An RGB PIL image of the line image's size.
        """
        colours = as_palette(palette)
        suggestion_strength = self._strength(suggestion_strength)
        parts = self._render(line, hints, reference, mode, seed, latent_shift, composite, suggestion_strength, gap)
        return compose(*parts.composite_args, composite=composite, suggestion_strength=float(suggestion_strength),
                       overlay_lines=overlay_lines, palette=colours, **self._head_args_of(parts))

    def layered(self, line: ImageInput | LineAnalysis, hints: HintsInput = None,
                reference: ReferenceInput | None = None,
                *, mode: str = "deterministic", seed: int | None = None, latent_shift: float = 0.0,
                composite: str = "regions", suggestion_strength: float | None = None,
                gap: float | None = None, palette: PaletteInput = None) -> LayeredImage:
        """Colour ``line`` as separate layers (arguments as :meth:`__call__`): ``flats``, with the ``network``
        composite ``shading`` (multiply) and ``highlights`` (screen), ``lines`` (multiply) and ``hints``
        (hidden); see :func:`linecolor.inference.composite.compose_layers`. ``layered(...).flatten()`` equals
        ``__call__(...)`` with the same arguments (exactly for ``regions``, within one level for ``network``).
        Write it with :func:`linecolor.raster.layered.write_layered` (``.psd`` or ``.ora``)."""
        colours = as_palette(palette)
        suggestion_strength = self._strength(suggestion_strength)
        parts = self._render(line, hints, reference, mode, seed, latent_shift, composite, suggestion_strength, gap)
        return compose_layers(*parts.composite_args, parts.hint_rgb, parts.hint_mask, composite=composite,
                              suggestion_strength=float(suggestion_strength), palette=colours,
                              **self._head_args_of(parts))

    def page_series(self, reference: ReferenceInput | None = None, *, layered: bool = False,
                    overlay_lines: bool = True, mode: str = "deterministic", seed: int | None = None,
                    latent_shift: float = 0.0, composite: str = "regions",
                    suggestion_strength: float | None = None, gap: float | None = None,
                    palette: PaletteInput = None) -> "PageSeries":
        """A :class:`PageSeries`: pages coloured one after another with these options (as :meth:`__call__`, or
        :meth:`layered` with ``layered=True``), consistently — a region the user did not hint that matches a
        region of one of the last :data:`CARRIED_PAGES` pages (same place and shape, see
        :mod:`linecolor.raster.consistency`) takes that page's colour for it, as if hinted.

        A ``reference`` is opened here, once for every page (:meth:`open_reference`).

        Raises:
            LinecolorError: an option :meth:`__call__` would refuse; a missing, broken or oversized reference
                picture (:class:`~linecolor.errors.InputImageError`).

        >>> series = pipe.page_series(palette="skin.gpl")              # doctest: +SKIP
        >>> images = [series(page, hints) for page, hints in pages]     # doctest: +SKIP
        """
        suggestion_strength = self._strength(suggestion_strength)
        problems = option_problems(mode, seed, latent_shift, reference, composite, suggestion_strength)
        if problems:
            raise LinecolorError("; ".join(problems))
        if reference is not None:
            reference = self.open_reference(reference)  # once for every page, and refused before the first
        return PageSeries(self, dict(reference=reference, mode=mode, seed=seed, latent_shift=latent_shift,
                                     composite=composite, suggestion_strength=float(suggestion_strength), gap=gap),
                          as_palette(palette), layered, overlay_lines)

    def variations(self, line: ImageInput | LineAnalysis, hints: HintsInput = None, seeds: Sequence[int] = (), *,
                   latent_shift: float = 0.0, composite: str = "regions",
                   suggestion_strength: float | None = None, gap: float | None = None,
                   palette: PaletteInput = None, max_side: int | None = None) -> list[Image.Image]:
        """One colouring per seed in ``stochastic`` mode, for a user to choose from: image ``i`` is
        ``self(line, hints, mode="stochastic", seed=seeds[i], ...)`` (same options; the batched network may round a
        level differently, which can tip a region head's near-tie into another colour), scaled down so its longest side is at most ``max_side`` when given.
        The drawing is analysed and conditioned once and the network runs once on all the seeds' style latents.

        Raises:
            LinecolorError: no seeds, more than :data:`~linecolor.limits.MAX_VARIATIONS`, a seed outside
                0 … :data:`~linecolor.limits.MAX_SEED`, ``max_side`` below 1, a model without a style latent, or an
                option :meth:`__call__` would refuse.
        """
        seeds = list(seeds)
        problems = []
        if not 1 <= len(seeds) <= MAX_VARIATIONS:
            problems.append(f"variations need 1 to {MAX_VARIATIONS} seeds, got {len(seeds)}")
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 0 <= s <= MAX_SEED for s in seeds):
            problems.append(f"every seed must be a whole number from 0 to {MAX_SEED}")
        if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1):
            problems.append(f"max_side must be a whole number of pixels ≥ 1, got {max_side!r}")
        if problems:
            raise LinecolorError("; ".join(problems))
        suggestion_strength = self._strength(suggestion_strength)
        self._check_options("stochastic", int(seeds[0]), latent_shift, None, composite, suggestion_strength)
        colours = as_palette(palette)
        analysis, region_colours, box, grid, fill, _, _, cond = self._condition(line, hints, gap)
        z = np.concatenate([self._latent("stochastic", int(s), latent_shift, None) for s in seeds])
        images = []
        for seed, out in zip(seeds, self._network(cond, z)):
            image = compose(analysis, region_colours, array_to_image(out), box, grid, fill, composite=composite,
                            suggestion_strength=float(suggestion_strength), palette=colours,
                            **self._head_args(int(seed)))
            if max_side is not None and max(image.size) > max_side:
                image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            images.append(image)
        return images

    def suggest_at(self, line: ImageInput | LineAnalysis, x: int, y: int, hints: HintsInput = None, *,
                   count: int = SUGGESTIONS_AT_A_POINT, gap: float | None = None,
                   palette: PaletteInput = None) -> list[str]:
        """Up to ``count`` colours (``"#rrggbb"``, best first) the model suggests for the region at pixel (x, y).
        With a region head: its candidates for the region, most likely first (for an unhinted region the first is
        the deterministic output's colour there at strength 1). Without: the region's median colour in the network's output (:func:`suggestions`)
        in deterministic mode, then in other fixed styles of the style latent. Colours closer than
        :data:`linecolor.raster.colouring.SAME_COLOUR_DELTA_E` to an earlier one are left out. The drawing's hints
        are the model's context as in :meth:`__call__`; with a ``palette`` each colour is first replaced by the
        palette's nearest.

        Raises:
            LinecolorError: (x, y) outside the drawing.
        """
        analysis = self.analyse(line, gap)
        h, w = analysis.shape
        if not (isinstance(x, int) and isinstance(y, int) and 0 <= x < w and 0 <= y < h):
            raise LinecolorError(f"the point ({x}, {y}) is outside the {w}×{h} drawing")
        analysis, colours, box, grid, _, _, _, cond = self._condition(analysis, hints, gap)
        region = int(analysis.extended[y, x])
        cw, ch = box.content_size
        if self.region_head is not None:  # the head's candidates for the region, most likely first
            work = array_to_image(self._network(cond, self._styles(1))[0])[:ch, :cw]
            medians = network_medians(work, grid)
            features, near = head_inputs(work, grid, colours, medians)
            one = slice(region, region + 1)
            candidates = self.region_head.ranked(features[one], medians[one], near[one])[0]
        else:
            outputs = [array_to_image(o) for o in self._network(cond, self._styles(max(1, count)))]
            candidates = np.stack([suggestions(out[:ch, :cw], grid, 1.0)[region] for out in outputs])
        snap = as_palette(palette)
        return distinct_colours(list(snap.nearest(candidates) if snap is not None else candidates), count)

    def region_inputs(self, line: ImageInput | LineAnalysis, hints: HintsInput = None, *,
                      gap: float | None = None) -> "RegionInputs":
        """What a region head sees of the deterministic colouring of ``line`` with ``hints`` (arguments as
        :meth:`__call__`): the material :mod:`linecolor.training.region_head` learns from."""
        analysis, colours, box, grid, _, _, _, cond = self._condition(line, hints, gap)
        cw, ch = box.content_size
        work = array_to_image(self._network(cond, self._latent("deterministic", None, 0.0, None))[0])[:ch, :cw]
        medians = network_medians(work, grid)
        features, near = head_inputs(work, grid, colours, medians)
        return RegionInputs(analysis, colours.hinted, features, medians, near)

    def open_reference(self, reference: ReferenceInput) -> Reference:
        """``reference`` decoded (:meth:`Reference.open`, within this pipeline's ``max_pixels``): pass the result
        as ``reference=`` to colour many drawings after one picture without decoding it for each. Bytes sent
        again are not decoded again while they stay in :attr:`references`.

        Raises:
            InputImageError, UnsupportedImageFormat, ImageTooLarge: a missing, broken, other-format or oversized
                picture.
        """
        if isinstance(reference, (bytes, bytearray, memoryview)):
            return self.references.open(bytes(reference),
                                        lambda data: Reference.open(data, max_pixels=self.max_pixels))
        return Reference.open(reference, max_pixels=self.max_pixels)

    def _render(self, line, hints, reference, mode, seed, latent_shift, composite, suggestion_strength,
                gap, carried: Sequence[PageColours] = ()) -> "_Rendered":
        """Everything the composite needs: the analysis, the hinted regions' colours (and those ``carried`` over
        from earlier pages, and in reference mode from the reference's matching regions) and the network's output."""
        z_seed = self._check_options(mode, seed, latent_shift, reference, composite, suggestion_strength)
        ref = self.open_reference(reference) if mode == "reference" else None
        if ref is not None:  # searched last: a series' own earlier pages are likelier the same character
            carried = (*self._reference_pages(ref), *carried)
        analysis, colours, box, grid, fill, hint_rgb, hint_mask, cond = self._condition(line, hints, gap, carried)
        z = self._latent(mode, z_seed, latent_shift, ref)
        out = self._network(cond, z)[0]  # (3, H', W') in [-1, 1]
        borrowed = None if ref is None or self.region_head is None else ref.colours  # only the head uses them
        return _Rendered((analysis, colours, array_to_image(out), box, grid, fill), hint_rgb, hint_mask, z_seed,
                         borrowed)

    @staticmethod
    def _reference_pages(reference: Reference) -> tuple[PageColours, ...]:
        """The pages reference mode carries colours from: the reference's regions (:attr:`Reference.page`), so a
        region drawn where the reference has one of the same shape (IoU ≥
        :data:`~linecolor.raster.consistency.MIN_MATCH_IOU`: a template's face, a character's jacket) takes its
        colour, as if hinted."""
        return (reference.page,)

    def _head_args_of(self, parts: "_Rendered") -> dict[str, Any]:
        """:meth:`_head_args` of a rendered colouring (its seed and reference colours)."""
        return self._head_args(parts.seed, parts.reference_colours)

    def _head_args(self, seed: int | None, reference_colours: np.ndarray | None = None) -> dict[str, Any]:
        """The composite's region-head arguments: the head — in reference mode turned towards the reference's main
        colours (:meth:`RegionHead.towards`) — and in stochastic mode (a ``seed``) the generator of its draws
        (:data:`REGION_HEAD_DRAW_KEY` keeps that stream apart from the style latent's). A fresh generator each
        call, so every composite of one colouring draws the same colours."""
        head = self.region_head
        if head is not None and reference_colours is not None:
            head = head.towards(reference_colours)
        rng = None if seed is None or head is None else np.random.default_rng([REGION_HEAD_DRAW_KEY, seed])
        return {"head": head, "rng": rng}

    def _network(self, cond: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        """The network on numpy arrays: ``cond`` (1, C, H', W'), ``z`` (B, latent_dim) or None → (B, 3, H', W')
        in [-1, 1] (one drawing coloured B ways). A cached graph runs as it is; a torch model or runner gets
        tensors, under ``inference_mode``."""
        if isinstance(self.model, GraphRunner):
            return self.model(cond, z)
        import torch

        cond_t = torch.from_numpy(cond).to(self.device)
        z_t = None if z is None else torch.from_numpy(z).to(self.device)
        if z_t is not None and z_t.shape[0] != 1:
            cond_t = cond_t.expand(z_t.shape[0], -1, -1, -1)
        with torch.inference_mode():
            return self.model(cond_t, z_t).float().cpu().numpy()

    def _condition(self, line, hints, gap, carried: Sequence[PageColours] = ()):
        """The drawing's analysis, its regions' colours from the hints (and ``carried``), the letterbox, work grid
        and fill guide, the hints as drawn, and the network's conditioning tensor (1, C, H', W')."""
        analysis = self.analyse(line, gap)
        line_arr = analysis.line  # (H, W) uint8
        size = (line_arr.shape[1], line_arr.shape[0])
        hint_rgb, hint_mask = self._hints(hints, size)
        colours = carry_colours(analysis, assign_hints(analysis, hint_rgb, hint_mask), carried)

        box = letterbox_geometry(size, self.config.working_size, self.config.generator.downsample_factor)
        grid = self._work_grid(analysis, box)
        line_l = grid.line  # letterboxed once per drawing
        rgb_l, mask_l = letterbox_hints(hint_rgb, hint_mask, box)
        gen = self.config.generator
        fill = fill_guide(colours, grid, box, line_l)
        cond = condition_array(line_l, rgb_l, mask_l, binarize=gen.binarize_line, fill_guide=gen.fill_guide,
                               fill=fill)
        return analysis, colours, box, grid, fill, hint_rgb, hint_mask, cond[None]

    def _styles(self, count: int) -> np.ndarray | None:
        """(count, latent_dim) float32: z = 0, then fixed draws of the style prior (the same for every call, so
        the suggestions at a point are stable); None for a model without a style latent."""
        if not self.config.generator.use_style_latent:
            return None
        dim = self.config.generator.latent_dim
        others = np.random.default_rng(SUGGESTION_STYLE_SEED).standard_normal((max(0, count - 1), dim))
        return np.concatenate([np.zeros((1, dim)), others]).astype(np.float32)

    # ------------------------------------------------------------------------------------- helpers
    @property
    def default_suggestion_strength(self) -> float:
        """The suggestion strength used when none is given: :data:`~linecolor.limits.SUGGESTION_STRENGTH` for a
        model with a region head (its picks are right more often at full strength),
        :data:`~linecolor.limits.SUGGESTION_STRENGTH_WITHOUT_HEAD` for the network's own median colour."""
        return SUGGESTION_STRENGTH if self.region_head is not None else SUGGESTION_STRENGTH_WITHOUT_HEAD

    def _strength(self, suggestion_strength: float | None) -> float:
        """``suggestion_strength``, or this model's default when it is None (a bad value is left for
        :func:`option_problems` to name)."""
        return self.default_suggestion_strength if suggestion_strength is None else suggestion_strength

    def _check_options(self, mode: str, seed: int | None, latent_shift: float, reference: ReferenceInput | None,
                       composite: str = "regions", suggestion_strength: float = SUGGESTION_STRENGTH) -> int | None:
        """Raise :class:`LinecolorError` naming every problem of these options; the seed of z in stochastic mode
        (a fresh random one when none was given), else None."""
        problems = option_problems(mode, seed, latent_shift, reference, composite, suggestion_strength)
        has_style = self.config.generator.use_style_latent
        if not has_style and (mode != "deterministic" or latent_shift != 0):
            problems.append("this model has no style latent: only deterministic mode without latent shift is possible")
        if problems:
            raise LinecolorError("; ".join(problems))
        if mode != "stochastic":
            return None
        return seed if seed is not None else int.from_bytes(os.urandom(7), "big")

    def _hints(self, hints: HintsInput, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        w, h = size
        if hints is None:
            return np.zeros((h, w, 3), np.uint8), np.zeros((h, w), bool)
        if isinstance(hints, (list, tuple)):
            return hints_from_points(hints, size)
        layer = open_image(hints, max_pixels=self.max_pixels, name="hint image")
        check_same_size(size, layer.size, "the hint image")
        return hints_from_rgba(layer)

    def _latent(self, mode: str, seed: int | None, latent_shift: float,
                reference: Reference | None) -> np.ndarray | None:
        """z (1, latent_dim) float32 for ``mode`` (``reference``: the decoded reference picture);
        None for a model without a style latent. Stochastic draws come from a ``torch.Generator`` seeded with
        ``seed`` (the stream every release so far used: a seed keeps its colours), so that mode and reference mode
        load torch."""
        if not self.config.generator.use_style_latent:
            return None
        dim = self.config.generator.latent_dim
        if mode == "stochastic":
            import torch

            z = torch.randn(1, dim, generator=torch.Generator(device="cpu").manual_seed(seed)).numpy()
        elif mode == "reference":
            z = self._style_of(reference)
        else:
            z = np.zeros((1, dim), np.float32)
        return z + np.float32(latent_shift)

    def _style_of(self, reference: Reference) -> np.ndarray:
        """μ (1, latent_dim) float32: the style encoder's mean for ``reference``, found once per decoded reference
        (a 4096² picture takes 0.2–2 s to encode: the studio sends the same one with every stroke)."""
        with self._reference_styles_lock:
            found = self._reference_styles.get(reference)
        if found is None:
            import torch

            with torch.inference_mode():
                mu, _ = self.model.encode_style(image_to_tensor(reference.pixels)[None].to(self.device))
            found = mu.float().cpu().numpy()
            found.setflags(write=False)
            with self._reference_styles_lock:
                self._reference_styles[reference] = found
        return found


def _torch_twin(directory: str | Path, graph: GraphRunner) -> Any:
    """What a graph runner loads when it needs torch: the same weights file (refused if it changed since), on the
    onnxruntime backend, without a warm-up (the graph passed it)."""
    from linecolor.inference.runtime import load_runner

    return load_runner(directory, "cpu", "onnxruntime", expect_sha256=graph.weights_sha256, warm=False)


class PageSeries:
    """Pages coloured in order with colours carried from page to page (made by
    :meth:`ColorizationPipeline.page_series`). A page that fails (a bad file) raises and is not remembered; the
    series goes on with the next."""

    def __init__(self, pipeline: ColorizationPipeline, options: dict[str, Any], palette: Palette | None,
                 layered: bool, overlay_lines: bool):
        self.pipeline, self.options, self.palette = pipeline, options, palette
        self.layered, self.overlay_lines = layered, overlay_lines
        self.earlier: list[PageColours] = []

    def __call__(self, line: ImageInput | LineAnalysis, hints: HintsInput = None) -> Image.Image | LayeredImage:
        o = self.options
        parts = self.pipeline._render(line, hints, o["reference"], o["mode"], o["seed"], o["latent_shift"],
                                      o["composite"], o["suggestion_strength"], o["gap"], carried=self.earlier)
        look = dict(suggestion_strength=o["suggestion_strength"], palette=self.palette)
        if self.layered:
            result = compose_layers(*parts.composite_args, parts.hint_rgb, parts.hint_mask,
                                    composite=o["composite"], **look, **self.pipeline._head_args_of(parts))
        else:
            result = compose(*parts.composite_args, composite=o["composite"], overlay_lines=self.overlay_lines,
                             **look, **self.pipeline._head_args_of(parts))
        page = PageColours.of(parts.composite_args[0], region_table(*parts.composite_args, **look,
                                                                    **self.pipeline._head_args_of(parts)))
        self.earlier = (self.earlier + [page])[-CARRIED_PAGES:]
        return result


class RegionInputs(NamedTuple):
    """:meth:`ColorizationPipeline.region_inputs`: per region (row 0 is ink), what the region head reads."""

    analysis: LineAnalysis
    hinted: np.ndarray
    """bool (n + 1,): regions with a hint."""
    features: np.ndarray
    """float64 (n + 1, F): :func:`linecolor.inference.region_head.region_features`."""
    medians: np.ndarray
    """float64 (n + 1, 3): the network's median colour per region (the head's second-last candidate)."""
    near: np.ndarray
    """float64 (n + 1, 1 + HINT_SLOTS, 3): each region's own candidates — its hinted neighbours' mean colour (white
    without any), then the hint slots' colours (:data:`linecolor.inference.region_head.HINT_SLOTS`)."""


class _Rendered(NamedTuple):
    composite_args: tuple  # (analysis, colours, network output, letterbox, work grid, fill guide): compose()'s
    hint_rgb: np.ndarray
    hint_mask: np.ndarray
    seed: int | None  # the stochastic mode's seed (None in the other modes)
    reference_colours: np.ndarray | None  # reference mode: the reference's main colours, uint8 (R, 3) (else None)


PaletteInput = Palette | str | Path | Sequence[str] | None
"""A palette as :meth:`ColorizationPipeline.__call__` takes it."""


def as_palette(palette: PaletteInput) -> Palette | None:
    """``palette`` as a :class:`Palette`: a ``.gpl`` path (str or Path), a list of ``"#rrggbb"``, or as is."""
    if palette is None or isinstance(palette, Palette):
        return palette
    if isinstance(palette, Path) or (isinstance(palette, str) and palette.lower().endswith(".gpl")):
        return read_gpl(palette)
    return Palette.from_hex(palette)


def option_problems(mode: str, seed: int | None, latent_shift: float, reference: object, composite: str = "regions",
                    suggestion_strength: float | None = None) -> list[str]:
    """What is wrong with these colouring options, whatever the model (empty when nothing is): the checks a CLI or
    server can make before loading a model. :meth:`ColorizationPipeline.__call__` adds the model's own (a model
    without a style latent takes only deterministic mode)."""
    problems = []
    if mode not in MODES:
        problems.append(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if composite not in COMPOSITES:
        problems.append(f"composite must be one of {', '.join(COMPOSITES)}, got {composite!r}")
    lo, hi = SUGGESTION_STRENGTH_RANGE
    if suggestion_strength is not None and (  # None: the model's default
            not isinstance(suggestion_strength, (int, float)) or isinstance(suggestion_strength, bool)
            or not lo <= suggestion_strength <= hi):  # NaN fails both comparisons
        problems.append(f"suggestion_strength must be a number in [{lo:g}, {hi:g}], got {suggestion_strength!r}")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED):
        problems.append(f"seed must be an integer in [0, {MAX_SEED}], got {seed!r}")
    if (not isinstance(latent_shift, (int, float)) or isinstance(latent_shift, bool)
            or not math.isfinite(latent_shift) or abs(latent_shift) > MAX_LATENT_SHIFT):
        problems.append(f"latent_shift must be a finite number in [-{MAX_LATENT_SHIFT}, {MAX_LATENT_SHIFT}], "
                        f"got {latent_shift!r}")
    if mode == "reference" and reference is None:
        problems.append("reference mode needs a reference image")
    if mode != "reference" and reference is not None:
        problems.append(f"a reference image was given but mode is {mode!r}; use mode='reference'")
    return problems


def distinct_colours(candidates: Sequence[np.ndarray], count: int) -> list[str]:
    """The first ``count`` of ``candidates`` (float RGB in [0, 255]) as ``"#rrggbb"``, leaving out any within
    :data:`SAME_COLOUR_DELTA_E` (CIEDE2000) of one already taken."""
    taken: list[tuple[np.ndarray, np.ndarray]] = []  # (rgb, lab)
    for colour in candidates:
        rgb = np.clip(np.rint(np.asarray(colour, np.float64)), 0, 255)
        lab = rgb2lab(rgb[None, None] / 255.0)[0, 0]
        if all(deltaE_ciede2000(lab, other) >= SAME_COLOUR_DELTA_E for _, other in taken):
            taken.append((rgb, lab))
            if len(taken) == count:
                break
    return ["#%02x%02x%02x" % tuple(int(v) for v in rgb) for rgb, _ in taken]
