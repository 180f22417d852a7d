"""The exported network as an ONNX graph: the graph cache, onnxruntime sessions, and a runner that needs no torch.

>>> runner = GraphRunner.from_cache("weights/", load_torch)  # None unless these weights' graph is cached  # doctest: +SKIP
>>> rgb = runner(cond, z)          # numpy in, numpy out: (B, C, H, W) float32 → (B, 3, H, W) in [-1, 1]  # doctest: +SKIP

Why a torch-free runner: on a 2-core CPU ``import torch`` alone takes 2–3 s, most of a command-line run that colours
one drawing. The first run with a weights directory exports the fused generator to ONNX
(:mod:`linecolor.inference.runtime`, torch) and keeps the graph in :func:`graph_cache_dir` under a key made from the
weights file's SHA-256 (:func:`weights_graph_key`); every later start finds it there and runs it with onnxruntime on
numpy arrays, torch never imported. The key also covers the model config, the padding regime, the exporting
software's versions and the source of the code that defines and exports the network, so a graph is never used for
other weights or by other code. Style encoding (reference mode), sampling z with a seeded ``torch.Generator``
(stochastic mode) and shapes of another padding regime load torch when first needed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

from linecolor.config import BLOCK_FACTORS, ModelConfig
from linecolor.errors import WeightsError
from linecolor.inference.allocator import tune_malloc
from linecolor.limits import MAX_PARAMETERS
from linecolor.models.saved import WEIGHTS_NAME, config_digest, file_sha256, read_model_config
from linecolor.version import __version__

__all__ = ["GRAPH_CACHE_ENV", "ONNX_OPSET", "GraphRunner", "GraphSessions", "default_threads", "graph_cache_dir",
           "import_onnxruntime", "padding_regime", "read_graph", "remove_graph", "weights_graph_key", "write_atomic",
           "write_graph"]

ONNX_OPSET = 17
GRAPH_CACHE_ENV = "LINECOLOR_CACHE_DIR"
"""Environment variable naming the cache folder; empty or ``off`` disables the graph cache."""
_PACKAGE = Path(__file__).resolve().parents[1]
_GRAPH_SOURCES = ("config.py", "models", "inference/runtime.py", "inference/graph.py")
"""The code an exported graph depends on (the network's definition, its fusion and its export), relative to the
package: part of the cache key, so a development change without a version bump never reuses an old graph."""


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


def graph_cache_dir() -> Path | None:
    """Where exported ONNX graphs are kept between runs: ``$LINECOLOR_CACHE_DIR/onnx``, else
    ``$XDG_CACHE_HOME/linecolor/onnx`` or ``~/.cache/linecolor/onnx``; None when disabled or not writable.

    Why: exporting the fused generator to ONNX is most of a cold start (seconds on a 2-core CPU). A cached graph is
    found by a hash of the weights (the file's, or the fused tensors' for a model that lives only in memory), the
    padding regime and the exporting software, and each graph file is checked against the SHA-256 written beside it
    (:func:`read_graph`).
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


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename; a failure leaves no partial file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def write_graph(path: Path, graph: bytes) -> None:
    """Cache ``graph`` at ``path`` with its SHA-256 in ``path + ".sha256"`` (written after it: a graph without its
    digest is never read)."""
    write_atomic(path, graph)
    write_atomic(_digest_path(path), hashlib.sha256(graph).hexdigest().encode())


def remove_graph(path: Path) -> None:
    """Drop a cached graph and its digest (a graph onnxruntime could not load, or not its digest's bytes)."""
    path.unlink(missing_ok=True)
    _digest_path(path).unlink(missing_ok=True)


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def read_graph(path: Path) -> bytes | None:
    """The graph cached at ``path``, or None when it is missing, unreadable, or not the bytes its digest says (a
    damaged file is removed, so it is exported again)."""
    try:
        graph, expected = path.read_bytes(), _digest_path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if hashlib.sha256(graph).hexdigest() == expected:
        return graph
    remove_graph(path)
    return None


def padding_regime(height: int, width: int) -> tuple[bool, ...]:
    """Which generator blocks see a map wider than one pixel at this canvas size (reflection vs replication
    padding): the only shape-dependent choice in the graph, so one graph serves every shape of a regime."""
    return tuple(min(height, width) // f > 1 for f in sorted(set(BLOCK_FACTORS)))


def default_threads() -> int:
    """onnxruntime's intra-op threads when nobody chose: torch's setting when torch is loaded (so both execution
    paths, and ``--threads`` options that set torch's, agree), else ``OMP_NUM_THREADS`` if set, else the CPUs this
    process may run on. (Torch's own default counts physical cores: on a machine with two threads per core the
    torch-free start runs twice as many threads as torch would.)"""
    if "torch" in sys.modules:
        return int(sys.modules["torch"].get_num_threads())
    try:
        configured = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        configured = 0
    if configured > 0:
        return configured
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    """Taken once per process: the code that is running, even if the files are edited afterwards."""
    h = hashlib.sha256()
    for name in _GRAPH_SOURCES:
        path = _PACKAGE / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(file.relative_to(_PACKAGE).as_posix().encode())
            h.update(file.read_bytes())
    return h.hexdigest()


def weights_graph_key(weights_sha256: str, config: ModelConfig, regime: tuple[bool, ...]) -> str:
    """Cache key of the graph exported from the weights file with this SHA-256 and this config, for this padding
    regime, by this software (linecolor version and network source, torch and onnx versions, opset)."""
    h = hashlib.sha256()
    h.update(repr(("weights-file", __version__, _source_digest(), _version("torch"), _version("onnx"), ONNX_OPSET,
                   regime, weights_sha256, config_digest(config))).encode())
    return h.hexdigest()[:40]


class GraphSessions:
    """onnxruntime sessions of one network, one per padding regime (shapes are dynamic within a regime).

    ``graph(regime, shape)`` supplies a regime's ONNX bytes (from the cache, or exported); ``forget(regime)`` drops
    a cached graph that onnxruntime could not load, after which ``graph`` is asked once more.
    """

    def __init__(self, graph: Callable[[tuple[bool, ...], tuple[int, ...]], bytes], *, threads: int,
                 spinning: bool = False, arena: bool = False,
                 forget: Callable[[tuple[bool, ...]], None] | None = None):
        self._ort = import_onnxruntime()
        self._graph, self._forget = graph, forget
        self.threads, self.spinning, self.arena = max(1, int(threads)), spinning, arena
        self._sessions: dict[tuple[bool, ...], Any] = {}
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"onnxruntime": self._ort.__version__, "ort_threads": self.threads, "ort_spinning": self.spinning,
                "ort_arena": self.arena}

    def session(self, shape: tuple[int, ...]) -> Any:
        """The session for a (B, C, H, W) input, built on first use."""
        key = padding_regime(*shape[-2:])
        with self._lock:
            sess = self._sessions.get(key)
            if sess is None:
                sess = self._sessions[key] = self._build(key, shape)
        return sess

    def _build(self, regime: tuple[bool, ...], shape: tuple[int, ...]) -> Any:
        ort = self._ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = self.arena
        if not self.spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        graph = self._graph(regime, shape)
        try:
            return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception:  # noqa: BLE001 - a graph onnxruntime cannot load: drop it, ask once more (its own types)
            if self._forget is None:
                raise
            self._forget(regime)
            return ort.InferenceSession(self._graph(regime, shape), options, providers=["CPUExecutionProvider"])

    def run(self, cond: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        """``cond`` (B, C, H, W) float32 C-contiguous, ``z`` (B, latent_dim) float32 or None (a graph without z)."""
        feeds = {"cond": cond} if z is None else {"cond": cond, "z": z}
        return self.session(cond.shape).run(["rgb"], feeds)[0]


class _GraphMissing(Exception):
    """No cached graph for a regime (the torch path has to export it)."""


class GraphRunner:
    """The network of a weights directory run from its cached ONNX graph, without torch (see the module docstring).

    ``runner(cond, z)``: ``cond`` (B or 1, C, H, W) float32 numpy with H, W multiples of 32, ``z`` (B, latent_dim)
    or None → (B, 3, H, W) float32 in [-1, 1], equal to the torch model's output within float rounding (it is the
    same graph the ``onnxruntime`` backend runs). Also quacks like the model where
    :class:`~linecolor.inference.pipeline.ColorizationPipeline` needs it (``config``, ``backend``, ``encode_style``,
    ``save_pretrained``); those and other padding regimes load the torch model once, lazily.
    """

    backend = "onnxruntime"
    device = "cpu"

    def __init__(self, directory: Path, config: ModelConfig, weights_sha256: str,
                 load_torch: Callable[["GraphRunner"], Any], threads: int | None = None):
        self.directory, self.config, self.weights_sha256 = directory, config, weights_sha256
        self._load_torch = load_torch
        self.threads = threads or default_threads()
        tune_malloc()  # what optimize_for_inference does for the torch path (large activations reuse memory)
        self._sessions = GraphSessions(self._cached_graph, threads=self.threads, forget=self._forget)
        self.info: dict[str, Any] = {"graph": "cached", **self._sessions.describe()}
        self._torch: Any = None
        self._torch_lock = threading.Lock()

    @classmethod
    def from_cache(cls, directory: str | Path, load_torch: Callable[["GraphRunner"], Any],
                   threads: int | None = None) -> "GraphRunner | None":
        """A runner for the weights in ``directory`` when the graph cache holds their graph at the working size;
        None otherwise (or when onnxruntime is missing): then the torch path loads, exports and caches it.
        ``load_torch(runner)`` builds that torch path for the same weights (an
        :class:`~linecolor.inference.runtime.InferenceRunner` on the onnxruntime backend, given the weights'
        SHA-256 so its exports land in this cache), for what the graph alone cannot do.

        A graph is only ever cached by the torch path after every check of
        :meth:`~linecolor.models.colorizer.Colorizer.from_pretrained` passed on the very file whose SHA-256 keys it,
        so finding it stands for those checks.

        Raises:
            WeightsError: the directory, its config or its weights are missing or unreadable, or the weights do not
                match the SHA-256 the config records.
        """
        directory = Path(directory)
        config, expected = read_model_config(directory)
        weights = directory / WEIGHTS_NAME
        cache = graph_cache_dir()
        try:
            if cache is None or not weights.is_file() or weights.stat().st_size > 4 * MAX_PARAMETERS:
                return None  # nothing to find; the torch path says what is wrong with the weights
            digest = file_sha256(weights)
        except OSError as exc:
            raise WeightsError(f"{weights} cannot be read: {exc.strerror or exc}") from exc
        if expected and digest != expected:
            raise WeightsError(f"{weights} does not match the SHA-256 recorded in {directory / 'config.json'} "
                               "(truncated, corrupted or swapped file)")
        size = config.working_size
        if not (cache / f"{weights_graph_key(digest, config, padding_regime(size, size))}.onnx").is_file():
            return None
        try:
            import_onnxruntime()
        except ImportError:
            return None
        return cls(directory, config, digest, load_torch, threads)

    # ------------------------------------------------------------------------------------------- graph
    def _graph_path(self, regime: tuple[bool, ...]) -> Path | None:
        cache = graph_cache_dir()
        return cache / f"{weights_graph_key(self.weights_sha256, self.config, regime)}.onnx" if cache else None

    def _cached_graph(self, regime: tuple[bool, ...], shape: tuple[int, ...]) -> bytes:
        path = self._graph_path(regime)
        graph = read_graph(path) if path is not None else None
        if graph is None:
            raise _GraphMissing(regime)
        return graph

    def _forget(self, regime: tuple[bool, ...]) -> None:
        path = self._graph_path(regime)
        if path is not None:
            remove_graph(path)

    def torch_runner(self) -> Any:
        """The same weights through the torch path (``load_torch``), loaded on first use: it exports (and caches)
        the graphs this runner lacks, and encodes reference images. ``load_torch`` refuses weights that are no
        longer the file this runner's graph was made from."""
        with self._torch_lock:
            if self._torch is None:
                self._torch = self._load_torch(self)
            return self._torch

    # -------------------------------------------------------------------------------------------- call
    def __call__(self, cond: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        if cond.ndim != 4:
            raise ValueError(f"cond must be (B, C, H, W), got shape {cond.shape}")
        b, c, h, w = cond.shape
        g = self.config.generator
        if c != g.in_channels or h % 32 or w % 32:
            raise ValueError(f"cond must be (B, {g.in_channels}, H, W) with H, W multiples of 32, got {cond.shape}")
        if not g.use_style_latent:
            z = None
        elif z is None:
            z = np.zeros((b, g.latent_dim), np.float32)
        if z is not None:
            if b == 1 and z.shape[0] != 1:
                cond, b = np.broadcast_to(cond, (z.shape[0], c, h, w)), z.shape[0]
            if tuple(z.shape) != (b, g.latent_dim):
                raise ValueError(f"z must have shape ({b}, {g.latent_dim}), got {z.shape}")
            z = np.ascontiguousarray(z, np.float32)
        cond = np.ascontiguousarray(cond, np.float32)
        try:
            return self._sessions.run(cond, z)
        except _GraphMissing:
            import torch

            runner = self.torch_runner()
            return runner(torch.from_numpy(cond), None if z is None else torch.from_numpy(z)).numpy()

    def warmup(self) -> "GraphRunner":
        """Run once on an empty drawing at the working size (session built now, not by the first request) and
        refuse weights whose output is not finite (:class:`~linecolor.errors.WeightsError`)."""
        g, size = self.config.generator, self.config.working_size
        out = self(np.zeros((1, g.in_channels, size, size), np.float32))
        if not np.isfinite(out).all():
            raise WeightsError("the model's output on an empty drawing is not finite (NaN or infinite values): "
                               "these weights cannot colour")
        return self

    def encode_style(self, image: Any) -> Any:
        return self.torch_runner().encode_style(image)

    def save_pretrained(self, directory: str | Path, **kwargs: Any) -> Path:
        return self.torch_runner().save_pretrained(directory, **kwargs)

    def __repr__(self) -> str:
        return f"GraphRunner({str(self.directory)!r}, threads={self.threads})"
