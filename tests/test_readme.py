"""The README's Python quickstart runs as pasted (litgpt's test_readme idea), with the bundled model."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S)


def test_readme_python_quickstart_runs(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert blocks, "the README must keep a Python quickstart"
    example = "src/linecolor/server/static/examples/openmoji-cat-face.png"
    assert example in blocks[0]
    (tmp_path / example).parent.mkdir(parents=True)
    shutil.copy(REPO / example, tmp_path / example)
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {})
    with Image.open(tmp_path / "coloured.png") as out, Image.open(REPO / example) as line:
        assert out.size == line.size and out.mode == "RGB"
        pixels = np.asarray(out, dtype=int)
    # Every hint of the example lands in a region and colours it: a point on a line would not (issue 16).
    hints = re.findall(r'\((\d+), (\d+), "#([0-9a-f]{6})", \d+\)', blocks[0])
    assert len(hints) >= 2
    for x, y, colour in hints:
        expected = [int(colour[i:i + 2], 16) for i in (0, 2, 4)]
        assert np.abs(pixels[int(y), int(x)] - expected).max() <= 8, (x, y, colour, pixels[int(y), int(x)])


def test_bundled_weights_have_a_model_card():
    assert (REPO / "src/linecolor/weights/default/model.safetensors").is_file()
    card = (REPO / "MODEL_CARD.md").read_text(encoding="utf-8")
    for needle in ("OpenMoji", "CC BY-SA 4.0", "DiceBear", "CC BY 4.0", "Fluent", "MIT", "linecolor train"):
        assert needle in card
