"""Child processes for the queue's process tests: our queue service and moto's server.

Each helper starts one process on 127.0.0.1 and yields its base URL; the caller's ``finally``
(the context manager) stops it and waits, so no test leaves a child behind.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import Target, start_target, stop_process, wait_for

ROOT = Path(__file__).resolve().parents[2]


def stop(proc: Target) -> None:
    """Stop a child we started and reap it."""
    proc.stop()


def start_queue(db: Path, *extra: str) -> tuple[Target, str]:
    """``python -m targets.queue`` on a free port; (process, "http://127.0.0.1:PORT")."""
    proc = start_target("targets.queue", "--db", str(db), "--listen", "127.0.0.1:0", *extra)
    return proc, proc.url


@contextlib.contextmanager
def queue_process(db: Path, *extra: str) -> Iterator[str]:
    with start_queue(db, *extra)[0] as proc:
        yield proc.url


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
        stop_process(proc)
