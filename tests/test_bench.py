"""``linecolor bench`` runs end to end on a tiny model and returns well-formed results (timings never asserted)."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from linecolor.bench import (
    SECTIONS,
    bench_cli,
    compare,
    format_table,
    run_benchmark,
    synthetic_condition,
)
from linecolor.models import Colorizer

from conftest import PYTHON, tiny_experiment, tiny_model_config

TINY = dict(sizes=(64, 96), batches=(2,), repeats=1, warmup=0, scaling_sizes=(64, 128), scaling_batches=(1, 2))


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    torch.manual_seed(0)
    return Colorizer(tiny_model_config()).save_pretrained(tmp_path_factory.mktemp("bench") / "tiny")


def _check_item(item: dict, labels: list[str]) -> None:
    assert set(item["results"]) == set(labels)
    for label in labels:
        r = item["results"][label]
        assert r["n"] >= 1 and r["p50_ms"] > 0 and r["p95_ms"] >= r["min_ms"] > 0
    assert item["speedup"][labels[0]] == pytest.approx(1.0)


def test_run_benchmark_end_to_end(weights_dir):
    results = run_benchmark(str(weights_dir), training_config=tiny_experiment(), training_steps=1, **TINY)
    labels = [c["label"] for c in results["candidates"]]
    assert labels == ["plain", "fast"]
    assert results["candidates"][0]["backend"] == "plain"
    assert results["candidates"][1]["model"]["working_size"] == 64
    assert [r["size"] for r in results["pipeline"]] == [64, 96]
    assert results["pipeline"][1]["canvas"]["fast"] == [64, 64]  # the pipeline runs the network at working size
    assert [r["size"] for r in results["network"]] == [64, 96]
    assert [r["batch"] for r in results["throughput"]] == [2]
    for section in ("pipeline", "network", "throughput"):
        for item in results[section]:
            _check_item(item, labels)
            assert all("peak_rss_mb" in item["results"][label] for label in labels)
    assert all(r["images_per_s"] > 0 for r in results["throughput"][0]["results"].values())
    sc = results["scaling"]
    assert [p["size"] for p in sc["pixels"]] == [64, 128] and [p["batch"] for p in sc["batch"]] == [1, 2]
    assert set(sc["pixel_exponent"]) == set(labels)
    tr = results["training"]
    assert tr["batch_size"] == 2 and tr["image_size"] == 64
    assert tr["reconstruction_only"]["images_per_s"] > 0 and tr["with_gan"]["images_per_s"] > 0

    st = results["startup"]  # fresh processes with this weights directory: colorize, serve, import torch
    for key in ("colorize_cached", "colorize_first", "serve_cached", "serve_uncached", "import_torch"):
        assert st[key]["n"] >= 1 and st[key]["p50_ms"] > 0, key

    assert json.loads(json.dumps(results)) == results
    table = format_table(results)
    for heading in ("Pipeline latency", "Raw network forward", "Throughput", "Scaling with pixel count",
                    "Scaling with batch size", "Training throughput", "fast vs plain", "Cold start"):
        assert heading in table


def test_bench_times_the_region_head_beside_the_weights(tmp_path):
    """The pipelines timed are the ones from_pretrained serves: with the region head the weights have."""
    from types import SimpleNamespace

    from test_region_head import fixed_head

    from linecolor.bench import _pipeline_for

    torch.manual_seed(0)
    for name in ("plain", "headed"):
        directory = Colorizer(tiny_model_config(fill_guide=True)).save_pretrained(tmp_path / name)
        if name == "headed":
            fixed_head([0, 9, 0, 0, 0]).save(directory)
        results = run_benchmark(str(directory), sections=("pipeline",), sizes=(64,), repeats=1, warmup=0,
                                paths=("plain",))
        assert results["candidates"][0]["region_head"] is (name == "headed")
        assert ("| yes |" in format_table(results)) is (name == "headed")
        candidate = SimpleNamespace(weights=str(directory), model=Colorizer.from_pretrained(directory), path="plain",
                                    runner=SimpleNamespace(backend="plain"))
        assert (_pipeline_for(candidate, torch.device("cpu")).region_head is not None) is (name == "headed")


def test_compare_two_paths_and_two_directories(weights_dir, tmp_path):
    paths = compare("plain", "eager", weights=str(weights_dir), sections=("network",), sizes=(64,), repeats=1,
                    warmup=0)
    assert [c["label"] for c in paths["candidates"]] == ["plain", "eager"]
    assert set(paths) >= {"meta", "candidates", "network"} and "pipeline" not in paths
    _check_item(paths["network"][0], ["plain", "eager"])

    torch.manual_seed(1)
    other = Colorizer(tiny_model_config("spade")).save_pretrained(tmp_path / "tiny")  # same folder name
    dirs = compare(str(weights_dir), str(other), path="eager", sections=("throughput",), batches=(1,), repeats=1,
                   warmup=0)
    labels = [c["label"] for c in dirs["candidates"]]
    assert labels == ["tiny:eager", "tiny:eager#2"]
    assert [c["model"]["variant"] for c in dirs["candidates"]] == ["ladder", "spade"]
    _check_item(dirs["throughput"][0], labels)
    assert "tiny:eager#2 vs tiny:eager" in format_table(dirs)


def test_bench_cli_writes_table_and_json(weights_dir, tmp_path, capsys):
    out = tmp_path / "res" / "bench.json"
    rc = bench_cli(["--weights", str(weights_dir), "--sizes", "64", "--batches", "2", "--repeats", "1",
                    "--warmup", "0", "--sections", "pipeline,network,throughput", "--compare", "eager",
                    "--json", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| 64 |" in printed and "eager vs" in printed
    data = json.loads(out.read_text())
    assert [c["label"] for c in data["candidates"]] == ["plain", "eager"]
    assert data["meta"]["repeats"] == 1


def test_bench_cli_user_errors_exit_2(weights_dir, tmp_path, capsys):
    assert bench_cli(["--weights", str(tmp_path / "missing"), "--sections", "network", "--sizes", "64"]) == 2
    assert "error" in capsys.readouterr().err
    assert bench_cli(["--weights", str(weights_dir), "--paths", "plain,warp"]) == 2
    assert bench_cli(["--weights", str(weights_dir), "--compare", str(tmp_path / "nope")]) == 2
    assert bench_cli(["--weights", str(weights_dir), "--sections", "network,gpu"]) == 2
    assert set(SECTIONS) >= {"pipeline", "training"}


def test_synthetic_condition_looks_like_real_input():
    cond = synthetic_condition(2, 64, 96)
    assert cond.shape == (2, 5, 64, 96)
    assert set(cond[:, 0].unique().tolist()) <= {-1.0, 1.0} and (cond[:, 0] < 0).any()
    assert set(cond[:, 4].unique().tolist()) == {0.0, 1.0}


def test_importing_bench_is_cheap_and_its_paths_are_the_backends():
    code = "import sys, linecolor.bench; print('torch' in sys.modules)"
    assert subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
    from linecolor import bench
    from linecolor.limits import BACKENDS

    assert set(bench.PATHS) == {"fast"} | set(BACKENDS) - {"auto"}


def test_the_region_section_times_strokes_in_reference_mode_too(weights_dir):
    """The studio sends its reference with every stroke in reference mode: the bench times those API strokes."""
    results = run_benchmark(str(weights_dir), sections=("regions",), region_sizes=(96,), repeats=2, warmup=0,
                            gmic=False)
    row = results["regions"][0]
    assert row["api_reference_stroke"]["n"] == row["api_stroke"]["n"] >= 2 and row["api_reference_stroke"]["p50_ms"] > 0
    assert "API stroke, reference mode p50 ms" in format_table(results)
