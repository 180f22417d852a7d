"""The inference model: generator + style encoder, with ``save_pretrained`` / ``from_pretrained``.

Contract:
    forward(cond, z=None): cond (B, 5, H, W) (see :mod:`linecolor.models.generator`), z (B, latent_dim) or None
        → (B, 3, H, W) RGB in [-1, 1].
    encode_style(image): (B, 3, H, W) RGB in [-1, 1] → (μ, log σ²), each (B, latent_dim).

On disk (the diffusers layout): ``config.json`` (the :class:`~linecolor.config.ModelConfig`, the linecolor version
and the SHA-256 of the weights) beside ``model.safetensors`` (metadata ``{"format": "pt", "version": …,
"config_sha256": …}``). The two cover each other: the weights' SHA-256 is in the config, the config's (of its
canonical JSON) in the weights' metadata, so neither can be edited or swapped alone. Loading never unpickles,
checks the config's bounds and the model's parameter count before allocating any layer, is strict about tensor
names and shapes, and refuses non-finite weights, so a truncated, swapped, absurd or foreign file is refused with a
:class:`~linecolor.errors.WeightsError` naming the problem.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from linecolor.config import ModelConfig, to_dict
from linecolor.errors import WeightsError
from linecolor.limits import MAX_PARAMETERS
from linecolor.models._layers import shapes_only
from linecolor.models.generator import build_generator
from linecolor.models.saved import (
    CONFIG_NAME,
    FORMAT_TAG,
    WEIGHTS_NAME,
    config_digest,
    file_sha256,
    load_model_config,
    read_model_config,
)
from linecolor.models.scratch import torch_scratch_removed_afterwards
from linecolor.models.style_encoder import StyleEncoder
from linecolor.version import __version__

__all__ = ["CONFIG_NAME", "MAX_PARAMETERS", "WEIGHTS_NAME", "Colorizer", "config_digest", "load_model_config",
           "parameter_count"]



class Colorizer(nn.Module):
    """Generator (+ style encoder when the config uses a style latent) as one loadable unit."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.generator = build_generator(config.generator)
        self.style_encoder = (StyleEncoder(config.style_encoder, config.generator.latent_dim)
                              if config.generator.use_style_latent else None)

    def forward(self, cond: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(cond, z)

    def encode_style(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.style_encoder is None:
            raise ValueError("this model has no style encoder (generator.use_style_latent is false)")
        return self.style_encoder(image)

    # ------------------------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | Path, *, dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed).

        Each file is written under a temporary name and renamed into place, weights first, so an interrupted save
        never leaves a config that points at a partial weights file.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        if dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        weights_tmp = directory / f".{WEIGHTS_NAME}.tmp-{os.getpid()}"
        save_file(state, str(weights_tmp), metadata={"format": "pt", "version": __version__,
                                                     "config_sha256": config_digest(self.config)})
        digest = file_sha256(weights_tmp)
        os.replace(weights_tmp, directory / WEIGHTS_NAME)
        payload = {"_format": FORMAT_TAG, "_linecolor_version": __version__, "_weights_sha256": digest,
                   **to_dict(self.config)}
        config_tmp = directory / f".{CONFIG_NAME}.tmp-{os.getpid()}"
        config_tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        os.replace(config_tmp, directory / CONFIG_NAME)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> "Colorizer":
        """Load a model written by :meth:`save_pretrained`, in eval mode on ``device``."""
        directory = Path(directory)
        config, expected = read_model_config(directory)
        _check_parameter_count(config)
        weights = directory / WEIGHTS_NAME
        if not weights.is_file():
            raise WeightsError(f"weights file missing: {weights}")
        if expected and file_sha256(weights) != expected:
            raise WeightsError(f"{weights} does not match the SHA-256 recorded in {CONFIG_NAME} "
                               "(truncated, corrupted or swapped file)")
        try:
            with safe_open(str(weights), framework="pt") as f:
                metadata = f.metadata() or {}
            state = load_file(str(weights))
        except (SafetensorError, OSError) as exc:
            raise WeightsError(f"{weights} is not a readable safetensors file ({exc}); "
                               "safetensors required, pickled checkpoints are never loaded") from exc
        recorded = metadata.get("config_sha256")
        if recorded is not None and recorded != config_digest(config):
            raise WeightsError(f"{CONFIG_NAME} in {directory} is not the configuration these weights were saved with "
                               "(edited or swapped config)")
        bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
        if bad is not None:
            raise WeightsError(f"{weights}: tensor {bad!r} holds NaN or infinite values; these weights cannot colour")
        model = cls(config)
        own = model.state_dict()  # once: each state_dict() call walks every module (2 s when taken per key)
        state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{weights} does not match {CONFIG_NAME}: {exc}") from exc
        return model.to(device=device, dtype=dtype).eval()


def _check_parameter_count(config: ModelConfig) -> None:
    """Refuse a config whose model would exceed :data:`MAX_PARAMETERS`, counted without allocating (meta device)."""
    count = parameter_count(config)
    if count > MAX_PARAMETERS:
        raise WeightsError(f"this configuration has {count:,} parameters, more than the limit of {MAX_PARAMETERS:,}")


def parameter_count(config: ModelConfig) -> int:
    """Parameters of the model ``config`` describes, counted on the meta device (nothing allocated, no init run)."""
    with torch_scratch_removed_afterwards(), shapes_only(), torch.device("meta"):
        return sum(p.numel() for p in Colorizer(config).parameters())
