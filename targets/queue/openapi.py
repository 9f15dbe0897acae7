"""The plain JSON API's OpenAPI 3.1 document, served at ``GET /openapi.json``.

Written by hand next to ``api.py`` (routed by the shared targets/http/router.py, not a
framework), and held to it by tests: test_api.py checks that the router's paths and the
handlers' methods are exactly the document's operations; test_openapi.py that the document
validates as OpenAPI 3.1, every operation it lists answers on a real queue process, and real
replies match its schemas.
"""

from __future__ import annotations

from typing import Any, Final

_NAME: Final = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "Queue name: 1..80 of A-Z a-z 0-9 _ -",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,80}$"},
}
_RECEIPT: Final = {
    "name": "receipt",
    "in": "path",
    "required": True,
    "description": "The receipt handle of the latest receive (URL-safe as it is)",
    "schema": {"type": "string", "minLength": 1},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    ok: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    errors: tuple[str, ...] = ("400", "404"),
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": _json(ok)}}
    for status in errors:
        op["responses"][status] = {"$ref": f"#/components/responses/{status}"}
    if body is not None:
        op["requestBody"] = body
    if parameters:
        op["parameters"] = parameters
    return op


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


_STRING: Final = {"type": "string"}
_INT: Final = {"type": "integer"}
_ATTRIBUTES: Final = {
    "type": "object",
    "description": "SQS queue attributes by name (VisibilityTimeout, RedrivePolicy, ...)",
    "additionalProperties": {"type": ["string", "integer"]},
}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the plain JSON API (``targets/queue/api.py``)."""
    attributes_body = _object({"attributes": _ATTRIBUTES})
    named = _object({"name": _STRING}, ("name",))
    message = {"body": _STRING, "delay_seconds": {"type": "integer", "minimum": 0}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rushlab queue: plain JSON API",
            "version": "1",
            "description": "SQS semantics over JSON: the same engine as the SQS JSON protocol"
            " (POST / with X-Amz-Target: AmazonSQS.*). Errors carry SQS's codes.",
        },
        "paths": {
            "/queues": {"get": _op("List queues", _ref("QueueList"), errors=("405",))},
            "/queues/{name}": {
                "parameters": [_NAME],
                "get": _op("Queue attributes, counts included", _ref("QueueAttributes")),
                "put": _op(
                    "Create a queue (idempotent with the same attributes)",
                    named,
                    body=_body(attributes_body, required=False),
                    errors=("400",),
                ),
                "patch": _op(
                    "Set queue attributes", named, body=_body(_object({"attributes": _ATTRIBUTES}))
                ),
                "delete": _op("Delete the queue and its messages", _object({"deleted": _STRING})),
            },
            "/queues/{name}/purge": {
                "parameters": [_NAME],
                "post": _op("Purge (once per 60 s)", _object({"purged": _STRING})),
            },
            "/queues/{name}/messages": {
                "parameters": [_NAME],
                "post": _op(
                    "Send one message, or a batch of 1..10",
                    {"oneOf": [_ref("Sent"), _ref("BatchResult")]},
                    body=_body(
                        {
                            "oneOf": [
                                _object(message, ("body",)),
                                _object(
                                    {
                                        "messages": {
                                            "type": "array",
                                            "minItems": 1,
                                            "maxItems": 10,
                                            "items": _object(message, ("body",)),
                                        }
                                    },
                                    ("messages",),
                                ),
                            ]
                        }
                    ),
                ),
                "get": _op(
                    "Receive 1..10 messages (long polling when wait > 0)",
                    _ref("Received"),
                    parameters=[
                        _query("max", "Messages at most (1..10, default 1)", 1, 10),
                        _query("wait", "Long polling seconds (0..20; default: the queue's)", 0, 20),
                        _query("visibility", "Visibility timeout for these messages (s)", 0, 43200),
                    ],
                ),
            },
            "/queues/{name}/messages/delete": {
                "parameters": [_NAME],
                "post": _op(
                    "Delete a batch by receipt handles (1..10)",
                    _ref("BatchResult"),
                    body=_body(
                        _object(
                            {"receipt_handles": {"type": "array", "items": _STRING}},
                            ("receipt_handles",),
                        )
                    ),
                ),
            },
            "/queues/{name}/messages/{receipt}": {
                "parameters": [_NAME, _RECEIPT],
                "delete": _op("Delete by the latest receipt handle", _object({"deleted": {}})),
            },
            "/queues/{name}/messages/{receipt}/visibility": {
                "parameters": [_NAME, _RECEIPT],
                "put": _op(
                    "Change the message's visibility timeout",
                    _object({"visibility_timeout": _INT}),
                    body=_body(_object({"timeout": _INT}, ("timeout",))),
                ),
            },
            "/queues/{name}/dead-letter-sources": {
                "parameters": [_NAME],
                "get": _op("Queues whose dead-letter queue this is", _ref("QueueList")),
            },
            "/queues/{name}/redrive": {
                "parameters": [_NAME],
                "post": _op(
                    "Move the dead-letter queue's visible messages back (or to `to`)",
                    _object({"moved": _INT}, ("moved",)),
                    body=_body(
                        _object({"to": _STRING, "limit": {"type": "integer", "minimum": 1}}),
                        required=False,
                    ),
                ),
            },
        },
        "components": {
            "schemas": {
                "QueueList": _object({"queues": {"type": "array", "items": _STRING}}, ("queues",)),
                "QueueAttributes": _object({"name": _STRING, "attributes": _ATTRIBUTES}),
                "Sent": _object({"message_id": _STRING, "md5_of_body": _STRING}, ("message_id",)),
                "BatchResult": _object(
                    {
                        "successful": {"type": "array", "items": _object({"index": _INT})},
                        "failed": {
                            "type": "array",
                            "items": _object(
                                {"index": _INT, "error": _STRING, "message": _STRING},
                                ("index", "error"),
                            ),
                        },
                    },
                    ("successful", "failed"),
                ),
                "Received": _object(
                    {
                        "messages": {
                            "type": "array",
                            "items": _object(
                                {
                                    "message_id": _STRING,
                                    "receipt_handle": _STRING,
                                    "body": _STRING,
                                    "receive_count": _INT,
                                    "sent_timestamp": {"type": "number"},
                                },
                                ("message_id", "receipt_handle", "body", "receive_count"),
                            ),
                        }
                    },
                    ("messages",),
                ),
                "Error": _object(
                    {
                        "error": {
                            "type": "string",
                            "description": "SQS's code: QueueDoesNotExist,"
                            " ReceiptHandleIsInvalid, InvalidParameterValue, ...",
                        },
                        "message": _STRING,
                    },
                    ("error", "message"),
                ),
            },
            "responses": {
                status: _json(_ref("Error"), description)
                for status, description in (
                    ("400", "Invalid input (SQS's error code)"),
                    ("404", "QueueDoesNotExist, or no such path"),
                    ("405", "MethodNotAllowed"),
                )
            },
        },
    }


def _query(name: str, description: str, low: int, high: int) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer", "minimum": low, "maximum": high},
    }
