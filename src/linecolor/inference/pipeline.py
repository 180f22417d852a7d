"""The one inference path: line art + hints → coloured image. Used by the Python API, the CLI and the server.

>>> pipe = ColorizationPipeline.from_pretrained("weights/")                       # doctest: +SKIP
>>> out = pipe("line.png", hints=[(40, 60, "#ff8800", 5)], mode="stochastic", seed=3)  # doctest: +SKIP

Steps: the line image is turned to 8-bit grey on white paper (:mod:`linecolor.raster.imageio`); the hints are
parsed (:mod:`linecolor.inference.hints`); both are letterboxed to the model's working size (long side =
``working_size``, padded to a multiple of 32) and turned into the conditioning tensor (5 channels, or 9 with the
region-fill guide; :mod:`linecolor.inference.conditioning`, shared with training); the network colours it with a
style latent z chosen by the mode (:mod:`linecolor.inference.runtime` runs it); the output composite
(:mod:`linecolor.inference.composite`) brings the colours back to the input's size on its full-resolution regions
and multiplies the original line art on top so lines stay crisp. Every user-facing limit is in
:mod:`linecolor.limits`.

Modes and z:
    deterministic  z = 0 + latent_shift (the same output every time)
    stochastic     z ~ N(0, I) drawn from a ``torch.Generator`` seeded with ``seed``, + latent_shift
    reference      z = μ(reference image) + latent_shift (borrow a reference's palette)
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, BinaryIO, Sequence

import numpy as np
import torch
from PIL import Image

from linecolor.errors import LinecolorError, WeightsError
from linecolor.inference.composite import FillGuide, postprocess
from linecolor.inference.conditioning import (
    build_condition,
    image_to_tensor,
    letterbox_geometry,
    letterbox_inputs,
    tensor_to_image,
)
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
    MODES,
    SUGGESTION_STRENGTH,
    SUGGESTION_STRENGTH_RANGE,
)
from linecolor.models.colorizer import Colorizer
from linecolor.raster.imageio import open_image, to_gray, to_rgb

__all__ = ["DEFAULT_WEIGHTS_DIR", "OUTPUT_VERSION", "ColorizationPipeline"]

OUTPUT_VERSION = 4
"""Bumped whenever the pipeline's output for the same weights and inputs changes (its history is in
docs/measurements.md); part of the evaluation's fingerprint, so results of older code are never reused."""
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights" / "default"

ImageInput = str | Path | bytes | BinaryIO | Image.Image
HintsInput = ImageInput | Sequence[Sequence[Any]] | None


class ColorizationPipeline:
    """Colour a line drawing following colour hints.

    Args:
        model: a :class:`~linecolor.models.colorizer.Colorizer` (put in eval mode here; run as it is, the plain
            reference path) or an :class:`~linecolor.inference.runtime.InferenceRunner` wrapping one (what
            :meth:`from_pretrained` builds by default).
        device: where the network runs (CPU by default; nothing here assumes CUDA).
        max_pixels: largest input image accepted, checked before decoding.
    """

    def __init__(self, model: Colorizer, *, device: str | torch.device = "cpu", max_pixels: int = MAX_IMAGE_PIXELS):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.max_pixels = max_pixels

    @classmethod
    def from_pretrained(cls, directory: str | Path | None = None, *, device: str | torch.device = "cpu",
                        backend: str = "auto", **kwargs: Any) -> "ColorizationPipeline":
        """Load weights saved by ``save_pretrained`` / ``linecolor export``; ``None`` means the bundled default.

        ``backend`` picks the execution path (:func:`linecolor.inference.runtime.optimize_for_inference`): ``auto``, the
        fastest available (onnxruntime, else the fused eager module; the same function as the plain model within
        float rounding, checked by tests), or ``plain``, the unmodified PyTorch model (the reference). A fast path
        is warmed up here, so its one-off cost (ONNX export, session) is not paid by the first image.
        """
        if directory is None:
            directory = DEFAULT_WEIGHTS_DIR
            if not (directory / "model.safetensors").is_file():
                raise WeightsError(
                    f"no bundled default weights in this installation (expected {directory}/model.safetensors and "
                    "config.json); pass a weights directory made by `linecolor train` + `linecolor export`")
        model: Any = Colorizer.from_pretrained(directory, device=device)
        if backend != "plain":
            from linecolor.inference.runtime import optimize_for_inference

            model = optimize_for_inference(model, backend=backend).warmup()
        return cls(model, device=device, **kwargs)

    def save_pretrained(self, directory: str | Path) -> Path:
        return self.model.save_pretrained(directory)

    # ------------------------------------------------------------------------------------------ call
    @torch.inference_mode()
    def __call__(self, line: ImageInput, hints: HintsInput = None, reference: ImageInput | None = None, *,
                 mode: str = "deterministic", seed: int | None = None, latent_shift: float = 0.0,
                 overlay_lines: bool = True, composite: str = "regions",
                 suggestion_strength: float = SUGGESTION_STRENGTH) -> Image.Image:
        """Colour ``line``.

        Args:
            line: the line art (path, bytes, file or PIL image; any size and mode; transparency is paper).
            hints: an RGBA image of the line's size (alpha > 0 marks a hint pixel, RGB its colour), or a list of
                ``(x, y, "#rrggbb", radius)`` points in the line image's pixel coordinates, or ``None``.
            reference: a colour image whose palette to borrow (needed by, and only used in, ``reference`` mode).
            mode: ``deterministic``, ``stochastic`` or ``reference``.
            seed: seed of the style latent in ``stochastic`` mode (a fresh random seed when ``None``).
            latent_shift: offset added to every entry of z, moving the whole palette (the paper's demo slider).
            overlay_lines: multiply the original full-resolution line art onto the result (without it, a
                ``regions`` result is the flat colour layer alone, its colours running on under the lines).
            composite: for ``fill_guide`` models, ``regions`` (flat regions: hinted ones keep the hint colours,
                the rest take the network's colours) or ``network`` (the network's output with its shading,
                sharpened by the fill); see :func:`linecolor.inference.composite.postprocess`. Ignored by other
                models.
            suggestion_strength: in [0, 1], how strongly the network's colours show in regions without hints
                (``regions`` composite): 0 leaves them white, 1 the network's full colour
                (:data:`linecolor.limits.SUGGESTION_STRENGTH` by default). Ignored by the ``network`` composite
                and by models without the fill guide.

        Returns:
            An RGB PIL image of the line image's size.
        """
        z_generator, z_mode = self._check_options(mode, seed, latent_shift, reference, composite,
                                                  suggestion_strength)
        line_img = open_image(line, max_pixels=self.max_pixels, name="line image")
        line_arr = np.asarray(to_gray(line_img))  # (H, W) uint8
        size = (line_arr.shape[1], line_arr.shape[0])
        hint_rgb, hint_mask = self._hints(hints, size)

        box = letterbox_geometry(size, self.config.working_size, self.config.generator.downsample_factor)
        line_l, rgb_l, mask_l = letterbox_inputs(line_arr, hint_rgb, hint_mask, box)
        gen = self.config.generator
        cond = build_condition(line_l, rgb_l, mask_l, binarize=gen.binarize_line, fill_guide=gen.fill_guide)
        guide = FillGuide.from_condition(cond, line_arr, hint_rgb, hint_mask, composite) if gen.fill_guide else None
        cond = cond[None].to(self.device)  # (1, 5 or 9, H', W')

        z = self._latent(z_mode, z_generator, latent_shift, reference)
        out = self.model(cond, z)[0]  # (3, H', W') in [-1, 1]
        return postprocess(tensor_to_image(out), box, line_arr if overlay_lines else None, guide, composite,
                           float(suggestion_strength))

    # ------------------------------------------------------------------------------------- helpers
    def _check_options(self, mode: str, seed: int | None, latent_shift: float, reference: ImageInput | None,
                       composite: str = "regions",
                       suggestion_strength: float = SUGGESTION_STRENGTH) -> tuple[torch.Generator | None, str]:
        problems = []
        if mode not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if composite not in COMPOSITES:
            problems.append(f"composite must be one of {', '.join(COMPOSITES)}, got {composite!r}")
        lo, hi = SUGGESTION_STRENGTH_RANGE
        if (not isinstance(suggestion_strength, (int, float)) or isinstance(suggestion_strength, bool)
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
        has_style = self.config.generator.use_style_latent
        if not has_style and (mode != "deterministic" or latent_shift != 0):
            problems.append("this model has no style latent: only deterministic mode without latent shift is possible")
        if problems:
            raise LinecolorError("; ".join(problems))
        gen = None
        if mode == "stochastic":
            gen = torch.Generator(device="cpu")
            gen.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(7), "big"))
        return gen, mode

    def _hints(self, hints: HintsInput, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        w, h = size
        if hints is None:
            return np.zeros((h, w, 3), np.uint8), np.zeros((h, w), bool)
        if isinstance(hints, (list, tuple)):
            return hints_from_points(hints, size)
        layer = open_image(hints, max_pixels=self.max_pixels, name="hint image")
        check_same_size(size, layer.size, "the hint image")
        return hints_from_rgba(layer)

    def _latent(self, mode: str, generator: torch.Generator | None, latent_shift: float,
                reference: ImageInput | None) -> torch.Tensor | None:
        if not self.config.generator.use_style_latent:
            return None
        dim = self.config.generator.latent_dim
        if mode == "stochastic":
            z = torch.randn(1, dim, generator=generator)
        elif mode == "reference":
            ref = np.asarray(to_rgb(open_image(reference, max_pixels=self.max_pixels, name="reference image")))
            z, _ = self.model.encode_style(image_to_tensor(ref)[None].to(self.device))
            z = z.cpu()
        else:
            z = torch.zeros(1, dim)
        return (z + float(latent_shift)).to(self.device)
