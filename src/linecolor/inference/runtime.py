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

import hashlib
import io
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from linecolor.errors import WeightsError
from linecolor.inference.allocator import tune_malloc
from linecolor.inference.graph import (
    ONNX_OPSET,
    GraphSessions,
    graph_cache_dir,
    import_onnxruntime,
    read_graph,
    remove_graph,
    weights_graph_key,
    write_graph,
)
from linecolor.limits import BACKENDS
from linecolor.models.colorizer import Colorizer
from linecolor.models.generator import build_generator
from linecolor.models.scratch import torch_scratch_removed_afterwards
from linecolor.version import __version__

AUTO_ORDER = ("onnxruntime", "eager")
"""Backends ``auto`` tries on CPU, in order, taking the first that is available: the fastest first (measured on this
project's CPU, docs/measurements.md). ``compile`` is never chosen automatically: it recompiles for every new input
shape."""


# ---------------------------------------------------------------------------------------- backends
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
                           ort_arena: bool = False, malloc: bool = True,
                           weights_sha256: str | None = None) -> InferenceRunner:
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
        weights_sha256: the SHA-256 of the weights file ``model`` was just loaded from, unchanged: the ONNX graph is
            then cached under that file's key, where a later start finds it without torch
            (:class:`~linecolor.inference.graph.GraphRunner`). ``None`` for a model that lives only in memory.
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
                      ort_arena, weights_sha256, model.config)
    info.update(ort.describe())
    return InferenceRunner(model, "onnxruntime", ort, fused, info=info)


def load_runner(directory: str | Path, device: Any = "cpu", backend: str = "auto", *,
                expect_sha256: str | None = None, warm: bool = True) -> Any:
    """The weights in ``directory`` as a torch model run through ``backend`` (:func:`optimize_for_inference`;
    ``plain``: the model itself), warmed up unless ``warm`` is false; weights whose output on an empty drawing is
    not finite are refused.

    The weights file is hashed before and after loading: when the two agree, the runtime caches its exported graph
    under that file's key, where a torch-free start finds it (:class:`~linecolor.inference.graph.GraphRunner`);
    when the file changed meanwhile, nothing is cached under it. ``expect_sha256``: refuse
    (:class:`~linecolor.errors.WeightsError`) unless the file still is those bytes (a graph runner loading its
    torch twin).
    """
    from linecolor.models.saved import WEIGHTS_NAME, file_sha256

    weights = Path(directory) / WEIGHTS_NAME
    before = file_sha256(weights) if weights.is_file() else None
    if expect_sha256 is not None and before != expect_sha256:
        raise WeightsError(f"{weights} changed since this model was loaded; load it again")
    model = Colorizer.from_pretrained(directory, device=device)
    if backend == "plain":
        check_finite_output(model)
        return model
    stable = before is not None and file_sha256(weights) == before
    runner = optimize_for_inference(model, backend=backend, weights_sha256=before if stable else None)
    return runner.warmup() if warm else runner


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
    """The fused generator exported to ONNX (dynamic batch/height/width) and run by onnxruntime
    (:class:`~linecolor.inference.graph.GraphSessions`: one session per padding regime).

    Graphs are kept in :func:`~linecolor.inference.graph.graph_cache_dir`: under the weights file's key
    (:func:`~linecolor.inference.graph.weights_graph_key`) when the model was loaded from a directory and
    ``weights_sha256`` says which file, where the torch-free :class:`~linecolor.inference.graph.GraphRunner` finds
    them; otherwise under a hash of the fused weights themselves.
    """

    def __init__(self, fused: nn.Module, threads: int, spinning: bool, arena: bool = False,
                 weights_sha256: str | None = None, model_config: Any = None):
        self.fused = fused
        self.use_style = fused.config.use_style_latent
        self.latent_dim = fused.config.latent_dim
        self.weights_sha256, self.model_config = weights_sha256, model_config
        self.sessions = GraphSessions(self._graph, threads=threads, spinning=spinning, arena=arena,
                                      forget=self._forget)

    def describe(self) -> dict[str, Any]:
        return self.sessions.describe()

    def _graph(self, regime: tuple[bool, ...], shape: tuple[int, ...]) -> bytes:
        """The ONNX graph for a padding regime: from the graph cache when these very weights were exported before,
        else exported now (with an example input of ``shape``) and cached."""
        cached = self._cache_path(regime)
        graph = read_graph(cached) if cached is not None else None
        if graph is not None:
            return graph
        b, _, h, w = shape
        cond = torch.zeros(b, self.fused.config.in_channels, h, w)
        names = ["cond", "z"] if self.use_style else ["cond"]
        args = (cond, torch.zeros(b, self.latent_dim)) if self.use_style else (cond,)
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
            write_graph(cached, graph)
        return graph

    def _cache_path(self, regime: tuple[bool, ...]) -> Path | None:
        cache = graph_cache_dir()
        return cache / f"{self._cache_key(regime)}.onnx" if cache is not None else None

    def _cache_key(self, regime: tuple[bool, ...]) -> str:
        """The weights file's key when known; else a content hash of everything the exported graph depends on:
        the fused weights themselves (so a graph is only ever used for the very weights it was exported from),
        the regime and the exporting software."""
        if self.weights_sha256 is not None:
            return weights_graph_key(self.weights_sha256, self.model_config, regime)
        import onnx

        h = hashlib.sha256()
        h.update(repr((__version__, torch.__version__, onnx.__version__, ONNX_OPSET, regime, self.use_style,
                       self.fused.config)).encode())
        for name, tensor in sorted(self.fused.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:40]

    def _forget(self, regime: tuple[bool, ...]) -> None:
        cached = self._cache_path(regime)
        if cached is not None:
            remove_graph(cached)

    def __call__(self, cond: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        if cond.device.type != "cpu":
            raise ValueError("the onnxruntime backend runs on the CPU only")
        if cond.dtype != torch.float32:
            raise ValueError(f"cond must be float32, got {cond.dtype}")
        b, c, h, w = cond.shape
        if c != self.fused.config.in_channels or h % 32 or w % 32:
            raise ValueError(f"cond must be (B, {self.fused.config.in_channels}, H, W) with H, W multiples of 32, "
                             f"got {tuple(cond.shape)}")
        z_array = None
        if self.use_style:
            if z is None:
                z = torch.zeros(b, self.latent_dim)
            if tuple(z.shape) != (b, self.latent_dim):
                raise ValueError(f"z must have shape ({b}, {self.latent_dim}), got {tuple(z.shape)}")
            z_array = z.detach().to(torch.float32).contiguous().numpy()
        return torch.from_numpy(self.sessions.run(cond.detach().contiguous().numpy(), z_array))


class _ZInput(nn.Module):
    """Exports ``fused(cond, z)`` with z as a real graph input (None would be traced away)."""

    def __init__(self, fused: nn.Module):
        super().__init__()
        self.fused = fused

    def forward(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.fused(cond, z)
