"""Configuration gates (RELIABILITY.md): patterns that trusted servers and trainers never ship."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "linecolor"
GATES = {
    "torch.load without weights_only=True (pickle can run code)":
        (re.compile(r"torch\.load\("), re.compile(r"weights_only\s*=\s*True")),
    "debug=True (the Werkzeug debugger executes code from the browser)": (re.compile(r"debug\s*=\s*True"), None),
    "0.0.0.0 (bind 127.0.0.1 unless the user asks)": (re.compile(r"0\.0\.0\.0"), None),
    ".cuda() in library code (keep it device-agnostic)": (re.compile(r"\.cuda\(\)"), None),
    "strict=False state-dict loading (silently drops weights)": (re.compile(r"strict\s*=\s*False"), None),
    "Flask development server (app.run)": (re.compile(r"\bapp\.run\("), None),
    "pickle imports": (re.compile(r"^\s*(import pickle|from pickle import)", re.M), None),
}


def source_lines():
    for path in sorted(SRC.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            yield path.relative_to(SRC.parent), number, line


def test_sources_exist():
    assert len(list(SRC.rglob("*.py"))) > 10


@pytest.mark.parametrize("gate", sorted(GATES))
def test_gate(gate):
    pattern, allowed_if = GATES[gate]
    hits = [f"{path}:{number}: {line.strip()}" for path, number, line in source_lines()
            if pattern.search(line) and not (allowed_if and allowed_if.search(line))]
    assert not hits, f"{gate}:\n" + "\n".join(hits)


def test_gate_patterns_catch_what_they_should():
    """Each gate must be able to fail: it matches a known-bad line and passes its good counterpart."""
    bad = {
        "torch.load without weights_only=True (pickle can run code)": "state = torch.load(path)",
        "debug=True (the Werkzeug debugger executes code from the browser)": "app.run(debug=True)",
        "0.0.0.0 (bind 127.0.0.1 unless the user asks)": 'host = "0.0.0.0"',
        ".cuda() in library code (keep it device-agnostic)": "x = x.cuda()",
        "strict=False state-dict loading (silently drops weights)": "m.load_state_dict(s, strict=False)",
        "Flask development server (app.run)": "app.run(port=5000)",
        "pickle imports": "import pickle",
    }
    for gate, line in bad.items():
        pattern, allowed_if = GATES[gate]
        assert pattern.search(line) and not (allowed_if and allowed_if.search(line)), gate
    pattern, allowed_if = GATES["torch.load without weights_only=True (pickle can run code)"]
    assert allowed_if.search("torch.load(p, map_location='cpu', weights_only=True)")
