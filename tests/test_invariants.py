"""The invariants ARCHITECTURE.md states, checked on the source: absences a reader relies on."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from harness.components import COMPONENTS

pytestmark = pytest.mark.core

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "targets", "chaos", "dashboards", "locustfiles")

# The modules that loop over the registry: none of them may name a kind of part.
KIND_FREE = (
    "harness/runtime.py",
    "harness/topology.py",
    "harness/report.py",
    "harness/labinfo.py",
    "harness/control.py",
    "harness/runner.py",
    "harness/session.py",
    "harness/scenario.py",
    "chaos/actions.py",
)
# What names one kind: its component class, or an import of its module.
KIND_CLASSES = {component.__name__ for component in COMPONENTS}
KIND_MODULES = {component.__module__ for component in COMPONENTS}
# Pure cores: policy and state only, `now` and the RNG as arguments.
CORES = (
    *sorted(ROOT.glob("targets/*/core.py")),
    *sorted(ROOT.glob("targets/limiter/*.py")),
    ROOT / "targets/queue/rules.py",
    ROOT / "targets/cdn/policy.py",
    ROOT / "targets/cdn/store.py",
    ROOT / "targets/server/content.py",
    ROOT / "targets/dns/records.py",
    ROOT / "targets/autoscaler/observe.py",
    ROOT / "targets/http/router.py",
    ROOT / "harness/slo.py",
)
IMPURE = {"asyncio", "socket", "time", "datetime", "threading", "selectors", "sqlite3"}
MUTABLE_CALLS = {"dict", "list", "set", "defaultdict", "OrderedDict", "Counter", "count"}
MUTATORS = {"append", "extend", "insert", "update", "add", "pop", "popitem", "remove",
            "discard", "clear", "setdefault"}  # fmt: skip


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _kinds_named(source: str) -> set[str]:
    """The component classes `source` names and the component modules it imports (code
    only: prose in strings and comments may mention any kind)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id in KIND_CLASSES:
            found.add(node.id)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
            found |= modules & KIND_MODULES
            found |= {alias.name for alias in node.names} & KIND_CLASSES
    return found


@pytest.mark.parametrize("path", KIND_FREE)
def test_modules_that_loop_over_the_registry_name_no_kind(path: str) -> None:
    """Only a kind's component module branches on that kind."""
    named = _kinds_named((ROOT / path).read_text())
    assert not named, f"{path} names {sorted(named)}: move that into the kind's component"


@pytest.mark.parametrize("path", CORES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cores_import_no_io_and_no_clock(path: Path) -> None:
    """A core takes `now` and the RNG as arguments: no asyncio, socket, clock or database."""
    impure = _imports(ast.parse(path.read_text())) & IMPURE
    assert not impure, f"{path.relative_to(ROOT)} imports {sorted(impure)}"


def test_no_module_level_mutable_state() -> None:
    """No module-level state: a dict, list, set or counter bound at module level is a constant
    table (an UPPER_CASE name that nothing in its module changes); registries are tuples or
    read-only mappings. So no test has to reset a global, and no import changes behaviour."""
    found: list[str] = []
    for path in _modules():
        tree = ast.parse(path.read_text())
        changed = _changed_names(tree)
        for node in tree.body:
            if not isinstance(node, ast.Assign | ast.AnnAssign):
                continue
            if not _mutable(node.value) or _is_dunder(node):
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                name = getattr(target, "id", "")
                if not name.isupper() or name in changed:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not found, f"module-level state: {found}"


def _mutable(value: ast.expr | None) -> bool:
    if isinstance(value, ast.Dict | ast.List | ast.Set | ast.DictComp | ast.ListComp | ast.SetComp):
        return True
    return isinstance(value, ast.Call) and (
        getattr(value.func, "id", getattr(value.func, "attr", "")) in MUTABLE_CALLS
    )


def _changed_names(tree: ast.Module) -> set[str]:
    """Names some code of the module changes: item assignment, a mutating method, `global`."""
    changed: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            changed |= set(node.names)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del):
            changed.add(getattr(node.value, "id", ""))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in MUTATORS
        ):
            changed.add(getattr(node.func.value, "id", ""))
    return changed


def _is_dunder(node: ast.stmt) -> bool:
    """`__all__` and the like: a list by convention, read by tools."""
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return all(isinstance(t, ast.Name) and re.fullmatch(r"__\w+__", t.id) for t in targets)


def test_the_harness_never_imports_locust() -> None:
    """gevent's patching breaks asyncio: only Locust's own subprocesses load locust."""
    for path in _modules():
        if path.parts[len(ROOT.parts)] == "locustfiles":
            continue
        assert "locust" not in _imports(ast.parse(path.read_text())), path.relative_to(ROOT)


def test_only_the_cli_exits_the_harness() -> None:
    """harness/cli.py is the one place that maps errors to exit codes."""
    for path in sorted((ROOT / "harness").rglob("*.py")):
        if path.name in ("cli.py", "__main__.py"):
            continue
        text = path.read_text()
        assert "sys.exit(" not in text, path.relative_to(ROOT)
        assert "raise SystemExit" not in text, path.relative_to(ROOT)
