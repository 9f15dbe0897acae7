"""Sans-I/O core of a CDN edge cache modelled on CloudFront: entries, freshness, decisions.

No I/O, no clock, no asyncio: every call that needs the time takes ``now`` (seconds, any
epoch the adapter keeps consistent; ``Expires``/``Date`` compare against it, so a real
adapter passes wall-clock seconds). The adapter owns sockets, the origin client, futures and
background tasks; it asks the core what a request, an origin answer or an invalidation
means. The pieces, in the order a request meets them::

    KeyPolicy.request_key (policy.py)   the cache key
    LruStore.get (store.py)             the entry, if any
    decide(entry, request, now)         SERVE | SERVE_STALE_AND_REVALIDATE | REVALIDATE
                                        | FETCH | FORWARD
    Collapser.join / finish (store.py)  one origin request per key; the others wait
    on_origin(...)                      what to answer, what the cache holds afterwards
    Invalidations.admits (store.py)     whether that answer may be stored
    LruStore.put / delete

policy.py states the key and TTL rules and holds the errors; store.py the collapsing,
invalidation and LRU bookkeeping.

Freshness. ``age = now - stored_at + origin Age``; an entry is fresh while ``age < ttl``.
Past that, in this order: *stale-if-error* while a recent origin failure holds it (served
with no origin request), *stale-servable* while ``age < ttl + stale-while-revalidate``
(served at once, refreshed in the background), *stale-revalidatable* when it has a
validator (a conditional request first: ``If-None-Match`` / ``If-Modified-Since``), else
*expired* (a full fetch).

Origin answers (``on_origin``). A 304 refreshes the entry: the 304's headers replace the
stored ones of the same name, the TTL is chosen again from the result, the body is kept ->
``RefreshHit``. A 5xx, or no answer, while the stale entry is within its stale-if-error
window serves the stale entry (``Hit``) and holds it for the error caching minimum TTL
(never past the window) before the origin is asked again; on a 4xx the 4xx is returned.
Any other answer replaces the entry (or removes it, when not cacheable) -> ``Miss``, or
``Error`` for a 4xx/5xx. ``X-Cache`` is ``Error`` for every answer with a status >= 400,
from the cache or not. Collapsed waiters get the leader's answer as ``Hit`` (or ``Error``).

Not modelled: Origin Shield and regional tiers, ``Vary``, viewer ``Cache-Control``, range
requests, must-revalidate, remembering that an object is uncacheable, OPTIONS caching.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final

from targets.cdn.policy import (
    CACHEABLE_METHODS,
    Headers,
    KeyPolicy,
    Request,
    TtlPolicy,
    delta_seconds,
    first_header,
    lifetime,
)

UNREACHABLE_STATUS: Final = 502
"""What the edge answers when the origin gives no answer at all (CloudFront: 502/504)."""
_NOT_UPDATED_BY_304: Final = frozenset({"content-length", "content-range", "transfer-encoding"})


# --- entries and freshness -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Response:
    """An origin's answer (a HEAD's has no body)."""

    status: int
    headers: Headers = ()
    body: bytes = b""


class State(enum.StrEnum):
    FRESH = "fresh"
    STALE_IF_ERROR = "stale-if-error"
    STALE_SERVABLE = "stale-servable"
    STALE_REVALIDATABLE = "stale-revalidatable"
    EXPIRED = "expired"


_FRESH: Final = State.FRESH
"""Enum members the hit path reads are bound once (this one and those after `Action`): on
Python 3.11 every ``Enum.MEMBER`` lookup goes through `EnumType.__getattr__`'s slow attribute
hook, about 0.2 µs each (Python 3.12 dropped the hook)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached response. ``stored_at``: when it arrived (for ``Age``);
    ``requested_at``: when its origin request was sent (for invalidation); ``hold_until``:
    after an origin failure, served stale with no origin request until then."""

    key: str
    path: str
    status: int
    headers: Headers
    body: bytes
    stored_at: float
    requested_at: float
    ttl: float
    origin_age: float = 0.0
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0
    hold_until: float = -math.inf

    @property
    def size(self) -> int:
        """Bytes it occupies in the store: key, header names and values, body."""
        return len(self.key) + len(self.body) + sum(len(n) + len(v) for n, v in self.headers)

    @property
    def etag(self) -> str | None:
        return first_header(self.headers, "etag")

    @property
    def last_modified(self) -> str | None:
        return first_header(self.headers, "last-modified")

    @property
    def expires_at(self) -> float:
        """The instant its age reaches its TTL."""
        return self.stored_at - self.origin_age + self.ttl

    def age(self, now: float) -> float:
        return max(0.0, now - self.stored_at) + self.origin_age

    def state(self, now: float, age: float | None = None) -> State:
        """Its state at `now`; `age` is ``self.age(now)``, when the caller has it already."""
        if age is None:
            age = self.age(now)
        if age < self.ttl:
            return _FRESH
        if now < self.hold_until:
            return State.STALE_IF_ERROR
        if age < self.ttl + self.stale_while_revalidate:
            return State.STALE_SERVABLE
        if self.etag is not None or self.last_modified is not None:
            return State.STALE_REVALIDATABLE
        return State.EXPIRED

    def serves_on_error(self, now: float) -> bool:
        """Whether an origin failure now may be answered with this entry."""
        return self.status < 400 and self.age(now) < self.ttl + self.stale_if_error


def new_entry(
    key: str,
    path: str,
    response: Response,
    *,
    policy: TtlPolicy,
    requested_at: float,
    now: float,
) -> Entry | None:
    """The entry an origin answer makes, or None when it is not stored."""
    life = lifetime(response.status, response.headers, policy, now)
    if not life.stored:
        return None
    errors = response.status >= 400
    return Entry(
        key,
        path,
        response.status,
        response.headers,
        response.body,
        stored_at=now,
        requested_at=requested_at,
        ttl=life.ttl,
        origin_age=delta_seconds(first_header(response.headers, "age")),
        stale_while_revalidate=0.0 if errors else life.stale_while_revalidate,
        stale_if_error=0.0 if errors else life.stale_if_error,
    )


def conditional_headers(entry: Entry) -> Headers:
    """The headers that make the origin request for `entry` conditional."""
    found = []
    if entry.etag is not None:
        found.append(("if-none-match", entry.etag))
    if entry.last_modified is not None:
        found.append(("if-modified-since", entry.last_modified))
    return tuple(found)


def refresh(
    entry: Entry,
    headers: Iterable[tuple[str, str]],
    *,
    policy: TtlPolicy,
    requested_at: float,
    now: float,
) -> Entry | None:
    """`entry` after a 304 with `headers`: the 304's headers replace the stored ones of the
    same name (not the body's framing), the TTL is chosen again, the body is kept. None
    when the merged headers say it may no longer be stored."""
    fresh = [(n, v) for n, v in headers if n.lower() not in _NOT_UPDATED_BY_304]
    replaced = {n.lower() for n, _ in fresh}
    merged = (*((n, v) for n, v in entry.headers if n.lower() not in replaced), *fresh)
    renewed = new_entry(
        entry.key,
        entry.path,
        Response(entry.status, merged, entry.body),
        policy=policy,
        requested_at=requested_at,
        now=now,
    )
    if renewed is None:
        return None
    return replace(renewed, origin_age=delta_seconds(first_header(fresh, "age")))


# --- decisions -------------------------------------------------------------------------------


class Result(enum.StrEnum):
    """CloudFront's result types, as ``X-Cache`` and the log's ``x-edge-result-type``."""

    HIT = "Hit"
    REFRESH_HIT = "RefreshHit"
    MISS = "Miss"
    ERROR = "Error"

    def header(self, edge: str = "cloudfront") -> str:
        """The ``X-Cache`` value: ``Hit from cloudfront``."""
        return f"{self.value} from {edge}"


class Action(enum.StrEnum):
    SERVE = "serve"  # answer from the cache, no origin request
    SERVE_STALE_AND_REVALIDATE = "serve-stale-and-revalidate"  # answer, then refresh
    REVALIDATE = "revalidate"  # a conditional origin request first
    FETCH = "fetch"  # a full origin request (collapsed per key)
    FORWARD = "forward"  # not cacheable: pass through, never stored or collapsed


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a request. ``result`` and ``age`` are set when the answer comes from
    the cache now; ``conditional`` holds the headers of a revalidating origin request."""

    action: Action
    result: Result | None = None
    age: float | None = None
    conditional: Headers = ()


_FORWARD: Final = Decision(Action.FORWARD)
_FETCH: Final = Decision(Action.FETCH)
_SERVE: Final = Action.SERVE
_HIT: Final = Result.HIT
_ERROR: Final = Result.ERROR


def decide(entry: Entry | None, request: Request, now: float) -> Decision:
    """What a request for the key that holds `entry` (None: nothing) needs at `now`."""
    if request.method.upper() not in CACHEABLE_METHODS:
        return _FORWARD
    return decide_cacheable(entry, now)


def decide_cacheable(entry: Entry | None, now: float) -> Decision:
    """`decide` for a GET or HEAD, whose method the caller has checked (the adapter's hit
    path: no `Request` to build)."""
    if entry is None:
        return _FETCH
    age = entry.age(now)
    state = entry.state(now, age)
    served = _ERROR if entry.status >= 400 else _HIT
    if state is _FRESH or state is State.STALE_IF_ERROR:
        return Decision(_SERVE, served, age)
    if state is State.STALE_SERVABLE:
        return Decision(Action.SERVE_STALE_AND_REVALIDATE, served, age, conditional_headers(entry))
    if state is State.STALE_REVALIDATABLE:
        return Decision(Action.REVALIDATE, conditional=conditional_headers(entry))
    return _FETCH


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to give after an origin exchange, and what the cache holds for the key
    afterwards (``entry``; None: delete the key). ``age`` is set when the answer comes from
    the cache."""

    result: Result
    status: int
    headers: Headers
    body: bytes
    entry: Entry | None
    age: float | None = None

    @property
    def shareable(self) -> bool:
        """Whether requests collapsed behind this exchange may be given its answer: what the
        cache keeps (or refreshed) for the key, or the origin's failure. An answer the cache
        may not keep (`private`, `no-store`) is one viewer's own: the others ask for theirs."""
        return self.entry is not None or self.status >= 500 or self.result is Result.REFRESH_HIT

    @property
    def waiter_result(self) -> Result:
        """The result a collapsed waiter logs: ``Hit``, or ``Error`` for an error."""
        return Result.ERROR if self.status >= 400 else Result.HIT


def on_origin(
    entry: Entry | None,
    response: Response | None,
    *,
    key: str,
    path: str,
    policy: TtlPolicy,
    requested_at: float,
    now: float,
) -> Outcome:
    """Settle an origin exchange for `key`, which held `entry` when it began. `response` is
    None when the origin gave no answer (refused, reset, timed out)."""
    status = UNREACHABLE_STATUS if response is None else response.status
    if status >= 500 and entry is not None and entry.serves_on_error(now):
        until = min(now + policy.error_ttl(status), entry.expires_at + entry.stale_if_error)
        held = replace(entry, hold_until=until)
        return Outcome(Result.HIT, held.status, held.headers, held.body, held, held.age(now))
    if response is None:
        return Outcome(Result.ERROR, status, (), b"", entry)
    if status == 304 and entry is not None:
        renewed = refresh(
            entry, response.headers, policy=policy, requested_at=requested_at, now=now
        )
        shown = renewed or entry
        age = renewed.age(now) if renewed is not None else 0.0
        return Outcome(Result.REFRESH_HIT, entry.status, shown.headers, entry.body, renewed, age)
    stored = new_entry(key, path, response, policy=policy, requested_at=requested_at, now=now)
    result = Result.ERROR if status >= 400 else Result.MISS
    return Outcome(result, status, response.headers, response.body, stored)


def collapsing_enabled(keys: KeyPolicy, ttls: TtlPolicy) -> bool:
    """CloudFront collapses unless cookies are forwarded or caching is disabled."""
    return not keys.cookies and ttls.max_s > 0
