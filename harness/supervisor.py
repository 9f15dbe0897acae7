"""The supervisor: the one owner of every process the lab starts.

Children are started with an argument list (never a shell), their stderr goes to a log file in
the run's folder, and each must print one JSON ready line on stdout (see targets/runtime.py).
Every child gets PR_SET_PDEATHSIG=SIGKILL, so none survives the harness, even a `kill -9` of it.
Chaos acts through `Child` handles: by pid, only on processes this supervisor started.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import StartError
from targets.http.client import fetch
from targets.http.upstream import UpstreamError

ROOT = Path(__file__).resolve().parents[1]
_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` a moment ago (for programs that cannot bind port 0 and say
    which port they got)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(eq=False)
class Child:
    name: str
    role: str
    argv: list[str]
    process: asyncio.subprocess.Process
    log_path: Path
    ready: dict[str, Any] = field(default_factory=dict)
    _drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def address(self, key: str = "address") -> tuple[str, int]:
        host, _, port = str(self.ready[key]).rpartition(":")
        return host, int(port)

    def signal(self, sig: signal.Signals) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL: the machine loses power."""
        self.signal(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: a gray failure; the socket accepts, nothing answers."""
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    async def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM (graceful: deregister, drain, exit), then SIGKILL after `timeout_s`."""
        self.signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
        self.signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            self.kill()
            return await self.process.wait()


class Supervisor:
    """Starts, tracks and stops the lab's processes; `async with` stops them all on exit."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir.resolve()  # children run in the repository root
        self.children: dict[str, Child] = {}
        run_dir.mkdir(parents=True, exist_ok=True)

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_all()

    async def spawn(
        self, name: str, role: str, module: str, args: list[str], ready_timeout_s: float = 20.0
    ) -> Child:
        """Start `python -m module args...` and wait for its ready line."""
        if name in self.children and self.children[name].alive:
            raise StartError(f"{name}: already running (pid {self.children[name].pid})")
        argv = [sys.executable, "-m", module, *args]
        child = await self._exec(name, role, argv, log_stdout=False)
        child.ready = await self._await_ready(child, ready_timeout_s)
        child._drain = asyncio.get_running_loop().create_task(self._drain_stdout(child))
        return child

    async def spawn_program(
        self,
        name: str,
        role: str,
        argv: list[str],
        ready_url: tuple[str, int, str],
        ready_timeout_s: float = 30.0,
    ) -> Child:
        """Start a program that prints no ready line (Prometheus, Locust): it is ready once
        `GET http://host:port/path` answers 200. Its stdout and stderr go to its log."""
        child = await self._exec(name, role, argv, log_stdout=True)
        process, log_path = child.process, child.log_path
        host, port, path = ready_url
        deadline = asyncio.get_running_loop().time() + ready_timeout_s
        while True:
            if not child.alive:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise StartError(f"{name}: exited with {process.returncode}: {' | '.join(tail)}")
            try:
                reply = await fetch(host, port, "GET", path, timeout_s=1.0)
                if reply.status == 200:
                    break
            except UpstreamError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                child.kill()
                await process.wait()
                raise StartError(f"{name}: not ready after {ready_timeout_s:g} s; log: {log_path}")
            await asyncio.sleep(0.1)
        child.ready = {"address": f"{host}:{port}"}
        return child

    async def _exec(self, name: str, role: str, argv: list[str], *, log_stdout: bool) -> Child:
        """Start `argv` as a child of this supervisor; stderr (and stdout) to its log file."""
        if name in self.children and self.children[name].alive:
            raise StartError(f"{name}: already running (pid {self.children[name].pid})")
        log_path = self.run_dir / f"{name}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log if log_stdout else asyncio.subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
                env=env,
                preexec_fn=_die_with_parent,
                start_new_session=True,  # Ctrl-C in the terminal reaches the harness only
            )
        child = Child(name, role, argv, process, log_path)
        self.children[name] = child
        return child

    async def _await_ready(self, child: Child, timeout_s: float) -> dict[str, Any]:
        assert child.process.stdout is not None
        try:
            line = await asyncio.wait_for(child.process.stdout.readline(), timeout_s)
        except TimeoutError:
            child.kill()
            await child.process.wait()
            raise StartError(
                f"{child.name}: not ready after {timeout_s:g} s; log: {child.log_path}"
            ) from None
        if not line:
            code = await child.process.wait()
            tail = child.log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise StartError(f"{child.name}: exited with {code}: {' | '.join(tail)}")
        ready = json.loads(line)
        if not isinstance(ready, dict) or ready.get("event") != "ready":
            raise StartError(f"{child.name}: unexpected first line {line!r}")
        return ready

    async def _drain_stdout(self, child: Child) -> None:
        assert child.process.stdout is not None
        with child.log_path.open("ab") as log:
            while line := await child.process.stdout.readline():
                log.write(line)

    async def stop_all(self, timeout_s: float = 15.0) -> None:
        """Stop every child still running, gracefully first, all at once."""
        running = [c for c in self.children.values() if c.alive]
        await asyncio.gather(*(c.stop(timeout_s) for c in running))
        for child in self.children.values():
            if child._drain is not None:
                child._drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await child._drain
