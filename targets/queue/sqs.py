"""The SQS JSON protocol (what boto3 >= 1.34 and the other current AWS SDKs speak).

A request is ``POST /`` (any path) with ``Content-Type: application/x-amz-json-1.0``,
``X-Amz-Target: AmazonSQS.<Action>`` and a JSON object of the API's parameters; the answer
is a JSON object of the API's result members (same content type). Signatures
(``Authorization: AWS4-HMAC-SHA256 ...``) are accepted and not checked.

Actions: CreateQueue, GetQueueUrl, ListQueues, DeleteQueue, GetQueueAttributes,
SetQueueAttributes, PurgeQueue, SendMessage, SendMessageBatch, ReceiveMessage (long polling
through ``LongPoller``), DeleteMessage, DeleteMessageBatch, ChangeMessageVisibility,
ChangeMessageVisibilityBatch, ListDeadLetterSourceQueues, StartMessageMoveTask (see
``MoveTasks``). Queue URLs are ``http://<Host header>/<account id>/<name>``; a request's
``QueueUrl`` is reduced to its last path segment, so a URL with another host still works.

Errors (HTTP 400, as the awsJson1_0 protocol with awsQueryCompatible, the way SQS sends
them)::

    {"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "QueueUrl: ..."}
    x-amzn-query-error: AWS.SimpleQueueService.NonExistentQueue;Sender

botocore maps the header's code to the modelled exception
(``client.exceptions.QueueDoesNotExist``) and reports it as ``Error.Code``. Protocol errors:

* unknown or missing ``X-Amz-Target`` action -> ``InvalidAction`` (SQS's common error);
* a body that is not a JSON object -> ``SerializationException`` (what awsJson services
  answer for a body they cannot deserialize; botocore reports that code);
* a parameter of the wrong JSON type -> ``InvalidParameterValue``, a required one absent ->
  ``MissingParameter``.

Nothing here keeps state across requests but the move tasks; the engine does the work.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, cast

from targets.queue.config import parse_int
from targets.queue.errors import (
    InvalidParameterValue,
    MissingParameter,
    QueueError,
    ResourceNotFoundException,
)
from targets.queue.messages import MessageAttribute
from targets.queue.poll import LongPoller
from targets.queue.rules import (
    BatchResult,
    ReceiptEntry,
    ReceivedMessage,
    SendEntry,
    SendResult,
    VisibilityEntry,
    list_limit,
)
from targets.queue.store import QueueStore

log = logging.getLogger(__name__)

CONTENT_TYPE: Final = b"application/x-amz-json-1.0"
TARGET_PREFIX: Final = "AmazonSQS."
ERROR_NAMESPACE: Final = "com.amazonaws.sqs#"
_HEADERS: Final = [(b"content-type", CONTENT_TYPE)]

Params = Mapping[str, Any]
Result = dict[str, Any]


class ProtocolError(QueueError):
    """An error of the protocol layer (not the engine's): unknown action, bad JSON."""

    namespace = ERROR_NAMESPACE


class InvalidAction(ProtocolError):
    code = "InvalidAction"
    query_code = "InvalidAction"


class SerializationException(ProtocolError):
    code = "SerializationException"
    query_code = ""  # no query-protocol twin: botocore reports SerializationException
    namespace = "com.amazon.coral.service#"


def error_response(error: QueueError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of an error, as SQS's JSON protocol sends it."""
    namespace = getattr(error, "namespace", ERROR_NAMESPACE)
    body = json.dumps({"__type": namespace + error.code, "message": error.message}).encode()
    headers = list(_HEADERS)
    if error.query_code:
        fault = "Sender" if error.sender_fault else "Receiver"
        headers.append((b"x-amzn-query-error", f"{error.query_code};{fault}".encode()))
    return error.status, headers, body


# --- parameters -------------------------------------------------------------------------


def _get(params: Params, key: str, kind: type | tuple[type, ...], required: bool) -> Any:
    value = params.get(key)
    if value is None:
        if required:
            raise MissingParameter(f"{key}: the request must contain the parameter {key}")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise InvalidParameterValue(f"{key}: wrong type {type(value).__name__}")
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _str(params: Params, key: str) -> str:
    value: str = _get(params, key, str, True)
    if not value:
        raise MissingParameter(f"{key}: the request must contain the parameter {key}")
    return value


def _opt_str(params: Params, key: str) -> str | None:
    value: str | None = _get(params, key, str, False)
    return value


def _opt_int(params: Params, key: str) -> int | None:
    # Strings of digits pass through: the engine's range checks parse them.
    value: int | None = _get(params, key, (int, str), False)
    return value


def _names(params: Params, key: str) -> list[str]:
    value = _get(params, key, list, False) or []
    if not all(isinstance(v, str) for v in value):
        raise InvalidParameterValue(f"{key}: must be a list of strings")
    return list(value)


def _str_map(params: Params, key: str) -> dict[str, object]:
    value = _get(params, key, dict, False) or {}
    return dict(value)


def _entries(params: Params) -> list[Params]:
    entries = _get(params, "Entries", list, True)
    if not all(isinstance(e, dict) for e in entries):
        raise InvalidParameterValue("Entries: must be a list of objects")
    return list(entries)


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def _entry_id(entry: Params) -> str:
    value = entry.get("Id")
    return value if isinstance(value, str) else ""


def message_attributes(
    value: object, key: str = "MessageAttributes"
) -> dict[str, MessageAttribute]:
    """``{"name": {"DataType": ..., "StringValue"|"BinaryValue": ...}}`` -> engine values;
    ``BinaryValue`` is base64, as the JSON protocol carries blobs."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameterValue(f"{key}: must be an object")
    attributes: dict[str, MessageAttribute] = {}
    for name, spec in value.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("DataType"), str):
            raise InvalidParameterValue(f"{key}.{name}.DataType: a data type is required")
        string, binary = spec.get("StringValue"), spec.get("BinaryValue")
        if string is not None and not isinstance(string, str):
            raise InvalidParameterValue(f"{key}.{name}.StringValue: must be a string")
        raw: bytes | None = None
        if binary is not None:
            if not isinstance(binary, str):
                raise InvalidParameterValue(f"{key}.{name}.BinaryValue: must be base64")
            try:
                raw = base64.b64decode(binary, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidParameterValue(f"{key}.{name}.BinaryValue: not base64") from None
        attributes[name] = MessageAttribute(spec["DataType"], string, raw)
    return attributes


def _attributes_json(attributes: Mapping[str, MessageAttribute]) -> Result:
    out: Result = {}
    for name, attribute in attributes.items():
        if attribute.is_binary:
            value = base64.b64encode(attribute.binary_value or b"").decode()
            out[name] = {"DataType": attribute.data_type, "BinaryValue": value}
        else:
            out[name] = {"DataType": attribute.data_type, "StringValue": attribute.string_value}
    return out


def message_json(message: ReceivedMessage) -> Result:
    out: Result = {
        "MessageId": message.message_id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": message.md5_of_body,
        "Body": message.body,
    }
    if message.attributes:
        out["Attributes"] = message.attributes
    if message.message_attributes:
        out["MessageAttributes"] = _attributes_json(message.message_attributes)
        out["MD5OfMessageAttributes"] = message.md5_of_message_attributes
    return out


def _sent_json(result: SendResult, batch: bool) -> Result:
    out: Result = {"MessageId": result.message_id, "MD5OfMessageBody": result.md5_of_message_body}
    if result.md5_of_message_attributes is not None:
        out["MD5OfMessageAttributes"] = result.md5_of_message_attributes
    if batch:
        out["Id"] = result.id
    return out


def _batch_json(result: BatchResult[Any], successful: list[Result]) -> Result:
    return {
        "Successful": successful,
        "Failed": [
            {"Id": f.id, "SenderFault": f.sender_fault, "Code": f.code, "Message": f.message}
            for f in result.failed
        ],
    }


_ENCODE: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode(result: Result) -> bytes:
    return _ENCODE(result).encode()


def queue_name(url: str) -> str:
    """The queue a QueueUrl names: its last path segment."""
    return url.rstrip("/").rsplit("/", 1)[-1]


# --- StartMessageMoveTask ---------------------------------------------------------------


class MoveTasks:
    """StartMessageMoveTask as a simple redrive: without ``MaxNumberOfMessagesPerSecond``
    every visible message of the DLQ moves at once (in the request); with it, a task moves
    that many a second until the DLQ has no visible message left."""

    def __init__(self, store: QueueStore) -> None:
        self.store = store
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, dlq: str, to: str | None, rate: int | None) -> str:
        if rate is None:
            self.store.redrive(dlq, to)
        else:
            moved = self.store.redrive(dlq, to, rate)  # validates the rate and the queues
            if moved:
                task = asyncio.get_running_loop().create_task(self._run(dlq, to, rate))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return secrets.token_urlsafe(24)

    async def _run(self, dlq: str, to: str | None, rate: int) -> None:
        try:
            while True:
                await asyncio.sleep(1.0)
                if not self.store.redrive(dlq, to, rate):
                    return
        except QueueError as error:  # a queue deleted meanwhile ends the task
            log.info("message move task from %s ended: %s", dlq, error.message)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


# --- the actions ------------------------------------------------------------------------


class SqsProtocol:
    """One method per action: parameters in, result members out, ``QueueError`` raised."""

    def __init__(self, store: QueueStore, poller: LongPoller, moves: MoveTasks) -> None:
        self.store = store
        self.poller = poller
        self.moves = moves
        self.account_id = store.arns.account_id
        self.actions: dict[str, Callable[[Params, str], Awaitable[Result] | Result]] = {
            "CreateQueue": self.create_queue,
            "GetQueueUrl": self.get_queue_url,
            "ListQueues": self.list_queues,
            "DeleteQueue": self.delete_queue,
            "GetQueueAttributes": self.get_queue_attributes,
            "SetQueueAttributes": self.set_queue_attributes,
            "PurgeQueue": self.purge_queue,
            "SendMessage": self.send_message,
            "SendMessageBatch": self.send_message_batch,
            "ReceiveMessage": self.receive_message,
            "DeleteMessage": self.delete_message,
            "DeleteMessageBatch": self.delete_message_batch,
            "ChangeMessageVisibility": self.change_message_visibility,
            "ChangeMessageVisibilityBatch": self.change_message_visibility_batch,
            "ListDeadLetterSourceQueues": self.list_dead_letter_source_queues,
            "StartMessageMoveTask": self.start_message_move_task,
        }

    async def call(self, target: str | None, body: bytes, host: str) -> Result:
        """Run the action ``target`` names with the JSON ``body``; ``QueueError`` on error."""
        if not target or not target.startswith(TARGET_PREFIX):
            raise InvalidAction(f"X-Amz-Target: expected AmazonSQS.<Action>, got {target!r}")
        action = self.actions.get(target.removeprefix(TARGET_PREFIX))
        if action is None:
            raise InvalidAction(f"X-Amz-Target: {target!r} is not a valid action")
        try:
            params = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise SerializationException(f"body: not valid JSON ({exc})") from None
        if not isinstance(params, dict):
            raise SerializationException("body: expected a JSON object")
        result = action(params, host)
        if isinstance(result, Awaitable):
            result = await result
        return result

    def url(self, host: str, name: str) -> str:
        return f"http://{host}/{self.account_id}/{name}"

    def create_queue(self, p: Params, host: str) -> Result:
        name = self.store.create_queue(_str(p, "QueueName"), _str_map(p, "Attributes"))
        return {"QueueUrl": self.url(host, name)}

    def get_queue_url(self, p: Params, host: str) -> Result:
        return {"QueueUrl": self.url(host, self.store.get_queue_url(_str(p, "QueueName")))}

    def list_queues(self, p: Params, host: str) -> Result:
        names = self.store.list_queues(
            _opt_str(p, "QueueNamePrefix") or "", _opt_int(p, "MaxResults")
        )
        return {"QueueUrls": [self.url(host, n) for n in names]} if names else {}

    def delete_queue(self, p: Params, host: str) -> Result:
        self.store.delete_queue(queue_name(_str(p, "QueueUrl")))
        return {}

    def get_queue_attributes(self, p: Params, host: str) -> Result:
        name = queue_name(_str(p, "QueueUrl"))
        attributes = self.store.get_queue_attributes(name, _names(p, "AttributeNames"))
        return {"Attributes": attributes} if attributes else {}

    def set_queue_attributes(self, p: Params, host: str) -> Result:
        attributes = _get(p, "Attributes", dict, True)
        self.store.set_queue_attributes(queue_name(_str(p, "QueueUrl")), attributes)
        return {}

    def purge_queue(self, p: Params, host: str) -> Result:
        self.store.purge_queue(queue_name(_str(p, "QueueUrl")))
        return {}

    def send_message(self, p: Params, host: str) -> Result:
        result = self.store.send_message(
            queue_name(_str(p, "QueueUrl")),
            _get(p, "MessageBody", str, True),
            _opt_int(p, "DelaySeconds"),
            message_attributes(p.get("MessageAttributes")),
        )
        return _sent_json(result, batch=False)

    def send_message_batch(self, p: Params, host: str) -> Result:
        name = queue_name(_str(p, "QueueUrl"))
        entries = []
        for e in _entries(p):
            body = e.get("MessageBody")
            delay: Any = e.get("DelaySeconds")
            entries.append(
                SendEntry(
                    _entry_id(e),
                    body if isinstance(body, str) else "",
                    delay,
                    message_attributes(e.get("MessageAttributes")),
                )
            )
        result = self.store.send_message_batch(name, entries)
        return _batch_json(result, [_sent_json(r, batch=True) for r in result.successful])

    async def receive_message(self, p: Params, host: str) -> Result:
        received = await self.poller.receive(
            queue_name(_str(p, "QueueUrl")),
            _default(_opt_int(p, "MaxNumberOfMessages"), 1),
            visibility_timeout=_opt_int(p, "VisibilityTimeout"),
            wait_time_seconds=_opt_int(p, "WaitTimeSeconds"),
            attribute_names=[
                *_names(p, "AttributeNames"),
                *_names(p, "MessageSystemAttributeNames"),
            ],
            message_attribute_names=_names(p, "MessageAttributeNames"),
        )
        if not received.messages:
            return {}
        return {"Messages": [message_json(m) for m in received.messages]}

    def delete_message(self, p: Params, host: str) -> Result:
        self.store.delete_message(queue_name(_str(p, "QueueUrl")), _str(p, "ReceiptHandle"))
        return {}

    def delete_message_batch(self, p: Params, host: str) -> Result:
        name = queue_name(_str(p, "QueueUrl"))
        entries = [
            ReceiptEntry(_entry_id(e), str(e.get("ReceiptHandle") or "")) for e in _entries(p)
        ]
        result = self.store.delete_message_batch(name, entries)
        return _batch_json(result, [{"Id": i} for i in result.successful])

    def change_message_visibility(self, p: Params, host: str) -> Result:
        timeout = _opt_int(p, "VisibilityTimeout")
        if timeout is None:
            raise MissingParameter("VisibilityTimeout: the request must contain it")
        self.store.change_message_visibility(
            queue_name(_str(p, "QueueUrl")), _str(p, "ReceiptHandle"), timeout
        )
        return {}

    def change_message_visibility_batch(self, p: Params, host: str) -> Result:
        name = queue_name(_str(p, "QueueUrl"))
        entries = [
            VisibilityEntry(
                _entry_id(e),
                str(e.get("ReceiptHandle") or ""),
                cast(int, e.get("VisibilityTimeout")),
            )
            for e in _entries(p)
        ]
        result = self.store.change_message_visibility_batch(name, entries)
        return _batch_json(result, [{"Id": i} for i in result.successful])

    def list_dead_letter_source_queues(self, p: Params, host: str) -> Result:
        names = self.store.list_dead_letter_source_queues(queue_name(_str(p, "QueueUrl")))
        limit = list_limit(_opt_int(p, "MaxResults"))
        return {"queueUrls": [self.url(host, n) for n in names[:limit]]}

    def start_message_move_task(self, p: Params, host: str) -> Result:
        arns = self.store.arns
        source = _str(p, "SourceArn")
        dlq = arns.name_of(source) if source.startswith(arns.prefix) else None
        if dlq is None:
            raise ResourceNotFoundException(f"SourceArn: not a queue ARN, got {source!r}")
        destination = _opt_str(p, "DestinationArn")
        to = None
        if destination is not None:
            to = arns.name_of(destination) if destination.startswith(arns.prefix) else None
            if to is None:
                raise ResourceNotFoundException(
                    f"DestinationArn: not a queue ARN, got {destination!r}"
                )
        rate = _opt_int(p, "MaxNumberOfMessagesPerSecond")
        number = None if rate is None else parse_int(rate)
        if rate is not None and (number is None or number < 1):
            raise InvalidParameterValue(
                f"MaxNumberOfMessagesPerSecond: must be a positive integer, got {rate!r}"
            )
        handle = self.moves.start(dlq, to, number)
        return {"TaskHandle": handle}
