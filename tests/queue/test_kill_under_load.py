"""kill -9 of the queue process under the benchmark's load (4 producers, 4 consumers, batches
of 10, long polling) loses no acknowledged message, with group commit on.

Producers record every MessageId the queue acknowledged (HTTP 200, listed in Successful).
Consumers receive (VisibilityTimeout 2 s, so what they held comes back soon after the
restart) and delete. The process is killed with SIGKILL mid-load, restarted on the same
database, and drained. Every acknowledged message must be accounted for: received after the
restart, or named in a DeleteMessageBatch sent before the kill (whose answer the kill may
have cut off: such a delete may or may not have been committed). A delete that was
acknowledged must have stuck: that message is never received again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.queue.procs import start_queue, stop

pytestmark = pytest.mark.e2e

PRODUCERS = 4
CONSUMERS = 4
VISIBILITY_S = 2
ENOUGH_SENT = 3000  # acknowledged sends before the kill (and some deletes)
MAX_LOAD_S = 8.0  # kill by then whatever the counts (a slow machine)


class Sqs:
    """One keep-alive connection speaking the SQS JSON protocol."""

    def __init__(self, base: str) -> None:
        self.host, _, port = base.removeprefix("http://").partition(":")
        self.port = int(port)
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def call(self, action: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        body = json.dumps(payload).encode()
        writer.write(
            f"POST / HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
            f"content-type: application/x-amz-json-1.0\r\nx-amz-target: AmazonSQS.{action}\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(v)
            for k, _, v in (h.partition(":") for h in lines[1:])
            if k.lower() == "content-length"
        )
        data = await reader.readexactly(length)
        return int(lines[0].split()[1]), json.loads(data) if data else {}

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


@dataclass
class Ledger:
    acknowledged: set[str] = field(default_factory=set)  # sends answered 200 + Successful
    delete_asked: set[str] = field(default_factory=set)  # named in a delete sent before kill
    deleted: set[str] = field(default_factory=set)  # deletes answered 200 + Successful


async def producer(sqs: Sqs, url: str, tag: int, ledger: Ledger) -> None:
    seq = 0
    while True:
        entries = [{"Id": str(i), "MessageBody": f"p{tag}-{seq + i}"} for i in range(10)]
        seq += 10
        status, answer = await sqs.call("SendMessageBatch", {"QueueUrl": url, "Entries": entries})
        if status == 200:
            ledger.acknowledged.update(e["MessageId"] for e in answer["Successful"])


async def consumer(sqs: Sqs, url: str, ledger: Ledger) -> None:
    receive = {
        "QueueUrl": url,
        "MaxNumberOfMessages": 10,
        "WaitTimeSeconds": 1,
        "VisibilityTimeout": VISIBILITY_S,
    }
    while True:
        status, answer = await sqs.call("ReceiveMessage", receive)
        messages = answer.get("Messages", []) if status == 200 else []
        if not messages:
            continue
        ids = {str(i): m["MessageId"] for i, m in enumerate(messages)}
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        ledger.delete_asked.update(ids.values())
        status, answer = await sqs.call("DeleteMessageBatch", {"QueueUrl": url, "Entries": entries})
        if status == 200:
            ledger.deleted.update(ids[e["Id"]] for e in answer["Successful"])


async def drain(base: str, url: str, until: float) -> set[str]:
    """Every message id received from now on, until the queue is empty after `until`
    (epoch seconds: by then every message held before the kill is visible again)."""
    sqs = Sqs(base)
    seen: set[str] = set()
    try:
        while True:
            status, answer = await sqs.call(
                "ReceiveMessage",
                {
                    "QueueUrl": url,
                    "MaxNumberOfMessages": 10,
                    "WaitTimeSeconds": 1,
                    "VisibilityTimeout": 600,
                },
            )
            assert status == 200, answer
            messages = answer.get("Messages", [])
            seen.update(m["MessageId"] for m in messages)
            if not messages and time.time() > until:
                return seen
    finally:
        sqs.close()


async def test_kill_9_under_load_loses_no_acknowledged_message(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    proc, base = start_queue(db)
    ledger = Ledger()
    conns: list[Sqs] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        setup = Sqs(base)
        status, created = await setup.call("CreateQueue", {"QueueName": "load"})
        setup.close()
        assert status == 200, created
        url = created["QueueUrl"]
        conns = [Sqs(base) for _ in range(PRODUCERS + CONSUMERS)]
        tasks = [asyncio.create_task(producer(conns[i], url, i, ledger)) for i in range(PRODUCERS)]
        tasks += [
            asyncio.create_task(consumer(conns[PRODUCERS + i], url, ledger))
            for i in range(CONSUMERS)
        ]
        started = time.monotonic()
        while time.monotonic() - started < MAX_LOAD_S and not (
            len(ledger.acknowledged) >= ENOUGH_SENT and ledger.deleted
        ):
            await asyncio.sleep(0.05)
        for task in tasks:
            assert not task.done(), task  # every worker is still running: the load is on
        proc.kill()  # SIGKILL, by pid, with requests in flight
        killed_at = time.time()
        proc.wait(timeout=10)
        # What the workers learn from here on (connection errors) acknowledges nothing.
        snapshot = Ledger(set(ledger.acknowledged), set(ledger.delete_asked), set(ledger.deleted))
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        for conn in conns:
            conn.close()
        stop(proc)
    proc, base = start_queue(db)
    try:
        after = await drain(base, url, until=killed_at + VISIBILITY_S + 1)
    finally:
        stop(proc)
    assert snapshot.acknowledged, "no send was acknowledged before the kill"
    assert snapshot.deleted, "no delete was acknowledged before the kill"
    lost = snapshot.acknowledged - snapshot.delete_asked - after
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {sorted(lost)[:5]}"
    revived = snapshot.deleted & after
    assert not revived, f"{len(revived)} acknowledged deletes undone, e.g. {sorted(revived)[:5]}"
