"""The style encoder: the VAE half that turns a colour image into a style latent z.

Contract:
    forward(image): image (B, 3, H, W) RGB in [-1, 1], any size (resized to ``input_size`` square, bilinear)
    → (mu, logvar), each (B, latent_dim), unbounded reals.

Six stride-2 conv (spectral norm) → LeakyReLU(0.2) stages take ``input_size`` down to ``input_size/64``; two
linear heads give μ and log σ². There is deliberately no instance norm: it subtracts each channel's mean, which is
exactly the global colour a style latent must capture (a flat red and a flat blue image would encode alike). Training samples z = μ + σ·ε (:func:`reparameterize`) and pulls q(z|x) towards
N(0, I) with a KL term, so at inference z ~ N(0, I) is a plausible style (stochastic mode), z = 0 the average
style (deterministic mode), and z = μ(reference) borrows a reference image's palette (reference mode).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from linecolor.config import StyleEncoderConfig
from linecolor.models._layers import conv


class StyleEncoder(nn.Module):
    """Colour image → (μ, log σ²) of the style latent."""

    def __init__(self, config: StyleEncoderConfig, latent_dim: int):
        super().__init__()
        self.config = config
        nf = config.base_channels
        widths = [nf * m for m in (1, 2, 4, 8, 8, 8)]
        layers: list[nn.Module] = []
        cin = 3
        for cout in widths:
            layers += [conv(cin, cout, 3, stride=2, spectral=True), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        flat = widths[-1] * (config.input_size // 64) ** 2
        self.to_mu = nn.Linear(flat, latent_dim)
        self.to_logvar = nn.Linear(flat, latent_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"style encoder expects (B, 3, H, W), got {tuple(image.shape)}")
        s = self.config.input_size
        if image.shape[-2:] != (s, s):
            image = F.interpolate(image, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        h = self.features(image).flatten(1)  # (B, 8nf · (s/64)²)
        # Clamped so exp(logvar) and exp(0.5·logvar) can never overflow in the KL term or the reparameterisation.
        return self.to_mu(h), self.to_logvar(h).clamp(-20.0, 10.0)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = μ + σ·ε with ε ~ N(0, I) drawn from ``generator`` (explicit randomness)."""
    # ε is drawn on the generator's device (a CPU generator keeps runs repeatable across devices), then moved.
    gen_device = generator.device if generator is not None else mu.device
    eps = torch.randn(mu.shape, generator=generator, device=gen_device, dtype=torch.float32).to(mu.device, mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)), summed over latent dimensions and averaged over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(dim=1).mean()
