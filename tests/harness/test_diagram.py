"""The live map's diagram of every shipped topology: each box once, every arrow between two
boxes on the map, and every metric its numbers read documented in docs/metrics.md (a
misspelt metric would show "no data" for ever)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.diagram import Diagram
from harness.runtime import LabRuntime
from harness.supervisor import Supervisor
from harness.topology import load_topology
from tests.test_docs import documented

pytestmark = pytest.mark.core

TOPOLOGIES = sorted((Path(__file__).parents[2] / "harness" / "topologies").glob("*.yaml"))
METRIC = re.compile(r"\b([a-z][a-z0-9]*_[a-z0-9_]+)\s*[{\[)]")
"""A metric's name in PromQL: followed by its matchers, its range or the end of a call (a
function's name is followed by its opening parenthesis)."""


def diagram_of(path: Path, tmp_path: Path) -> Diagram:
    return LabRuntime(load_topology(path), Supervisor(tmp_path)).diagram()


@pytest.mark.parametrize("path", TOPOLOGIES, ids=[p.stem for p in TOPOLOGIES])
def test_every_arrow_joins_two_boxes_drawn_once(path: Path, tmp_path: Path) -> None:
    diagram = diagram_of(path, tmp_path)
    ids = [box.id for box in diagram.boxes]
    assert len(ids) == len(set(ids)), ids
    assert "clients" in ids
    for arrow in diagram.arrows:
        assert {arrow.source, arrow.target} <= set(ids), arrow
        assert arrow.source != arrow.target, arrow


@pytest.mark.parametrize("path", TOPOLOGIES, ids=[p.stem for p in TOPOLOGIES])
def test_every_number_reads_a_documented_metric(path: Path, tmp_path: Path) -> None:
    diagram = diagram_of(path, tmp_path)
    expressions = diagram.expressions() | {b.per_instance for b in diagram.boxes if b.per_instance}
    used = {name for expr in expressions for name in METRIC.findall(expr)}
    assert used, "the map shows no number"
    assert used - {"le"} <= documented() | locust_metrics(), used - documented()
    assert not any("vector(0)" in expr for expr in expressions)


def locust_metrics() -> set[str]:
    """Locust's series (locustfiles/plugin.py), documented in their own table."""
    text = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text()
    return set(re.findall(r"`(locust_[a-z_]+)`", text))


def test_the_shop_draws_each_kind_of_part(tmp_path: Path) -> None:
    """The default shop's map: clients, DNS, the edge, the gateway, each service, the topic,
    each queue with its dead-letter arrow, each worker pool and provider."""
    diagram = LabRuntime(load_topology(), Supervisor(tmp_path)).diagram()
    ids = {box.id for box in diagram.boxes}
    assert {"clients", "dns", "edge:cdn", "gateway", "topic:payments"} <= ids
    assert {"service:orders", "queue:emails", "queue:emails-dlq", "workers:email-workers"} <= ids
    assert {"provider:mail"} <= ids
    assert ("queue:emails", "queue:emails-dlq") in {(a.source, a.target) for a in diagram.arrows}
