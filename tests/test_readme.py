"""The README's Python quickstart runs as pasted (litgpt's test_readme idea), with the bundled model."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

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


def test_bundled_weights_have_a_model_card():
    assert (REPO / "src/linecolor/weights/default/model.safetensors").is_file()
    card = (REPO / "MODEL_CARD.md").read_text(encoding="utf-8")
    for needle in ("OpenMoji", "CC BY-SA 4.0", "DiceBear", "CC BY 4.0", "Fluent", "MIT", "linecolor train"):
        assert needle in card
