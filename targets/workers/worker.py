"""The worker loop: receive from the queue, rate-limit, deliver to the provider, then act.

One worker handles one message at a time (parallelism is more workers, as in the lab):

1. receive up to ``batch`` messages on the queue's plain JSON API (``GET
   /queues/{name}/messages``): short polling asks with ``wait=0`` and, when the answer is empty,
   sleeps ``empty_sleep_s`` before asking again (every empty answer is an API call paid for);
   long polling asks with ``wait=wait_s`` and the queue answers as soon as a message arrives;
2. for each message: take a token from the shared limiter core (sleeping ``delay_s`` or
   ``retry_after_s`` as the decision says), ``POST /send`` to the provider, and apply
   ``core.decide``: delete on success; on failure leave the message to come back after its
   visibility timeout, or change its visibility to an exponential back-off. The queue's
   redrive policy moves a message received more than maxReceiveCount times to its DLQ.
   With ``ack=before_send`` the worker deletes each message before it calls the provider
   (the classic mistake, for the lab's lessons): a failed send is then lost for good.

`stop()` (SIGTERM): a receive in progress is abandoned, the message being delivered is
finished and acted on, the messages received but not started are released (visibility 0) so
other workers get them at once. A worker killed with SIGKILL releases nothing: what it held
comes back when its visibility timeout ends. Queue or provider errors never end the loop:
they are counted, and the worker retries after ``retry_s``.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import quote

from prometheus_client import CollectorRegistry, Gauge

from targets.checks import as_enum, finite, require
from targets.fastmetrics import BornAtZeroRegistry, FastCounter, FastHistogram
from targets.http.client import Client, Reply
from targets.http.messages import Request
from targets.http.server import ResponseWriter
from targets.http.upstream import UpstreamError
from targets.limiter.core import LimitConfig
from targets.limiter.registry import create
from targets.runtime import send_metrics
from targets.workers.core import (
    MAX_VISIBILITY_S,
    Ack,
    FailurePolicy,
    Verb,
    WorkerConfigError,
    decide,
)
from targets.workers.events import read_event

log = logging.getLogger("targets.workers")

JSON_HEADERS: Final = [(b"content-type", b"application/json")]
T = TypeVar("T")


class Polling(enum.StrEnum):
    SHORT = "short"
    LONG = "long"


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything one worker needs, parsed once at the edge (`__main__.py`)."""

    queue_api: Endpoint
    queue: str
    provider: Endpoint
    instance: str = "worker-1"
    polling: Polling = Polling.LONG
    wait_s: int = 20
    batch: int = 10
    visibility_s: int = 30
    limit: LimitConfig | None = None  # None: no worker-side rate limit
    failure: FailurePolicy = field(default_factory=FailurePolicy)
    empty_sleep_s: float = 0.1
    retry_s: float = 1.0
    provider_timeout_s: float = 30.0
    ack: Ack = Ack.AFTER_SEND
    consumer: str = ""  # the consumer it works for, in the provider's accounting (the queue)

    def __post_init__(self) -> None:
        err = WorkerConfigError
        object.__setattr__(self, "polling", as_enum(Polling, self.polling, "polling", err))
        object.__setattr__(self, "ack", as_enum(Ack, self.ack, "ack", err))
        require(
            type(self.wait_s) is int and 0 <= self.wait_s <= 20, "wait_s", "0..20", self.wait_s, err
        )
        require(
            type(self.batch) is int and 1 <= self.batch <= 10, "batch", "1..10", self.batch, err
        )
        require(
            type(self.visibility_s) is int and 0 <= self.visibility_s <= MAX_VISIBILITY_S,
            "visibility_s",
            f"0..{MAX_VISIBILITY_S}",
            self.visibility_s,
            err,
        )
        for name in ("empty_sleep_s", "retry_s", "provider_timeout_s"):
            value = getattr(self, name)
            require(finite(value) and 0 <= value <= 3600, name, "between 0 and 3600", value, err)

    @property
    def receive_wait_s(self) -> int:
        return self.wait_s if self.polling is Polling.LONG else 0


@dataclass(frozen=True, slots=True)
class Message:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        return cls(
            str(data["message_id"]),
            str(data["receipt_handle"]),
            str(data["body"]),
            int(data.get("receive_count", 1)),
        )


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry, config: WorkerConfig, worker: Worker) -> None:
        self.messages = FastCounter(
            "worker_messages_total",
            "Delivery attempts, by outcome (delivered, failed).",
            ["outcome"],
        )
        self.actions = FastCounter(
            "worker_actions_total",
            "What the worker did with a message after an attempt or on stop "
            "(delete, leave, backoff, release).",
            ["action"],
        )
        self.receives = FastCounter(
            "worker_receive_calls_total", "Receive calls made to the queue.", []
        )
        self.empty = FastCounter(
            "worker_empty_receives_total", "Receive calls that returned no message.", []
        )
        self.errors = FastCounter(
            "worker_queue_errors_total",
            "Queue calls that failed (no answer or an error status), by call "
            "(receive, delete, visibility).",
            ["call"],
        )
        self.latency = FastHistogram(
            "worker_provider_latency_seconds",
            "Time of one provider call, by outcome (delivered, failed).",
            ["outcome"],
        )
        self.limit_waits = FastCounter(
            "worker_rate_limit_waits_total", "Messages the rate limiter held back.", []
        )
        self.limit_wait_s = FastCounter(
            "worker_rate_limit_wait_seconds_total", "Seconds spent waiting for the limiter.", []
        )
        collectors = (
            self.messages,
            self.actions,
            self.receives,
            self.empty,
            self.errors,
            self.latency,
            self.limit_waits,
            self.limit_wait_s,
        )
        for collector in collectors:
            registry.register(collector)
        for outcome in ("delivered", "failed"):  # every series exists from the start
            self.messages.inc((outcome,), 0)
            self.latency.declare((outcome,))
        for verb in (*(v.value for v in Verb), "release"):
            self.actions.inc((verb,), 0)
        for counter in (self.receives, self.empty, self.limit_waits, self.limit_wait_s):
            counter.inc((), 0)
        Gauge(
            "worker_in_flight_messages",
            "Messages received and not yet deleted, left or released.",
            registry=registry,
        ).set_function(lambda: worker.in_flight)
        Gauge(
            "worker_info",
            "Always 1; labels name the instance, its queue and polling mode.",
            ["instance", "queue", "polling"],
            registry=registry,
        ).labels(config.instance, config.queue, config.polling.value).set(1)


class Worker:
    """One worker's loop (`run`) and its management endpoints (`__call__`: /health, /metrics)."""

    def __init__(
        self,
        config: WorkerConfig,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.registry = registry or BornAtZeroRegistry()
        self.clock = clock
        q, p = config.queue_api, config.provider
        self.queue_client = Client(q.host, q.port, max_connections=2, timeout_s=config.wait_s + 10)
        self.provider_client = Client(
            p.host, p.port, max_connections=2, timeout_s=config.provider_timeout_s
        )
        self.limiter = create(config.limit) if config.limit is not None else None
        self.in_flight = 0
        self.delivered = 0
        self._stop = asyncio.Event()
        self._messages_path = f"/queues/{quote(config.queue, safe='')}/messages"
        self.metrics = WorkerMetrics(self.registry, config, self)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Finish the message in hand, release the rest, then `run` returns."""
        self._stop.set()

    def close(self) -> None:
        self.queue_client.close()
        self.provider_client.close()

    # -- the loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        while not self.stopping:
            batch = await self._receive()
            if batch is None:
                continue
            held = list(batch)
            self.in_flight = len(held)
            while held and not self.stopping:
                if not await self._process(held[0]):
                    break  # stopped while waiting for the limiter: held[0] is not started
                held.pop(0)
                self.in_flight = len(held)
            if held:
                await self._release(held)
            self.in_flight = 0

    async def _receive(self) -> list[Message] | None:
        """One receive call; None when it failed or the worker stopped meanwhile."""
        c = self.config
        path = f"{self._messages_path}?max={c.batch}&wait={c.receive_wait_s}"
        path += f"&visibility={c.visibility_s}"
        self.metrics.receives.inc(())
        reply = await self._until_stopped(self._call(self.queue_client, "GET", path))
        if reply is None:
            return None
        if isinstance(reply, Exception) or reply.status != 200:
            self._queue_error("receive", reply)
            await self._sleep(c.retry_s)
            return None
        messages = [Message.from_json(m) for m in reply.json().get("messages", [])]
        if not messages:
            self.metrics.empty.inc(())
            if c.polling is Polling.SHORT and c.empty_sleep_s > 0:
                await self._sleep(c.empty_sleep_s)
        return messages

    async def _process(self, message: Message) -> bool:
        """Deliver one message and act on the result; False if stopped before delivering."""
        if not await self._take_token():
            return False
        early = self.config.ack is Ack.BEFORE_SEND
        if early:  # acknowledged before the work: whatever happens next, the queue forgets it
            self.metrics.actions.inc((Verb.DELETE.value,))
            await self._queue_call("delete", "DELETE", self._message_path(message))
        outcome = "failed"
        started = time.perf_counter()
        reply = await self._call(
            self.provider_client,
            "POST",
            "/send",
            body=self._provider_body(message),
            headers=JSON_HEADERS,
        )
        if isinstance(reply, Exception):
            log.warning("provider: %s", reply)
        elif reply.status == 200:
            outcome = "delivered"
        self.metrics.latency.observe((outcome,), time.perf_counter() - started)
        self.metrics.messages.inc((outcome,))
        if early:
            self.delivered += outcome == "delivered"
            return True
        action = decide(outcome == "delivered", message.receive_count, self.config.failure)
        self.metrics.actions.inc((action.verb.value,))
        if action.verb is Verb.DELETE:
            self.delivered += 1
            await self._queue_call("delete", "DELETE", self._message_path(message))
        elif action.verb is Verb.BACKOFF:
            await self._change_visibility(message, action.visibility_s)
        return True

    async def _release(self, messages: list[Message]) -> None:
        """Messages received but not started go back to the queue at once."""
        for message in messages:
            self.metrics.actions.inc(("release",))
            await self._change_visibility(message, 0)

    async def _change_visibility(self, message: Message, timeout_s: int) -> None:
        body = json.dumps({"timeout": timeout_s}).encode()
        path = self._message_path(message) + "/visibility"
        await self._queue_call("visibility", "PUT", path, body)

    async def _take_token(self) -> bool:
        """Wait until the limiter admits one message; False if stopped while waiting."""
        limiter = self.limiter
        if limiter is None:
            return True
        waited = 0.0
        try:
            while True:
                decision = limiter.decide(self.clock())
                wait = decision.delay_s if decision.allowed else decision.retry_after_s
                if wait > 0:
                    waited += wait
                    if not await self._sleep(wait):
                        return False
                if decision.allowed:
                    return True
        finally:
            if waited > 0:
                self.metrics.limit_waits.inc(())
                self.metrics.limit_wait_s.inc((), waited)

    # -- I/O helpers ------------------------------------------------------------------------
    def _provider_body(self, message: Message) -> bytes:
        event = read_event(message.body, message.message_id)
        payload: dict[str, Any] = {
            "message_id": event.id,
            "consumer": self.config.consumer or self.config.queue,
            "worker": self.config.instance,
            "receive_count": message.receive_count,
            "redelivered": message.receive_count > 1,
            "body": message.body,
        }
        if event.poison:
            payload["poison"] = True
        return json.dumps(payload).encode()

    def _message_path(self, message: Message) -> str:
        return f"{self._messages_path}/{quote(message.receipt_handle, safe='')}"

    async def _queue_call(self, call: str, method: str, path: str, body: bytes = b"") -> None:
        headers = JSON_HEADERS if body else None
        reply = await self._call(self.queue_client, method, path, body=body, headers=headers)
        if isinstance(reply, Exception) or reply.status != 200:
            self._queue_error(call, reply)

    def _queue_error(self, call: str, reply: Reply | Exception) -> None:
        self.metrics.errors.inc((call,))
        detail = reply if isinstance(reply, Exception) else f"{reply.status} {reply.body[:200]!r}"
        log.warning("queue %s failed: %s", call, detail)

    @staticmethod
    async def _call(
        client: Client,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> Reply | Exception:
        """One request; a reused keep-alive connection that failed is retried once."""
        for attempt in range(2):
            try:
                return await client.request(method, path, body=body, headers=headers)
            except UpstreamError as exc:
                if attempt == 0 and (exc.reused or not exc.reached):
                    continue
                return exc
            except (OSError, TimeoutError) as exc:
                return exc
        raise AssertionError("unreachable")

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped first; True when the whole time passed."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def _until_stopped(self, work: Awaitable[T]) -> T | None:
        """`work`'s result, or None (and `work` cancelled) if the worker stops first."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if task.done():
            return task.result()
        task.cancel()
        return None

    # -- management endpoints ---------------------------------------------------------------
    async def __call__(self, request: Request, writer: ResponseWriter) -> None:
        if request.path == "/metrics":
            send_metrics(writer, self.registry)
        elif request.path == "/health":
            status = "stopping" if self.stopping else "ok"
            writer.send_json(
                503 if self.stopping else 200,
                {
                    "status": status,
                    "instance": self.config.instance,
                    "queue": self.config.queue,
                    "in_flight": self.in_flight,
                    "delivered": self.delivered,
                },
            )
        else:
            writer.send_json(404, {"error": "not_found", "path": request.path})
