"""Docs move with code: every metric a service exposes is documented in docs/metrics.md."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from harness.control import Controller
from harness.runtime import LabRuntime
from harness.supervisor import Supervisor
from harness.topology import load_topology
from targets.autoscaler.adapter import Endpoints, ServiceAutoscaler
from targets.autoscaler.core import Policy
from targets.cdn.edge import Edge, EdgeConfig
from targets.dns.core import Zone
from targets.dns.server import DnsServer
from targets.gateway.gateway import Gateway, GatewayConfig
from targets.http.client import Client
from targets.lb.balancer import LbConfig, LoadBalancer
from targets.pubsub.metrics import topic_registry
from targets.pubsub.store import TopicStore
from targets.queue.metrics import queue_registry
from targets.queue.poll import LongPoller
from targets.queue.store import QueueStore
from targets.server.app import ServerConfig, ShopServer
from targets.server.email import EmailConfig, EmailMode
from targets.workers.core import Kind, ProviderModel
from targets.workers.provider import Provider
from targets.workers.push import PushConsumer
from targets.workers.worker import Endpoint, Worker, WorkerConfig

pytestmark = pytest.mark.core

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


def documented() -> set[str]:
    return set(re.findall(r"^\| `([a-z_]+)` \|", DOC.read_text(), flags=re.MULTILINE))


def exposed(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        names.add(name)
    return names


def test_every_load_balancer_metric_is_documented() -> None:
    """The load balancer exposes exactly the lb_* metrics docs/metrics.md lists."""
    names = exposed(LoadBalancer(LbConfig()).registry)
    assert names == {n for n in documented() if n.startswith("lb_")}


def test_every_server_metric_is_documented() -> None:
    """The application server (publishing its payment events) exposes exactly the server_*
    metrics docs/metrics.md lists."""
    email = EmailConfig(mode=EmailMode.PUBLISH, topic=("127.0.0.1", 1))
    names = exposed(ShopServer(ServerConfig(email=email)).registry)
    assert names == {n for n in documented() if n.startswith("server_")}


@pytest.mark.inprocess
async def test_every_harness_metric_is_documented(tmp_path: Path) -> None:
    """The harness control API exposes exactly the harness_* metrics docs/metrics.md lists."""
    lab = LabRuntime(load_topology(), Supervisor(tmp_path))
    names = exposed(Controller(lab).registry)
    assert names == {n for n in documented() if n.startswith("harness_")}


def test_every_autoscaler_metric_is_documented() -> None:
    """The autoscaler exposes exactly the autoscaler_* metrics docs/metrics.md lists."""
    registry = CollectorRegistry()
    endpoints = Endpoints(("127.0.0.1", 1), ("127.0.0.1", 1), "token")
    ServiceAutoscaler("web", Policy(target=1.0), "in_flight", endpoints, registry)
    assert exposed(registry) == {n for n in documented() if n.startswith("autoscaler_")}


def test_every_gateway_metric_is_documented() -> None:
    """The API gateway exposes exactly the gateway_* metrics docs/metrics.md lists."""
    names = exposed(Gateway(GatewayConfig()).registry)
    assert names == {n for n in documented() if n.startswith("gateway_")}


def test_every_dns_metric_is_documented() -> None:
    """The DNS server exposes exactly the dns_* metrics docs/metrics.md lists."""
    zone = Zone.from_json({"zone": "lab.", "records": []}, rng=random.Random(0))
    names = exposed(DnsServer(zone, CollectorRegistry()).registry)
    assert names == {n for n in documented() if n.startswith("dns_")}


def test_every_queue_metric_is_documented(tmp_path: Path) -> None:
    """The queue service exposes exactly the queue_* metrics docs/metrics.md lists."""
    with QueueStore(tmp_path / "q.db") as store:
        store.create_queue("orders")
        names = exposed(queue_registry(store, LongPoller(store)))
    assert names == {n for n in documented() if n.startswith("queue_")}


def test_every_worker_and_provider_metric_is_documented() -> None:
    """Workers and mail providers expose exactly the worker_* and provider_* metrics listed."""
    local = Endpoint("127.0.0.1", 1)
    worker = Worker(WorkerConfig(queue_api=local, queue="emails", provider=local))
    assert exposed(worker.registry) == {n for n in documented() if n.startswith("worker_")}
    worker.close()
    provider = Provider(Kind.EMAIL, ProviderModel(), 0, CollectorRegistry())
    assert exposed(provider.registry) == {n for n in documented() if n.startswith("provider_")}


def test_every_topic_and_push_metric_is_documented(tmp_path: Path) -> None:
    """The topic service (with a topic and a subscription) and a push consumer expose exactly
    the pubsub_* and push_* metrics docs/metrics.md lists."""
    store = TopicStore(tmp_path / "topics.db")
    try:
        arn = store.create_topic("payments", {}, now=0.0)
        store.subscribe(arn, "http", "http://127.0.0.1:1/", {}, now=0.0, name="whatsapp")
        registry, _ = topic_registry(store)
        names = exposed(registry)
    finally:
        store.close()
    assert names == {n for n in documented() if n.startswith("pubsub_")}
    push = PushConsumer("whatsapp", "whatsapp-push-1", Client("127.0.0.1", 1), 1.0)
    assert exposed(push.registry) == {n for n in documented() if n.startswith("push_")}


def test_every_cdn_metric_is_documented() -> None:
    """The edge cache exposes exactly the cdn_* metrics docs/metrics.md lists."""
    names = exposed(Edge(EdgeConfig()).metrics.registry)
    assert names == {n for n in documented() if n.startswith("cdn_")}


def test_every_locust_metric_is_documented() -> None:
    """The exporter's locust_* names (read from its source: importing it imports locust)
    are exactly those docs/metrics.md lists."""
    source = (DOC.parents[1] / "locustfiles" / "plugin.py").read_text()
    names = set(re.findall(r'"(locust_[a-z_]+)"', source))
    assert names == {n for n in documented() if n.startswith("locust_")}
