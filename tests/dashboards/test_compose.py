"""docker-compose.yml, its Prometheus config and the Dockerfile, checked statically (no Docker
engine here): the compose spec, the shop topology, scrape targets, Grafana's provisioning,
loopback-only ports. The one thing run for real is the Locust metrics forwarder."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx2
import pytest
from ruamel.yaml import YAML

from dashboards.build import GRAFANA_DASHBOARDS, build_all
from harness.components import queue, topics
from harness.components.providers import consumers
from harness.components.queue import queues_file
from harness.components.topics import consumer_of_queue, topic_arn, topics_file
from harness.prometheus import LAB_RULES, find_binary
from harness.supervisor import free_port
from harness.topology import load_topology
from locustfiles.settings import load_settings
from targets.http.messages import Request
from targets.http.server import HttpServer, ResponseWriter

pytestmark = pytest.mark.core

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
FORWARDER = ROOT / "deploy" / "locust" / "metrics_forward.py"
DOCKERFILE = ROOT / "Dockerfile"


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path)  # merge keys (<<) resolved


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = load_yaml(COMPOSE)["services"]
    return result


PIPELINE = {
    "queue": "targets.queue",
    "topics": "targets.pubsub",
    "provider": "targets.workers.provider",
    "worker": "targets.workers",
}


def flags(service: dict[str, Any]) -> dict[str, str]:
    """`--name=value` and `--name value` of a service's command (a bare flag maps to "")."""
    command = [str(part) for part in service.get("command", [])]
    out: dict[str, str] = {}
    for i, part in enumerate(command):
        if not part.startswith("--"):
            continue
        name, sep, value = part[2:].partition("=")
        if not sep and i + 1 < len(command) and not command[i + 1].startswith("-"):
            value = command[i + 1]
        out[name] = value
    return out


def hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def runs(service: dict[str, Any], module: str) -> bool:
    return bool(service.get("command", [])[:3] == ["python", "-m", module])


def mounted(service: dict[str, Any], flag: str) -> Path:
    """The repo file bind-mounted where the service's `--flag` points."""
    sources = {str(v).split(":")[1]: str(v).split(":")[0] for v in service["volumes"]}
    return ROOT / sources[flags(service)[flag]]


def healthy(service: dict[str, Any], dependency: str) -> bool:
    return bool(service["depends_on"][dependency]["condition"] == "service_healthy")


def scrape_targets() -> list[tuple[str, int, dict[str, str]]]:
    config = load_yaml(PROMETHEUS_CONFIG)
    return [
        (*hostport(target), dict(group.get("labels", {})))
        for job in config["scrape_configs"]
        for group in job.get("static_configs", [])
        for target in group["targets"]
    ]


@pytest.mark.e2e
def test_compose_file_matches_the_compose_spec() -> None:
    """check-jsonschema's vendored compose-spec schema accepts docker-compose.yml."""
    tool = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(tool), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_has_a_name_and_bind_mounts_that_exist() -> None:
    """A top-level name; every ./ bind mount points at a file or folder of the repo."""
    assert load_yaml(COMPOSE)["name"] == "rushlab"
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"


def test_every_server_registers_with_a_defined_load_balancer() -> None:
    """--lb-control names a load balancer service on its control port; --advertise names
    the server's own service and port, and it waits for that load balancer to be healthy."""
    all_services = services()
    servers = {n: s for n, s in all_services.items() if runs(s, "targets.server")}
    assert servers
    for name, server in servers.items():
        f = flags(server)
        lb_name, lb_port = hostport(f["lb-control"])
        assert lb_name in all_services, f"{name}: no service {lb_name}"
        lb = flags(all_services[lb_name])
        assert runs(all_services[lb_name], "targets.lb")
        assert hostport(lb["control-listen"]) == ("0.0.0.0", lb_port)
        assert "allow-remote" in lb, f"{lb_name} refuses non-loopback targets"
        assert hostport(f["listen"]) == ("0.0.0.0", hostport(f["advertise"])[1])
        assert f["advertise"].startswith(f"{name}:")
        assert f["name"] == name
        assert server["depends_on"][lb_name]["condition"] == "service_healthy"
        assert "healthcheck" in all_services[lb_name]


def test_compose_runs_the_shop_topology() -> None:
    """Per topology service: its load balancer with the topology's settings, and exactly
    `replicas` servers with the topology's capacity and service time."""
    all_services = services()
    for name, spec in load_topology().services.items():
        lb = all_services[f"{name}-lb"]
        assert set(spec.load_balancer.args()) <= set(lb["command"]), name
        assert flags(lb)["name"] == f"{name}-lb"
        members = [
            s
            for s in all_services.values()
            if runs(s, "targets.server") and flags(s)["lb-control"].startswith(f"{name}-lb:")
        ]
        assert len(members) == spec.replicas, name
        for server in members:
            assert set(spec.server_args()) <= set(server["command"])
            assert flags(server)["service"] == name


def test_compose_runs_the_email_pipeline_of_the_topology() -> None:
    """The fan-out of the topology: the queue and the topic service create what the harness
    writes (their mounted files), the topic delivers to that queue service; each provider runs
    with the topology's settings and its consumers; each worker pool has exactly `replicas`
    members `<pool>-N` with the pool's settings, consumer, queue and provider, waiting for
    both; servers with `email` send to the topic service (publish), the queue (async) or the
    provider (sync), and wait for it."""
    all_services = services()
    topology = load_topology()
    queue_service = all_services[queue.GROUP]
    assert runs(queue_service, "targets.queue")
    queue_port = hostport(flags(queue_service)["listen"])[1]
    assert json.loads(mounted(queue_service, "queues-file").read_text()) == queues_file(topology)
    assert "healthcheck" in queue_service
    topics_port = 0
    if topology.topics:
        topic_service = all_services[topics.GROUP]
        assert runs(topic_service, "targets.pubsub")
        f = flags(topic_service)
        assert json.loads(mounted(topic_service, "topics-file").read_text()) == topics_file(
            topology, {}
        )
        assert f["sqs"] == f"{queue.GROUP}:{queue_port}"
        assert healthy(topic_service, queue.GROUP)
        assert "healthcheck" in topic_service
        topics_port = hostport(f["listen"])[1]
    served = consumers(topology)
    for name, provider in topology.providers.items():
        service = all_services[name]
        assert runs(service, "targets.workers.provider"), name
        assert flags(service)["name"] == name
        declared = [f"--consumer={c}" for c in served.get(name, [])]
        assert {*provider.args(), *declared} <= set(service["command"]), name
    workers = {n: s for n, s in all_services.items() if runs(s, "targets.workers")}
    expected = [
        f"{pool}-{i}"
        for pool, spec in topology.workers.items()
        for i in range(1, spec.replicas + 1)
    ]
    assert sorted(workers) == sorted(expected)
    for pool, spec in topology.workers.items():
        visibility = queue.visibility_timeout_s(topology, spec.queue)
        provider_port = hostport(flags(all_services[spec.provider])["listen"])[1]
        for name in (f"{pool}-{i}" for i in range(1, spec.replicas + 1)):
            worker = workers[name]
            assert set(spec.args(visibility)) <= set(worker["command"]), name
            f = flags(worker)
            assert f["name"] == name
            assert f["consumer"] == consumer_of_queue(topology, spec.queue), name
            assert f["queue-url"] == f"http://{queue.GROUP}:{queue_port}"
            assert f["provider"] == f"http://{spec.provider}:{provider_port}", name
            assert healthy(worker, queue.GROUP), name
            assert spec.provider in worker["depends_on"], name
    servers = [s for s in all_services.values() if runs(s, "targets.server")]
    for name, spec in topology.services.items():
        for server in (s for s in servers if flags(s)["service"] == name):
            f = flags(server)
            email = spec.email
            if email is None:
                assert "email" not in f, name
                continue
            assert f["email"] == email.mode, name
            assert float(f["email-timeout-s"]) == email.timeout_s, name
            if email.mode == "publish":
                assert f["email-topic"] == f"{topics.GROUP}:{topics_port}", name
                assert f["email-topic-arn"] == topic_arn(email.topic or ""), name
                assert healthy(server, topics.GROUP), name
            elif email.mode == "async":
                assert f["email-queue"] == f"{queue.GROUP}:{queue_port}", name
                assert f["email-queue-name"] == email.queue, name
                assert healthy(server, queue.GROUP), name
            else:
                provider = email.provider or ""
                port = hostport(flags(all_services[provider])["listen"])[1]
                assert f["email-provider"] == f"{provider}:{port}", name
                assert provider in server["depends_on"], name


def test_prometheus_targets_are_compose_services() -> None:
    """Every static target is a compose service on the port its /metrics is served, labelled
    service/role/instance like the harness does (the queue and the topic service under their
    group, a provider under its name, a worker under its pool); every load balancer, server,
    queue, topic service, provider and worker is scraped."""
    all_services = services()
    targets = scrape_targets()
    topology = load_topology()
    services_of_lab = {*topology.services, *topology.shapes(), *topology.providers, "load"}
    for host, port, labels in targets:
        assert host in all_services, f"{host}: not a compose service"
        assert set(labels) == {"service", "role", "instance"}
        assert labels["instance"] == host
        assert labels["service"] in services_of_lab
        service, f = all_services[host], flags(all_services[host])
        if labels["role"] == "lb":
            assert runs(service, "targets.lb")
            assert hostport(f["control-listen"])[1] == port
        elif labels["role"] == "server":
            assert runs(service, "targets.server")
            assert hostport(f["listen"])[1] == port
            assert f["service"] == labels["service"]
        elif labels["role"] in PIPELINE:
            assert runs(service, PIPELINE[labels["role"]])
            assert hostport(f["listen"])[1] == port
            group = {"queue": queue.GROUP, "topics": topics.GROUP, "provider": host}
            pool = host.rpartition("-")[0]
            assert labels["service"] == group.get(labels["role"], pool), host
            if labels["role"] == "worker":
                assert pool in topology.workers, host
        else:
            assert labels["role"] == "locust"
            assert labels["service"] == "load"
            assert service["command"][0] == "locust"
            if "master" in f:
                assert int(f["web-port"]) == port
            else:  # a worker's loopback-only metrics, through its forwarder
                [sidecar] = [
                    s for s in all_services.values() if s.get("network_mode") == f"service:{host}"
                ]
                assert hostport(flags(sidecar)["listen"]) == ("0.0.0.0", port)
                metrics_port = int(service["environment"]["RUSHLAB_METRICS_PORT"])
                assert hostport(flags(sidecar)["to"]) == ("127.0.0.1", metrics_port)
    scraped = {host for host, _, _ in targets}
    modules = ("targets.lb", "targets.server", *PIPELINE.values())
    lab = {n for n, s in all_services.items() if any(runs(s, m) for m in modules)}
    assert lab <= scraped, f"not scraped: {sorted(lab - scraped)}"
    assert len(scraped) == len(targets)


def test_prometheus_uses_the_lab_settings_and_rules() -> None:
    """1 s scrapes and rule evaluation, and the harness's rule file mounted where the config
    looks for it."""
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["global"]["scrape_interval"] == "1s"
    assert config["global"]["evaluation_interval"] == "1s"
    prometheus = services()["prometheus"]
    assert str(prometheus["image"]).startswith("prom/prometheus:")
    mounts = dict(str(v).split(":")[:2] for v in prometheus["volumes"])
    assert mounts["./deploy/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    rules_dir = mounts["./harness/rules"]
    assert config["rule_files"] == [f"{rules_dir}/{LAB_RULES.name}"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


@pytest.mark.e2e
def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    """promtool check config accepts deploy/prometheus/prometheus.yml (rules path made local)."""
    text = PROMETHEUS_CONFIG.read_text().replace(
        f"/etc/prometheus/rules/{LAB_RULES.name}", str(LAB_RULES)
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    result = subprocess.run(
        [find_binary("promtool"), "check", "config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_mounts_the_generated_provisioning() -> None:
    """Grafana 11.6 (the SDK's flavour) reads dashboards/generated: provisioning and JSON."""
    grafana = services()["grafana"]
    flavour = version("grafana-foundation-sdk").split("!")[-1]
    assert grafana["image"] == f"grafana/grafana:{flavour}"
    mounts = {}
    for volume in grafana["volumes"]:
        source, target, mode = str(volume).split(":")
        assert mode == "ro"
        mounts[target] = source
    provisioning = "./dashboards/generated/provisioning"
    assert mounts["/etc/grafana/provisioning/datasources"] == f"{provisioning}/datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == f"{provisioning}/dashboards"
    assert mounts[GRAFANA_DASHBOARDS] == "./dashboards/generated"
    built = build_all()
    [provider] = built["provisioning/dashboards/lab.yaml"]["providers"]
    assert provider["options"]["path"] == GRAFANA_DASHBOARDS
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(GRAFANA_DASHBOARDS + "/")
    assert home.removeprefix(GRAFANA_DASHBOARDS + "/") in built
    [datasource] = built["provisioning/datasources/prometheus.yaml"]["datasources"]
    host, port = hostport(datasource["url"].removeprefix("http://"))
    assert host in services()
    assert f"--web.listen-address=0.0.0.0:{port}" in (services()[host]["command"])


def test_ports_are_published_on_loopback_only() -> None:
    """Every published port binds 127.0.0.1; no service shares the host's network."""
    published = 0
    for name, service in services().items():
        assert service.get("network_mode", "") != "host", name
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert re.fullmatch(r"127\.0\.0\.1:\d+:\d+(/tcp|/udp)?", str(port)), name
            published += 1
    assert published >= 6  # three load balancers, Locust, Prometheus, Grafana


def test_locust_master_workers_and_their_environment() -> None:
    """A master and two workers of locustfiles/shop.py; RUSHLAB_SERVICES (read by the real
    settings parser) sends each service to its load balancer's data port."""
    all_services = services()
    locusts = {n: s for n, s in all_services.items() if s.get("command", [""])[0] == "locust"}
    masters = [n for n, s in locusts.items() if "master" in flags(s)]
    workers = [n for n, s in locusts.items() if "worker" in flags(s)]
    assert masters == ["locust"]
    assert len(workers) == 2
    for name, service in locusts.items():
        assert service["command"][1:3] == ["-f", "locustfiles/shop.py"], name
        if name in workers:
            assert flags(service)["master-host"] == "locust"
        settings = load_settings({k: str(v) for k, v in service["environment"].items()})
        expected = {}
        for svc in load_topology().services:
            lb_port = hostport(flags(all_services[f"{svc}-lb"])["listen"])[1]
            expected[svc] = f"http://{svc}-lb:{lb_port}"
        assert dict(settings.services) == expected, name


def test_dockerfile_installs_locked_dependencies_and_the_code() -> None:
    """One python:3.11 image: requirements.lock with hashes, and every package of the lab."""
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11", text, re.MULTILINE)
    install = re.search(r"^RUN pip install .*$", text, re.MULTILINE)
    assert install
    assert "--require-hashes" in install.group(0)
    assert "-r requirements.lock" in install.group(0)
    copied = set(re.findall(r"^COPY (\S+) ", text, re.MULTILINE))
    assert {"requirements.lock", "targets", "harness", "locustfiles", "chaos"} <= copied
    for service in services().values():
        if "build" in service:
            assert service["build"] == "."


@pytest.mark.e2e
async def test_metrics_forwarder_passes_a_scrape_through(tmp_path: Path) -> None:
    """deploy/locust/metrics_forward.py relays an HTTP exchange to the loopback port."""

    async def metrics(request: Request, writer: ResponseWriter) -> None:
        writer.send(200, [(b"content-type", b"text/plain")], b"locust_users 3\n")

    upstream = HttpServer(metrics)
    await upstream.listen()
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(FORWARDER),
        f"--listen=127.0.0.1:{port}",
        f"--to=127.0.0.1:{upstream.address[1]}",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 10)
        assert b"forwarding" in line
        async with httpx2.AsyncClient(timeout=5) as client:
            reply = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert reply.status_code == 200
        assert reply.text == "locust_users 3\n"
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0
        await upstream.shutdown(1.0)


def test_environment_values_are_strings() -> None:
    """Environment values are quoted strings: YAML's true or 9646 would reach compose typed."""
    for name, service in services().items():
        for key, value in service.get("environment", {}).items():
            assert isinstance(value, str), f"{name}: {key}"
