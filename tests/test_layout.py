"""The package's layout holds: imports point down the layers, never in a cycle, never at another module's private
names; inference loads no training code; the raster floor loads no torch.

The import graph is read from the source with ``ast`` (every import statement, also those inside functions: a lazy
import is still a dependency).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "linecolor"

LAYERS = [
    ("linecolor.version", "linecolor.errors", "linecolor.limits", "linecolor.bounded_cache"),
    ("linecolor.config",),
    ("linecolor.raster",),
    ("linecolor.models", "linecolor.data"),
    ("linecolor.inference",),
    ("linecolor.training", "linecolor.evaluation"),
    ("linecolor.server",),
    ("linecolor.bench",),  # measures the server's API too
    ("linecolor.cli", "linecolor"),
    ("linecolor.__main__",),
]
"""Lower layers first. A module may import from its own layer only within its own area (``models`` may not import
``data``), and from every layer below."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, modules: dict[str, Path], here: str | None = None) -> list[tuple[str, str | None, int]]:
    """``(imported linecolor module, imported name or None, line)`` for every import statement in ``path`` (the
    module ``here``, by default read off the path)."""
    here = here or module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "linecolor"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "linecolor":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub, None, node.lineno) if sub in modules else (base, alias.name, node.lineno))
    return found


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for target, _, _ in imports_of(path, modules):
            if target != name:
                edges[name].add(target)
    return edges


def layer_of(module: str) -> tuple[int, str]:
    """(layer index, area) of a module: the longest area prefix in :data:`LAYERS` that contains it."""
    best = None
    for index, areas in enumerate(LAYERS):
        for area in areas:
            if (module == area or module.startswith(area + ".")) and (best is None or len(area) > len(best[1])):
                best = (index, area)
    assert best is not None, f"{module} is in no layer of LAYERS; add it"
    return best


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer_and_the_graph_is_read():
    edges = graph()
    for module in all_modules():
        layer_of(module)
    # The reader sees real edges (a broken reader would pass every check below).
    assert "linecolor.inference.composite" in edges["linecolor.inference.pipeline"]
    assert "linecolor.models.spade" in edges["linecolor.models.generator"]


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_point_down_the_layers():
    wrong = []
    for module, targets in graph().items():
        level, area = layer_of(module)
        for target in targets:
            t_level, t_area = layer_of(target)
            if t_level > level or (t_level == level and t_area != area):
                wrong.append(f"{module} (layer {level}) imports {target} (layer {t_level})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_private_names_across_modules():
    modules = all_modules()
    wrong = []
    for name, path in modules.items():
        for target, imported, line in imports_of(path, modules):
            private_module = next((p for p in target.split(".") if p.startswith("_") and p != "__main__"), None)
            if private_module and not name.startswith(target.rpartition(".")[0] + "."):
                wrong.append(f"{name}:{line} imports the private module {target}")
            if imported and imported.startswith("_") and imported != "__version__" and target != name:
                wrong.append(f"{name}:{line} imports the private name {target}.{imported}")
    assert not wrong, "\n".join(wrong)


def test_the_import_reader_sees_names_modules_and_relative_imports(tmp_path):
    modules = all_modules()
    fake = tmp_path / "fake.py"
    fake.write_text("from linecolor.inference.hints import _HEX\nfrom . import composite\n"
                    "def f():\n    import linecolor.models._layers\n")
    assert imports_of(fake, modules, here="linecolor.inference.fake") == [
        ("linecolor.inference.hints", "_HEX", 1), ("linecolor.inference.composite", None, 2),
        ("linecolor.models._layers", None, 4)]


def run_python(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    return out.stdout.split()


@pytest.mark.parametrize("heavy", ["linecolor.training", "linecolor.data", "linecolor.evaluation",
                                   "linecolor.server", "linecolor.bench"])
def test_the_pipeline_loads_no_training_data_or_evaluation_code(heavy):
    loaded = run_python("import sys\nfrom linecolor import ColorizationPipeline\n"
                        "print(*sorted(m for m in sys.modules if m.startswith('linecolor')))")
    assert "linecolor.inference.pipeline" in loaded  # the probe really imported the pipeline
    assert not [m for m in loaded if m == heavy or m.startswith(heavy + ".")], loaded


def test_the_raster_floor_loads_no_torch():
    names = sorted(m for m in all_modules() if m.startswith("linecolor.raster"))
    loaded = run_python(f"import sys\nimport {', '.join(names)}\n"
                        "print(*sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'linecolor')))")
    assert "linecolor.raster.fill" in loaded and not [m for m in loaded if m.split(".")[0] == "torch"], loaded
