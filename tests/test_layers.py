"""The package imports only downwards (docs/architecture.md, "Layers"), and no module imports in a cycle.

Every `import` and `from ... import` in the package's source is read from its syntax tree, wherever it
stands (module top, function body, `TYPE_CHECKING` block), so a lazy import cannot hide an upward edge.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Folder -> import name, as setup.py installs them.
ROOTS = {"selfflow_robot": "selfflow_robot", "policies": "selfflow_robot.policies", "envs": "selfflow_robot.envs",
         "configs": "selfflow_robot.configs"}

# Module-name prefix -> layer; the longest matching prefix wins. A module may import its own layer's
# modules (without a cycle) and any lower layer's; siblings in SEPARATE must not import each other.
LAYERS = {
    "selfflow_robot": 0, "selfflow_robot.errors": 0, "selfflow_robot.constants": 0, "selfflow_robot.config": 0,
    "selfflow_robot.configs": 0,
    "selfflow_robot.data": 1, "selfflow_robot.model": 1, "selfflow_robot.objective": 1,
    "selfflow_robot.checkpoint": 1,
    "selfflow_robot.train": 2, "selfflow_robot.world_model": 2, "selfflow_robot.policies": 2,
    "selfflow_robot.envs": 3,
    "selfflow_robot.evaluation": 4, "selfflow_robot.policies.serving": 4,
    "selfflow_robot.experiments": 5, "selfflow_robot.cli": 5,
}
SEPARATE = {2: ("selfflow_robot.train", "selfflow_robot.world_model", "selfflow_robot.policies"),
            4: ("selfflow_robot.evaluation", "selfflow_robot.policies.serving")}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, name in ROOTS.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([name, *parts])] = path
    return found


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The project module an imported name lives in (`a.b.c` -> `a.b` when `c` is a function of `a.b`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    is_package = path.name == "__init__.py"
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join(parts + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            owner = _owner(n) if n.startswith("selfflow_robot") else None
            if owner and owner != module:
                targets.add(owner)
    return targets


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _layer_key(module: str) -> str:
    return max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)


def _sibling(module: str) -> str | None:
    layer = LAYERS[_layer_key(module)]
    return next((s for s in sorted(SEPARATE.get(layer, ()), key=len, reverse=True)
                 if module == s or module.startswith(s + ".")), None)


def test_every_module_has_a_layer():
    assert all(_layer_key(m) for m in MODULES)


def test_no_module_imports_upwards_or_across_siblings():
    bad = []
    for m, targets in GRAPH.items():
        for t in targets:
            if LAYERS[_layer_key(t)] > LAYERS[_layer_key(m)]:
                bad.append(f"{m} (layer {LAYERS[_layer_key(m)]}) imports {t} (layer {LAYERS[_layer_key(t)]})")
            elif LAYERS[_layer_key(t)] == LAYERS[_layer_key(m)] and _sibling(m) != _sibling(t) and _sibling(t):
                bad.append(f"{m} imports its sibling {t}")
    assert not bad, "\n".join(sorted(bad))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert not _cycles(GRAPH), _cycles(GRAPH)


@pytest.mark.parametrize("graph, expected", [({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
                                             ({"a": {"b"}, "b": set()}, [])])
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert _cycles(graph) == expected


def test_the_import_reader_sees_function_level_and_relative_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from selfflow_robot.train import trainer\n    from ..data import reader\n")
    seen = _imports("selfflow_robot.world_model.rollout", src)
    assert {"selfflow_robot.train.trainer", "selfflow_robot.data.reader"} <= seen


def test_no_source_file_over_400_lines():
    long = {str(p.relative_to(REPO)): n for p in MODULES.values() if (n := len(p.read_text().splitlines())) > 400}
    long.update({str(p.relative_to(REPO)): n for p in (REPO / "scripts").rglob("*.py")
                 if (n := len(p.read_text().splitlines())) > 400})
    assert not long, long
