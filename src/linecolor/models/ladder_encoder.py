"""The ladder encoder ("netL" of SPADE-based Line Art Colorization, KAIST 2019).

Line art and hints are sparse: ~90 % of a line drawing is white, and resizing the raw map to a
SPADE block's low resolution loses nearly every line and small hint. The ladder encoder learns
the down-sampling instead: a conv → norm → LeakyReLU unit at full resolution, then one stride-2
unit per halving, and hands every generator block the feature map of its own resolution. It is
not a U-Net: line information reaches the decoder only through SPADE modulation.

Contract:
    forward(cond): cond (B, 5 or 9, H, W): the generator's conditioning (see :mod:`linecolor.models.generator`),
                   H and W multiples of 2**num_downsamples
    → dict {factor: (B, channels, H/factor, W/factor)} for factor in 1, 2, 4, …, 2**num_downsamples.
"""

from __future__ import annotations

import torch
from torch import nn

from linecolor.models._layers import InstanceNorm2d, conv


class LadderEncoder(nn.Module):
    """Learned multi-resolution conditioning maps.

    Args:
        in_channels: conditioning channels (5, or 9 with the fill guide).
        channels: channels of every output map (the paper: nf per stage).
        num_downsamples: number of stride-2 stages (5: full size down to size/32).
    """

    def __init__(self, in_channels: int = 5, channels: int = 16, num_downsamples: int = 5):
        super().__init__()
        self.num_downsamples = num_downsamples
        self.stem = self._unit(in_channels, channels, stride=1)
        self.downs = nn.ModuleList(self._unit(channels, channels, stride=2) for _ in range(num_downsamples))

    @staticmethod
    def _unit(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
        return nn.Sequential(conv(in_channels, out_channels, 3, stride=stride),
                             InstanceNorm2d(out_channels, affine=True),
                             nn.LeakyReLU(0.2, inplace=True))

    def forward(self, cond: torch.Tensor) -> dict[int, torch.Tensor]:
        h = self.stem(cond)  # (B, C, H, W)
        maps = {1: h}
        for i, down in enumerate(self.downs, start=1):
            h = down(h)  # (B, C, H / 2**i, W / 2**i)
            maps[2**i] = h
        return maps
