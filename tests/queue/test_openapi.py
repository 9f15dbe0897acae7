"""The plain JSON API's OpenAPI document against a real queue process.

The document validates as OpenAPI 3.1; the process serves it at /openapi.json; a walk through
every documented operation gets replies that match the documented schemas, and the walk
covers exactly the operations the document lists (neither has one the other lacks).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from targets.queue.openapi import document
from tests.queue.procs import queue_process

pytestmark = pytest.mark.e2e

DOC = document()


@pytest.mark.core
def test_the_document_is_valid_openapi() -> None:
    validate(DOC)


class Walk:
    """Calls the API and checks each reply against the document's schema for it."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.seen: set[tuple[str, str]] = set()

    def __call__(self, method: str, path: str, payload: Any = None, status: int = 200) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                code, body = reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            code, body = error.code, json.loads(error.read())
        assert code == status, (method, path, body)
        template = _template(path.partition("?")[0])
        operation = DOC["paths"][template].get(method.lower())
        if operation is None:  # a method the path does not take
            response: dict[str, Any] = {"$ref": "#/components/responses/405"}
        else:
            response = operation["responses"][str(code)]
            self.seen.add((template, method.lower()))
        if "$ref" in response:  # a shared error response
            response = DOC["components"]["responses"][response["$ref"].rpartition("/")[2]]
        schema = response["content"]["application/json"]["schema"]
        jsonschema.validate(body, {**schema, "components": DOC["components"]})
        return body


def _template(path: str) -> str:
    """The document's path template for a concrete path."""
    for template in DOC["paths"]:
        pattern = re.sub(r"\\\{[a-z]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return template
    raise AssertionError(f"{path}: not in the document")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with queue_process(tmp_path_factory.mktemp("openapi") / "queue.db") as url:
        yield url


def test_served_at_openapi_json(base: str) -> None:
    with urllib.request.urlopen(base + "/openapi.json", timeout=10) as reply:
        assert json.loads(reply.read()) == DOC


def test_every_documented_operation_answers_as_documented(base: str) -> None:
    call = Walk(base)
    call("PUT", "/queues/mail-dlq")
    arn = call("GET", "/queues/mail-dlq")["attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2})
    call("PUT", "/queues/mail", {"attributes": {"VisibilityTimeout": 30}})
    call("PATCH", "/queues/mail", {"attributes": {"RedrivePolicy": policy}})
    assert "mail" in call("GET", "/queues")["queues"]
    call("POST", "/queues/mail/messages", {"body": "one"})
    batch = call("POST", "/queues/mail/messages", {"messages": [{"body": "two"}, {"body": ""}]})
    assert [f["index"] for f in batch["failed"]] == [1]  # an empty body is refused
    received: list[dict[str, Any]] = []
    while len(received) < 2:
        received += call("GET", "/queues/mail/messages?max=10&wait=1")["messages"]
    first, second = received
    call("PUT", f"/queues/mail/messages/{first['receipt_handle']}/visibility", {"timeout": 0})
    call("DELETE", f"/queues/mail/messages/{second['receipt_handle']}")
    again = call("GET", "/queues/mail/messages?wait=2")["messages"]
    call("POST", "/queues/mail/messages/delete", {"receipt_handles": [again[0]["receipt_handle"]]})
    assert call("GET", "/queues/mail-dlq/dead-letter-sources")["queues"] == ["mail"]
    assert call("POST", "/queues/mail-dlq/redrive")["moved"] == 0
    call("POST", "/queues/mail/purge")
    call("DELETE", "/queues/mail")
    # errors, as documented
    call("GET", "/queues/nope", status=404)
    call("GET", "/queues/mail-dlq/messages?max=11", status=400)
    call("POST", "/queues", status=405)
    documented = {(p, m) for p, ops in DOC["paths"].items() for m in ops if m != "parameters"}
    assert call.seen == documented
