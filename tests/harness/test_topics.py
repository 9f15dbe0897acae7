"""The `topics` and `push_consumers` sections of a topology: their checks at file:line, the
topic service's topics file, the consumers each provider declares, and the delivery
accounting's PromQL (docs/metrics.md, "Delivery accounting")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.components import providers, topics
from harness.errors import InputError
from harness.topology import load_topology

pytestmark = pytest.mark.core

FANOUT = """\
name: t
services:
  payments:
    replicas: 1
    email: {{mode: publish, topic: payments}}
topics:
  payments:
    subscriptions:
      emails: {{queue: emails}}
      big: {{queue: big, filter: {{amount: [{{numeric: [">=", 1000]}}]}}, raw: true}}
      pushed: {pushed}
queues:
  emails: {{dead_letter: {{max_receive_count: 3}}}}
  big: {{}}
providers:
  mail: {{}}
workers:
  senders: {{queue: emails, provider: mail}}
  checkers: {{queue: big, provider: mail}}
push_consumers:
  pusher: {{provider: mail}}
"""


def fanout(tmp_path: Path, pushed: str = "{push: pusher, retry: {retries: 2, min_delay_s: 1}}"):
    path = tmp_path / "topology.yaml"
    path.write_text(FANOUT.format(pushed=pushed))
    return path


def problems(tmp_path: Path, pushed: str) -> list[str]:
    path = fanout(tmp_path, pushed)
    with pytest.raises(InputError) as caught:
        load_topology(path)
    return [line.removeprefix(f"{path}:") for line in caught.value.problems]


def test_groups_for_chaos(tmp_path: Path) -> None:
    """The topic service is one group `topics`; each push consumer a group of its own."""
    groups = load_topology(fanout(tmp_path)).shapes()
    assert (groups["topics"].kind, groups["topics"].replicas) == ("topic", 1)
    assert (groups["pusher"].kind, groups["pusher"].max_replicas) == ("push-consumer", 1)


def test_topics_file_names_every_subscription_and_its_endpoint(tmp_path: Path) -> None:
    """sqs subscriptions name their queue's ARN; push ones the consumer's URL; the filter,
    raw delivery and the retry policy become SNS subscription attributes."""
    topology = load_topology(fanout(tmp_path))
    file = topics.topics_file(topology, {"pusher": "http://127.0.0.1:9/"})
    [topic] = file["topics"]  # type: ignore[index]
    subs = {s["name"]: s for s in topic["subscriptions"]}
    assert subs["emails"]["protocol"] == "sqs"
    assert subs["emails"]["endpoint"] == topics.queue_arn("emails")
    assert json.loads(subs["big"]["attributes"]["FilterPolicy"]) == {
        "amount": [{"numeric": [">=", 1000]}]
    }
    assert subs["big"]["attributes"]["RawMessageDelivery"] == "true"
    assert (subs["pushed"]["protocol"], subs["pushed"]["endpoint"]) == (
        "http",
        "http://127.0.0.1:9/",
    )
    retry = json.loads(subs["pushed"]["attributes"]["DeliveryPolicy"])["healthyRetryPolicy"]
    assert (retry["numRetries"], retry["minDelayTarget"]) == (2, 1)


def test_each_provider_declares_the_consumers_it_serves(tmp_path: Path) -> None:
    """Through a queue's workers or a push consumer: their series exist from the start."""
    topology = load_topology(fanout(tmp_path))
    assert providers.consumers(topology) == {"mail": ["emails", "big", "pushed"]}
    assert topics.consumer_of_queue(topology, "big") == "big"


def test_accounting_of_a_queue_consumer_counts_its_dead_letter_queue(tmp_path: Path) -> None:
    """lost = matched - delivered (distinct) - dead-lettered, the topic's and the queue's."""
    topology = load_topology(fanout(tmp_path))
    emails = topics.accounting(topology, "emails")
    assert emails["matched"] == 'sum(pubsub_messages_matched_total{subscription="emails"})'
    assert emails["delivered"] == 'sum(provider_events_total{consumer="emails",outcome="first"})'
    assert 'queue_messages_visible{queue="emails-dlq"}' in emails["dead_lettered"]
    assert emails["lost"] == (
        f"{emails['matched']} - {emails['delivered']} - {emails['dead_lettered']}"
    )
    big = topics.accounting(topology, "big")  # no dead-letter queue of its own
    assert "queue_messages_visible" not in big["dead_lettered"]
    assert "or vector" not in " ".join([*emails.values(), *big.values()])  # absence stays absent


@pytest.mark.parametrize(
    ("pushed", "where", "message"),
    [
        ("{push: pusher, queue: big}", "topics.payments.subscriptions.pushed", "a `queue` or"),
        ("{queue: nosuch}", "topics.payments.subscriptions.pushed.queue", "no queue 'nosuch'"),
        ("{queue: big, retry: {retries: 1}}", "topics.payments.subscriptions.pushed", "push"),
        ("{push: pusher, dead_letter: nosuch}", "pushed.dead_letter", "no queue 'nosuch'"),
        ("{queue: emails, filter_scope: Body}", "pushed.filter_scope", "MessageBody"),
    ],
)
def test_bad_subscriptions_are_refused_at_their_line(
    tmp_path: Path, pushed: str, where: str, message: str
) -> None:
    [line] = problems(tmp_path, pushed)
    assert line.startswith("11:"), line
    assert where in line, line
    assert message in line, line
