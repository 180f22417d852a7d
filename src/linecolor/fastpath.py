"""A faster inference path for :class:`~linecolor.models.colorizer.Colorizer` that computes the same function.

>>> runner = optimize_for_inference(Colorizer.from_pretrained("weights/"))   # doctest: +SKIP
>>> rgb = runner(cond, z)            # == model(cond, z) in eval mode, within float rounding   # doctest: +SKIP

Contract:
    runner(cond, z=None): cond (1 or B, 5, H, W) float32, H and W multiples of 32; z (B, latent_dim) or None
        → (B, 3, H, W) in [-1, 1]. A batch-1 ``cond`` with a batch-B ``z`` colours one drawing B ways (the result
        equals ``model(cond.expand(B, -1, -1, -1), z)``).

The plain model stays the reference (``backend="plain"``). Every other backend starts from :class:`FusedGenerator`,
an exact rewrite of the generator for eval mode:

* spectral norm is folded into plain weights (eval mode divides by σ from the stored u, v: the folded weight is the
  weight the plain model uses);
* the SPADE modulation nets of a residual block all read the same conditioning map, so their first convolutions
  run as one convolution, and each SPADE's γ and β convolutions as one convolution with 2C outputs; the ``1 +`` of
  ``(1 + γ)`` is folded into γ's bias and the modulation is one ``addcmul``;
* ``norm_0`` and ``norm_s`` normalise the same activation: with instance norm it is normalised once; batch norm
  (eval: a per-channel affine map) is folded into the γ/β convolutions;
* all style projections z → hidden offsets run as one matrix product, and with z = None (= zeros) their bias is
  folded into the convolution bias;
* the ``spade`` variant's nearest resize by an integer factor f is the slice ``[::f, ::f]`` (identical indices).

Backends: ``eager`` (the fused module in PyTorch), ``onnxruntime`` (the fused module exported to ONNX and run by
onnxruntime's CPU provider; sessions are cached per padding regime, shapes are dynamic), ``compile``
(``torch.compile`` of the fused module; recompiles per new shape) and ``auto`` (the fastest measured on this
project's CPU that is available; see :data:`AUTO_ORDER`).
"""

from __future__ import annotations

import ctypes
import io
import os
import sys
import threading
import warnings
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from linecolor.models._layers import ReflectConv2d
from linecolor.models.colorizer import Colorizer
from linecolor.models.generator import BLOCK_FACTORS, LadderGenerator, SPADEGenerator, fill_logits
from linecolor.models.spade import SPADE, SPADEResBlock

BACKENDS = ("auto", "plain", "eager", "onnxruntime", "compile")
AUTO_ORDER = ("onnxruntime", "eager")
"""Backends ``auto`` tries on CPU, in order, taking the first that is available. Measured on this project's 2-core
CPU (batch 1, default and nf16 models, 128²–512²): onnxruntime fastest, then eager; ``compile`` with freezing
matches onnxruntime but compiles for ~20 s per new input shape, so it is never chosen automatically."""


# ------------------------------------------------------------------------------------------- helpers
def _pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """The padding :class:`ReflectConv2d` applies: reflection, or replication where the map is too small."""
    mode = "reflect" if min(x.shape[-2:]) > p else "replicate"
    return F.pad(x, (p, p, p, p), mode=mode)


def instance_norm(x: torch.Tensor, eps: float, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                  *, two_pass: bool = False) -> torch.Tensor:
    """Instance norm over (H, W) (biased variance, as ``nn.InstanceNorm2d``).

    ``two_pass`` spells it out as row means, then the mean of those, then the same for the squared deviations:
    exported to ONNX, onnxruntime's CPU kernels (``InstanceNormalization`` and a ``ReduceMean`` over H·W alike)
    sum all H·W values in one float32 accumulator, and the error grows with the map (measured on the default model:
    7e-3 off at 512², 9e-2 at 1024², against 1e-5 for torch's kernel). Sums of one row, then of the row means,
    stay close to torch's (2.5e-5 at 512², 2e-4 at 1024² where torch's own error is 5e-5).
    """
    if not two_pass:
        return F.instance_norm(x, weight=weight, bias=bias, eps=eps)
    mean = x.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)  # row means first: short float32 sums
    centred = x - mean
    var = (centred * centred).mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
    out = centred * torch.rsqrt(var + eps)
    if weight is not None:
        out = out * weight[:, None, None] + bias[:, None, None]
    return out


class _LadderUnit(nn.Module):
    """conv → InstanceNorm2d(affine) → LeakyReLU(0.2) of the ladder encoder, with a selectable norm kernel."""

    def __init__(self, unit: nn.Sequential):
        super().__init__()
        conv_layer, norm, act = unit
        if not (isinstance(norm, nn.InstanceNorm2d) and norm.affine and not norm.track_running_stats
                and isinstance(act, nn.LeakyReLU)):
            raise TypeError("unexpected ladder-encoder unit")
        self.conv = plain_conv(conv_layer)
        self.norm_weight = nn.Parameter(norm.weight.detach().clone())
        self.norm_bias = nn.Parameter(norm.bias.detach().clone())
        self.eps, self.slope = float(norm.eps), float(act.negative_slope)
        self.two_pass = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = instance_norm(self.conv(x), self.eps, self.norm_weight, self.norm_bias, two_pass=self.two_pass)
        return F.leaky_relu(x, self.slope, inplace=True)


def _conv(weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1) -> ReflectConv2d:
    """A :class:`ReflectConv2d` holding the given (out, in, k, k) weight and bias."""
    out_c, in_c, k, _ = weight.shape
    layer = ReflectConv2d(in_c, out_c, k, stride=stride, bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def plain_conv(layer: ReflectConv2d) -> ReflectConv2d:
    """A copy of ``layer`` whose weight is the one it uses in eval mode, spectral norm (if any) folded in.

    (``parametrize.remove_parametrizations`` on a deep copy would also strip the original: the two share the
    parametrized class from which the property is deleted.)
    """
    if layer.training:
        raise ValueError("plain_conv needs a layer in eval mode (train mode would run a power iteration)")
    with torch.no_grad():
        weight = layer.weight.detach().clone()  # eval-mode spectral norm: W / σ(u, v) with the stored u, v
        bias = None if layer.bias is None else layer.bias.detach().clone()
    return _conv(weight, bias, stride=layer.stride[0])


# --------------------------------------------------------------------------------------- fused model
class _FusedBlock(nn.Module):
    """One :class:`SPADEResBlock` (plain weights) with its SPADE modulation nets fused."""

    def __init__(self, block: SPADEResBlock):
        super().__init__()
        self.learned_shortcut = block.learned_shortcut
        spades: list[SPADE] = [block.norm_0, block.norm_1] + ([block.norm_s] if block.learned_shortcut else [])
        self.hidden = spades[0].shared.out_channels
        self.instance = isinstance(spades[0].norm, nn.InstanceNorm2d)
        self.eps = float(spades[0].norm.eps)
        self.two_pass = False
        self.shared = _conv(torch.cat([s.shared.weight for s in spades]), torch.cat([s.shared.bias for s in spades]))
        has_style = spades[0].style is not None
        # Bias of the shared conv when z is None (= zeros): the style projection then adds only its own bias.
        bias_nz = self.shared.bias.detach().clone()
        if has_style:
            bias_nz += torch.cat([s.style.bias.detach() for s in spades])
        self.register_buffer("shared_bias_no_z", bias_nz)
        self.channels = [s.to_gamma.out_channels for s in spades]
        self.mods = nn.ModuleList(self._modulation(s) for s in spades)
        self.conv_0, self.conv_1 = plain_conv(block.conv_0), plain_conv(block.conv_1)
        self.conv_s = plain_conv(block.conv_s) if block.learned_shortcut else None

    def _modulation(self, spade: SPADE) -> ReflectConv2d:
        """γ and β convs as one conv with 2C outputs computing [1 + γ, β] (with batch norm folded in)."""
        wg, bg = spade.to_gamma.weight.detach(), spade.to_gamma.bias.detach() + 1
        wb, bb = spade.to_beta.weight.detach(), spade.to_beta.bias.detach()
        if not self.instance:
            # eval batch norm: norm(x) = a·x + c  ⇒  norm(x)(1+γ) + β = x·[a(1+γ)] + [c(1+γ) + β]
            bn = spade.norm
            a = torch.rsqrt(bn.running_var + bn.eps)
            c = -bn.running_mean * a
            wb, bb = wb + c[:, None, None, None] * wg, bb + c * bg
            wg, bg = a[:, None, None, None] * wg, a * bg
        return _conv(torch.cat([wg, wb]), torch.cat([bg, bb]))

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return instance_norm(x, self.eps, two_pass=self.two_pass) if self.instance else x

    def forward(self, x: torch.Tensor, cond: torch.Tensor, offset: torch.Tensor | None) -> torch.Tensor:
        if offset is None:
            hidden = F.relu(F.conv2d(_pad(cond, 1), self.shared.weight, self.shared_bias_no_z), inplace=True)
        else:
            hidden = F.relu(self.shared(cond) + offset)  # (B, n·hidden, H, W)
        k = self.hidden
        mods = [m(hidden[:, i * k:(i + 1) * k]) for i, m in enumerate(self.mods)]  # each (B, 2C, H, W)
        nx = self._norm(x)
        c0, c1 = self.channels[0], self.channels[1]
        if self.conv_s is not None:
            cs = self.channels[2]
            shortcut = self.conv_s(torch.addcmul(mods[2][:, cs:], nx, mods[2][:, :cs]))
        else:
            shortcut = x
        h = self.conv_0(F.leaky_relu(torch.addcmul(mods[0][:, c0:], nx, mods[0][:, :c0]), 0.2, inplace=True))
        h = self.conv_1(F.leaky_relu(torch.addcmul(mods[1][:, c1:], self._norm(h), mods[1][:, :c1]), 0.2,
                                     inplace=True))
        return h + shortcut


class FusedGenerator(nn.Module):
    """The generator of a :class:`Colorizer`, rewritten for inference (see the module docstring).

    Computes ``generator(cond, z)`` of the eval-mode model; built from copies of its weights (the model is untouched).
    """

    def __init__(self, generator: nn.Module):
        super().__init__()
        if not isinstance(generator, (LadderGenerator, SPADEGenerator)):
            raise TypeError(f"unsupported generator {type(generator).__name__}")
        was_training = generator.training
        generator.eval()  # reading a spectral-normed weight in train mode would run a power iteration
        try:
            self._build(generator)
        finally:
            generator.train(was_training)
        self.eval().requires_grad_(False)

    def _build(self, g: nn.Module) -> None:
        self.config = g.config
        self.ladder = None
        if isinstance(g, LadderGenerator):
            self.ladder = nn.ModuleList([_LadderUnit(g.ladder.stem)] + [_LadderUnit(u) for u in g.ladder.downs])
        self.start, self.to_rgb = plain_conv(g.start), plain_conv(g.to_rgb)
        self.blocks = nn.ModuleList(_FusedBlock(b) for b in g.blocks)
        self.use_style = bool(g.config.use_style_latent)
        if self.use_style:
            styles = [s.style for b in g.blocks for s in self._spades(b)]
            self.style_weight = nn.Parameter(torch.cat([s.weight.detach() for s in styles]))
            self.style_bias = nn.Parameter(torch.cat([s.bias.detach() for s in styles]))
            self.offset_sizes = [blk.shared.out_channels for blk in self.blocks]

    def use_two_pass_norm(self, enabled: bool = True) -> "FusedGenerator":
        """Spell instance norm out as mean / variance ops (for ONNX export; see :func:`instance_norm`)."""
        for module in self.modules():
            if isinstance(module, (_LadderUnit, _FusedBlock)):
                module.two_pass = enabled
        return self

    @staticmethod
    def _spades(block: SPADEResBlock) -> list[SPADE]:
        return [block.norm_0, block.norm_1] + ([block.norm_s] if block.learned_shortcut else [])

    def conditioning(self, cond: torch.Tensor) -> dict[int, torch.Tensor]:
        if self.ladder is not None:
            h = self.ladder[0](cond)  # (B, C, H, W)
            maps = {1: h}
            for i, unit in enumerate(self.ladder[1:], start=1):
                h = unit(h)  # (B, C, H / 2**i, W / 2**i)
                maps[2**i] = h
            return maps
        # Nearest resize of an (H, W) map to (H/f, W/f) samples source index i·f: exactly the slice [::f, ::f].
        maps = {f: cond[:, :, ::f, ::f] for f in set(BLOCK_FACTORS)}
        maps[32] = F.avg_pool2d(cond, 32)
        return maps

    def forward(self, cond: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = cond.shape
        if c != self.config.in_channels:
            raise ValueError(f"generator expects {self.config.in_channels} conditioning channels, got {c}")
        m = self.config.downsample_factor
        if h % m or w % m:
            raise ValueError(f"generator input size must be a multiple of {m}, got {h}×{w}")
        offsets: list[torch.Tensor | None] = [None] * len(self.blocks)
        if self.use_style and z is not None:
            if z.ndim != 2 or z.shape[1] != self.config.latent_dim or b not in (1, z.shape[0]):
                raise ValueError(f"z must have shape ({b}, {self.config.latent_dim}), got {tuple(z.shape)}")
            flat = F.linear(z, self.style_weight, self.style_bias)  # (B, Σ n·hidden)
            offsets = [o[:, :, None, None] for o in torch.split(flat, self.offset_sizes, dim=1)]
        maps = self.conditioning(cond)
        x = self.start(maps[32])
        previous = BLOCK_FACTORS[0]
        for block, factor, offset in zip(self.blocks, BLOCK_FACTORS, offsets):
            if factor != previous:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
                previous = factor
            x = block(x, maps[factor], offset)
        logits = self.to_rgb(F.leaky_relu(x, 0.2))
        if self.config.fill_guide:
            logits = logits + fill_logits(cond)
        return torch.tanh(logits)


# ----------------------------------------------------------------------------------------- allocator
_MALLOC_TUNED = False
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def tune_malloc(mmap_threshold: int = 1 << 30, trim_threshold: int = (1 << 31) - 1) -> bool:
    """Make glibc keep freed large blocks for reuse (process-wide); returns whether it took effect.

    By default glibc serves every block above 32 MiB with a fresh ``mmap`` and unmaps it on free, so each large
    activation of a big image is page-faulted and zeroed anew: measured on this project's CPU, adding two
    (1, 48, 512, 512) tensors costs 16 ms that way against 2.3 ms with the memory reused. The price is that the
    resident set stays at its peak instead of shrinking after a large image. Does nothing off glibc.
    """
    global _MALLOC_TUNED
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1 and mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1
    _MALLOC_TUNED = _MALLOC_TUNED or ok
    return ok


def malloc_tuned() -> bool:
    """Whether :func:`tune_malloc` has taken effect in this process."""
    return _MALLOC_TUNED


# ---------------------------------------------------------------------------------------- backends
def import_onnxruntime() -> Any:
    """``import onnxruntime`` with its telemetry off.

    onnxruntime 1.31 on Linux writes a session file to TMPDIR and a device id + database under ~/.cache at session
    start (microsoft/onnxruntime#27379); a server must not leave files behind (the soak test checks TMPDIR stays
    empty). Only the environment variable, set before the first import, stops it; ``disable_telemetry_events()``
    does not. ``setdefault``: a deployment that wants telemetry can still set it to 0.
    """
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    return onnxruntime


def onnxruntime_available() -> bool:
    """onnxruntime runs the graph; the ``onnx`` package is what ``torch.onnx.export`` writes it with."""
    try:
        import onnx  # noqa: F401  (pyflakes: availability probe)
        import_onnxruntime()
    except ImportError:
        return False
    return True


def compile_available() -> bool:
    return hasattr(torch, "compile")


_AVAILABLE: dict[str, Callable[[], bool]] = {
    "plain": lambda: True, "eager": lambda: True, "onnxruntime": onnxruntime_available, "compile": compile_available,
}


class InferenceRunner:
    """``runner(cond, z)`` → ``model(cond, z)``, computed by ``backend``. Built by :func:`optimize_for_inference`.

    Also quacks like the model where :class:`~linecolor.pipeline.ColorizationPipeline` needs it (``config``,
    ``encode_style``, ``to``, ``eval``, ``save_pretrained``), so ``ColorizationPipeline(runner)`` works.
    """

    def __init__(self, model: Colorizer, backend: str, forward: Callable[[torch.Tensor, torch.Tensor | None],
                 torch.Tensor], module: nn.Module | None, *, broadcast_cond: bool, info: dict[str, Any]):
        self.model = model
        self.backend = backend
        self.module = module
        self.info = info
        self._forward = forward
        self._broadcast_cond = broadcast_cond
        self.device = next(model.parameters()).device

    @property
    def config(self):
        return self.model.config

    def __call__(self, cond: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if cond.ndim != 4:
            raise ValueError(f"cond must be (B, 5, H, W), got shape {tuple(cond.shape)}")
        if not self.model.config.generator.use_style_latent:
            z = None
        if z is not None and cond.shape[0] == 1 and z.shape[0] != 1 and not self._broadcast_cond:
            cond = cond.expand(z.shape[0], -1, -1, -1)
        with torch.inference_mode():
            return self._forward(cond, z)

    def warmup(self, height: int | None = None, width: int | None = None, batch: int = 1) -> "InferenceRunner":
        """Run once at (batch, 5, height, width) (default: the working size, square) so that a one-off cost
        (ONNX export and session, compilation) is paid now rather than by the first real request."""
        h = height or self.model.config.working_size
        w = width or h
        g = self.model.config.generator
        z = torch.zeros(batch, g.latent_dim, device=self.device) if g.use_style_latent else None
        self(torch.zeros(batch, g.in_channels, h, w, device=self.device), z)
        return self

    def encode_style(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode_style(image)

    def to(self, device: str | torch.device | None = None, *args: Any, **kwargs: Any) -> "InferenceRunner":
        if device is not None and torch.device(device) != self.device:
            raise ValueError(f"this runner was built for {self.device}; build another for {device}")
        return self

    def eval(self) -> "InferenceRunner":
        return self

    def save_pretrained(self, directory, **kwargs):
        return self.model.save_pretrained(directory, **kwargs)

    def __repr__(self) -> str:
        return f"InferenceRunner(backend={self.backend!r}, device={str(self.device)!r})"


def optimize_for_inference(model: Colorizer, *, backend: str = "auto", channels_last: bool = False,
                           num_threads: int | None = None, compile_mode: str | None = None,
                           compile_options: dict[str, Any] | None = None, ort_spinning: bool = False,
                           ort_arena: bool = False, malloc: bool = True) -> InferenceRunner:
    """Wrap ``model`` (left unchanged) in an :class:`InferenceRunner` that computes ``model(cond, z)`` faster.

    Args:
        backend: ``auto``, ``plain`` (the model itself: the reference), ``eager``, ``onnxruntime`` or ``compile``.
        channels_last: run the eager/compile paths in channels-last memory format.
        num_threads: intra-op threads (``torch.set_num_threads`` is process-wide; onnxruntime gets its own pool).
            ``None`` leaves torch's setting and gives onnxruntime the same number.
        compile_mode, compile_options: ``mode`` and ``options`` (inductor settings, e.g. ``{"freezing": True}``)
            passed to ``torch.compile``.
        ort_spinning: let onnxruntime's worker threads spin between ops. Off by default: on this project's 2-core
            CPU spinning gained 10 % at 128² but lost 57 % at 512², and it keeps cores busy between requests.
        ort_arena: onnxruntime's own CPU memory arena. Off by default: it grows to the largest input seen and never
            shrinks, and measured no faster than plain malloc (tuned, see ``malloc``) on this project's CPU.
        malloc: on a CPU, call :func:`tune_malloc` (process-wide; not for ``plain``, the untouched reference).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if not isinstance(model, Colorizer):
        raise TypeError(f"expected a Colorizer, got {type(model).__name__}")
    model.eval()
    device = next(model.parameters()).device
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    if backend == "auto":
        order = AUTO_ORDER if device.type == "cpu" else ("eager",)
        backend = next((b for b in order if _AVAILABLE[b]()), "eager")
    elif not _AVAILABLE[backend]():
        raise RuntimeError(f"backend {backend!r} is not available in this installation")
    if backend == "onnxruntime" and device.type != "cpu":
        raise ValueError("the onnxruntime backend runs on the CPU only")

    info: dict[str, Any] = {"channels_last": channels_last}
    if malloc and backend != "plain" and device.type == "cpu":
        info["malloc_tuned"] = tune_malloc()
    if backend == "plain":
        return InferenceRunner(model, "plain", model.forward, None, broadcast_cond=False, info=info)

    fused = FusedGenerator(model.generator).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)

    if backend == "eager":
        def forward(cond: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
            return fused(cond.contiguous(memory_format=memory_format), z)

        return InferenceRunner(model, "eager", forward, fused, broadcast_cond=True, info=info)

    if backend == "compile":
        compiled = torch.compile(fused, mode=compile_mode, dynamic=False, options=compile_options)
        info.update(compile_mode=compile_mode, compile_options=compile_options)

        def forward(cond: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
            return compiled(cond.contiguous(memory_format=memory_format), z)

        return InferenceRunner(model, "compile", forward, fused, broadcast_cond=False, info=info)

    fused.use_two_pass_norm()
    ort = _OrtForward(fused, num_threads if num_threads is not None else torch.get_num_threads(), ort_spinning,
                      ort_arena)
    info.update(ort.describe())
    return InferenceRunner(model, "onnxruntime", ort, fused, broadcast_cond=False, info=info)


class _OrtForward:
    """The fused generator exported to ONNX (dynamic batch/height/width) and run by onnxruntime.

    The only shape-dependent choice in the graph is reflection vs replication padding on one-pixel-wide maps
    (a size/32 grid of side 1), so one session serves every shape of the same padding regime.
    """

    def __init__(self, fused: FusedGenerator, threads: int, spinning: bool, arena: bool = False):
        ort = import_onnxruntime()

        self._ort = ort
        self.fused = fused
        self.threads = max(1, int(threads))
        self.spinning = spinning
        self.arena = arena
        self.use_style = fused.use_style
        self.latent_dim = fused.config.latent_dim
        self._sessions: dict[tuple[bool, ...], Any] = {}
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"onnxruntime": self._ort.__version__, "ort_threads": self.threads, "ort_spinning": self.spinning,
                "ort_arena": self.arena}

    @staticmethod
    def _regime(h: int, w: int) -> tuple[bool, ...]:
        return tuple(min(h, w) // f > 1 for f in sorted(set(BLOCK_FACTORS)))

    def _session(self, cond: torch.Tensor):
        key = self._regime(*cond.shape[-2:])
        with self._lock:
            sess = self._sessions.get(key)
            if sess is None:
                sess = self._sessions[key] = self._build(cond)
        return sess

    def _build(self, cond: torch.Tensor):
        ort = self._ort
        b = cond.shape[0]
        example_z = torch.zeros(b, self.latent_dim)
        names = ["cond", "z"] if self.use_style else ["cond"]
        args = (cond.detach().cpu().contiguous(), example_z) if self.use_style else (cond.detach().cpu().contiguous(),)
        axes = {"cond": {0: "batch", 2: "height", 3: "width"}, "rgb": {0: "batch", 2: "height", 3: "width"}}
        if self.use_style:
            axes["z"] = {0: "batch"}
        buffer = io.BytesIO()
        module = _ZInput(self.fused) if self.use_style else self.fused
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, buffer, input_names=names, output_names=["rgb"], dynamic_axes=axes,
                              opset_version=17, dynamo=False, do_constant_folding=True)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = self.arena
        if not self.spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def __call__(self, cond: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        if cond.device.type != "cpu":
            raise ValueError("the onnxruntime backend runs on the CPU only")
        if cond.dtype != torch.float32:
            raise ValueError(f"cond must be float32, got {cond.dtype}")
        b, c, h, w = cond.shape
        if c != self.fused.config.in_channels or h % 32 or w % 32:
            raise ValueError(f"cond must be (B, 5, H, W) with H, W multiples of 32, got {tuple(cond.shape)}")
        feeds = {"cond": cond.detach().contiguous().numpy()}
        if self.use_style:
            if z is None:
                z = torch.zeros(b, self.latent_dim)
            if tuple(z.shape) != (b, self.latent_dim):
                raise ValueError(f"z must have shape ({b}, {self.latent_dim}), got {tuple(z.shape)}")
            feeds["z"] = z.detach().to(torch.float32).contiguous().numpy()
        out = self._session(cond).run(["rgb"], feeds)[0]
        return torch.from_numpy(out)


class _ZInput(nn.Module):
    """Exports ``fused(cond, z)`` with z as a real graph input (None would be traced away)."""

    def __init__(self, fused: FusedGenerator):
        super().__init__()
        self.fused = fused

    def forward(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.fused(cond, z)
