"""The SNS query protocol, as boto3 and the other AWS SDKs speak it to SNS.

A request is a form (``application/x-www-form-urlencoded``) ``POST /`` with ``Action``,
``Version=2010-03-31`` and the action's parameters, flattened the query way::

    Attributes.entry.1.key=DisplayName&Attributes.entry.1.value=Shop
    MessageAttributes.entry.1.Name=amount&MessageAttributes.entry.1.Value.DataType=Number
        &MessageAttributes.entry.1.Value.StringValue=120
    PublishBatchRequestEntries.member.1.Id=a&PublishBatchRequestEntries.member.1.Message=...

A ``GET`` with the parameters in the query string is the same request (the SubscribeURL and
UnsubscribeURL a subscriber visits). The answer is XML: ``<{Action}Response>`` with a
``<{Action}Result>`` and ``<ResponseMetadata><RequestId>``; an error is ``<ErrorResponse>``
with ``<Error><Type>Sender</Type><Code>...`` and the error's HTTP status (errors.py).
Signatures are accepted and not checked.

Actions: CreateTopic, DeleteTopic, ListTopics, GetTopicAttributes, SetTopicAttributes,
Subscribe, ConfirmSubscription, Unsubscribe, ListSubscriptions, ListSubscriptionsByTopic,
GetSubscriptionAttributes, SetSubscriptionAttributes, Publish, PublishBatch.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from targets.pubsub.errors import (
    BatchEntryIdsNotDistinct,
    BatchRequestTooLong,
    EmptyBatchRequest,
    InvalidAction,
    InvalidBatchEntryId,
    InvalidParameter,
    SnsError,
    TooManyEntriesInBatchRequest,
)
from targets.pubsub.model import (
    MAX_BATCH,
    MAX_MESSAGE_BYTES,
    Message,
    check_attributes,
    check_publish,
)
from targets.pubsub.store import TopicStore

NAMESPACE: Final = "http://sns.amazonaws.com/doc/2010-03-31/"
CONTENT_TYPE: Final = b"text/xml"
_BATCH_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,80}")

Params = dict[str, str]


class Entries(dict[str, str]):
    """A map the query protocol writes as ``<entry><key>..</key><value>..</value></entry>``."""


def _xml(name: str, value: Any) -> str:
    if isinstance(value, Entries):
        inner = "".join(
            f"<entry><key>{escape(k)}</key><value>{escape(v)}</value></entry>"
            for k, v in value.items()
        )
    elif isinstance(value, Mapping):
        inner = "".join(_xml(k, v) for k, v in value.items() if v is not None)
    elif isinstance(value, list):
        inner = "".join(_xml("member", v) for v in value)
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    else:
        inner = escape(str(value))
    return f"<{name}>{inner}</{name}>"


def response(action: str, result: Mapping[str, Any] | None) -> bytes:
    request_id = str(uuid.uuid4())
    body = _xml(f"{action}Result", result) if result is not None else ""
    meta = f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
    return (f'<{action}Response xmlns="{NAMESPACE}">{body}{meta}</{action}Response>').encode()


def error_response(error: SnsError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    kind = "Sender" if error.sender_fault else "Receiver"
    body = (
        f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{kind}</Type>'
        f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
        f"</Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return error.status, [(b"content-type", CONTENT_TYPE)], body.encode()


def parse_form(data: bytes | str) -> Params:
    text = data.decode() if isinstance(data, bytes) else data
    return dict(parse_qsl(text, keep_blank_values=True))


def _entries(params: Params, prefix: str, key: str = "key", value: str = "value") -> Params:
    """``prefix.entry.N.key`` / ``.value`` pairs as a dict."""
    found: Params = {}
    n = 1
    while f"{prefix}.entry.{n}.{key}" in params:
        found[params[f"{prefix}.entry.{n}.{key}"]] = params.get(f"{prefix}.entry.{n}.{value}", "")
        n += 1
    return found


def _message_attributes(params: Params, prefix: str) -> dict[str, tuple[str, str | None]]:
    found: dict[str, tuple[str, str | None]] = {}
    n = 1
    while f"{prefix}.entry.{n}.Name" in params:
        at = f"{prefix}.entry.{n}"
        kind = params.get(f"{at}.Value.DataType", "")
        value = params.get(f"{at}.Value.StringValue", params.get(f"{at}.Value.BinaryValue"))
        found[params[f"{at}.Name"]] = (kind, value)
        n += 1
    return found


def _required(params: Params, key: str) -> str:
    value = params.get(key)
    if value is None or value == "":
        raise InvalidParameter(f"{key}: required parameter missing")
    return value


def _subscription_member(store: TopicStore, sub: Any) -> dict[str, str]:
    return {
        "SubscriptionArn": sub.arn(store.arns),
        "Owner": store.arns.account_id,
        "Protocol": sub.protocol,
        "Endpoint": sub.endpoint,
        "TopicArn": store.arns.topic(sub.topic),
    }


class SnsProtocol:
    """One call of the query protocol against the store; ``on_subscribe`` is told about
    each subscription Subscribe answers with (the service declares its metrics and, while
    it is pending, has its confirmation sent)."""

    def __init__(
        self,
        store: TopicStore,
        clock: Callable[[], float],
        on_subscribe: Callable[[Any], None] = lambda sub: None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.on_subscribe = on_subscribe
        self._actions: dict[str, Callable[[Params], Mapping[str, Any] | None]] = {
            "CreateTopic": self.create_topic,
            "DeleteTopic": self.delete_topic,
            "ListTopics": self.list_topics,
            "GetTopicAttributes": self.get_topic_attributes,
            "SetTopicAttributes": self.set_topic_attributes,
            "Subscribe": self.subscribe,
            "ConfirmSubscription": self.confirm_subscription,
            "Unsubscribe": self.unsubscribe,
            "ListSubscriptions": self.list_subscriptions,
            "ListSubscriptionsByTopic": self.list_subscriptions_by_topic,
            "GetSubscriptionAttributes": self.get_subscription_attributes,
            "SetSubscriptionAttributes": self.set_subscription_attributes,
            "Publish": self.publish,
            "PublishBatch": self.publish_batch,
        }

    def call(self, params: Params) -> tuple[str, bytes]:
        """The action's name and its XML answer (SnsError for an error answer)."""
        action = params.get("Action", "")
        handler = self._actions.get(action)
        if handler is None:
            raise InvalidAction(f"Action: {action or '(none)'} is not valid for this endpoint")
        return action, response(action, handler(params))

    # --- topics ---

    def create_topic(self, p: Params) -> Mapping[str, Any]:
        arn = self.store.create_topic(_required(p, "Name"), _entries(p, "Attributes"), self.clock())
        return {"TopicArn": arn}

    def delete_topic(self, p: Params) -> None:
        self.store.delete_topic(_required(p, "TopicArn"))

    def list_topics(self, p: Params) -> Mapping[str, Any]:
        arns, token = self.store.list_topics(p.get("NextToken"))
        return {"Topics": [{"TopicArn": a} for a in arns], "NextToken": token}

    def get_topic_attributes(self, p: Params) -> Mapping[str, Any]:
        return {"Attributes": Entries(self.store.topic_attributes(_required(p, "TopicArn")))}

    def set_topic_attributes(self, p: Params) -> None:
        self.store.set_topic_attribute(
            _required(p, "TopicArn"), _required(p, "AttributeName"), p.get("AttributeValue", "")
        )

    # --- subscriptions ---

    def subscribe(self, p: Params) -> Mapping[str, Any]:
        sub = self.store.subscribe(
            _required(p, "TopicArn"),
            _required(p, "Protocol"),
            p.get("Endpoint"),
            _entries(p, "Attributes"),
            now=self.clock(),
        )
        self.on_subscribe(sub)
        show = sub.confirmed or p.get("ReturnSubscriptionArn", "").lower() == "true"
        arn = self.store.arns.subscription(sub.topic, sub.uuid)
        return {"SubscriptionArn": arn if show else "pending confirmation"}

    def confirm_subscription(self, p: Params) -> Mapping[str, Any]:
        sub = self.store.confirm(_required(p, "TopicArn"), _required(p, "Token"), self.clock())
        return {"SubscriptionArn": self.store.arns.subscription(sub.topic, sub.uuid)}

    def unsubscribe(self, p: Params) -> None:
        self.store.unsubscribe(_required(p, "SubscriptionArn"))

    def list_subscriptions(self, p: Params) -> Mapping[str, Any]:
        subs, token = self.store.list_subscriptions(None, p.get("NextToken"))
        return {
            "Subscriptions": [_subscription_member(self.store, s) for s in subs],
            "NextToken": token,
        }

    def list_subscriptions_by_topic(self, p: Params) -> Mapping[str, Any]:
        subs, token = self.store.list_subscriptions(_required(p, "TopicArn"), p.get("NextToken"))
        return {
            "Subscriptions": [_subscription_member(self.store, s) for s in subs],
            "NextToken": token,
        }

    def get_subscription_attributes(self, p: Params) -> Mapping[str, Any]:
        sub = self.store.subscription(_required(p, "SubscriptionArn"))
        return {"Attributes": Entries(sub.view(self.store.arns))}

    def set_subscription_attributes(self, p: Params) -> None:
        self.store.set_subscription_attribute(
            _required(p, "SubscriptionArn"),
            _required(p, "AttributeName"),
            p.get("AttributeValue", ""),
        )

    # --- publish ---

    def _message(self, p: Params, prefix: str, topic: str, now: float) -> Message:
        text = p.get(f"{prefix}Message")
        subject = p.get(f"{prefix}Subject")
        per_protocol = check_publish(text, subject, p.get(f"{prefix}MessageStructure"), prefix)
        attributes = check_attributes(
            _message_attributes(p, f"{prefix}MessageAttributes"), f"{prefix}MessageAttributes"
        )
        assert text is not None
        return Message(
            str(uuid.uuid4()),
            topic,
            text,
            now,
            subject,
            attributes,
            per_protocol,
            p.get(f"{prefix}MessageGroupId"),
        )

    def publish(self, p: Params) -> Mapping[str, Any]:
        arn = p.get("TopicArn") or p.get("TargetArn")
        if not arn:
            raise InvalidParameter("TopicArn or TargetArn: one is required")
        topic = self.store.topic(arn)
        message = self._message(p, "", topic.name, self.clock())
        self.store.publish(arn, [message])
        return {"MessageId": message.message_id}

    def publish_batch(self, p: Params) -> Mapping[str, Any]:
        arn = _required(p, "TopicArn")
        topic = self.store.topic(arn)
        prefix = "PublishBatchRequestEntries.member"
        count = 0
        while f"{prefix}.{count + 1}.Id" in p:
            count += 1
        if count == 0:
            raise EmptyBatchRequest("PublishBatchRequestEntries: the batch is empty")
        if count > MAX_BATCH:
            raise TooManyEntriesInBatchRequest(
                f"PublishBatchRequestEntries: {count} entries, at most {MAX_BATCH}"
            )
        ids = [p[f"{prefix}.{n}.Id"] for n in range(1, count + 1)]
        if len(set(ids)) != len(ids):
            raise BatchEntryIdsNotDistinct("PublishBatchRequestEntries: two entries share an Id")
        for entry_id in ids:
            if not _BATCH_ID.fullmatch(entry_id):
                raise InvalidBatchEntryId(f"PublishBatchRequestEntries: bad Id {entry_id!r}")
        total = sum(len(p.get(f"{prefix}.{n}.Message", "").encode()) for n in range(1, count + 1))
        if total > MAX_MESSAGE_BYTES:
            raise BatchRequestTooLong(
                f"PublishBatchRequestEntries: {total} bytes in all, at most {MAX_MESSAGE_BYTES}"
            )
        now = self.clock()
        accepted: list[tuple[str, Message]] = []
        failed: list[dict[str, Any]] = []
        for n, entry_id in enumerate(ids, start=1):
            try:
                accepted.append((entry_id, self._message(p, f"{prefix}.{n}.", topic.name, now)))
            except SnsError as error:
                failed.append(
                    {
                        "Id": entry_id,
                        "Code": error.code,
                        "Message": error.message,
                        "SenderFault": error.sender_fault,
                    }
                )
        if accepted:
            self.store.publish(arn, [m for _, m in accepted])
        return {
            "Successful": [{"Id": i, "MessageId": m.message_id} for i, m in accepted],
            "Failed": failed,
        }
