"""`python -m targets.queue`: the durable queue service (SQS JSON protocol + plain JSON API).

    python -m targets.queue --db /tmp/queue.db --listen 127.0.0.1:0

One port serves the SQS JSON protocol (``POST /`` with ``X-Amz-Target: AmazonSQS.*``, for
boto3 with ``endpoint_url``), the plain JSON API under ``/queues`` (targets/queue/api.py),
``GET /metrics`` and ``GET /health``. The ready line::

    {"event": "ready", "name": "queue", "address": "127.0.0.1:PORT", "db": "/tmp/queue.db"}

SIGTERM or SIGINT: answer waiting long polls (empty), stop accepting, finish requests in
flight (5 s grace), close the database, exit 0. ``kill -9`` loses no acknowledged send (the
engine commits before answering). Bad flags, or a database another process owns, exit 2.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
from pathlib import Path

from targets.flags import TargetFlags
from targets.http.server import HttpServer, ServerLimits
from targets.queue.config import Arns
from targets.queue.service import MAX_BODY_BYTES, QueueService
from targets.queue.setup import create_queues, load_queues_file
from targets.queue.store import QueueStore
from targets.runtime import announce_ready, run_target, stop_signal

log = logging.getLogger("targets.queue")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    flags = TargetFlags(
        "python -m targets.queue",
        "A durable message queue with SQS semantics on SQLite: the SQS JSON "
        "protocol (boto3 with endpoint_url) and a plain JSON API on one port.",
    )
    p = flags.parser
    p.add_argument("--db", required=True, help="SQLite database file (created when missing)")
    p.add_argument("--account-id", default="000000000000", help="account id in URLs and ARNs")
    p.add_argument("--region", default="us-east-1", help="region in queue ARNs")
    p.add_argument(
        "--synchronous",
        choices=("NORMAL", "FULL"),
        default="NORMAL",
        help="SQLite synchronous mode: NORMAL survives kill -9, FULL also power loss",
    )
    p.add_argument("--seed", type=int, default=None, help="seed of short polling's sampling")
    p.add_argument(
        "--housekeeping-interval",
        type=float,
        default=1.0,
        help="seconds between retention sweeps",
    )
    p.add_argument("--idle-timeout", type=float, default=60.0, help="client keep-alive seconds")
    p.add_argument(
        "--queues-file",
        type=Path,
        help="JSON of queues to create at start (targets/queue/setup.py; idempotent)",
    )
    flags.name("queue", "name in logs and error bodies")
    flags.listen("address to serve on (default 127.0.0.1:0: loopback, any free port)")
    args = flags.parse(argv)
    if not args.account_id.isdigit() or len(args.account_id) != 12:
        p.error(f"--account-id: expected 12 digits, got {args.account_id!r}")
    if not 0 < args.housekeeping_interval <= 3600:
        p.error("--housekeeping-interval: must be in (0, 3600]")
    return args


async def serve(args: argparse.Namespace) -> int:
    store = QueueStore(
        args.db,
        rng=random.Random(args.seed),
        arns=Arns(region=args.region, account_id=args.account_id),
        synchronous=args.synchronous,
    )
    if args.queues_file is not None:
        try:
            create_queues(store, load_queues_file(args.queues_file), args.queues_file)
        except BaseException:
            store.close()
            raise
    service = QueueService(store, housekeeping_s=args.housekeeping_interval)
    limits = ServerLimits(
        name=args.name, max_body_bytes=MAX_BODY_BYTES, keepalive_timeout_s=args.idle_timeout
    )
    http = HttpServer(service, limits)
    try:
        await http.listen(*args.listen)
    except BaseException:
        store.close()
        raise
    service.start()
    host, port = http.address
    stopped = stop_signal()
    announce_ready(name=args.name, address=f"{host}:{port}", db=str(args.db))
    signame = await stopped
    log.info("%s: answering long polls, finishing requests in flight", signame)
    service.stop_polling()
    await http.shutdown(5.0)
    await service.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_target("targets.queue", parse_args(argv), serve, (RuntimeError,))


if __name__ == "__main__":
    sys.exit(main())
