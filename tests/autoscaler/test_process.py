"""The autoscaler as a real process in a real lab: it scales out under load, in after it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chaos.actions import ChaosRequest, apply
from harness.components.autoscaler import Autoscalers
from harness.components.services import Services
from harness.control import Controller, control_app
from harness.loadgen import GET_ONLY, run_load
from harness.runtime import LabRuntime
from harness.supervisor import Supervisor
from harness.topology import topology_from
from targets import asgi
from targets.autoscaler.__main__ import main as autoscaler_main
from targets.http.client import fetch

pytestmark = pytest.mark.e2e

ELASTIC = topology_from(
    {
        "name": "elastic",
        "services": {
            "web": {
                "replicas": 1,
                "min_replicas": 1,
                "max_replicas": 3,
                "capacity": {"slots": 2, "backlog": 64},
                "service_time": {"distribution": "constant", "mean_ms": 40},
                "drain_timeout_s": 2,
                "load_balancer": {
                    "deregistration_delay_s": 0.5,
                    "health": {"interval_s": 0.2, "timeout_s": 0.1, "healthy_threshold": 2},
                },
                "autoscaling": {
                    "metric": "in_flight",
                    "target": 1.0,
                    "warmup_s": 0.5,
                    "scale_in_stabilization_s": 3,
                    "evaluation_interval_s": 0.5,
                },
            }
        },
    }
)


async def _until(what: str, check: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout_s:g} s")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def elastic(tmp_path: Path) -> AsyncIterator[tuple[LabRuntime, Controller]]:
    """The elastic lab, its control API and its autoscaler running."""
    async with Supervisor(tmp_path / "run") as supervisor:
        lab = LabRuntime(ELASTIC, supervisor)
        await lab.start()
        await lab.wait_healthy()
        controller = Controller(lab)
        control = await asgi.start(control_app(controller))
        try:
            await lab.start_autoscalers(("127.0.0.1", control.port))
            yield lab, controller
        finally:
            await control.stop()


async def test_scales_out_under_load_and_back_in_after_it_without_failures(
    tmp_path: Path,
) -> None:
    """A rush adds replicas (each an event with the autoscaler's cause); calm removes them."""
    async with elastic(tmp_path) as (lab, controller):
        web = lab.part(Services).by_name["web"]
        host, port = lab.part(Services).labs["web"].address

        async def replicas(n: int) -> bool:
            return len(web.live()) == n

        rush = asyncio.create_task(
            run_load(host, port, duration_s=10, concurrency=8, calls=GET_ONLY)
        )
        await _until("scaled out to 3", lambda: replicas(3), timeout_s=10)
        rushed = await rush
        calm = await run_load(host, port, duration_s=8, concurrency=1, calls=GET_ONLY)
        await _until("scaled back in to 1", lambda: replicas(1), timeout_s=15)

        assert rushed.failures() == {}
        assert calm.failures() == {}
        events = controller.events.events
        adds = [e for e in events if e.action == "add"]
        removes = [e for e in events if e.action == "remove"]
        # 8 in flight on one replica wants 8 replicas: capped at max_replicas 3.
        assert adds
        assert all("[autoscaler: at_max, in_flight" in e.detail for e in adds)
        assert removes
        assert all("autoscaler: below_target" in e.detail for e in removes)
        assert sum(len(e.instances) for e in adds) == 2

        scaler = lab.part(Autoscalers).children["web"]
        assert [t.labels["role"] for t in lab.scrape_targets()].count("autoscaler") == 1
        await fetch(*scaler.address(), "GET", "/metrics")  # counters are exposed at 0 first
        metrics = (await fetch(*scaler.address(), "GET", "/metrics")).body.decode()
        assert 'autoscaler_metric_target{metric="in_flight",service="web"} 1.0' in metrics
        assert 'autoscaler_current_replicas{service="web"} 1.0' in metrics
        decisions = {
            (s.labels["direction"], s.labels["reason"]): s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
            if s.name == "autoscaler_decisions_total"
        }
        assert decisions["out", "at_max"] >= 1
        assert decisions["in", "below_target"] >= 1
        assert decisions["none", "stabilizing"] >= 1  # calm, but waiting out the window


@pytest.mark.inprocess
def test_a_bad_policy_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--policy` errors name the field; nothing runs."""
    token = tmp_path / "token"
    token.write_text("secret")
    common = [
        "--service=web",
        "--lb-control=127.0.0.1:1",
        "--lab-control=127.0.0.1:1",
        f"--lb-token-file={token}",
        f"--lab-token-file={token}",
    ]
    assert autoscaler_main([*common, '--policy={"target": 0}']) == 2
    assert "target: must be > 0 (got 0)" in capsys.readouterr().err
    assert autoscaler_main([*common, '--policy={"target": 1, "speed": 3}']) == 2
    assert "unknown field(s) speed" in capsys.readouterr().err


async def test_a_killed_autoscaler_scales_nothing_until_restarted(tmp_path: Path) -> None:
    """The autoscaler is a chaos group of one (`autoscaler-web`): killed, a rush adds no
    replica (the control plane is down, the data plane serves on); restarted, it scales out."""
    async with elastic(tmp_path) as (lab, _):
        web = lab.part(Services).by_name["web"]
        host, port = lab.part(Services).labs["web"].address
        await apply(lab, ChaosRequest("kill", "autoscaler-web"))
        status = (await lab.status())["autoscalers"]["web"]
        assert status["state"] == "killed"
        rushed = await run_load(host, port, duration_s=4, concurrency=8, calls=GET_ONLY)
        assert rushed.failures() == {}
        assert len(web.live()) == 1
        await apply(lab, ChaosRequest("restart", "autoscaler-web"))
        assert (await lab.status())["autoscalers"]["web"]["state"] == "running"
        rush = asyncio.create_task(
            run_load(host, port, duration_s=10, concurrency=8, calls=GET_ONLY)
        )
        await _until("scaled out to 3", lambda: _live(web, 3), timeout_s=10)
        assert (await rush).failures() == {}


async def _live(group: Any, count: int) -> bool:
    return len(group.live()) == count
