"""Small building blocks shared by the networks.

Every convolution pads by reflection: in [-1, 1] space a zero pad is mid-grey, and on mostly white line art
that paints grey frames around the output (the paper's reason for reflection padding).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm


class ReflectConv2d(nn.Conv2d):
    """Conv2d that pads by reflection, or by replication where a map is too small to reflect.

    Reflection needs more pixels than the pad on each side; a very wide or tall drawing gives the size/32 grid a
    side of one pixel, where torch's ``padding_mode="reflect"`` raises. Replication is the nearest valid choice.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=bias)
        self.pad = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            p = self.pad
            mode = "reflect" if min(x.shape[-2:]) > p else "replicate"
            x = F.pad(x, (p, p, p, p), mode=mode)
        return super().forward(x)


def conv(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, *,
         spectral: bool = False, bias: bool = True) -> nn.Module:
    """A reflection-padded convolution ("same" size for stride 1, halves the size for stride 2)."""
    layer = ReflectConv2d(in_channels, out_channels, kernel_size, stride=stride, bias=bias)
    return spectral_norm(layer) if spectral else layer


def parameter_free_norm(kind: str, channels: int) -> nn.Module:
    """Normalisation without learned affine parameters: SPADE supplies the scale and shift instead."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    raise ValueError(f"unknown norm {kind!r}; valid: instance, batch")


def resize_to(x: torch.Tensor, size: tuple[int, int], mode: str = "nearest") -> torch.Tensor:
    """Resize (B,C,h,w) to (B,C,*size); a no-op when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return nn.functional.interpolate(x, size=size, mode=mode)
