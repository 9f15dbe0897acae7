"""``TopicService``: the one HTTP handler of the topic process, over one ``TopicStore``.

Routes on one port::

    POST /  (form body)           the SNS query protocol (protocol.py)
    GET /?Action=...              the same (SubscribeURL and UnsubscribeURL are GETs)
    GET /metrics                  Prometheus (metrics.py)
    GET /health                   {"status": "ok", "topics": n, "subscriptions": n}

Group commit as in the queue (targets/durable.py): every answer waits for the commit of
what it depends on, so an acknowledged Publish is on disk; after each commit the store
hands what it published to the delivery lanes (deliver.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from targets.durable import CommitFailed, LoopCommits
from targets.http.messages import Request
from targets.http.server import ResponseWriter
from targets.pubsub import protocol
from targets.pubsub.deliver import Deliverer
from targets.pubsub.errors import InternalError, SnsError
from targets.pubsub.metrics import topic_registry
from targets.pubsub.model import Subscription
from targets.pubsub.store import TopicStore
from targets.runtime import send_metrics

MAX_BODY_BYTES: Final = 4 * 1024 * 1024  # a 256 KiB batch, form-encoded, with room to spare
XML: Final = [(b"content-type", protocol.CONTENT_TYPE)]


class TopicService:
    def __init__(
        self, store: TopicStore, deliverer: Deliverer, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.deliverer = deliverer
        self.registry, metrics = topic_registry(store)
        deliverer.observer = metrics
        self.sns = protocol.SnsProtocol(store, clock, on_subscribe=self._subscribed)
        self._declare = metrics.declare
        self.commits = LoopCommits(store.commit, after=store.committed)
        store.group_commits(self.commits.schedule)

    def _subscribed(self, sub: Subscription) -> None:
        self._declare(sub)
        if not sub.confirmed:
            self.deliverer.confirm(sub)

    def start(self) -> None:
        self.deliverer.start()

    async def close(self) -> None:
        await self.deliverer.close()
        self.commits.flush()
        self.store.group_commits(None)
        self.store.close()

    async def __call__(self, request: Request, writer: ResponseWriter) -> None:
        path = request.path
        if path == "/metrics":
            await self.commits.durable(self.store.pending)
            send_metrics(writer, self.registry)
        elif path == "/health":
            writer.send_json(
                200,
                {
                    "status": "ok",
                    "topics": len(self.store.topics),
                    "subscriptions": len(self.store.subscriptions),
                },
            )
        elif request.method == "POST" or (request.method == "GET" and "Action=" in request.query):
            await self._sns(request, writer)
        else:
            writer.send_json(404, {"error": "NotFound", "message": f"path: {path!r}"})

    async def _sns(self, request: Request, writer: ResponseWriter) -> None:
        try:
            data = await request.body.read_all(MAX_BODY_BYTES)
        except ValueError as exc:
            writer.send(*protocol.error_response(InternalError(f"request body: {exc}")))
            return
        params = protocol.parse_form(data if request.method == "POST" else request.query)
        try:
            _, body = self.sns.call(params)
        except SnsError as error:
            await self._durable(writer)
            if not writer.started:
                writer.send(*protocol.error_response(error))
            return
        if await self._durable(writer):
            writer.send(200, XML, body)

    async def _durable(self, writer: ResponseWriter) -> bool:
        try:
            await self.commits.durable(self.store.pending)
        except CommitFailed as exc:
            writer.send(*protocol.error_response(InternalError(str(exc))))
            return False
        return True
