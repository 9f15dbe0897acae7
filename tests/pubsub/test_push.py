"""http subscriptions of our topic process, pushed to an endpoint this test process runs: the
confirmation handshake, the notification's headers and body, retries on the delivery policy
(same message id every time), and what happens when they run out (dropped, or the
subscription's dead-letter queue). Semantics: /work/shared/reference/semantics.md section 6
(6.1 confirmation, 6.3 delivery format and 4xx, 6.4 retries and DLQ)."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvloop
from prometheus_client.parser import text_string_to_metric_families

from targets.http.messages import Request
from targets.http.server import HttpServer, ResponseWriter
from tests.helpers import wait_for
from tests.pubsub.procs import Endpoints, client, ours

pytestmark = pytest.mark.e2e

NOTIFICATION_KEYS = ("Type", "MessageId", "TopicArn", "Message", "Timestamp", "SignatureVersion")


# --- the endpoint the topic pushes to --------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One request the endpoint got, and the status it answered."""

    at: float  # time.monotonic() when it arrived
    method: str
    path: str
    headers: dict[str, str]  # lowercase names
    text: str
    status: int

    @property
    def kind(self) -> str:
        return self.headers.get("x-amz-sns-message-type", "")

    @property
    def body(self) -> Any:
        return json.loads(self.text)


Answer = Callable[[str, list[Hit]], int]  # (message type, earlier hits of that id) -> status


class PushEndpoint:
    """An HTTP server on loopback, on its own event loop in a thread: records every request
    and answers each path by its rule (200 when none)."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.rules: dict[str, Answer] = {}
        self.url = ""
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    async def _handle(self, request: Request, writer: ResponseWriter) -> None:
        data = await request.body.read_all(1 << 20)
        headers = {name.decode().lower(): value.decode() for name, value in request.headers}
        kind = headers.get("x-amz-sns-message-type", "")
        message_id = headers.get("x-amz-sns-message-id")
        with self._lock:
            earlier = [
                h
                for h in self.hits
                if h.path == request.path and h.headers.get("x-amz-sns-message-id") == message_id
            ]
            rule = self.rules.get(request.path)
            status = 200 if rule is None else rule(kind, earlier)
            hit = Hit(
                time.monotonic(), request.method, request.path, headers, data.decode(), status
            )
            self.hits.append(hit)
        writer.send(status, [(b"content-type", b"text/plain")], b"ok")

    async def _main(self, ready: threading.Event) -> None:
        server = HttpServer(self._handle)
        await server.listen("127.0.0.1", 0)
        host, port = server.address
        self.url = f"http://{host}:{port}"
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        ready.set()
        await self._stop.wait()
        await server.shutdown(1.0)

    def _run(self, ready: threading.Event) -> None:
        loop = uvloop.new_event_loop()
        try:
            loop.run_until_complete(self._main(ready))
        finally:
            loop.close()

    def __enter__(self) -> PushEndpoint:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10), "the push endpoint did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        assert self._thread is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive()

    def at(self, path: str, kind: str | None = None) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.path == path and (kind is None or h.kind == kind)]


# --- fixtures and helpers --------------------------------------------------------------------


@dataclass(frozen=True)
class Lab:
    endpoints: Endpoints
    push: PushEndpoint
    sns: Any
    sqs: Any


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with ours(tmp_path_factory.mktemp("push")) as endpoints, PushEndpoint() as push:
        yield Lab(endpoints, push, client("sns", endpoints.sns), client("sqs", endpoints.sqs))


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _policy(retries: int, delay_s: float) -> str:
    return json.dumps(
        {
            "healthyRetryPolicy": {
                "numRetries": retries,
                "minDelayTarget": delay_s,
                "maxDelayTarget": delay_s,
                "backoffFunction": "linear",
            }
        }
    )


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.status, reply.read().decode()


def _confirmation(lab: Lab, path: str) -> Hit:
    return wait_for(
        lambda: next(iter(lab.push.at(path, "SubscriptionConfirmation")), None),
        10,
        f"a SubscriptionConfirmation at {path}",
    )


def subscribed(lab: Lab, path: str, answer: Answer | None = None, **attributes: str) -> str:
    """A topic with one confirmed http subscription to `path` (confirmed with the token, by
    ConfirmSubscription); the topic's ARN. Notifications to `path` are answered by
    `answer`."""
    if answer is not None:
        lab.push.rules[path] = answer
    topic = lab.sns.create_topic(Name=_name("push"))["TopicArn"]
    lab.sns.subscribe(
        TopicArn=topic,
        Protocol="http",
        Endpoint=lab.push.url + path,
        Attributes=attributes,
    )
    token = _confirmation(lab, path).body["Token"]
    lab.sns.confirm_subscription(TopicArn=topic, Token=token)
    return topic


def counters(lab: Lab, topic_arn: str) -> dict[tuple[str, str], float]:
    """The topic's samples, summed over its subscriptions: (sample name, its outcome or
    result label) -> value. Attempts carry no topic label: matched by subscription."""
    name = topic_arn.rsplit(":", 1)[1]
    with urllib.request.urlopen(lab.endpoints.sns + "/metrics", timeout=10) as reply:
        samples = [
            s for f in text_string_to_metric_families(reply.read().decode()) for s in f.samples
        ]
    subscriptions = {s.labels.get("subscription") for s in samples if s.labels.get("topic") == name}
    found: dict[tuple[str, str], float] = {}
    for sample in samples:
        labels = sample.labels
        attempts = sample.name == "pubsub_delivery_attempts_total"
        if labels.get("topic") == name or (attempts and labels["subscription"] in subscriptions):
            key = (sample.name, labels.get("outcome", labels.get("result", "")))
            found[key] = found.get(key, 0) + sample.value
    return found


def ended(lab: Lab, topic_arn: str, outcome: str, want: float) -> dict[tuple[str, str], float]:
    """Wait until the topic counts `want` deliveries that ended with `outcome`."""
    return wait_for(
        lambda: (
            (c := counters(lab, topic_arn)).get(("pubsub_deliveries_total", outcome)) == want and c
        ),
        15,
        f"pubsub_deliveries_total{{outcome={outcome!r}}} == {want}",
    )


def fail_first(failures: int, status: int = 500) -> Answer:
    def answer(kind: str, earlier: list[Hit]) -> int:
        if kind != "Notification":
            return 200
        return status if len(earlier) < failures else 200

    return answer


def always(status: int) -> Answer:
    return lambda kind, earlier: status if kind == "Notification" else 200


# --- tests -----------------------------------------------------------------------------------


def test_confirmation_handshake_then_notifications(lab: Lab) -> None:
    """A pending http subscription gets only its SubscriptionConfirmation; a GET of the
    SubscribeURL confirms it, and the next publish arrives as a Notification. A message
    published while it was pending is never delivered (semantics.md 6.1: until confirmed SNS
    sends no notifications; 6.2: a publish goes to the confirmed subscriptions)."""
    path = "/handshake"
    topic = lab.sns.create_topic(Name=_name("handshake"))["TopicArn"]
    answered = lab.sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=lab.push.url + path)
    assert answered["SubscriptionArn"] == "pending confirmation"
    (sub,) = lab.sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert sub["SubscriptionArn"] == "PendingConfirmation"

    hit = _confirmation(lab, path)
    assert hit.method == "POST"
    assert hit.headers["x-amz-sns-message-type"] == "SubscriptionConfirmation"
    assert hit.headers["x-amz-sns-topic-arn"] == topic
    body = hit.body
    assert body["Type"] == "SubscriptionConfirmation"
    assert body["TopicArn"] == topic
    assert body["Token"]
    assert body["SubscribeURL"].startswith(lab.endpoints.sns + "/?")
    assert hit.headers["x-amz-sns-message-id"] == body["MessageId"]

    before = lab.sns.publish(TopicArn=topic, Message="published while pending")["MessageId"]
    time.sleep(2.0)
    assert lab.push.at(path, "Notification") == []

    status, answer = _get(body["SubscribeURL"])
    assert status == 200
    assert "<SubscriptionArn>" in answer
    (sub,) = lab.sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    arn = sub["SubscriptionArn"]
    assert arn.startswith(topic + ":")
    assert f"<SubscriptionArn>{arn}</SubscriptionArn>" in answer
    attributes = lab.sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert attributes["PendingConfirmation"] == "false"

    after = lab.sns.publish(TopicArn=topic, Message="published once confirmed", Subject="s")
    note = wait_for(lambda: lab.push.at(path, "Notification"), 10, "a Notification")[0]
    assert note.headers["x-amz-sns-message-id"] == after["MessageId"]
    assert note.headers["x-amz-sns-topic-arn"] == topic
    assert note.headers["x-amz-sns-subscription-arn"] == arn
    assert note.headers["user-agent"] == "Amazon Simple Notification Service Agent"
    envelope = note.body
    assert set(NOTIFICATION_KEYS) <= set(envelope)
    assert envelope["Type"] == "Notification"
    assert envelope["MessageId"] == after["MessageId"]
    assert envelope["TopicArn"] == topic
    assert envelope["Message"] == "published once confirmed"
    assert envelope["Subject"] == "s"
    assert envelope["SignatureVersion"] in ("1", "2")
    assert envelope["Timestamp"].endswith("Z")

    time.sleep(1.0)  # the message published while pending does not follow
    ids = [h.headers["x-amz-sns-message-id"] for h in lab.push.at(path, "Notification")]
    assert ids == [after["MessageId"]]
    assert before not in ids


def test_a_5xx_is_retried_on_the_delivery_policy_with_the_same_message_id(lab: Lab) -> None:
    """500, 500, then 200: three attempts a second apart, one message id, counted as two
    retries and one delivery."""
    path = "/flaky"
    topic = subscribed(lab, path, fail_first(2), DeliveryPolicy=_policy(3, 1.0))
    message_id = lab.sns.publish(TopicArn=topic, Message="try again")["MessageId"]
    counts = ended(lab, topic, "delivered", 1)
    hits = lab.push.at(path, "Notification")
    assert [h.status for h in hits] == [500, 500, 200]
    assert {h.headers["x-amz-sns-message-id"] for h in hits} == {message_id}
    assert {h.body["MessageId"] for h in hits} == {message_id}
    assert {h.body["Message"] for h in hits} == {"try again"}
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(hits)]
    assert min(gaps) >= 0.89, gaps  # 1 s, less at most 10 % of jitter
    assert counts[("pubsub_delivery_retries_total", "")] == 2
    assert counts[("pubsub_deliveries_total", "dropped")] == 0
    assert counts[("pubsub_delivery_attempts_total", "http_5xx")] == 2
    assert counts[("pubsub_delivery_attempts_total", "delivered")] == 1
    time.sleep(1.5)
    assert len(lab.push.at(path, "Notification")) == 3


def test_retries_run_out_without_a_dlq_the_message_is_dropped(lab: Lab) -> None:
    path = "/down"
    topic = subscribed(lab, path, always(500), DeliveryPolicy=_policy(1, 1.0))
    message_id = lab.sns.publish(TopicArn=topic, Message="lost")["MessageId"]
    counts = ended(lab, topic, "dropped", 1)
    hits = lab.push.at(path, "Notification")
    assert [h.status for h in hits] == [500, 500]
    assert {h.headers["x-amz-sns-message-id"] for h in hits} == {message_id}
    assert hits[1].at - hits[0].at >= 0.89
    assert counts[("pubsub_delivery_retries_total", "")] == 1
    assert counts[("pubsub_deliveries_total", "delivered")] == 0
    assert counts[("pubsub_deliveries_total", "dead_lettered")] == 0
    time.sleep(1.5)
    assert len(lab.push.at(path, "Notification")) == 2


def test_retries_run_out_with_a_redrive_policy_the_message_goes_to_the_dlq(lab: Lab) -> None:
    dlq = lab.sqs.create_queue(QueueName=_name("push-dlq"))["QueueUrl"]
    dlq_arn = lab.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    path = "/down-with-dlq"
    topic = subscribed(
        lab,
        path,
        always(500),
        DeliveryPolicy=_policy(1, 1.0),
        RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn}),
    )
    message_id = lab.sns.publish(TopicArn=topic, Message="to the dlq")["MessageId"]
    counts = ended(lab, topic, "dead_lettered", 1)
    assert counts[("pubsub_deliveries_total", "dropped")] == 0
    assert counts[("pubsub_deliveries_total", "delivered")] == 0
    hits = lab.push.at(path, "Notification")
    assert [h.status for h in hits] == [500, 500]
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        got = lab.sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
    (message,) = got
    envelope = json.loads(message["Body"])  # what the endpoint would have got
    assert envelope["Type"] == "Notification"
    assert envelope["MessageId"] == message_id
    assert envelope["Message"] == "to the dlq"
    assert envelope["TopicArn"] == topic


@pytest.mark.parametrize("status", [400, 404, 429])
def test_a_4xx_answer_is_delivered_and_not_retried(lab: Lab, status: int) -> None:
    """semantics.md 6.3: a status in 200-4xx is a delivery (429 included): no retry."""
    path = f"/gone-{status}"
    topic = subscribed(lab, path, always(status), DeliveryPolicy=_policy(3, 1.0))
    lab.sns.publish(TopicArn=topic, Message="client error")
    counts = ended(lab, topic, "delivered", 1)
    assert counts[("pubsub_delivery_retries_total", "")] == 0
    assert counts[("pubsub_deliveries_total", "dropped")] == 0
    time.sleep(1.5)  # a retry would have come by now
    assert [h.status for h in lab.push.at(path, "Notification")] == [status]
