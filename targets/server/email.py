"""The receipt email after a payment: sent synchronously or through a queue.

    sync   the payment calls the mail provider (``POST /send``) and answers only after it: the
           request holds its slot for the provider's whole latency, and a provider failure is
           the payment's failure (502). Capacity becomes slots / provider latency.
    async  the payment enqueues the email (``POST /queues/{queue}/messages`` on the lab's queue
           service) and answers; workers deliver it later at their own pace (targets/workers).
           Only a queue that does not take the message fails the payment (503): an answer of
           200 from the queue means the email is durably stored.
    publish
           the payment publishes a ``PaymentCompleted`` event to a topic (SNS ``Publish`` on the
           lab's topic service, targets/pubsub) and answers; the topic fans it out to every
           consumer subscribed (email, WhatsApp, notifications, fraud checks...). The body is
           JSON (``type``, ``event_id``: the payment, ``amount``, ``currency``, ``tier``, ``to``);
           ``amount`` (Number), ``currency``, ``tier`` and ``event_type`` are message attributes
           too, for filter policies. Only a topic that does not acknowledge fails the payment
           (503).

The email is a JSON object: ``{"payment", "to", "poison"?}``; ``poison: true`` (asked for by
the payment request, e.g. an address the provider always refuses) makes every delivery fail,
so it ends in the dead-letter queue. Pure I/O over the engine's keep-alive client; the server
counts outcomes in ``server_emails_total{mode,outcome}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlencode

from targets.http.client import Client
from targets.http.upstream import UpstreamError

JSON: Final = [(b"content-type", b"application/json")]
FORM: Final = [(b"content-type", b"application/x-www-form-urlencoded; charset=utf-8")]


class EmailMode(StrEnum):
    OFF = "off"
    SYNC = "sync"
    ASYNC = "async"
    PUBLISH = "publish"


AMOUNT_BANDS: Final = ((100.0, "under_100"), (1000.0, "100_to_1000"), (float("inf"), "over_1000"))
"""Bands of a payment's amount, the label of the events the server published (bounded)."""


def amount_band(amount: float) -> str:
    return next(name for limit, name in AMOUNT_BANDS if amount < limit or limit == float("inf"))


@dataclass(frozen=True, slots=True)
class EmailConfig:
    mode: EmailMode = EmailMode.OFF
    provider: tuple[str, int] | None = None  # sync: the mail provider
    queue: tuple[str, int] | None = None  # async: the queue service
    queue_name: str = "emails"
    topic: tuple[str, int] | None = None  # publish: the topic service
    topic_arn: str = "arn:aws:sns:us-east-1:000000000000:payments"
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.mode is EmailMode.SYNC and self.provider is None:
            raise ValueError("--email sync needs --email-provider HOST:PORT")
        if self.mode is EmailMode.ASYNC and self.queue is None:
            raise ValueError("--email async needs --email-queue HOST:PORT")
        if self.mode is EmailMode.PUBLISH and self.topic is None:
            raise ValueError("--email publish needs --email-topic HOST:PORT")
        if not self.timeout_s > 0:
            raise ValueError(f"--email-timeout-s must be above 0 (got {self.timeout_s})")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one email: `outcome` is the metric's label, `error` the payment's."""

    outcome: str  # sent | enqueued | published | failed
    error: str | None = None
    band: str | None = None  # publish: the amount band of the event published


class EmailSender:
    def __init__(self, config: EmailConfig) -> None:
        self.config = config
        self.mode = config.mode
        address = {
            EmailMode.SYNC: config.provider,
            EmailMode.ASYNC: config.queue,
            EmailMode.PUBLISH: config.topic,
        }.get(config.mode)
        self.client = None if address is None else Client(*address, timeout_s=config.timeout_s)

    async def send(self, payment: str, body: dict[str, Any]) -> Outcome:
        """Send (sync) or enqueue (async) the receipt of `payment`."""
        email: dict[str, Any] = {"payment": payment, "to": str(body.get("email", "customer"))}
        if body.get("poison") is True:
            email["poison"] = True
        assert self.client is not None
        if self.mode is EmailMode.PUBLISH:
            return await self._publish(payment, email, body)
        if self.mode is EmailMode.SYNC:
            path, what = "/send", "the mail provider"
            payload = {"message_id": payment, "body": json.dumps(email), **email}
        else:
            path, what = f"/queues/{self.config.queue_name}/messages", "the queue"
            payload = {"body": json.dumps(email)}
        data = json.dumps(payload).encode()
        try:
            reply = await self.client.request("POST", path, body=data, headers=JSON)
        except UpstreamError as exc:
            return Outcome("failed", f"{what} did not answer: {exc}")
        if reply.status != 200:
            return Outcome("failed", f"{what} answered {reply.status}")
        return Outcome("sent" if self.mode is EmailMode.SYNC else "enqueued")

    async def _publish(self, payment: str, email: dict[str, Any], body: dict[str, Any]) -> Outcome:
        amount = body.get("amount")
        if not isinstance(amount, int | float) or isinstance(amount, bool) or amount < 0:
            amount = float(sum(payment.encode()) % 2000)  # no amount asked: a stable one
        currency = str(body.get("currency", "EUR"))[:8]
        tier = str(body.get("tier", "standard"))[:16]
        event = {
            "type": "PaymentCompleted",
            "event_id": payment,
            "amount": amount,
            "currency": currency,
            "tier": tier,
            **email,
        }
        attributes = (
            ("event_type", "String", "PaymentCompleted"),
            ("amount", "Number", repr(float(amount))),
            ("currency", "String", currency),
            ("tier", "String", tier),
        )
        form: list[tuple[str, str]] = [
            ("Action", "Publish"),
            ("Version", "2010-03-31"),
            ("TopicArn", self.config.topic_arn),
            ("Message", json.dumps(event)),
        ]
        for n, (name, kind, value) in enumerate(attributes, start=1):
            at = f"MessageAttributes.entry.{n}"
            form += [(f"{at}.Name", name), (f"{at}.Value.DataType", kind)]
            form.append((f"{at}.Value.StringValue", value))
        try:
            reply = await self.client.request(  # type: ignore[union-attr]
                "POST", "/", body=urlencode(form).encode(), headers=FORM
            )
        except UpstreamError as exc:
            return Outcome("failed", f"the topic did not answer: {exc}")
        if reply.status != 200:
            return Outcome("failed", f"the topic answered {reply.status}")
        return Outcome("published", band=amount_band(float(amount)))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
