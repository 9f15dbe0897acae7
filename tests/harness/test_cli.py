"""The harness command line as a user runs it: validate, up, status, chaos, down."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import get_args

import pytest

from chaos.actions import IMPLEMENTATIONS
from chaos.vocabulary import NAMES, PARAMS
from dashboards.build import build_all
from harness.cli import chaos as chaos_command
from harness.control import ChaosBody
from harness.scenario import STEPS
from tests.dashboards.fake_grafana import FakeGrafana11, in_thread
from tests.helpers import running

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def harness(
    *args: str, cwd: Path, timeout: float = 60, env: dict[str, str] = ENV
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_validate_accepts_the_shipped_topology(tmp_path: Path) -> None:
    """`harness validate` says a good topology is valid and exits 0."""
    result = harness("validate", str(ROOT / "harness/topologies/shop.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid topology" in result.stdout


def test_validate_names_file_line_and_field(tmp_path: Path) -> None:
    """A bad topology exits 2 with file:line:col and the field path of every problem."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: shop\nservices:\n  orders:\n    replicas: -1\n    capacity: {slots: 0}\n")
    result = harness("validate", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{bad}:4:5: services.orders.replicas" in result.stdout
    assert f"{bad}:5:16: services.orders.capacity.slots" in result.stdout


def test_commands_without_a_running_lab_say_so(tmp_path: Path) -> None:
    """status and chaos exit 2 with a clear line when no lab runs; down has nothing to do."""
    for args in (("status",), ("chaos", "kill", "orders")):
        result = harness(*args, cwd=tmp_path)
        assert result.returncode == 2
        assert "no running lab" in result.stdout
    down = harness("down", cwd=tmp_path)
    assert (down.returncode, down.stdout.strip()) == (0, "no lab is running")


def test_an_unknown_chaos_action_names_the_valid_ones(tmp_path: Path) -> None:
    """`harness chaos foo orders` says which actions exist, in one line, exit 2."""
    result = harness("chaos", "foo", "orders", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.strip() == f"error: unknown action 'foo'; actions: {', '.join(NAMES)}"


def test_up_status_chaos_down(tmp_path: Path) -> None:
    """up starts the lab, chaos acts on it, down stops it and every process it started."""
    topology = tmp_path / "small.yaml"
    topology.write_text("name: small\nservices:\n  orders:\n    replicas: 2\n    min_replicas: 1\n")
    with lab_up(tmp_path, "--topology", str(topology)) as (up, pointer):
        status = harness("status", cwd=tmp_path)
        assert status.returncode == 0, status.stdout
        assert "orders-1" in status.stdout
        assert "healthy" in status.stdout
        chaos = harness("chaos", "kill", "orders", "--instance", "orders-2", cwd=tmp_path)
        assert chaos.returncode == 0, chaos.stdout
        assert "SIGKILL" in chaos.stdout
        refused = harness("chaos", "remove", "orders", "--count", "2", cwd=tmp_path)
        assert refused.returncode == 2
        assert "min_replicas" in refused.stdout
        run_dir = Path(json.loads(pointer.read_text())["run_dir"])
        pids = [int(line.split()[0]) for line in _pid_lines(run_dir)]
        assert harness("down", cwd=tmp_path).returncode == 0
        assert up.wait(30) == 0
        time.sleep(0.5)
        assert [pid for pid in pids if running(pid)] == []


@contextmanager
def lab_up(
    cwd: Path, *args: str, env: dict[str, str] = ENV
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """`harness up --no-live ARGS` in `cwd`, once its `runs/current.json` exists: the process
    and that pointer. A lab the test did not stop gets SIGTERM."""
    up = subprocess.Popen(
        [sys.executable, "-m", "harness", "up", "--no-live", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        pointer = cwd / "runs" / "current.json"
        deadline = time.monotonic() + 90
        while not pointer.exists():
            assert up.poll() is None, up.stdout.read() if up.stdout else ""
            assert time.monotonic() < deadline, "the lab did not come up"
            time.sleep(0.2)
        yield up, pointer
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            up.wait(30)
        if up.stdout is not None:
            up.stdout.close()


def _pid_lines(run_dir: Path) -> list[str]:
    """The pids of the lab's processes, from `ps` filtered on the run folder's token path."""
    out = subprocess.run(
        ["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True
    ).stdout
    return [line.strip() for line in out.splitlines() if str(run_dir) in line]


@pytest.mark.core
def test_every_surface_derives_the_actions_from_the_vocabulary() -> None:
    """The functions, the scenario schema, the control API's body and the CLI's options name
    exactly the vocabulary's actions and parameters."""
    assert tuple(IMPLEMENTATIONS) == NAMES
    assert tuple(STEPS) == NAMES
    assert get_args(ChaosBody.model_fields["action"].annotation) == NAMES
    assert set(PARAMS) <= set(ChaosBody.model_fields)
    options = set(inspect.signature(chaos_command).parameters)
    assert set(PARAMS) <= options


def test_up_refuses_a_grafana_that_refuses_the_token(tmp_path: Path) -> None:
    """A token Grafana answers 401 to: exit 2 with the reason, before any process starts."""
    with in_thread(FakeGrafana11("glsa_right")) as grafana:
        env = {**ENV, "RUSHLAB_GRAFANA_TOKEN": "glsa_wrong"}
        result = harness(
            "up", "--no-locust", "--no-live", "--grafana-url", grafana.url, cwd=tmp_path, env=env
        )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"Grafana at {grafana.url} refused the token (401" in result.stdout
    assert "starting topology" not in result.stdout
    assert not (tmp_path / "runs").exists()


def test_up_pushes_the_datasource_and_dashboards_to_grafana(tmp_path: Path) -> None:
    """`up --grafana-url` (token from a file) gives Grafana the lab's Prometheus as a data
    source and every generated dashboard; `down` stops it all."""
    topology = tmp_path / "small.yaml"
    topology.write_text("name: small\nservices:\n  orders:\n    replicas: 1\n")
    token_file = tmp_path / "grafana.token"
    token_file.write_text("glsa_from-a-file\n")
    env = {**ENV, "RUSHLAB_GRAFANA_TOKEN_FILE": str(token_file)}
    env.pop("RUSHLAB_GRAFANA_TOKEN", None)
    with in_thread(FakeGrafana11("glsa_from-a-file")) as grafana:
        args = ("--topology", str(topology), "--no-locust", "--grafana-url", grafana.url)
        with lab_up(tmp_path, *args, env=env) as (up, pointer):
            urls = json.loads(pointer.read_text())["urls"]
            assert harness("down", cwd=tmp_path).returncode == 0
            assert up.wait(30) == 0
    assert grafana.violations == []
    [source] = grafana.datasources.values()
    assert source["url"] == urls["prometheus"]
    generated = {d["uid"] for name, d in build_all().items() if name.endswith(".json")}
    assert set(grafana.dashboards) == generated
    assert urls["grafana"] == grafana.url
