"""Config dataclasses: validation lists every problem; files and overrides name misspelled keys."""

from __future__ import annotations

import json

import pytest

from linecolor.config import (
    ExperimentConfig,
    GeneratorConfig,
    HintConfig,
    TrainConfig,
    apply_overrides,
    from_dict,
    load_config,
    to_dict,
)
from linecolor.errors import ConfigError


def test_defaults_round_trip_through_dict():
    cfg = ExperimentConfig()
    assert from_dict(ExperimentConfig, to_dict(cfg)) == cfg
    assert from_dict(ExperimentConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_every_problem_is_listed_at_once():
    with pytest.raises(ConfigError) as err:
        TrainConfig(steps=0, batch_size=-1, lr_generator=float("nan"), device="tpu")
    assert len(err.value.problems) == 4
    text = str(err.value)
    for word in ("steps", "batch_size", "lr_generator", "device"):
        assert word in text


def test_misspelled_key_is_named_with_a_suggestion(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('[train]\nstesp = 10\n[model.generator]\nbase_chanels = 8\n')
    with pytest.raises(ConfigError) as err:
        load_config(ExperimentConfig, path)
    text = str(err.value)
    assert "'train.stesp'" in text and "did you mean 'steps'" in text
    assert "'model.generator.base_chanels'" in text and "base_channels" in text


def test_toml_file_and_overrides(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('[train]\nsteps = 10\n[model.generator]\nvariant = "spade"\n')
    cfg = load_config(ExperimentConfig, path, ["train.steps=20", "train.device=cpu", "hints.position=uniform"])
    assert cfg.train.steps == 20 and cfg.train.device == "cpu"
    assert cfg.model.generator.variant == "spade" and cfg.hints.position == "uniform"


def test_wrong_types_are_reported():
    with pytest.raises(ConfigError, match="expected an integer"):
        from_dict(TrainConfig, {"steps": "many"})
    with pytest.raises(ConfigError, match="unknown generator variant 'unet'"):
        from_dict(GeneratorConfig, {"variant": "unet"})
    with pytest.raises(ConfigError, match="not of the form"):
        apply_overrides({}, ["train.steps"])


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(ExperimentConfig, tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(ExperimentConfig, bad)


def test_hint_config_bounds():
    with pytest.raises(ConfigError, match="patch_max"):
        HintConfig(patch_min=10, patch_max=5)
    with pytest.raises(ConfigError, match="continue_probability"):
        HintConfig(continue_probability=1.0)
