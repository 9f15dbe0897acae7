"""Tests run on uvloop, the loop every target process runs on; every test is in one ring.

The rings (markers registered in pyproject.toml), from the cheapest:

- ``core``: objects and functions called directly: no event loop, no socket, no process.
- ``inprocess``: an event loop, sockets on loopback or an ASGI app, all in the test process.
- ``e2e``: starts at least one child process (a target, the harness, Prometheus, a shell).

A module says its ring once (``pytestmark = pytest.mark.core``); a test in another ring
carries its own (``@pytest.mark.e2e``), and the closest mark wins: at collection the module's
ring moves onto each of its tests without one, so ``-m core`` selects exactly the core tests.
The marking is checked, not trusted: while a test's setup and
call run, `Observed` counts the child processes (subprocess, asyncio's and uvloop's
subprocess calls, os.fork), event loops and sockets this process starts, and the fixtures
whose setup started any (a module-scoped fixture that starts a process makes every test using
it e2e). A test whose ring is not the one it was seen to need fails, saying which to mark.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop

RINGS = ("core", "inprocess", "e2e")


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Any]:
    return {"uvloop": uvloop.new_event_loop}


@dataclass
class Observed:
    """What the test process started: one entry per child process, event loop or socket."""

    processes: list[str] = field(default_factory=list)
    loops: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)

    def mark(self) -> tuple[int, int, int]:
        return len(self.processes), len(self.loops), len(self.sockets)

    def since(self, mark: tuple[int, int, int]) -> Seen:
        processes, loops, sockets = mark
        return Seen(
            self.processes[processes:], len(self.loops) > loops, len(self.sockets) > sockets
        )


@dataclass
class Seen:
    """What one test (or one fixture's setup) started."""

    processes: list[str]
    loop: bool
    sockets: bool

    def ring(self) -> str:
        if self.processes:
            return "e2e"
        return "inprocess" if self.loop or self.sockets else "core"


OBSERVED = pytest.StashKey[Observed]()
# (name, baseid) -> what the setup of a fixture wider than a function started
FIXTURES = pytest.StashKey[dict[tuple[str, str], Seen]]()
AMBIGUOUS = pytest.StashKey[str]()  # the rings of a test marked with several at one level
WINDOW = pytest.StashKey[tuple[int, int, int]]()  # where a test's setup began


def _watch(observed: Observed) -> Callable[[], None]:
    """Wrap every way this process starts a child, a loop or a socket; returns the undo."""
    undo: list[Callable[[], None]] = []

    def wrap(owner: Any, name: str, record: Callable[..., None]) -> None:
        original = getattr(owner, name)
        inherited = isinstance(owner, type) and name not in vars(owner)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            record(*args, **kwargs)
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)
        undo.append(lambda: delattr(owner, name) if inherited else setattr(owner, name, original))

    def process(argv: object) -> str:
        words = [str(a) for a in argv] if isinstance(argv, list | tuple) else [str(argv)]
        return " ".join(words)[:120]

    def popen(_self: object, args: object, *rest: object, **kw: object) -> None:
        observed.processes.append(process(args))

    def loop_exec(_loop: object, _factory: object, *args: object, **kw: object) -> None:
        observed.processes.append(process(args))

    wrap(subprocess.Popen, "_execute_child", popen)  # run, Popen, asyncio's own loop
    wrap(uvloop.Loop, "subprocess_exec", loop_exec)  # uvloop spawns through libuv
    wrap(uvloop.Loop, "subprocess_shell", loop_exec)
    wrap(os, "fork", lambda: observed.processes.append("os.fork()"))
    wrap(uvloop.Loop, "__init__", lambda *a, **k: observed.loops.append("uvloop"))
    wrap(asyncio.BaseEventLoop, "__init__", lambda *a, **k: observed.loops.append("asyncio"))
    wrap(socket.socket, "__init__", lambda *a, **k: observed.sockets.append("socket"))

    def unwatch() -> None:
        for step in reversed(undo):
            step()

    return unwatch


def pytest_configure(config: pytest.Config) -> None:
    observed = Observed()
    config.stash[OBSERVED] = observed
    config.stash[FIXTURES] = {}
    config.add_cleanup(_watch(observed))


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each test exactly the ring of its closest ring mark, and no other."""
    closest: list[tuple[pytest.Item, str | None]] = []
    for item in items:
        levels: dict[object, set[str]] = {}  # node -> its ring marks
        for node, mark in item.iter_markers_with_node():
            if mark.name in RINGS:
                levels.setdefault(node, set()).add(mark.name)
        nearest = next(iter(levels.values()), set())
        if len(nearest) > 1:
            item.stash[AMBIGUOUS] = " and ".join(sorted(nearest))
        closest.append((item, min(nearest) if len(nearest) == 1 else None))
    for item, _ in closest:
        for node in item.iter_parents():
            node.own_markers[:] = [m for m in node.own_markers if m.name not in RINGS]
    for item, ring in closest:
        if ring is not None:
            item.add_marker(ring)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    observed = request.config.stash[OBSERVED]
    mark = observed.mark()
    try:
        return (yield)
    finally:
        seen = observed.since(mark)
        if fixturedef.scope != "function" and seen.ring() != "core":  # cached across tests
            request.config.stash[FIXTURES][fixturedef.argname, fixturedef.baseid] = seen


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    if AMBIGUOUS in item.stash:
        pytest.fail(f"ring: marked {item.stash[AMBIGUOUS]} at once: keep one", pytrace=False)
    item.stash[WINDOW] = item.config.stash[OBSERVED].mark()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    try:
        yield
    except (pytest.skip.Exception, pytest.xfail.Exception):
        raise
    except BaseException as error:
        problem = _misplaced(item)
        if problem:
            error.add_note(problem)
        raise
    problem = _misplaced(item)
    if problem:
        pytest.fail(problem, pytrace=False)


def _misplaced(item: pytest.Item) -> str | None:
    """Why `item` is not in the ring it was seen to need, or None when it is."""
    declared = sorted({m.name for m in item.iter_markers() if m.name in RINGS})
    seen = item.config.stash[OBSERVED].since(item.stash[WINDOW])
    used = [
        (name, fixture)
        for (name, baseid), fixture in item.config.stash[FIXTURES].items()
        if name in getattr(item, "fixturenames", ()) and item.nodeid.startswith(baseid)
    ]
    rings = [seen.ring(), *(fixture.ring() for _, fixture in used)]
    if item.get_closest_marker("asyncio"):
        rings.append("inprocess")
    needed = max(rings, key=RINGS.index)
    if declared == [needed]:
        return None
    why = _evidence(needed, seen, used)
    have = " and ".join(declared) if declared else "in no ring"
    return f"ring: marked {have}, but it {why}: mark it {needed} (see tests/conftest.py)"


def _evidence(needed: str, seen: Seen, used: Iterable[tuple[str, Seen]]) -> str:
    if needed == "core":
        return "starts no event loop, socket or process"
    fixtures = [name for name, fixture in used if fixture.ring() == needed]
    if needed == "e2e":
        if seen.processes:
            return f"started {len(seen.processes)} process(es), first `{seen.processes[0]}`"
        return f"uses fixture {', '.join(fixtures)}, which started a process"
    if fixtures:
        return f"uses fixture {', '.join(fixtures)}, which runs an event loop or sockets"
    return "runs an event loop or opens sockets, and starts no process"
