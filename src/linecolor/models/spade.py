"""Spatially-adaptive normalisation (SPADE, Park et al. 2019) and the SPADE residual block.

Contract:
    SPADE(x, cond, z=None):  x (B, C, H, W) any range; cond (B, K, h, w) the conditioning map at any size
                     (resized to (H, W) by nearest neighbour when it differs); z (B, latent_dim) style latent or
                     None (= zeros) → (B, C, H, W).
    SPADEResBlock(x, cond, z=None): x (B, C_in, H, W), cond (B, K, h, w), z as above → (B, C_out, H, W).

In SPADE, ``x`` is normalised without learned affine parameters and then modulated per pixel:
``out = norm(x) · (1 + γ(cond)) + β(cond)``, where γ and β come from a small conv net
(3×3 conv → ReLU → two 3×3 convs) on the conditioning map. With the ladder encoder the
conditioning map is already at x's resolution; with the plain ``spade`` variant it is the raw
input, resized.

The style latent z enters every modulation net as a learned per-channel offset of its hidden layer (equivalent to
concatenating a broadcast z to the conditioning map, without paying for extra input channels at full resolution).
It has to act on γ and β: an offset added to the activations themselves would be erased by the next normalisation.

Inference speed-up (:meth:`SPADEResBlock.fuse_modulation`, undone by :meth:`SPADEResBlock.unfuse_modulation`, after
diffusers' ``fuse_qkv_projections``): the two or three SPADEs of a block read the same conditioning map, so their
first convolutions run as one convolution, each SPADE's γ and β convolutions as one with 2C outputs (the ``1 +`` of
``1 + γ`` folded into its bias), the modulation is one ``addcmul``, and with instance norm the input is normalised
once for ``norm_0`` and ``norm_s``. The block's forward is the same code either way; only where γ and β come from
differs.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from linecolor.models._layers import (
    ReflectConv2d,
    conv,
    parameter_free_norm,
    reflect_pad,
    resize_to,
)


class SPADE(nn.Module):
    """Parameter-free norm, then per-pixel scale and shift predicted from a conditioning map.

    Args:
        channels: channels C of the normalised activation.
        cond_channels: channels K of the conditioning map.
        hidden_channels: width of the shared hidden layer of the modulation net (the paper: 128).
        norm: ``instance`` or ``batch``.
        latent_dim: size of the style latent z (0: no style input).
    """

    def __init__(self, channels: int, cond_channels: int, hidden_channels: int, norm: str = "instance",
                 latent_dim: int = 0):
        super().__init__()
        self.norm = parameter_free_norm(norm, channels)
        self.shared = conv(cond_channels, hidden_channels)
        self.style = nn.Linear(latent_dim, hidden_channels) if latent_dim else None
        self.to_gamma = conv(hidden_channels, channels)
        self.to_beta = conv(hidden_channels, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        cond = resize_to(cond, x.shape[-2:])  # (B, K, H, W)
        hidden = self.shared(cond)  # (B, hidden, H, W)
        if self.style is not None:
            if z is None:
                z = x.new_zeros(x.shape[0], self.style.in_features)
            hidden = hidden + self.style(z)[:, :, None, None]  # (B, hidden, 1, 1) broadcast
        hidden = F.relu(hidden)
        return self.norm(x) * (1 + self.to_gamma(hidden)) + self.to_beta(hidden)


Modulate = Callable[[int, torch.Tensor], torch.Tensor]
"""``modulate(i, t)``: SPADE number i of a block (0: ``norm_0``, 1: ``norm_1``, 2: ``norm_s``) applied to t."""


class SPADEResBlock(nn.Module):
    """Two SPADE → LeakyReLU(0.2) → 3×3 conv units with a residual shortcut.

    The block convolutions use spectral norm (as in SPADE). When ``in_channels != out_channels`` the shortcut is
    its own SPADE → 1×1 conv (learned shortcut); otherwise it is the identity.
    """

    def __init__(self, in_channels: int, out_channels: int, cond_channels: int, hidden_channels: int,
                 norm: str = "instance", latent_dim: int = 0):
        super().__init__()
        middle = min(in_channels, out_channels)
        self.learned_shortcut = in_channels != out_channels
        self.norm_0 = SPADE(in_channels, cond_channels, hidden_channels, norm, latent_dim)
        self.conv_0 = conv(in_channels, middle, spectral=True)
        self.norm_1 = SPADE(middle, cond_channels, hidden_channels, norm, latent_dim)
        self.conv_1 = conv(middle, out_channels, spectral=True)
        if self.learned_shortcut:
            self.norm_s = SPADE(in_channels, cond_channels, hidden_channels, norm, latent_dim)
            self.conv_s = conv(in_channels, out_channels, kernel_size=1, spectral=True, bias=False)
        self.fused: FusedModulation | None = None

    @property
    def spades(self) -> list[SPADE]:
        """The block's SPADEs in :data:`Modulate` order."""
        return [self.norm_0, self.norm_1] + ([self.norm_s] if self.learned_shortcut else [])

    def forward(self, x: torch.Tensor, cond: torch.Tensor, z: torch.Tensor | None = None, *,
                style_offset: torch.Tensor | None = None) -> torch.Tensor:
        """``style_offset``: with fused modulation, the block's style offsets (B, n·hidden) computed by the caller
        (the generator projects z for all blocks at once); ``z`` is then not used."""
        if self.fused is None:
            spades = self.spades

            def modulate(i: int, t: torch.Tensor) -> torch.Tensor:
                return spades[i](t, cond, z)
        else:
            modulate = self.fused.bind(x, cond, z, style_offset)
        shortcut = self.conv_s(modulate(2, x)) if self.learned_shortcut else x
        h = self.conv_0(F.leaky_relu(modulate(0, x), 0.2))
        h = self.conv_1(F.leaky_relu(modulate(1, h), 0.2))
        return shortcut + h

    def fuse_modulation(self) -> "SPADEResBlock":
        """Compute the SPADEs' modulation nets together (see the module docstring); for inference: the fused
        weights are copies, so training after fusing would not reach them. Returns the block."""
        self.fused = FusedModulation(self.spades)
        return self

    def unfuse_modulation(self) -> "SPADEResBlock":
        self.fused = None
        return self


class FusedModulation(nn.Module):
    """The modulation nets of one block's SPADEs as one shared convolution plus one [1 + γ, β] convolution per SPADE
    (built by :meth:`SPADEResBlock.fuse_modulation`)."""

    def __init__(self, spades: list[SPADE]):
        super().__init__()
        self.norms = [s.norm for s in spades]  # not submodules: they stay the SPADEs' own
        self.hidden = spades[0].shared.out_channels
        self.channels = [s.to_gamma.out_channels for s in spades]
        # With instance norm (parameter-free) norm_0 and norm_s compute the same function of the same input.
        self.shared_norm = all(isinstance(s.norm, nn.InstanceNorm2d) for s in spades)
        with torch.no_grad():
            self.shared = _conv_from(torch.cat([s.shared.weight for s in spades]),
                                     torch.cat([s.shared.bias for s in spades]))
            self.has_style = spades[0].style is not None
            bias_no_z = self.shared.bias.detach().clone()  # z = None means zeros: only the style bias is left
            if self.has_style:
                self.style = nn.Linear(spades[0].style.in_features, len(spades) * self.hidden)
                self.style.weight.copy_(torch.cat([s.style.weight for s in spades]))
                self.style.bias.copy_(torch.cat([s.style.bias for s in spades]))
                bias_no_z += self.style.bias
            self.register_buffer("shared_bias_no_z", bias_no_z)
            self.mods = nn.ModuleList(
                _conv_from(torch.cat([s.to_gamma.weight, s.to_beta.weight]),
                           torch.cat([s.to_gamma.bias + 1, s.to_beta.bias])) for s in spades)

    def bind(self, x: torch.Tensor, cond: torch.Tensor, z: torch.Tensor | None,
             style_offset: torch.Tensor | None) -> Modulate:
        """Run the shared modulation convolutions for block input ``x`` once; return the block's ``modulate``."""
        cond = resize_to(cond, x.shape[-2:])  # (B, K, H, W)
        if style_offset is None and self.has_style and z is not None:
            style_offset = self.style(z)  # (B, n·hidden)
        if style_offset is None:
            hidden = F.relu(F.conv2d(reflect_pad(cond, 1), self.shared.weight, self.shared_bias_no_z), inplace=True)
        else:
            hidden = F.relu(self.shared(cond) + style_offset[:, :, None, None])  # (B, n·hidden, H, W)
        k = self.hidden
        mods = [m(hidden[:, i * k:(i + 1) * k]) for i, m in enumerate(self.mods)]  # each (B, 2C, H, W)
        normed_x: list[torch.Tensor] = []

        def modulate(i: int, t: torch.Tensor) -> torch.Tensor:
            if t is x and self.shared_norm:
                if not normed_x:
                    normed_x.append(self.norms[i](t))
                n = normed_x[0]
            else:
                n = self.norms[i](t)
            c = self.channels[i]
            return torch.addcmul(mods[i][:, c:], n, mods[i][:, :c])  # β + norm(t) · (1 + γ)

        return modulate


def _conv_from(weight: torch.Tensor, bias: torch.Tensor) -> ReflectConv2d:
    """A stride-1 :class:`ReflectConv2d` holding copies of the given (out, in, k, k) weight and bias."""
    out_c, in_c, k, _ = weight.shape
    layer = ReflectConv2d(in_c, out_c, k)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer
