#!/usr/bin/env python3
"""Write the few evaluation pairs the test suite ships (``tests/data/pairs/``), so the bundled-model regression
test needs neither ``../shared/data`` nor the network.

For each source the first two images of the *test* split in the evaluation protocol's order
(:func:`linecolor.evaluation.protocol.sample_eval_hints` with ``limit_per_source=2``, seed 0, 256², K = 10):
``<source>-<name>-line.png`` (L), ``-color.png`` (RGB) and ``-hints10.png`` (RGBA hint layer: alpha 255 on hint
pixels) — exactly the images and hints ``linecolor evaluate`` uses for them. Attribution: ``ATTRIBUTION.md`` there.

Run from the repository root::

    .venv/bin/python scripts/make_test_pairs.py [--data ../shared/data] [--out tests/data/pairs]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from PIL import Image

from linecolor.data.hints import render_hints
from linecolor.data.sources import iter_source
from linecolor.evaluation.protocol import EVAL_SPLIT, sample_eval_hints
from linecolor.evaluation.run import DATA_FILES

SOURCES = ("openmoji", "dicebear", "fluent")
SIZE, K, PER_SOURCE = 256, 10, 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--out", default="tests/data/pairs")
    args = parser.parse_args()
    paths = {s: Path(args.data) / DATA_FILES[s] for s in SOURCES}
    doc = sample_eval_hints(SOURCES, paths, sizes=[SIZE], ks=[K], seed=0, limit_per_source=PER_SOURCE)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        records = {r.name: r for r in iter_source(source, paths[source], split=EVAL_SPLIT)}
        for item in (it for it in doc["items"] if it["source"] == source):
            pair = records[item["name"]].load(SIZE, extra_xdog=False)
            hint_rgb, hint_mask = render_hints(pair.color, item["hints"][str(K)])
            stem = f"{source}-{re.sub(r'[^A-Za-z0-9]+', '_', item['name'])}"
            Image.fromarray(pair.lines[0], "L").save(out / f"{stem}-line.png", optimize=True)
            Image.fromarray(pair.color, "RGB").save(out / f"{stem}-color.png", optimize=True)
            layer = np.dstack([hint_rgb, np.where(hint_mask, 255, 0).astype(np.uint8)])
            Image.fromarray(layer, "RGBA").save(out / f"{stem}-hints{K}.png", optimize=True)
            print(stem)


if __name__ == "__main__":
    main()
