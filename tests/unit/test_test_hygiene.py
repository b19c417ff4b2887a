"""Rules the test suite keeps: each test says what it proves, and unit tests start no process."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
UNIT = TESTS / "unit"

# Modules whose import means a test starts (or can start) another process.
PROCESS_MODULES = frozenset({"subprocess", "multiprocessing"})
# Calls that start a process without importing one of those modules.
PROCESS_CALLS = frozenset(
    {
        ("asyncio", "create_subprocess_exec"),
        ("asyncio", "create_subprocess_shell"),
        ("os", "fork"),
        ("os", "forkpty"),
        ("os", "system"),
        ("os", "popen"),
        ("os", "posix_spawn"),
        ("os", "posix_spawnp"),
    }
)

Function = ast.FunctionDef | ast.AsyncFunctionDef


def collected_tests(tree: ast.Module) -> Iterator[Function]:
    """The ``test_*`` functions pytest collects: at module level and in (nested) classes."""
    scopes: list[list[ast.stmt]] = [tree.body]
    while scopes:
        for node in scopes.pop():
            if isinstance(node, ast.ClassDef):
                scopes.append(node.body)
            elif isinstance(node, Function) and node.name.startswith("test_"):
                yield node


def undocumented(source: str) -> list[str]:
    """``line name`` of each test function in ``source`` without a docstring."""
    tree = ast.parse(source)
    return [f"{f.lineno} {f.name}" for f in collected_tests(tree) if ast.get_docstring(f) is None]


def process_starters(source: str) -> list[str]:
    """``line what`` of each import or call in ``source`` that starts another process."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PROCESS_MODULES:
                    found.append(f"{node.lineno} import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            root = node.module.split(".")[0]
            if root in PROCESS_MODULES:
                found.append(f"{node.lineno} from {node.module} import ...")
            for alias in node.names:
                if (node.module, alias.name) in PROCESS_CALLS:
                    found.append(f"{node.lineno} from {node.module} import {alias.name}")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in PROCESS_CALLS
        ):
            found.append(f"{node.lineno} {node.value.id}.{node.attr}")
    return sorted(found, key=lambda entry: int(entry.split()[0]))


def modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_test_has_a_docstring() -> None:
    """Every test function under tests/, in a module or a class, has a docstring."""
    missing = [
        f"{path.relative_to(TESTS.parent)}:{entry}"
        for path in modules(TESTS)
        for entry in undocumented(path.read_text())
    ]
    assert not missing, "test functions without a docstring:\n" + "\n".join(missing)


def test_unit_tests_start_no_process() -> None:
    """No module under tests/unit imports subprocess or multiprocessing or spawns a process."""
    starters = [
        f"{path.relative_to(TESTS.parent)}:{entry}"
        for path in modules(UNIT)
        for entry in process_starters(path.read_text())
    ]
    assert not starters, (
        "unit tests must not start processes (move these to tests/integration):\n"
        + "\n".join(starters)
    )


def test_the_checks_see_what_they_look_for() -> None:
    """The two checks catch a planted violation of each kind and pass clean code."""
    source = '''
import subprocess
from multiprocessing import Process
import asyncio
from os import fork

def test_bare():
    asyncio.create_subprocess_exec("true")

def test_told():
    """Says what it proves."""

class TestGroup:
    def test_in_a_class(self):
        pass

    def helper(self):
        pass

def outer():
    def test_nested():  # not collected by pytest
        pass
'''
    assert undocumented(source) == ["7 test_bare", "14 test_in_a_class"]
    assert process_starters(source) == [
        "2 import subprocess",
        "3 from multiprocessing import ...",
        "5 from os import fork",
        "8 asyncio.create_subprocess_exec",
    ]
    assert process_starters("import threading\nfrom asyncio import sleep\n") == []
