"""A push consumer: `python -m targets.workers.push`, the seed's "the queue invokes the worker".

    python -m targets.workers.push --provider http://127.0.0.1:9400 --consumer whatsapp-push

Instead of polling a queue it is an HTTP endpoint a topic subscribes (``protocol: http``)
and pushes to, the way SNS pushes to a webhook:

=======================================  ==================================================
``x-amz-sns-message-type``               what it does
=======================================  ==================================================
``SubscriptionConfirmation``             visits the ``SubscribeURL`` (the handshake), 200
``Notification``                         hands the event to its provider (``POST /send``),
                                         then answers 200 when the provider delivered, 502
                                         when it failed (so the topic retries)
``UnsubscribeConfirmation``              200
=======================================  ==================================================

There is no acknowledgement beyond the answer: while this process is down the topic's
retries fail, and once its delivery policy is exhausted the event is gone (unless the
subscription has a dead-letter queue). ``GET /health`` and ``GET /metrics`` as every target.
The ready line::

    {"event": "ready", "name": "whatsapp-push", "consumer": "whatsapp-push",
     "address": "127.0.0.1:PORT"}
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Final
from urllib.parse import urlsplit

from targets.fastmetrics import BornAtZeroRegistry, FastCounter
from targets.flags import TargetFlags
from targets.http.client import Client, fetch
from targets.http.messages import Request
from targets.http.server import HttpServer, ResponseWriter, ServerLimits
from targets.http.upstream import UpstreamError
from targets.runtime import announce_ready, run_target, send_metrics, stop_signal
from targets.workers.__main__ import parse_url
from targets.workers.events import read_event

MAX_BODY_BYTES: Final = 512 * 1024
JSON: Final = [(b"content-type", b"application/json")]
SEEN_LIMIT: Final = 1_000_000

log = logging.getLogger("targets.workers.push")


class PushConsumer:
    def __init__(self, consumer: str, instance: str, provider: Client, timeout_s: float) -> None:
        self.consumer = consumer
        self.instance = instance
        self.provider = provider
        self.timeout_s = timeout_s
        self.seen: set[str] = set()  # SNS message ids pushed to this process
        self.registry = BornAtZeroRegistry()
        self.pushes = FastCounter(
            "push_notifications_total",
            "Notifications pushed to this consumer, by outcome: delivered (the provider took"
            " it: answered 200), failed (the provider failed: answered 502, the topic retries).",
            ["consumer", "outcome"],
        )
        self.confirmations = FastCounter(
            "push_confirmations_total",
            "SubscriptionConfirmation messages, by outcome (confirmed, failed).",
            ["consumer", "outcome"],
        )
        for counter, outcomes in (
            (self.pushes, ("delivered", "failed")),
            (self.confirmations, ("confirmed", "failed")),
        ):
            self.registry.register(counter)
            for outcome in outcomes:
                counter.inc((consumer, outcome), 0)

    async def __call__(self, request: Request, writer: ResponseWriter) -> None:
        if request.path == "/health":
            writer.send_json(200, {"status": "ok", "consumer": self.consumer})
        elif request.path == "/metrics":
            send_metrics(writer, self.registry)
        elif request.method == "POST":
            await self._push(request, writer)
        else:
            writer.send_json(404, {"error": "not_found", "path": request.path})

    async def _push(self, request: Request, writer: ResponseWriter) -> None:
        kind = (request.header(b"x-amz-sns-message-type") or b"").decode("latin-1")
        try:
            body = (await request.body.read_all(MAX_BODY_BYTES)).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            writer.send_json(400, {"error": "bad_body", "detail": str(exc)})
            return
        if kind == "SubscriptionConfirmation":
            await self._confirm(body, writer)
        elif kind == "Notification":
            message_id = (request.header(b"x-amz-sns-message-id") or b"").decode("latin-1")
            await self._notify(message_id, body, writer)
        else:
            writer.send_json(200, {"ignored": kind or "(no x-amz-sns-message-type)"})

    async def _confirm(self, body: str, writer: ResponseWriter) -> None:
        try:
            url = urlsplit(json.loads(body)["SubscribeURL"])
            target = url.path + ("?" + url.query if url.query else "")
            reply = await fetch(
                url.hostname or "127.0.0.1", url.port or 80, "GET", target, timeout_s=5.0
            )
            ok = reply.status == 200
        except (ValueError, KeyError, TypeError, UpstreamError) as exc:
            log.warning("confirmation failed: %s", exc)
            ok = False
        self.confirmations.inc((self.consumer, "confirmed" if ok else "failed"))
        writer.send_json(200 if ok else 502, {"confirmed": ok})

    async def _notify(self, message_id: str, body: str, writer: ResponseWriter) -> None:
        event = read_event(body, message_id or "anonymous")
        redelivered = message_id in self.seen
        if message_id and len(self.seen) < SEEN_LIMIT:
            self.seen.add(message_id)
        payload = {
            "message_id": event.id,
            "consumer": self.consumer,
            "worker": self.instance,
            "redelivered": redelivered,
            "body": body,
        }
        if event.poison:
            payload["poison"] = True
        try:
            reply = await self.provider.request(
                "POST", "/send", body=json.dumps(payload).encode(), headers=JSON
            )
            delivered = reply.status == 200
        except UpstreamError as exc:
            log.warning("provider: %s", exc)
            delivered = False
        self.pushes.inc((self.consumer, "delivered" if delivered else "failed"))
        if delivered:
            writer.send_json(200, {"delivered": True})
        else:
            writer.send_json(502, {"delivered": False, "error": "provider_failure"})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    flags = TargetFlags(
        "python -m targets.workers.push",
        "A push consumer: an HTTP endpoint a topic pushes to (SNS http subscription), "
        "handing each event to its provider.",
    )
    p = flags.parser
    p.add_argument("--provider", required=True, help="the provider's base URL (http://HOST:PORT)")
    p.add_argument("--consumer", required=True, help="consumer name in the provider's accounting")
    p.add_argument(
        "--provider-timeout-s", type=float, default=30.0, help="provider call timeout (seconds)"
    )
    flags.name("push-1", "instance name in logs and the ready line")
    flags.listen("address to serve on (default 127.0.0.1:0: loopback, any free port)")
    args = flags.parse(argv)
    if not 0 < args.provider_timeout_s <= 3600:
        p.error("--provider-timeout-s: must be in (0, 3600]")
    return args


async def serve(args: argparse.Namespace) -> int:
    provider = parse_url(args.provider, flag="--provider")
    client = Client(provider.host, provider.port, timeout_s=args.provider_timeout_s)
    consumer = PushConsumer(args.consumer, args.name, client, args.provider_timeout_s)
    http = HttpServer(consumer, ServerLimits(name=args.name, max_body_bytes=MAX_BODY_BYTES))
    await http.listen(*args.listen)
    host, port = http.address
    stopped = stop_signal()
    announce_ready(name=args.name, consumer=args.consumer, address=f"{host}:{port}")
    signame = await stopped
    log.info("%s: finishing pushes in flight", signame)
    await http.shutdown(5.0)
    client.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_target("targets.workers.push", parse_args(argv), serve)


if __name__ == "__main__":
    sys.exit(main())
