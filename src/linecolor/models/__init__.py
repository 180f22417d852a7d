"""The networks. One module each; every module opens with its tensor contract.

* :mod:`~linecolor.models.spade` — SPADE normalisation and residual block
* :mod:`~linecolor.models.ladder_encoder` — learned multi-resolution conditioning (the paper's netL)
* :mod:`~linecolor.models.generator` — the SPADE generator, variants ``ladder`` and ``spade`` (:data:`GENERATORS`)
* :mod:`~linecolor.models.style_encoder` — VAE style encoder (z for stochastic / reference modes)
* :mod:`~linecolor.models.discriminator` — multi-scale PatchGAN (training only)
* :mod:`~linecolor.models.perceptual` — ResNet features for the optional perceptual loss
* :mod:`~linecolor.models.colorizer` — generator + style encoder with ``save_pretrained``/``from_pretrained``
"""

from linecolor.models.colorizer import Colorizer
from linecolor.models.discriminator import MultiScaleDiscriminator
from linecolor.models.generator import GENERATORS, LadderGenerator, SPADEGenerator, build_generator
from linecolor.models.style_encoder import StyleEncoder

__all__ = ["GENERATORS", "Colorizer", "LadderGenerator", "MultiScaleDiscriminator", "SPADEGenerator",
           "StyleEncoder", "build_generator"]
