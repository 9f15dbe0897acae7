"""Tests for `python -m targets.server`, run as a real subprocess."""

from __future__ import annotations

import signal
import subprocess

import pytest

from targets.http.client import fetch
from tests.helpers import run_target, start_target

pytestmark = pytest.mark.e2e


def run_cli(*args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    return run_target("targets.server", *args, timeout_s=timeout_s)


def test_help_documents_capacity_and_lifecycle_flags():
    """--help exits 0 and documents the capacity, registration and boot flags."""
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--slots", "--backlog", "--service-ms", "--lb-control", "--boot-delay"):
        assert flag in result.stdout, flag


def test_zero_slots_exits_2_naming_slots():
    """--slots 0 is refused: exit code 2 and an error message naming slots."""
    result = run_cli("--slots", "0", "--listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert "slots" in result.stderr
    assert result.stdout == ""  # never announced ready


async def test_serves_then_stops_on_sigterm(tmp_path):
    """The server prints one JSON ready line, serves /api/orders, and exits 0 on SIGTERM."""
    with start_target(
        "targets.server",
        *("--listen", "127.0.0.1:0", "--service-ms", "0", "--name", "cli-1"),
        log=tmp_path / "stderr.log",
    ) as proc:
        ready = proc.ready
        assert (ready["service"], ready["instance"]) == ("shop", "cli-1")
        host, _, port = ready["address"].rpartition(":")
        reply = await fetch(host, int(port), "GET", "/api/orders", timeout_s=10)
        assert reply.status == 200
        assert reply.json()["instance"] == "cli-1"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert proc.read_stdout() == ""  # exactly one line on stdout
