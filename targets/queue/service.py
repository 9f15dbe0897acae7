"""``QueueService``: the one HTTP handler of the queue process, over one ``QueueStore``.

Routes on one port::

    POST /  with X-Amz-Target: AmazonSQS.*   the SQS JSON protocol (targets/queue/sqs.py)
    /queues...                                the plain JSON API (targets/queue/api.py)
    GET /metrics                              Prometheus (targets/queue/metrics.py)
    GET /health                               {"status": "ok", "queues": n}
    GET /openapi.json                         the plain API's OpenAPI 3.1 document

It also owns the housekeeping loop (retention via ``QueueStore.expire`` every
``housekeeping_s``) and the stop sequence: ``close`` answers every long poll now, cancels
message move tasks and the loop, then closes the store. A ``POST`` without
``X-Amz-Target`` outside ``/queues`` is an SQS request with no action (``InvalidAction``).

Group commit (targets/durable.py): the store's calls made during one event-loop iteration
share one transaction, committed by a callback scheduled when the group opens (``LoopCommits``,
next iteration); every response waits for the commit of whatever it may depend on
(``_durable``), so nothing is acknowledged before it is on disk, as before, at one commit
per iteration instead of one per request. A failed commit answers those requests 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from targets.durable import CommitFailed, LoopCommits
from targets.http.messages import Request
from targets.http.server import ResponseWriter
from targets.queue import sqs
from targets.queue.api import PREFIX, PlainApi
from targets.queue.errors import QueueError
from targets.queue.metrics import queue_registry
from targets.queue.openapi import document
from targets.queue.poll import LongPoller
from targets.queue.store import QueueStore
from targets.runtime import send_metrics

log = logging.getLogger(__name__)

OPENAPI: Final = document()
MAX_BODY_BYTES: Final = 4 * 1024 * 1024  # a 256 KiB batch, JSON-escaped, with room to spare


class QueueService:
    def __init__(self, store: QueueStore, housekeeping_s: float = 1.0) -> None:
        self.store = store
        self.poller = LongPoller(store)
        self.moves = sqs.MoveTasks(store)
        self.sqs = sqs.SqsProtocol(store, self.poller, self.moves)
        self.api = PlainApi(store, self.poller)
        self.registry = queue_registry(store, self.poller)
        self.housekeeping_s = housekeeping_s
        self._housekeeping: asyncio.Task[None] | None = None
        self.commits = LoopCommits(store.commit)
        store.group_commits(self.commits.schedule)

    async def _durable(self) -> None:
        """Return once everything the store did so far is committed (at once when it is)."""
        await self.commits.durable(self.store.pending)

    def start(self) -> None:
        """Start the housekeeping loop (call from the running event loop)."""
        self._housekeeping = asyncio.get_running_loop().create_task(self._housekeep())

    async def _housekeep(self) -> None:
        while True:
            await asyncio.sleep(self.housekeeping_s)
            try:
                expired = self.store.expire()
            except Exception:  # a failing sweep must not end the loop; it retries next tick
                log.exception("retention sweep failed")
                continue
            if expired:
                log.info("retention: %d messages expired", expired)

    def stop_polling(self) -> None:
        """Answer every long poll now: the first step of a graceful stop."""
        self.poller.close()

    async def close(self) -> None:
        if not self.poller.closing:
            self.poller.close()
        await self.moves.close()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        self.commits.flush()
        self.store.group_commits(None)
        self.store.close()

    async def __call__(self, request: Request, writer: ResponseWriter) -> None:
        try:
            await self._route(request, writer)
        except ValueError as exc:  # read_all: the body is over MAX_BODY_BYTES
            if not writer.started:
                await self._durable()
                writer.send_json(413, {"error": "RequestEntityTooLarge", "message": str(exc)})
        except CommitFailed as exc:
            if not writer.started:
                writer.send_json(500, {"error": "CommitFailed", "message": str(exc)})

    async def _route(self, request: Request, writer: ResponseWriter) -> None:
        path = request.path
        target = request.header(b"x-amz-target")
        if target is not None or (request.method == "POST" and not path.startswith(PREFIX)):
            await self._sqs(request, writer, target)
        elif path.startswith(PREFIX):
            body = await request.body.read_all(MAX_BODY_BYTES)
            status, reply = await self.api.call(request.method, path, request.query, body)
            await self._durable()
            writer.send_json(status, reply)
        elif path == "/metrics":
            await self._durable()  # a scrape may read what the open group changed
            send_metrics(writer, self.registry)
        elif path == "/health":
            writer.send_json(200, {"status": "ok", "queues": len(self.store.queue_names())})
        elif path == "/openapi.json":
            writer.send_json(200, OPENAPI)
        else:
            writer.send_json(404, {"error": "NotFound", "message": f"path: {path!r}"})

    async def _sqs(self, request: Request, writer: ResponseWriter, target: bytes | None) -> None:
        body = await request.body.read_all(MAX_BODY_BYTES)
        host = (request.header(b"host") or b"localhost").decode("latin-1")
        try:
            result = await self.sqs.call(
                None if target is None else target.decode("latin-1"), body, host
            )
        except QueueError as error:
            await self._durable()
            writer.send(*sqs.error_response(error))
            return
        await self._durable()
        writer.send(200, [(b"content-type", sqs.CONTENT_TYPE)], sqs.encode(result))
