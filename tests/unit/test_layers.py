"""The package's dependencies point one way: no import cycle, no lower layer importing a higher one.

Every import counts, the lazy ones inside functions too: they only hide a cycle from
Python's import machinery, not from a reader. The layers are the README's picture
("Architecture"); a new wrong-way import fails here with the offending line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "llmpost"

# Top to bottom. A module may import its own package and any package of a lower layer.
LAYERS = [
    {"__main__"},  # python -m llmpost
    {"cli"},
    {"memplan"},
    {"pipeline"},
    {"stages"},
    {"rl", "rewards"},
    {"judges"},
    {"evaluation", "models", "data", "artifacts", "reporting"},
    {"config", "ranks", "machine"},
    {"errors", "files", "seeding", ""},  # "" = llmpost/__init__.py (the version)
]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(root: Path, name: str) -> str:
    """`name` if it is a module or package of the tree, else its parent (an attribute of that module)."""
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    base = root / relative
    if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
        return name
    return name.rsplit(".", 1)[0]


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """{module: {imported module: line}} for every import of the tree's own modules."""
    top = root.name
    graph: dict[str, dict[str, int]] = {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        is_package = path.name == "__init__.py"
        edges = graph.setdefault(name, {})
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                if target == top or target.startswith(top + "."):
                    found = resolve(root, target)
                    if found != name:
                        edges.setdefault(found, node.lineno)
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, {}):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(package: str) -> int:
    for depth, members in enumerate(LAYERS):
        if package in members:
            return depth
    raise AssertionError(f"llmpost/{package} is in no layer: add it to LAYERS here and to the README's picture")


def wrong_way_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    problems = []
    for module, edges in sorted(graph.items()):
        source = package_of(module)
        for target, line in sorted(edges.items()):
            dest = package_of(target)
            if dest != source and layer_of(dest) <= layer_of(source):
                problems.append(f"{module} (line {line}) imports {target}: "
                                f"{source or 'llmpost'} may not import {dest or 'llmpost'}")
    return problems


def test_no_import_cycle_between_modules():
    assert find_cycle(import_graph(PACKAGE)) is None


def test_packages_import_only_lower_layers():
    assert wrong_way_imports(import_graph(PACKAGE)) == []


def test_the_check_catches_a_wrong_way_import_and_a_cycle(tmp_path):
    """The two checks above are only worth having if they fail: a made-up tree with both faults."""
    root = tmp_path / "llmpost"
    for package in ("data", "stages"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "data" / "load.py").write_text("def f():\n    from llmpost.stages.sft import run\n")
    (root / "stages" / "sft.py").write_text("from llmpost.data.load import f\n\ndef run():\n    pass\n")
    graph = import_graph(root)
    assert find_cycle(graph) in (["llmpost.data.load", "llmpost.stages.sft", "llmpost.data.load"],
                                 ["llmpost.stages.sft", "llmpost.data.load", "llmpost.stages.sft"])
    (problem,) = wrong_way_imports(graph)
    assert problem.startswith("llmpost.data.load (line 2) imports llmpost.stages.sft")


@pytest.mark.parametrize("package", sorted({package_of(m) for m in import_graph(PACKAGE)}))
def test_every_package_has_a_layer(package):
    layer_of(package)
