"""Training losses: hinge GAN, discriminator feature matching, reconstruction (KL lives with the style encoder).

Discriminator outputs follow :mod:`linecolor.models.discriminator`: a list over scales of lists of feature
maps whose last entry is the patch score.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def hinge_discriminator_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """mean(relu(1 − D(real))) + mean(relu(1 + D(fake))), averaged over scales."""
    total = sum(F.relu(1 - r[-1]).mean() + F.relu(1 + f[-1]).mean() for r, f in zip(real, fake))
    return total / len(real)


def hinge_generator_loss(fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """−mean(D(fake)), averaged over scales."""
    return -sum(f[-1].mean() for f in fake) / len(fake)


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """L1 between discriminator features of real and fake (all but the score), averaged over scales."""
    total = fake[0][0].new_zeros(())
    for r_scale, f_scale in zip(real, fake):
        for r, f in zip(r_scale[:-1], f_scale[:-1]):
            total = total + F.l1_loss(f, r.detach())
    return total / len(real)


def reconstruction_loss(output: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """L1 or L2 (mean squared error) between (B, 3, H, W) images in [-1, 1]."""
    if kind == "l1":
        return F.l1_loss(output, target)
    if kind == "l2":
        return F.mse_loss(output, target)
    raise ValueError(f"unknown reconstruction loss {kind!r}; valid: l1, l2")


def hint_adherence_loss(output: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """Mean L1 between ``output`` (B, 3, H, W) and the hint colours of ``cond`` (channels 1–3, mask channel 4) over
    hinted pixels; 0 for a batch without hints."""
    mask = cond[:, 4:5]
    hinted = mask.sum() * output.shape[1]
    return ((output - cond[:, 1:4]).abs() * mask).sum() / hinted.clamp_min(1.0)
