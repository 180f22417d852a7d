"""Small building blocks shared by the networks.

Every convolution pads by reflection: in [-1, 1] space a zero pad is mid-grey, and on mostly white line art
that paints grey frames around the output (the paper's reason for reflection padding).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
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
        return super().forward(reflect_pad(x, self.pad))


def reflect_pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """Pad (B, C, H, W) by ``p`` on every side as :class:`ReflectConv2d` does (no-op for ``p`` = 0)."""
    if not p:
        return x
    mode = "reflect" if min(x.shape[-2:]) > p else "replicate"
    return F.pad(x, (p, p, p, p), mode=mode)


class InstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` (same parameters and state-dict keys) that can spell itself out for ONNX export.

    With ``two_pass`` set (:func:`use_two_pass_norm`) the statistics are taken as row means, then the mean of those,
    and the same for the squared deviations. Why: exported to ONNX, onnxruntime's CPU kernels
    (``InstanceNormalization``, or a ``ReduceMean`` over H·W) sum all H·W values in one float32 accumulator and the
    error grows with the map, while sums of one row and then of the row means stay as close to torch's own kernel
    as torch is to float64 (figures in docs/measurements.md). In eager PyTorch both give the same function.
    """

    two_pass: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.two_pass or self.track_running_stats:
            return super().forward(x)
        mean = x.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)  # (B, C, 1, 1): row means first
        centred = x - mean
        var = (centred * centred).mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)  # biased, as torch's
        out = centred * torch.rsqrt(var + self.eps)
        if self.affine:
            out = out * self.weight[:, None, None] + self.bias[:, None, None]
        return out


def use_two_pass_norm(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch every :class:`InstanceNorm2d` inside ``module`` to (or back from) the two-pass form; returns it."""
    for m in module.modules():
        if isinstance(m, InstanceNorm2d):
            m.two_pass = enabled
    return module


_SHAPES_ONLY = contextvars.ContextVar("linecolor_shapes_only", default=False)


@contextlib.contextmanager
def shapes_only() -> Iterator[None]:
    """Build networks for their parameter shapes alone (counting parameters on the meta device).

    Spectral norm is left out inside: it adds no parameter (the weight stays one parameter, ``original``; its
    vectors u, v are buffers), but its construction runs a power iteration that on the meta device goes through
    ``torch._refs`` and imports ``torch._dynamo``: 5 s of a 5.4 s cold start, against 0.07 s without it.
    """
    token = _SHAPES_ONLY.set(True)
    try:
        yield
    finally:
        _SHAPES_ONLY.reset(token)


def conv(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, *,
         spectral: bool = False, bias: bool = True) -> nn.Module:
    """A reflection-padded convolution ("same" size for stride 1, halves the size for stride 2)."""
    layer = ReflectConv2d(in_channels, out_channels, kernel_size, stride=stride, bias=bias)
    return spectral_norm(layer) if spectral and not _SHAPES_ONLY.get() else layer


def fold_spectral_norm(module: nn.Module) -> nn.Module:
    """Replace every spectral-norm parametrisation inside ``module`` by the plain weight it yields in eval mode.

    In eval mode spectral norm divides the stored weight by σ estimated from the stored vectors u, v on every
    call; folded, the division is done once. The eval-mode function is unchanged, but training the module
    afterwards would no longer normalise, so fold only copies meant for inference (irreversible; returns
    ``module``). Raises if the module is in train mode, where reading the weight would run a power iteration.
    """
    if module.training:
        raise ValueError("fold_spectral_norm needs a module in eval mode (train mode would run a power iteration)")
    for m in list(module.modules()):
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return module


def parameter_free_norm(kind: str, channels: int) -> nn.Module:
    """Normalisation without learned affine parameters: SPADE supplies the scale and shift instead."""
    if kind == "instance":
        return InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    raise ValueError(f"unknown norm {kind!r}; valid: instance, batch")


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of (B, C, h, w) to (B, C, *size); a no-op when the size already matches.

    A down-scale by a whole factor f is the slice ``[::f, ::f]``: nearest neighbour samples source index
    ⌊i·h/H⌋ = i·f, so the slice gives exactly what ``F.interpolate`` would, without its kernel.
    """
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    fy, fx = h // size[0], w // size[1]
    if fy >= 1 and fy == fx and (h, w) == (size[0] * fy, size[1] * fx):
        return x[:, :, ::fy, ::fx]
    return F.interpolate(x, size=size, mode="nearest")
