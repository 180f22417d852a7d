"""``linecolor bench``: latency, throughput, scaling, memory and training speed, as a markdown table and JSON.

>>> results = run_benchmark("weights/", sizes=(256, 512), batches=(8,))      # doctest: +SKIP
>>> print(format_table(results))                                           # doctest: +SKIP
>>> results = compare("weights-a/", "weights-b/")      # two weights directories, side by side  # doctest: +SKIP
>>> results = compare("plain", "onnxruntime", weights="weights/")   # two execution paths     # doctest: +SKIP

What is measured (each with ``time.perf_counter`` after warm-up runs; medians and 95th percentiles are reported):

* ``pipeline``: the whole :class:`~linecolor.inference.pipeline.ColorizationPipeline` call (decode, letterbox, network at the
  model's working size, post-processing, line overlay) on an in-memory s×s drawing with hint points, batch 1;
* ``network``: the raw network forward at s×s, batch 1 (what the pipeline would cost at working size s);
* ``throughput``: images/s of the raw network at the working size at each batch size;
* ``scaling``: raw-network latency against pixel count (256² → 2048²) and against batch size, with the fitted
  exponent of ``time ∝ pixels^k`` / ``batch^k`` (k ≤ 1: no faster than linear);
* ``memory``: peak resident set above the level before one call (Linux ``VmHWM``, reset through
  ``/proc/self/clear_refs``; otherwise the ``ru_maxrss`` delta, which only sees new process-wide peaks), and
  ``torch.cuda.max_memory_allocated`` on CUDA;
* ``training``: images/s of full training steps (G + D updates, EMA) of an :class:`ExperimentConfig` on synthetic
  batches held in memory (no data loading, no files), with and without the GAN terms;
* ``regions``: the region engine at 512²–4096² (:func:`benchmark_regions`): the first analysis of a drawing, a new
  hint stroke on an analysed drawing through Python and through the HTTP API, and G'MIC on the same drawing;
* ``startup``: cold starts in fresh processes (:func:`benchmark_startup`): ``linecolor colorize`` of one 512²
  drawing and ``linecolor serve`` until ``/api/ready``, with the exported graph cached (every start after the first)
  and without (the first), beside ``import torch`` alone.

Several candidates (execution paths, or weights directories) are measured in one process with their repeats
interleaved (A, B, B, A, …), so their ratios come from the same machine state. Timings are never asserted anywhere;
they describe one machine at one moment.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import math
import os
import platform
import re
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from linecolor.errors import LinecolorError, WeightsError
from linecolor.limits import BACKENDS
from linecolor.version import __version__

if TYPE_CHECKING:  # torch and the networks are imported where used: the CLI's parser must stay cheap to build
    import torch
    from PIL import Image

    from linecolor.inference.runtime import InferenceRunner
    from linecolor.models.colorizer import Colorizer

PATHS = ("plain", "fast", *(b for b in BACKENDS if b not in ("auto", "plain")))
"""Execution paths: ``plain`` (the reference PyTorch model), ``fast`` (:func:`optimize_for_inference` with the
chosen backend, ``auto`` by default) or a backend name of :mod:`linecolor.inference.runtime`."""
DEFAULT_SIZES = (256, 512, 1024)
DEFAULT_BATCHES = (8, 32)
DEFAULT_SCALING_SIZES = (256, 512, 1024, 2048)
DEFAULT_SCALING_BATCHES = (1, 2, 4, 8, 16, 32)
SECTIONS = ("pipeline", "network", "throughput", "scaling", "memory", "training", "regions", "startup")
DEFAULT_REGION_SIZES = (512, 2048, 4096)
GMIC_MAX_SIZE = 2048
"""The G'MIC peer is timed up to this size (at 4096² one call takes minutes on a 2-core CPU)."""


# ---------------------------------------------------------------------------------------- candidates
@dataclass
class Candidate:
    """One thing being measured: a model run through one execution path."""

    label: str
    model: Colorizer
    path: str
    runner: InferenceRunner
    weights: str | None = None
    build_s: float = 0.0
    gflop_per_pixel: float = 0.0
    """Work of the network per output pixel (convolutions scale exactly with the pixel count)."""

    def describe(self) -> dict[str, Any]:
        g = self.model.config.generator
        ws = self.model.config.working_size
        from linecolor.inference.region_head import REGION_HEAD_FILE

        head = bool(self.weights) and (Path(self.weights) / REGION_HEAD_FILE).is_file()
        return {"label": self.label, "weights": self.weights, "path": self.path, "backend": self.runner.backend,
                "region_head": head,
                "backend_info": _jsonable(self.runner.info), "build_s": round(self.build_s, 3),
                "model": {"variant": g.variant, "base_channels": g.base_channels,
                          "spade_hidden_channels": g.spade_hidden_channels, "latent_dim": g.latent_dim,
                          "use_style_latent": g.use_style_latent, "norm": g.norm,
                          "working_size": self.model.config.working_size,
                          "generator_parameters": sum(p.numel() for p in self.model.generator.parameters()),
                          "gflops_at_working_size": round(self.gflop_per_pixel * ws * ws, 4)}}


def network_gflops(model: Colorizer, h: int, w: int) -> float:
    """Multiply-add work of one generator forward at h×w, batch 1, in GFLOP (2 per multiply-add; convs and
    linear layers only; the same count for every execution path)."""
    import torch
    total = [0]

    def hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total[0] += 2 * output.numel() * (module.in_channels // module.groups) * k
        elif isinstance(module, torch.nn.Linear):
            total[0] += 2 * output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.generator.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    device = next(model.parameters()).device
    try:
        with torch.inference_mode():
            model(torch.zeros(1, model.config.generator.in_channels, h, w, device=device), _zeros_z(model, 1, device))
    finally:
        for handle in handles:
            handle.remove()
    return total[0] / 1e9


def _load_model(weights: str | Path | Colorizer, device: torch.device) -> tuple[Colorizer, str | None]:
    from linecolor.models.colorizer import Colorizer
    if isinstance(weights, Colorizer):
        return weights.to(device).eval(), None
    if weights is None:
        from linecolor.inference.pipeline import DEFAULT_WEIGHTS_DIR

        if not (DEFAULT_WEIGHTS_DIR / "model.safetensors").is_file():
            raise WeightsError(f"no bundled default weights (expected {DEFAULT_WEIGHTS_DIR}); pass --weights DIR")
        weights = DEFAULT_WEIGHTS_DIR
    return Colorizer.from_pretrained(weights, device=device), str(weights)


def _make_candidate(label: str, model: Colorizer, weights: str | None, path: str, backend: str,
                    options: dict[str, Any]) -> Candidate:
    from linecolor.inference.runtime import optimize_for_inference
    if path not in PATHS:
        raise LinecolorError(f"unknown execution path {path!r}; valid: {', '.join(PATHS)}")
    chosen = "plain" if path == "plain" else backend if path == "fast" else path
    t0 = time.perf_counter()
    try:
        runner = optimize_for_inference(model, backend=chosen, **(options if chosen != "plain" else {}))
    except (RuntimeError, ValueError) as exc:
        raise LinecolorError(f"execution path {path!r} (backend {chosen!r}) cannot run here: {exc}") from exc
    build_s = time.perf_counter() - t0
    return Candidate(label, model, path, runner, weights, build_s, network_gflops(model, 64, 64) / 64**2)


def _unique_labels(labels: Sequence[str]) -> list[str]:
    out: list[str] = []
    for label in labels:
        name, i = label, 2
        while name in out:
            name, i = f"{label}#{i}", i + 1
        out.append(name)
    return out


# ------------------------------------------------------------------------------------------- inputs
def synthetic_drawing(size: tuple[int, int], seed: int = 0) -> tuple[Image.Image, list[tuple[float, float, str, float]]]:
    """An s×s line drawing (black outlines on white) and a few hint points inside it, drawn in memory."""
    import numpy as np
    from PIL import Image, ImageDraw
    w, h = size
    rng = np.random.default_rng(seed)
    img = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(img)
    width = max(1, min(w, h) // 128)
    points = []
    colours = ["#dc3c32", "#3c8cdc", "#fac828", "#50b45a", "#aa5ac8"]
    for i in range(6):
        x0, y0 = rng.uniform(0.05, 0.6) * w, rng.uniform(0.05, 0.6) * h
        x1, y1 = x0 + rng.uniform(0.15, 0.35) * w, y0 + rng.uniform(0.15, 0.35) * h
        (draw.ellipse if i % 2 else draw.rectangle)([x0, y0, x1, y1], outline=0, width=width)
        points.append(((x0 + x1) / 2, (y0 + y1) / 2, colours[i % len(colours)], max(1.0, min(w, h) / 64)))
    return img, points


def synthetic_condition(batch: int, h: int, w: int, seed: int = 0, *, fill_guide: bool = False) -> torch.Tensor:
    """A (B, 5, H, W) conditioning tensor shaped like real input: binary lines, sparse hint discs ((B, 9, H, W)
    with the region-fill guide channels when ``fill_guide``)."""
    import numpy as np
    import torch

    from linecolor.inference.conditioning import build_condition
    from linecolor.inference.hints import hints_from_points

    conds = []
    for i in range(batch):
        img, points = synthetic_drawing((w, h), seed + i)
        rgb, mask = hints_from_points(points, (w, h))
        conds.append(build_condition(np.asarray(img), rgb, mask, binarize=True, fill_guide=fill_guide))
    return torch.stack(conds)


def _fill_guide(model: Any) -> bool:
    return bool(model.config.generator.fill_guide)


# ------------------------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _interleaved(fns: dict[str, Callable[[], Any]], *, repeats: int, warmup: int, device: torch.device,
                 budget_s: float | None = None, min_repeats: int = 3, block: int = 5) -> dict[str, list[float]]:
    """Seconds per call of each function, candidates taking turns in blocks (A B B A …) so that drifts of the
    machine state hit every candidate alike.

    Each turn is one untimed call and then up to ``block`` timed ones: alternating call by call measures the
    interference between runtimes instead (onnxruntime's and OpenMP's idle worker threads waking or still
    spinning), which a process running one path never sees. ``budget_s`` caps the timed phase, once every
    candidate has ``min_repeats`` timings, for expensive items.
    """
    slowest = 0.0
    for fn in fns.values():
        for _ in range(warmup):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            slowest = max(slowest, time.perf_counter() - t0)
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    repeats = max(1, repeats)
    block = max(1, min(block, math.ceil(repeats / 2)))
    if budget_s is not None and slowest > 0:  # slow items: shorter turns, so the budget still sees several
        block = max(1, min(block, int(budget_s / (4 * len(names) * slowest))))
    start = time.perf_counter()
    turn = 0
    while any(len(t) < repeats for t in times.values()):
        for name in (names if turn % 2 == 0 else names[::-1]):
            todo = min(block, repeats - len(times[name]))
            if todo <= 0:
                continue
            if len(names) > 1 and (warmup or turn):
                fns[name]()  # re-warm after the other candidates' turn
                _sync(device)
            for _ in range(todo):
                _sync(device)
                t0 = time.perf_counter()
                fns[name]()
                _sync(device)
                times[name].append(time.perf_counter() - t0)
        turn += 1
        if (budget_s is not None and time.perf_counter() - start > budget_s
                and min(len(t) for t in times.values()) >= min(min_repeats, repeats)):
            break
    return times


def _stats(seconds: list[float]) -> dict[str, Any]:
    import numpy as np
    a = np.asarray(seconds, dtype=np.float64) * 1e3
    return {"p50_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)), "mean_ms": float(a.mean()),
            "min_ms": float(a.min()), "n": int(a.size)}


def _exponent(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of log y against log x (time ∝ x^k)."""
    import numpy as np
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y and y > 0]
    if len(pts) < 2:
        return None
    lx, ly = np.array(pts).T
    if np.ptp(lx) == 0:
        return None
    return float(np.polyfit(lx, ly, 1)[0])


# ------------------------------------------------------------------------------------------- memory
def _rss_mb() -> tuple[float | None, float | None]:
    """(current RSS, peak RSS since the last reset) in MiB from /proc/self/status, or (None, None)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None, None
    rss = re.search(r"VmRSS:\s+(\d+)\s+kB", text)
    hwm = re.search(r"VmHWM:\s+(\d+)\s+kB", text)
    if not rss or not hwm:
        return None, None
    return int(rss.group(1)) / 1024, int(hwm.group(1)) / 1024


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)
        return True
    except OSError:
        return False


def _release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``), so that the next call's peak resident set
    shows what that call needs, even when :func:`linecolor.inference.allocator.tune_malloc` keeps freed blocks around."""
    import ctypes
    import gc

    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def _ru_maxrss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def measure_peak_memory(fn: Callable[[], Any], device: torch.device) -> dict[str, Any]:
    """Peak memory of one call of ``fn`` above the level just before it (freed heap memory released first)."""
    import torch
    _sync(device)
    out: dict[str, Any] = {}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base_cuda = torch.cuda.memory_allocated(device)
    _release_free_memory()
    reset = _reset_peak_rss()
    before, _ = _rss_mb()
    before_max = _ru_maxrss_mb()
    fn()
    _sync(device)
    _, peak = _rss_mb()
    if reset and before is not None and peak is not None:
        out["peak_rss_mb"], out["rss_method"] = max(0.0, peak - before), "VmHWM"
    else:
        out["peak_rss_mb"], out["rss_method"] = max(0.0, _ru_maxrss_mb() - before_max), "ru_maxrss-delta"
    if device.type == "cuda":
        out["cuda_peak_mb"] = (torch.cuda.max_memory_allocated(device) - base_cuda) / 2**20
    return out


# ------------------------------------------------------------------------------------------ pipeline
def _region_head_of(candidate: Candidate):
    """The region head beside ``candidate``'s weights (None without a weights directory or a head): the pipelines
    timed here are the ones ``from_pretrained`` would serve, head included."""
    from linecolor.inference.region_head import RegionHead

    return RegionHead.load(candidate.weights) if candidate.weights else None


def _pipeline_for(candidate: Candidate, device: torch.device):
    """A ColorizationPipeline running ``candidate``'s path, with the region head its weights have.

    Works with the pipeline as it is (the runner stands in for the model) and with a pipeline that takes a
    ``backend=`` argument of its own.
    """
    from linecolor.inference.pipeline import ColorizationPipeline

    head = _region_head_of(candidate)
    params = inspect.signature(ColorizationPipeline.__init__).parameters
    if "backend" in params:
        backend = candidate.runner.backend
        return ColorizationPipeline(candidate.model, device=device, backend=backend, region_head=head)
    if candidate.path == "plain":
        return ColorizationPipeline(candidate.model, device=device, region_head=head)
    return ColorizationPipeline(candidate.runner, device=device, region_head=head)  # type: ignore[arg-type]


def _canvas(model: Colorizer, size: tuple[int, int]) -> tuple[int, int]:
    from linecolor.inference.conditioning import letterbox_geometry

    box = letterbox_geometry(size, model.config.working_size, model.config.generator.downsample_factor)
    return box.canvas_size[1], box.canvas_size[0]  # (H', W')


# ------------------------------------------------------------------------------------------ benchmark
def _zeros_z(model: Colorizer, batch: int, device: torch.device) -> torch.Tensor | None:
    import torch
    g = model.config.generator
    return torch.zeros(batch, g.latent_dim, device=device) if g.use_style_latent else None


def _bench_candidates(candidates: list[Candidate], *, device: torch.device, sizes: Sequence[int],
                      batches: Sequence[int], repeats: int, warmup: int, scaling_sizes: Sequence[int],
                      scaling_batches: Sequence[int], sections: Sequence[str], budget_s: float | None,
                      progress: Callable[[str], None] | None) -> dict[str, Any]:
    say = progress or (lambda _msg: None)
    labels = [c.label for c in candidates]
    results: dict[str, Any] = {}
    memory = "memory" in sections

    def item(fns: dict[str, Callable[[], Any]], what: str) -> dict[str, Any]:
        say(what)
        times = _interleaved(fns, repeats=repeats, warmup=warmup, device=device, budget_s=budget_s)
        out = {label: _stats(times[label]) for label in labels}
        if memory:
            for label in labels:
                out[label].update(measure_peak_memory(fns[label], device))
        ref = out[labels[0]]["p50_ms"]
        return {"results": out, "speedup": {label: ref / out[label]["p50_ms"] if out[label]["p50_ms"] else None
                                            for label in labels}}

    if "pipeline" in sections:
        rows = []
        pipes = {c.label: _pipeline_for(c, device) for c in candidates}
        for s in sizes:
            img, points = synthetic_drawing((s, s), seed=s)
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            png = buf.getvalue()  # the pipeline decodes it every call, as in real use
            fns = {label: (lambda p=pipes[label]: p(png, points, mode="deterministic")) for label in labels}
            row = {"size": s, "canvas": {c.label: list(_canvas(c.model, (s, s))) for c in candidates}}
            row.update(item(fns, f"pipeline {s}²"))
            rows.append(row)
        results["pipeline"] = rows

    network_sizes = sorted(set(sizes if "network" in sections else ()) |
                           set(scaling_sizes if "scaling" in sections else ()))
    by_size: dict[int, dict[str, Any]] = {}
    for s in network_sizes:
        conds = {guide: synthetic_condition(1, s, s, seed=s, fill_guide=guide).to(device)
                 for guide in {_fill_guide(c.model) for c in candidates}}
        fns = {c.label: (lambda c=c, x=conds[_fill_guide(c.model)], z=_zeros_z(c.model, 1, device): c.runner(x, z))
               for c in candidates}
        by_size[s] = {"size": s, "pixels": s * s, **item(fns, f"network {s}²")}
        for c in candidates:
            r = by_size[s]["results"][c.label]
            r["gflop"] = c.gflop_per_pixel * s * s
            r["gflop_per_s"] = r["gflop"] / (r["p50_ms"] / 1e3) if r["p50_ms"] else None
    if "network" in sections:
        results["network"] = [by_size[s] for s in sizes]

    batch_list = sorted(set(batches if "throughput" in sections else ()) |
                        set(scaling_batches if "scaling" in sections else ()))
    by_batch: dict[int, dict[str, Any]] = {}
    for b in batch_list:
        fns = {}
        for c in candidates:
            ws = c.model.config.working_size
            x = synthetic_condition(b, ws, ws, seed=b, fill_guide=_fill_guide(c.model)).to(device)
            fns[c.label] = (lambda c=c, x=x,
                            z=_zeros_z(c.model, b, device): c.runner(x, z))
        row = {"batch": b, "size": {c.label: c.model.config.working_size for c in candidates}, **item(fns, f"batch {b}")}
        for label in labels:
            r = row["results"][label]
            r["images_per_s"] = b / (r["p50_ms"] / 1e3) if r["p50_ms"] else None
        by_batch[b] = row
    if "throughput" in sections:
        results["throughput"] = [by_batch[b] for b in batches]

    if "scaling" in sections:
        pts = [by_size[s] for s in scaling_sizes]
        bts = [by_batch[b] for b in scaling_batches]
        results["scaling"] = {
            "pixels": pts,
            "pixel_exponent": {label: _exponent([p["pixels"] for p in pts],
                                                [p["results"][label]["p50_ms"] for p in pts]) for label in labels},
            "batch": bts,
            "batch_exponent": {label: _exponent([p["batch"] for p in bts],
                                                [p["results"][label]["p50_ms"] for p in bts]) for label in labels},
        }
    return results


def _meta(device: torch.device, repeats: int, warmup: int) -> dict[str, Any]:
    import torch
    meta = {"linecolor": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "device": str(device), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "repeats": repeats, "warmup": warmup,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), None)
        meta["cpu"] = cpu
    except OSError:
        pass
    if device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(device)
    try:
        from linecolor.inference.graph import import_onnxruntime

        meta["onnxruntime"] = import_onnxruntime().__version__
    except ImportError:
        meta["onnxruntime"] = None
    return meta


def _run(specs: list[tuple[str, Any, str]], *, device: str | torch.device = "cpu", backend: str = "auto",
         sizes: Sequence[int] = DEFAULT_SIZES, batches: Sequence[int] = DEFAULT_BATCHES, repeats: int = 20,
         warmup: int = 3, scaling_sizes: Sequence[int] = DEFAULT_SCALING_SIZES,
         scaling_batches: Sequence[int] = DEFAULT_SCALING_BATCHES, sections: Sequence[str] = SECTIONS,
         training_config=None, training_steps: int = 3, budget_s: float | None = 30.0,
         backend_options: dict[str, Any] | None = None, num_threads: int | None = None,
         progress: Callable[[str], None] | None = None, region_sizes: Sequence[int] = DEFAULT_REGION_SIZES,
         gmic: bool = True) -> dict[str, Any]:
    """``specs``: (label, weights dir or Colorizer, path) per candidate."""
    import torch

    from linecolor.inference.allocator import malloc_tuned, tune_malloc
    from linecolor.models.colorizer import Colorizer
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise LinecolorError(f"unknown benchmark section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LinecolorError("device cuda requested but CUDA is not available on this machine")
    previous_threads = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    if dev.type == "cpu" and (backend_options or {}).get("malloc", True):
        tune_malloc()  # process-wide: done up front so that every candidate, plain included, runs alike
    try:
        by_key: dict[str, tuple[Colorizer, str | None]] = {}
        candidates = []
        for label, weights, path in specs:
            key = str(weights) if not isinstance(weights, Colorizer) else f"id:{id(weights)}"
            if key not in by_key:
                by_key[key] = _load_model(weights, dev)
            model, wdir = by_key[key]
            candidates.append(_make_candidate(label, model, wdir, path, backend, backend_options or {}))
        results: dict[str, Any] = {"meta": _meta(dev, repeats, warmup),
                                   "candidates": [c.describe() for c in candidates]}
        results.update(_bench_candidates(candidates, device=dev, sizes=sizes, batches=batches, repeats=repeats,
                                         warmup=warmup, scaling_sizes=scaling_sizes,
                                         scaling_batches=scaling_batches, sections=sections, budget_s=budget_s,
                                         progress=progress))
        if "regions" in sections and candidates:
            if progress:
                progress("regions")
            fast = next((c for c in candidates if c.path == "fast"), candidates[0])  # what the studio runs
            results["regions"] = benchmark_regions(fast, device=dev, sizes=region_sizes, repeats=max(3, repeats // 4),
                                                   warmup=min(1, warmup), gmic=gmic, progress=progress)
        if "startup" in sections and dev.type == "cpu" and candidates and candidates[0].weights:
            if progress:  # (a model that lives only in memory has no start-up to measure)
                progress("startup")
            results["startup"] = benchmark_startup(candidates[0].weights, repeats=max(1, repeats // 4))
        if training_config is not None and "training" in sections:
            if progress:
                progress("training")
            results["training"] = benchmark_training(training_config, device=dev, steps=training_steps,
                                                     warmup=1 if warmup else 0, memory="memory" in sections)
        results["meta"]["torch_threads"] = torch.get_num_threads()
        results["meta"]["malloc_tuned"] = malloc_tuned()
        return _jsonable(results)
    finally:
        torch.set_num_threads(previous_threads)


def gapped_drawing(size: int, seed: int = 0) -> tuple[Image.Image, list[tuple[float, float, str, float]]]:
    """:func:`synthetic_drawing` with gaps of about two stroke widths cut into its outlines: the region engine's
    bench drawing (its analysis has closing strokes to find)."""
    import numpy as np
    from PIL import Image

    image, points = synthetic_drawing((size, size), seed)
    line = np.asarray(image).copy()
    rng = np.random.default_rng(seed + 1)
    width = max(1, size // 128)
    ys, xs = np.nonzero(line < 128)
    for i in rng.choice(ys.size, size=min(12, ys.size), replace=False):  # on the outlines
        y, x = int(ys[i]), int(xs[i])
        line[max(0, y - width):y + width + 1, max(0, x - width):x + width + 1] = 255
    return Image.fromarray(line), points


def benchmark_regions(candidate: Candidate, *, device, sizes: Sequence[int] = DEFAULT_REGION_SIZES, repeats: int = 5,
                      warmup: int = 1, gmic: bool = True,
                      progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The region engine at artist sizes: first analysis of a drawing, a new hint stroke on an analysed drawing
    (through the Python pipeline, and through the HTTP API: hint PNG in, result PNG out, the line sent once), and
    the G'MIC peer on the same drawing and hints where installed (up to :data:`GMIC_MAX_SIZE`). Strokes are timed
    after ``warmup`` untimed ones of each kind (a studio's first stroke follows the server's own warm-up)."""
    import numpy as np
    from PIL import Image

    from linecolor.config import ServerConfig
    from linecolor.evaluation.gmic import gmic_available, gmic_colorize
    from linecolor.inference.hints import hints_from_points
    from linecolor.inference.pipeline import ColorizationPipeline
    from linecolor.raster.regions import analyse
    from linecolor.server import create_app

    pipe = ColorizationPipeline(candidate.runner, device=device, region_head=_region_head_of(candidate))
    client = create_app(ServerConfig(max_content_length=256 << 20, max_pixels=max(sizes) ** 2),
                        pipeline=pipe).test_client()
    rows = []
    for size in sizes:
        if progress:
            progress(f"regions {size}²")
        image, points = gapped_drawing(size)
        line = np.asarray(image)
        strokes = [points[: k + 1] for k in range(len(points))]  # each "stroke" adds a hint, as a user paints
        analysis_s = []
        for _ in range(max(1, repeats // 2)):
            started = time.perf_counter()
            analysis = analyse(line)
            analysis_s.append(time.perf_counter() - started)
        pipe.analyses.put(analysis)
        stroke_s = []
        for k in range(warmup + repeats):
            started = time.perf_counter()
            pipe(analysis, strokes[k % len(strokes)])
            stroke_s.append(time.perf_counter() - started)
        stroke_s = stroke_s[warmup:]

        def api_strokes(**fields) -> list[float]:
            """Seconds of ``repeats`` API strokes (one more hint each; ``warmup`` untimed first) with ``fields``."""
            times = []
            for k in range(warmup + repeats):
                rgb, mask = hints_from_points(strokes[k % len(strokes)], (size, size))
                layer = Image.fromarray(np.dstack([rgb, np.where(mask, 255, 0).astype(np.uint8)]), "RGBA")
                buffer = io.BytesIO()
                layer.save(buffer, format="PNG", compress_level=1)
                data = {"analysis": analysis.id, "hints": (io.BytesIO(buffer.getvalue()), "h.png"),
                        **{name: (io.BytesIO(value), f"{name}.png") if isinstance(value, bytes) else value
                           for name, value in fields.items()}}
                started = time.perf_counter()
                response = client.post("/api/colorize", data=data, content_type="multipart/form-data")
                times.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise LinecolorError(f"the API answered {response.status_code}: {response.data[:200]!r}")
            return times[warmup:]

        api_s = api_strokes()
        reference_s = []
        if pipe.config.generator.use_style_latent:  # reference mode: the studio sends its reference every stroke
            reference_s = api_strokes(mode="reference", reference=_studio_reference(image))
        row = {"size": size, "regions": analysis.num_regions, "closures": analysis.num_closures,
               "analysis": _stats(analysis_s), "stroke": _stats(stroke_s), "api_stroke": _stats(api_s),
               **({"api_reference_stroke": _stats(reference_s)} if reference_s else {}),
               "breakdown": _stroke_breakdown(pipe, analysis, image, strokes[-1], repeats),
               "request_memory": _worst_request_memory(client, size, device)}
        if gmic and gmic_available() and size <= GMIC_MAX_SIZE:
            rgb, mask = hints_from_points(points, (size, size))
            started = time.perf_counter()
            gmic_colorize(line, rgb, mask)
            row["gmic"] = _stats([time.perf_counter() - started])
        rows.append(row)
    return rows


STUDIO_REFERENCE_SIDE = 512
"""The long side of the reference the studio sends (it scales a loaded picture down to this: ``studio.js``)."""


def _studio_reference(line) -> bytes:
    """PNG bytes of a coloured drawing as the studio sends a reference: the bench drawing's lines over four flat
    colours, at most :data:`STUDIO_REFERENCE_SIDE` px a side."""
    import numpy as np
    from PIL import Image

    picture = Image.fromarray(np.asarray(line.convert("L"))).convert("RGB")
    picture.thumbnail((STUDIO_REFERENCE_SIDE, STUDIO_REFERENCE_SIDE))
    pixels = np.asarray(picture).copy()
    h, w = pixels.shape[:2]
    quarters = np.add.outer(np.arange(h) * 2 // h, np.arange(w) * 2 // w * 2)
    colours = np.array([(240, 200, 60), (90, 150, 220), (220, 90, 80), (120, 190, 110)], np.uint8)
    pixels = np.where(pixels < 128, pixels, colours[quarters]).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


STARTUP_TIMEOUT_S = 300
"""A fresh process that has not coloured (or is not ready) after this long is a failure, not a measurement."""


def benchmark_startup(weights: str | Path | None, *, repeats: int = 5, size: int = 512) -> dict[str, Any]:
    """Wall time of fresh processes, from spawn to exit (``linecolor colorize`` of one ``size``² gapped drawing
    with its 6 hint points, written to a PNG) or to the first 200 of ``/api/ready`` (``linecolor serve --port 0``),
    each ``repeats`` times with the exported ONNX graph in a cache of their own (what every start after the first
    finds) and once with that cache empty (the first start: torch loads and exports the graph); and ``import torch``
    alone in a fresh interpreter, the floor of any start that needs torch. ``weights``: a model directory, or None
    for the bundled model."""
    import subprocess
    import tempfile
    import urllib.request

    def timed(cmd: list[str], env: dict[str, str]) -> float:
        started = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=STARTUP_TIMEOUT_S)
        return time.perf_counter() - started

    def serve_ready(cmd: list[str], env: dict[str, str]) -> float:
        import selectors

        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            port = None
            with selectors.DefaultSelector() as waiting:  # a deadline on the wait for its address line
                waiting.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
                while port is None and time.perf_counter() - started < STARTUP_TIMEOUT_S:
                    if not waiting.select(timeout=1.0):
                        continue
                    line = proc.stdout.readline()  # type: ignore[union-attr]
                    if not line:
                        raise LinecolorError(f"linecolor serve exited ({proc.wait()}) without serving")
                    found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
                    port = int(found.group(1)) if found else None
            if port is None:
                raise LinecolorError("linecolor serve did not say where it serves in time")
            while time.perf_counter() - started < STARTUP_TIMEOUT_S:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/ready", timeout=5) as response:
                        if response.status == 200:
                            return time.perf_counter() - started
                except OSError:
                    pass
                time.sleep(0.02)
            raise LinecolorError("linecolor serve was not ready in time")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            proc.stdout.close()  # type: ignore[union-attr]

    with tempfile.TemporaryDirectory(prefix="linecolor-bench-") as tmp:
        image, points = gapped_drawing(size)
        drawing = Path(tmp) / "drawing.png"
        image.save(drawing)
        hints = ";".join(f"{x:.0f},{y:.0f},{colour},{radius:g}" for x, y, colour, radius in points)
        chosen = ["--weights", str(weights)] if weights else []
        colorize = [sys.executable, "-m", "linecolor", "colorize", str(drawing), "--points", hints,
                    "--out", str(Path(tmp) / "out.png"), "--overwrite", *chosen]
        serve = [sys.executable, "-m", "linecolor", "serve", "--port", "0", *chosen]
        env = {**os.environ, "LINECOLOR_CACHE_DIR": str(Path(tmp) / "cache")}
        first = timed(colorize, env)  # empty cache: exports the graph
        colorize_s = [timed(colorize, env) for _ in range(repeats)]
        serve_s = [serve_ready(serve, env) for _ in range(repeats)]
        cold_env = {**env, "LINECOLOR_CACHE_DIR": "off"}
        serve_uncached = serve_ready(serve, cold_env)
        torch_s = [timed([sys.executable, "-c", "import torch"], env) for _ in range(repeats)]
    return {"size": size, "colorize_cached": _stats(colorize_s), "colorize_first": _stats([first]),
            "serve_cached": _stats(serve_s), "serve_uncached": _stats([serve_uncached]),
            "import_torch": _stats(torch_s)}


def _worst_request_memory(client, size: int, device) -> dict[str, Any]:
    """Peak resident memory of the costliest legal request at ``size``: a drawing the server has not seen (its
    analysis is computed and cached) with a hint layer that covers every pixel."""
    import numpy as np
    from PIL import Image

    line, _ = gapped_drawing(size, seed=1)
    pngs = []
    for image in (line, Image.fromarray(np.full((size, size, 4), (200, 40, 40, 255), np.uint8), "RGBA")):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        pngs.append(buffer.getvalue())

    def request():
        response = client.post("/api/colorize", data={"line": (io.BytesIO(pngs[0]), "l.png"),
                                                      "hints": (io.BytesIO(pngs[1]), "h.png")},
                               content_type="multipart/form-data")
        if response.status_code != 200:
            raise LinecolorError(f"the API answered {response.status_code}: {response.data[:200]!r}")

    return measure_peak_memory(request, device)


def _stroke_breakdown(pipe, analysis, image, points, repeats: int) -> dict[str, float]:
    """Median milliseconds of each step of one API stroke, timed apart with the library's public functions: decoding
    the hint PNG, (when the line is sent again) decoding and hashing it, assigning the hints to regions, resizing the
    hints to the working canvas (the letterboxed line is kept with the drawing), the network (fill guide,
    conditioning tensor, forward), the composite (colour layer and line overlay) and the PNG encoding."""
    import numpy as np
    from PIL import Image

    from linecolor.inference.composite import WorkGrid, compose, fill_guide
    from linecolor.inference.conditioning import build_condition, letterbox_geometry, letterbox_hints, tensor_to_image
    from linecolor.inference.hints import hints_from_points, hints_from_rgba
    from linecolor.raster.colouring import assign_hints
    from linecolor.raster.imageio import open_image, to_gray
    from linecolor.raster.regions import analysis_id

    h, w = analysis.shape
    rgb, mask = hints_from_points(points, (w, h))
    hints_png = io.BytesIO()
    Image.fromarray(np.dstack([rgb, np.where(mask, 255, 0).astype(np.uint8)]), "RGBA").save(hints_png, "PNG",
                                                                                           compress_level=1)
    line_png = io.BytesIO()
    image.save(line_png, "PNG", compress_level=1)
    config = pipe.config
    box = letterbox_geometry((w, h), config.working_size, config.generator.downsample_factor)
    grid = WorkGrid.of(analysis, box)
    steps: dict[str, list[float]] = {k: [] for k in ("hints decode", "line decode + hash", "assign hints",
                                                     "hints letterbox", "network", "composite", "PNG encode")}
    for _ in range(repeats):
        t0 = time.perf_counter()
        hint_rgb, hint_mask = hints_from_rgba(open_image(hints_png.getvalue()))
        t1 = time.perf_counter()
        analysis_id(np.asarray(to_gray(open_image(line_png.getvalue()))), None)
        t2 = time.perf_counter()
        colours = assign_hints(analysis, hint_rgb, hint_mask)
        t3 = time.perf_counter()
        rgb_l, mask_l = letterbox_hints(hint_rgb, hint_mask, box)
        t3b = time.perf_counter()
        line_l = grid.line  # letterboxed once per drawing, as the pipeline does
        fill = fill_guide(colours, grid, box, line_l)
        cond = build_condition(line_l, rgb_l, mask_l, binarize=config.generator.binarize_line,
                               fill_guide=config.generator.fill_guide, fill=fill)[None]
        out = tensor_to_image(pipe.model(cond, None)[0])
        t4 = time.perf_counter()
        result = compose(analysis, colours, out, box, grid, fill)
        t5 = time.perf_counter()
        result.save(io.BytesIO(), "PNG", compress_level=1)
        t6 = time.perf_counter()
        for key, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t3b - t3, t4 - t3b, t5 - t4, t6 - t5)):
            steps[key].append(dt)
    return {k: _stats(v)["p50_ms"] for k, v in steps.items()}


def run_benchmark(weights: str | Path | Colorizer | None, *, device: str | torch.device = "cpu",
                  sizes: Sequence[int] = DEFAULT_SIZES, batches: Sequence[int] = DEFAULT_BATCHES,
                  repeats: int = 20, warmup: int = 3, paths: Sequence[str] = ("plain", "fast"),
                  training_config=None, **options: Any) -> dict[str, Any]:
    """Benchmark one model through each of ``paths``, side by side (interleaved repeats).

    Args:
        weights: a model directory (``save_pretrained`` layout), a :class:`Colorizer`, or ``None`` (the bundled
            default model).
        sizes: output sizes s (s×s) of the pipeline latency and raw-network latency rows (batch 1).
        batches: batch sizes of the throughput rows (raw network at the model's working size).
        repeats, warmup: timed and untimed calls per item and candidate (expensive items stop after
            ``budget_s`` seconds of timing, but not before 3 repeats).
        paths: execution paths (see :data:`PATHS`); the first is the reference of the speed-up columns.
        training_config: an :class:`~linecolor.config.ExperimentConfig` (or a TOML path) whose training step
            throughput to measure; ``None`` skips it.
        **options: ``backend`` (what ``fast`` means; default ``auto``), ``scaling_sizes``, ``scaling_batches``,
            ``sections`` (subset of :data:`SECTIONS`), ``training_steps``, ``budget_s``, ``backend_options``
            (passed to :func:`optimize_for_inference`), ``num_threads``, ``progress`` (a callable taking a line).

    Returns:
        A JSON-serialisable dict: ``meta``, ``candidates`` and one entry per section (see :func:`format_table`).
    """
    if not paths:
        raise LinecolorError("at least one execution path is needed")
    labels = _unique_labels(list(paths))
    specs = [(label, weights, path) for label, path in zip(labels, paths)]
    return _run(specs, device=device, sizes=sizes, batches=batches, repeats=repeats, warmup=warmup,
                training_config=_training_config(training_config), **options)


def compare(a: str | Path | Colorizer, b: str | Path | Colorizer, *, weights: str | Path | Colorizer | None = None,
            path: str = "fast", **kwargs: Any) -> dict[str, Any]:
    """Two weights directories, or two execution paths, measured side by side in one process.

    ``a`` and ``b`` are each an execution path name (see :data:`PATHS`; it then runs ``weights``) or a weights
    directory / :class:`Colorizer` (run through ``path``). Speed-ups in the result are relative to ``a``.
    Other keyword arguments as in :func:`run_benchmark`.
    """
    from linecolor.models.colorizer import Colorizer
    specs = []
    for x in (a, b):
        if isinstance(x, str) and x in PATHS:
            specs.append([x, weights, x])
        else:
            label = Path(str(x)).name if not isinstance(x, Colorizer) else "model"
            specs.append([f"{label}:{path}", x, path])
    for spec, label in zip(specs, _unique_labels([s[0] for s in specs])):
        spec[0] = label
    training_config = _training_config(kwargs.pop("training_config", None))
    return _run([tuple(s) for s in specs], training_config=training_config, **kwargs)


def _training_config(config):
    if config is None or not isinstance(config, (str, Path)):
        return config
    from linecolor.config import ExperimentConfig, load_config

    return load_config(ExperimentConfig, config)


# ------------------------------------------------------------------------------------------ training
def benchmark_training(config, *, device: str | torch.device = "cpu", steps: int = 3, warmup: int = 1,
                       memory: bool = True, seed: int = 0) -> dict[str, Any]:
    """Training images/s of ``config`` (an ExperimentConfig) on synthetic in-memory batches.

    Runs the trainer's own step (:func:`linecolor.training.trainer.train_step`: style encoder, generator,
    discriminator update, generator update) plus the EMA update, at ``data.image_size`` and ``train.batch_size``,
    once with the GAN terms off (the reconstruction warm-up phase) and once with them on. Data loading and
    augmentation are not included; the perceptual loss is left out (it needs a weights file).
    """
    import copy

    import torch

    from linecolor.models.colorizer import Colorizer
    from linecolor.models.discriminator import MultiScaleDiscriminator
    from linecolor.training.trainer import ema_update, train_step

    dev = torch.device(device)
    tc = config.train
    previous_threads = torch.get_num_threads()
    if tc.num_threads and dev.type == "cpu":
        torch.set_num_threads(tc.num_threads)
    try:
        torch.manual_seed(seed)
        model = Colorizer(config.model).to(dev).train()
        disc = MultiScaleDiscriminator(config.discriminator, cond_channels=config.model.generator.in_channels)
        disc = disc.to(dev).train()
        ema = copy.deepcopy(model).eval().requires_grad_(False) if tc.ema_decay > 0 else None
        opt_g = torch.optim.Adam(model.parameters(), lr=tc.lr_generator, betas=(tc.beta1, tc.beta2))
        opt_d = torch.optim.Adam(disc.parameters(), lr=tc.lr_discriminator, betas=(tc.beta1, tc.beta2))
        size, bs = config.data.image_size, tc.batch_size
        cond = synthetic_condition(bs, size, size, seed=seed, fill_guide=config.model.generator.fill_guide).to(dev)
        g = torch.Generator().manual_seed(seed)
        target = (torch.rand(bs, 3, size, size, generator=g) * 2 - 1).to(dev)
        z_generator = torch.Generator(device="cpu").manual_seed(seed)
        autocast = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=tc.bf16 and dev.type == "cuda")
        cfg = config
        if config.loss.perceptual > 0:
            import dataclasses

            cfg = dataclasses.replace(config, loss=dataclasses.replace(config.loss, perceptual=0.0,
                                                                       perceptual_weights=None))

        def step(use_gan: bool) -> None:
            losses = train_step(cfg, model, disc, model, None, opt_g, opt_d, cond, target, z_generator, autocast,
                                 use_gan)
            if losses is not None and ema is not None:
                ema_update(ema, model, tc.ema_decay)

        phases = [("reconstruction_only", False)]
        if config.loss.gan > 0 or config.loss.feature_matching > 0:
            phases.append(("with_gan", True))
        out: dict[str, Any] = {"batch_size": bs, "image_size": size, "steps": steps,
                               "threads": torch.get_num_threads(), "device": str(dev),
                               "perceptual_included": False, "data_loading_included": False}
        for name, use_gan in phases:
            def fn(u: bool = use_gan) -> None:
                step(u)

            times = _interleaved({name: fn}, repeats=max(1, steps), warmup=warmup, device=dev)
            stats = _stats(times[name])
            stats["images_per_s"] = bs / (stats["p50_ms"] / 1e3) if stats["p50_ms"] else None
            if memory:
                stats.update(measure_peak_memory(fn, dev))
            out[name] = stats
        return out
    finally:
        torch.set_num_threads(previous_threads)


# ----------------------------------------------------------------------------------------- reporting
def _jsonable(x: Any) -> Any:
    import numpy as np
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:.0f}"
        return f"{v:.{digits}f}"
    return str(v)


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i >= left else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _latency_rows(items: list[dict[str, Any]], labels: list[str], key: str, extra: Callable[[dict], list[str]] | None,
                  value: str = "latency") -> list[list[str]]:
    rows = []
    for it in items:
        row = [str(it[key])] + (extra(it) if extra else [])
        for label in labels:
            r = it["results"][label]
            if value == "throughput":
                row += [_fmt(r.get("images_per_s")), _fmt(r["p50_ms"])]
            else:
                row += [_fmt(r["p50_ms"]), _fmt(r["p95_ms"])]
            if value == "network":
                row.append(_fmt(r.get("gflop_per_s")))
            if "peak_rss_mb" in r:
                row.append(_fmt(r.get("cuda_peak_mb", r["peak_rss_mb"])))
        for label in labels[1:]:
            row.append(_fmt(it["speedup"][label], 2) + "×")
        rows.append(row)
    return rows


def _latency_header(first: list[str], labels: list[str], memory: bool, value: str = "latency",
                    cuda: bool = False) -> list[str]:
    header = list(first)
    for label in labels:
        header += ([f"{label} img/s", f"{label} p50 ms"] if value == "throughput" else
                   [f"{label} p50 ms", f"{label} p95 ms"])
        if value == "network":
            header.append(f"{label} GFLOP/s")
        if memory:
            header.append(f"{label} peak {'CUDA ' if cuda else ''}MiB")
    header += [f"{label} vs {labels[0]}" for label in labels[1:]]
    return header


def format_table(results: dict[str, Any]) -> str:
    """The results of :func:`run_benchmark` / :func:`compare` as markdown (one table per section)."""
    meta = results["meta"]
    cands = results["candidates"]
    labels = [c["label"] for c in cands]
    cuda = str(meta.get("device", "")).startswith("cuda")
    out = [f"**linecolor bench** — {meta.get('gpu') or meta.get('cpu') or meta.get('platform')}, device "
           f"{meta['device']}, {meta['torch_threads']} threads, torch {meta['torch']}"
           + (f", onnxruntime {meta['onnxruntime']}" if meta.get("onnxruntime") else "")
           + f"; median of {meta['repeats']} repeats after {meta['warmup']} warm-up calls (p95 beside it)"
           + ("; glibc malloc tuned to reuse large blocks (process-wide, every candidate alike)."
              if meta.get("malloc_tuned") else "; glibc malloc as it comes.")]
    out.append("")
    out.append(_table(["candidate", "weights", "backend", "variant", "nf", "SPADE hidden", "latent", "working size",
                       "generator params", "GFLOP at working size", "region head"],
                      [[c["label"], c["weights"] or "(in memory)", c["backend"], c["model"]["variant"],
                        str(c["model"]["base_channels"]), str(c["model"]["spade_hidden_channels"]),
                        str(c["model"]["latent_dim"]), str(c["model"]["working_size"]),
                        f"{c['model']['generator_parameters']:,}", _fmt(c["model"]["gflops_at_working_size"], 2),
                        "yes" if c.get("region_head") else "no"]
                       for c in cands], left=4))

    def has_memory(items) -> bool:
        return bool(items) and "peak_rss_mb" in items[0]["results"][labels[0]]

    if results.get("pipeline"):
        items = results["pipeline"]
        mem = has_memory(items)
        out += ["", "### Pipeline latency (batch 1, whole call: decode → network at working size → overlay)", "",
                _table(_latency_header(["output", "network canvas"], labels, mem, cuda=cuda),
                       _latency_rows(items, labels, "size",
                                     lambda it: [" / ".join(sorted({"×".join(map(str, v[::-1]))
                                                                    for v in it["canvas"].values()}))]))]
    if results.get("network"):
        items = results["network"]
        out += ["", "### Raw network forward (batch 1, network run at s×s; GFLOP = convolution work per image)", "",
                _table(_latency_header(["s", "GFLOP"], labels, has_memory(items), "network", cuda),
                       _latency_rows(items, labels, "size",
                                     lambda it: [" / ".join(sorted({_fmt(r.get("gflop"), 2)
                                                                    for r in it["results"].values()}))],
                                     "network"))]
    if results.get("throughput"):
        items = results["throughput"]
        out += ["", "### Throughput (raw network at the working size)", "",
                _table(_latency_header(["batch", "size"], labels, has_memory(items), "throughput", cuda),
                       _latency_rows(items, labels, "batch",
                                     lambda it: [" / ".join(sorted({f"{v}²" for v in it["size"].values()}))],
                                     "throughput"))]
    sc = results.get("scaling")
    if sc:
        out += ["", "### Scaling with pixel count (raw network, batch 1; ms per megapixel)", ""]
        rows = []
        base = sc["pixels"][0] if sc["pixels"] else None
        for p in sc["pixels"]:
            row = [f"{p['size']}²", f"{p['pixels'] / base['pixels']:.0f}×"]
            for label in labels:
                r, r0 = p["results"][label], base["results"][label]
                row += [_fmt(r["p50_ms"]), _fmt(r["p50_ms"] / (p["pixels"] / 1e6)),
                        _fmt(r["p50_ms"] / r0["p50_ms"], 2) + "×"]
            rows.append(row)
        header = ["size", "pixels"] + [h for label in labels for h in
                                       (f"{label} p50 ms", f"{label} ms/MP", f"{label} time")]
        out.append(_table(header, rows))
        out.append("")
        out.append("Fitted time ∝ pixels^k: " + ", ".join(f"{label} k = {_fmt(sc['pixel_exponent'][label], 2)}"
                                                          for label in labels) + " (k ≤ 1: no faster than linear).")
        out += ["", "### Scaling with batch size (raw network at the working size; ms per image)", ""]
        rows = []
        for p in sc["batch"]:
            row = [str(p["batch"])]
            for label in labels:
                r = p["results"][label]
                row += [_fmt(r["p50_ms"]), _fmt(r["p50_ms"] / p["batch"])]
            rows.append(row)
        out.append(_table(["batch"] + [h for label in labels for h in (f"{label} p50 ms", f"{label} ms/image")],
                          rows))
        out.append("")
        out.append("Fitted time ∝ batch^k: " + ", ".join(f"{label} k = {_fmt(sc['batch_exponent'][label], 2)}"
                                                         for label in labels) + ".")
    tr = results.get("training")
    if tr:
        out += ["", f"### Training throughput (batch {tr['batch_size']}, {tr['image_size']}², {tr['threads']} "
                    f"threads, synthetic in-memory batches: no data loading)", ""]
        rows = []
        for phase in ("reconstruction_only", "with_gan"):
            if phase in tr:
                r = tr[phase]
                rows.append([phase.replace("_", " "), _fmt(r.get("images_per_s"), 2), _fmt(r["p50_ms"]),
                             _fmt(r.get("cuda_peak_mb", r.get("peak_rss_mb")))])
        out.append(_table(["phase", "images/s", "step p50 ms", f"peak {'CUDA ' if cuda else ''}MiB"], rows))
    rg = results.get("regions")
    if rg:
        out += ["", "### Region engine (gapped synthetic drawing, 6 hints; a stroke = one more hint on an analysed "
                    "drawing)", "",
                _table(["size", "regions", "closing strokes", "first analysis p50 ms", "stroke p50 ms",
                        "stroke p95 ms", "API stroke p50 ms", "API stroke p95 ms", "API stroke, reference mode p50 ms",
                        "worst request peak MB", "G'MIC ms"],
                       [[f"{r['size']}²", str(r["regions"]), str(r["closures"]), _fmt(r["analysis"]["p50_ms"]),
                         _fmt(r["stroke"]["p50_ms"]), _fmt(r["stroke"]["p95_ms"]), _fmt(r["api_stroke"]["p50_ms"]),
                         _fmt(r["api_stroke"]["p95_ms"]),
                         _fmt(r["api_reference_stroke"]["p50_ms"]) if "api_reference_stroke" in r else "–",
                         _fmt(r["request_memory"]["peak_rss_mb"], 0) if "request_memory" in r else "–",
                         _fmt(r["gmic"]["p50_ms"]) if "gmic" in r else "–"]
                        for r in rg])]
        out += ["", "Worst request: a drawing the server has not analysed yet with a hint layer covering every pixel, "
                    "through the HTTP API; peak resident set above the level before it. Reference mode: the same API "
                    f"strokes with a {STUDIO_REFERENCE_SIDE}-px coloured reference sent with each, as the studio "
                    "does."]
        keys = list(rg[0]["breakdown"])
        out += ["", "Where an API stroke's time goes (p50 ms of each step, timed apart; the line is not sent again "
                    "when the studio has its analysis id):", "",
                _table(["size"] + keys, [[f"{r['size']}²"] + [_fmt(r["breakdown"][k]) for k in keys] for r in rg])]
        if len(rg) > 1:
            px = [r["size"] ** 2 for r in rg]
            out += ["", "Fitted time ∝ pixels^k: first analysis k = "
                    + _fmt(_exponent(px, [r["analysis"]["p50_ms"] for r in rg]), 2) + ", stroke k = "
                    + _fmt(_exponent(px, [r["stroke"]["p50_ms"] for r in rg]), 2) + ", API stroke k = "
                    + _fmt(_exponent(px, [r["api_stroke"]["p50_ms"] for r in rg]), 2) + "."]
    st = results.get("startup")
    if st:
        out += ["", f"### Cold start (fresh processes; wall time, p50 of {st['colorize_cached']['n']} unless one run)", "",
                _table(["what", "graph cached p50 ms", "graph cached p95 ms", "first start (no cache) ms"],
                       [[f"linecolor colorize, one {st['size']}² drawing, 6 hints", _fmt(st["colorize_cached"]["p50_ms"]),
                         _fmt(st["colorize_cached"]["p95_ms"]), _fmt(st["colorize_first"]["p50_ms"])],
                        ["linecolor serve until /api/ready", _fmt(st["serve_cached"]["p50_ms"]),
                         _fmt(st["serve_cached"]["p95_ms"]), _fmt(st["serve_uncached"]["p50_ms"])],
                        ["import torch alone (the floor of a start that needs torch)", _fmt(st["import_torch"]["p50_ms"]),
                         _fmt(st["import_torch"]["p95_ms"]), "–"]])]
    if any(has_memory(results.get(k) or []) for k in ("pipeline", "network", "throughput")):
        method = next((it["results"][labels[0]].get("rss_method") for k in ("pipeline", "network", "throughput")
                       for it in (results.get(k) or [])), "")
        out += ["", f"Peak memory: resident set above the level before one call ({method})"
                    + ("; CUDA: torch.cuda.max_memory_allocated above the level before." if cuda else ".")]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------- CLI
def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(v for v in text.replace(" ", "").split(",") if v)


def add_bench_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``linecolor bench`` flags (for the CLI's subparser)."""
    parser.add_argument("--weights", help="model directory (default: the bundled model)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    parser.add_argument("--sizes", type=_int_list, default=DEFAULT_SIZES,
                        help="output sizes s (s×s) for latency, comma-separated (default 256,512,1024)")
    parser.add_argument("--batches", type=_int_list, default=DEFAULT_BATCHES,
                        help="batch sizes for throughput at the working size (default 8,32)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per item and candidate (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    parser.add_argument("--paths", type=_str_list, default=("plain", "fast"),
                        help=f"execution paths side by side, first = reference (default plain,fast; valid: "
                             f"{', '.join(PATHS)})")
    parser.add_argument("--backend", default="auto", choices=[b for b in BACKENDS if b != "plain"],
                        help="what the 'fast' path runs (default auto)")
    parser.add_argument("--compare", metavar="DIR_OR_PATH",
                        help="run this weights directory (through the first of --paths), or this execution path "
                             "(on --weights), side by side with --weights")
    parser.add_argument("--scaling-sizes", type=_int_list, default=DEFAULT_SCALING_SIZES,
                        help="sizes of the pixel-scaling rows (default 256,512,1024,2048)")
    parser.add_argument("--scaling-batches", type=_int_list, default=DEFAULT_SCALING_BATCHES,
                        help="batch sizes of the batch-scaling rows (default 1,2,4,8,16,32)")
    parser.add_argument("--sections", type=_str_list, default=SECTIONS,
                        help=f"what to measure (default all: {','.join(SECTIONS)})")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="stop timing an item after this many seconds, once it has 3 repeats (default 30)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--no-malloc-tuning", action="store_true",
                        help="leave glibc malloc as it comes (by default it is tuned to reuse large blocks for every "
                             "candidate, plain included: it is process-wide)")
    parser.add_argument("--ort-spin", action="store_true",
                        help="let onnxruntime's worker threads spin between ops (default: they sleep)")
    parser.add_argument("--region-sizes", type=_int_list, default=DEFAULT_REGION_SIZES,
                        help="drawing sizes of the region-engine rows (default 512,2048,4096)")
    parser.add_argument("--no-gmic", action="store_true", help="do not time the G'MIC peer in the regions section")
    parser.add_argument("--train-config", metavar="TOML", help="also measure training images/s of this config")
    parser.add_argument("--train-steps", type=int, default=3, help="timed training steps per phase (default 3)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def run_bench_args(args: argparse.Namespace) -> int:
    """Run ``linecolor bench`` from parsed arguments; prints the markdown table. Raises LinecolorError."""
    if args.repeats < 1 or args.warmup < 0:
        raise LinecolorError("--repeats must be ≥ 1 and --warmup ≥ 0")
    bad = [p for p in args.paths if p not in PATHS]
    if bad or not args.paths:
        raise LinecolorError(f"unknown execution path(s) {', '.join(bad) or '(none)'}; valid: {', '.join(PATHS)}")

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"bench: {msg}", file=sys.stderr, flush=True)

    options = dict(device=args.device, sizes=args.sizes, batches=args.batches, repeats=args.repeats,
                   warmup=args.warmup, backend=args.backend, scaling_sizes=args.scaling_sizes,
                   scaling_batches=args.scaling_batches, sections=args.sections, budget_s=args.budget,
                   num_threads=args.threads, training_config=args.train_config, training_steps=args.train_steps,
                   backend_options={"malloc": not args.no_malloc_tuning, "ort_spinning": args.ort_spin},
                   region_sizes=args.region_sizes, gmic=not args.no_gmic, progress=progress)
    if args.compare:
        other = args.compare
        if other not in PATHS and not Path(other).is_dir():
            raise LinecolorError(f"--compare {other!r} is neither an execution path ({', '.join(PATHS)}) nor a "
                                 "directory")
        if other in PATHS:
            results = compare(args.paths[0], other, weights=args.weights, **options)
        else:
            results = compare(args.weights or str(_default_weights()), other, path=args.paths[0], **options)
    else:
        results = run_benchmark(args.weights, paths=args.paths, **options)
    print(format_table(results))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        progress(f"results written to {out}")
    return 0


def _default_weights() -> Path:
    from linecolor.inference.pipeline import DEFAULT_WEIGHTS_DIR

    return DEFAULT_WEIGHTS_DIR


def bench_cli(argv: list[str] | None = None) -> int:
    """``main(argv)``-style entry point: parse the bench flags, run, print; exit status 2 on a user error."""
    parser = add_bench_arguments(argparse.ArgumentParser(prog="linecolor bench",
                                                         description="Measure linecolor's speed and memory."))
    args = parser.parse_args(argv)
    try:
        return run_bench_args(args)
    except LinecolorError as exc:
        print(f"linecolor bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(bench_cli())
