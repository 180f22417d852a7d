"""Training losses: hinge GAN, discriminator feature matching, reconstruction (KL lives with the style encoder).

Discriminator outputs follow :mod:`linecolor.models.discriminator`: a list over scales of lists of feature
maps whose last entry is the patch score.
"""

from __future__ import annotations

import numpy as np
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


def region_labels(line: torch.Tensor) -> torch.Tensor:
    """int64 (B, H, W) labels of the 4-connected paper regions of a batch's line channel (``cond[:, 0]``: paper > 0),
    numbered across the batch (0 = ink). Computed with ``scipy.ndimage.label`` on the CPU (a few ms per batch)."""
    from scipy import ndimage

    paper = (line > 0).cpu().numpy()
    labels = np.zeros(paper.shape, np.int64)
    offset = 0
    for b in range(paper.shape[0]):
        lab, n = ndimage.label(paper[b])
        labels[b] = np.where(lab > 0, lab + offset, 0)
        offset += n
    return torch.from_numpy(labels).to(line.device)


def region_colour_loss(output: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Area-weighted mean over regions (``labels`` from :func:`region_labels`, 0 ignored) of the L1 distance between
    the region's mean ``output`` colour and its mean ``target`` colour ((B, 3, H, W) in [-1, 1]); 0 without
    regions."""
    c = output.shape[1]
    flat = labels.reshape(-1)
    n = int(flat.max().item()) + 1 if flat.numel() else 1
    out = output.permute(0, 2, 3, 1).reshape(-1, c)
    tgt = target.permute(0, 2, 3, 1).reshape(-1, c)
    counts = torch.bincount(flat, minlength=n).to(output.dtype)
    mean_out = output.new_zeros(n, c).index_add_(0, flat, out) / counts.clamp_min(1)[:, None]
    mean_tgt = output.new_zeros(n, c).index_add_(0, flat, tgt) / counts.clamp_min(1)[:, None]
    weights = counts[1:] / counts[1:].sum().clamp_min(1)
    return ((mean_out[1:] - mean_tgt[1:]).abs().mean(dim=1) * weights).sum()
