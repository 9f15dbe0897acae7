"""Topology files: autoscaling settings are checked with file:line:col before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError
from harness.topology import load_topology

pytestmark = pytest.mark.core

SERVICE = """\
name: t
services:
  web:
    replicas: 1
    min_replicas: {min}
    max_replicas: 4
    autoscaling:
      {autoscaling}
"""


def problems(tmp_path: Path, min_replicas: int, autoscaling: str) -> list[str]:
    path = tmp_path / "topology.yaml"
    path.write_text(SERVICE.format(min=min_replicas, autoscaling=autoscaling))
    with pytest.raises(InputError) as caught:
        load_topology(path)
    return [line.removeprefix(f"{path}:") for line in caught.value.problems]


def test_autoscaling_gives_the_core_its_policy(tmp_path: Path) -> None:
    """The service's replica bounds and the autoscaling fields make the core's Policy."""
    path = tmp_path / "topology.yaml"
    path.write_text(SERVICE.format(min=1, autoscaling="{target: 4, warmup_s: 2}"))
    policy = load_topology(path).services["web"].autoscaler_policy()
    assert policy is not None
    assert (policy.target, policy.min_replicas, policy.max_replicas, policy.warmup_s) == (
        4,
        1,
        4,
        2,
    )


def test_autoscaling_target_must_be_positive(tmp_path: Path) -> None:
    """A target of 0 is refused at its own line and field path."""
    [line] = problems(tmp_path, 1, "{target: 0}")
    assert line.startswith("8:8: services.web.autoscaling.target: Input should be greater than 0")


def test_autoscaling_needs_min_replicas_of_one(tmp_path: Path) -> None:
    """No scale to zero: autoscaling with min_replicas 0 names the service."""
    [line] = problems(tmp_path, 0, "{target: 2}")
    assert "services.web" in line
    assert "autoscaling needs min_replicas >= 1" in line


def test_core_rules_are_reported_through_the_topology(tmp_path: Path) -> None:
    """A rule only the core knows (interval within the scale-out period) names the field."""
    [line] = problems(tmp_path, 1, "{target: 2, evaluation_interval_s: 20, scale_out_period_s: 10}")
    assert "autoscaling: evaluation_interval_s: must be > 0 and <= scale_out_period_s" in line


GATEWAY = """\
name: t
services:
  web: {{replicas: 1}}
gateway:
  routes:
{routes}
"""


def gateway_problems(tmp_path: Path, routes: str) -> list[str]:
    path = tmp_path / "topology.yaml"
    path.write_text(GATEWAY.format(routes=routes))
    with pytest.raises(InputError) as caught:
        load_topology(path)
    return [line.removeprefix(f"{path}:") for line in caught.value.problems]


def test_gateway_rate_must_be_positive_at_its_line(tmp_path: Path) -> None:
    """A limit with rate 0 is refused at its own line and field path."""
    routes = "    - {name: a, path: /a, service: web, limits: [{rate: 0}]}"
    [line] = gateway_problems(tmp_path, routes)
    assert line.startswith("6:51: gateway.routes.0.limits.0.rate: Input should be greater than 0")


def test_gateway_route_to_an_unknown_service(tmp_path: Path) -> None:
    """A route naming no service of the topology says which, and lists the services."""
    [line] = gateway_problems(tmp_path, "    - {name: a, path: /a, service: nope}")
    assert "6:27: gateway.routes.0.service: no service 'nope' (services: web)" in line


def test_gateway_overlapping_exact_routes(tmp_path: Path) -> None:
    """Two exact routes for the same path and methods cannot be told apart."""
    routes = (
        "    - {name: a, path: /a, service: web, match: exact}\n"
        "    - {name: b, path: /a, service: web, match: exact}"
    )
    [line] = gateway_problems(tmp_path, routes)
    assert (
        "7:17: gateway.routes.1.path: '/a' overlaps routes[0] ('/a') for the same methods" in line
    )


# -- queues, providers, workers, and the payment's email ---------------------------------------

PIPELINE = """\
name: t
services:
  payments:
    replicas: 1
    email: {email}
queues:
  emails: {queue}
providers:
  mail: {{latency: {{mean_ms: 100}}}}
workers:
  senders: {workers}
"""


def pipeline(
    tmp_path: Path,
    email: str = "{mode: async, queue: emails}",
    queue: str = "{dead_letter: {max_receive_count: 2}}",
    workers: str = "{queue: emails, provider: mail}",
) -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(PIPELINE.format(email=email, queue=queue, workers=workers))
    return path


def pipeline_problems(tmp_path: Path, **parts: str) -> list[str]:
    path = pipeline(tmp_path, **parts)
    with pytest.raises(InputError) as caught:
        load_topology(path)
    return [line.removeprefix(f"{path}:") for line in caught.value.problems]


def test_pipeline_groups_for_chaos(tmp_path: Path) -> None:
    """Worker pools, the queue service and providers are groups chaos can name, beside the
    services and their load balancers."""
    topology = load_topology(pipeline(tmp_path))
    groups = topology.shapes()
    assert {name: g.kind for name, g in groups.items()} == {
        "payments": "service",
        "payments-lb": "lb",
        "senders": "workers",
        "queue": "queue",
        "mail": "provider",
    }
    assert (groups["queue"].min_replicas, groups["queue"].max_replicas) == (1, 1)
    flags = topology.workers["senders"].args(queue_visibility_s=7)
    assert "--visibility-s=7" in flags  # the queue's own timeout unless the pool sets one


def test_workers_may_read_a_dead_letter_queue(tmp_path: Path) -> None:
    """`<queue>-dlq` exists when the queue has a dead_letter setting."""
    load_topology(pipeline(tmp_path, workers="{queue: emails-dlq, provider: mail}"))


def test_workers_on_an_unknown_queue(tmp_path: Path) -> None:
    [line] = pipeline_problems(tmp_path, workers="{queue: mails, provider: mail}")
    assert "workers.senders.queue: no queue 'mails'" in line
    assert "emails, emails-dlq" in line  # the choices


def test_sync_email_to_an_unknown_provider(tmp_path: Path) -> None:
    [line] = pipeline_problems(tmp_path, email="{mode: sync, provider: smtp}")
    assert "services.payments.email.provider: no provider 'smtp' (providers: mail)" in line


def test_email_mode_needs_its_own_target(tmp_path: Path) -> None:
    """sync names a provider, async a queue, publish a topic: any other is refused at its
    line."""
    [line] = pipeline_problems(tmp_path, email="{mode: sync, queue: emails}")
    assert line.startswith("5:5: services.payments.email")
    assert "mode sync sends to a provider: give `provider` only" in line


def test_queue_name_may_not_end_in_dlq(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(
        PIPELINE.replace("  emails: {queue}", "  emails-dlq: {queue}").format(
            email="{mode: async, queue: emails-dlq}",
            queue="{}",
            workers="{queue: emails-dlq, provider: mail}",
        )
    )
    with pytest.raises(InputError) as caught:
        load_topology(path)
    assert "dead-letter queues are named after their source" in "\n".join(caught.value.problems)


def test_out_of_range_queue_attribute(tmp_path: Path) -> None:
    [line] = pipeline_problems(tmp_path, queue="{visibility_timeout_s: 50000}")
    assert line.startswith("7:12: queues.emails.visibility_timeout_s")
