"""The fast inference path computes what the plain model computes (random weights, random inputs), and the
modules' own fusions (``fuse_for_inference`` / ``unfuse``) are exact rewrites."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.inference.runtime import (
    BACKENDS,
    InferenceRunner,
    fused_copy,
    optimize_for_inference,
)
from linecolor.models import Colorizer
from linecolor.models._layers import conv, fold_spectral_norm
from linecolor.models.generator import build_generator

from conftest import tiny_model_config

TOL = 1e-4  # fp32: reordered sums and folded constants, nothing lower-precision


def random_model(variant: str = "ladder", seed: int = 0, **gen) -> Colorizer:
    """A tiny model with every weight perturbed and spectral-norm vectors (and batch-norm statistics) trained."""
    torch.manual_seed(seed)
    model = Colorizer(tiny_model_config(variant, **gen))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    model.train()
    with torch.no_grad():
        for _ in range(2):  # power iterations move u, v away from their initial values
            model(torch.randn(2, 5, 64, 64, generator=g), torch.randn(2, model.config.generator.latent_dim, generator=g))
    return model.eval()


def random_inputs(b: int, h: int, w: int, latent: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    line = torch.where(torch.rand(b, 1, h, w, generator=g) < 0.15, -1.0, 1.0)
    mask = (torch.rand(b, 1, h, w, generator=g) < 0.05).float()
    rgb = (torch.rand(b, 3, h, w, generator=g) * 2 - 1) * mask
    return torch.cat([line, rgb, mask], 1), torch.randn(b, latent, generator=g)


def reference(model: Colorizer, cond: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
    with torch.inference_mode():
        return model(cond, z)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def models() -> dict[str, Colorizer]:
    return {v: random_model(v) for v in ("ladder", "spade")}


@pytest.mark.parametrize("variant", ["ladder", "spade"])
@pytest.mark.parametrize("size", [(64, 64), (32, 96)])
def test_eager_fast_path_matches_plain(models, variant, size):
    model = models[variant]
    runner = optimize_for_inference(model, backend="eager")
    cond, z = random_inputs(2, *size, latent=8, seed=size[1])
    assert max_diff(runner(cond, z), reference(model, cond, z)) < TOL
    assert max_diff(runner(cond, None), reference(model, cond, None)) < TOL


@pytest.mark.parametrize("variant", ["ladder", "spade"])
def test_one_drawing_many_latents_broadcasts(models, variant):
    model = models[variant]
    runner = optimize_for_inference(model, backend="eager")
    cond, z = random_inputs(3, 64, 96, latent=8, seed=5)
    out = runner(cond[:1], z)
    assert out.shape == (3, 3, 64, 96)
    # Compared at the same batch size: the plain model itself is only batch-invariant to ~2e-4 on random weights
    # (different conv kernels per batch size).
    expected = reference(model, cond[:1].expand(3, -1, -1, -1), z)
    assert max_diff(out, expected) < TOL


@pytest.mark.parametrize("gen", [dict(norm="batch"), dict(use_style_latent=False), dict(ladder_channels=6)])
def test_eager_fast_path_matches_plain_for_other_configs(gen):
    model = random_model("ladder", seed=3, **gen)
    runner = optimize_for_inference(model, backend="eager")
    cond, z = random_inputs(2, 64, 64, latent=8, seed=7)
    assert max_diff(runner(cond, z), reference(model, cond, z)) < TOL


def test_channels_last_matches_plain(models):
    model = models["ladder"]
    runner = optimize_for_inference(model, backend="eager", channels_last=True)
    cond, z = random_inputs(1, 64, 96, latent=8, seed=11)
    assert max_diff(runner(cond, z), reference(model, cond, z)) < TOL


def test_building_the_fast_path_leaves_the_model_untouched():
    model = random_model("ladder", seed=4)
    cond, z = random_inputs(1, 64, 64, latent=8)
    before = reference(model, cond, z)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fused_copy(model)
    optimize_for_inference(model, backend="eager")
    assert torch.equal(reference(model, cond, z), before)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert torch.nn.utils.parametrize.is_parametrized(model.generator.blocks[0].conv_0)


def test_folding_spectral_norm_is_exact_and_needs_eval_mode():
    torch.manual_seed(0)
    layer = conv(4, 6, spectral=True)
    layer.train()
    layer(torch.randn(1, 4, 8, 8))  # one power iteration
    with pytest.raises(ValueError, match="eval mode"):
        fold_spectral_norm(layer)
    layer.eval()
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        before = layer(x)
        fold_spectral_norm(layer)
        assert not torch.nn.utils.parametrize.is_parametrized(layer)
        assert torch.equal(layer(x), before)


@pytest.mark.parametrize("variant", ["ladder", "spade"])
def test_fuse_and_unfuse_on_the_generator_itself(models, variant):
    """The speed-up is a method on the module (one forward for both): fusing keeps the function, unfusing too."""
    model = models[variant]
    generator = build_generator(model.config.generator)
    generator.load_state_dict(model.generator.state_dict())
    generator.eval()
    cond, z = random_inputs(2, 64, 64, latent=8, seed=13)
    with torch.inference_mode():
        plain = generator(cond, z)
        generator.fuse_for_inference()
        assert all(block.fused is not None for block in generator.blocks)
        fused = generator(cond, z)
        generator.unfuse()
        assert all(block.fused is None for block in generator.blocks)
        unfused = generator(cond, z)
    assert max_diff(fused, plain) < TOL and max_diff(unfused, plain) < TOL
    # Not a no-op: the fused path really computes differently (another summation order).
    assert not torch.equal(fused, plain)


def test_plain_backend_is_the_model_itself(models):
    model = models["spade"]
    runner = optimize_for_inference(model, backend="plain")
    cond, z = random_inputs(1, 64, 64, latent=8)
    assert torch.equal(runner(cond, z), reference(model, cond, z))


def test_auto_backend_and_bad_arguments(models):
    runner = optimize_for_inference(models["ladder"])
    assert isinstance(runner, InferenceRunner) and runner.backend in BACKENDS
    with pytest.raises(ValueError, match="unknown backend"):
        optimize_for_inference(models["ladder"], backend="tensorrt")
    with pytest.raises(TypeError):
        optimize_for_inference(models["ladder"].generator)
    with pytest.raises(ValueError, match="multiple"):
        runner(torch.zeros(1, 5, 48, 64))
    with pytest.raises(ValueError):
        runner(torch.zeros(1, 5, 64, 64), torch.zeros(2, 3))


def test_runner_stands_in_for_the_model_in_the_pipeline(models):
    model = models["ladder"]
    line = np.full((80, 120), 255, np.uint8)
    line[20:60, 30] = 0
    line[40, 10:110] = 0
    hints = [(50, 30, "#ff8800", 4), (90, 60, "#2060ff", 3)]
    image = Image.fromarray(line)
    plain = np.asarray(ColorizationPipeline(model)(image, hints), dtype=np.int16)
    fast = np.asarray(ColorizationPipeline(optimize_for_inference(model, backend="eager"))(image, hints),
                      dtype=np.int16)
    assert np.abs(plain - fast).max() <= 1  # uint8 rounding of values within 1e-4 of each other


def _onnx_ready() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


# The ``spade`` variant's first block instance-normalises a conv of the 32×-average-pooled input: on a 2×3 grid of
# nearly equal averages that divides by a tiny deviation, so any change of kernel (even the plain model's own batch-3
# vs batch-1 kernels, measured: up to 3e-4) moves its output by ~1e-4. onnxruntime's kernels differ from torch's;
# its error matches the plain model's own batch-size noise, hence the wider bound for that variant.
ORT_TOL = {"ladder": TOL, "spade": 1e-3}


@pytest.mark.skipif(not _onnx_ready(), reason="onnxruntime not installed")
@pytest.mark.parametrize("variant", ["ladder", "spade"])
def test_onnxruntime_fast_path_matches_plain(models, variant):
    model = models[variant]
    runner = optimize_for_inference(model, backend="onnxruntime")
    # One export serves both shapes of the same padding regime; the 32-row canvas needs its own session.
    for b, size in ((2, (64, 64)), (1, (96, 64)), (3, (32, 96))):
        cond, z = random_inputs(b, *size, latent=8, seed=b)
        assert max_diff(runner(cond, z), reference(model, cond, z)) < ORT_TOL[variant]
    cond, z = random_inputs(2, 64, 64, latent=8, seed=9)
    expected = torch.cat([reference(model, cond[:1], z[i:i + 1]) for i in range(2)])
    assert max_diff(runner(cond[:1], z), expected) < ORT_TOL[variant]
    assert len(runner._forward.sessions._sessions) == 2


@pytest.mark.skipif(os.environ.get("LINECOLOR_TEST_COMPILE") != "1",
                    reason="torch.compile takes minutes on a small CPU; set LINECOLOR_TEST_COMPILE=1")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's own imports inside inductor
def test_compile_fast_path_matches_plain(models):
    model = models["ladder"]
    runner = optimize_for_inference(model, backend="compile")
    cond, z = random_inputs(1, 64, 96, latent=8)
    assert max_diff(runner(cond, z), reference(model, cond, z)) < TOL


def guided_inputs(b: int, h: int, w: int, latent: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``random_inputs`` plus the 4 region-fill channels (fill RGB · filled, filled) with random content."""
    cond, z = random_inputs(b, h, w, latent, seed)
    g = torch.Generator().manual_seed(seed + 7)
    filled = (torch.rand(b, 1, h, w, generator=g) < 0.5).float()
    fill = (torch.rand(b, 3, h, w, generator=g) * 2 - 1) * filled
    return torch.cat([cond, fill, filled], 1), z


@pytest.mark.parametrize("backend", ["eager", "onnxruntime"])
@pytest.mark.parametrize("variant", ["ladder", "spade"])
def test_fill_guided_model_fast_path_matches_plain(variant, backend):
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
    torch.manual_seed(3)
    model = Colorizer(tiny_model_config(variant, fill_guide=True))
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in model.parameters():  # move to_rgb off its zero start, so the network's part is tested too
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    model.eval()
    runner = optimize_for_inference(model, backend=backend)
    cond, z = guided_inputs(2, 64, 96, latent=8, seed=11)
    assert max_diff(runner(cond, z), reference(model, cond, z)) < TOL
    assert max_diff(runner(cond, None), reference(model, cond, None)) < TOL


@pytest.mark.skipif(not _onnx_ready(), reason="onnxruntime not installed")
def test_the_onnx_graph_is_cached_per_weights_and_a_damaged_cache_is_rebuilt(models, tmp_path, monkeypatch):
    monkeypatch.setenv("LINECOLOR_CACHE_DIR", str(tmp_path))
    model = models["ladder"]
    cond, z = random_inputs(1, 64, 64, latent=8, seed=21)
    first = optimize_for_inference(model, backend="onnxruntime")(cond, z)
    graphs = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert len(graphs) == 1
    exported = []
    real_export = torch.onnx.export
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: exported.append(1) or real_export(*a, **k))
    again = optimize_for_inference(model, backend="onnxruntime")(cond, z)
    assert not exported and torch.equal(first, again)  # the cached graph, no export
    other = random_model("ladder", seed=9)  # other weights: another graph, never the cached one
    optimize_for_inference(other, backend="onnxruntime")(cond, z)
    assert exported and len(list((tmp_path / "onnx").glob("*.onnx"))) == 2
    graphs[0].write_bytes(b"not an onnx graph")  # a damaged cache entry is exported again and replaced
    assert max_diff(optimize_for_inference(model, backend="onnxruntime")(cond, z), first) == 0
    assert graphs[0].read_bytes() != b"not an onnx graph"


def test_the_graph_cache_can_be_switched_off(monkeypatch):
    from linecolor.inference.graph import graph_cache_dir

    monkeypatch.setenv("LINECOLOR_CACHE_DIR", "off")
    assert graph_cache_dir() is None


def test_loading_and_exporting_leave_nothing_in_tmpdir(tmp_path):
    """In a fresh process (where torch._dynamo is first imported: by the meta-device parameter count and by the
    ONNX export) loading the bundled model and colouring once writes nothing to TMPDIR."""
    import subprocess
    import sys

    scratch, graphs = tmp_path / "tmpdir", tmp_path / "graphs"
    scratch.mkdir()
    script = ("from PIL import Image\nfrom linecolor import ColorizationPipeline\n"
              "ColorizationPipeline.from_pretrained()(Image.new('L', (64, 64), 255))\n")
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    env.update(TMPDIR=str(scratch), LINECOLOR_CACHE_DIR=str(graphs))
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
    assert sorted(os.listdir(scratch)) == []
