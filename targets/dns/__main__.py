"""`python -m targets.dns`: the lab's authoritative DNS server (UDP) plus its control API.

Prints one ready line, `{"event": "ready", "name": ..., "address": "HOST:PORT" (UDP),
"control": "HOST:PORT" (HTTP)}`, then serves until SIGTERM or SIGINT. The zone file's schema is
in targets/dns/core.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path

from targets import asgi
from targets.dns.control import control_app
from targets.dns.core import Zone, ZoneError
from targets.dns.server import DnsServer
from targets.fastmetrics import BornAtZeroRegistry
from targets.flags import TargetFlags
from targets.runtime import announce_ready, read_token, run_target, stop_signal

log = logging.getLogger("targets.dns")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    flags = TargetFlags(
        "python -m targets.dns",
        "An authoritative DNS server for one zone of A records, with Route 53's "
        "simple, weighted and failover routing and HTTP health checks.",
    )
    p = flags.parser
    p.add_argument("--zone-file", required=True, help="the zone as JSON (records, health checks)")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="accept record values and health-checked hosts outside 127.0.0.0/8 "
        "(off: lab traffic stays local)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed of the weighted-routing RNG")
    flags.name("dns", "name in logs and the ready line")
    flags.listen(
        "UDP address to answer on (default 127.0.0.1:0, any free port)",
        old_host=None,
        old_port=None,
    )
    flags.control_listen(old="--control")
    flags.token_file("file with the token the control API requires", old="--control-token-file")
    return flags.parse(argv)


def load_zone(path: str, rng: random.Random, allow_remote: bool = False) -> Zone:
    """The zone in `path`; `ZoneError` naming the file and the field otherwise."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ZoneError(f"--zone-file: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ZoneError(f"{path}: not JSON: {exc}") from None
    try:
        return Zone.from_json(data, rng=rng, allow_remote=allow_remote)
    except ZoneError as exc:
        raise ZoneError(f"{path}: {exc}") from None


async def serve(args: argparse.Namespace) -> int:
    listen, control_at = args.listen, args.control_listen
    token = read_token(args.token_file, flag="--token-file")
    zone = load_zone(args.zone_file, random.Random(args.seed), args.allow_remote)
    server = DnsServer(zone, BornAtZeroRegistry())
    await server.listen(*listen)
    try:
        control = await asgi.start(control_app(server, token), *control_at)
    except BaseException:
        await server.close()
        raise
    server.start_health_checks()
    host, port = server.address
    stopped = stop_signal()
    announce_ready(
        name=args.name, address=f"{host}:{port}", control=f"{control_at[0]}:{control.port}"
    )
    signame = await stopped
    log.info("%s: stopping", signame)
    await control.stop()
    await server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_target("targets.dns", parse_args(argv), serve, (ZoneError,))


if __name__ == "__main__":
    sys.exit(main())
