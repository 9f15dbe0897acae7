"""The plain JSON API's routing (targets/queue/api.py) in process: the route table is the
OpenAPI document's, unknown paths are 404, a method a path lacks is 405, segments are
decoded before matching. (test_openapi.py walks the same API on a real process.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from targets.queue.api import ROUTER, PlainApi
from targets.queue.openapi import document
from targets.queue.poll import LongPoller
from targets.queue.store import QueueStore


@pytest.fixture
def api(store: QueueStore) -> PlainApi:
    return PlainApi(store, LongPoller(store))


async def call(
    api: PlainApi, method: str, path: str, payload: Any = None, query: str = ""
) -> tuple[int, Any]:
    body = b"" if payload is None else json.dumps(payload).encode()
    return await api.call(method, path, query, body)


@pytest.mark.core
def test_the_routes_are_the_documented_operations(store: QueueStore) -> None:
    """Every (path, method) the router and handler tables serve is in the OpenAPI document,
    and the other way round."""
    api = PlainApi(store, LongPoller(store))
    routed = {(r.path, m.lower()) for r in ROUTER.routes for m in api.handlers[r.name]}
    paths = document()["paths"]
    documented = {(p, m) for p, ops in paths.items() for m in ops if m != "parameters"}
    assert routed == documented


@pytest.mark.inprocess
async def test_unknown_paths_are_not_found(api: PlainApi) -> None:
    """No route: 404 NotFound naming the path, also below a queue and past a prefix."""
    for path in ("/queues/q/nowhere", "/queues/q/messages/h/x/y", "/queuesfoo"):
        assert await call(api, "GET", path) == (
            404,
            {"error": "NotFound", "message": f"path: no route for {path!r}"},
        )


@pytest.mark.inprocess
async def test_a_method_a_path_lacks_is_405(api: PlainApi) -> None:
    """The path decides the route first: DELETE /messages/delete is 405, not a delete of a
    message whose handle is "delete"."""
    for method, path in [
        ("POST", "/queues"),
        ("HEAD", "/queues"),
        ("POST", "/queues/q"),
        ("DELETE", "/queues/q/messages/delete"),
        ("GET", "/queues/q/messages/handle"),
        ("POST", "/queues/q/messages/handle/visibility"),
        ("GET", "/queues/q/purge"),
    ]:
        assert await call(api, method, path) == (
            405,
            {"error": "MethodNotAllowed", "message": f"method: {method} not allowed here"},
        )


@pytest.mark.inprocess
async def test_segments_are_decoded_and_empty_ones_ignored(api: PlainApi) -> None:
    """%-escapes decode per segment (%2F stays inside the name); // and a trailing / are
    the same path."""
    assert await call(api, "PUT", "/queues/q") == (200, {"name": "q"})
    status, got = await call(api, "GET", "/queues//q/")
    assert (status, got["name"]) == (200, "q")
    status, sent = await call(api, "POST", "/queues/q/%6Dessages", {"body": "x"})
    assert (status, set(sent)) == (200, {"message_id", "md5_of_body"})
    status, got = await call(api, "GET", "/queues/q/messages", query="wait=20")
    assert [m["message_id"] for m in got["messages"]] == [sent["message_id"]]
    assert await call(api, "GET", "/queues/a%2Fb") == (
        404,
        {"error": "QueueDoesNotExist", "message": "QueueUrl: queue 'a/b' does not exist"},
    )
    assert await call(api, "GET", "/queues/") == (200, {"queues": ["q"]})


@pytest.mark.inprocess
async def test_a_round_trip_through_every_handler(api: PlainApi, store: QueueStore) -> None:
    """Create, send (one and a batch), receive, change visibility, delete (one and a
    batch), dead-letter sources, redrive, purge, delete the queue: the documented shapes."""
    assert await call(api, "PUT", "/queues/dlq") == (200, {"name": "dlq"})
    arn = store.arns.arn("dlq")
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2})
    attributes = {"attributes": {"RedrivePolicy": policy}}
    assert await call(api, "PUT", "/queues/q", {"attributes": {"VisibilityTimeout": 30}}) == (
        200,
        {"name": "q"},
    )
    assert await call(api, "PATCH", "/queues/q", attributes) == (200, {"name": "q"})
    status, info = await call(api, "GET", "/queues/q")
    assert status == 200
    assert json.loads(info["attributes"]["RedrivePolicy"]) == json.loads(policy)
    status, sent = await call(api, "POST", "/queues/q/messages", {"body": "one"})
    assert status == 200
    assert set(sent) == {"message_id", "md5_of_body"}
    batch = {"messages": [{"body": "two"}, {"body": ""}]}
    status, result = await call(api, "POST", "/queues/q/messages", batch)
    assert [s["index"] for s in result["successful"]] == [0]
    assert [(f["index"], f["error"]) for f in result["failed"]] == [(1, "MissingParameter")]
    status, got = await call(api, "GET", "/queues/q/messages", query="max=10&wait=20")
    assert sorted(m["body"] for m in got["messages"]) == ["one", "two"]
    assert {m["receive_count"] for m in got["messages"]} == {1}
    first, second = got["messages"]
    path = f"/queues/q/messages/{first['receipt_handle']}"
    assert await call(api, "PUT", path + "/visibility", {"timeout": 0}) == (
        200,
        {"visibility_timeout": 0},
    )
    assert await call(api, "PUT", path + "/visibility", {}) == (
        400,
        {"error": "MissingParameter", "message": "timeout: the request must contain it"},
    )
    assert await call(api, "DELETE", f"/queues/q/messages/{second['receipt_handle']}") == (
        200,
        {"deleted": True},
    )
    status, again = await call(api, "GET", "/queues/q/messages", query="wait=20")
    handles = {"receipt_handles": [again["messages"][0]["receipt_handle"], "junk"]}
    status, deleted = await call(api, "POST", "/queues/q/messages/delete", handles)
    assert deleted["successful"] == [{"index": 0}]
    assert [(f["index"], f["error"]) for f in deleted["failed"]] == [(1, "ReceiptHandleIsInvalid")]
    assert await call(api, "GET", "/queues/dlq/dead-letter-sources") == (200, {"queues": ["q"]})
    assert await call(api, "POST", "/queues/dlq/redrive", {"limit": 5}) == (200, {"moved": 0})
    assert await call(api, "POST", "/queues/q/purge") == (200, {"purged": "q"})
    assert (await call(api, "POST", "/queues/q/purge"))[1]["error"] == "PurgeQueueInProgress"
    assert await call(api, "DELETE", "/queues/q") == (200, {"deleted": "q"})
    assert await call(api, "GET", "/queues") == (200, {"queues": ["dlq"]})


@pytest.mark.inprocess
async def test_bodies_and_queries_are_checked(api: PlainApi) -> None:
    """A body that is not a JSON object, a non-integer query value, a missing list: 400
    with SQS's codes; an unknown queue 404, a move task's unknown queue 404."""
    await call(api, "PUT", "/queues/q")
    for method, path, body, code in [
        ("POST", "/queues/q/messages", b"", "SerializationException"),
        ("POST", "/queues/q/messages", b"[1]", "SerializationException"),
        ("POST", "/queues/q/messages", b"{bad", "SerializationException"),
        ("POST", "/queues/q/messages", b'{"messages": 3}', "InvalidParameterValue"),
        ("PUT", "/queues/r", b'{"attributes": 5}', "InvalidParameterValue"),
        ("POST", "/queues/q/messages/delete", b"{}", "MissingParameter"),
    ]:
        status, reply = await api.call(method, path, "", body)
        assert (status, reply["error"]) == (400, code), (method, path, body)
    status, reply = await api.call("GET", "/queues/q/messages", "max=x", b"")
    assert (status, reply) == (
        400,
        {"error": "InvalidParameterValue", "message": "max: must be an integer, got 'x'"},
    )
    assert (await call(api, "GET", "/queues/q/messages", query="max=11"))[0] == 400
    assert (await call(api, "GET", "/queues/nope"))[1]["error"] == "QueueDoesNotExist"
    status, reply = await call(api, "POST", "/queues/q/redrive", {"to": "nope"})
    assert (status, reply["error"]) == (404, "ResourceNotFoundException")
