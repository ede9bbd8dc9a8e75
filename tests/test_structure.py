"""The package structure: imports run down the floors and never in a circle.

Floors, bottom up: `modeling/` (shipped inside Hub model repos) and `datasets_scripts/` (the dataset builders), then
`training/`, then `space/`, then `benchmarks/`. A module may import its own floor or a lower one; every import is
read, the ones inside functions too (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("modeling", "datasets_scripts", "training", "space", "benchmarks")
FLOOR = {"modeling": 0, "datasets_scripts": 0, "training": 1, "space": 2, "benchmarks": 3}
STAGE_SCRIPTS = ("training.train_teacher", "training.train_student", "training.train_attributor")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((REPO / package).glob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that `name` imports, at any depth of its code (`from pkg import mod` names the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_imports_never_run_up_a_floor(graph):
    upward = [
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if FLOOR[target.split(".")[0]] > FLOOR[source.split(".")[0]]
    ]
    assert not upward, "imports that run up a floor: " + ", ".join(sorted(upward))


def test_the_bottom_floor_imports_only_itself(graph):
    """`modeling/` ships alone inside model repos and `datasets_scripts/` builds datasets without any training code."""
    crossing = [
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if source.split(".")[0] in ("modeling", "datasets_scripts") and target.split(".")[0] != source.split(".")[0]
    ]
    assert not crossing, ", ".join(sorted(crossing))


def test_no_import_circle(graph):
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (circle := visit(target)):
                return circle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            circle = visit(node)
            assert circle is None, "import circle: " + " -> ".join(circle)


def test_no_training_script_imports_another_stage(graph):
    stages = {*STAGE_SCRIPTS, "training.evaluate", "training.report", "training.instrument", "training.pipeline"}
    for script in STAGE_SCRIPTS:
        assert not graph[script] & stages, f"{script} imports {sorted(graph[script] & stages)}"


def test_the_walk_finds_real_imports(graph):
    """The reader is not vacuous: it sees top-level, lazy, `from pkg import mod` and relative imports."""
    assert "training.loop" in graph["training.train_student"]
    assert "datasets_scripts.hub_layout" in graph["training.layout"]  # imported inside a function
    assert "modeling.configuration_agkd_student" in graph["modeling.modeling_agkd_student"]  # relative
