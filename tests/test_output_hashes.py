"""The bundled model's outputs on the bundled test pairs, pinned by hash.

A guard for changes that must not change what users get (restructuring, speed-ups): every mode, both composites
and both execution paths (the onnxruntime fast path that ``from_pretrained`` runs, and the plain PyTorch reference)
on the six held-out test pairs with their 10-hint layers. A change that *means* to change outputs bumps
``linecolor.inference.pipeline.OUTPUT_VERSION`` and re-records the hashes with

    LINECOLOR_RECORD_HASHES=1 .venv/bin/python -m pytest tests/test_output_hashes.py

which rewrites ``tests/data/output_hashes.json`` and then fails on purpose, so a recording never passes unnoticed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from linecolor import ColorizationPipeline

PAIRS = Path(__file__).parent / "data" / "pairs"
HASHES = Path(__file__).parent / "data" / "output_hashes.json"
STEMS = sorted(p.name[: -len("-line.png")] for p in PAIRS.glob("*-line.png"))
SETTINGS = {
    "deterministic": {"mode": "deterministic"},
    "stochastic-seed7": {"mode": "stochastic", "seed": 7},
    "shift+1.5": {"mode": "deterministic", "latent_shift": 1.5},
    "reference": {"mode": "reference"},
}
COMPOSITES = ("regions", "network")
BACKENDS = ("auto", "plain")


def output_digest(image: Image.Image) -> str:
    arr = np.asarray(image.convert("RGB"))
    return hashlib.sha256(repr(arr.shape).encode() + arr.tobytes()).hexdigest()[:24]


def current_hashes(backend: str) -> dict[str, str]:
    pipe = ColorizationPipeline.from_pretrained(backend=backend)
    digests = {}
    for stem in STEMS:
        line = Image.open(PAIRS / f"{stem}-line.png")
        hints = Image.open(PAIRS / f"{stem}-hints10.png")
        for setting, options in SETTINGS.items():
            reference = Image.open(PAIRS / f"{stem}-color.png") if options["mode"] == "reference" else None
            for composite in COMPOSITES:
                out = pipe(line, hints, reference, composite=composite, **options)
                digests[f"{backend}/{stem}/{setting}/{composite}"] = output_digest(out)
    return digests


@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_match_the_recorded_hashes(backend):
    got = current_hashes(backend)
    assert len(got) == len(STEMS) * len(SETTINGS) * len(COMPOSITES) == 48
    if os.environ.get("LINECOLOR_RECORD_HASHES") == "1":
        recorded = json.loads(HASHES.read_text()) if HASHES.is_file() else {}
        recorded = {k: v for k, v in recorded.items() if not k.startswith(f"{backend}/")} | got
        HASHES.write_text(json.dumps(dict(sorted(recorded.items())), indent=1) + "\n")
        pytest.fail(f"recorded {len(got)} hashes for {backend} in {HASHES}; review the change and commit them")
    expected = {k: v for k, v in json.loads(HASHES.read_text()).items() if k.startswith(f"{backend}/")}
    changed = sorted(k for k in expected if got.get(k) != expected[k])
    assert set(got) == set(expected), sorted(set(got) ^ set(expected))
    assert not changed, f"{len(changed)} of {len(expected)} outputs changed, e.g. {changed[:4]}"


def test_outputs_are_repeatable_within_a_process():
    """The hashes mean something only if the same call gives the same bytes twice."""
    pipe = ColorizationPipeline.from_pretrained()
    stem = STEMS[0]
    line = Image.open(PAIRS / f"{stem}-line.png")
    hints = Image.open(PAIRS / f"{stem}-hints10.png")
    first = output_digest(pipe(line, hints, mode="stochastic", seed=3))
    assert first == output_digest(pipe(line, hints, mode="stochastic", seed=3))
    assert first != output_digest(pipe(line, hints, mode="stochastic", seed=4))
