"""`python -m targets.pubsub`: the durable topic service (SNS query protocol) on SQLite.

    python -m targets.pubsub --db /tmp/topics.db --sqs 127.0.0.1:9324 --listen 127.0.0.1:0

One port serves the SNS query protocol (``POST /``, for boto3's ``sns`` client with
``endpoint_url``; ``GET /?Action=...`` for the SubscribeURL), ``GET /metrics`` and
``GET /health``. SQS subscriptions are delivered to the queue service at ``--sqs`` (the
queue an ARN names, by its last segment). The ready line::

    {"event": "ready", "name": "topics", "address": "127.0.0.1:PORT", "db": "/tmp/topics.db"}

SIGTERM or SIGINT: stop accepting, finish requests in flight (5 s grace), stop the delivery
lanes (what they owe stays in the outbox), close the database, exit 0. ``kill -9`` loses no
acknowledged publish: it was committed before the answer, and its deliveries resume when the
process starts again on the same database. Bad flags or a bad topics file exit 2.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from pathlib import Path

from targets.flags import TargetFlags, hostport
from targets.http.server import HttpServer, ServerLimits
from targets.pubsub.deliver import Deliverer
from targets.pubsub.model import Arns
from targets.pubsub.service import MAX_BODY_BYTES, TopicService
from targets.pubsub.setup import create_topics, load_topics_file
from targets.pubsub.store import TopicStore
from targets.runtime import announce_ready, run_target, stop_signal

log = logging.getLogger("targets.pubsub")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    flags = TargetFlags(
        "python -m targets.pubsub",
        "A durable topic service with SNS semantics on SQLite: fan-out to SQS queues and "
        "HTTP endpoints, filter policies, retries, dead-letter queues.",
    )
    p = flags.parser
    p.add_argument("--db", required=True, help="SQLite database file (created when missing)")
    p.add_argument("--sqs", type=hostport, help="HOST:PORT of the queue service (SQS JSON)")
    p.add_argument("--account-id", default="000000000000", help="account id in ARNs")
    p.add_argument("--region", default="us-east-1", help="region in ARNs")
    p.add_argument(
        "--synchronous",
        choices=("NORMAL", "FULL"),
        default="NORMAL",
        help="SQLite synchronous mode: NORMAL survives kill -9, FULL also power loss",
    )
    p.add_argument("--seed", type=int, default=None, help="seed of the retry jitter")
    p.add_argument(
        "--sqs-max-retries",
        type=int,
        default=100_014,
        help="retries of an SQS delivery on AWS's managed schedule (AWS: 100,014)",
    )
    p.add_argument("--idle-timeout", type=float, default=60.0, help="client keep-alive seconds")
    p.add_argument(
        "--topics-file",
        type=Path,
        help="JSON of topics and subscriptions to create at start (targets/pubsub/setup.py)",
    )
    flags.name("topics", "name in logs and error bodies")
    flags.listen("address to serve on (default 127.0.0.1:0: loopback, any free port)")
    args = flags.parse(argv)
    if not args.account_id.isdigit() or len(args.account_id) != 12:
        p.error(f"--account-id: expected 12 digits, got {args.account_id!r}")
    if not 0 <= args.sqs_max_retries <= 100_014:
        p.error("--sqs-max-retries: must be 0..100014")
    return args


async def serve(args: argparse.Namespace) -> int:
    store = TopicStore(
        args.db,
        arns=Arns(region=args.region, account_id=args.account_id),
        synchronous=args.synchronous,
    )
    try:
        if args.topics_file is not None:
            create_topics(store, load_topics_file(args.topics_file), args.topics_file, time.time())
        deliverer = Deliverer(
            store,
            base_url="",
            sqs=args.sqs,
            rng=random.Random(args.seed),
            sqs_max_retries=args.sqs_max_retries,
        )
        service = TopicService(store, deliverer)
        limits = ServerLimits(
            name=args.name, max_body_bytes=MAX_BODY_BYTES, keepalive_timeout_s=args.idle_timeout
        )
        http = HttpServer(service, limits)
        await http.listen(*args.listen)
    except BaseException:
        store.close()
        raise
    host, port = http.address
    deliverer.base_url = f"http://{host}:{port}"
    service.start()
    stopped = stop_signal()
    announce_ready(name=args.name, address=f"{host}:{port}", db=str(args.db))
    signame = await stopped
    log.info("%s: finishing requests in flight", signame)
    await http.shutdown(5.0)
    await service.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_target("targets.pubsub", parse_args(argv), serve, (RuntimeError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
