"""Locust plugin: a Prometheus exporter and the chaos page. Imported by a locustfile only (it
imports locust, so neither the harness nor pytest may import it).

Exporter. A listener on `events.request` counts into this process's own `CollectorRegistry`:

- `locust_requests_total{name, method, result}`, result `ok` or `fail`
- `locust_request_duration_seconds{name, method}` histogram, buckets `LATENCY_BUCKETS` (1 ms to
  30 s, the ones every service of the lab uses)
- `locust_failures_total{name, method, error_class}`, error class `http_503`,
  `ConnectionRefusedError`, ... never the message (see `locustfiles/labels.py`)
- `locust_content_version_total{name, version}`: answers whose `X-Content-Version` said
  which version of the content they show (the shop's catalogue pages)
- `locust_users` (running users: a master counts its workers'), `locust_cpu_percent` (this
  process's CPU as Locust measures it: near 100 the load generator, not the system under test,
  is the limit), `locust_workers` (master only), `locust_info{role}`
- `locust_counts_final`: 1 once this process's test has stopped and an exposition since then
  has already shown every series, so this one holds the final counts (the scenario runner
  judges at that point); 0 before.

No series appears already non-zero: the registry exposes every new series at 0 first
(`targets.fastmetrics.BornAtZeroRegistry`), and each user class's declared `endpoints`
(`(method, name)` pairs) have their ok and fail series at 0 before the first request, so
`sum(locust_requests_total{result="fail"})` is 0, not "no data", until the first failure.

In distributed mode every worker exports the requests it made itself (the master makes none);
sum over workers. `/metrics` is served
- in web UI mode on the web UI's own Flask app (`http://127.0.0.1:<web port>/metrics`), and
- on `127.0.0.1:$RUSHLAB_METRICS_PORT` when that is set (headless runs, masters, each worker),
  beside `/health` (for readiness probes, which must not take a first exposition's place).

With RUSHLAB_RELEASE_FILE set (the scenario runner), the process holds its test until Prometheus
has scraped it twice, and after the test stops it stays until that file exists (see
`locustfiles/settings.py`), so Prometheus holds the counts from the first request to the last.

Chaos. In web UI mode, `GET /chaos` serves the harness's live map (`locustfiles/chaospage.py`):
every part of the lab with its state, its traffic and the chaos that applies to it, from the
action specs. The page calls `GET /chaos/api/map/state`, `GET /chaos/api/actions` and
`POST /chaos/api/chaos` on the same Flask app, which forward to `$RUSHLAB_CONTROL_URL`'s
`/map/state`, `/actions` and `/chaos` with `Authorization: Bearer <token from
$RUSHLAB_CONTROL_TOKEN_FILE>`. Locust's React UI also gets a "Chaos" tab (its documented
`extended_tabs` hook): a table of every process of the lab (each group's instances, load
balancers, gateway, DNS, ...) with its state, refreshed with the UI's own stats poll, plus a
link to the map in the "Download Data" tab (the only place the UI takes links).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gevent
import requests
from flask import Response, request
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from locustfiles.chaospage import (
    ROW_KEYS,
    ActionError,
    chaos_html,
    same_origin,
    status_rows,
    validate_action,
)
from locustfiles.labels import BoundedNames, error_class, method_label
from locustfiles.settings import Settings, SettingsError, load_settings

try:  # the lab's lock-free collectors; PYTHONPATH holds the repo root when the harness runs us
    from targets.fastmetrics import (
        LATENCY_BUCKETS,
        BornAtZeroRegistry,
        FastCounter,
        FastHistogram,
    )
except ImportError:  # pragma: no cover - a locustfile copied out of the repo
    FastCounter = FastHistogram = None  # type: ignore[assignment,misc]
    BornAtZeroRegistry = CollectorRegistry  # type: ignore[assignment,misc]
    LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

logger = logging.getLogger("rushlab.plugin")

STATUS_TIMEOUT_S = 3.0
ACTION_TIMEOUT_S = 30.0  # a graceful stop drains requests in flight first
TAB_REFRESH_S = 2.0
HOLD_MAX_S = 30.0
"""The longest a held process waits for its first scrape or for its release file."""
HOLD_POLL_S = 0.05
SCRAPES_BEFORE_START = 2
"""A held test starts once Prometheus has two samples of every series at 0, so `rate()` over
them has a value from the first second of the run."""

Endpoints = Iterable[tuple[str, str]]
"""(method, request name) pairs a user class declares as its `endpoints`."""


class _Counter:
    """`inc(label_values)`: a FastCounter, or prometheus_client's when targets/ is missing."""

    def __init__(
        self, registry: CollectorRegistry, name: str, doc: str, labels: Sequence[str]
    ) -> None:
        if FastCounter is not None:
            fast = FastCounter(name, doc, labels)
            registry.register(fast)
            self.inc: Callable[[tuple[str, ...]], None] = fast.inc
            self.declare: Callable[[tuple[str, ...]], None] = lambda values: fast.inc(values, 0)
        else:  # pragma: no cover
            slow = Counter(name, doc, labels, registry=registry)
            self.inc = lambda values: slow.labels(*values).inc()
            self.declare = lambda values: slow.labels(*values)


class _Histogram:
    def __init__(
        self, registry: CollectorRegistry, name: str, doc: str, labels: Sequence[str]
    ) -> None:
        if FastHistogram is not None:
            fast = FastHistogram(name, doc, labels, LATENCY_BUCKETS)
            registry.register(fast)
            self.observe: Callable[[tuple[str, ...], float], None] = fast.observe
            self.declare: Callable[[tuple[str, ...]], None] = fast.declare
        else:  # pragma: no cover
            slow = Histogram(name, doc, labels, registry=registry, buckets=LATENCY_BUCKETS)
            self.observe = lambda values, seconds: slow.labels(*values).observe(seconds)
            self.declare = lambda values: slow.labels(*values)


def _role(environment: Environment) -> str:
    if isinstance(environment.runner, MasterRunner):
        return "master"
    if isinstance(environment.runner, WorkerRunner):
        return "worker"
    return "local"


class Exporter:
    """This process's Locust metrics, in a registry of its own."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.registry = BornAtZeroRegistry()
        self.names = BoundedNames()
        self.expositions = 0
        self.stopped_after: int | None = None
        """How many expositions there had been when the test stopped (None: running)."""
        self.requests = _Counter(
            self.registry,
            "locust_requests_total",
            "Requests this Locust process made, by request name, method and result (ok|fail).",
            ["name", "method", "result"],
        )
        self.duration = _Histogram(
            self.registry,
            "locust_request_duration_seconds",
            "Response time as Locust measured it, by request name and method.",
            ["name", "method"],
        )
        self.failures = _Counter(
            self.registry,
            "locust_failures_total",
            "Failed requests by name, method and error class (http_<status> or exception class).",
            ["name", "method", "error_class"],
        )
        self.versions = _Counter(
            self.registry,
            "locust_content_version_total",
            "Answers that said which version of the content they show (X-Content-Version), by"
            " request name and version.",
            ["name", "version"],
        )
        role = _role(environment)
        info = Gauge(
            "locust_info",
            "Always 1; the role label says local, master or worker.",
            ["role"],
            registry=self.registry,
        )
        info.labels(role).set(1)
        self._gauge(
            "locust_users",
            "Users running now (a master: over all its workers).",
            lambda: float(getattr(self.environment.runner, "user_count", 0)),
        )
        self._gauge(
            "locust_cpu_percent",
            "CPU use of this Locust process (near 100: the load generator is the bottleneck).",
            lambda: float(getattr(self.environment.runner, "current_cpu_usage", 0.0)),
        )
        if role == "master":
            self._gauge(
                "locust_workers",
                "Workers connected to this master.",
                lambda: float(getattr(self.environment.runner, "worker_count", 0)),
            )
        self._gauge(
            "locust_counts_final",
            "1 once the test has stopped and this exposition holds the final counts.",
            lambda: float(self.final),
        )

    @property
    def final(self) -> bool:
        """The test has stopped and an exposition since then has shown every series (at 0
        first, if new): the one being rendered now holds the final counts."""
        return self.stopped_after is not None and self.expositions > self.stopped_after

    def declare(self, endpoints: Endpoints) -> None:
        """Series at 0 for each endpoint's ok and fail results and its latency."""
        for method, name in endpoints:
            label, verb = self.names(str(name)), method_label(method)
            for result in ("ok", "fail"):
                self.requests.declare((label, verb, result))
            self.duration.declare((label, verb))

    def stopped(self) -> None:
        """The test has stopped: no request is counted after this."""
        if self.stopped_after is None:
            self.stopped_after = self.expositions

    def _gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        Gauge(name, doc, registry=self.registry).set_function(read)

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float | None,
        exception: Any = None,
        response: Any = None,
        **_: Any,
    ) -> None:
        label = self.names(str(name))
        method = method_label(request_type)
        if exception is None:
            self.requests.inc((label, method, "ok"))
        else:
            self.requests.inc((label, method, "fail"))
            self.failures.inc((label, method, error_class(exception, response)))
        if response_time is not None:
            self.duration.observe((label, method), response_time / 1000.0)
        version = _content_version(response)
        if version is not None:
            self.versions.inc((label, version))

    def exposition(self) -> bytes:
        text = generate_latest(self.registry)
        self.expositions += 1
        return text

    def hold(self, done: Callable[[], bool], what: str) -> None:
        """Wait (yielding to gevent) until `done()`, at most HOLD_MAX_S."""
        deadline = time.monotonic() + HOLD_MAX_S
        while not done():
            if time.monotonic() > deadline:
                logger.warning("gave up waiting for %s after %.0f s", what, HOLD_MAX_S)
                return
            gevent.sleep(HOLD_POLL_S)


def _content_version(response: Any) -> str | None:
    """The X-Content-Version an answer carries (the shop's catalogue pages), else None."""
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("x-content-version") or headers.get("X-Content-Version")
    return value if isinstance(value, str) and value.isdigit() else None


class ControlProxy:
    """Forwards the chaos page's calls to the harness control API; the token stays here."""

    def __init__(self, control_url: str | None, token_file: str | None) -> None:
        self.control_url = control_url
        self.token_file = token_file
        self._rows: list[dict[str, Any]] = []
        self._rows_at = -1e9
        self._refreshing = False

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token_file:
            token = Path(self.token_file).read_text().strip()
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, JSON) of the control API's answer, or an error of our own (503, 502)."""
        if not self.control_url:
            return 503, {
                "error": "no_control",
                "detail": "this Locust has no control API: set RUSHLAB_CONTROL_URL",
            }
        timeout = ACTION_TIMEOUT_S if method == "POST" else STATUS_TIMEOUT_S
        try:
            reply = requests.request(
                method, self.control_url + path, json=body, headers=self._headers(), timeout=timeout
            )
        except OSError as exc:  # requests' errors and an unreadable token file alike
            return 502, {"error": "control_unreachable", "detail": f"{type(exc).__name__}: {exc}"}
        try:
            return reply.status_code, reply.json()
        except ValueError:
            return 502, {
                "error": "control_bad_reply",
                "detail": f"HTTP {reply.status_code}, not JSON: {reply.text[:200]!r}",
            }

    def rows(self) -> list[dict[str, Any]]:
        """The instances as table rows. Only the first call waits for the control API; after
        that a stale table starts a refresh in the background (one at a time, at most every
        TAB_REFRESH_S seconds) and the rows at hand are returned at once."""
        now = time.monotonic()
        if self._rows_at < 0:  # the first look: wait for the answer rather than show nothing
            self._rows_at = now
            self._refreshing = True
            self._refresh()
        elif not self._refreshing and now - self._rows_at >= TAB_REFRESH_S:
            self._refreshing = True
            self._rows_at = now
            gevent.spawn(self._refresh)
        return self._rows

    def _refresh(self) -> None:
        try:
            status, data = self.call("GET", "/status")
            if status == 200:
                self._rows = status_rows(data)
            else:
                detail = data.get("detail") or data.get("error") if isinstance(data, dict) else data
                row = dict.fromkeys(ROW_KEYS, "")
                row.update(service="(control API)", state=f"{status}: {detail}")
                self._rows = [row]
        finally:
            self._refreshing = False


def _json_response(status: int, payload: Any) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


CHAOS_TAB = {"title": "Chaos", "key": "rushlab-chaos"}
CHAOS_TABLE = {
    "key": CHAOS_TAB["key"],
    "structure": [{"key": key, "title": key.capitalize()} for key in ROW_KEYS],
}


def install_web_routes(environment: Environment, exporter: Exporter, proxy: ControlProxy) -> None:
    """`/metrics`, `/chaos` and `/chaos/api/*` on the web UI's Flask app, plus the Chaos tab."""
    web_ui = environment.web_ui
    assert web_ui is not None
    app = web_ui.app

    @app.route("/metrics")
    def metrics() -> Response:
        return Response(exporter.exposition(), mimetype=CONTENT_TYPE_LATEST)

    @app.route("/chaos")
    def chaos_page() -> Response:
        return Response(chaos_html(), mimetype="text/html")

    @app.route("/chaos/api/status")
    def chaos_status() -> Response:
        return _json_response(*proxy.call("GET", "/status"))

    @app.route("/chaos/api/map/state")
    def map_state() -> Response:
        return _json_response(*proxy.call("GET", "/map/state"))

    @app.route("/chaos/api/actions")
    def chaos_actions() -> Response:
        return _json_response(*proxy.call("GET", "/actions"))

    @app.route("/chaos/api/chaos", methods=["POST"])
    def chaos_action() -> Response:
        if not same_origin(
            request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site"), request.host
        ):
            return _json_response(403, {"error": "cross_origin", "detail": "same-origin only"})
        try:
            body = validate_action(request.get_json(force=True, silent=True))
        except ActionError as exc:
            return _json_response(400, {"error": "bad_action", "detail": str(exc)})
        logger.info("chaos: %s", body)
        return _json_response(*proxy.call("POST", "/chaos", body))

    @app.after_request
    def add_chaos_rows(response: Response) -> Response:
        # Locust's UI polls /stats/requests; `extended_stats` feeds the Chaos tab's table.
        if request.path.endswith("/stats/requests") and response.status_code == 200:
            data = response.get_json(silent=True)
            if isinstance(data, dict):
                tab = {"key": CHAOS_TAB["key"], "data": proxy.rows()}
                data["extended_stats"] = [*data.get("extended_stats", []), tab]
                response.set_data(json.dumps(data))
        return response

    args = web_ui.template_args
    args["extended_tabs"] = [*args.get("extended_tabs", []), CHAOS_TAB]
    args["extended_tables"] = [*args.get("extended_tables", []), CHAOS_TABLE]
    args["extended_csv_files"] = [
        *args.get("extended_csv_files", []),
        {"href": "/chaos", "title": "Live map: every part of the lab, its state and its chaos"},
    ]


def start_metrics_server(exporter: Exporter, port: int) -> None:
    """Serve `/metrics` and `/health` on 127.0.0.1:port (a daemon thread, i.e. a greenlet under
    gevent's patching; it ends with the process). A port in use fails Locust's start-up."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] == "/metrics":
                self._answer(200, CONTENT_TYPE_LATEST, exporter.exposition())
            elif self.path == "/health":
                self._answer(200, "text/plain", b"ok\n")
            else:
                self._answer(404, "text/plain", b"not found: try /metrics or /health\n")

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape a second is not news

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="rushlab-metrics", daemon=True).start()
    logger.info("Prometheus metrics on http://127.0.0.1:%d/metrics", port)


@events.init.add_listener
def on_locust_init(environment: Environment, **_: Any) -> None:
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        raise SystemExit(f"error: {exc}") from None
    setup(environment, settings)


def setup(environment: Environment, settings: Settings) -> Exporter:
    """Count this process's requests; serve them (and, with a web UI, the chaos page)."""
    exporter = Exporter(environment)
    if not isinstance(environment.runner, MasterRunner):  # a master makes no requests
        for user_class in environment.user_classes:
            exporter.declare(getattr(user_class, "endpoints", ()))
    environment.events.request.add_listener(exporter.on_request)
    environment.events.test_stop.add_listener(lambda **_: exporter.stopped())
    if environment.web_ui is not None:
        proxy = ControlProxy(settings.control_url, settings.control_token_file)
        install_web_routes(environment, exporter, proxy)
    if settings.metrics_port is not None:
        start_metrics_server(exporter, settings.metrics_port)
    elif environment.web_ui is None:
        logger.warning("RUSHLAB_METRICS_PORT is not set: this process exports no metrics")
    if settings.release_file is not None and settings.metrics_port is not None:
        hold_for_prometheus(environment, exporter, settings.release_file, settings.start_file)
    return exporter


def hold_for_prometheus(
    environment: Environment, exporter: Exporter, release_file: str, start_file: str | None
) -> None:
    """Wait for Prometheus's first scrapes now (before the test starts), and for `start_file`
    (the runner's word that every lab process has been scraped twice too); on quitting, stay
    until `release_file` exists, so the scrapes after the stop can land."""
    exporter.hold(lambda: exporter.expositions >= SCRAPES_BEFORE_START, "Prometheus's scrapes")
    if start_file is not None:
        exporter.hold(lambda: Path(start_file).exists(), f"the start file {start_file}")

    def on_quitting(**_: Any) -> None:
        exporter.stopped()
        exporter.hold(lambda: Path(release_file).exists(), f"the release file {release_file}")

    environment.events.quitting.add_listener(on_quitting)
