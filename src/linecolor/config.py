"""Typed, frozen configuration dataclasses, one per concern, and their TOML/JSON loading.

Networks take their own small config (``GeneratorConfig`` …), never a command-line namespace. Every
dataclass validates itself in ``__post_init__`` and raises one :class:`~linecolor.errors.ConfigError`
listing *every* problem it found. Loading a file or a ``section.key=value`` override names misspelled
keys and suggests the closest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linecolor.errors import ConfigError
from linecolor.limits import MAX_CONFIG_FILE_BYTES, MAX_IMAGE_PIXELS

GENERATOR_VARIANTS = ("ladder", "spade")
NORM_TYPES = ("instance", "batch")
DIVERSITY_PAIRS = ("posterior", "prior")

# Architecture bounds, checked before any layer is allocated: a config.json (or --config) asking for 10⁹ channels
# must be refused with a message, not met with gigabytes of allocation. They sit well above anything trained here:
# the paper's model is base_channels 64 with 1024-channel blocks at 256².
MAX_BASE_CHANNELS = 256
MAX_BLOCK_CHANNELS = 2048
MAX_LATENT_DIM = 4096
MAX_WORKING_SIZE = 2048


def _check(problems: list[str], ok: bool, message: str) -> None:
    if not ok:
        problems.append(message)


def _is_unspecified_address(host: str) -> bool:
    """Whether ``host`` is the any-interface address (IPv4 all zeros)."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:  # a host name
        return False


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(problems: list[str], name: str, value: Any, lo: int, hi: int) -> None:
    _check(problems, _is_int(value) and lo <= value <= hi, f"{name} must be an integer from {lo} to {hi}, got "
                                                           f"{value!r}")


def _raise_if(problems: list[str], owner: str) -> None:
    if problems:
        raise ConfigError([f"{owner}: {p}" for p in problems])


# --------------------------------------------------------------------------------------------- model
BLOCK_FACTORS = (32, 16, 16, 8, 4, 2, 1)
"""Resolution of each generator block as a down-sampling factor of the output size (here, beside the config, so the
torch-free graph runner can tell a drawing's padding regime, :mod:`linecolor.inference.graph`)."""


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of the colourisation generator (SPADE decoder + optional ladder encoder)."""

    variant: str = "ladder"
    """``ladder`` (conditioning maps from the learned ladder encoder, the paper's method) or ``spade``
    (the original SPADE: the raw 5-channel input resized to every block)."""
    base_channels: int = 16
    """Width knob ``nf``. Block widths are 16nf,16nf,16nf,8nf,4nf,2nf,nf from size/32 up to size (capped by
    ``max_channels``). 64 is the paper's size, 16 a CPU-interactive size, 4 a test-sized model."""
    max_channels: int = 1024
    """Upper bound for any block's width (the paper-size model reaches 1024 = 16·64)."""
    spade_hidden_channels: int = 32
    """Hidden width of each SPADE modulation net (the paper used 128)."""
    ladder_channels: int | None = None
    """Channels of every ladder-encoder feature map; ``None`` means ``base_channels``."""
    norm: str = "instance"
    """Parameter-free normalisation inside SPADE: ``instance`` or ``batch``."""
    latent_dim: int = 256
    """Size of the style latent z (the VAE's output)."""
    use_style_latent: bool = True
    """Whether the generator takes a style latent z at all. Without it only deterministic mode exists."""
    binarize_line: bool = True
    """Threshold the line art to pure ink/paper before it enters the network (the paper's conclusion: grey-level
    line perturbations leak colour)."""
    fill_guide: bool = False
    """Also give the network the region fill of the hints (:mod:`linecolor.raster.fill`: fill RGB (3) + filled mask (1))
    and make its output a correction on top of that fill, so training starts from the paint-bucket answer instead
    of from grey. The pipeline then lays the full-resolution fill back on at the output size."""

    @property
    def in_channels(self) -> int:
        """Conditioning channels: line (1) + hint RGB (3) + hint mask (1) [+ fill RGB (3) + filled mask (1)]."""
        return 9 if self.fill_guide else 5

    @property
    def num_blocks(self) -> int:
        """SPADE residual blocks: head at size/32, two at size/16, then one per doubling up to full size."""
        return 7

    @property
    def downsample_factor(self) -> int:
        """The working size must be a multiple of this (the trunk starts at size/32)."""
        return 32

    @property
    def block_channels(self) -> tuple[int, ...]:
        """Output width of each of the 7 blocks, from size/32 to full size."""
        nf = self.base_channels
        return tuple(min(m * nf, self.max_channels) for m in (16, 16, 16, 8, 4, 2, 1))

    @property
    def cond_channels(self) -> int:
        return self.ladder_channels if self.ladder_channels is not None else self.base_channels

    def __post_init__(self) -> None:
        p: list[str] = []
        _check(p, self.variant in GENERATOR_VARIANTS,
               f"unknown generator variant {self.variant!r}; valid variants: {', '.join(GENERATOR_VARIANTS)}")
        _check_int(p, "base_channels", self.base_channels, 1, MAX_BASE_CHANNELS)
        _check_int(p, "max_channels", self.max_channels, 1, MAX_BLOCK_CHANNELS)
        _check_int(p, "spade_hidden_channels", self.spade_hidden_channels, 1, MAX_BLOCK_CHANNELS)
        if self.ladder_channels is not None:
            _check_int(p, "ladder_channels", self.ladder_channels, 1, MAX_BLOCK_CHANNELS)
        _check(p, self.norm in NORM_TYPES, f"norm must be one of {', '.join(NORM_TYPES)}, got {self.norm!r}")
        _check_int(p, "latent_dim", self.latent_dim, 1, MAX_LATENT_DIM)
        for name in ("use_style_latent", "binarize_line", "fill_guide"):
            value = getattr(self, name)
            _check(p, isinstance(value, bool), f"{name} must be true or false, got {value!r}")
        _raise_if(p, "generator")


@dataclass(frozen=True)
class StyleEncoderConfig:
    """The VAE style encoder: six stride-2 convolutions on a colour image → μ, log σ² of z."""

    base_channels: int = 16
    """Width of the first convolution; doubles per stage up to 8× this."""
    input_size: int = 128
    """Colour images are resized to this square size before encoding."""

    def __post_init__(self) -> None:
        p: list[str] = []
        _check_int(p, "base_channels", self.base_channels, 1, MAX_BASE_CHANNELS)
        _check(p, _is_int(self.input_size) and 64 <= self.input_size <= MAX_WORKING_SIZE and self.input_size % 64 == 0,
               f"input_size must be a multiple of 64 (six stride-2 stages) up to {MAX_WORKING_SIZE}, "
               f"got {self.input_size!r}")
        _raise_if(p, "style_encoder")


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Multi-scale PatchGAN discriminator on [conditioning, image]."""

    base_channels: int = 64
    """Width of the first layer; doubles per layer up to 8× this."""
    num_scales: int = 2
    """Number of image scales (each a separate PatchGAN; the next scale sees a 2× average-pooled input)."""
    num_layers: int = 4
    """Convolution layers per PatchGAN (before the 1-channel output layer)."""

    def __post_init__(self) -> None:
        p: list[str] = []
        _check_int(p, "base_channels", self.base_channels, 1, MAX_BLOCK_CHANNELS)
        _check_int(p, "num_scales", self.num_scales, 1, 8)
        _check_int(p, "num_layers", self.num_layers, 1, 12)
        _raise_if(p, "discriminator")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the inference model (saved as ``config.json`` beside the weights)."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    style_encoder: StyleEncoderConfig = field(default_factory=StyleEncoderConfig)
    working_size: int = 256
    """Long side, in pixels, at which the network runs; the input is letterboxed to a multiple of 32."""

    def __post_init__(self) -> None:
        p: list[str] = []
        m = self.generator.downsample_factor
        # At least 2·m so the trunk's first grid has more than one pixel (instance norm needs two).
        _check(p, _is_int(self.working_size) and 2 * m <= self.working_size <= MAX_WORKING_SIZE
               and self.working_size % m == 0,
               f"working_size must be a multiple of {m} from {2 * m} to {MAX_WORKING_SIZE}, got {self.working_size!r}")
        _raise_if(p, "model")


# ---------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class HintConfig:
    """Simulated user hints during training (after Zhang et al. 2017)."""

    continue_probability: float = 7 / 8
    """After each hint, add another with this probability (geometric count: mean p/(1-p) = 7, P(0) = 1-p)."""
    max_hints: int = 64
    """Hard cap on the number of hints per image."""
    patch_min: int = 2
    """Smallest square patch side in pixels, at ``reference_size``."""
    patch_max: int = 20
    """Largest square patch side in pixels, at ``reference_size`` (inclusive)."""
    reference_size: int = 256
    """Patch sides scale with min(H, W) / reference_size so hints look the same at every training size."""
    position: str = "gaussian"
    """``gaussian`` (centred, σ = side/4 of the image, clipped) or ``uniform``."""
    gaussian_sigma: float = 0.25
    """σ of the Gaussian position, as a fraction of the image side."""

    def __post_init__(self) -> None:
        p: list[str] = []
        _check(p, 0.0 <= self.continue_probability < 1.0,
               f"continue_probability must be in [0, 1), got {self.continue_probability!r}")
        _check(p, isinstance(self.max_hints, int) and self.max_hints >= 0,
               f"max_hints must be a non-negative integer, got {self.max_hints!r}")
        _check(p, isinstance(self.patch_min, int) and self.patch_min >= 1,
               f"patch_min must be a positive integer, got {self.patch_min!r}")
        _check(p, isinstance(self.patch_max, int) and self.patch_max >= self.patch_min,
               f"patch_max must be an integer >= patch_min ({self.patch_min}), got {self.patch_max!r}")
        _check(p, isinstance(self.reference_size, int) and self.reference_size >= 1,
               f"reference_size must be a positive integer, got {self.reference_size!r}")
        _check(p, self.position in ("gaussian", "uniform"),
               f"position must be 'gaussian' or 'uniform', got {self.position!r}")
        _check(p, self.gaussian_sigma > 0, f"gaussian_sigma must be positive, got {self.gaussian_sigma!r}")
        _raise_if(p, "hints")


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation of (colour, line) pairs."""

    flip: bool = True
    """Random horizontal flip."""
    crop_scale_min: float = 0.6
    """Random resized crop: the crop's side is at least this fraction of the image's shorter side (1.0 = off)."""
    hue_jitter: float = 0.1
    """Hue shift drawn uniformly from ±this fraction of the hue circle (the paper's 0.1)."""
    saturation_jitter: float = 0.1
    """Saturation scaled by 1 ± this."""
    value_jitter: float = 0.05
    """Value (brightness) scaled by 1 ± this."""
    thickness_max_radius: int = 1
    """Line-thickness augmentation: dilate or erode the ink by a radius drawn from [-r, r] pixels (0 = off)."""
    line_gaps: int = 0
    """Cut up to this many small gaps (a square of 2–4 px side on an ink pixel) into the line art the network sees,
    as real drawings have; the fill guide keeps the clean drawing's regions, as the region engine closes such gaps
    at inference (0 = off)."""
    line_fade: float = 0.0
    """Make the ink lighter by a fraction drawn from [0, this] (pencil-grey lines; 0 = off)."""

    def __post_init__(self) -> None:
        p: list[str] = []
        _check(p, 0.0 < self.crop_scale_min <= 1.0, f"crop_scale_min must be in (0, 1], got {self.crop_scale_min!r}")
        _check(p, isinstance(self.line_gaps, int) and 0 <= self.line_gaps <= 64,
               f"line_gaps must be an integer in [0, 64], got {self.line_gaps!r}")
        _check(p, isinstance(self.line_fade, (int, float)) and 0.0 <= self.line_fade <= 0.6,
               f"line_fade must be in [0, 0.6] (ink must stay darker than the binarisation threshold), "
               f"got {self.line_fade!r}")
        for name in ("hue_jitter", "saturation_jitter", "value_jitter"):
            v = getattr(self, name)
            _check(p, 0.0 <= v <= 1.0, f"{name} must be in [0, 1], got {v!r}")
        _check(p, isinstance(self.thickness_max_radius, int) and 0 <= self.thickness_max_radius <= 8,
               f"thickness_max_radius must be an integer in [0, 8], got {self.thickness_max_radius!r}")
        _raise_if(p, "augment")


@dataclass(frozen=True)
class DataConfig:
    """Where training data comes from and at which size it is used."""

    train_dirs: tuple[str, ...] = ()
    """Prepared dataset directories (written by ``linecolor prepare``) whose ``train`` split is used."""
    val_dirs: tuple[str, ...] = ()
    """Prepared dataset directories whose ``val`` split is used for preview grids (defaults to ``train_dirs``)."""
    image_size: int = 128
    """Square training crop side in pixels (multiple of 32)."""
    num_workers: int = 0
    """DataLoader worker processes (0 = load in the training process)."""
    max_bad_fraction: float = 0.01
    """Stop training if more than this fraction of samples seen so far could not be decoded."""

    def __post_init__(self) -> None:
        p: list[str] = []
        _check(p, isinstance(self.image_size, int) and self.image_size >= 64 and self.image_size % 32 == 0,
               f"image_size must be a multiple of 32 and at least 64, got {self.image_size!r}")
        _check(p, isinstance(self.num_workers, int) and self.num_workers >= 0,
               f"num_workers must be a non-negative integer, got {self.num_workers!r}")
        _check(p, 0.0 <= self.max_bad_fraction <= 1.0,
               f"max_bad_fraction must be in [0, 1], got {self.max_bad_fraction!r}")
        _raise_if(p, "data")


# ------------------------------------------------------------------------------------------ training
@dataclass(frozen=True)
class LossConfig:
    """Loss weights (the paper's values by default)."""

    gan: float = 1.0
    """Hinge GAN loss weight for the generator."""
    feature_matching: float = 10.0
    """Discriminator feature-matching L1 weight."""
    reconstruction: float = 10.0
    """Reconstruction weight."""
    reconstruction_type: str = "l1"
    """``l1`` or ``l2``."""
    kl: float = 0.05
    """KL(q(z|x) ‖ N(0, I)) weight for the style encoder."""
    perceptual: float = 0.0
    """Perceptual loss weight (needs ``perceptual_weights``)."""
    perceptual_weights: str | None = None
    """Path to a safetensors file with :class:`~linecolor.models.perceptual.ResNetFeatures` weights."""
    gan_start_step: int = 0
    """Reconstruction-only warm-up: GAN and feature-matching terms (and D updates) start at this step."""
    style_dropout: float = 0.0
    """Fraction of training samples whose style latent is replaced by z = 0 (deterministic mode). The posterior
    z sees the target, so it can carry the palette and make the hints redundant; training z = 0 directly forces
    the generator to take colours from the hints, which is how deterministic mode is used."""
    hint_adherence: float = 0.0
    """Weight of an L1 loss between the output and the *hint colour* on hinted pixels (mean over hinted pixels):
    the hint is what the user asked for, and the plain reconstruction loss spreads its attention over the whole
    image, where hint pixels are a percent or two."""
    region_colour: float = 0.0
    """Weight of an L1 loss between each line-bounded region's mean output colour and its mean target colour
    (area-weighted): at inference an unhinted region takes exactly that mean (the ``regions`` composite), so this is
    the loss the suggestions are judged by."""
    diversity: float = 0.0
    """Weight of the mode-seeking term (:func:`linecolor.training.losses.diversity_loss`): each step also renders
    the batch with a latent drawn from the prior, whose colours on unhinted paper must differ from the posterior
    output's by at least ``diversity_target`` per unit of latent distance, while its hinted regions are held to the
    target (weight ``reconstruction``). Without it, two seeds of the stage-3 and stage-4 models differed by 1.5–3
    ΔE00 on unhinted paper: less than an eye notices (issue 14)."""
    diversity_target: float = 0.25
    """The mode-seeking hinge's target ratio (mean L1 on [-1, 1] colours per mean L1 of the latents; two prior
    latents are about 1.13 apart, so 0.25 asks for about 36 of 255 levels per channel)."""
    diversity_pair: str = "posterior"
    """Which two renderings the mode-seeking term compares. ``posterior``: the posterior output and one from a
    prior latent (stage 5). That pair is satisfied without z mattering in the prior — the posterior output is near
    the target, the prior one can be the same average colouring for every z — and stage 5's seeds still differed by
    only 4 ΔE00. ``prior``: two renderings that both come from latents a user reaches — for half the batch two
    draws from N(0, I) (the studio's seeds), for the other half two points of the latent-shift slider, z = s·1 with
    s uniform in ±:data:`linecolor.limits.MAX_LATENT_SHIFT` — so seeds and the slider must both move the colours,
    and both renderings' hinted regions are held to the target."""
    diversity_regions: bool = False
    """Compare the two renderings' region-mean colours (:func:`linecolor.training.losses.region_flattened`) instead
    of their pixels. The ``regions`` composite shows each unhinted region's mean, and stage 6, trained on pixels,
    met the term (it fell to 0.005 within 600 steps) with changes inside regions that average out: on validation its
    latent shift moved the composite's colours less than stage 5's (4.8 against 5.8 ΔE00; MODEL_CARD.md)."""
    diversity_latent_cap: float | None = None
    """If set, the latent distance the hinge's target is computed from is capped here: a slider pair 6 apart
    would otherwise ask for colours 6 × ``diversity_target`` apart, beyond the gamut, and the hinge would never
    rest."""

    def __post_init__(self) -> None:
        p: list[str] = []
        for name in ("gan", "feature_matching", "reconstruction", "kl", "perceptual", "hint_adherence",
                     "region_colour", "diversity", "diversity_target"):
            v = getattr(self, name)
            _check(p, isinstance(v, (int, float)) and math.isfinite(v) and v >= 0,
                   f"{name} weight must be a finite number >= 0, got {v!r}")
        _check(p, self.reconstruction_type in ("l1", "l2"),
               f"reconstruction_type must be 'l1' or 'l2', got {self.reconstruction_type!r}")
        _check(p, not (self.perceptual > 0 and not self.perceptual_weights),
               "perceptual > 0 needs perceptual_weights (a safetensors file of ResNet features)")
        _check(p, isinstance(self.gan_start_step, int) and self.gan_start_step >= 0,
               f"gan_start_step must be a non-negative integer, got {self.gan_start_step!r}")
        _check(p, 0.0 <= self.style_dropout <= 1.0, f"style_dropout must be in [0, 1], got {self.style_dropout!r}")
        _check(p, self.diversity_pair in DIVERSITY_PAIRS,
               f"diversity_pair must be one of {', '.join(DIVERSITY_PAIRS)}, got {self.diversity_pair!r}")
        _check(p, self.diversity_latent_cap is None
               or (isinstance(self.diversity_latent_cap, (int, float)) and self.diversity_latent_cap > 0),
               f"diversity_latent_cap must be > 0, got {self.diversity_latent_cap!r}")
        _raise_if(p, "loss")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, checkpointing and logging."""

    steps: int = 1000
    """Total optimisation steps."""
    batch_size: int = 8
    """Images per step per process."""
    lr_generator: float = 1e-4
    """Adam learning rate of the generator and style encoder."""
    lr_discriminator: float = 4e-4
    """Adam learning rate of the discriminator (two time-scale update rule)."""
    beta1: float = 0.0
    beta2: float = 0.9
    warmup_steps: int = 100
    """Linear learning-rate warm-up, then cosine annealing to ``min_lr_fraction``."""
    min_lr_fraction: float = 0.05
    ema_decay: float = 0.999
    """Exponential moving average of generator weights (0 = off; export then uses the raw weights)."""
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    """Older complete checkpoints are deleted only after a newer one is committed."""
    log_every: int = 20
    image_every: int = 200
    """TensorBoard image grid (line | hints | output | target) every this many steps (0 = never)."""
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    bf16: bool = False
    """bf16 autocast for the forward passes (CUDA only)."""
    num_threads: int = 0
    """torch intra-op threads on CPU (0 = torch's default)."""
    grad_clip: float = 0.0
    """Clip gradient norm (0 = off)."""

    def __post_init__(self) -> None:
        p: list[str] = []
        for name in ("steps", "batch_size", "checkpoint_every", "keep_checkpoints", "log_every"):
            v = getattr(self, name)
            _check(p, isinstance(v, int) and v >= 1, f"{name} must be a positive integer, got {v!r}")
        for name in ("warmup_steps", "image_every", "seed", "num_threads"):
            v = getattr(self, name)
            _check(p, isinstance(v, int) and v >= 0, f"{name} must be a non-negative integer, got {v!r}")
        for name in ("lr_generator", "lr_discriminator"):
            v = getattr(self, name)
            _check(p, isinstance(v, (int, float)) and math.isfinite(v) and v > 0,
                   f"{name} must be a finite number > 0, got {v!r}")
        for name in ("beta1", "beta2", "ema_decay", "min_lr_fraction"):
            v = getattr(self, name)
            _check(p, isinstance(v, (int, float)) and 0.0 <= v < 1.0 or (name == "min_lr_fraction" and v == 1.0),
                   f"{name} must be in [0, 1), got {v!r}")
        _check(p, self.grad_clip >= 0, f"grad_clip must be >= 0, got {self.grad_clip!r}")
        dev = self.device
        _check(p, dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit()),
               f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {dev!r}")
        _raise_if(p, "train")


@dataclass(frozen=True)
class ExperimentConfig:
    """One training run: model, data, hints, augmentation, discriminator, losses and optimisation."""

    model: ModelConfig = field(default_factory=ModelConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    hints: HintConfig = field(default_factory=HintConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        p: list[str] = []
        generator = self.model.generator
        _check(p, not (self.loss.diversity > 0 and not (generator.fill_guide and generator.use_style_latent)),
               "loss.diversity > 0 needs a style latent and the fill guide (model.generator.use_style_latent and "
               "fill_guide): the term varies the latent and measures the change on unhinted paper")
        _raise_if(p, "experiment")


# ----------------------------------------------------------------------------------- (de)serialising
def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-compatible dict of a (nested) config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(sorted(valid))})"


def _coerce(value: Any, annotation: Any, where: str, problems: list[str]) -> Any:
    """Convert a JSON/TOML value to a field's declared type, recording a problem when it cannot."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], where, problems)
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            problems.append(f"{where}: expected a list, got {value!r}")
            return ()
        return tuple(_coerce(v, args[0], where, problems) for v in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        problems.append(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool):
            problems.append(f"{where}: expected an integer, got {value!r}")
            return value
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        problems.append(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        problems.append(f"{where}: expected a number, got {value!r}")
        return value
    if annotation is str:
        if isinstance(value, str):
            return value
        problems.append(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build config dataclass ``cls`` from a nested dict, naming every unknown key and bad value at once."""
    problems: list[str] = []
    obj = _from_dict(cls, data, where, problems)
    if problems:
        raise ConfigError(problems)
    return obj


def _from_dict(cls: type, data: Any, where: str, problems: list[str]) -> Any:
    if not isinstance(data, dict):
        problems.append(f"{where or 'config'}: expected a table of keys, got {data!r}")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            problems.append(f"unknown key {path!r}{_suggest(key, list(fields))}")
            continue
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            kwargs[key] = _from_dict(annotation, value, path, problems)
        else:
            kwargs[key] = _coerce(value, annotation, path, problems)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        problems.extend(exc.problems)
    except TypeError as exc:  # a wrongly typed value that escaped coercion
        problems.append(f"{where or cls.__name__}: {exc}")
    return cls()


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as TOML scalars when possible) to a nested dict."""
    out = json.loads(json.dumps(data))
    problems = []
    for item in overrides:
        if "=" not in item:
            problems.append(f"override {item!r} is not of the form section.key=value")
            continue
        dotted, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare string such as cpu or ladder
        node = out
        parts = dotted.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                problems.append(f"override {item!r}: {part!r} is not a section")
                break
        else:
            node[parts[-1]] = value
    if problems:
        raise ConfigError(problems)
    return out


def load_config(cls: type, path: str | Path | None = None, overrides: list[str] | None = None) -> Any:
    """Load ``cls`` from a TOML or JSON file (or defaults), then apply ``section.key=value`` overrides.

    Raises :class:`ConfigError` for anything wrong with the file: missing, unreadable, over
    :data:`~linecolor.limits.MAX_CONFIG_FILE_BYTES`, not UTF-8 text, not valid TOML/JSON, nested too deeply, or
    not a table of keys at the top."""
    data: Any = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        kind = "JSON" if path.suffix == ".json" else "TOML"
        try:
            if path.stat().st_size > MAX_CONFIG_FILE_BYTES:
                raise ConfigError(f"{path}: larger than {MAX_CONFIG_FILE_BYTES // 1024} KiB; not a linecolor config")
            text = path.read_bytes().decode("utf-8")
            data = json.loads(text) if kind == "JSON" else tomllib.loads(text)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a text file (not UTF-8); expected a {kind} config") from None
        except RecursionError:
            raise ConfigError(f"{path}: nested too deeply to be a linecolor config") from None
        except (tomllib.TOMLDecodeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            raise ConfigError(f"{path}: not valid {kind}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a table of sections and keys, not a "
                              f"{type(data).__name__}")
    if overrides:
        data = apply_overrides(data, overrides)
    return from_dict(cls, data)


# -------------------------------------------------------------------------------------------- server
@dataclass(frozen=True)
class ServerConfig:
    """The web studio: where it listens, which model it loads, and the limits that keep it alive."""

    host: str = "127.0.0.1"
    """Interface to bind. Loopback by default: exposing the studio is an explicit choice."""
    port: int = 8000
    """TCP port (0 = any free port)."""
    weights: str | None = None
    """Model directory; ``None`` = the bundled default model."""
    max_content_length: int = 16 * 1024 * 1024
    """Largest request body in bytes (413 above)."""
    max_form_parts: int = 16
    """Most multipart parts per request (413 above); the studio sends at most 6."""
    max_pixels: int = MAX_IMAGE_PIXELS
    """Largest image (width × height) accepted, checked before decoding (413 above)."""
    queue_size: int = 4
    """Requests that may wait while one is being coloured; more get 503 with Retry-After at once."""
    queue_timeout_s: float = 30.0
    """A request that waited this long without starting gets 503."""
    request_timeout_s: float = 60.0
    """A colourisation that runs longer than this answers 504 (the computation finishes in the background)."""
    threads: int = 8
    """waitress worker threads (health checks must be answerable while requests wait)."""
    device: str = "cpu"
    """Where the model runs: ``cpu`` or ``cuda``."""
    connection_limit: int = 512
    """Most open connections; more wait in the listen backlog. Far above what browsers open (six per origin), so
    that idle or half-sent connections cannot take every slot before :attr:`channel_timeout_s` drops them."""
    channel_timeout_s: float = 10.0
    """A connection that sends nothing for this long, and has no request being answered, is closed (waitress's
    default, 120 s, let a hundred half-sent request lines keep the server unreachable for two minutes)."""
    allowed_hosts: tuple[str, ...] | None = None
    """Host names (``Host`` header, without port) answered; others get 400, so a web page cannot reach the studio
    through a DNS name of its own (DNS rebinding). ``None``: the loopback names when bound to loopback, those plus
    the bound address when bound to one IPv4 address or name, any host when bound to all interfaces or to an IPv6
    address."""

    def trusted_hosts(self) -> list[str] | None:
        """The ``Host`` names answered (see :attr:`allowed_hosts`); ``None`` = any."""
        if self.allowed_hosts is not None:
            return list(self.allowed_hosts)
        if not self.host or ":" in self.host or _is_unspecified_address(self.host):
            # All interfaces, or an IPv6 address: Werkzeug's host matching cuts trusted names at their first ":",
            # so an IPv6 literal can never be listed.
            return None
        loopback = ["127.0.0.1", "localhost"]
        return loopback if self.host in loopback else [self.host, *loopback]

    def __post_init__(self) -> None:
        p: list[str] = []
        _check(p, isinstance(self.port, int) and 0 <= self.port <= 65535, f"port must be in 0–65535, got {self.port!r}")
        _check(p, isinstance(self.channel_timeout_s, (int, float)) and math.isfinite(self.channel_timeout_s)
               and self.channel_timeout_s > 0, f"channel_timeout_s must be > 0, got {self.channel_timeout_s!r}")
        _check(p, self.allowed_hosts is None or (isinstance(self.allowed_hosts, tuple) and all(
            isinstance(h, str) and h for h in self.allowed_hosts)),
               f"allowed_hosts must be a tuple of host names or None, got {self.allowed_hosts!r}")
        for name in ("max_content_length", "max_form_parts", "max_pixels", "threads", "connection_limit"):
            v = getattr(self, name)
            _check(p, isinstance(v, int) and v >= 1, f"{name} must be a positive integer, got {v!r}")
        _check(p, isinstance(self.queue_size, int) and self.queue_size >= 0,
               f"queue_size must be a non-negative integer, got {self.queue_size!r}")
        for name in ("queue_timeout_s", "request_timeout_s"):
            v = getattr(self, name)
            _check(p, isinstance(v, (int, float)) and math.isfinite(v) and v > 0, f"{name} must be > 0, got {v!r}")
        _check(p, self.threads >= 2, f"threads must be at least 2 (one to colour, one to answer health), got "
                                     f"{self.threads!r}")
        _raise_if(p, "server")
