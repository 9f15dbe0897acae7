"""Small helpers several test modules share.

`start_target` starts ``python -m targets.X args`` from the repository root and returns once
the process printed its one JSON ready line (`targets.runtime`), as a `Target`: the parsed
line, the pid, and `stop()`. `run_target` runs a target to its end (flag and config errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(check: Callable[[], T | None], deadline_s: float = 30.0, what: str = "") -> T:
    """Call `check` until it returns something truthy; fail after a generous deadline."""
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


async def eventually(
    check: Callable[[], Awaitable[T | None]], deadline_s: float = 30.0, what: str = ""
) -> T:
    """`wait_for` for coroutines: await `check` until it returns something truthy."""
    end = time.monotonic() + deadline_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


def target_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a target runs in from a test: ours, the repository on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **(extra or {})}


def run_target(
    module: str, *args: str, timeout_s: float = 60.0, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` to its end; stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=target_env(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def stop_process(process: subprocess.Popen[Any], grace_s: float = 5.0) -> int:
    """SIGTERM, SIGKILL if still running after `grace_s` (at once when 0); reap; close pipes."""
    if process.poll() is None and grace_s > 0:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace_s)
    if process.poll() is None:
        process.kill()
    code = process.wait(10)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    return code


class Target:
    """A target process that announced itself; `stop()` (or leaving a ``with``) ends it."""

    def __init__(self, process: subprocess.Popen[bytes], ready: dict[str, Any], rest: bytes):
        self.process = process
        self.ready = ready  # the parsed ready line: {"event": "ready", "address": ..., ...}
        self._rest = rest  # stdout read past the ready line

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def address(self) -> str:
        """``host:port`` of the data plane, from the ready line."""
        return str(self.ready["address"])

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def hostport(self, key: str = "address") -> tuple[str, int]:
        """A ``host:port`` field of the ready line as (host, port)."""
        host, _, port = str(self.ready[key]).rpartition(":")
        return host, int(port)

    def send_signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        self.process.kill()

    def poll(self) -> int | None:
        return self.process.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout)

    def read_stdout(self) -> str:
        """What it printed after its ready line, up to its end (call once it exited)."""
        assert self.process.stdout is not None
        return (self._rest + self.process.stdout.read()).decode()

    def stop(self, grace_s: float = 5.0) -> int:
        """SIGTERM, SIGKILL after `grace_s` (at once when 0); reaped; its exit code."""
        return stop_process(self.process, grace_s)

    def __enter__(self) -> Target:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_target(
    module: str,
    *args: str,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = 30.0,
) -> Target:
    """Start ``python -m module args`` (stderr to `log`, else discarded) and read its ready
    line; a process that exits, prints something else or stays silent is killed and fails."""
    if log is None:
        process = _spawn(module, args, env, subprocess.DEVNULL)
    else:
        with log.open("ab") as stderr:
            process = _spawn(module, args, env, stderr)
    try:
        line, rest = _first_line(process, ready_timeout_s)
        if not line:
            code = process.wait(10)
            raise AssertionError(f"{module} exited with {code}{_tail(log)}")
        ready = _ready(line)
        if ready is None:
            raise AssertionError(f"{module}: unexpected first line {line!r}{_tail(log)}")
    except BaseException:
        stop_process(process, grace_s=0)
        raise
    return Target(process, ready, rest)


def _spawn(
    module: str, args: tuple[str, ...], env: Mapping[str, str] | None, stderr: Any
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=target_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


def _first_line(process: subprocess.Popen[bytes], timeout_s: float) -> tuple[bytes, bytes]:
    """(first line of stdout, what came after it), the line cut short if stdout ended."""
    assert process.stdout is not None
    fd = process.stdout.fileno()  # read the descriptor itself: select() can wait on it
    data = b""
    end = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no ready line after {timeout_s:g} s: {process.args!r}")
            if not selector.select(left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return data, b""  # it exited (b"" if it printed nothing)
            data += chunk
    line, _, rest = data.partition(b"\n")
    return line, rest


def _ready(line: bytes) -> dict[str, Any] | None:
    try:
        ready = json.loads(line)
    except ValueError:
        return None
    return ready if isinstance(ready, dict) and ready.get("event") == "ready" else None


def _tail(log: Path | None) -> str:
    if log is None:
        return ""
    return ": " + " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
