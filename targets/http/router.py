"""Sans-I/O path routing: which route a request takes, and the path it forwards. Shared by
the API gateway (targets/gateway/gateway.py) and the queue's plain JSON API
(targets/queue/api.py); no I/O, no asyncio.

A route's `path` is one of three kinds (API Gateway's route keys, plus nginx-style prefixes):

    exact    /api/orders            that path only
    param    /api/orders/{id}       one segment per `{name}`; the rest literal
    prefix   /api/orders            (match: prefix) that path and everything below it, at a
                                    segment boundary: /api/orders/7, not /api/ordersx

The most specific matching route wins: more segments first (the longest match), then exact
over param over prefix, then more literal segments (`/a/b/{x}` over `/a/{y}/{x}`). `methods`
limits a route to some methods (none: any). No matching route is a 404 for the adapter to
answer. Empty segments do not count (`/a//b/` is `/a/b`). With `strip_prefix`, a prefix
route forwards the path without its prefix (`/api/orders/7` -> `/7`, the prefix itself ->
`/`); the query string always follows.

Two ways in: `match(method, path, query)` is the gateway's (the route and the target to
forward); `find(method, segments)` takes segments the caller split (and perhaps decoded)
itself and returns the route alone, whose `params(segments)` names the `{param}` values
(the queue's API routes so, and answers 405 itself when the route lacks the method).

`Router` does the lookup in a dict per kind: exact by path, prefix by walking the request's
segment prefixes from the longest, param among the routes with that many segments. Routes that
could never be told apart (same kind, same pattern, overlapping methods) are refused when the
router is built: `RouteError` names the route by index.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

Kind = Literal["exact", "param", "prefix"]
_RANK: Final[dict[str, int]] = {"exact": 2, "param": 1, "prefix": 0}
_PARAM = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@%-]+")
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RouteError(ValueError):
    """A route table that cannot be built; the message names the route and the field."""


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of the route table; `name` labels its metrics (the gateway) or names its
    handlers (the queue's API)."""

    name: str
    path: str
    service: str = ""  # where the route leads: the gateway's upstream service
    match: Literal["exact", "prefix"] = "prefix"  # a path with {params} is a param route
    methods: frozenset[str] = frozenset()  # empty: any method
    strip_prefix: bool = False
    segments: tuple[str, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", split_path(self.path))

    @property
    def kind(self) -> Kind:
        if any(_PARAM.fullmatch(s) for s in self.segments):
            return "param"
        return self.match

    def allows(self, method: str) -> bool:
        return not self.methods or method in self.methods

    def params(self, segments: Sequence[str]) -> dict[str, str]:
        """The `{name}` values of `segments`, a path this (param) route matched."""
        return {
            pattern[1:-1]: value
            for pattern, value in zip(self.segments, segments, strict=False)
            if pattern.startswith("{")
        }

    def specificity(self) -> tuple[int, int, int]:
        """Longer first, then exact over param over prefix, then more literal segments."""
        literal = sum(1 for s in self.segments if not _PARAM.fullmatch(s))
        return (len(self.segments), _RANK[self.kind], literal)


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    target: bytes  # the request-target to forward (path and query)


def split_path(path: str) -> tuple[str, ...]:
    """The segments `match` routes `path` by: split at `/`, empty ones left out."""
    return tuple(s for s in path.split("/") if s)


def check_route(route: Route, where: str) -> None:
    """RouteError naming `where` (e.g. `routes[2]`) and the field when `route` is malformed."""
    if not route.path.startswith("/") or "//" in route.path or "?" in route.path:
        raise RouteError(f"{where}.path: must start with / and hold no // or ?, got {route.path!r}")
    for segment in route.segments:
        if not (_PARAM.fullmatch(segment) or _SEGMENT.fullmatch(segment)):
            raise RouteError(f"{where}.path: bad segment {segment!r} in {route.path!r}")
    unknown = sorted(route.methods - METHODS)
    if unknown:
        raise RouteError(f"{where}.methods: unknown method(s) {', '.join(unknown)}")
    if route.strip_prefix and route.kind != "prefix":
        raise RouteError(f"{where}.strip_prefix: only a prefix route strips its prefix")


class Router:
    """The route table; `match(method, path, query)` picks the most specific route."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        self._exact: dict[str, list[Route]] = {}
        self._prefix: dict[tuple[str, ...], list[Route]] = {}
        self._param: dict[int, list[Route]] = {}
        seen: dict[tuple[Kind, tuple[str, ...]], list[tuple[int, Route]]] = {}
        for i, route in enumerate(self.routes):
            check_route(route, f"routes[{i}]")
            shape = tuple("{}" if _PARAM.fullmatch(s) else s for s in route.segments)
            for j, other in seen.setdefault((route.kind, shape), []):
                if not route.methods or not other.methods or route.methods & other.methods:
                    raise RouteError(
                        f"routes[{i}].path: {route.path!r} overlaps routes[{j}]"
                        f" ({other.path!r}) for the same methods"
                    )
            seen[route.kind, shape].append((i, route))
            if route.kind == "exact":
                self._exact.setdefault("/" + "/".join(route.segments), []).append(route)
            elif route.kind == "prefix":
                self._prefix.setdefault(route.segments, []).append(route)
            else:
                self._param.setdefault(len(route.segments), []).append(route)

    def match(self, method: str, path: str, query: str = "") -> Match | None:
        """The route for `method path` and the target to forward, or None (404)."""
        segments = split_path(path)
        best = self.find(method, segments)
        if best is None:
            return None
        forwarded = path
        if best.strip_prefix:
            forwarded = "/" + "/".join(segments[len(best.segments) :])
            if path.endswith("/") and forwarded != "/":
                forwarded += "/"
        target = forwarded + ("?" + query if query else "")
        return Match(best, target.encode("latin-1"))

    def find(self, method: str, segments: tuple[str, ...]) -> Route | None:
        """The most specific route for `method` and the path of `segments`, or None."""
        best: Route | None = None
        for route in self._exact.get("/" + "/".join(segments), ()):
            if route.allows(method):
                best = route
                break
        for route in self._param.get(len(segments), ()):
            if (
                route.allows(method)
                and _params_match(route.segments, segments)
                and (best is None or route.specificity() > best.specificity())
            ):
                best = route
        for n in range(len(segments), -1, -1):
            hit = next((r for r in self._prefix.get(segments[:n], ()) if r.allows(method)), None)
            if hit is not None:
                if best is None or hit.specificity() > best.specificity():
                    best = hit
                break
        return best


def _params_match(pattern: tuple[str, ...], segments: tuple[str, ...]) -> bool:
    return all(
        p == s or (p.startswith("{") and p.endswith("}"))
        for p, s in zip(pattern, segments, strict=True)
    )
