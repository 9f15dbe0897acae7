"""The edge cache's adapter on the HTTP engine: one origin, GET/HEAD cached, the rest passed on.

`Edge` is the `HttpServer` handler. Per request it asks the pure core (core.py, policy.py,
store.py) what to do and does the I/O:

* **From the cache** (``Hit``, a cached error as ``Error``, stale-while-revalidate): answered
  at once from the handler call, no task (the engine's fast path), in one write: the entry's
  head is encoded at its first hit and kept with it (`_Stored`), ``Age`` filled in per hit; a
  stale-while-revalidate answer starts one background revalidation per key.
* **Miss / stale** (``FETCH`` / ``REVALIDATE``): collapsed per cache key (`Collapser`). The
  leader sends one GET to the origin (a HEAD viewer's miss too, so the entry gets its body;
  the viewer's own conditional and Range headers are not sent, the entry's validators are).
  A full answer is streamed to the leader's viewer while it arrives and buffered up to
  ``max_bytes`` (the largest object the store could hold); at its end ``on_origin`` settles
  it, the store takes it, and the waiters get the same status, headers and body (``Hit``, or
  ``Error`` for a status >= 400). A body larger than that is not stored, and its waiters then
  fetch again themselves (collapsing among themselves once more; the last try is alone). So
  do the waiters of a leader whose viewer went away mid-fetch (its task is cancelled). A 304,
  and a 5xx while a stale entry may serve on error, are read whole (small) and answered from
  the outcome: ``RefreshHit``, or the stale entry as ``Hit``.
* **No answer from the origin**: 502 (refused, reset, malformed), 504 (connect or response
  timeout, ``origin_timeout_s`` each), ``X-Cache: Error``, a JSON body naming the reason;
  unless a stale entry within its stale-if-error window is served instead. A failure after the
  viewer's response started aborts the viewer's connection (the only honest signal left).
* **Other methods**: streamed to the origin and back untouched (``Miss``/``Error``), never
  stored or collapsed.

Every answer carries ``X-Cache: <Result> from <name>`` and ``Via: 1.1 <name> (rushlab)``
(after the origin's own ``Via``); cached answers carry ``Age`` (whole seconds).

Management, under ``/_edge/`` (never forwarded): ``GET /_edge/health``, ``GET /_edge/metrics``
(Prometheus), ``POST /_edge/invalidations`` with ``{"paths": ["/a", "/b*"]}`` and
``Authorization: Bearer <token>``: 403 without a configured token, 401 without the right one,
400 naming the field for a bad body or a path the core refuses, 201 with the invalidation.
``/_edge/faults`` (same token; chaos ``latency``): ``PUT {"latency_ms": 200, "region":
"ap-south"}`` adds that much to each request from the region's clients (without ``region``:
from every client), ``DELETE`` clears it, ``GET`` shows it; the engine applies it with the
region's round trip (`targets.http.server.delayed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Final
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from targets.admin import describe_invalid, faults_request
from targets.cdn.core import (
    Action,
    Decision,
    Entry,
    Outcome,
    Response,
    Result,
    State,
    collapsing_enabled,
    decide_cacheable,
    on_origin,
)
from targets.cdn.metrics import EdgeMetrics
from targets.cdn.policy import (
    CACHEABLE_METHODS,
    CdnError,
    KeyPolicy,
    QueryMode,
    TooManyInvalidations,
    TtlPolicy,
    joined_header,
)
from targets.cdn.policy import Headers as TextHeaders
from targets.cdn.store import Collapser, Invalidations, LruStore, Passes
from targets.http.messages import HOP_BY_HOP, Headers, Request, error_body
from targets.http.netem import Delays, Network, NetworkError
from targets.http.proxy import response_headers, send_body, upstream_head
from targets.http.server import ResponseWriter
from targets.http.upstream import UpstreamError, UpstreamPool, UpstreamResponse
from targets.runtime import authorized, send_metrics

log = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 3
"""Tries of a viewer request whose leader gave no body to share; the last one leads alone."""
MAX_INVALIDATION_BYTES: Final = 1024 * 1024
_NOT_SENT: Final = HOP_BY_HOP | {
    b"content-length",
    b"expect",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"if-none-match",
    b"if-modified-since",
    b"if-match",
    b"if-unmodified-since",
    b"if-range",
    b"range",
}
_REPLACED: Final = frozenset({"x-cache", "via"})
_JSON: Final = (("content-type", "application/json"),)
PATH_KEYS: Final = 1024
"""Path-only keys the edge remembers by request-target (all forgotten when it is full)."""
_SERVE_AND_REVALIDATE: Final = Action.SERVE_STALE_AND_REVALIDATE  # bound once: see core._FRESH

Waiter = asyncio.Future[Outcome | None]


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    name: str = "edge"
    origin: tuple[str, int] = ("127.0.0.1", 80)
    max_bytes: int = 64 * 1024 * 1024
    origin_timeout_s: float = 30.0
    keys: KeyPolicy = field(default_factory=KeyPolicy)
    ttls: TtlPolicy = field(default_factory=TtlPolicy)
    token: str | None = None
    max_origin_connections: int = 256
    network: Network | None = None  # its region: round trips, and its origin fetches' source


class EdgeFaults(BaseModel):
    """Body of ``PUT /_edge/faults``: latency on each request from `region`'s clients (the
    link between that region and this edge), or from every client."""

    model_config = ConfigDict(extra="forbid")
    latency_ms: float = Field(ge=0, le=600_000)
    region: str | None = Field(default=None, min_length=1, max_length=64)


class InvalidationBody(BaseModel):
    """Body of ``POST /_edge/invalidations``."""

    model_config = ConfigDict(extra="forbid")
    paths: list[str] = Field(min_length=1)


@dataclass(slots=True)
class _Ask:
    """One viewer request on its way through the edge (`writer` None: a background
    refresh, which answers nobody)."""

    request: Request
    writer: ResponseWriter | None
    key: str
    started: float


@dataclass(slots=True)
class _Stored:
    """What the store keeps for a key: the core's entry and, from its first hit on, the head
    of its answers from the cache, encoded once (`Edge._head`). It goes with its entry
    (replaced, evicted, invalidated), so the heads take no memory the store does not bound."""

    entry: Entry
    head: tuple[Result, bytes, bytes] | None = None

    @property
    def size(self) -> int:
        return self.entry.size  # what the store counts: the entry (cdn_bytes_stored)


def _text(headers: Headers) -> TextHeaders:
    return tuple((n.decode("latin-1"), v.decode("latin-1")) for n, v in headers)


class Edge:
    """One edge cache in front of one origin; the `HttpServer` handler."""

    def __init__(self, config: EdgeConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.name = config.name
        self.clock = clock  # wall-clock seconds: Expires and Date compare against it
        self.keys = config.keys
        self.ttls = config.ttls
        self.store: LruStore[_Stored] = LruStore(config.max_bytes)
        self.collapser: Collapser[Waiter | None] = Collapser()
        self.passes = Passes()
        self.invalidations = Invalidations()
        self.collapse = collapsing_enabled(config.keys, config.ttls)
        self.metrics = EdgeMetrics(self.store)
        self.via = f"1.1 {config.name} (rushlab)"
        self.pool = UpstreamPool(
            *config.origin,
            max_connections=config.max_origin_connections,
            connect_timeout_s=config.origin_timeout_s,
            source=None if config.network is None else config.network.source_ip,
        )
        self.delays = Delays(config.network)  # what `delayed` holds each request for
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._path_keys: dict[bytes, str] = {}  # request-target -> its path-only key (`_key`)

    # -- the handler ------------------------------------------------------------------------
    def __call__(self, request: Request, writer: ResponseWriter) -> Awaitable[None] | None:
        started = time.perf_counter()
        method = request.method
        # A request-target whose path-only key was made before: no parsing (`_key`).
        key = self._path_keys.get(request.target)
        if key is None or method not in CACHEABLE_METHODS:
            if request.path.startswith("/_edge/"):
                return self._manage(request, writer)
            if method not in CACHEABLE_METHODS:
                return self._forward(request, writer, started)
            key = self._key(request)
        stored = self.store.get(key)
        if stored is not None:  # the hit path: answered now, in one write, no task
            now = self.clock()
            decision = decide_cacheable(stored.entry, now)
            if decision.result is not None:
                self._from_cache(request, writer, stored, decision, now, key=key, started=started)
                return None
        return self._miss(_Ask(request, writer, key, started))

    def _key(self, request: Request) -> str:
        """The request's cache key (only what the key policy names is parsed). A path-only
        key is remembered by request-target, up to `PATH_KEYS` of them, for the next hit."""
        keys = self.keys
        if keys.path_only:
            key = keys.key(request.method, request.path)
            known = self._path_keys
            if len(known) >= PATH_KEYS:
                known.clear()
            known[request.target] = key
            return key
        query: TextHeaders = ()
        if keys.query is not QueryMode.NONE and request.query:
            query = tuple(parse_qsl(request.query, keep_blank_values=True))
        headers = _text(request.headers) if keys.headers else ()
        cookies: TextHeaders = ()
        if keys.cookies:
            raw = joined_header(_text(request.headers), "cookie") or ""
            pairs = (c.strip().partition("=") for c in raw.replace(",", ";").split(";"))
            cookies = tuple((n, v) for n, _, v in pairs if n)
        return keys.key(request.method, request.path, query, headers, cookies)

    def _from_cache(
        self,
        request: Request,
        writer: ResponseWriter,
        stored: _Stored,
        decision: Decision,
        now: float,
        *,
        key: str,
        started: float,
    ) -> None:
        """Answer from the stored entry as `decision` (made at `now`: a result, an age) says."""
        result, age = decision.result, decision.age
        assert result is not None
        assert age is not None
        entry = stored.entry
        head = stored.head
        if head is None or head[0] is not result:
            head = stored.head = (result, *self._head(entry.headers, result))
        writer.send_encoded(
            entry.status,
            b"%b%d%b" % (head[1], int(age), head[2]),
            entry.body,
            head_only=request.method == "HEAD",
        )
        self.metrics.answered(result, time.perf_counter() - started)
        if decision.action is _SERVE_AND_REVALIDATE:
            self.metrics.stale.inc(("while_revalidate",))
            self._revalidate_later(request, key, entry, decision)
        elif now < entry.hold_until and entry.state(now) is State.STALE_IF_ERROR:
            self.metrics.stale.inc(("if_error",))

    async def _miss(self, ask: _Ask) -> None:
        """A request the cache cannot answer now: lead the origin fetch of its key, or wait."""
        key = ask.key
        for attempt in range(MAX_ATTEMPTS):
            # Decide and join in one step (no await between): one leader per key.
            stored = self.store.get(key)
            entry = None if stored is None else stored.entry
            now = self.clock()
            decision = decide_cacheable(entry, now)
            if stored is not None and decision.result is not None:
                assert ask.writer is not None
                self._from_cache(
                    ask.request, ask.writer, stored, decision, now, key=key, started=ask.started
                )
                return
            alone = not self.collapse or self.passes.active(key, self.clock())
            if alone or attempt == MAX_ATTEMPTS - 1:
                await self._fetch(ask, entry, decision)
                return
            if key not in self.collapser:
                self.collapser.join(key, None)
                await self._lead(ask, entry, decision)
                return
            waiter: Waiter = asyncio.get_running_loop().create_future()
            self.collapser.join(key, waiter)
            self.metrics.collapsed.inc(())
            outcome = await waiter
            if outcome is not None:
                self._send_outcome(ask, outcome, waiter=True)
                return

    async def _lead(self, ask: _Ask, entry: Entry | None, decision: Decision) -> None:
        """The collapsed origin fetch of `key`; its waiters get its outcome when it is theirs
        to have (None: they fetch again), however it ends. An answer only its viewer may have
        (`private`, `no-store`) marks the key: its next requests go to the origin alone."""
        shared = None
        try:
            outcome = await self._fetch(ask, entry, decision)
            if outcome is not None and outcome.shareable:
                shared = outcome
                self.passes.clear(ask.key)
            elif outcome is not None:
                self.passes.mark(ask.key, self.clock())
        finally:
            for waiter in self.collapser.finish(ask.key):
                if waiter is not None and not waiter.done():
                    waiter.set_result(shared)

    def _revalidate_later(
        self, request: Request, key: str, entry: Entry, decision: Decision
    ) -> None:
        """Refresh a stale-while-revalidate entry in the background, once per key."""
        if key in self.collapser:
            return
        self.collapser.join(key, None)
        background = _Ask(request, None, key, time.perf_counter())
        task = asyncio.get_running_loop().create_task(self._lead(background, entry, decision))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the origin -------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _origin(
        self, head: bytes, request: Request | None, *, head_only: bool
    ) -> AsyncIterator[UpstreamResponse]:
        """One origin exchange: the response once its head arrived; the connection goes back
        to the pool (or is closed, when its body was not read to the end) afterwards."""
        conn = await self.pool.acquire()
        try:
            pending = conn.start(head, head_only=head_only, timeout_s=self.config.origin_timeout_s)
            if request is not None and request.has_body:
                await send_body(request, conn)
            yield await pending.wait()
        finally:
            self.pool.release(conn)

    def _fetch_head(self, request: Request, decision: Decision) -> bytes:
        """The GET that fills the cache: the viewer's headers without the hop-by-hop, framing
        and conditional ones, the entry's validators (when revalidating), our Via."""
        parts = [b"GET ", request.target, b" HTTP/1.1\r\n"]
        forwarded = []
        has_host = False
        for name, value in request.headers:
            if name in _NOT_SENT:
                if name == b"x-forwarded-for":
                    forwarded.append(value)
                continue
            has_host = has_host or name == b"host"
            parts += (name, b": ", value, b"\r\n")
        if not has_host:
            parts.append(b"host: unknown\r\n")
        forwarded.append(request.client[0].encode("ascii"))
        parts += (b"x-forwarded-for: ", b", ".join(forwarded), b"\r\n")
        for name_s, value_s in decision.conditional:
            parts.append(f"{name_s}: {value_s}\r\n".encode("latin-1"))
        parts.append(f"via: {self.via}\r\n\r\n".encode("latin-1"))
        return b"".join(parts)

    async def _fetch(self, ask: _Ask, entry: Entry | None, decision: Decision) -> Outcome | None:
        """Fetch `key` from the origin, answer `writer` (None: a background refresh), store
        what the core says; the outcome to share, or None when there is none."""
        request, writer, key = ask.request, ask.writer, ask.key
        kind = "revalidate" if decision.conditional else "fetch"
        requested_at = self.clock()
        path = request.path
        try:
            async with self._origin(
                self._fetch_head(request, decision), None, head_only=False
            ) as response:
                status = response.status
                headers = _text(response_headers(response.headers))
                whole = writer is None or (
                    entry is not None
                    and (status == 304 or (status >= 500 and entry.serves_on_error(self.clock())))
                )
                if not whole:
                    assert writer is not None
                    return await self._stream(
                        ask, writer, entry, response, kind=kind, requested_at=requested_at
                    )
                try:
                    body = await response.body.read_all(self.store.max_bytes)
                except ValueError:  # too large to store (a background refresh only)
                    self.store.delete(key)
                    self._origin_done(kind, "response")
                    return None
        except UpstreamError as error:
            self._origin_done(kind, error.reason)
            if writer is not None and writer.started:
                log.warning("origin failed mid-response for %s: %s", path, error)
                writer.abort()
                self.metrics.answered(Result.ERROR, time.perf_counter() - ask.started)
                return None
            outcome = self._settle(key, path, entry, None, requested_at)
            if outcome.result is Result.ERROR:
                reason = f"origin_{error.reason}"
                outcome = replace(
                    outcome,
                    status=error.status,
                    headers=_JSON,
                    body=error_body(error.status, reason, error.detail, self.name),
                )
        else:
            self._origin_done(kind, "not_modified" if status == 304 else "response")
            outcome = self._settle(key, path, entry, Response(status, headers, body), requested_at)
        self._send_outcome(ask, outcome)
        return outcome

    async def _stream(
        self,
        ask: _Ask,
        writer: ResponseWriter,
        entry: Entry | None,
        response: UpstreamResponse,
        *,
        kind: str,
        requested_at: float,
    ) -> Outcome | None:
        """A full origin answer: to the viewer as it arrives, into the cache at its end."""
        request = ask.request
        headers = _text(response_headers(response.headers))
        status = response.status
        result = Result.ERROR if status >= 400 else Result.MISS
        writer.start(
            status,
            self._answer_headers(headers, result, None),
            response.content_length,
            head_only=request.method == "HEAD",
        )
        limit = self.store.max_bytes
        parts: list[bytes] = []
        size = 0
        keep = True
        while chunk := await response.body.read():
            if keep:
                size += len(chunk)
                if size <= limit:
                    parts.append(chunk)
                else:  # too large for the store: stream on, keep nothing
                    keep = False
                    parts.clear()
            writer.write(chunk)
            await writer.drain()
        self._origin_done(kind, "response")
        outcome = None
        if keep:
            whole = Response(status, headers, b"".join(parts))
            outcome = self._settle(ask.key, request.path, entry, whole, requested_at)
        else:
            self.store.delete(ask.key)  # too large for the store; the old entry is replaced
        writer.end()
        self.metrics.answered(result, time.perf_counter() - ask.started)
        return outcome

    def _settle(
        self,
        key: str,
        path: str,
        entry: Entry | None,
        response: Response | None,
        requested_at: float,
    ) -> Outcome:
        """The core's outcome of an origin exchange, and the store updated by it (unless an
        invalidation came after the origin request began)."""
        outcome = on_origin(
            entry,
            response,
            key=key,
            path=path,
            policy=self.ttls,
            requested_at=requested_at,
            now=self.clock(),
        )
        kept = outcome.entry
        if kept is not None and self.invalidations.admits(path, kept.requested_at):
            self.store.put(key, _Stored(kept))
        else:
            self.store.delete(key)
        return outcome

    def _origin_done(self, kind: str, outcome: str) -> None:
        self.metrics.origin_fetches.inc((kind, outcome))

    async def _forward(self, request: Request, writer: ResponseWriter, started: float) -> None:
        """A method the cache never stores: to the origin and back, both bodies streamed."""
        try:
            async with self._origin(
                upstream_head(request), request, head_only=request.method == "HEAD"
            ) as response:
                status = response.status
                result = Result.ERROR if status >= 400 else Result.MISS
                headers = self._answer_headers(
                    _text(response_headers(response.headers)), result, None
                )
                writer.start(status, headers, response.content_length)
                while chunk := await response.body.read():
                    writer.write(chunk)
                    await writer.drain()
        except UpstreamError as error:
            self._origin_done("forward", error.reason)
            if writer.started:
                writer.abort()
                self.metrics.answered(Result.ERROR, time.perf_counter() - started)
                return
            body = error_body(error.status, f"origin_{error.reason}", error.detail, self.name)
            answer = Response(error.status, _JSON, body)
            self._send(request, writer, answer, Result.ERROR, age=None, started=started)
            return
        self._origin_done("forward", "response")
        writer.end()
        self.metrics.answered(result, time.perf_counter() - started)

    # -- answers ----------------------------------------------------------------------------
    def _head(self, headers: TextHeaders, result: Result) -> tuple[bytes, bytes]:
        """The header lines of every answer from the cache with these stored headers, encoded
        once per entry: the lines up to ``age: ``, and those after its value (the engine adds
        the framing). ``before + b"%d" % age + after`` is what `_answer_headers` gives."""
        *kept, (age, _), via = self._answer_headers(headers, result, 0.0)
        assert age == b"age"
        before = b"".join(b"%b: %b\r\n" % line for line in kept)
        return before + b"age: ", b"\r\n%b: %b\r\n" % via

    def _answer_headers(self, headers: TextHeaders, result: Result, age: float | None) -> Headers:
        """The stored or origin headers, with our X-Cache, Via and (for cached answers) Age."""
        replaced = _REPLACED if age is None else _REPLACED | {"age"}
        out = [
            (n.lower().encode("latin-1"), v.encode("latin-1"))
            for n, v in headers
            if n.lower() not in replaced
        ]
        out.append((b"x-cache", result.header(self.name).encode()))
        if age is not None:
            out.append((b"age", b"%d" % int(age)))
        upstream_via = joined_header(headers, "via")
        via = f"{upstream_via}, {self.via}" if upstream_via else self.via
        out.append((b"via", via.encode("latin-1")))
        return out

    def _send(
        self,
        request: Request,
        writer: ResponseWriter,
        answer: Response,
        result: Result,
        *,
        age: float | None,
        started: float,
    ) -> None:
        writer.start(
            answer.status,
            self._answer_headers(answer.headers, result, age),
            len(answer.body),
            head_only=request.method == "HEAD",
        )
        writer.write(answer.body)
        writer.end()
        self.metrics.answered(result, time.perf_counter() - started)

    def _send_outcome(self, ask: _Ask, outcome: Outcome, *, waiter: bool = False) -> None:
        """Answer with an origin exchange's outcome: the leader's result, or a collapsed
        waiter's (``Hit``, ``Error``; ``Age: 0`` for what the leader just stored); nothing for
        a background refresh."""
        if ask.writer is None:
            return
        if outcome.result is Result.HIT:  # the core's Hit after an origin exchange: stale
            self.metrics.stale.inc(("if_error",))
        result = outcome.waiter_result if waiter else outcome.result
        age = outcome.age
        if age is None and waiter and outcome.entry is not None:
            age = 0.0
        answer = Response(outcome.status, outcome.headers, outcome.body)
        self._send(ask.request, ask.writer, answer, result, age=age, started=ask.started)

    # -- management -------------------------------------------------------------------------
    async def _manage(self, request: Request, writer: ResponseWriter) -> None:
        path = request.path
        if path == "/_edge/health" and request.method in ("GET", "HEAD"):
            writer.send_json(
                200,
                {
                    "status": "ok",
                    "name": self.name,
                    "objects": len(self.store),
                    "bytes": self.store.bytes_stored,
                },
            )
        elif path == "/_edge/metrics" and request.method == "GET":
            send_metrics(writer, self.metrics.registry)
        elif path == "/_edge/invalidations":
            await self._invalidate(request, writer)
        elif path == "/_edge/faults":
            await self._faults(request, writer)
        else:
            detail = (
                "GET /_edge/health, GET /_edge/metrics, POST /_edge/invalidations,"
                " GET|PUT|DELETE /_edge/faults"
            )
            writer.send_json(404, {"error": "not_found", "detail": detail})

    async def _invalidate(self, request: Request, writer: ResponseWriter) -> None:
        token = self.config.token
        if token is None:
            detail = "start it with --token-file"
            writer.send_json(403, {"error": "admin_disabled", "detail": detail})
            return
        if not authorized(request, token):
            detail = "Authorization: Bearer <token> required"
            writer.send_json(401, {"error": "unauthorized", "detail": detail})
            return
        if request.method != "POST":
            writer.send_json(405, {"error": "method_not_allowed", "allowed": "POST"})
            return
        try:
            raw = await request.body.read_all(MAX_INVALIDATION_BYTES)
            body = InvalidationBody.model_validate_json(raw)
        except (ValidationError, ValueError) as exc:
            detail = describe_invalid(exc)
            writer.send_json(400, {"error": "invalid_invalidation", "detail": detail})
            return
        now = self.clock()
        try:
            made = self.invalidations.create(body.paths, now)
        except CdnError as exc:
            error = (
                "too_many_invalidations"
                if isinstance(exc, TooManyInvalidations)
                else "invalid_invalidation"
            )
            detail = "paths: " + str(exc).removeprefix("Paths: ")
            writer.send_json(400, {"error": error, "detail": detail})
            return
        removed = self.store.delete_where(lambda s: made.matches(s.entry.path))
        self.metrics.invalidations.inc(())
        self.metrics.invalidated.inc((), removed)
        writer.send_json(
            201,
            {
                "id": f"I{next(self._ids)}",
                "status": "Completed",
                "paths": [p.text for p in made.patterns],
                "removed": removed,
            },
        )

    async def _faults(self, request: Request, writer: ResponseWriter) -> None:
        asked = await faults_request(request, writer, self.config.token, EdgeFaults, "--token-file")
        if asked is None:
            return
        method, body = asked
        if body is not None:
            try:
                self.delays.add(body.latency_ms, body.region)
            except NetworkError as exc:
                writer.send_json(400, {"error": "invalid_faults", "detail": str(exc)})
                return
        elif method == "DELETE":
            self.delays.clear()
        writer.send_json(200, self.delays.describe())

    async def close(self) -> None:
        """Stop background refreshes and close every origin connection."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)
        self.pool.abort_all()
