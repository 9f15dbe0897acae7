"""The topic service's pure model: names and ARNs, topics, subscriptions and their
attributes, what a publish is, and the JSON documents SNS delivers. No I/O, no clock.

A subscription's attributes are kept as SNS spells them (strings); `Subscription.settings`
is what they mean, compiled once when set: the filter policy (filters.py), the delivery
policy (delivery.py, HTTP only: SQS subscriptions retry on AWS's managed schedule), raw
delivery and the dead-letter queue. A subscription also has a `name`, the lab's bounded
label for its metrics: given in the topics file, else the queue's name for `sqs` and
``host:port/path`` for `http`.

`plan(subscriptions, message)`: the fan-out of one publish, every confirmed subscription
whose filter matches, in subscription order. `notification` and `confirmation` build the
JSON bodies of 6.3 in reference/semantics.md (``Type``, ``MessageId``, ``TopicArn``, ...);
signatures are placeholders (``SignatureVersion`` 1, a fixed base64 text), not RSA: nothing
in the lab verifies them.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import quote, urlsplit

from targets.pubsub.delivery import DeliveryPolicy, parse_delivery_policy
from targets.pubsub.errors import InvalidParameter, InvalidParameterValue, NotFound
from targets.pubsub.filters import FilterPolicy, compile_policy

MAX_MESSAGE_BYTES: Final = 262_144
MAX_SUBJECT: Final = 99
MAX_BATCH: Final = 10
PROTOCOLS: Final = ("sqs", "http")
DATA_TYPES: Final = ("String", "Number", "Binary", "String.Array")
SETTABLE_SUBSCRIPTION: Final = (
    "DeliveryPolicy",
    "FilterPolicy",
    "FilterPolicyScope",
    "RawMessageDelivery",
    "RedrivePolicy",
)
SETTABLE_TOPIC: Final = ("DisplayName", "DeliveryPolicy", "Policy")
SIGNATURE: Final = "cnVzaGxhYi10b3BpYy1zZXJ2aWNlLXVuc2lnbmVk"  # "rushlab-topic-service-unsigned"
TOKEN_TTL_S: Final = 2 * 24 * 3600.0
_TOPIC_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,256}")
_ATTRIBUTE_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,256}")

Attributes = dict[str, tuple[str, str]]
"""Message attributes: name -> (DataType, StringValue); Binary values are base64 text."""


@dataclass(frozen=True, slots=True)
class Arns:
    region: str = "us-east-1"
    account_id: str = "000000000000"

    def topic(self, name: str) -> str:
        return f"arn:aws:sns:{self.region}:{self.account_id}:{name}"

    def subscription(self, topic: str, uuid: str) -> str:
        return f"{self.topic(topic)}:{uuid}"

    def topic_name(self, arn: str, field: str = "TopicArn") -> str:
        """The topic a topic ARN names (NotFound for one of another account or region)."""
        parts = arn.split(":")
        if len(parts) != 6 or parts[:3] != ["arn", "aws", "sns"] or not parts[5]:
            raise InvalidParameter(f"{field}: not a topic ARN: {arn!r}")
        if parts[3] != self.region or parts[4] != self.account_id:
            raise NotFound(f"{field}: topic does not exist: {arn}")
        return parts[5]

    def subscription_id(self, arn: str, field: str = "SubscriptionArn") -> tuple[str, str]:
        """(topic name, uuid) of a subscription ARN."""
        topic_arn, _, uuid = arn.rpartition(":")
        if not uuid or not topic_arn:
            raise InvalidParameter(f"{field}: not a subscription ARN: {arn!r}")
        return self.topic_name(topic_arn, field), uuid


def queue_name(arn: str, field: str = "Endpoint") -> str:
    """The queue an SQS ARN names (``arn:aws:sqs:region:account:name``)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "sqs"] or not parts[5]:
        raise InvalidParameter(f"{field}: not an SQS queue ARN: {arn!r}")
    return parts[5]


def check_topic_name(name: str) -> str:
    if name.endswith(".fifo"):
        raise InvalidParameter(f"Name: FIFO topics are not modelled here: {name!r}")
    if not _TOPIC_NAME.fullmatch(name):
        raise InvalidParameter(
            f"Name: 1-256 letters, digits, hyphens and underscores, got {name!r}"
        )
    return name


def default_name(protocol: str, endpoint: str) -> str:
    """The metrics label of a subscription the topics file did not name."""
    if protocol == "sqs":
        return queue_name(endpoint)
    url = urlsplit(endpoint)
    return f"{url.hostname}:{url.port or 80}{url.path or '/'}"


def check_endpoint(protocol: str, endpoint: str | None) -> str:
    if protocol not in PROTOCOLS:
        raise InvalidParameter(
            f"Protocol: {protocol!r} is not modelled here; use one of {', '.join(PROTOCOLS)}"
        )
    if not endpoint:
        raise InvalidParameter("Endpoint: required for an sqs or http subscription")
    if protocol == "sqs":
        queue_name(endpoint)
        return endpoint
    url = urlsplit(endpoint)
    if url.scheme != "http" or not url.hostname:
        raise InvalidParameter(f"Endpoint: an http:// URL, got {endpoint!r}")
    try:
        url.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise InvalidParameter(f"Endpoint: bad port in {endpoint!r}") from None
    return endpoint


# --- subscriptions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """What a subscription's attributes mean, compiled when they are set."""

    filter: FilterPolicy | None = None
    delivery: DeliveryPolicy | None = None  # http only; None: the defaults (or AWS-managed)
    raw: bool = False
    dead_letter: str | None = None  # the DLQ's queue name


def _bool(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise InvalidParameter(f"Attributes.{name}: true or false, got {value!r}")
    return value.lower() == "true"


def settings_of(protocol: str, attributes: Mapping[str, str]) -> Settings:
    """Check a subscription's attributes and compile them (InvalidParameter naming one)."""
    unknown = sorted(set(attributes) - set(SETTABLE_SUBSCRIPTION))
    if unknown:
        raise InvalidParameter(f"Attributes: unknown attribute name {unknown[0]!r}")
    scope = attributes.get("FilterPolicyScope", "MessageAttributes")
    policy = attributes.get("FilterPolicy", "")
    if scope not in ("MessageAttributes", "MessageBody"):
        raise InvalidParameter(
            f"FilterPolicyScope: MessageAttributes or MessageBody, got {scope!r}"
        )
    filter_ = compile_policy(policy, scope) if policy else None
    delivery = None
    if attributes.get("DeliveryPolicy"):
        if protocol != "http":
            raise InvalidParameter("DeliveryPolicy: only http and https subscriptions have one")
        delivery = parse_delivery_policy(attributes["DeliveryPolicy"])
    dead_letter = None
    if attributes.get("RedrivePolicy"):
        try:
            redrive = json.loads(attributes["RedrivePolicy"])
        except ValueError:
            raise InvalidParameter("RedrivePolicy: not JSON") from None
        if not isinstance(redrive, dict) or not isinstance(redrive.get("deadLetterTargetArn"), str):
            raise InvalidParameter('RedrivePolicy: expected {"deadLetterTargetArn": queue ARN}')
        dead_letter = queue_name(redrive["deadLetterTargetArn"], "RedrivePolicy")
    raw = _bool("RawMessageDelivery", attributes.get("RawMessageDelivery", "false"))
    return Settings(filter_, delivery, raw, dead_letter)


@dataclass(slots=True)
class Subscription:
    """One subscription as the service keeps it in memory (and in its database)."""

    id: int
    uuid: str
    topic: str
    protocol: str
    endpoint: str
    name: str
    attributes: dict[str, str] = field(default_factory=dict)
    confirmed: bool = True
    token: str | None = None
    token_expires: float = 0.0
    settings: Settings = field(default_factory=Settings)

    def view(self, arns: Arns) -> dict[str, str]:
        """GetSubscriptionAttributes."""
        arn = arns.subscription(self.topic, self.uuid)
        view = {
            "SubscriptionArn": arn,
            "TopicArn": arns.topic(self.topic),
            "Owner": arns.account_id,
            "Protocol": self.protocol,
            "Endpoint": self.endpoint,
            "PendingConfirmation": "false" if self.confirmed else "true",
            "ConfirmationWasAuthenticated": "true" if self.confirmed else "false",
            "RawMessageDelivery": "true" if self.settings.raw else "false",
            "SubscriptionPrincipal": f"arn:aws:iam::{arns.account_id}:user/rushlab",
        }
        view.update(self.attributes)
        if self.attributes.get("FilterPolicy"):
            view.setdefault("FilterPolicyScope", "MessageAttributes")
        if self.protocol == "http":
            policy = self.settings.delivery or DeliveryPolicy()
            view["EffectiveDeliveryPolicy"] = json.dumps(policy.as_json())
        return view

    def with_attribute(self, name: str, value: str) -> Subscription:
        """A copy with one attribute set (an empty value removes it), checked."""
        if name not in SETTABLE_SUBSCRIPTION:
            raise InvalidParameter(f"AttributeName: cannot set {name!r}")
        attributes = dict(self.attributes)
        if value:
            attributes[name] = value
        else:
            attributes.pop(name, None)
        return replace(self, attributes=attributes, settings=settings_of(self.protocol, attributes))

    def arn(self, arns: Arns) -> str:
        return arns.subscription(self.topic, self.uuid) if self.confirmed else "PendingConfirmation"


# --- publish ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """One published message, as it is stored until every delivery of it is done."""

    message_id: str
    topic: str
    message: str
    published: float
    subject: str | None = None
    attributes: Attributes = field(default_factory=dict)
    per_protocol: Mapping[str, str] | None = None  # MessageStructure=json: protocol -> text
    group_id: str | None = None
    # the envelope's JSON around UnsubscribeURL, by protocol: built once for every subscriber
    envelopes: dict[str, tuple[str, str]] = field(default_factory=dict, compare=False, repr=False)

    def text_for(self, protocol: str) -> str:
        if self.per_protocol is None:
            return self.message
        return self.per_protocol.get(protocol, self.per_protocol["default"])

    def as_json(self) -> str:
        return json.dumps(
            [self.subject, self.message, self.attributes, self.per_protocol, self.group_id]
        )

    @classmethod
    def from_json(cls, message_id: str, topic: str, published: float, data: str) -> Message:
        subject, message, attributes, per_protocol, group = json.loads(data)
        attrs = {name: (kind, value) for name, (kind, value) in attributes.items()}
        return cls(message_id, topic, message, published, subject, attrs, per_protocol, group)


def check_attributes(raw: Mapping[str, tuple[str, str | None]], field: str) -> Attributes:
    """Message attributes checked as SNS checks them (InvalidParameterValue naming one)."""
    checked: Attributes = {}
    for name, (kind, value) in raw.items():
        where = f"{field}.{name}"
        if not _ATTRIBUTE_NAME.fullmatch(name) or name.startswith(("AWS.", "Amazon.")):
            raise InvalidParameterValue(f"{where}: not a valid message attribute name")
        base = kind.split(".", 1)[0]
        if kind != "String.Array" and base not in ("String", "Number", "Binary"):
            raise InvalidParameterValue(f"{where}.DataType: {kind!r} is not a valid data type")
        if value is None or value == "":
            raise InvalidParameterValue(f"{where}: must have a non-empty value")
        if base == "Number":
            try:
                float(value)
            except ValueError:
                raise InvalidParameterValue(f"{where}: {value!r} is not a number") from None
        if kind == "String.Array":
            try:
                array = json.loads(value)
            except ValueError:
                array = None
            if not isinstance(array, list):
                raise InvalidParameterValue(f"{where}: a String.Array holds a JSON array")
        checked[name] = (kind, value)
    return checked


def check_publish(
    message: str | None, subject: str | None, structure: str | None, field: str = ""
) -> Mapping[str, str] | None:
    """Check a Publish's text; the per-protocol texts when MessageStructure is json."""
    if message is None or message == "":
        raise InvalidParameter(f"{field}Message: required and not empty")
    if len(message.encode()) > MAX_MESSAGE_BYTES:
        raise InvalidParameter(
            f"{field}Message: too long: {len(message.encode())} bytes, at most {MAX_MESSAGE_BYTES}"
        )
    if subject is not None and (
        len(subject) > MAX_SUBJECT or not subject or any(ord(c) < 32 for c in subject)
    ):
        raise InvalidParameter(f"{field}Subject: under 100 characters, no control characters")
    if structure is None:
        return None
    if structure != "json":
        raise InvalidParameter(f"{field}MessageStructure: only json, got {structure!r}")
    try:
        texts = json.loads(message)
    except ValueError:
        raise InvalidParameter(
            f"{field}Message: MessageStructure=json needs a JSON object"
        ) from None
    if not isinstance(texts, dict) or not isinstance(texts.get("default"), str):
        raise InvalidParameter(f'{field}Message: MessageStructure=json needs a "default" key')
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in texts.items()}


def plan(subscriptions: Iterable[Subscription], message: Message) -> list[Subscription]:
    """The subscriptions one publish goes to: confirmed, and the filter matches."""
    body = message.text_for("sqs")
    return [
        sub
        for sub in subscriptions
        if sub.confirmed
        and (sub.settings.filter is None or sub.settings.filter.matches(message.attributes, body))
    ]


# --- what is delivered --------------------------------------------------------------------


def timestamp(now: float) -> str:
    """ISO 8601 in UTC with milliseconds, as SNS writes ``Timestamp``."""
    whole = int(now)
    millis = round((now - whole) * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def _signed(body: dict[str, Any], base_url: str) -> dict[str, Any]:
    body["SignatureVersion"] = "1"
    body["Signature"] = SIGNATURE
    body["SigningCertURL"] = f"{base_url}/SimpleNotificationService-rushlab.pem"
    return body


def notification(message: Message, sub: Subscription, arns: Arns, base_url: str) -> str:
    """What `sub` receives for `message`: the raw text, or the JSON envelope (its message
    part built once per protocol, whatever the number of subscribers)."""
    text = message.text_for(sub.protocol)
    if sub.settings.raw:
        return text
    parts = message.envelopes.get(sub.protocol)
    if parts is None:
        parts = message.envelopes[sub.protocol] = _envelope(message, text, arns, base_url)
    head, tail = parts
    return f"{head}, {_unsubscribe(base_url, arns.subscription(sub.topic, sub.uuid))}{tail}"


def _envelope(message: Message, text: str, arns: Arns, base_url: str) -> tuple[str, str]:
    """The envelope's JSON before and after its UnsubscribeURL (SNS's key order)."""
    body: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": message.message_id,
        "TopicArn": arns.topic(message.topic),
    }
    if message.subject is not None:
        body["Subject"] = message.subject
    body["Message"] = text
    body["Timestamp"] = timestamp(message.published)
    _signed(body, base_url)
    tail = "}"
    if message.attributes:
        attributes = {
            name: {"Type": kind, "Value": value}
            for name, (kind, value) in message.attributes.items()
        }
        tail = f', "MessageAttributes": {json.dumps(attributes)}}}'
    return json.dumps(body)[:-1], tail


@functools.lru_cache(maxsize=4096)
def _unsubscribe(base_url: str, subscription_arn: str) -> str:
    """The `"UnsubscribeURL": ...` member of a subscription's envelopes."""
    url = f"{base_url}/?Action=Unsubscribe&SubscriptionArn={quote(subscription_arn, safe='')}"
    return f'"UnsubscribeURL": {json.dumps(url)}'


def confirmation(sub: Subscription, arns: Arns, base_url: str, message_id: str, now: float) -> str:
    """The ``SubscriptionConfirmation`` an http subscription gets first."""
    topic_arn = arns.topic(sub.topic)
    url = (
        f"{base_url}/?Action=ConfirmSubscription&TopicArn={quote(topic_arn, safe='')}"
        f"&Token={sub.token}"
    )
    body: dict[str, Any] = {
        "Type": "SubscriptionConfirmation",
        "MessageId": message_id,
        "Token": sub.token,
        "TopicArn": topic_arn,
        "Message": (
            f"You have chosen to subscribe to the topic {topic_arn}.\n"
            "To confirm the subscription, visit the SubscribeURL included in this message."
        ),
        "SubscribeURL": url,
        "Timestamp": timestamp(now),
    }
    return json.dumps(_signed(body, base_url))
