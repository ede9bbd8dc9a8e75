"""The package structure: one installed name, imports that run down the floors and never in a circle.

Installed, the repository's folders live under one import name, `agkd` (pyproject.toml's `package-dir`): the wheel's
top-level names are exactly `agkd` and its dist-info, and no module imports the old top-level names.

Floors, bottom up: `agkd.modeling` (shipped inside Hub model repos), `agkd.datasets_scripts` (the dataset builders and
the attribution library) and `agkd` itself (the version), then `agkd.training`, then `agkd.space`, then
`benchmarks/`. A module may import its own floor or a lower one; every import is read, the ones inside functions too
(a lazy import is still a dependency). A stage (a module that `agkd.training.cli.STAGES` lists) is a leaf: no module of
the package imports it. Inside `agkd.training`, the homes (sub-folders and flat files) import one another one way only.
"""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from agkd.training.cli import STAGES

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("modeling", "datasets_scripts", "training", "space")  # installed as agkd.<folder>
OLD_NAMES = set(FOLDERS)  # top-level import names before `agkd`: never imported again
FLOOR = {"agkd": 0, "modeling": 0, "datasets_scripts": 0, "training": 1, "space": 2, "benchmarks": 3}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(parts if parts and parts[0] == "benchmarks" else ("agkd", *parts))


def is_package_module(path: Path, top: Path) -> bool:
    """A file of a package: every folder from `top` down to it has an `__init__.py` (so the self-contained
    `evaluate` module folders of `training/metrics/<name>/` are not part of the package)."""
    return all(
        (folder / "__init__.py").exists()
        for folder in [path.parent, *path.parent.parents]
        if top in folder.parents or folder == top
    )


def project_modules() -> dict[str, Path]:
    modules = {"agkd": REPO / "__init__.py"}
    for top in (*FOLDERS, "benchmarks"):
        for path in sorted((REPO / top).rglob("*.py")):
            if top == "benchmarks" or is_package_module(path, REPO / top):
                modules[module_name(path)] = path
    return modules


def floor(name: str) -> int:
    parts = name.split(".")
    return FLOOR[parts[1] if parts[0] == "agkd" and len(parts) > 1 else parts[0]]


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
        if floor(target) > floor(source)
    ]
    assert not upward, "imports that run up a floor: " + ", ".join(sorted(upward))


def test_the_bottom_floor_imports_only_itself(graph):
    """`modeling/` ships alone inside model repos and `datasets_scripts/` builds datasets without any training code."""
    crossing = [
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if source.startswith(("agkd.modeling", "agkd.datasets_scripts"))
        and target.split(".")[:2] != source.split(".")[:2]
    ]
    assert not crossing, ", ".join(sorted(crossing))


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """A loop of arrows in `graph` (node -> the nodes it imports), as the nodes along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (circle := visit(target)):
                return circle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (circle := visit(node)):
            return circle
    return None


def test_no_import_circle(graph):
    circle = find_circle(graph)
    assert circle is None, "import circle: " + " -> ".join(circle)


def training_home(name: str) -> str | None:
    """The home of a module of `agkd.training`: its sub-folder or flat file (`agkd.training.verdict`, `...loop`)."""
    parts = name.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["agkd", "training"] and len(parts) > 2 else None


def test_no_import_circle_between_homes_of_training(graph):
    """`verdict/`, `evaluation/`, `presets.py`, ...: a home may use another, but never one that uses it back."""
    homes: dict[str, set[str]] = {}
    for source, targets in graph.items():
        for target in targets:
            if (a := training_home(source)) and (b := training_home(target)) and a != b:
                homes.setdefault(a, set()).add(b)
    circle = find_circle(homes)
    assert circle is None, "homes of agkd.training in a circle: " + " -> ".join(circle)


def test_a_stage_is_a_leaf(graph):
    """No module of the package imports a stage, a module that `cli.STAGES` lists: what other modules need of a stage
    lives in its wing's library, which the stage imports. Benchmarks, like tests, drive stages from outside the
    package and may import them."""
    stages = {stage.module for stage in STAGES.values()}
    assert stages <= set(graph), f"stages the reader does not see: {sorted(stages - set(graph))}"
    importers = [
        f"{source} -> {target}"
        for source, targets in graph.items()
        if source.startswith("agkd")
        for target in targets & stages
    ]
    assert not importers, "imports of a stage: " + ", ".join(sorted(importers))


def test_the_walk_finds_real_imports(graph):
    """The reader is not vacuous: it sees top-level, lazy, `from pkg import mod` and relative imports."""
    assert "agkd.training.loop" in graph["agkd.training.train_student"]
    assert "agkd.modeling" in graph["agkd.space.release"]  # imported inside a function (it registers Auto classes)
    assert "agkd.modeling.configuration_agkd_student" in graph["agkd.modeling.modeling_agkd_student"]  # relative
    assert "agkd.datasets_scripts.attribution.engines" in graph["agkd.space.app"]  # a subpackage's module


def test_nothing_imports_the_old_top_level_names():
    """`training`, `space`, ... are folders of the repository, never import names: code, tests and benchmarks import
    `agkd.training`, `agkd.space`, ... (the self-contained `evaluate` modules of training/metrics/ import neither)."""
    old = []
    for path in sorted(REPO.glob("*/**/*.py")):
        if path.relative_to(REPO).parts[0] in (".venv", "build", "runs") or "metrics" in path.relative_to(REPO).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and not node.level and node.module else [])
            old += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names if n.split(".")[0] in OLD_NAMES]
    assert not old, "imports of old top-level names: " + ", ".join(old)


def test_every_package_folder_is_listed_for_the_wheel():
    """pyproject.toml lists the wheel's packages: every folder with an `__init__.py` under the four folders is one of
    them (a new subpackage that is not listed would be missing from the wheel, though the editable install serves
    it)."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        ".".join(("agkd", *init.parent.relative_to(REPO).parts))
        for top in FOLDERS
        for init in (REPO / top).rglob("__init__.py")
        if is_package_module(init, REPO / top)
    }
    assert set(setuptools["packages"]) == {"agkd", *folders}
    assert setuptools["package-dir"] == {"agkd": ".", **{f"agkd.{top}": top for top in FOLDERS}}


def test_the_wheel_installs_one_name(tmp_path):
    """`pip wheel .`: the wheel's top-level names are exactly `agkd` and its dist-info (about 10 s)."""
    from agkd import __version__

    isolation = [] if int(importlib.metadata.version("setuptools").split(".")[0]) < 77 else ["--no-build-isolation"]
    command = [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", *isolation, "-q", "-w", str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("agkd-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        tops = {name.split("/")[0] for name in zf.namelist()}
        top_level = zf.read(f"agkd-{__version__}.dist-info/top_level.txt").decode().split()
    assert tops == {"agkd", f"agkd-{__version__}.dist-info"}
    assert top_level == ["agkd"]
