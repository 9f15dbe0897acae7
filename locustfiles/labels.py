"""Bounded Prometheus label values for Locust's requests (no Locust import, so pytest can test it).

A label value must come from a small set, or every distinct value becomes a new series: request
names are capped (the locustfile names requests by route, `/api/orders/{id}`, never by id),
methods come from a fixed list, and a failure is labelled by its class (`http_503`,
`ConnectionRefusedError`), never by its message.
"""

from __future__ import annotations

MAX_NAMES = 200
OVERFLOW_NAME = "(other)"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class BoundedNames:
    """The first `limit` distinct request names keep their name; later ones share `(other)`."""

    def __init__(self, limit: int = MAX_NAMES) -> None:
        self.limit = limit
        self.known: set[str] = set()

    def __call__(self, name: str) -> str:
        if name in self.known:
            return name
        if len(self.known) < self.limit:
            self.known.add(name)
            return name
        return OVERFLOW_NAME


def method_label(method: object) -> str:
    text = str(method).upper()
    return text if text in METHODS else "OTHER"


def error_class(exception: BaseException | object, response: object = None) -> str:
    """`http_<status>` for an HTTP error status, else the exception's class name.

    A failure marked by hand (`response.failure(...)`, a `CatchResponseError`) on a response
    with a success status is labelled by the exception class, not by its text.
    """
    status = getattr(response, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool) and status >= 400:
        return f"http_{status}" if status < 600 else "http_other"
    if isinstance(exception, BaseException):
        return type(exception).__name__
    if isinstance(exception, str):
        return "message"  # Locust allows a plain string as a failure; its text is unbounded
    return "unknown"
