"""The core's import boundary: no module of ``shared`` (``shared.kafka``, the Kafka edge, aside)
imports Kafka, HTTP or service code, not even inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import shared

# Third-party I/O frameworks, and the project's adapters and entrypoints.
FORBIDDEN = (
    "aiokafka",
    "faststream",
    "fastapi",
    "starlette",
    "httpx",
    "uvicorn",
    "shared.kafka",
    "api",
    "consumer",
    "cli",
)
EDGE = "shared.kafka"
ROOT = Path(shared.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _core_modules() -> list[tuple[str, Path]]:
    found = [(_module_name(path), path) for path in sorted(ROOT.rglob("*.py"))]
    return [(name, path) for name, path in found if not _within(name, EDGE)]


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute name an ``ImportFrom`` reads (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imported_names(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module name ``source`` imports anywhere (functions, ``TYPE_CHECKING`` blocks,
    ``importlib.import_module("...")`` with a literal name included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node, is_package)
            names.add(base)
            # `from shared import kafka` imports the module shared.kafka
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if called in ("import_module", "__import__") and isinstance(first, ast.Constant):
                names.add(str(first.value))
    return names


def forbidden_imports(names: set[str]) -> list[str]:
    """The names among ``names`` that the core must not import."""
    return sorted(name for name in names if any(_within(name, bad) for bad in FORBIDDEN))


def test_the_core_has_modules_and_the_edge_is_left_out() -> None:
    """The walk finds the core's modules (services included) and skips the Kafka edge."""
    names = {name for name, _ in _core_modules()}
    assert {"shared.errors", "shared.topic_training", "shared.topic_jobs"} <= names
    assert not any(_within(name, EDGE) for name in names)


@pytest.mark.parametrize(
    ("module", "path"), [pytest.param(name, path, id=name) for name, path in _core_modules()]
)
def test_a_core_module_imports_no_io_framework_or_adapter(module: str, path: Path) -> None:
    """The module imports none of aiokafka, faststream, fastapi, starlette, httpx, uvicorn,
    shared.kafka, api, consumer or cli."""
    names = imported_names(
        path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py"
    )
    bad = forbidden_imports(names)
    assert not bad, f"{module} imports {', '.join(bad)}: the core must stay free of I/O adapters"


def test_the_walk_sees_every_form_of_import() -> None:
    """Imports inside functions, relative, from-package and importlib ones are all caught."""
    source = """
from __future__ import annotations
import numpy
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from fastapi import Request
def later():
    import aiokafka.errors
    from ..api import app
    from shared import kafka
    importlib.import_module("httpx")
"""
    names = imported_names(source, "shared.sub.module")
    assert forbidden_imports(names) == [
        "aiokafka.errors",
        "fastapi",
        "fastapi.Request",
        "httpx",
        "shared.kafka",
    ]
    assert "api" not in names  # `..api` from shared.sub.module is shared.api, not the api
    assert forbidden_imports(imported_names("from .. import api", "x.y.z")) == []
    assert forbidden_imports({"apiary", "clinic", "shared.kafkaesque"}) == []
