"""The colourisation generator: a SPADE decoder conditioned on line art and hints.

Contract:
    forward(cond, z=None):
        cond (B, 5, H, W): channel 0 line art in [-1, 1] (paper +1, ink −1), channels 1–3 hint RGB in [-1, 1]
            (0 where there is no hint), channel 4 hint mask in {0, 1}. H and W multiples of 32.
            With ``fill_guide`` (B, 9, H, W): channels 5–7 the region fill of the hints in [-1, 1] (0 where not
            filled), channel 8 the filled mask in {0, 1} (see :mod:`linecolor.raster.fill`).
        z (B, latent_dim) style latent, or None (= zeros: deterministic mode).
        → (B, 3, H, W) RGB in [-1, 1] (tanh).

With ``fill_guide`` the output is ``tanh(to_rgb(x) + filled · atanh(fill))``: a correction, in logit space, on top
of the paint-bucket fill; ``to_rgb`` starts at zero, so an untrained model already returns the fill where there is
one (and mid-grey elsewhere) and training only has to learn what the fill gets wrong.

The trunk starts from a grid of size/32 and doubles the resolution through seven SPADE residual blocks
(at size/32, /16, /16, /8, /4, /2, /1) with widths 16nf, 16nf, 16nf, 8nf, 4nf, 2nf, nf.

Two variants, chosen by ``GeneratorConfig.variant`` through the :data:`GENERATORS` registry:

* ``ladder`` (default, the paper's method): every block is modulated by the ladder encoder's map of its
  own resolution; the trunk's first activation is a conv of the size/32 ladder map.
* ``spade`` (the original SPADE, the paper's baseline): every block is modulated by the raw 5-channel
  input, nearest-resized to the block; the first activation is a conv of the area-downsampled input.

Unlike SPADE's fixed-size ``fc(z)`` start, z enters every SPADE modulation net (see :mod:`linecolor.models.spade`),
so one model runs at any working size (a multiple of 32) and aspect ratio, and z acts on every block's colours.

For inference, :meth:`~_SPADEGeneratorBase.fuse_for_inference` folds spectral norm into plain weights, fuses every
block's SPADE modulation nets (:meth:`linecolor.models.spade.SPADEResBlock.fuse_modulation`) and projects z for all
blocks in one matrix product; the forward pass stays this module's one ``forward``, so the fast path cannot drift
from the trained network (:mod:`linecolor.inference.runtime` runs it, tests compare the two).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from linecolor.config import BLOCK_FACTORS, GeneratorConfig
from linecolor.errors import ConfigError
from linecolor.models._layers import conv, fold_spectral_norm, use_two_pass_norm
from linecolor.models.ladder_encoder import LadderEncoder
from linecolor.models.spade import SPADEResBlock

FILL_CLAMP = 0.995
"""The fill is clamped to ±this before ``atanh`` (white paper, +1, would be +inf); tanh(atanh(0.995)) ↦ 254.4/255."""


def fill_logits(cond: torch.Tensor) -> torch.Tensor:
    """(B, 9, H, W) conditioning → (B, 3, H, W) pre-tanh logits of the region fill, 0 where nothing is filled."""
    fill, filled = cond[:, 5:8], cond[:, 8:9]
    x = fill.clamp(-FILL_CLAMP, FILL_CLAMP)
    return filled * (0.5 * torch.log((1 + x) / (1 - x)))  # atanh, spelled out: ONNX export has no aten::atanh


class _SPADEGeneratorBase(nn.Module):
    """The shared SPADE trunk; subclasses say what conditions each block."""

    def __init__(self, config: GeneratorConfig, cond_channels: int):
        super().__init__()
        self.config = config
        widths = config.block_channels
        self.start = conv(cond_channels, widths[0])
        latent_dim = config.latent_dim if config.use_style_latent else 0
        in_widths = (widths[0],) + widths[:-1]
        self.blocks = nn.ModuleList(
            SPADEResBlock(cin, cout, cond_channels, config.spade_hidden_channels, config.norm, latent_dim)
            for cin, cout in zip(in_widths, widths)
        )
        self.to_rgb = conv(widths[-1], 3)
        if config.fill_guide:
            # Zero start: the untrained model returns the fill itself (the ControlNet "zero convolution" idea).
            nn.init.zeros_(self.to_rgb.weight)
            nn.init.zeros_(self.to_rgb.bias)
        self.fused_style: nn.Linear | None = None
        self.style_offset_sizes: list[int] = []

    def conditioning(self, cond: torch.Tensor) -> dict[int, torch.Tensor]:
        """Map each factor in :data:`BLOCK_FACTORS` to the conditioning tensor of that resolution."""
        raise NotImplementedError

    def forward(self, cond: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = cond.shape
        if c != self.config.in_channels:
            raise ValueError(f"generator expects {self.config.in_channels} conditioning channels, got {c}")
        m = self.config.downsample_factor
        if h % m or w % m:
            raise ValueError(f"generator input size must be a multiple of {m}, got {h}×{w}")
        maps = self.conditioning(cond)
        if not self.config.use_style_latent:
            z = None
        elif z is not None and z.shape != (b, self.config.latent_dim):
            raise ValueError(f"z must have shape ({b}, {self.config.latent_dim}), got {tuple(z.shape)}")
        offsets: list[torch.Tensor | None] = [None] * len(self.blocks)
        if self.fused_style is not None and z is not None:
            # One matrix product for every block's style offsets: (B, Σ n·hidden), split per block.
            offsets = list(torch.split(self.fused_style(z), self.style_offset_sizes, dim=1))
        x = self.start(maps[32])  # (B, 16nf, H/32, W/32)
        previous_factor = BLOCK_FACTORS[0]
        for block, factor, offset in zip(self.blocks, BLOCK_FACTORS, offsets):
            if factor != previous_factor:
                x = F.interpolate(x, scale_factor=2, mode="nearest")  # (B, C, 2h, 2w)
                previous_factor = factor
            x = block(x, maps[factor], z, style_offset=offset)
        logits = self.to_rgb(F.leaky_relu(x, 0.2))  # (B, 3, H, W)
        if self.config.fill_guide:
            logits = logits + fill_logits(cond)
        return torch.tanh(logits)

    # ------------------------------------------------------------------------------------ inference
    def fuse_for_inference(self) -> "_SPADEGeneratorBase":
        """Rewrite this module in place for fast eval-mode inference, computing the same function (within float
        rounding): spectral norm folded (:func:`~linecolor.models._layers.fold_spectral_norm`, irreversible: use it
        on a copy meant for inference), every block's modulation nets fused, and z projected for all blocks at once.
        :meth:`unfuse` undoes the fusions. Returns the module, in eval mode with gradients off."""
        self.eval().requires_grad_(False)
        fold_spectral_norm(self)
        for block in self.blocks:
            block.fuse_modulation()
        if self.config.use_style_latent:
            styles = [block.fused.style for block in self.blocks]
            self.fused_style = nn.Linear(styles[0].in_features, sum(s.out_features for s in styles))
            with torch.no_grad():
                self.fused_style.weight.copy_(torch.cat([s.weight for s in styles]))
                self.fused_style.bias.copy_(torch.cat([s.bias for s in styles]))
            self.fused_style.requires_grad_(False)
            self.style_offset_sizes = [s.out_features for s in styles]
        return self

    def unfuse(self) -> "_SPADEGeneratorBase":
        """Back to the separate modulation nets (spectral norm stays folded)."""
        for block in self.blocks:
            block.unfuse_modulation()
        self.fused_style, self.style_offset_sizes = None, []
        return self

    def use_two_pass_norm(self, enabled: bool = True) -> "_SPADEGeneratorBase":
        """Spell instance norm out as mean/variance ops for ONNX export
        (:class:`~linecolor.models._layers.InstanceNorm2d`)."""
        use_two_pass_norm(self, enabled)
        return self


class LadderGenerator(_SPADEGeneratorBase):
    """SPADE generator conditioned through the learned ladder encoder (the paper's method)."""

    def __init__(self, config: GeneratorConfig):
        super().__init__(config, cond_channels=config.cond_channels)
        self.ladder = LadderEncoder(config.in_channels, config.cond_channels, num_downsamples=5)

    def conditioning(self, cond: torch.Tensor) -> dict[int, torch.Tensor]:
        return self.ladder(cond)


class SPADEGenerator(_SPADEGeneratorBase):
    """The original SPADE conditioning: the raw input, resized to every block (the paper's baseline)."""

    def __init__(self, config: GeneratorConfig):
        super().__init__(config, cond_channels=config.in_channels)

    def conditioning(self, cond: torch.Tensor) -> dict[int, torch.Tensor]:
        # SPADE resizes the map inside each block (nearest); only the trunk's start needs a real down-sample,
        # and there an area average keeps at least a trace of thin lines.
        maps: dict[int, torch.Tensor] = {f: cond for f in set(BLOCK_FACTORS)}
        maps[32] = F.avg_pool2d(cond, 32)
        return maps


GENERATORS: dict[str, type[_SPADEGeneratorBase]] = {"ladder": LadderGenerator, "spade": SPADEGenerator}


def build_generator(config: GeneratorConfig) -> _SPADEGeneratorBase:
    """Instantiate the generator variant named by ``config.variant``."""
    try:
        cls = GENERATORS[config.variant]
    except KeyError:
        raise ConfigError(f"unknown generator variant {config.variant!r}; valid: {', '.join(sorted(GENERATORS))}")
    return cls(config)
