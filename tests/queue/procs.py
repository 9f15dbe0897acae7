"""Child processes for the queue's process tests: our queue service and moto's server.

Each helper starts one process on 127.0.0.1 and yields its base URL; the caller's ``finally``
(the context manager) kills it and waits, so no test leaves a child behind.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]


def stop(proc: subprocess.Popen[Any]) -> None:
    """Kill a child we started and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def start_queue(db: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """``python -m targets.queue`` on a free port; (process, "http://127.0.0.1:PORT")."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "targets.queue", "--db", str(db), "--port", "0", *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the ready line, or "" if it died
        if not line:
            raise AssertionError(f"queue process exited with {proc.wait(timeout=10)}")
        ready = json.loads(line)
        assert ready["event"] == "ready"
    except BaseException:
        stop(proc)
        raise
    return proc, f"http://{ready['address']}"


@contextlib.contextmanager
def queue_process(db: Path, *extra: str) -> Iterator[str]:
    proc, url = start_queue(db, *extra)
    try:
        yield url
    finally:
        stop(proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # it answered
    except OSError:
        return False


@contextlib.contextmanager
def moto_process() -> Iterator[str]:
    """moto's standalone server (``python -m moto.server``) on a free loopback port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: proc.poll() is not None or _answers(url + "/moto-api/"),
            what="moto server",
        )
        assert proc.poll() is None, "moto server exited"
        yield url
    finally:
        stop(proc)
