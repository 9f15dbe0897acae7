"""`python -m targets.workers`: one queue worker delivering to a provider.

    python -m targets.workers --queue-url http://127.0.0.1:9324 --queue emails \\
        --provider http://127.0.0.1:9400 --polling long --rate 10 --burst 1

The worker serves ``GET /metrics`` and ``GET /health`` on ``--listen``. The ready line::

    {"event": "ready", "name": "worker-1", "queue": "emails", "polling": "long",
     "address": "127.0.0.1:PORT"}

The rate limit is per worker (N workers deliver up to N x rate). SIGTERM or SIGINT: finish
the message in hand, release the messages received but not started (visibility 0), exit 0.
Bad flags exit 2 with one line naming the flag.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from urllib.parse import urlsplit

from targets.flags import TargetFlags
from targets.http.server import HttpServer, ServerLimits
from targets.limiter.core import ALGORITHM_NAMES, ConfigError, LimitConfig
from targets.runtime import announce_ready, run_target, stop_signal
from targets.workers.core import Ack, FailurePolicy, OnFailure, WorkerConfigError
from targets.workers.worker import Endpoint, Polling, Worker, WorkerConfig

log = logging.getLogger("targets.workers")

_FLAGS = {
    "wait_s": "--wait-s",
    "batch": "--batch",
    "visibility_s": "--visibility-s",
    "empty_sleep_s": "--empty-sleep-s",
    "retry_s": "--retry-s",
    "provider_timeout_s": "--provider-timeout-s",
    "backoff_s": "--backoff-s",
    "backoff_max_s": "--backoff-max-s",
    "rate": "--rate",
    "burst": "--burst",
    "algorithm": "--limit-algorithm",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    flags = TargetFlags(
        "python -m targets.workers",
        "A queue worker: receive (short or long polling), rate-limit, deliver to "
        "the provider, delete on success; on failure let the message return or back off.",
    )
    p = flags.parser
    p.add_argument("--queue-url", required=True, help="the queue service, http://HOST:PORT")
    p.add_argument("--queue", required=True, help="queue name")
    p.add_argument("--provider", required=True, help="the provider, http://HOST:PORT")
    p.add_argument("--polling", choices=[m.value for m in Polling], default="long")
    p.add_argument("--wait-s", type=int, default=20, help="long polling wait (0..20)")
    p.add_argument("--batch", type=int, default=10, help="messages per receive (1..10)")
    p.add_argument("--visibility-s", type=int, default=30, help="visibility timeout on receive")
    p.add_argument(
        "--empty-sleep-s",
        type=float,
        default=0.1,
        help="short polling: pause after an empty receive (0: ask again at once)",
    )
    p.add_argument("--rate", type=float, default=10.0, help="messages per second (0: no limit)")
    p.add_argument("--burst", type=int, default=1, help="rate limiter burst")
    p.add_argument(
        "--limit-algorithm", choices=ALGORITHM_NAMES, default="token_bucket", help="limiter core"
    )
    p.add_argument("--on-failure", choices=[m.value for m in OnFailure], default="return")
    p.add_argument(
        "--ack",
        choices=[m.value for m in Ack],
        default="after_send",
        help="delete a message after the provider took it, or before calling it (loses failures)",
    )
    p.add_argument(
        "--consumer", default="", help="consumer name in the provider's accounting (the queue)"
    )
    p.add_argument("--backoff-s", type=float, default=1.0, help="first back-off (doubles)")
    p.add_argument("--backoff-max-s", type=float, default=60.0, help="back-off cap")
    p.add_argument("--provider-timeout-s", type=float, default=30.0, help="provider call timeout")
    p.add_argument("--retry-s", type=float, default=1.0, help="pause after a failed queue call")
    flags.name("worker-1", "instance name (logs, metrics, provider)")
    flags.listen("address of /metrics and /health (default 127.0.0.1:0: any free port)")
    return flags.parse(argv)


def parse_url(value: str, *, flag: str) -> Endpoint:
    """`http://127.0.0.1:8080` -> Endpoint; `ValueError` naming the flag otherwise."""
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ValueError(f"{flag}: expected http://HOST:PORT, got {value!r}")
    return Endpoint(parts.hostname, port)


def config_from_args(args: argparse.Namespace) -> WorkerConfig:
    queue_api = parse_url(args.queue_url, flag="--queue-url")
    provider = parse_url(args.provider, flag="--provider")
    try:
        limit = None
        if args.rate != 0:
            limit = LimitConfig(args.rate, args.burst, args.limit_algorithm)
        return WorkerConfig(
            queue_api=queue_api,
            queue=args.queue,
            provider=provider,
            instance=args.name,
            polling=Polling(args.polling),
            wait_s=args.wait_s,
            batch=args.batch,
            visibility_s=args.visibility_s,
            limit=limit,
            failure=FailurePolicy(OnFailure(args.on_failure), args.backoff_s, args.backoff_max_s),
            empty_sleep_s=args.empty_sleep_s,
            retry_s=args.retry_s,
            provider_timeout_s=args.provider_timeout_s,
            ack=Ack(args.ack),
            consumer=args.consumer,
        )
    except (WorkerConfigError, ConfigError) as exc:
        field, _, rule = str(exc).partition(":")
        raise ValueError(f"{_FLAGS.get(field, field)}:{rule}") from None


async def serve(args: argparse.Namespace) -> int:
    worker = Worker(config_from_args(args))
    http = HttpServer(worker, ServerLimits(name=args.name))
    await http.listen(*args.listen)
    host, port = http.address
    config = worker.config
    run = asyncio.ensure_future(worker.run())
    stop = stop_signal()
    announce_ready(
        name=config.instance,
        queue=config.queue,
        polling=config.polling.value,
        address=f"{host}:{port}",
    )
    try:
        await asyncio.wait((run, stop), return_when=asyncio.FIRST_COMPLETED)
        if stop.done():
            log.info("%s: finishing the message in hand", stop.result())
            worker.stop()
        else:
            stop.cancel()
        await run
    finally:
        worker.close()
        await http.shutdown(2.0)
    log.info("stopped after %d deliveries", worker.delivered)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_target("targets.workers", parse_args(argv), serve)


if __name__ == "__main__":
    sys.exit(main())
