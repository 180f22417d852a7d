"""The torch-free start (:mod:`linecolor.inference.graph`): a weights directory whose exported graph is cached is
run from it without importing torch, with the same outputs as the torch path, and a graph is never used for other
weights or other configs; a damaged cache entry is rebuilt."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from linecolor.inference.graph import GraphRunner
from linecolor.inference.pipeline import DEFAULT_WEIGHTS_DIR, ColorizationPipeline
from linecolor.inference.runtime import InferenceRunner

pytest.importorskip("onnxruntime")

PAIRS = Path(__file__).parent / "data" / "pairs"
STEMS = sorted(p.name[: -len("-line.png")] for p in PAIRS.glob("*-line.png"))[:2]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LINECOLOR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


def test_a_cached_graph_colours_exactly_as_the_torch_path(cache):
    torch_pipe = ColorizationPipeline.from_pretrained()  # nothing cached yet: torch loads, exports, caches
    assert isinstance(torch_pipe.model, InferenceRunner) and len(list(cache.glob("*.onnx"))) == 1
    graph_pipe = ColorizationPipeline.from_pretrained()
    assert isinstance(graph_pipe.model, GraphRunner)
    settings = [{"mode": "deterministic"}, {"mode": "stochastic", "seed": 7}, {"latent_shift": 1.5},
                {"mode": "reference", "composite": "network"}, {"composite": "network"}]
    for stem in STEMS:
        line, hints = Image.open(PAIRS / f"{stem}-line.png"), Image.open(PAIRS / f"{stem}-hints10.png")
        for options in settings:
            reference = Image.open(PAIRS / f"{stem}-color.png") if options.get("mode") == "reference" else None
            expected = np.asarray(torch_pipe(line, hints, reference, **options))
            assert np.array_equal(np.asarray(graph_pipe(line, hints, reference, **options)), expected), options
    assert graph_pipe.suggest_at(line, 10, 10, hints) == torch_pipe.suggest_at(line, 10, 10, hints)


def test_other_weights_or_an_edited_config_never_use_the_graph(cache, tmp_path):
    ColorizationPipeline.from_pretrained()  # caches the bundled weights' graph
    assert GraphRunner.from_cache(DEFAULT_WEIGHTS_DIR, lambda runner: None) is not None
    other = tmp_path / "other"
    shutil.copytree(DEFAULT_WEIGHTS_DIR, other)
    config = json.loads((other / "config.json").read_text())
    config.pop("_weights_sha256")  # nothing to compare the weights with: the graph is keyed by their digest
    data = bytearray((other / "model.safetensors").read_bytes())
    data[-1] ^= 1  # one bit of one weight
    (other / "model.safetensors").write_bytes(bytes(data))
    (other / "config.json").write_text(json.dumps(config))
    assert GraphRunner.from_cache(other, lambda runner: None) is None
    edited = tmp_path / "edited"
    shutil.copytree(DEFAULT_WEIGHTS_DIR, edited)
    config = json.loads((edited / "config.json").read_text())
    config["working_size"] = 96
    (edited / "config.json").write_text(json.dumps(config))
    assert GraphRunner.from_cache(edited, lambda runner: None) is None


def test_a_damaged_cached_graph_is_exported_again(cache):
    expected = np.asarray(ColorizationPipeline.from_pretrained()(Image.open(PAIRS / f"{STEMS[0]}-line.png")))
    (graph,) = cache.glob("*.onnx")
    graph.write_bytes(b"not an onnx graph")
    pipe = ColorizationPipeline.from_pretrained()
    assert isinstance(pipe.model, GraphRunner)  # the file is there; the session fails, torch exports it again
    assert np.array_equal(np.asarray(pipe(Image.open(PAIRS / f"{STEMS[0]}-line.png"))), expected)
    assert graph.read_bytes() != b"not an onnx graph"


def test_a_cold_start_with_a_cached_graph_imports_no_torch(tmp_path):
    """In fresh processes: the first run exports the graph, the second colours (and suggests) without torch;
    ``preload()`` (what the server calls once ready) then loads torch in the background."""
    script = ("import sys\nfrom PIL import Image\nfrom linecolor import ColorizationPipeline\n"
              "pipe = ColorizationPipeline.from_pretrained()\n"
              "pipe(Image.new('L', (96, 64), 255), [(10, 10, '#ff0000', 3)])\n"
              "pipe.suggest_at(Image.new('L', (96, 64), 255), 5, 5)\n"
              "print(type(pipe.model).__name__, 'torch' in sys.modules)\n"
              "thread = pipe.preload()\n"
              "thread is not None and thread.join(240)\n"
              "print('torch' in sys.modules)\n")
    env = {**os.environ, "LINECOLOR_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True,
                           timeout=300).stdout.split() for _ in range(2)]
    assert runs[0] == ["InferenceRunner", "True", "True"]
    assert runs[1] == ["GraphRunner", "False", "True"]


def test_a_graph_runner_refuses_a_torch_twin_of_changed_weights(cache, tmp_path):
    """The graph runs the weights it was exported from; when reference mode (or another padding regime) later needs
    the torch model and the file has changed meanwhile, it says so instead of mixing two models."""
    from linecolor.errors import WeightsError

    model = tmp_path / "model"
    shutil.copytree(DEFAULT_WEIGHTS_DIR, model)
    config = json.loads((model / "config.json").read_text())
    config.pop("_weights_sha256")  # so that the edited file below still loads on its own
    (model / "config.json").write_text(json.dumps(config))
    ColorizationPipeline.from_pretrained(model)  # exports and caches the graph
    pipe = ColorizationPipeline.from_pretrained(model)
    assert isinstance(pipe.model, GraphRunner)
    assert sorted(p.suffix for p in cache.iterdir()) == [".onnx", ".sha256"]  # the graph and its digest
    data = bytearray((model / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (model / "model.safetensors").write_bytes(bytes(data))
    line = Image.open(PAIRS / f"{STEMS[0]}-line.png")
    with pytest.raises(WeightsError, match="changed since"):
        pipe(line, mode="reference", reference=Image.open(PAIRS / f"{STEMS[0]}-color.png"))
    assert np.asarray(pipe(line)).shape[:2] == line.size[::-1]  # the graph itself still colours
