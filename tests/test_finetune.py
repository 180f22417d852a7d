"""Fine-tuning from the bundled weights (issue 18): the README's commands run as written, stay in sync with
scripts/quickstart.sh, and a few steps of the fine-tune recipe keep the model close to where it started."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from linecolor.config import ExperimentConfig, load_config, to_dict
from linecolor.inference.conditioning import build_condition
from linecolor.inference.pipeline import DEFAULT_WEIGHTS_DIR
from linecolor.models.colorizer import Colorizer
from linecolor.training.trainer import resolve_init_weights

from conftest import PYTHON, draw_pair, write_paired_folder

REPO = Path(__file__).resolve().parents[1]
FINETUNE_CONFIG = REPO / "configs" / "finetune-cpu.toml"

MAX_MEAN_CHANGE = 6.0
"""Largest mean absolute change (levels of 255) of the network's output (:func:`_network_outputs`) that a few
fine-tune steps may cause on the same drawings and hints: about what an eye begins to notice in flat colour. A
learning rate 100× the recipe's, without the average, moves it further within the same steps (checked below, so the
bound can fail)."""


def readme_finetune_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Train on your own drawings", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert block, "the README's 'Train on your own drawings' section must keep its commands"
    return [line.strip() for line in block[0].splitlines() if line.strip().startswith("linecolor ")]


def _flags(command: str) -> set[str]:
    return {word for word in shlex.split(command) if word.startswith("--")}


def test_the_quickstart_runs_the_readmes_fine_tune_commands():
    quickstart = (REPO / "scripts" / "quickstart.sh").read_text(encoding="utf-8").replace("\\\n", " ")
    commands = {c.split()[1]: c for c in readme_finetune_commands()}
    assert {"prepare", "train", "export"} <= set(commands)
    train = [line for line in quickstart.splitlines() if "linecolor train" in line]
    assert len(train) == 1, "the quickstart trains once"
    # The same recipe: every flag of the README's train command, with the same value where it names a file.
    assert _flags(commands["train"]) <= _flags(train[0]), (commands["train"], train[0])
    for flag in ("--init-weights", "--config"):
        readme_value = shlex.split(commands["train"])[shlex.split(commands["train"]).index(flag) + 1]
        assert f"{flag} {readme_value}" in train[0]
    assert "linecolor export" in quickstart and "linecolor prepare" in quickstart


def test_default_names_the_bundled_weights():
    assert resolve_init_weights("default") == DEFAULT_WEIGHTS_DIR
    assert resolve_init_weights("weights/mine") == Path("weights/mine")


def test_the_fine_tune_recipe_fits_the_bundled_model():
    config = load_config(ExperimentConfig, FINETUNE_CONFIG)
    assert to_dict(config.model) == to_dict(Colorizer.from_pretrained(DEFAULT_WEIGHTS_DIR).config)
    assert config.loss.gan_start_step >= config.train.steps, "the recipe trains without the GAN terms"


def _network_outputs(weights: Path) -> np.ndarray:
    """The network's own output (deterministic, 128², [-1, 1] scaled to levels of 255) for a few synthetic drawings
    with two hints each and their paint-bucket fill guide: what fine-tuning changes, before the composite averages
    and pales it."""
    model = Colorizer.from_pretrained(weights).eval()
    outputs = []
    for i in range(3):
        line = draw_pair(100 + i, 128).lines[0]
        rgb = np.zeros((128, 128, 3), np.uint8)
        mask = np.zeros((128, 128), bool)
        for (y, x), colour in (((40, 40), (208, 64, 32)), ((64, 85), (32, 80, 192))):
            rgb[y - 3:y + 4, x - 3:x + 4], mask[y - 3:y + 4, x - 3:x + 4] = colour, True
        cond = build_condition(line, rgb, mask, binarize=True, fill_guide=model.config.generator.fill_guide)
        with torch.inference_mode():
            outputs.append(model(cond[None])[0].numpy() * 127.5)
    return np.stack(outputs)


def _run_readme_commands(tmp_path: Path, steps: int, *overrides: str) -> Path:
    """The README's commands in ``tmp_path`` (a copy of configs/, synthetic pairs as ``my-pairs``), training
    ``steps`` steps of 2 images; returns the exported model directory."""
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    write_paired_folder(tmp_path / "my-pairs", n=8, size=128)
    Image.fromarray(draw_pair(50, 160).lines[0]).save(tmp_path / "drawing.png")
    for command in readme_finetune_commands():
        argv = shlex.split(command)
        if argv[1] == "train":
            argv += ["--steps", str(steps), "--batch-size", "2", "--quiet", "-o", "train.warmup_steps=1", *overrides]
        result = subprocess.run([PYTHON, "-m", "linecolor", *argv[1:]], cwd=tmp_path, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
    assert (tmp_path / "drawing-coloured.png").is_file()
    return tmp_path / "weights" / "mine"


@pytest.mark.slow
def test_a_few_fine_tune_steps_keep_the_bundled_model_close(tmp_path):
    exported = _run_readme_commands(tmp_path / "recipe", 4)
    bundled, tuned = Colorizer.from_pretrained(DEFAULT_WEIGHTS_DIR), Colorizer.from_pretrained(exported)
    moved = max((a - b).abs().max().item() for a, b in zip(bundled.state_dict().values(),
                                                              tuned.state_dict().values()))
    assert moved > 0, "the fine-tune changed nothing"
    before = _network_outputs(DEFAULT_WEIGHTS_DIR)
    change = np.abs(_network_outputs(exported) - before).mean()
    assert change < MAX_MEAN_CHANGE, f"4 fine-tune steps moved the output by {change:.1f} levels on average"
    wrecked = _run_readme_commands(tmp_path / "wreck", 4, "-o", "train.lr_generator=5e-3", "-o", "train.ema_decay=0")
    wrecked_change = np.abs(_network_outputs(wrecked) - before).mean()
    print(f"mean output change after 4 steps: recipe {change:.2f}, 100x learning rate {wrecked_change:.2f} levels")
    assert wrecked_change > MAX_MEAN_CHANGE


@pytest.mark.slow
def test_init_weights_without_a_config_trains_the_weights_model(tmp_path):
    write_paired_folder(tmp_path / "pairs", n=6, size=128)
    for argv in (["prepare", "paired", "pairs", "prepared", "--size", "128", "--quiet"],
                 ["train", "run", "--init-weights", "default", "--data", "prepared", "--steps", "1",
                  "--batch-size", "2", "--quiet"]):
        result = subprocess.run([PYTHON, "-m", "linecolor", *argv], cwd=tmp_path, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
    saved = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert saved["model"] == to_dict(Colorizer.from_pretrained(DEFAULT_WEIGHTS_DIR).config)
