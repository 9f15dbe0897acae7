"""`python -m targets.server`: one application server instance of the shop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from targets.flags import TargetFlags, hostport
from targets.http.server import HttpServer, ServerLimits
from targets.runtime import announce_ready, read_token, run_target, stop_signal
from targets.server.app import MAX_BODY_BYTES, ServerConfig, ShopServer
from targets.server.content import ContentConfig
from targets.server.core import Capacity, CapacityError, Distribution, ServiceTime
from targets.server.email import EmailConfig, EmailMode
from targets.server.registration import Membership, RegistrationError, deregister, register

log = logging.getLogger("targets.server")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    flags = TargetFlags(
        "python -m targets.server",
        "A shop application server (auth, orders, payments) with a capacity model: "
        "SLOTS requests are served at once, BACKLOG more wait, the rest get 503.",
    )
    p = flags.parser
    p.add_argument("--service", default="shop", help="service name reported in responses")
    p.add_argument("--slots", type=int, default=8, help="concurrent requests served (capacity)")
    p.add_argument("--backlog", type=int, default=64, help="requests that may wait for a slot")
    p.add_argument(
        "--service-ms",
        type=float,
        default=20.0,
        help="mean service time per request in ms (0: fastest mode, no wait)",
    )
    p.add_argument(
        "--distribution",
        choices=[d.value for d in Distribution],
        default="lognormal",
        help="service time distribution",
    )
    p.add_argument("--sigma", type=float, default=0.5, help="lognormal shape (tail spread)")
    p.add_argument("--seed", type=int, default=0, help="seed of the service-time RNG")
    p.add_argument(
        "--boot-delay",
        type=float,
        default=0.0,
        help="seconds to wait before listening (a machine that is still booting)",
    )
    p.add_argument(
        "--advertise",
        type=hostport,
        metavar="HOST:PORT",
        help="address the load balancer should use (default: the bound address)",
    )
    p.add_argument("--weight", type=int, default=1, help="target weight at the load balancer")
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="seconds in-flight requests get to finish on SIGTERM",
    )
    p.add_argument(
        "--email",
        choices=[m.value for m in EmailMode],
        default="off",
        help="after a payment, email the receipt: sync (call the provider, then answer), "
        "async (enqueue, answer) or publish (a PaymentCompleted event to a topic, answer)",
    )
    p.add_argument(
        "--email-provider", type=hostport, metavar="HOST:PORT", help="sync: the mail provider"
    )
    p.add_argument(
        "--email-queue", type=hostport, metavar="HOST:PORT", help="async: the queue service"
    )
    p.add_argument("--email-queue-name", default="emails", help="async: the queue's name")
    p.add_argument(
        "--email-topic", type=hostport, metavar="HOST:PORT", help="publish: the topic service"
    )
    p.add_argument(
        "--email-topic-arn",
        default="arn:aws:sns:us-east-1:000000000000:payments",
        help="publish: the topic's ARN",
    )
    p.add_argument(
        "--email-timeout-s", type=float, default=10.0, help="provider or queue call timeout"
    )
    p.add_argument(
        "--catalogue-max-age",
        type=int,
        default=30,
        help="seconds a cache may keep a catalogue page (its Cache-Control max-age)",
    )
    p.add_argument(
        "--image-max-age",
        type=int,
        default=3600,
        help="seconds a cache may keep a product image",
    )
    p.add_argument(
        "--catalogue-stale-while-revalidate",
        type=int,
        default=30,
        help="seconds past max-age a cache may answer a page while it revalidates (0: none)",
    )
    p.add_argument(
        "--catalogue-stale-if-error",
        type=int,
        default=600,
        help="seconds past max-age a cache may answer a page while the origin fails (0: none)",
    )
    p.add_argument(
        "--catalogue-private",
        action="store_true",
        help="send catalogue pages as a framework's default, private (no shared cache keeps them)",
    )
    p.add_argument(
        "--content-version", type=int, default=1, help="version of the catalogue (in its ETags)"
    )
    flags.name("server-1", "instance name (also the LB target id)", old="--instance-id")
    flags.listen("address to serve on (default 127.0.0.1:0: loopback, any free port)")
    flags.token_file("file with the token /admin/faults requires", old="--admin-token-file")
    flags.peer_control(
        "lb",
        "the load balancer's control API: register with it once serving, leave on SIGTERM",
        old="--register-with",
    )
    flags.peer_token_file("lb", "file with the token the load balancer's control API requires")
    return flags.parse(argv)


async def serve(args: argparse.Namespace) -> int:
    config = ServerConfig(
        service=args.service,
        instance=args.name,
        capacity=Capacity(args.slots, args.backlog),
        service_time=ServiceTime(
            Distribution(args.distribution), args.service_ms / 1000, args.sigma
        ),
        seed=args.seed,
        admin_token=read_token(args.token_file, flag="--token-file"),
        email=EmailConfig(
            EmailMode(args.email),
            provider=args.email_provider,
            queue=args.email_queue,
            queue_name=args.email_queue_name,
            topic=args.email_topic,
            topic_arn=args.email_topic_arn,
            timeout_s=args.email_timeout_s,
        ),
        content=ContentConfig(
            args.content_version,
            args.catalogue_max_age,
            args.image_max_age,
            args.catalogue_stale_while_revalidate,
            args.catalogue_stale_if_error,
            args.catalogue_private,
        ),
    )
    lb_token = read_token(args.lb_token_file, flag="--lb-token-file")
    if args.boot_delay > 0:
        log.info("booting for %.1f s", args.boot_delay)
        await asyncio.sleep(args.boot_delay)
    app = ShopServer(config)
    http = HttpServer(
        app, ServerLimits(name=f"server:{config.instance}", max_body_bytes=MAX_BODY_BYTES)
    )
    await http.listen(*args.listen)
    host, port = args.advertise or http.address
    membership = None
    if args.lb_control is not None:
        lb_host, lb_port = args.lb_control
        membership = Membership(
            lb_host, lb_port, config.instance, host, port, args.weight, lb_token
        )
        await register(membership)
    stopped = stop_signal()
    announce_ready(service=config.service, instance=config.instance, address=f"{host}:{port}")
    signame = await stopped
    log.info("%s: deregistering, draining for up to %.1f s", signame, args.drain_timeout)
    app.draining = True
    if membership is not None:
        await deregister(membership)
    app.release_hung()
    await http.shutdown(args.drain_timeout)
    app.email.close()
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_target("targets.server", parse_args(argv), serve, (CapacityError, RegistrationError))


if __name__ == "__main__":
    sys.exit(main())
