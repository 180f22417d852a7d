"""The networks. One module each; every module opens with its tensor contract.

* :mod:`~linecolor.models.spade` — SPADE normalisation and residual block
* :mod:`~linecolor.models.ladder_encoder` — learned multi-resolution conditioning (the paper's netL)
* :mod:`~linecolor.models.generator` — the SPADE generator, variants ``ladder`` and ``spade`` (:data:`GENERATORS`)
* :mod:`~linecolor.models.style_encoder` — VAE style encoder (z for stochastic / reference modes)
* :mod:`~linecolor.models.discriminator` — multi-scale PatchGAN (training only)
* :mod:`~linecolor.models.perceptual` — ResNet features for the optional perceptual loss
* :mod:`~linecolor.models.colorizer` — generator + style encoder with ``save_pretrained``/``from_pretrained``
* :mod:`~linecolor.models.saved` — the saved directory's config and digests, read without torch

The exports below are lazy (PEP 562): importing ``linecolor.models.saved`` must not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"Colorizer": "colorizer", "MultiScaleDiscriminator": "discriminator", "GENERATORS": "generator",
            "LadderGenerator": "generator", "SPADEGenerator": "generator", "build_generator": "generator",
            "StyleEncoder": "style_encoder"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"linecolor.models.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'linecolor.models' has no attribute {name!r}")
