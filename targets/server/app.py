"""The shop's application server: auth, orders and payments endpoints behind a capacity model.

Every shop endpoint passes through `Admission` (slots, then backlog, then 503) and holds its slot
for a sampled service time plus any injected latency. `/health`, `/metrics`, `/admin/faults` and
`/admin/content` bypass the capacity model: they are the management plane, answered even when
the shop is saturated.
The `/api` prefix is optional, so the server answers both behind a gateway that strips it and
behind one that does not.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field

from targets.admin import FaultsBody, faults_request
from targets.fastmetrics import BornAtZeroRegistry, FastCounter, FastHistogram
from targets.http.messages import Request
from targets.http.server import ResponseWriter
from targets.runtime import send_metrics
from targets.server.content import (
    Content,
    ContentConfig,
    account,
    catalogue,
    image,
    user_of,
)
from targets.server.core import (
    NO_FAULTS,
    Admission,
    Capacity,
    Faults,
    ServiceTime,
    Verdict,
)
from targets.server.email import AMOUNT_BANDS, EmailConfig, EmailMode, EmailSender

MAX_BODY_BYTES = 1024 * 1024

Reply = tuple[int, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    service: str = "shop"
    instance: str = "server-1"
    capacity: Capacity = field(default_factory=Capacity)
    service_time: ServiceTime = field(default_factory=ServiceTime)
    seed: int = 0
    admin_token: str | None = None
    email: EmailConfig = field(default_factory=EmailConfig)  # the receipt after a payment
    content: ContentConfig = field(default_factory=ContentConfig)  # what a CDN may cache


class ContentBody(BaseModel):
    """Body of a server's `PUT /admin/content`: publish a new version of the catalogue."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=1_000_000_000)


class ServerFaults(FaultsBody):
    """Body of a server's `PUT /admin/faults`: a provider's faults, and `hang` (requests are
    accepted and never answered)."""

    hang: bool = False


class ServerMetrics:
    def __init__(self, registry: CollectorRegistry, config: ServerConfig, app: ShopServer) -> None:
        self.requests = FastCounter(
            "server_requests_total",
            "Requests answered, by endpoint and status code.",
            ["endpoint", "code"],
        )
        self.duration = FastHistogram(
            "server_request_duration_seconds",
            "Time from arrival to response, backlog wait included, by endpoint.",
            ["endpoint"],
        )
        self.queue_wait = FastHistogram(
            "server_queue_wait_seconds", "Time requests waited in the backlog for a free slot.", []
        )
        self.emails = FastCounter(
            "server_emails_total",
            "Receipt emails after a payment, by mode (sync, async, publish) and outcome (sent to"
            " the provider, enqueued, published as an event, failed).",
            ["mode", "outcome"],
        )
        self.events = FastCounter(
            "server_payment_events_total",
            "PaymentCompleted events the topic acknowledged (mode publish), by amount band"
            " (under_100, 100_to_1000, over_1000).",
            ["amount_band"],
        )
        for collector in (self.requests, self.duration, self.queue_wait, self.emails):
            registry.register(collector)
        if config.email.mode is not EmailMode.OFF:
            mode = config.email.mode.value
            done = {EmailMode.SYNC: "sent", EmailMode.ASYNC: "enqueued"}.get(
                config.email.mode, "published"
            )
            for outcome in (done, "failed"):
                self.emails.inc((mode, outcome), 0)
        if config.email.mode is EmailMode.PUBLISH:
            registry.register(self.events)
            for _, band in AMOUNT_BANDS:
                self.events.inc((band,), 0)
        for endpoint in (*ENDPOINTS, *CONTENT):  # failures exist at 0 before the first
            for code in ("500", "503"):
                self.requests.inc((endpoint, code), 0)
            self.duration.declare((endpoint,))  # a quantile without traffic: NaN, not no data
        self.queue_wait.declare(())
        self.faults = Counter(
            "server_faults_injected_total",
            "Requests that an injected fault changed, by kind (latency, error, hang).",
            ["kind"],
            registry=registry,
        )
        info = Gauge(
            "server_info",
            "Always 1; labels name the service and instance.",
            ["service", "instance"],
            registry=registry,
        )
        info.labels(config.service, config.instance).set(1)
        admission = app.admission
        _gauge(
            registry,
            "server_slots",
            "Concurrent requests the instance serves (capacity).",
            lambda: admission.capacity.slots,
        )
        _gauge(
            registry,
            "server_backlog_limit",
            "Requests that may wait for a slot.",
            lambda: admission.capacity.backlog,
        )
        _gauge(
            registry,
            "server_in_service",
            "Requests holding a slot now.",
            lambda: admission.in_service,
        )
        _gauge(
            registry,
            "server_waiting",
            "Requests waiting in the backlog now.",
            lambda: admission.waiting,
        )
        _gauge(
            registry,
            "server_fault_active",
            "1 while any fault is injected.",
            lambda: int(app.faults.active),
        )


def _gauge(registry: CollectorRegistry, name: str, doc: str, read: Callable[[], float]) -> None:
    Gauge(name, doc, registry=registry).set_function(read)


class ShopServer:
    """The request handler of one server instance."""

    def __init__(self, config: ServerConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.registry = registry or BornAtZeroRegistry()
        self.admission = Admission(config.capacity)
        self.rng = random.Random(config.seed)
        self.faults: Faults = NO_FAULTS
        self.draining = False
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._unhang = asyncio.Event()
        self._ids = 0
        self.metrics = ServerMetrics(self.registry, config, self)
        self.email = EmailSender(config.email)
        self._identity = {"service": config.service, "instance": config.instance}
        self.content = config.content  # what PUT /admin/content publishes replaces

    async def __call__(self, request: Request, writer: ResponseWriter) -> None:
        path = request.path.removeprefix("/api")
        if path == "/health":
            self._health(writer)
        elif path == "/metrics":
            send_metrics(writer, self.registry)
        elif path == "/admin/faults":
            await self._admin_faults(request, writer)
        elif path == "/admin/content":
            await self._admin_content(request, writer)
        else:
            await self._shop(request, path, writer)

    # -- the shop ---------------------------------------------------------------------------
    async def _shop(self, request: Request, path: str, writer: ResponseWriter) -> None:
        started = time.perf_counter()
        endpoint, arg = _route(request.method, path)
        if endpoint is None:
            writer.send_json(404, {"error": "not_found", "path": request.path, **self._identity})
            self.metrics.requests.inc(("unknown", "404"))
            return
        if endpoint in CONTENT:
            payload = {"user": user_of(request.header(b"cookie"))}
        else:
            try:
                payload = await _json_body(request)
            except ValueError as exc:
                writer.send_json(400, {"error": "bad_json", "detail": str(exc), **self._identity})
                self.metrics.requests.inc((endpoint, "400"))
                return
        answer = await self._serve(endpoint, arg, payload)
        if isinstance(answer, Content):
            status = _send_content(writer, answer, request.header(b"if-none-match"))
        else:
            status, reply = answer
            headers = [(b"retry-after", b"1")] if status == 503 else None
            writer.send_json(status, {**reply, **self._identity}, headers)
        self.metrics.requests.inc((endpoint, str(status)))
        self.metrics.duration.observe((endpoint,), time.perf_counter() - started)

    async def _serve(self, endpoint: str, arg: str, payload: dict[str, Any]) -> Reply | Content:
        verdict = self.admission.arrive()
        if verdict is Verdict.REJECT:
            return 503, {"error": "overloaded", "detail": "every slot and the backlog are full"}
        if verdict is Verdict.WAIT:
            waited = time.perf_counter()
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                    self.admission.give_up()
                else:
                    self._release()
                raise
            self.metrics.queue_wait.observe((), time.perf_counter() - waited)
        try:
            return await self._work(endpoint, arg, payload)
        finally:
            self._release()

    def _release(self) -> None:
        if self.admission.finish():
            waiter = self._waiters.popleft()
            # A waiter cancelled in this same tick is done already: its handler sees it is no
            # longer queued and passes the slot on in turn.
            if not waiter.done():
                waiter.set_result(None)

    async def _work(self, endpoint: str, arg: str, payload: dict[str, Any]) -> Reply | Content:
        faults = self.faults
        delay = self.config.service_time.sample(self.rng)
        if faults.active:
            if faults.hang:
                self.metrics.faults.labels("hang").inc()
                await self._unhang.wait()
                faults = self.faults  # released by a change of faults: the new ones apply
            if faults.latency_s > 0:
                self.metrics.faults.labels("latency").inc()
                delay += faults.latency_s
        if delay > 0:
            await asyncio.sleep(delay)
        if faults.fails(self.rng):
            self.metrics.faults.labels("error").inc()
            return 500, {"error": "injected_fault", "detail": "error rate injected by chaos"}
        made = CONTENT.get(endpoint)
        if made is not None:
            return made(self.content, arg, payload)
        self._ids += 1
        reply = ENDPOINTS[endpoint](self._ids, arg, payload)
        if endpoint == "payments_create" and self.email.mode is not EmailMode.OFF:
            return await self._receipt(reply, payload)
        return reply

    async def _receipt(self, reply: Reply, payload: dict[str, Any]) -> Reply:
        """Email the receipt of a captured payment, inside the payment's slot (sync: for the
        provider's whole latency). A failure is the payment's answer: the customer sees it."""
        status, body = reply
        mode = self.email.mode
        outcome = await self.email.send(f"{self.config.instance}/{body['id']}", payload)
        self.metrics.emails.inc((mode.value, outcome.outcome))
        if outcome.band is not None:
            self.metrics.events.inc((outcome.band,))
        if outcome.error is None:
            return status, {**body, "email": outcome.outcome}
        return (502 if mode is EmailMode.SYNC else 503), {
            "error": "email_failed",
            "detail": outcome.error,
            "payment": body["id"],
            "status": body["status"],
        }

    # -- management plane -------------------------------------------------------------------
    def _health(self, writer: ResponseWriter) -> None:
        status = 503 if self.draining else 200
        writer.send_json(
            status,
            {
                "status": "draining" if self.draining else "ok",
                "in_service": self.admission.in_service,
                "waiting": self.admission.waiting,
                **self._identity,
            },
        )

    async def _admin_faults(self, request: Request, writer: ResponseWriter) -> None:
        asked = await faults_request(
            request, writer, self.config.admin_token, ServerFaults, "--admin-token-file"
        )
        if asked is None:
            return
        method, body = asked
        if body is not None:
            self.set_faults(Faults(body.latency_ms / 1000, body.error_rate, body.hang))
        elif method == "DELETE":
            self.set_faults(NO_FAULTS)
        writer.send_json(200, self.describe_faults())

    async def _admin_content(self, request: Request, writer: ResponseWriter) -> None:
        """GET shows the content's version; PUT publishes another (a new deploy of the
        catalogue: its ETags and bodies change, caches keep the old one until it expires or
        is invalidated); DELETE is refused as any other method."""
        asked = await faults_request(
            request,
            writer,
            self.config.admin_token,
            ContentBody,
            "--token-file",
            invalid="invalid_content",
        )
        if asked is None:
            return
        method, body = asked
        if method == "DELETE":
            writer.send_json(405, {"error": "method_not_allowed", "allowed": "GET, PUT"})
            return
        if body is not None:
            self.content = replace(self.content, version=body.version)
        writer.send_json(200, {"version": self.content.version, **self._identity})

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        if faults.hang:
            self._unhang.clear()
        else:
            self._unhang.set()

    def describe_faults(self) -> dict[str, Any]:
        f = self.faults
        return {
            "latency_ms": f.latency_s * 1000,
            "error_rate": f.error_rate,
            "hang": f.hang,
            **self._identity,
        }

    def release_hung(self) -> None:
        """Let hung requests finish (on shutdown: a stopping process answers what it holds)."""
        self._unhang.set()


def _send_content(writer: ResponseWriter, content: Content, if_none_match: bytes | None) -> int:
    """Send `content`, or 304 with its validators when the request already holds it."""
    if content.matches(if_none_match):
        writer.send(304, content.headers()[1:])
        return 304
    writer.send(content.status, content.headers(), content.body)
    return content.status


async def _json_body(request: Request) -> dict[str, Any]:
    if not request.has_body:
        return {}
    raw = await request.body.read_all(MAX_BODY_BYTES)
    if not raw:
        return {}
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc.msg} at char {exc.pos}") from None
    if not isinstance(payload, dict):
        raise ValueError("body must be a JSON object")
    return payload


# -- the endpoints: (method, path) -> name -> reply ---------------------------------------------


def _login(n: int, _: str, body: dict[str, Any]) -> Reply:
    user = str(body.get("user", "guest"))[:64]
    return 200, {"user": user, "token": f"tok-{n:08x}"}


def _verify(_n: int, _: str, _body: dict[str, Any]) -> Reply:
    return 200, {"valid": True}


def _list_orders(n: int, _: str, _body: dict[str, Any]) -> Reply:
    return 200, {"orders": [{"id": f"o-{n - i}", "total": 10 + i} for i in range(3)]}


def _get_order(_n: int, order_id: str, _body: dict[str, Any]) -> Reply:
    return 200, {"id": order_id, "status": "confirmed", "total": 42}


def _create_order(n: int, _: str, body: dict[str, Any]) -> Reply:
    items = body.get("items", [])
    count = len(items) if isinstance(items, list) else 1
    return 201, {"id": f"o-{n}", "status": "created", "items": count}


def _pay(n: int, _: str, body: dict[str, Any]) -> Reply:
    return 201, {"id": f"p-{n}", "order": body.get("order"), "status": "captured"}


def _get_payment(_n: int, payment_id: str, _body: dict[str, Any]) -> Reply:
    return 200, {"id": payment_id, "status": "captured"}


ENDPOINTS: dict[str, Callable[[int, str, dict[str, Any]], Reply]] = {
    "auth_login": _login,
    "auth_verify": _verify,
    "orders_list": _list_orders,
    "orders_get": _get_order,
    "orders_create": _create_order,
    "payments_create": _pay,
    "payments_get": _get_payment,
}
# The cacheable content (targets/server/content.py): what a CDN edge in front of the shop keeps.
CONTENT: dict[str, Callable[[ContentConfig, str, dict[str, Any]], Content]] = {
    "catalogue": lambda config, page, _: catalogue(config, page or "1"),
    "image": lambda config, product, _: image(config, product),
    "account": lambda config, _, payload: account(config, payload["user"]),
}
_EXACT = {
    ("POST", "/auth/login"): "auth_login",
    ("GET", "/auth/verify"): "auth_verify",
    ("GET", "/orders"): "orders_list",
    ("POST", "/orders"): "orders_create",
    ("POST", "/payments"): "payments_create",
    ("POST", "/pay"): "payments_create",
    ("GET", "/catalogue"): "catalogue",
    ("GET", "/account"): "account",
}
_BY_ID = {
    ("GET", "/orders/"): "orders_get",
    ("GET", "/payments/"): "payments_get",
    ("GET", "/catalogue/"): "catalogue",
    ("GET", "/images/"): "image",
}


def _route(method: str, path: str) -> tuple[str | None, str]:
    """The endpoint name and its path argument; (None, "") when nothing matches."""
    name = _EXACT.get((method, path))
    if name is not None:
        return name, ""
    head, sep, tail = path.rpartition("/")
    if sep and tail and "/" not in tail:
        name = _BY_ID.get((method, head + "/"))
        if name is not None:
            return name, tail
    return None, ""
