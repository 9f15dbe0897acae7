"""kill -9 of our topic process: an acknowledged Publish is committed before its answer, so it
survives; the deliveries it owed at the kill resume when the process starts again on the same
database. Delivery is at least once: duplicates are counted, never a loss."""

from __future__ import annotations

import itertools
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Target, wait_for
from tests.pubsub.procs import client, start_topics
from tests.queue.procs import start_queue

pytestmark = pytest.mark.e2e

PUBLISHERS = 4
KILL_AT_S = 2.0  # of publishing from every publisher at once
RECEIVE_S = 30.0


def _queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _fan_out(sns: Any, sqs: Any, names: tuple[str, ...]) -> tuple[str, list[str]]:
    """A topic with one raw sqs subscription per queue; (topic ARN, queue names)."""
    topic = sns.create_topic(Name=f"orders-{uuid.uuid4().hex[:8]}")["TopicArn"]
    for name in names:
        _, arn = _queue(sqs, name)
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
        )
    return topic, list(names)


def collect(sqs: Any, queue: str, want: set[str], timeout_s: float = RECEIVE_S) -> Counter[str]:
    """Receive (and delete) from `queue` until every body in `want` came or the time is up;
    how many times each body came."""
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    got: Counter[str] = Counter()
    deadline = time.monotonic() + timeout_s
    while not want <= set(got) and time.monotonic() < deadline:
        reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = reply.get("Messages", [])
        for message in messages:
            got[message["Body"]] += 1
        if messages:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
    return got


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`. Read twice: the
    registry exposes a counter series at 0 the first time (targets/fastmetrics.py)."""
    for _ in range(2):
        with urllib.request.urlopen(url + "/metrics", timeout=10) as reply:
            text = reply.read().decode()
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


@dataclass
class Publishes:
    acknowledged: set[str] = field(default_factory=set)  # a 200 with a MessageId
    failed: set[str] = field(default_factory=set)  # an error or no answer: maybe stored
    lock: threading.Lock = field(default_factory=threading.Lock)


def publish_until(url: str, topic: str, stop: threading.Event, record: Publishes) -> None:
    """One publisher: unique bodies until `stop`, or until the process stops answering."""
    sns = client("sns", url)
    worker = uuid.uuid4().hex[:6]
    for n in itertools.count():
        if stop.is_set():
            return
        body = f"{worker}-{n}"
        try:
            reply = sns.publish(TopicArn=topic, Message=body)
        except Exception:
            with record.lock:
                record.failed.add(body)
            if stop.is_set() or n > 0:
                return  # killed: what it answered before is all that counts
            continue
        assert reply["MessageId"]
        with record.lock:
            record.acknowledged.add(body)


def test_an_acknowledged_publish_survives_kill_9_of_the_topic_process(tmp_path: Path) -> None:
    """Publishers on several threads, SIGKILL of the topic process among their requests; on
    the same database again, every publish answered with a MessageId reaches both queues."""
    queue, sqs_url = start_queue(tmp_path / "queue.db")
    with queue:
        topics: Target = start_topics(tmp_path / "topics.db", sqs_url, log=tmp_path / "t.log")
        with topics:
            sqs = client("sqs", sqs_url)
            topic, queues = _fan_out(client("sns", topics.url), sqs, ("ledger", "audit"))
            record = Publishes()
            stop = threading.Event()
            threads = [
                threading.Thread(target=publish_until, args=(topics.url, topic, stop, record))
                for _ in range(PUBLISHERS)
            ]
            for thread in threads:
                thread.start()
            try:
                time.sleep(KILL_AT_S)
                before_kill = len(record.acknowledged)
                topics.kill()  # SIGKILL, by pid, with publishes in flight
                topics.wait(10)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(30)
            assert not any(t.is_alive() for t in threads)
        assert before_kill > 0, "nothing was acknowledged before the kill"
        assert record.failed, "no publisher saw the kill"
        with start_topics(tmp_path / "topics.db", sqs_url, log=tmp_path / "t.log") as again:
            assert metric(again.url, "pubsub_messages_published_total") >= len(record.acknowledged)
            for name in queues:
                got = collect(sqs, name, record.acknowledged)
                missing = record.acknowledged - set(got)
                assert not missing, f"{name}: {len(missing)} acknowledged publishes lost"
                duplicates = sum(n - 1 for n in got.values())
                unknown = set(got) - record.acknowledged - record.failed
                assert not unknown, f"{name}: bodies nobody published: {sorted(unknown)[:5]}"
                print(
                    f"{name}: {len(record.acknowledged)} acknowledged, {len(record.failed)}"
                    f" failed, {len(got)} received, {duplicates} duplicates"
                )


def test_deliveries_pending_at_the_kill_resume_after_the_restart(tmp_path: Path) -> None:
    """The queue service is down while messages are published: their deliveries fail and
    wait in the outbox for a retry. kill -9 of the topic process, the queue back, the topic
    process again on the same database: every one of them arrives."""
    queue, sqs_url = start_queue(tmp_path / "queue.db")
    with queue:
        topics = start_topics(tmp_path / "topics.db", sqs_url, log=tmp_path / "t.log")
        with topics:
            sns = client("sns", topics.url)
            topic, queues = _fan_out(sns, client("sqs", sqs_url), ("billing", "shipping"))
            queue.stop()  # SIGTERM: the queue's data stays on disk
            bodies = {f"pending-{i}" for i in range(20)}
            for body in sorted(bodies):
                assert sns.publish(TopicArn=topic, Message=body)["MessageId"]
            wait_for(
                lambda: metric(topics.url, "pubsub_delivery_retries_total") >= 2 * len(bodies),
                10,
                "failed deliveries waiting for a retry",
            )
            for name in queues:
                pending = metric(topics.url, "pubsub_deliveries_pending", subscription=name)
                assert pending == len(bodies)
                assert (
                    metric(
                        topics.url,
                        "pubsub_deliveries_total",
                        subscription=name,
                        outcome="delivered",
                    )
                    == 0
                )
            topics.kill()
            topics.wait(10)
    queue, sqs_url = start_queue(tmp_path / "queue.db")  # another port: the topic is told
    with queue, start_topics(tmp_path / "topics.db", sqs_url, log=tmp_path / "t.log") as again:
        sqs = client("sqs", sqs_url)
        for name in queues:
            got = collect(sqs, name, bodies)
            assert set(got) == bodies, f"{name}: missing {sorted(bodies - set(got))}"
        for name in queues:
            wait_for(
                lambda name=name: (
                    metric(again.url, "pubsub_deliveries_pending", subscription=name) == 0
                ),
                10,
                f"{name}: nothing owed",
            )
