"""The SNS contract through boto3, run twice: against our topic and queue processes, and
against moto's server (SNS and SQS in one). Every test here passes against both."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.pubsub.procs import Endpoints, client, moto, ours

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["ours", "moto"])
def endpoints(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Endpoints]:
    if request.param == "ours":
        with ours(tmp_path_factory.mktemp("sns")) as found:
            yield found
    else:
        with moto() as found:
            yield found


@pytest.fixture
def sns(endpoints: Endpoints) -> Any:
    return client("sns", endpoints.sns)


@pytest.fixture
def sqs(endpoints: Endpoints) -> Any:
    return client("sqs", endpoints.sqs)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _drain(sqs: Any, url: str, want: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
    """Receive until `want` messages came (or the time is up), deleting each."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        reply = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        )
        for message in reply.get("Messages", []):
            got.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return got


def test_fan_out_one_copy_to_each_queue(sns: Any, sqs: Any) -> None:
    topic = sns.create_topic(Name=_name("payments"))["TopicArn"]
    queues = [_queue(sqs, _name(q)) for q in ("emails", "whatsapp", "notify")]
    for _, arn in queues:
        sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        assert sub["SubscriptionArn"].startswith(topic + ":")
    ids = [sns.publish(TopicArn=topic, Message=f"event {i}")["MessageId"] for i in range(5)]
    for url, _ in queues:
        got = _drain(sqs, url, 5)
        envelopes = [json.loads(m["Body"]) for m in got]
        assert sorted(e["MessageId"] for e in envelopes) == sorted(ids)
        assert {e["Type"] for e in envelopes} == {"Notification"}
        assert {e["TopicArn"] for e in envelopes} == {topic}
        assert sorted(e["Message"] for e in envelopes) == [f"event {i}" for i in range(5)]


def test_raw_delivery_sends_the_body_alone(sns: Any, sqs: Any) -> None:
    topic = sns.create_topic(Name=_name("raw"))["TopicArn"]
    url, arn = _queue(sqs, _name("raw"))
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    sns.publish(
        TopicArn=topic,
        Message='{"event_id": "p-1"}',
        MessageAttributes={"tier": {"DataType": "String", "StringValue": "gold"}},
    )
    (message,) = _drain(sqs, url, 1)
    assert message["Body"] == '{"event_id": "p-1"}'
    assert message["MessageAttributes"]["tier"]["StringValue"] == "gold"


def test_filter_policy_lets_only_matching_messages_through(sns: Any, sqs: Any) -> None:
    topic = sns.create_topic(Name=_name("filtered"))["TopicArn"]
    url, arn = _queue(sqs, _name("fraud"))
    policy = {"amount": [{"numeric": [">", 1000]}], "currency": ["EUR", "USD"]}
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"FilterPolicy": json.dumps(policy), "RawMessageDelivery": "true"},
    )
    cases = [(50, "EUR"), (1500, "EUR"), (2000, "GBP"), (1001, "USD"), (1000, "USD")]
    for amount, currency in cases:
        sns.publish(
            TopicArn=topic,
            Message=f"{amount} {currency}",
            MessageAttributes={
                "amount": {"DataType": "Number", "StringValue": str(amount)},
                "currency": {"DataType": "String", "StringValue": currency},
            },
        )
    got = _drain(sqs, url, 2)
    time.sleep(1.0)
    got += _drain(sqs, url, 1, timeout_s=2)  # nothing more comes
    assert sorted(m["Body"] for m in got) == ["1001 USD", "1500 EUR"]


def test_subscription_attributes_round_trip(sns: Any, sqs: Any) -> None:
    topic = sns.create_topic(Name=_name("attrs"))["TopicArn"]
    _, arn = _queue(sqs, _name("attrs"))
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)["SubscriptionArn"]
    policy = json.dumps({"tier": ["gold"]})
    sns.set_subscription_attributes(
        SubscriptionArn=sub, AttributeName="FilterPolicy", AttributeValue=policy
    )
    attributes = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert json.loads(attributes["FilterPolicy"]) == {"tier": ["gold"]}
    assert attributes["Protocol"] == "sqs"
    assert attributes["Endpoint"] == arn
    assert attributes["TopicArn"] == topic
    listed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [s["SubscriptionArn"] for s in listed] == [sub]
    sns.unsubscribe(SubscriptionArn=sub)
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []


def test_topics_are_listed_and_deleted(sns: Any) -> None:
    name = _name("listed")
    topic = sns.create_topic(Name=name)["TopicArn"]
    assert sns.create_topic(Name=name)["TopicArn"] == topic  # idempotent
    assert topic in [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    attributes = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert attributes["TopicArn"] == topic
    sns.set_topic_attributes(TopicArn=topic, AttributeName="DisplayName", AttributeValue="Shop")
    assert sns.get_topic_attributes(TopicArn=topic)["Attributes"]["DisplayName"] == "Shop"
    sns.delete_topic(TopicArn=topic)
    assert topic not in [t["TopicArn"] for t in sns.list_topics()["Topics"]]


def test_publish_batch_reports_each_entry(sns: Any, sqs: Any) -> None:
    topic = sns.create_topic(Name=_name("batch"))["TopicArn"]
    url, arn = _queue(sqs, _name("batch"))
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    reply = sns.publish_batch(
        TopicArn=topic,
        PublishBatchRequestEntries=[{"Id": f"e{i}", "Message": f"m{i}"} for i in range(3)],
    )
    assert sorted(e["Id"] for e in reply["Successful"]) == ["e0", "e1", "e2"]
    assert reply["Failed"] == []
    assert len(_drain(sqs, url, 3)) == 3


def test_errors_have_sns_codes(sns: Any) -> None:
    missing = "arn:aws:sns:us-east-1:123456789012:does-not-exist"
    with pytest.raises(ClientError) as error:
        sns.publish(TopicArn=missing, Message="x")
    assert error.value.response["Error"]["Code"] == "NotFound"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    topic = sns.create_topic(Name=_name("errors"))["TopicArn"]
    with pytest.raises(ClientError) as error:
        sns.publish(TopicArn=topic, Message="x" * 262_145)
    assert error.value.response["Error"]["Code"] == "InvalidParameter"
    with pytest.raises(ClientError) as error:
        sns.publish_batch(
            TopicArn=topic,
            PublishBatchRequestEntries=[{"Id": f"e{i}", "Message": "m"} for i in range(11)],
        )
    assert error.value.response["Error"]["Code"] == "TooManyEntriesInBatchRequest"
    with pytest.raises(ClientError) as error:
        sns.publish_batch(
            TopicArn=topic,
            PublishBatchRequestEntries=[{"Id": "same", "Message": "m"}] * 2,
        )
    assert error.value.response["Error"]["Code"] == "BatchEntryIdsNotDistinct"


def test_a_filter_policy_over_the_limits_is_rejected(sns: Any, sqs: Any) -> None:
    topic = sns.create_topic(Name=_name("limits"))["TopicArn"]
    _, arn = _queue(sqs, _name("limits"))
    six_keys = {f"k{i}": ["v"] for i in range(6)}
    with pytest.raises(ClientError) as error:
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"FilterPolicy": json.dumps(six_keys)},
        )
    assert error.value.response["Error"]["Code"] == "InvalidParameter"
