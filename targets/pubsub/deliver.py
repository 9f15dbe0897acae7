"""The delivery loop: one lane per subscription, working off the store's outbox.

A lane takes what is due and delivers it, several requests in flight at once:

    sqs   ``SendMessageBatch`` (up to 10 messages a request) to the lab's queue service over
          the SQS JSON protocol; the envelope as the body, or with raw delivery the message
          text with its attributes as SQS message attributes. A failed entry, a failed
          request or an unreachable queue is a failed attempt; AWS's managed schedule
          decides when to try again (delivery.py), up to ``sqs_max_retries`` retries.
    http  one ``POST`` per message to the endpoint URL, with the ``x-amz-sns-*`` headers and
          the same message id on every retry; 2xx-4xx is delivered, 5xx, a timeout
          (the delivery policy's ``timeout_s``) or a connection failure is retried on the
          subscription's delivery policy (or the topic's, or SNS's default).

When the retries run out the message goes to the subscription's dead-letter queue
(``RedrivePolicy``), with what it would have delivered as the body; without one it is
dropped and counted (``dropped``): the loss SNS's push model risks. An http subscription
gets its ``SubscriptionConfirmation`` when it subscribes (and again when the service starts
while it is still pending); nothing else is sent to it until it is confirmed.

Time is ``clock()`` (wall clock: ``due`` times are stored) and retry jitter comes from the
seeded ``rng``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from targets.http.client import Client, Reply
from targets.http.upstream import UpstreamError
from targets.pubsub.delivery import (
    DeliveryPolicy,
    Outcome,
    classify,
    managed_retry_delay,
    parse_delivery_policy,
    retry_delay,
)
from targets.pubsub.model import Message, Subscription, confirmation, notification, queue_name
from targets.pubsub.store import Delivery, TopicStore

log = logging.getLogger(__name__)

SQS_BATCH: Final = 10
SQS_IN_FLIGHT: Final = 8  # batches per lane at once
HTTP_IN_FLIGHT: Final = 16  # posts per lane at once
DLQ_RETRY_S: Final = 1.0
SQS_TARGET: Final = b"AmazonSQS.SendMessageBatch"
USER_AGENT: Final = b"Amazon Simple Notification Service Agent"


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt ended with, for the metrics: ``delivered``, ``http_5xx``,
    ``timeout``, ``reset``, ``connection`` (see `failure`) or ``rejected`` (a failed SQS
    entry)."""

    result: str
    delivered: bool


def failure(error: UpstreamError) -> str:
    """An attempt without an answer: ``timeout``, ``reset`` (the request was sent and the
    connection closed unanswered) or ``connection`` (it never reached the endpoint). Timeouts
    and resets are in doubt: the endpoint may have acted on the message."""
    if error.reason == "timeout":
        return "timeout"
    return "reset" if error.reached else "connection"


class DeliveryObserver:
    """Hooks the metrics implement (metrics.py); the defaults do nothing."""

    def attempt(self, sub: Subscription, result: str) -> None:
        pass

    def delivered(self, sub: Subscription, latency_s: float) -> None:
        pass


class Deliverer:
    def __init__(
        self,
        store: TopicStore,
        *,
        base_url: str,
        sqs: tuple[str, int] | None,
        rng: random.Random,
        clock: Callable[[], float] = time.time,
        sqs_max_retries: int = 100_014,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self.store = store
        self.base_url = base_url
        self.rng = rng
        self.clock = clock
        self.sqs_max_retries = sqs_max_retries
        self.observer = observer or DeliveryObserver()
        self._sqs = None if sqs is None else Client(*sqs, max_connections=64, timeout_s=15.0)
        self._sqs_host = "" if sqs is None else f"{sqs[0]}:{sqs[1]}"
        self._http: dict[tuple[str, int, float], Client] = {}
        self._lanes: dict[int, asyncio.Task[None]] = {}
        self._wake: dict[int, asyncio.Event] = {}
        self._work: set[asyncio.Task[None]] = set()
        self._dead: set[int] = set()  # delivery ids whose retries ran out: to the DLQ next
        self.in_flight: dict[int, int] = {}
        self._closing = False
        store.on_due = self.wake

    # --- lanes ---

    def start(self) -> None:
        """Start a lane per subscription; confirm the pending http ones (from the loop)."""
        for sub in list(self.store.subscriptions.values()):
            self.wake(sub.id)
            if not sub.confirmed and sub.protocol == "http":
                self.confirm(sub)

    def wake(self, subscription: int) -> None:
        """Something is due on the lane now (starts the lane when it is not running)."""
        if self._closing:
            return
        event = self._wake.get(subscription)
        if event is None:
            event = self._wake[subscription] = asyncio.Event()
            task = asyncio.get_running_loop().create_task(self._lane(subscription, event))
            self._lanes[subscription] = task
        event.set()

    async def _lane(self, sub_id: int, wake: asyncio.Event) -> None:
        store = self.store
        while not self._closing:
            sub = store.subscriptions.get(sub_id)
            if sub is None:
                break
            now = self.clock()
            limit = SQS_BATCH if sub.protocol == "sqs" else 1
            batch = store.due(sub_id, now, limit)
            if not batch:
                upcoming = store.next_due(sub_id)
                wake.clear()
                timeout = None if upcoming is None else max(0.0, upcoming - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout)
                continue
            await self._slot(sub_id, sub)
            self._spawn(self._attempt(sub, batch))
        self._wake.pop(sub_id, None)
        self._lanes.pop(sub_id, None)

    async def _slot(self, sub_id: int, sub: Subscription) -> None:
        """Wait until the lane has room for one more request in flight."""
        cap = SQS_IN_FLIGHT if sub.protocol == "sqs" else HTTP_IN_FLIGHT
        while self.in_flight.get(sub_id, 0) >= cap:
            event = self._wake[sub_id]
            event.clear()
            await event.wait()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    # --- one attempt ---

    async def _attempt(self, sub: Subscription, batch: list[Delivery]) -> None:
        sub_id = sub.id
        self.in_flight[sub_id] = self.in_flight.get(sub_id, 0) + 1
        try:
            dead = [d for d in batch if d.id in self._dead]
            live = [d for d in batch if d.id not in self._dead]
            if dead:
                await self._dead_letter(sub, dead)
            if live:
                if sub.protocol == "sqs":
                    results = await self._send_sqs(sub, live)
                else:
                    results = [await self._post(sub, d) for d in live]
                self._settle(sub, live, results)
        except Exception:
            log.exception("delivery to %s failed unexpectedly", sub.name)
            self.store.put_back(batch, self.clock() + DLQ_RETRY_S)
        finally:
            self.in_flight[sub_id] -= 1
            event = self._wake.get(sub_id)
            if event is not None:
                event.set()

    def _settle(self, sub: Subscription, batch: list[Delivery], results: list[Attempt]) -> None:
        now = self.clock()
        delivered: list[Delivery] = []
        for delivery, result in zip(batch, results, strict=True):
            self.observer.attempt(sub, result.result)
            if result.delivered:
                delivered.append(delivery)
                message = self.store.messages.get(delivery.message)
                if message is not None:
                    self.observer.delivered(sub, max(0.0, now - message[0].published))
                continue
            delay = self._next_delay(sub, delivery.attempt + 1)
            if delay is not None:
                self.store.retry(delivery, now + delay)
            elif sub.settings.dead_letter is not None:
                self._dead.add(delivery.id)
                self.store.put_back([delivery], now)
            else:
                self.store.done([delivery], "dropped")
        if delivered:
            self.store.done(delivered, "delivered")

    def _next_delay(self, sub: Subscription, retry: int) -> float | None:
        if sub.protocol == "sqs":
            return managed_retry_delay(retry, self.rng, max_retries=self.sqs_max_retries)
        return retry_delay(self._policy(sub), retry, self.rng)

    def _policy(self, sub: Subscription) -> DeliveryPolicy:
        if sub.settings.delivery is not None:
            return sub.settings.delivery
        topic = self.store.topics.get(sub.topic)
        text = topic.attributes.get("DeliveryPolicy") if topic is not None else None
        return parse_delivery_policy(text) if text else DeliveryPolicy()

    # --- sqs ---

    def _queue_url(self, queue: str) -> str:
        return f"http://{self._sqs_host}/{self.store.arns.account_id}/{queue}"

    async def _send_batch(self, queue: str, entries: list[dict[str, object]]) -> list[Attempt]:
        """SendMessageBatch to our queue service; one Attempt per entry."""
        if self._sqs is None:
            return [Attempt("connection", False)] * len(entries)
        body = json.dumps({"QueueUrl": self._queue_url(queue), "Entries": entries}).encode()
        headers = [
            (b"content-type", b"application/x-amz-json-1.0"),
            (b"x-amz-target", SQS_TARGET),
        ]
        try:
            reply = await self._sqs.request("POST", "/", body=body, headers=headers)
        except UpstreamError as error:
            return [Attempt(failure(error), False)] * len(entries)
        if reply.status != 200:
            result = "http_5xx" if reply.status >= 500 else "rejected"
            return [Attempt(result, False)] * len(entries)
        answer = reply.json()
        ok = {entry["Id"] for entry in answer.get("Successful", [])}
        return [
            Attempt("delivered", True) if e["Id"] in ok else Attempt("rejected", False)
            for e in entries
        ]

    def _sqs_entry(self, index: int, sub: Subscription, message: Message) -> dict[str, object]:
        entry: dict[str, object] = {
            "Id": str(index),
            "MessageBody": notification(message, sub, self.store.arns, self.base_url),
        }
        if sub.settings.raw and message.attributes:
            entry["MessageAttributes"] = {
                name: {"DataType": kind, "BinaryValue": value}
                if kind.startswith("Binary")
                else {"DataType": kind, "StringValue": value}
                for name, (kind, value) in list(message.attributes.items())[:10]
            }
        if message.group_id is not None:
            entry["MessageGroupId"] = message.group_id
        return entry

    async def _send_sqs(self, sub: Subscription, batch: list[Delivery]) -> list[Attempt]:
        entries = [self._sqs_entry(i, sub, self.store.message(d)) for i, d in enumerate(batch)]
        return await self._send_batch(queue_name(sub.endpoint), entries)

    async def _dead_letter(self, sub: Subscription, batch: list[Delivery]) -> None:
        """Messages whose retries ran out, to the subscription's DLQ (retried until it
        takes them)."""
        assert sub.settings.dead_letter is not None
        entries = [self._sqs_entry(i, sub, self.store.message(d)) for i, d in enumerate(batch)]
        for entry in entries:
            entry.pop("MessageGroupId", None)
        results: list[Attempt] = []
        for start in range(0, len(entries), SQS_BATCH):
            chunk = entries[start : start + SQS_BATCH]
            results += await self._send_batch(sub.settings.dead_letter, chunk)
        moved = [d for d, r in zip(batch, results, strict=True) if r.delivered]
        again = [d for d, r in zip(batch, results, strict=True) if not r.delivered]
        for delivery in moved:
            self._dead.discard(delivery.id)
        if moved:
            self.store.done(moved, "dead_lettered")
        if again:
            self.store.put_back(again, self.clock() + DLQ_RETRY_S)

    # --- http ---

    def _client(self, host: str, port: int, timeout_s: float) -> Client:
        key = (host, port, timeout_s)
        client = self._http.get(key)
        if client is None:
            client = self._http[key] = Client(
                host, port, max_connections=HTTP_IN_FLIGHT, timeout_s=timeout_s
            )
        return client

    async def _http_post(
        self, sub: Subscription, kind: bytes, message_id: str, body: str
    ) -> Attempt:
        url = urlsplit(sub.endpoint)
        client = self._client(
            url.hostname or "127.0.0.1", url.port or 80, self._policy(sub).timeout_s
        )
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        headers = [
            (b"content-type", b"text/plain; charset=UTF-8"),
            (b"user-agent", USER_AGENT),
            (b"x-amz-sns-message-type", kind),
            (b"x-amz-sns-message-id", message_id.encode()),
            (b"x-amz-sns-topic-arn", self.store.arns.topic(sub.topic).encode()),
        ]
        if sub.confirmed:
            arn = self.store.arns.subscription(sub.topic, sub.uuid)
            headers.append((b"x-amz-sns-subscription-arn", arn.encode()))
        if sub.settings.raw:
            headers.append((b"x-amz-sns-rawdelivery", b"true"))
        try:
            reply: Reply = await client.request("POST", path, body=body.encode(), headers=headers)
        except UpstreamError as error:
            return Attempt(failure(error), False)
        if classify(reply.status) is Outcome.DELIVERED:
            return Attempt("delivered", True)
        return Attempt("http_5xx", False)

    async def _post(self, sub: Subscription, delivery: Delivery) -> Attempt:
        message = self.store.message(delivery)
        body = notification(message, sub, self.store.arns, self.base_url)
        return await self._http_post(sub, b"Notification", message.message_id, body)

    def confirm(self, sub: Subscription) -> None:
        """Send the SubscriptionConfirmation (retried on the delivery policy, in memory)."""
        self._spawn(self._confirm(sub))

    async def _confirm(self, sub: Subscription) -> None:
        message_id = str(uuid.uuid4())
        retry = 0
        while not self._closing and not sub.confirmed and sub.id in self.store.subscriptions:
            body = confirmation(sub, self.store.arns, self.base_url, message_id, self.clock())
            result = await self._http_post(sub, b"SubscriptionConfirmation", message_id, body)
            self.observer.attempt(sub, "confirmation" if result.delivered else result.result)
            if result.delivered:
                return
            retry += 1
            delay = retry_delay(self._policy(sub), retry, self.rng)
            if delay is None:
                log.warning("subscription %s: confirmation not delivered", sub.name)
                return
            await asyncio.sleep(delay)

    # --- stop ---

    async def close(self) -> None:
        self._closing = True
        for event in self._wake.values():
            event.set()
        tasks = list(self._lanes.values()) + list(self._work)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for client in [*self._http.values(), *([self._sqs] if self._sqs else [])]:
            client.close()
