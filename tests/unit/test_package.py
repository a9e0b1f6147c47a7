"""The package's shape: lazy submodules, layers that import only downwards, no module
reaching into another's private names, and no process-wide mutable switch."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import kdteach

PACKAGE = Path(kdteach.__file__).resolve().parent
MODULES = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}

#: Modules that know nothing of training; the loop never imports the screen.
FOUNDATIONS = {"config", "checks", "files", "data", "text", "models", "gpt", "losses",
               "features", "connectors", "metrics", "evidence", "sequence_kd"}
LOOP_AND_ABOVE = {"train", "online", "quantize", "zoo", "bench", "distributed", "teacher_cache"}
SCREEN = {"viz", "widgets"}


def kdteach_imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The kdteach modules a file imports (``from . import x``, ``from .x import y``)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kdteach."):
            found.add(node.module.split(".")[1])
    return found


def test_every_module_is_listed_for_lazy_import():
    listed = set(kdteach._SUBMODULES)
    on_disk = set(MODULES) | {p.name for p in PACKAGE.iterdir()
                              if p.is_dir() and (p / "__init__.py").exists()}
    assert listed == on_disk


@pytest.mark.parametrize("name", sorted(FOUNDATIONS))
def test_foundations_know_no_loop_and_no_screen(name):
    imported = kdteach_imports(MODULES[name], top_level_only=False)
    assert not imported & (LOOP_AND_ABOVE | SCREEN | {"online", "cache", "results"}), imported


def test_the_loop_knows_no_screen_at_import():
    for name in ("train", "online", "quantize"):
        assert not kdteach_imports(MODULES[name], top_level_only=True) & SCREEN, name


def test_no_module_uses_another_modules_private_names():
    files = [p for p in PACKAGE.rglob("*.py")]
    modules = "|".join(sorted(set(MODULES) | {"exercises", "feedback", "experiments"}))
    attribute = re.compile(rf"\b(?:{modules})\._[a-z]\w*")
    offenders = []
    for path in files:
        text = path.read_text()
        offenders += [f"{path.name}: {m}" for m in attribute.findall(text)]
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                offenders += [f"{path.name}: from .{node.module} import {a.name}"
                              for a in node.names if a.name.startswith("_")]
    assert offenders == []


def test_no_module_rebinds_another_modules_globals():
    """A process-wide switch is a module global some other code assigns (``losses.X = ...``)."""
    assignment = re.compile(r"^\s*(?:" + "|".join(MODULES) + r")\.[A-Za-z_]\w*\s*=[^=]", re.M)
    offenders = [f"{p.name}: {m.group(0).strip()}" for p in PACKAGE.rglob("*.py")
                 for m in assignment.finditer(p.read_text())]
    assert offenders == []
