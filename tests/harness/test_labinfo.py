"""`harness status`'s table: every name and address whole, and no wider than the terminal."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness.labinfo import status_table

pytestmark = pytest.mark.core

SHOP_STATUS = Path(__file__).with_name("shop_status.json")
"""`GET /status` of `harness up --no-locust --no-prometheus` on the default shop topology."""


def shop_status() -> dict[str, Any]:
    """The shop's status with what a full lab adds (an autoscaler, Prometheus, Locust) and
    chaos in progress (a killed server no longer registered, a paused worker)."""
    status: dict[str, Any] = json.loads(SHOP_STATUS.read_text())
    status = copy.deepcopy(status)
    orders = status["services"]["orders"]["instances"]
    orders[1] |= {"state": "killed", "target": "unregistered", "in_flight": 0}
    status["pools"]["email-workers"]["instances"][0]["state"] = "paused"
    status["autoscalers"] = {
        "orders": {
            "name": "autoscaler-orders",
            "role": "autoscaler",
            "pid": 4194301,
            "address": None,
            "state": "running",
        }
    }
    status["processes"] += [
        {
            "name": "prometheus",
            "role": "prometheus",
            "pid": 4194302,
            "address": "127.0.0.1:43125",
            "state": "running",
        },
        {
            "name": "locust-master",
            "role": "locust",
            "pid": 4194303,
            "address": "127.0.0.1:38089",
            "state": "running",
        },
    ]
    return status


def rendered(status: dict[str, Any], width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(status_table(status))
    return console.export_text()


def instances(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Every process row of a status document (load balancers, instances, single processes)."""
    rows: list[dict[str, Any]] = list(status["processes"])
    for section in status.values():
        if isinstance(section, dict):
            for entry in section.values():
                if "pid" in entry:
                    rows.append(entry)
                else:
                    rows += [*filter(None, [entry.get("lb")]), *entry["instances"]]
    return rows


def test_every_name_and_address_whole_at_80_columns() -> None:
    """At 80 columns each instance's name, pid and address are on one of its lines, whole,
    and no line is wider than 80."""
    status = shop_status()
    text = rendered(status, 80)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80, text
    rows = instances(status)
    assert len(rows) > 25  # the shop: servers, LBs, queue, topics, workers, providers, ...
    for row in rows:
        [line] = [line for line in lines if line.split()[:1] == [row["name"]]]
        assert str(row["pid"]) in line.split(), (row["name"], text)
        if row["address"]:
            assert row["address"] in line.split(), (row["name"], text)
    for name in ("orders-2", "notification-workers-1", "cdn-1", "topics-1", "127.200.0.1"):
        assert name in text
    assert "…" not in text


def test_groups_of_several_processes_head_their_rows() -> None:
    """A service's name heads its load balancer and servers; `queue-1` needs no heading."""
    lines = rendered(shop_status(), 80).splitlines()
    body = lines[next(n for n, line in enumerate(lines) if line.startswith("──")) + 1 :]
    first = [line.split()[0] for line in body if line[:1].strip()]
    at = first.index("orders")
    assert first[at : at + 5] == ["orders", "orders-lb", "orders-1", "orders-2", "orders-3"]
    assert "queue" not in first
    assert "queue-1" in first


def test_a_wide_terminal_keeps_each_process_on_one_line() -> None:
    """At 120 columns nothing wraps: one line per process, one per heading."""
    status = shop_status()
    text = rendered(status, 120)
    assert "2 routable" in text
    headings = sum(1 for line in text.splitlines() if line.strip() in {"auth", "orders"})
    assert headings == 2
