"""A simulated delivery provider (mail or WhatsApp): `python -m targets.workers.provider`.

    python -m targets.workers.provider --kind email --latency-ms 200 --failure-rate 0.1

=======  =============  =============================================================
method   path           what
=======  =============  =============================================================
POST     /send          a JSON object (``message_id``, ``body``, ``worker``, optional
                        ``poison: true`` which always fails) -> after the sampled
                        latency (plus any injected), 200 ``{"id", "delivered": true}``
                        or 500/503 ``{"error": "provider_failure", "delivered": false}``
                        (503 ``"injected_fault"`` for an injected error)
GET      /delivered     ``{"kind", "count", "unique", "failed", "consumers"}``;
                        ``?log=1`` adds ``"log": [[t, message_id, worker], ...]``
                        (arrival times on the provider's monotonic clock, the last
                        100,000 deliveries)
GET      /health        ``{"status": "ok", "kind"}``
GET      /metrics       Prometheus text
PUT      /admin/faults  ``{"latency_ms": 0..600000, "error_rate": 0..1}`` (any other
                        field: 400 naming it), replacing the faults before: each send
                        waits ``latency_ms`` more than its sampled latency, and that
                        share of sends fails with 503 (counted ``failed``); answers
                        ``{"latency_ms", "error_rate", "kind"}``
GET      /admin/faults  the faults injected now, as PUT answers them
DELETE   /admin/faults  clears the injected faults
=======  =============  =============================================================

``/admin/faults`` is the server's (targets/server/app.py) without ``hang``: it needs
``Authorization: Bearer <token>`` with the token of ``--token-file`` (401 without it or with
another), and answers 403 when the provider was started without one. A send takes the faults
of the moment it arrived; ``provider_fault_active`` is 1 while any is injected. The harness's
chaos (``latency``, ``errors``, ``clear`` on a provider) acts through it: "the WhatsApp
provider slows to seconds per send".

A delivery counts when the provider answers 200, even if the worker went away meanwhile (the
mail was sent: that is at-least-once). Per consumer (the send's ``consumer``: a queue's
workers or a push consumer) the provider keeps the accounting of 4 in the pub/sub issue:
``provider_events_total{consumer, outcome}`` counts each delivered event id once as ``first``
and again as ``duplicate`` (at-least-once delivery sends some twice), and
``provider_redeliveries_total{consumer}`` the sends that were a second try of the consumer
(``redelivered: true``). ``--consumer`` names declare those series at 0. The ready line::

    {"event": "ready", "name": "provider", "kind": "email", "address": "127.0.0.1:PORT"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import time
from collections import deque
from typing import Any, Final

from prometheus_client import CollectorRegistry, Gauge

from targets.admin import FaultsBody, faults_request
from targets.fastmetrics import BornAtZeroRegistry, FastCounter, FastHistogram
from targets.flags import TargetFlags
from targets.http.messages import Request
from targets.http.server import HttpServer, ResponseWriter, ServerLimits
from targets.runtime import (
    announce_ready,
    read_token,
    run_target,
    send_metrics,
    stop_signal,
)
from targets.server.core import NO_FAULTS, Faults
from targets.workers.core import Kind, Latency, ProviderModel, WorkerConfigError

MAX_BODY_BYTES: Final = 256 * 1024
LOG_LIMIT: Final = 100_000

log = logging.getLogger("targets.workers.provider")


class ProviderMetrics:
    def __init__(self, registry: CollectorRegistry, provider: Provider) -> None:
        self.deliveries = FastCounter(
            "provider_deliveries_total",
            "Send requests answered, by provider kind and outcome (delivered, failed).",
            ["kind", "outcome"],
        )
        self.latency = FastHistogram(
            "provider_send_duration_seconds",
            "Time from a send's arrival to its answer, by provider kind.",
            ["kind"],
        )
        for collector in (self.deliveries, self.latency):
            registry.register(collector)
        for outcome in ("delivered", "failed"):  # both series exist from the start
            self.deliveries.inc((provider.kind.value, outcome), 0)
        self.latency.declare((provider.kind.value,))
        Gauge("provider_in_flight", "Sends being processed now.", registry=registry).set_function(
            lambda: provider.in_flight
        )
        self.events = FastCounter(
            "provider_events_total",
            "Events delivered, by consumer and outcome: first (an event id not delivered to"
            " this consumer before), duplicate (delivered again).",
            ["consumer", "outcome"],
        )
        self.redeliveries = FastCounter(
            "provider_redeliveries_total",
            "Sends a consumer made again after a failed or lost try (queue receive count above"
            " 1, or an SNS retry), by consumer.",
            ["consumer"],
        )
        registry.register(self.events)
        registry.register(self.redeliveries)
        for consumer in provider.consumers:
            self.declare(consumer)
        Gauge(
            "provider_unique_deliveries",
            "Distinct message ids delivered so far: deliveries minus duplicates (at-least-once"
            " delivery sends some messages twice).",
            registry=registry,
        ).set_function(lambda: len(provider.seen))
        Gauge(
            "provider_fault_active", "1 while any fault is injected.", registry=registry
        ).set_function(lambda: int(provider.faults.active))

    def declare(self, consumer: str) -> None:
        for outcome in ("first", "duplicate"):
            self.events.inc((consumer, outcome), 0)
        self.redeliveries.inc((consumer,), 0)


class Provider:
    """The request handler of one provider instance."""

    def __init__(
        self,
        kind: Kind,
        model: ProviderModel,
        seed: int,
        registry: CollectorRegistry,
        consumers: tuple[str, ...] = (),
        *,
        admin_token: str | None = None,
    ) -> None:
        self.kind = kind
        self.admin_token = admin_token
        self.faults: Faults = NO_FAULTS
        # The injected errors draw from their own stream: the model's samples stay the seed's.
        self.fault_rng = random.Random(f"faults-{seed}")
        self.consumers = consumers
        self.seen_by: dict[str, set[str]] = {}  # consumer -> event ids delivered
        self.model = model
        self.rng = random.Random(seed)
        self.registry = registry
        self.in_flight = 0
        self.delivered = 0
        self.failed = 0
        self.seen: set[str] = set()
        self.log: deque[tuple[float, str, str]] = deque(maxlen=LOG_LIMIT)
        self._ids = 0
        self.metrics = ProviderMetrics(registry, self)

    async def __call__(self, request: Request, writer: ResponseWriter) -> None:
        path = request.path
        if path == "/send" and request.method == "POST":
            await self._send(request, writer)
        elif path == "/delivered" and request.method == "GET":
            writer.send_json(200, self.describe(with_log="log=1" in request.query))
        elif path == "/health":
            writer.send_json(200, {"status": "ok", "kind": self.kind.value})
        elif path == "/metrics":
            send_metrics(writer, self.registry)
        elif path == "/admin/faults":
            await self._admin_faults(request, writer)
        else:
            writer.send_json(404, {"error": "not_found", "path": path})

    async def _send(self, request: Request, writer: ResponseWriter) -> None:
        arrived = time.monotonic()
        try:
            message = json.loads(await request.body.read_all(MAX_BODY_BYTES) or b"{}")
        except ValueError as exc:
            writer.send_json(400, {"error": "bad_json", "detail": str(exc)})
            return
        if not isinstance(message, dict):
            writer.send_json(400, {"error": "bad_json", "detail": "body must be a JSON object"})
            return
        send = self.model.sample(self.rng, poison=message.get("poison") is True)
        faults = self.faults  # as the send arrived: a change while it waits is for later ones
        delay = send.latency_s + faults.latency_s
        self.in_flight += 1
        try:
            if delay > 0:
                await asyncio.sleep(delay)
        finally:
            self.in_flight -= 1
        kind = self.kind.value
        self.metrics.latency.observe((kind,), time.monotonic() - arrived)
        if not send.delivered:
            self._fail(writer, send.status, {"error": "provider_failure", "delivered": False})
            return
        if faults.fails(self.fault_rng):
            self._fail(
                writer,
                503,
                {
                    "error": "injected_fault",
                    "detail": "error rate injected by chaos",
                    "delivered": False,
                },
            )
            return
        self._ids += 1
        self.delivered += 1
        message_id = str(message.get("message_id", f"anonymous-{self._ids}"))
        self.seen.add(message_id)
        consumer = str(message.get("consumer", ""))[:64]
        if consumer:
            seen = self.seen_by.setdefault(consumer, set())
            self.metrics.events.inc((consumer, "duplicate" if message_id in seen else "first"))
            seen.add(message_id)
            if message.get("redelivered") is True:
                self.metrics.redeliveries.inc((consumer,))
        self.log.append((arrived, message_id, str(message.get("worker", ""))))
        self.metrics.deliveries.inc((kind, "delivered"))
        writer.send_json(200, {"id": f"{kind}-{self._ids:08d}", "delivered": True})

    def _fail(self, writer: ResponseWriter, status: int, body: dict[str, Any]) -> None:
        self.failed += 1
        self.metrics.deliveries.inc((self.kind.value, "failed"))
        writer.send_json(status, body)

    async def _admin_faults(self, request: Request, writer: ResponseWriter) -> None:
        asked = await faults_request(request, writer, self.admin_token, FaultsBody, "--token-file")
        if asked is None:
            return
        method, body = asked
        if body is not None:
            self.faults = Faults(body.latency_ms / 1000, body.error_rate)
        elif method == "DELETE":
            self.faults = NO_FAULTS
        writer.send_json(200, self.describe_faults())

    def describe_faults(self) -> dict[str, Any]:
        return {
            "latency_ms": self.faults.latency_s * 1000,
            "error_rate": self.faults.error_rate,
            "kind": self.kind.value,
        }

    def describe(self, *, with_log: bool = False) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "kind": self.kind.value,
            "count": self.delivered,
            "unique": len(self.seen),
            "failed": self.failed,
            "consumers": {name: len(ids) for name, ids in sorted(self.seen_by.items())},
        }
        if with_log:
            reply["log"] = [list(entry) for entry in self.log]
        return reply


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    flags = TargetFlags(
        "python -m targets.workers.provider",
        "A simulated mail or WhatsApp provider: POST /send answers after a sampled "
        "latency, failing with 500 or 503 at a seeded rate.",
    )
    p = flags.parser
    p.add_argument("--kind", choices=[k.value for k in Kind], default="email")
    p.add_argument("--latency-ms", type=float, default=50.0, help="mean send latency in ms")
    p.add_argument(
        "--latency",
        choices=[d.value for d in Latency],
        default="lognormal",
        help="latency distribution",
    )
    p.add_argument("--sigma", type=float, default=0.5, help="lognormal shape (tail spread)")
    p.add_argument("--failure-rate", type=float, default=0.0, help="share of sends failing")
    p.add_argument("--seed", type=int, default=0, help="seed of latency and failures")
    p.add_argument(
        "--consumer",
        action="append",
        default=[],
        help="a consumer it serves (repeatable): its accounting series exist from the start",
    )
    flags.name("provider", "name in logs and the ready line")
    flags.listen("address to serve on (default 127.0.0.1:0: loopback, any free port)")
    flags.token_file("file with the token /admin/faults requires (without it: no faults)")
    return flags.parse(argv)


def model_from_args(args: argparse.Namespace) -> ProviderModel:
    try:
        return ProviderModel(
            Latency(args.latency), args.latency_ms / 1000, args.sigma, args.failure_rate
        )
    except WorkerConfigError as exc:
        flag = str(exc).split(":", 1)[0].replace("_", "-")
        raise ValueError(f"--{flag}: {str(exc).split(':', 1)[1].strip()}") from None


async def serve(args: argparse.Namespace) -> int:
    model = model_from_args(args)
    provider = Provider(
        Kind(args.kind),
        model,
        args.seed,
        BornAtZeroRegistry(),
        tuple(args.consumer),
        admin_token=read_token(args.token_file, flag="--token-file"),
    )
    http = HttpServer(provider, ServerLimits(name=args.name, max_body_bytes=MAX_BODY_BYTES))
    await http.listen(*args.listen)
    host, port = http.address
    stopped = stop_signal()
    announce_ready(name=args.name, kind=args.kind, address=f"{host}:{port}")
    signame = await stopped
    log.info("%s: finishing sends in flight", signame)
    await http.shutdown(5.0)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_target("targets.workers.provider", parse_args(argv), serve)


if __name__ == "__main__":
    sys.exit(main())
