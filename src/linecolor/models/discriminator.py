"""Multi-scale PatchGAN discriminator (training only).

Contract:
    forward(cond, image): cond (B, 5 or 9, H, W) conditioning as the generator gets it; image (B, 3, H, W) RGB in [-1, 1]
    → list over scales of lists of feature maps; the last map of each scale is the (B, 1, h, w) patch score
      (unbounded real, > 0 = "real" under the hinge loss). Earlier maps feed the feature-matching loss.

Each scale is a PatchGAN of ``num_layers`` 4×4 convolutions (stride 2 except the last, spectral norm, instance
norm after the first, LeakyReLU 0.2) and a 1-channel 4×4 output conv. Scale k sees the input average-pooled k times.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from linecolor.config import DiscriminatorConfig
from linecolor.models._layers import conv


class PatchDiscriminator(nn.Module):
    """One PatchGAN returning every intermediate activation."""

    def __init__(self, in_channels: int, base_channels: int, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList()
        cin, cout = in_channels, base_channels
        for i in range(num_layers):
            stride = 2 if i < num_layers - 1 else 1
            unit: list[nn.Module] = [conv(cin, cout, 4, stride=stride, spectral=True)]
            if i > 0:
                unit.append(nn.InstanceNorm2d(cout, affine=False))
            unit.append(nn.LeakyReLU(0.2, inplace=False))
            self.layers.append(nn.Sequential(*unit))
            cin, cout = cout, min(cout * 2, base_channels * 8)
        self.layers.append(nn.Sequential(conv(cin, 1, 4, spectral=True)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


class MultiScaleDiscriminator(nn.Module):
    """``num_scales`` PatchGANs on successively 2× down-sampled [cond, image]."""

    def __init__(self, config: DiscriminatorConfig, cond_channels: int = 5, image_channels: int = 3):
        super().__init__()
        self.config = config
        self.scales = nn.ModuleList(
            PatchDiscriminator(cond_channels + image_channels, config.base_channels, config.num_layers)
            for _ in range(config.num_scales)
        )

    def forward(self, cond: torch.Tensor, image: torch.Tensor) -> list[list[torch.Tensor]]:
        x = torch.cat([cond, image], dim=1)  # (B, 8, H, W)
        outputs = []
        for i, scale in enumerate(self.scales):
            if i > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)  # (B, 8, H/2**i, W/2**i)
            outputs.append(scale(x))
        return outputs
