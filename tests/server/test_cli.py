"""Tests for `python -m targets.server`, run as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from targets.http.client import fetch

ROOT = Path(__file__).parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def run_cli(*args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "targets.server", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_help_documents_capacity_and_lifecycle_flags():
    """--help exits 0 and documents the capacity, registration and boot flags."""
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--slots", "--backlog", "--service-ms", "--register-with", "--boot-delay"):
        assert flag in result.stdout, flag


def test_zero_slots_exits_2_naming_slots():
    """--slots 0 is refused: exit code 2 and an error message naming slots."""
    result = run_cli("--slots", "0", "--port", "0")
    assert result.returncode == 2
    assert "slots" in result.stderr
    assert result.stdout == ""  # never announced ready


async def test_serves_then_stops_on_sigterm(tmp_path):
    """The server prints one JSON ready line, serves /api/orders, and exits 0 on SIGTERM."""
    log = (tmp_path / "stderr.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "targets.server",
        "--port",
        "0",
        "--service-ms",
        "0",
        "--instance-id",
        "cli-1",
        cwd=ROOT,
        env=ENV,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        ready = json.loads(line)
        assert ready["event"] == "ready", line
        assert (ready["service"], ready["instance"]) == ("shop", "cli-1")
        host, _, port = ready["address"].rpartition(":")
        reply = await fetch(host, int(port), "GET", "/api/orders", timeout_s=10)
        assert reply.status == 200
        assert reply.json()["instance"] == "cli-1"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        assert await proc.stdout.read() == b""  # exactly one line on stdout
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
