"""One proxy hop: a client request on its way to an upstream, the part every proxy shares.

A proxy (the load balancer, the gateway) keeps its policy: where a request goes, whether a
failure deserves another try, what to count. `Hop` does the rest, once for all of them:

- **The path.** `send(pool)`: a bodiless request on an idle pooled connection takes the
  `Exchange` fast path (callbacks only: no task, no future); anything else returns the
  coroutine `run(pool)`, which `forward`s and which the handler hands to the engine as a task.
- **The outcome.** Each try ends in exactly one call to the policy, which a proxy writes by
  overriding these methods of its `Hop` subclass (one instance per request):

      answered(status)   the upstream's response went to the client whole, or the client's
                         body was bad (then the engine answers `status` itself)
      failed(error)      the try failed (`error.reason`, `error.reached`, and
                         `writer.started`, say how far it got): count it, and return the pool
                         to try next, or None to give up with this error's answer
      abandoned()        the try stopped without an outcome (the client went away)

  After the last `failed`, `gave_up(status, own)` follows once: `own` when the hop answered
  for the proxy, else the upstream's response had started and was cut off.
- **The answers.** `give_up` is the one place a proxy's own 502/503/504 is written: the
  engine's error body, or the JSON `failure_body` returns; or, once the response has started,
  the abort of the client connection, the only honest signal left. Upstream failures map to
  `error.status` (504 for the timeouts, 502 for the rest) and `upstream_<reason>`; a policy
  with nowhere to send the request calls `give_up(503, ...)` itself.

A retry from the fast path takes the fast path again when it can; from a task it stays there.
"""

from __future__ import annotations

from collections.abc import Awaitable

from targets.http.messages import Request
from targets.http.proxy import Exchange, forward
from targets.http.server import HttpError, ResponseWriter
from targets.http.upstream import UpstreamError, UpstreamPool


class Hop(Exchange):
    """One request through a proxy; subclasses add the policy (see the module docstring).

    A hop is its own fast-path `Exchange` (one object per request, for every try)."""

    __slots__ = ("timeout_s",)

    def __init__(self, request: Request, writer: ResponseWriter, timeout_s: float) -> None:
        self.request = request
        self.writer = writer
        self.timeout_s = timeout_s  # how long the upstream may take to answer, per try

    # -- the policy: what a proxy overrides -------------------------------------------------
    def answered(self, status: int) -> None:
        """A try's response (`status`) reached the client, or the engine answers a bad body."""
        raise NotImplementedError

    def failed(self, error: UpstreamError) -> UpstreamPool | None:
        """A try failed: count it; the pool to try next, or None to give up with `error`."""
        raise NotImplementedError

    def gave_up(self, status: int, own: bool) -> None:
        """The request ended without an upstream's answer: `status` was the hop's (`own`), or
        the upstream's response had started and the client connection was aborted."""
        raise NotImplementedError

    def abandoned(self) -> None:
        """A try stopped without an outcome (the client went away, the task was cancelled)."""

    def failure_body(self, status: int, error: str, detail: str) -> object | None:
        """The JSON body of the hop's own answer; None for the engine's error body."""
        return None

    # -- the hop ----------------------------------------------------------------------------
    def send(self, pool: UpstreamPool) -> Awaitable[None] | None:
        """Try `pool`: on the fast path when it applies (then None), else the coroutine to run
        as the request's task (a handler returns it, a callback hands it to `continue_in`)."""
        if not self.request.has_body:
            conn = pool.take_idle()
            if conn is not None:
                self.start(pool, conn, self.timeout_s)
                return None
        return self.run(pool)

    async def run(self, pool: UpstreamPool) -> None:
        """Try `pool`, then wherever `failed` says, each try a `forward` awaited in this task."""
        while True:
            try:
                status = await forward(
                    self.request, self.writer, pool, response_timeout_s=self.timeout_s
                )
            except UpstreamError as error:
                retry = self.failed(error)
                if retry is None:
                    self._give_up_on(error)
                    return
                pool = retry
                continue
            except HttpError as exc:  # the client's body was bad; the engine answers it
                self.answered(exc.status)
                raise
            except BaseException:
                self.abandoned()
                raise
            self.answered(status)
            return

    def give_up(self, status: int, error: str, detail: str) -> None:
        """Answer `status` for the proxy, or abort a response that had started; then report."""
        writer = self.writer
        if writer.started:
            writer.abort()
            self.gave_up(writer.status, False)
            return
        body = self.failure_body(status, error, detail)
        if body is None:
            writer.send_error(status, error, detail)
        else:
            writer.send_json(status, body)
        self.gave_up(status, True)

    def exchanged(self, status: int, error: UpstreamError | None) -> None:
        """The fast path's try ended: report it; retry or give up after a failure."""
        if error is None:
            self.answered(status)
            return
        pool = self.failed(error)
        if pool is None:
            self._give_up_on(error)
            return
        pending = self.send(pool)
        if pending is not None:
            self.writer.continue_in(pending)

    def _give_up_on(self, error: UpstreamError) -> None:
        self.give_up(error.status, f"upstream_{error.reason}", error.detail)
