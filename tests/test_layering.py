"""The package's layers point one way (docs/architecture.md):

    util/protocol <- storage <- config/topic_configs <- group/txn <- handlers <- server
        <- cluster/broker/cli/admin <- testing

A module may import its own layer and the layers below it, never above.
Every import counts, module-level and function-local alike, except those
under ``if TYPE_CHECKING:`` (annotations only, no run-time dependency).
Besides: nothing outside ``pykbroker/testing/`` imports ``pykbroker.testing``
(not even for type checking), and only the dispatcher reaches individual
handler modules.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "pykbroker"

# top-level part of pykbroker.<part> -> rank; "" is pykbroker/__init__.py
RANK: dict[str, int] = {
    "util": 0, "protocol": 0,
    "storage": 1,
    "config": 2, "topic_configs": 2,
    "group": 3, "txn": 3, "share": 3, "security": 3, "telemetry": 3,
    "handlers": 4,
    "server": 5,
    "cluster": 6, "broker": 6, "cli": 6, "ctl": 6, "admin": 6, "reassign": 6, "__main__": 6, "": 6,
    "testing": 7,
}

# Upward imports allowed by exception: (importing module, imported module)
# -> why. Empty: the composition root (pykbroker/broker.py) sits with the
# cluster and the CLI at the top.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}

# Modules outside handlers/ allowed to import a handler module (not just the
# registry, pykbroker.handlers): the dispatcher, for the KIP-511 fallback.
HANDLER_IMPORTERS = {("pykbroker.server.connection", "pykbroker.handlers.api_versions")}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(absolute imported module, line, type_checking_only) of every import
    of a pykbroker module in ``path``; ``from . import x`` yields ``pkg.x``."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.body:
                visit(stmt, True)
            for stmt in node.orelse:
                visit(stmt, type_only)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pykbroker":
                    out.append((alias.name, node.lineno, type_only))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "pykbroker":
                if node.module is None:  # from . import a, b: each is a module or a name of the package
                    for alias in node.names:
                        out.append((f"{target}.{alias.name}", node.lineno, type_only))
                else:
                    out.append((target, node.lineno, type_only))
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(ast.parse(path.read_text(), str(path)), False)
    return out


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _existing_module(name: str) -> str:
    """``pkg.name`` imported with ``from pkg import name`` may be a function:
    the longest prefix that is a module file or package."""
    parts = name.split(".")
    while len(parts) > 1:
        rel = Path(*parts[1:])
        if (PKG / rel).with_suffix(".py").exists() or (PKG / rel / "__init__.py").exists():
            return ".".join(parts)
        parts.pop()
    return "pykbroker"


MODULES = sorted(PKG.rglob("*.py"))


def test_every_part_has_a_rank() -> None:
    parts = {_part(_module_name(p)) for p in MODULES}
    assert parts <= set(RANK), f"give these a layer in RANK: {sorted(parts - set(RANK))}"


def _violations() -> tuple[list[str], set[tuple[str, str]]]:
    bad: list[str] = []
    used: set[tuple[str, str]] = set()
    for path in MODULES:
        mod = _module_name(path)
        src = _part(mod)
        for target, line, type_only in _imports(path):
            target = _existing_module(target)
            dst = _part(target)
            where = f"{path.relative_to(PKG.parent)}:{line}: {mod} imports {target}"
            if dst == "testing" and src != "testing":
                bad.append(f"{where} (pykbroker.testing is for tests; the runtime never imports it)")
                continue
            if (dst == "handlers" and src not in ("handlers", "testing") and target != "pykbroker.handlers"
                    and (mod, target) not in HANDLER_IMPORTERS):
                bad.append(f"{where} (a handler module; move what is shared below the handlers)")
                continue
            if type_only or RANK[dst] <= RANK[src]:
                continue
            if (mod, target) in ALLOWED_UPWARD:
                used.add((mod, target))
                continue
            bad.append(f"{where} (upward: {src or 'pykbroker'} is below {dst})")
    return bad, used


def test_imports_point_down() -> None:
    bad, _ = _violations()
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_allow_list_is_not_stale() -> None:
    _, used = _violations()
    stale = set(ALLOWED_UPWARD) - used
    assert not stale, f"no longer needed, remove from ALLOWED_UPWARD: {sorted(stale)}"


@pytest.mark.parametrize("source, expected", [
    ("from ..testing import faults\n", ["pykbroker.testing"]),
    ("from . import x\n", ["pykbroker.group.x"]),
    ("def f():\n    from ..cluster.node import X\n", ["pykbroker.cluster.node"]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..server.state import S\n", []),
])
def test_the_checker_sees_imports(tmp_path: Path, source: str, expected: list[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser itself: relative, function-local and type-only imports."""
    pkg = tmp_path / "pykbroker" / "group"
    pkg.mkdir(parents=True)
    (pkg / "mod.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "PKG", tmp_path / "pykbroker")
    got = [t for t, _line, type_only in _imports(pkg / "mod.py") if not type_only]
    assert got == expected


def test_no_self_typed_mixins() -> None:
    """Classes cooperate through explicit references, not mixins whose
    methods annotate ``self`` as the class they are mixed into."""
    bad = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.args.args:
                first = node.args.args[0]
                if first.arg == "self" and first.annotation is not None:
                    bad.append(f"{path.relative_to(PKG.parent)}:{node.lineno}: {node.name}")
    assert not bad, "methods with an annotated self (mixins):\n" + "\n".join(bad)
