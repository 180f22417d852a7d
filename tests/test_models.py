"""Network contracts (timm/diffusers style): shapes, ranges, gradients, no NaN, save/load, determinism."""

from __future__ import annotations

import json

import pytest
import torch

from linecolor.config import DiscriminatorConfig, GeneratorConfig
from linecolor.errors import ConfigError, WeightsError
from linecolor.models import GENERATORS, Colorizer, MultiScaleDiscriminator, build_generator
from linecolor.models._layers import ReflectConv2d
from linecolor.models.ladder_encoder import LadderEncoder
from linecolor.models.perceptual import PerceptualLoss, ResNetFeatures
from linecolor.models.spade import SPADE, SPADEResBlock
from linecolor.models.style_encoder import kl_divergence, reparameterize

from conftest import tiny_model_config


def random_cond(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    line = torch.where(torch.rand(b, 1, h, w, generator=g) < 0.1, -1.0, 1.0)
    mask = (torch.rand(b, 1, h, w, generator=g) < 0.02).float()
    rgb = (torch.rand(b, 3, h, w, generator=g) * 2 - 1) * mask
    return torch.cat([line, rgb, mask], 1)


def test_spade_modulates_with_condition():
    torch.manual_seed(0)
    spade = SPADE(6, cond_channels=5, hidden_channels=8)
    x = torch.randn(2, 6, 16, 16)
    a = spade(x, random_cond(2, 32, 32, seed=1))  # conditioning at another size is resized
    b = spade(x, random_cond(2, 32, 32, seed=2))
    assert a.shape == x.shape
    assert not torch.allclose(a, b), "output must depend on the conditioning map"


def test_spade_resblock_shortcut_and_shapes():
    block = SPADEResBlock(8, 4, cond_channels=5, hidden_channels=8)
    assert block.learned_shortcut
    assert SPADEResBlock(4, 4, 5, 8).learned_shortcut is False
    out = block(torch.randn(1, 8, 16, 16), random_cond(1, 16, 16))
    assert out.shape == (1, 4, 16, 16)


def test_ladder_encoder_returns_one_map_per_resolution():
    enc = LadderEncoder(5, channels=6, num_downsamples=5)
    maps = enc(random_cond(2, 64, 96))
    assert sorted(maps) == [1, 2, 4, 8, 16, 32]
    for factor, m in maps.items():
        assert m.shape == (2, 6, 64 // factor, 96 // factor)


@pytest.mark.parametrize("variant", sorted(GENERATORS))
@pytest.mark.parametrize("size", [(64, 64), (32, 96)])
def test_generator_shape_range_and_no_nan(variant, size):
    cfg = tiny_model_config(variant)
    gen = build_generator(cfg.generator).eval()
    h, w = size
    with torch.no_grad():
        out = gen(random_cond(2, h, w), torch.randn(2, cfg.generator.latent_dim))
    assert out.shape == (2, 3, h, w)
    assert not torch.isnan(out).any()
    assert out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("variant", sorted(GENERATORS))
def test_every_parameter_gets_a_gradient(variant):
    torch.manual_seed(0)
    model = Colorizer(tiny_model_config(variant))
    disc = MultiScaleDiscriminator(DiscriminatorConfig(base_channels=4, num_layers=3))
    cond, target = random_cond(2, 64, 64), torch.rand(2, 3, 64, 64) * 2 - 1
    mu, logvar = model.encode_style(target)
    fake = model(cond, reparameterize(mu, logvar, torch.Generator().manual_seed(0)))
    loss = fake.square().mean() + kl_divergence(mu, logvar)
    loss = loss + sum(f[-1].mean() for f in disc(cond, fake))
    loss.backward()
    for name, p in list(model.named_parameters()) + list(disc.named_parameters()):
        assert p.grad is not None, f"No gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"Non-finite gradient for {name}"


def test_generator_rejects_bad_inputs():
    gen = build_generator(tiny_model_config().generator)
    with pytest.raises(ValueError, match="multiple of 32"):
        gen(random_cond(1, 40, 64))
    with pytest.raises(ValueError, match="5 conditioning channels"):
        gen(torch.zeros(1, 4, 64, 64))
    with pytest.raises(ValueError, match="z must have shape"):
        gen(random_cond(1, 64, 64), torch.zeros(1, 3))


def test_unknown_variant_is_a_config_error_listing_valid_ones():
    with pytest.raises(ConfigError, match="ladder, spade"):
        GeneratorConfig(variant="unet")


def test_channel_widths_scale_with_base_channels():
    assert GeneratorConfig(base_channels=64).block_channels == (1024, 1024, 1024, 512, 256, 128, 64)
    assert GeneratorConfig(base_channels=4).block_channels == (64, 64, 64, 32, 16, 8, 4)


def test_z_none_equals_zero_latent():
    model = Colorizer(tiny_model_config()).eval()
    cond = random_cond(1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(cond, None), model(cond, torch.zeros(1, 8)))
        assert not torch.allclose(model(cond, None), model(cond, torch.ones(1, 8)))


def test_discriminator_multiscale_features():
    disc = MultiScaleDiscriminator(DiscriminatorConfig(base_channels=4, num_scales=2, num_layers=3))
    out = disc(random_cond(2, 64, 64), torch.zeros(2, 3, 64, 64))
    assert len(out) == 2 and all(len(s) == 4 for s in out)
    assert out[0][-1].shape[1] == 1 and out[1][-1].shape[-1] < out[0][-1].shape[-1]


def test_reflection_padding_everywhere():
    model = Colorizer(tiny_model_config())
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1]
    assert convs and all(isinstance(m, ReflectConv2d) and m.padding == (0, 0) for m in convs)
    x = torch.ones(1, 4, 8, 8)
    x[..., 0, :] = -1  # a dark top row must be mirrored, not padded with zeros (grey)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    assert torch.equal(padded[..., 0, 1:-1], x[..., 1, :])


def test_save_pretrained_round_trip(tmp_path):
    torch.manual_seed(0)
    model = Colorizer(tiny_model_config()).eval()
    model.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "model.safetensors"}
    loaded = Colorizer.from_pretrained(tmp_path)
    cond = random_cond(1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(cond), loaded(cond), atol=5e-5, rtol=0)
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["generator"]["base_channels"] == 4


def test_load_is_strict_and_checks_the_file(tmp_path):
    model = Colorizer(tiny_model_config())
    model.save_pretrained(tmp_path / "ok")
    # truncated weights
    (tmp_path / "ok" / "model.safetensors").write_bytes((tmp_path / "ok" / "model.safetensors").read_bytes()[:500])
    with pytest.raises(WeightsError, match="SHA-256"):
        Colorizer.from_pretrained(tmp_path / "ok")
    # weights of another architecture under a config that says otherwise
    Colorizer(tiny_model_config("spade")).save_pretrained(tmp_path / "other")
    cfg = json.loads((tmp_path / "other" / "config.json").read_text())
    cfg["generator"]["variant"] = "ladder"
    cfg.pop("_weights_sha256")
    (tmp_path / "other" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="not the configuration these weights were saved with"):
        Colorizer.from_pretrained(tmp_path / "other")
    # a pickle offered as weights
    Colorizer(tiny_model_config()).save_pretrained(tmp_path / "pickle")
    torch.save(model.state_dict(), tmp_path / "pickle" / "model.safetensors")
    cfg = json.loads((tmp_path / "pickle" / "config.json").read_text())
    cfg.pop("_weights_sha256")
    (tmp_path / "pickle" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="safetensors required"):
        Colorizer.from_pretrained(tmp_path / "pickle")
    with pytest.raises(WeightsError, match="not found"):
        Colorizer.from_pretrained(tmp_path / "missing")


def test_fp16_export_loads_as_fp32(tmp_path):
    model = Colorizer(tiny_model_config()).eval()
    model.save_pretrained(tmp_path, dtype=torch.float16)
    loaded = Colorizer.from_pretrained(tmp_path)
    assert next(loaded.parameters()).dtype == torch.float32
    cond = random_cond(1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(cond), loaded(cond), atol=2e-2, rtol=0)


def test_perceptual_features_load_from_a_file_the_test_makes(tmp_path):
    torch.manual_seed(0)
    net = ResNetFeatures(layers=(1, 1, 1, 1), widths=(8, 16, 16, 32))
    net.eval()
    path = tmp_path / "resnet.safetensors"
    net.save(path)
    loaded = ResNetFeatures.from_file(path)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    feats = loaded(x)
    assert [f.shape[1] for f in feats] == [8, 16, 16, 32]
    torch.testing.assert_close(feats[-1], net(x)[-1])
    loss = PerceptualLoss(loaded)
    y = x.clone().requires_grad_(True)
    assert float(loss(y, x).detach()) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(torch.zeros_like(x), x)) > 0
    torch.save(net.state_dict(), tmp_path / "pickled.safetensors")
    with pytest.raises(WeightsError):
        ResNetFeatures.from_file(tmp_path / "pickled.safetensors")


@pytest.mark.parametrize("variant,fill_guide", [("ladder", False), ("ladder", True), ("spade", False)])
def test_the_meta_device_count_equals_the_built_models_parameters(variant, fill_guide):
    """The count made before loading leaves spectral norm out (shapes_only: seconds faster); it must still count
    every parameter a real model has, its spectral-norm layers (SPADE blocks, style encoder) included."""
    from linecolor.models._layers import conv, shapes_only
    from linecolor.models.colorizer import parameter_count

    config = tiny_model_config(variant, fill_guide=fill_guide)
    assert parameter_count(config) == sum(p.numel() for p in Colorizer(config).parameters())
    spectral = conv(4, 8, spectral=True)
    with shapes_only():
        plain = conv(4, 8, spectral=True)
    assert not hasattr(plain, "parametrizations") and hasattr(spectral, "parametrizations")
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in spectral.parameters())
