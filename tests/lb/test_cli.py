"""`python -m targets.lb` documents its flags and refuses bad settings with a clear line."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers import run_target

pytestmark = pytest.mark.e2e


def lb(*args: str) -> subprocess.CompletedProcess[str]:
    return run_target("targets.lb", *args)


def test_help_documents_the_load_balancer_flags() -> None:
    """--help lists the algorithm, health-check, draining and timeout settings."""
    out = lb("--help").stdout
    for flag in (
        "--algorithm",
        "--health-interval",
        "--healthy-threshold",
        "--unhealthy-threshold",
        "--deregistration-delay",
        "--slow-start",
        "--response-timeout",
        "--token-file",
    ):
        assert flag in out


def test_bad_settings_exit_2_naming_the_field() -> None:
    """Impossible settings stop the process before it listens, naming what is wrong."""
    result = lb("--health-interval", "1", "--health-timeout", "2")
    assert result.returncode == 2
    assert "health.timeout_s" in result.stderr
    result = lb("--algorithm", "least_outstanding_requests", "--slow-start", "30")
    assert result.returncode == 2
    assert "slow_start_s" in result.stderr
    result = lb("--token-file", "/nonexistent/token")
    assert result.returncode == 2
    assert "--token-file: cannot read" in result.stderr
