"""The lab's Prometheus: a real `prometheus` process that scrapes the lab, and a small client.

`Prometheus(run_dir, port)` writes `prometheus.yml` (1 s scrapes, 800 ms timeout, 1 s rule
evaluation) with one scrape job, `lab`, whose targets come from a file_sd JSON file in the run
folder. `set_targets` rewrites that file atomically (temp file + `os.replace`), so Prometheus
never reads half of it. The labels of each `ScrapeTarget` (service, role, instance) go on every
series scraped from it, and win over scraped labels of the same name: `server_info`'s own
`service` and `instance` arrive as `exported_service` and `exported_instance`. `start` runs the
binary under the `Supervisor`, bound to loopback, with its TSDB in `<run_dir>/prometheus-data`.
`query`, `query_range` and `wait_for_targets` speak the HTTP API; a bad PromQL expression raises
`PrometheusError` carrying Prometheus's own message.

Discovery is not instant. A new target is first scraped up to about 6 s after `set_targets`:
the file watcher sees the change at once, but Prometheus's discovery manager hands new target
sets to the scrape manager at most every 5 s, and the first scrape then waits for the target's
slot within the 1 s interval. Measured here (Prometheus 2.42, 2 cores), from `set_targets` to
`up{instance=...} == 1` being queryable: 0.9-5.1 s over 20 additions in a row (median 2.5 s),
and 1.4-5.6 s in four runs of the e2e test, which prints its figure. So wait with
`wait_for_targets` or a query, never a fixed sleep, and allow well over 6 s.

The rules in harness/rules/lab.rules.yml (`LAB_RULES`) give dashboards and SLOs per-service
request and 5xx rates, latency quantiles and target counts.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from io import StringIO
from pathlib import Path
from typing import Any

import httpx2
from ruamel.yaml import YAML

from harness.errors import PrometheusError
from harness.promql import SCRAPE_INTERVAL_S
from harness.supervisor import Child, Supervisor

LAB_RULES = Path(__file__).resolve().parent / "rules" / "lab.rules.yml"
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


PATH = "__metrics_path__"  # the file_sd label that overrides the job's metrics path


@dataclass(frozen=True)
class ScrapeTarget:
    """One metrics endpoint: `address` is "127.0.0.1:PORT", `path` its path (a CDN edge serves
    `/_edge/metrics`: everything else it forwards); `labels` go on all its series."""

    address: str
    labels: dict[str, str] = field(default_factory=dict)
    path: str = "/metrics"

    def __post_init__(self) -> None:
        # `__`-names are Prometheus's own; one bad name makes it ignore the whole file.
        bad = [n for n in self.labels if n.startswith("__") or not _LABEL_NAME.fullmatch(n)]
        if bad:
            raise ValueError(f"{self.address}: invalid label names {bad}")


@dataclass(frozen=True)
class Sample:
    """One value of an instant query."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    """One series of a range query: `(unix time, value)` points, oldest first."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


def find_binary(name: str = "prometheus") -> str:
    """The path of `name` (prometheus or promtool), or a PrometheusError saying how to get it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/bin")
    if path is None:
        raise PrometheusError(
            f"{name} not found on PATH or in /usr/bin; install it with "
            "`apt-get install prometheus` (Debian's package brings prometheus and promtool)"
        )
    return path


class Prometheus:
    """Configuration, process and HTTP API of one Prometheus serving on 127.0.0.1:`port`."""

    def __init__(self, run_dir: Path, port: int) -> None:
        self.run_dir = run_dir
        self.port = port
        self.config_path = run_dir / "prometheus.yml"
        self.targets_path = run_dir / "prometheus-targets.json"
        self.data_dir = run_dir / "prometheus-data"
        self.url = f"http://127.0.0.1:{port}"

    def write_config(self, rule_files: list[Path]) -> Path:
        """Write prometheus.yml (and an empty target list if there is none yet)."""
        config = {
            "global": {
                "scrape_interval": f"{SCRAPE_INTERVAL_S:g}s",
                "scrape_timeout": f"{round(SCRAPE_INTERVAL_S * 800)}ms",
                "evaluation_interval": f"{SCRAPE_INTERVAL_S:g}s",
            },
            "rule_files": [str(path.resolve()) for path in rule_files],
            "scrape_configs": [
                {
                    "job_name": "lab",
                    "metrics_path": "/metrics",
                    "file_sd_configs": [
                        {"files": [str(self.targets_path.resolve())], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.targets_path.exists():
            self.set_targets([])
        text = StringIO()
        YAML(typ="safe", pure=True).dump(config, text)
        _write_atomically(self.config_path, text.getvalue())
        return self.config_path

    def set_targets(self, targets: list[ScrapeTarget]) -> None:
        """Replace the scraped targets; Prometheus sees the whole new list or the old one."""
        groups = [
            {
                "targets": [t.address],
                "labels": t.labels if t.path == "/metrics" else {**t.labels, PATH: t.path},
            }
            for t in targets
        ]
        _write_atomically(self.targets_path, json.dumps(groups, indent=2) + "\n")

    async def start(self, supervisor: Supervisor, ready_timeout_s: float = 30.0) -> Child:
        """Run Prometheus under `supervisor`; returns once `/-/ready` answers 200."""
        if not self.config_path.exists():
            raise PrometheusError(f"{self.config_path}: missing; call write_config first")
        argv = [
            find_binary("prometheus"),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            "--storage.tsdb.retention.time=6h",
            "--storage.tsdb.retention.size=256MB",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",  # POST /-/reload after write_config
        ]
        return await supervisor.spawn_program(
            "prometheus",
            "prometheus",
            argv,
            ready_url=("127.0.0.1", self.port, "/-/ready"),
            ready_timeout_s=ready_timeout_s,
        )

    async def reload(self) -> None:
        """Make the running Prometheus read its configuration and rule files again."""
        async with self._client(timeout=10.0) as client:
            reply = await client.post("/-/reload")
        if reply.status_code != 200:
            raise PrometheusError(f"reload refused: {reply.text.strip()}")

    async def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """Evaluate `expr` at unix time `at` (default: now): an instant vector or a scalar."""
        params = {"query": expr} if at is None else {"query": expr, "time": str(at)}
        data = await self._api("/api/v1/query", params)
        kind, result = data["resultType"], data["result"]
        if kind == "scalar":
            return [Sample({}, float(result[1]))]
        if kind != "vector":
            raise PrometheusError(f"{expr}: gives a {kind}, not an instant vector or scalar")
        return [Sample(item["metric"], float(item["value"][1])) for item in result]

    async def raw_samples(self, selector: str, at: float) -> list[Series]:
        """The samples as scraped (exact times) of a range selector such as `up[1m]`, at `at`."""
        data = await self._api("/api/v1/query", {"query": selector, "time": str(at)})
        if data["resultType"] != "matrix":
            raise PrometheusError(f"{selector}: gives a {data['resultType']}, not a range vector")
        return [
            Series(item["metric"], [(float(t), float(v)) for t, v in item["values"]])
            for item in data["result"]
        ]

    async def query_range(
        self, expr: str, start: float, end: float, step: float = 1.0
    ) -> list[Series]:
        """Evaluate `expr` every `step` seconds from `start` to `end` (unix times)."""
        params = {"query": expr, "start": str(start), "end": str(end), "step": str(step)}
        data = await self._api("/api/v1/query_range", params)
        return [
            Series(item["metric"], [(float(t), float(v)) for t, v in item["values"]])
            for item in data["result"]
        ]

    async def wait_for_targets(self, count: int, timeout_s: float = 30.0) -> None:
        """Return once at least `count` active targets are "up"; else say which are not."""
        async with self._client(timeout=5.0) as client:
            deadline = time.monotonic() + timeout_s
            while True:
                reply = await self._get(client, "/api/v1/targets", {"state": "active"})
                active = reply["activeTargets"]
                up = [t for t in active if t["health"] == "up"]
                if len(up) >= count:
                    return
                if time.monotonic() > deadline:
                    others = [_describe(t) for t in active if t["health"] != "up"]
                    raise PrometheusError(
                        f"{len(up)} of {count} targets up after {timeout_s:g} s "
                        f"({len(active)} discovered); not up: {'; '.join(others) or 'none'}"
                    )
                await asyncio.sleep(0.2)

    @cached_property
    def _tls(self) -> ssl.SSLContext:
        """httpx builds an SSL context for every client, even one that speaks plain HTTP, and
        that costs 70-200 ms (the CA bundle); a client per call, so one context per Prometheus."""
        return ssl.create_default_context()

    def _client(self, timeout: float) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(base_url=self.url, timeout=timeout, verify=self._tls)

    async def _api(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        async with self._client(timeout=30.0) as client:
            return await self._get(client, path, params)

    async def _get(
        self, client: httpx2.AsyncClient, path: str, params: dict[str, str]
    ) -> dict[str, Any]:
        try:
            reply = await client.get(path, params=params)
        except httpx2.HTTPError as exc:
            raise PrometheusError(f"{self.url}{path}: {exc!r}") from None
        try:
            body = reply.json()
        except ValueError:
            raise PrometheusError(f"{path}: HTTP {reply.status_code}: {reply.text[:200]}") from None
        if body.get("status") != "success":
            query = params.get("query")
            where = f"{query!r}: " if query else f"{path}: "
            raise PrometheusError(where + str(body.get("error", body)))
        data: dict[str, Any] = body["data"]
        return data


def _describe(target: dict[str, Any]) -> str:
    labels = target.get("labels", {})
    name = labels.get("instance") or target.get("scrapeUrl", "?")
    error = target.get("lastError") or "not scraped yet"
    return f"{name} ({target['health']}: {error})"


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
