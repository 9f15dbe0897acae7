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

Routing is the shared router's (targets/http/router.py): one route per path above, the most
specific winning (``/messages/delete`` over ``/messages/{receipt}``), then the route's table
of methods (``PlainApi.handlers``). Segments are percent-decoded before matching, so a
queue name or handle holding ``%2F`` stays one segment; empty segments do not count.

Success is 200. Errors are ``{"error": "<SQS code>", "message": "..."}``: 404 for an unknown
queue (``QueueDoesNotExist``) or path (``NotFound``), 405 for a method a path does not take
(``MethodNotAllowed``), 400 for the rest, with SQS's codes (``ReceiptHandleIsInvalid``,
``InvalidParameterValue``, ``MissingParameter``, ``SerializationException`` for a body
that is not a JSON object, ...). The OpenAPI 3.1 document (``openapi.py``) is served at
``GET /openapi.json``; tests/queue/test_openapi.py holds it to these routes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qs, unquote

from targets.http.router import Route, Router
from targets.queue.errors import (
    InvalidParameterValue,
    MissingParameter,
    QueueDoesNotExist,
    QueueError,
    ResourceNotFoundException,
)
from targets.queue.poll import LongPoller
from targets.queue.rules import BatchResult, ReceiptEntry, SendEntry
from targets.queue.sqs import SerializationException
from targets.queue.store import QueueStore

PREFIX: Final = "/queues"
_RECEIVE_ATTRIBUTES: Final = ("ApproximateReceiveCount", "SentTimestamp")

Reply = tuple[int, Any]
Params = Mapping[str, str]  # the path's {name} and {receipt}
Handler = Callable[[Params, str, bytes], Awaitable[Reply]]  # (params, query, body)

ROUTER: Final = Router(
    [
        Route("queues", "/queues", match="exact"),
        Route("queue", "/queues/{name}"),
        Route("purge", "/queues/{name}/purge"),
        Route("messages", "/queues/{name}/messages"),
        Route("delete-batch", "/queues/{name}/messages/delete"),
        Route("message", "/queues/{name}/messages/{receipt}"),
        Route("visibility", "/queues/{name}/messages/{receipt}/visibility"),
        Route("dead-letter-sources", "/queues/{name}/dead-letter-sources"),
        Route("redrive", "/queues/{name}/redrive"),
    ]
)


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


def _attributes(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise InvalidParameterValue("attributes: must be an object")
    return value


class PlainApi:
    def __init__(self, store: QueueStore, poller: LongPoller) -> None:
        self.store = store
        self.poller = poller
        # route name -> method -> handler: a method a route lacks is 405
        self.handlers: dict[str, dict[str, Handler]] = {
            "queues": {"GET": self.list_queues},
            "queue": {
                "GET": self.get_queue,
                "PUT": self.create_queue,
                "PATCH": self.set_queue_attributes,
                "DELETE": self.delete_queue,
            },
            "purge": {"POST": self.purge_queue},
            "messages": {"GET": self.receive, "POST": self.send},
            "delete-batch": {"POST": self.delete_batch},
            "message": {"DELETE": self.delete},
            "visibility": {"PUT": self.change_visibility},
            "dead-letter-sources": {"GET": self.dead_letter_sources},
            "redrive": {"POST": self.redrive},
        }

    async def call(self, method: str, path: str, query: str, body: bytes) -> Reply:
        """Route one request; ``QueueError`` and ``HttpProblem`` become error replies."""
        try:
            segments = tuple(unquote(s) for s in path.split("/") if s)
            route = ROUTER.find(method, segments)
            if route is None:
                raise HttpProblem(404, "NotFound", f"path: no route for {path!r}")
            handler = self.handlers[route.name].get(method)
            if handler is None:
                raise HttpProblem(405, "MethodNotAllowed", f"method: {method} not allowed here")
            return await handler(route.params(segments), query, body)
        except (QueueError, HttpProblem) as error:
            return error_reply(error)

    # --- queues ---

    async def list_queues(self, path: Params, query: str, body: bytes) -> Reply:
        return 200, {"queues": self.store.list_queues()}

    async def get_queue(self, path: Params, query: str, body: bytes) -> Reply:
        name = path["name"]
        return 200, {"name": name, "attributes": self.store.get_queue_attributes(name)}

    async def create_queue(self, path: Params, query: str, body: bytes) -> Reply:
        attributes = _json_object(body, required=False).get("attributes") or {}
        return 200, {"name": self.store.create_queue(path["name"], _attributes(attributes))}

    async def set_queue_attributes(self, path: Params, query: str, body: bytes) -> Reply:
        attributes = _json_object(body, required=True).get("attributes") or {}
        self.store.set_queue_attributes(path["name"], _attributes(attributes))
        return 200, {"name": path["name"]}

    async def delete_queue(self, path: Params, query: str, body: bytes) -> Reply:
        self.store.delete_queue(path["name"])
        return 200, {"deleted": path["name"]}

    async def purge_queue(self, path: Params, query: str, body: bytes) -> Reply:
        self.store.purge_queue(path["name"])
        return 200, {"purged": path["name"]}

    async def dead_letter_sources(self, path: Params, query: str, body: bytes) -> Reply:
        return 200, {"queues": self.store.list_dead_letter_source_queues(path["name"])}

    async def redrive(self, path: Params, query: str, body: bytes) -> Reply:
        p = _json_object(body, required=False)
        return 200, {"moved": self.store.redrive(path["name"], p.get("to"), p.get("limit"))}

    # --- messages ---

    async def send(self, path: Params, query: str, body: bytes) -> Reply:
        name, p = path["name"], _json_object(body, required=True)
        if "messages" in p:
            items = p["messages"]
            if not isinstance(items, list) or not all(isinstance(m, dict) for m in items):
                raise InvalidParameterValue("messages: must be a list of objects")
            entries = [
                SendEntry(str(i), m.get("body"), m.get("delay_seconds"))
                for i, m in enumerate(items)
            ]
            result = self.store.send_message_batch(name, entries)
            ok = [{"index": int(r.id), "message_id": r.message_id} for r in result.successful]
            return 200, _batch_reply(result, ok)
        sent = self.store.send_message(name, p.get("body"), p.get("delay_seconds"))  # type: ignore[arg-type]
        return 200, {"message_id": sent.message_id, "md5_of_body": sent.md5_of_message_body}

    async def receive(self, path: Params, query: str, body: bytes) -> Reply:
        q = parse_qs(query)
        maximum = _query_int(q, "max")
        received = await self.poller.receive(
            path["name"],
            1 if maximum is None else maximum,
            visibility_timeout=_query_int(q, "visibility"),
            wait_time_seconds=_query_int(q, "wait"),
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

    async def delete(self, path: Params, query: str, body: bytes) -> Reply:
        self.store.delete_message(path["name"], path["receipt"])
        return 200, {"deleted": True}

    async def delete_batch(self, path: Params, query: str, body: bytes) -> Reply:
        handles = _json_object(body, required=True).get("receipt_handles")
        if not isinstance(handles, list):
            raise MissingParameter("receipt_handles: a list of receipt handles is required")
        entries = [ReceiptEntry(str(i), str(h)) for i, h in enumerate(handles)]
        result = self.store.delete_message_batch(path["name"], entries)
        return 200, _batch_reply(result, [{"index": int(i)} for i in result.successful])

    async def change_visibility(self, path: Params, query: str, body: bytes) -> Reply:
        p = _json_object(body, required=True)
        if "timeout" not in p:
            raise MissingParameter("timeout: the request must contain it")
        self.store.change_message_visibility(path["name"], path["receipt"], p["timeout"])
        return 200, {"visibility_timeout": p["timeout"]}
