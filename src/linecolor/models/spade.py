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
5-channel input, resized.

The style latent z enters every modulation net as a learned per-channel offset of its hidden layer (equivalent to
concatenating a broadcast z to the conditioning map, without paying for extra input channels at full resolution).
It has to act on γ and β: an offset added to the activations themselves would be erased by the next normalisation.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from linecolor.models._layers import conv, parameter_free_norm, resize_to


class SPADE(nn.Module):
    """Parameter-free norm, then per-pixel scale and shift predicted from a conditioning map.

    Args:
        channels: channels C of the normalised activation.
        cond_channels: channels K of the conditioning map.
        hidden_channels: width of the shared hidden layer of the modulation net (the paper: 128).
        norm: ``instance`` or ``batch``.
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

    def forward(self, x: torch.Tensor, cond: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, cond, z)) if self.learned_shortcut else x
        h = self.conv_0(F.leaky_relu(self.norm_0(x, cond, z), 0.2))
        h = self.conv_1(F.leaky_relu(self.norm_1(h, cond, z), 0.2))
        return shortcut + h
