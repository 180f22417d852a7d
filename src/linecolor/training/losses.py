"""Training losses: hinge GAN, discriminator feature matching, reconstruction, hint adherence, region colours and
latent diversity (KL lives with the style encoder).

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


def region_flattened(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) ``output`` with every pixel of a region (``labels`` from :func:`region_labels`) replaced by the
    region's mean colour, ink (label 0) by the mean of all ink: what the ``regions`` composite makes of an output."""
    b, c, h, w = output.shape
    flat = labels.reshape(-1)
    n = int(flat.max().item()) + 1 if flat.numel() else 1
    pixels = output.permute(0, 2, 3, 1).reshape(-1, c)
    counts = torch.bincount(flat, minlength=n).to(output.dtype)
    means = output.new_zeros(n, c).index_add_(0, flat, pixels) / counts.clamp_min(1)[:, None]
    return means[flat].reshape(b, h, w, c).permute(0, 3, 1, 2)


def unhinted_paper(cond: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) float mask of paper outside every hinted region of a fill-guided batch (``cond`` with 9
    channels: line > 0 and fill mask 0, see :mod:`linecolor.inference.conditioning`) — where the style latent, not
    the user, decides the colour."""
    if cond.shape[1] < 9:
        raise ValueError("unhinted_paper needs the fill-guide channels (GeneratorConfig.fill_guide)")
    return ((cond[:, :1] > 0) & (cond[:, 8:9] <= 0)).to(cond.dtype)


def masked_l1(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean L1 between (B, 3, H, W) images over the pixels of a (B, 1, H, W) mask; 0 for an empty mask."""
    count = mask.sum() * output.shape[1]
    return ((output - target).abs() * mask).sum() / count.clamp_min(1.0)


def diversity_loss(first: torch.Tensor, second: torch.Tensor, z_first: torch.Tensor, z_second: torch.Tensor,
                   mask: torch.Tensor, target_ratio: float, latent_cap: float | None = None) -> torch.Tensor:
    """Mode-seeking term (Mao et al., CVPR 2019): two latents must give outputs whose mean L1 distance over
    ``mask`` (B, 1, H, W) is at least ``target_ratio`` times the latents' mean L1 distance (capped at
    ``latent_cap`` when given), per sample.

    A hinge (``relu(target − ratio)``) rather than the paper's ``1 / ratio``: past the target the term stops
    pushing, so the colours a latent picks stay plausible instead of drifting to the gamut's edges. Samples without
    masked pixels count as 0."""
    area = mask.sum(dim=(1, 2, 3))
    distance = ((first - second).abs().mean(dim=1, keepdim=True) * mask).sum(dim=(1, 2, 3)) / area.clamp_min(1.0)
    latent_distance = (z_first - z_second).abs().mean(dim=1).clamp_min(1e-3)
    if latent_cap is not None:
        latent_distance = latent_distance.clamp_max(latent_cap)
    shortfall = torch.relu(target_ratio - distance / latent_distance) * (area > 0).to(first.dtype)
    return shortfall.mean()
