"""The package's shape: no import cycles, dependencies pointing one way through the layers, a light top level."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import audiograft

PACKAGE = Path(audiograft.__file__).parent
# Lowest first: a module may import its own layer and those before it, never one after it.
LAYERS = ["files", "audio", "manifest", "presets", "modeling", "inference", "evaluation", "training", "serving", "corpora",
          "bench", "cli"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def internal_imports(path: Path, modules: set[str]) -> set[str]:
    """Every audiograft module `path` imports, at any depth of the file (function-local imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in modules} - {"audiograft"}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: internal_imports(path, set(files)) - {name} for name, path in files.items()}


def layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def test_the_package_has_no_import_cycle():
    try:
        tuple(TopologicalSorter(import_graph()).static_order())
    except CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None


def test_a_cycle_would_be_found():
    graph = {"audiograft.a": {"audiograft.b"}, "audiograft.b": {"audiograft.a"}}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError:
        return
    raise AssertionError("graphlib did not see a two-module cycle")


def test_dependencies_point_down_the_layers():
    upward = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if layer(module) in LAYERS
        for target in targets
        if LAYERS.index(layer(target)) > LAYERS.index(layer(module))
    ]
    assert not upward, "\n".join(upward)


def test_every_subpackage_is_a_known_layer():
    subpackages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert subpackages | modules == set(LAYERS)


def test_importing_the_package_loads_no_heavy_library():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, audiograft; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert not {"torch", "transformers", "peft", "fastapi", "uvicorn", "audiograft.presets.ctranslate2_conversion"} & set(loaded)


def test_the_graft_loads_no_server_and_no_training_code():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; from audiograft import GraftModel; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert not {"fastapi", "uvicorn", "audiograft.serving", "audiograft.training"} & set(loaded)
