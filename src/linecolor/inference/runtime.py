"""The runtime: how the network is executed at inference (backend choice, onnxruntime session, warm-up).

>>> runner = optimize_for_inference(Colorizer.from_pretrained("weights/"))   # doctest: +SKIP
>>> rgb = runner(cond, z)            # == model(cond, z) in eval mode, within float rounding   # doctest: +SKIP

Contract:
    runner(cond, z=None): cond (1 or B, C, H, W) float32 (C = the model's conditioning channels), H and W multiples
        of 32; z (B, latent_dim) or None → (B, 3, H, W) in [-1, 1]. A batch-1 ``cond`` with a batch-B ``z`` colours
        one drawing B ways (the result equals ``model(cond.expand(B, -1, -1, -1), z)``).

The plain model stays the reference (``backend="plain"``). Every other backend runs a copy of the generator
rewritten by its own :meth:`~linecolor.models.generator.LadderGenerator.fuse_for_inference` (spectral norm folded,
SPADE modulation nets fused, z projected once): the network is written once, in :mod:`linecolor.models`, and the
fast path is that code with fused weights.

Backends: ``eager`` (the fused copy in PyTorch), ``onnxruntime`` (the fused copy exported to ONNX and run by
onnxruntime's CPU provider; sessions are cached per padding regime, shapes are dynamic), ``compile``
(``torch.compile`` of the fused copy; recompiles per new shape) and ``auto`` (the fastest available, in the order
of :data:`AUTO_ORDER`).
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from linecolor.errors import WeightsError
from linecolor.limits import BACKENDS
from linecolor.models.colorizer import Colorizer
from linecolor.models.generator import BLOCK_FACTORS, build_generator
from linecolor.models.scratch import torch_scratch_removed_afterwards
from linecolor.version import __version__

AUTO_ORDER = ("onnxruntime", "eager")
"""Backends ``auto`` tries on CPU, in order, taking the first that is available: the fastest first (measured on this
project's CPU, docs/measurements.md). ``compile`` is never chosen automatically: it recompiles for every new input
shape."""


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

    Also quacks like the model where :class:`~linecolor.inference.pipeline.ColorizationPipeline` needs it (``config``,
    ``encode_style``, ``to``, ``eval``, ``save_pretrained``), so ``ColorizationPipeline(runner)`` works.
    """

    def __init__(self, model: Colorizer, backend: str, forward: Callable[[torch.Tensor, torch.Tensor | None],
                 torch.Tensor], module: nn.Module | None, *, info: dict[str, Any]):
        self.model = model
        self.backend = backend
        self.module = module
        self.info = info
        self._forward = forward
        self.device = next(model.parameters()).device

    @property
    def config(self):
        return self.model.config

    def __call__(self, cond: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if cond.ndim != 4:
            raise ValueError(f"cond must be (B, C, H, W), got shape {tuple(cond.shape)}")
        if not self.model.config.generator.use_style_latent:
            z = None
        if z is not None and cond.shape[0] == 1 and z.shape[0] != 1:
            cond = cond.expand(z.shape[0], -1, -1, -1)
        with torch.inference_mode():
            return self._forward(cond, z)

    def warmup(self, height: int | None = None, width: int | None = None, batch: int = 1) -> "InferenceRunner":
        """Run once at (batch, C, height, width) (default: the working size, square) so that a one-off cost
        (ONNX export and session, compilation) is paid now rather than by the first real request."""
        check_finite_output(self, height, width, batch)
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


def check_finite_output(model: Any, height: int | None = None, width: int | None = None, batch: int = 1) -> None:
    """Run ``model`` once on an empty drawing (default: the working size, square) and raise
    :class:`~linecolor.errors.WeightsError` unless every output value is finite: weights that overflow or hold NaN
    would otherwise be served and answer every request with a black image."""
    config = model.config
    h = height or config.working_size
    w = width or h
    g = config.generator
    device = getattr(model, "device", None) or next(model.parameters()).device
    z = torch.zeros(batch, g.latent_dim, device=device) if g.use_style_latent else None
    with torch.inference_mode():
        out = model(torch.zeros(batch, g.in_channels, h, w, device=device), z)
    if not torch.isfinite(out).all():
        raise WeightsError("the model's output on an empty drawing is not finite (NaN or infinite values): these "
                           "weights cannot colour")


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
        ort_spinning: let onnxruntime's worker threads spin between ops. Off by default: it was slower at large
            sizes on this project's CPU (docs/measurements.md) and keeps cores busy between requests.
        ort_arena: onnxruntime's own CPU memory arena. Off by default: it grows to the largest input seen and never
            shrinks, and was no faster than plain malloc (tuned, see ``malloc``) on this project's CPU.
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
        return InferenceRunner(model, "plain", model.forward, None, info=info)

    fused = fused_copy(model).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)

    if backend == "eager":
        def forward(cond: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
            return fused(cond.contiguous(memory_format=memory_format), z)

        return InferenceRunner(model, "eager", forward, fused, info=info)

    if backend == "compile":
        compiled = torch.compile(fused, mode=compile_mode, dynamic=False, options=compile_options)
        info.update(compile_mode=compile_mode, compile_options=compile_options)

        def forward(cond: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
            return compiled(cond.contiguous(memory_format=memory_format), z)

        return InferenceRunner(model, "compile", forward, fused, info=info)

    fused.use_two_pass_norm()
    ort = _OrtForward(fused, num_threads if num_threads is not None else torch.get_num_threads(), ort_spinning,
                      ort_arena)
    info.update(ort.describe())
    return InferenceRunner(model, "onnxruntime", ort, fused, info=info)


def fused_copy(model: Colorizer) -> nn.Module:
    """A copy of ``model``'s generator rewritten by its ``fuse_for_inference`` (the model itself is untouched).

    The copy is built from the config and the state dict rather than ``copy.deepcopy``: folding spectral norm
    removes a parametrisation, and a deep copy shares the parametrised class with the original, so the original
    would lose it too.
    """
    generator = build_generator(model.config.generator)
    generator.load_state_dict(model.generator.state_dict(), strict=True)
    return generator.fuse_for_inference()


class _OrtForward:
    """The fused generator exported to ONNX (dynamic batch/height/width) and run by onnxruntime.

    The only shape-dependent choice in the graph is reflection vs replication padding on one-pixel-wide maps
    (a size/32 grid of side 1), so one session serves every shape of the same padding regime.
    """

    def __init__(self, fused: nn.Module, threads: int, spinning: bool, arena: bool = False):
        ort = import_onnxruntime()

        self._ort = ort
        self.fused = fused
        self.threads = max(1, int(threads))
        self.spinning = spinning
        self.arena = arena
        self.use_style = fused.config.use_style_latent
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

    def _graph(self, cond: torch.Tensor) -> bytes:
        """The ONNX graph for ``cond``'s padding regime: from the graph cache when these very weights were exported
        before (:func:`graph_cache_dir`), else exported now and cached."""
        key = self._cache_key(self._regime(*cond.shape[-2:]))
        cache = graph_cache_dir()
        cached = cache / f"{key}.onnx" if cache is not None else None
        if cached is not None and cached.is_file():
            try:
                return cached.read_bytes()
            except OSError:
                pass
        b = cond.shape[0]
        example_z = torch.zeros(b, self.latent_dim)
        names = ["cond", "z"] if self.use_style else ["cond"]
        args = (cond.detach().cpu().contiguous(), example_z) if self.use_style else (cond.detach().cpu().contiguous(),)
        axes = {"cond": {0: "batch", 2: "height", 3: "width"}, "rgb": {0: "batch", 2: "height", 3: "width"}}
        if self.use_style:
            axes["z"] = {0: "batch"}
        buffer = io.BytesIO()
        module = _ZInput(self.fused) if self.use_style else self.fused
        with warnings.catch_warnings(), torch.no_grad(), torch_scratch_removed_afterwards():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, buffer, input_names=names, output_names=["rgb"], dynamic_axes=axes,
                              opset_version=ONNX_OPSET, dynamo=False, do_constant_folding=True)
        graph = buffer.getvalue()
        if cached is not None:
            _write_atomic(cached, graph)
        return graph

    def _cache_key(self, regime: tuple[bool, ...]) -> str:
        """Content hash of everything the exported graph depends on: the fused weights themselves (so a graph is
        only ever used for the very weights it was exported from), the regime and the exporting software."""
        import onnx

        h = hashlib.sha256()
        h.update(repr((__version__, torch.__version__, onnx.__version__, ONNX_OPSET, regime, self.use_style,
                       self.fused.config)).encode())
        for name, tensor in sorted(self.fused.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:40]

    def _build(self, cond: torch.Tensor):
        ort = self._ort
        graph = self._graph(cond)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = self.arena
        if not self.spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception:  # noqa: BLE001 - a damaged cache file: export again (onnxruntime raises its own types)
            self._forget(cond)
            return ort.InferenceSession(self._graph(cond), options, providers=["CPUExecutionProvider"])

    def _forget(self, cond: torch.Tensor) -> None:
        cache = graph_cache_dir()
        if cache is not None:
            (cache / f"{self._cache_key(self._regime(*cond.shape[-2:]))}.onnx").unlink(missing_ok=True)

    def __call__(self, cond: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        if cond.device.type != "cpu":
            raise ValueError("the onnxruntime backend runs on the CPU only")
        if cond.dtype != torch.float32:
            raise ValueError(f"cond must be float32, got {cond.dtype}")
        b, c, h, w = cond.shape
        if c != self.fused.config.in_channels or h % 32 or w % 32:
            raise ValueError(f"cond must be (B, {self.fused.config.in_channels}, H, W) with H, W multiples of 32, "
                             f"got {tuple(cond.shape)}")
        feeds = {"cond": cond.detach().contiguous().numpy()}
        if self.use_style:
            if z is None:
                z = torch.zeros(b, self.latent_dim)
            if tuple(z.shape) != (b, self.latent_dim):
                raise ValueError(f"z must have shape ({b}, {self.latent_dim}), got {tuple(z.shape)}")
            feeds["z"] = z.detach().to(torch.float32).contiguous().numpy()
        out = self._session(cond).run(["rgb"], feeds)[0]
        return torch.from_numpy(out)


ONNX_OPSET = 17
GRAPH_CACHE_ENV = "LINECOLOR_CACHE_DIR"
"""Environment variable naming the cache folder; empty or ``off`` disables the graph cache."""


def graph_cache_dir() -> Path | None:
    """Where exported ONNX graphs are kept between runs: ``$LINECOLOR_CACHE_DIR/onnx``, else
    ``$XDG_CACHE_HOME/linecolor/onnx`` or ``~/.cache/linecolor/onnx``; None when disabled or not writable.

    Why: exporting the fused generator to ONNX is most of a cold start (seconds on a 2-core CPU). A cached graph is
    found by a hash of the weights, the padding regime and the exporting software, so it can only ever be used for
    the weights it was made from.
    """
    configured = os.environ.get(GRAPH_CACHE_ENV)
    if configured is not None and configured.strip().lower() in ("", "off", "0", "none"):
        return None
    if configured:
        base = Path(configured)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "linecolor"
    folder = base / "onnx"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename; a failure leaves no partial file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


class _ZInput(nn.Module):
    """Exports ``fused(cond, z)`` with z as a real graph input (None would be traced away)."""

    def __init__(self, fused: nn.Module):
        super().__init__()
        self.fused = fused

    def forward(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.fused(cond, z)
