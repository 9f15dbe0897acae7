"""`python -m targets.server`: one application server instance of the shop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from targets.http.server import HttpServer, ServerLimits
from targets.runtime import (
    announce_ready,
    configure_process,
    parse_hostport,
    read_token,
    run_main,
    wait_for_stop,
)
from targets.server.app import MAX_BODY_BYTES, ServerConfig, ShopServer
from targets.server.core import Capacity, CapacityError, Distribution, ServiceTime
from targets.server.email import EmailConfig, EmailMode
from targets.server.registration import Membership, RegistrationError, deregister, register

log = logging.getLogger("targets.server")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m targets.server",
        description="A shop application server (auth, orders, payments) with a capacity model: "
        "SLOTS requests are served at once, BACKLOG more wait, the rest get 503.",
    )
    p.add_argument("--service", default="shop", help="service name reported in responses")
    p.add_argument(
        "--instance-id", default="server-1", help="instance name (also the LB target id)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
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
        "--register-with",
        metavar="HOST:PORT",
        help="load balancer control API to register with once serving",
    )
    p.add_argument(
        "--advertise",
        metavar="HOST:PORT",
        help="address the load balancer should use (default: the bound address)",
    )
    p.add_argument("--weight", type=int, default=1, help="target weight at the load balancer")
    p.add_argument("--lb-token-file", help="file with the load balancer control token")
    p.add_argument("--admin-token-file", help="file with the token for /admin/faults")
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
        help="after a payment, email the receipt: sync (call the provider, then answer) or "
        "async (enqueue, answer)",
    )
    p.add_argument("--email-provider", help="sync: the mail provider, HOST:PORT")
    p.add_argument("--email-queue", help="async: the queue service, HOST:PORT")
    p.add_argument("--email-queue-name", default="emails", help="async: the queue's name")
    p.add_argument(
        "--email-timeout-s", type=float, default=10.0, help="provider or queue call timeout"
    )
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    config = ServerConfig(
        service=args.service,
        instance=args.instance_id,
        capacity=Capacity(args.slots, args.backlog),
        service_time=ServiceTime(
            Distribution(args.distribution), args.service_ms / 1000, args.sigma
        ),
        seed=args.seed,
        admin_token=read_token(args.admin_token_file, flag="--admin-token-file"),
        email=EmailConfig(
            EmailMode(args.email),
            provider=_address(args.email_provider, "--email-provider"),
            queue=_address(args.email_queue, "--email-queue"),
            queue_name=args.email_queue_name,
            timeout_s=args.email_timeout_s,
        ),
    )
    lb = parse_hostport(args.register_with, flag="--register-with") if args.register_with else None
    lb_token = read_token(args.lb_token_file, flag="--lb-token-file")
    if args.boot_delay > 0:
        log.info("booting for %.1f s", args.boot_delay)
        await asyncio.sleep(args.boot_delay)
    app = ShopServer(config)
    http = HttpServer(
        app, ServerLimits(name=f"server:{config.instance}", max_body_bytes=MAX_BODY_BYTES)
    )
    await http.listen(args.host, args.port)
    host, port = (
        parse_hostport(args.advertise, flag="--advertise") if args.advertise else http.address
    )
    membership = None
    if lb is not None:
        membership = Membership(lb[0], lb[1], config.instance, host, port, args.weight, lb_token)
        await register(membership)
    announce_ready(service=config.service, instance=config.instance, address=f"{host}:{port}")
    signame = await wait_for_stop()
    log.info("%s: deregistering, draining for up to %.1f s", signame, args.drain_timeout)
    app.draining = True
    if membership is not None:
        await deregister(membership)
    app.release_hung()
    await http.shutdown(args.drain_timeout)
    app.email.close()
    log.info("stopped")
    return 0


def _address(value: str | None, flag: str) -> tuple[str, int] | None:
    return None if value is None else parse_hostport(value, flag=flag)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_process(args.log_level, args.instance_id)
    return run_main("targets.server", serve(args), (CapacityError, RegistrationError))


if __name__ == "__main__":
    sys.exit(main())
