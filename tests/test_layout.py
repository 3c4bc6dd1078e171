"""The layout shows the architecture: the app's modules depend on each other one way, connectors
know nothing of the workflow, and the product never imports the demo estate or the dev tooling.

Imports are read from the source (every import statement, those inside functions included), so a
lazy import that hides a cycle from Python at start-up does not hide it from this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("dsar", "connectors")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the product's packages by dotted name, migrations aside (Django's, not the app's code)."""
    return {_module_name(path, root): path for package in PRODUCT for path in sorted((root / package).rglob("*.py"))
            if "migrations" not in path.parts}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules `name` imports, resolved to the most specific known module (`from . import x`
    is the submodule x when there is one, else the package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in known else target)
    return found


def _graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = _modules(root)
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]], within: str) -> list[list[str]]:
    """Every cycle among the modules of package `within` (each found once, from its least name)."""
    nodes = {name for name in graph if name == within or name.startswith(f"{within}.")}
    edges = {name: sorted(graph[name] & nodes) for name in nodes}
    cycles: list[list[str]] = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for target in edges[node]:
            if target == start:
                cycles.append(path)
            elif target > start and target not in path:
                walk(start, target, [*path, target])

    for start in sorted(nodes):
        walk(start, start, [start])
    return cycles


def test_the_apps_modules_import_each_other_one_way():
    cycles = _cycles(_graph(), "dsar")
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join([*cycle, cycle[0]]) for cycle in cycles)


def test_connectors_import_nothing_of_the_workflow():
    offending = {name: sorted(t for t in targets if t == "dsar" or t.startswith("dsar."))
                 for name, targets in _graph().items() if name.startswith("connectors")}
    assert {name: targets for name, targets in offending.items() if targets} == {}


@pytest.mark.parametrize("outside", ["estate", "devstack"])
def test_the_product_never_imports_the_demo_estate_or_the_dev_tooling(outside):
    offending = {name: sorted(t for t in targets if t == outside or t.startswith(f"{outside}."))
                 for name, targets in _graph().items()}
    assert {name: targets for name, targets in offending.items() if targets} == {}


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    root = _tree(tmp_path, {
        "dsar/__init__.py": "",
        "dsar/tasks.py": "from . import processing\n",
        "dsar/processing.py": "def ring():\n    from .tasks import run\n",
        "dsar/models.py": "",
        "connectors/__init__.py": "",
    })
    assert _cycles(_graph(root), "dsar") == [["dsar.processing", "dsar.tasks"]]


def test_imports_of_a_package_resolve_to_its_submodules_and_absolute_names_count(tmp_path):
    root = _tree(tmp_path, {
        "dsar/__init__.py": "",
        "dsar/exports/__init__.py": "from .archive import Archive\n",
        "dsar/exports/archive.py": "from . import staging\n",
        "dsar/exports/staging.py": "import dsar.models\n",
        "dsar/models.py": "from dsar.exports import archive\n",
        "connectors/__init__.py": "",
        "connectors/sql.py": "from estate import stores\nfrom dsar.models import Request\n",
    })
    graph = _graph(root)
    assert graph["dsar.exports"] == {"dsar.exports.archive"}
    assert graph["dsar.exports.archive"] == {"dsar.exports.staging"}
    assert graph["connectors.sql"] == {"estate", "dsar.models"}
    assert _cycles(graph, "dsar") == [["dsar.exports.archive", "dsar.exports.staging", "dsar.models"]]
