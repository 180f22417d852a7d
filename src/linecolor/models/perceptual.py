"""ResNet feature extractor for the (optional) perceptual loss.

The paper replaced ImageNet VGG by a Danbooru-pretrained ResNet, because illustrations are not photos.
No pretrained network can be downloaded here, so the ResNet is defined in the project (torchvision has no
CPU build on these machines) and its weights come from a user-supplied safetensors file whose metadata names
the architecture. Loading never unpickles and is strict: any missing or unexpected tensor is an error.

Contract:
    forward(image): image (B, 3, H, W) RGB in [-1, 1]
    → list of 4 feature maps (after each residual stage), (B, widths[i], H/2**(i+2), W/2**(i+2)).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from linecolor.errors import WeightsError


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + identity)


class ResNetFeatures(nn.Module):
    """A ResNet (basic blocks; ``layers=(2,2,2,2)`` is ResNet-18) returning the four stage outputs.

    Args:
        layers: residual blocks per stage.
        widths: channels per stage.
        mean, std: per-channel input normalisation the weights were trained with (applied to [0, 1] RGB).
    """

    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2), widths: tuple[int, ...] = (64, 128, 256, 512),
                 mean: tuple[float, ...] = (0.485, 0.456, 0.406), std: tuple[float, ...] = (0.229, 0.224, 0.225)):
        super().__init__()
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(f"ResNetFeatures needs 4 stages, got layers={layers} widths={widths}")
        self.layers_spec, self.widths_spec = tuple(layers), tuple(widths)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages = []
        cin = widths[0]
        for i, (n, w) in enumerate(zip(layers, widths)):
            blocks = [_BasicBlock(cin, w, 1 if i == 0 else 2)] + [_BasicBlock(w, w, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = w
        self.stages = nn.ModuleList(stages)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = ((image + 1) / 2 - self.mean) / self.std
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)  # (B, w0, H/4, W/4)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features

    def save(self, path: str | Path) -> None:
        """Write the weights as safetensors with the architecture in the metadata."""
        meta = {"layers": ",".join(map(str, self.layers_spec)), "widths": ",".join(map(str, self.widths_spec))}
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path), metadata=meta)

    @classmethod
    def from_file(cls, path: str | Path) -> "ResNetFeatures":
        """Load a frozen, eval-mode extractor from a safetensors file written by :meth:`save` (or converted to
        the same key names). Raises :class:`WeightsError` for a missing, non-safetensors or mismatched file."""
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"perceptual weights not found: {path}")
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"perceptual weights {path}: not a readable safetensors file ({exc})") from exc
        try:
            layers = tuple(int(v) for v in meta.get("layers", "2,2,2,2").split(","))
            widths = tuple(int(v) for v in meta.get("widths", "64,128,256,512").split(","))
            model = cls(layers, widths)
            model.load_state_dict(state, strict=True)
        except (ValueError, RuntimeError) as exc:
            raise WeightsError(f"perceptual weights {path} do not match the ResNet they declare: {exc}") from exc
        model.eval().requires_grad_(False)
        return model


class PerceptualLoss(nn.Module):
    """Mean L1 distance between ResNet features of output and target, over the four stages."""

    def __init__(self, features: ResNetFeatures):
        super().__init__()
        self.features = features.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        # The extractor's batch norms must keep their pretrained statistics whatever the trainer's mode.
        super().train(mode)
        self.features.eval()
        return self

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fo, ft = self.features(output), self.features(target)
        return sum(F.l1_loss(a, b.detach()) for a, b in zip(fo, ft)) / len(fo)
