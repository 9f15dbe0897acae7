"""The receipt email after a payment: sent synchronously or through a queue.

    sync   the payment calls the mail provider (``POST /send``) and answers only after it: the
           request holds its slot for the provider's whole latency, and a provider failure is
           the payment's failure (502). Capacity becomes slots / provider latency.
    async  the payment enqueues the email (``POST /queues/{queue}/messages`` on the lab's queue
           service) and answers; workers deliver it later at their own pace (targets/workers).
           Only a queue that does not take the message fails the payment (503): an answer of
           200 from the queue means the email is durably stored.

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

from targets.http.client import Client
from targets.http.upstream import UpstreamError

JSON: Final = [(b"content-type", b"application/json")]


class EmailMode(StrEnum):
    OFF = "off"
    SYNC = "sync"
    ASYNC = "async"


@dataclass(frozen=True, slots=True)
class EmailConfig:
    mode: EmailMode = EmailMode.OFF
    provider: tuple[str, int] | None = None  # sync: the mail provider
    queue: tuple[str, int] | None = None  # async: the queue service
    queue_name: str = "emails"
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.mode is EmailMode.SYNC and self.provider is None:
            raise ValueError("--email sync needs --email-provider HOST:PORT")
        if self.mode is EmailMode.ASYNC and self.queue is None:
            raise ValueError("--email async needs --email-queue HOST:PORT")
        if not self.timeout_s > 0:
            raise ValueError(f"--email-timeout-s must be above 0 (got {self.timeout_s})")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one email: `outcome` is the metric's label, `error` the payment's."""

    outcome: str  # sent | enqueued | failed
    error: str | None = None


class EmailSender:
    def __init__(self, config: EmailConfig) -> None:
        self.config = config
        self.mode = config.mode
        address = config.provider if config.mode is EmailMode.SYNC else config.queue
        self.client = None if address is None else Client(*address, timeout_s=config.timeout_s)

    async def send(self, payment: str, body: dict[str, Any]) -> Outcome:
        """Send (sync) or enqueue (async) the receipt of `payment`."""
        email: dict[str, Any] = {"payment": payment, "to": str(body.get("email", "customer"))}
        if body.get("poison") is True:
            email["poison"] = True
        assert self.client is not None
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

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
