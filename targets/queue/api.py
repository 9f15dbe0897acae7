"""The plain JSON API: the same engine calls as the SQS protocol, for people and workers.

Every body is JSON; every answer is JSON. Queue names are SQS's (1..80 of A-Z a-z 0-9 _ -);
receipt handles are URL-safe, so they go in paths as they are.

=======  =====================================  ===============================================
method   path                                   what
=======  =====================================  ===============================================
GET      /queues                                ``{"queues": [name, ...]}``
PUT      /queues/{name}                         create (idempotent); body optional:
                                                ``{"attributes": {"VisibilityTimeout": 30}}``
                                                -> ``{"name": name}``
GET      /queues/{name}                         ``{"name", "attributes": {...}}`` (every SQS
                                                attribute, counts included)
PATCH    /queues/{name}                         ``{"attributes": {...}}``: SetQueueAttributes
DELETE   /queues/{name}                         delete the queue and its messages
POST     /queues/{name}/purge                   PurgeQueue (once per 60 s)
POST     /queues/{name}/messages                ``{"body": "...", "delay_seconds": 0}``
                                                -> ``{"message_id", "md5_of_body"}``; or a
                                                batch ``{"messages": [{"body", "delay_seconds"},
                                                ...]}`` (1..10) -> ``{"successful": [{"index",
                                                "message_id"}], "failed": [{"index", "error",
                                                "message"}]}``
GET      /queues/{name}/messages?max=10&wait=20&visibility=30
                                                receive (long polling when ``wait`` > 0; the
                                                queue's default wait otherwise) ->
                                                ``{"messages": [{"message_id",
                                                "receipt_handle", "body", "receive_count",
                                                "sent_timestamp"}]}``
DELETE   /queues/{name}/messages/{receipt}      delete by the latest receipt handle
POST     /queues/{name}/messages/delete         ``{"receipt_handles": [...]}`` (1..10) ->
                                                batch result as above
PUT      /queues/{name}/messages/{receipt}/visibility
                                                ``{"timeout": 0}``: ChangeMessageVisibility
GET      /queues/{name}/dead-letter-sources     ``{"queues": [...]}`` whose DLQ this is
POST     /queues/{name}/redrive                 move the DLQ's visible messages back to their
                                                source queues (or ``{"to": name}``), up to
                                                ``{"limit": n}`` -> ``{"moved": n}``
=======  =====================================  ===============================================

Success is 200. Errors are ``{"error": "<SQS code>", "message": "..."}``: 404 for an unknown
queue (``QueueDoesNotExist``) or path (``NotFound``), 405 for a method a path does not take
(``MethodNotAllowed``), 400 for the rest, with SQS's codes (``ReceiptHandleIsInvalid``,
``InvalidParameterValue``, ``MissingParameter``, ``SerializationException`` for a body
that is not a JSON object, ...). The OpenAPI 3.1 document (``openapi.py``) is served at
``GET /openapi.json``; tests/queue/test_openapi.py holds it to these routes.
"""

from __future__ import annotations

import json
from typing import Any, Final
from urllib.parse import parse_qs, unquote

from targets.queue.errors import (
    InvalidParameterValue,
    MissingParameter,
    QueueDoesNotExist,
    QueueError,
    ResourceNotFoundException,
)
from targets.queue.poll import LongPoller
from targets.queue.sqs import SerializationException
from targets.queue.store import (
    BatchResult,
    QueueStore,
    ReceiptEntry,
    SendEntry,
)

PREFIX: Final = "/queues"
_RECEIVE_ATTRIBUTES: Final = ("ApproximateReceiveCount", "SentTimestamp")

Reply = tuple[int, Any]


class HttpProblem(Exception):
    """A request the routing refuses (unknown path or method)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def error_reply(error: QueueError | HttpProblem) -> Reply:
    if isinstance(error, HttpProblem):
        return error.status, {"error": error.error, "message": error.message}
    status = 404 if isinstance(error, QueueDoesNotExist | ResourceNotFoundException) else 400
    return status, {"error": error.code, "message": error.message}


def _json_object(body: bytes, required: bool) -> dict[str, Any]:
    if not body.strip():
        if required:
            raise SerializationException("body: a JSON object is required")
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SerializationException(f"body: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise SerializationException("body: expected a JSON object")
    return value


def _query_int(query: dict[str, list[str]], key: str) -> int | None:
    values = query.get(key)
    if not values:
        return None
    try:
        return int(values[-1])
    except ValueError:
        raise InvalidParameterValue(f"{key}: must be an integer, got {values[-1]!r}") from None


def _batch_reply(result: BatchResult[Any], successful: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "successful": successful,
        "failed": [
            {"index": int(f.id), "error": f.code, "message": f.message} for f in result.failed
        ],
    }


class PlainApi:
    def __init__(self, store: QueueStore, poller: LongPoller) -> None:
        self.store = store
        self.poller = poller

    async def call(self, method: str, path: str, query: str, body: bytes) -> Reply:
        """Route one request; ``QueueError`` and ``HttpProblem`` become error replies."""
        try:
            return await self._route(method, path, query, body)
        except (QueueError, HttpProblem) as error:
            return error_reply(error)

    async def _route(self, method: str, path: str, query: str, body: bytes) -> Reply:
        parts = [unquote(p) for p in path.removeprefix(PREFIX).strip("/").split("/") if p]
        store = self.store
        if not parts:
            _allow(method, "GET")
            return 200, {"queues": store.list_queues()}
        name, rest = parts[0], parts[1:]
        if not rest:
            return self._queue(method, name, body)
        if rest == ["purge"]:
            _allow(method, "POST")
            store.purge_queue(name)
            return 200, {"purged": name}
        if rest == ["dead-letter-sources"]:
            _allow(method, "GET")
            return 200, {"queues": store.list_dead_letter_source_queues(name)}
        if rest == ["redrive"]:
            _allow(method, "POST")
            p = _json_object(body, required=False)
            return 200, {"moved": store.redrive(name, p.get("to"), p.get("limit"))}
        if rest == ["messages"]:
            if method == "GET":
                return await self._receive(name, parse_qs(query))
            _allow(method, "POST")
            return self._send(name, _json_object(body, required=True))
        if rest == ["messages", "delete"]:
            _allow(method, "POST")
            return self._delete_batch(name, _json_object(body, required=True))
        if len(rest) == 2 and rest[0] == "messages":
            _allow(method, "DELETE")
            store.delete_message(name, rest[1])
            return 200, {"deleted": True}
        if len(rest) == 3 and rest[0] == "messages" and rest[2] == "visibility":
            _allow(method, "PUT")
            p = _json_object(body, required=True)
            if "timeout" not in p:
                raise MissingParameter("timeout: the request must contain it")
            store.change_message_visibility(name, rest[1], p["timeout"])
            return 200, {"visibility_timeout": p["timeout"]}
        raise HttpProblem(404, "NotFound", f"path: no route for {path!r}")

    def _queue(self, method: str, name: str, body: bytes) -> Reply:
        store = self.store
        if method == "GET":
            return 200, {"name": name, "attributes": store.get_queue_attributes(name)}
        if method == "PUT":
            attributes = _json_object(body, required=False).get("attributes") or {}
            return 200, {"name": store.create_queue(name, _attributes(attributes))}
        if method == "PATCH":
            attributes = _json_object(body, required=True).get("attributes") or {}
            store.set_queue_attributes(name, _attributes(attributes))
            return 200, {"name": name}
        _allow(method, "DELETE")
        store.delete_queue(name)
        return 200, {"deleted": name}

    def _send(self, name: str, p: dict[str, Any]) -> Reply:
        store = self.store
        if "messages" in p:
            items = p["messages"]
            if not isinstance(items, list) or not all(isinstance(m, dict) for m in items):
                raise InvalidParameterValue("messages: must be a list of objects")
            entries = [
                SendEntry(str(i), m.get("body"), m.get("delay_seconds"))
                for i, m in enumerate(items)
            ]
            result = store.send_message_batch(name, entries)
            ok = [{"index": int(r.id), "message_id": r.message_id} for r in result.successful]
            return 200, _batch_reply(result, ok)
        sent = store.send_message(name, p.get("body"), p.get("delay_seconds"))  # type: ignore[arg-type]
        return 200, {"message_id": sent.message_id, "md5_of_body": sent.md5_of_message_body}

    async def _receive(self, name: str, query: dict[str, list[str]]) -> Reply:
        maximum = _query_int(query, "max")
        received = await self.poller.receive(
            name,
            1 if maximum is None else maximum,
            visibility_timeout=_query_int(query, "visibility"),
            wait_time_seconds=_query_int(query, "wait"),
            attribute_names=_RECEIVE_ATTRIBUTES,
        )
        return 200, {
            "messages": [
                {
                    "message_id": m.message_id,
                    "receipt_handle": m.receipt_handle,
                    "body": m.body,
                    "receive_count": int(m.attributes["ApproximateReceiveCount"]),
                    "sent_timestamp": int(m.attributes["SentTimestamp"]) / 1000,
                }
                for m in received.messages
            ]
        }

    def _delete_batch(self, name: str, p: dict[str, Any]) -> Reply:
        handles = p.get("receipt_handles")
        if not isinstance(handles, list):
            raise MissingParameter("receipt_handles: a list of receipt handles is required")
        entries = [ReceiptEntry(str(i), str(h)) for i, h in enumerate(handles)]
        result = self.store.delete_message_batch(name, entries)
        return 200, _batch_reply(result, [{"index": int(i)} for i in result.successful])


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise HttpProblem(405, "MethodNotAllowed", f"method: {method} not allowed here")


def _attributes(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise InvalidParameterValue("attributes: must be an object")
    return value
