"""`python -m targets.cdn`: a CDN edge cache in front of one origin.

    python -m targets.cdn --origin 127.0.0.1:8080 --listen 127.0.0.1:0 --name edge-1 \\
        --max-bytes 67108864 --default-ttl 86400 --origin-timeout 30 --token-file token

GET and HEAD are cached (targets/cdn/edge.py says how); other methods pass through. The
management endpoints are on the same port, under ``/_edge/`` (health, metrics,
invalidations). With ``--network-file`` and ``--region`` the edge is in a region: each
viewer request waits the round trip from the viewer's region, and origin fetches come from
the edge's region (targets/http/netem.py). A bad setting exits 2 naming the field; the
ready line gives ``address``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from targets.cdn.edge import Edge, EdgeConfig
from targets.cdn.policy import KeyPolicy, QueryMode, TtlPolicy
from targets.flags import TargetFlags, hostport
from targets.http.server import HttpServer, ServerLimits, delayed
from targets.runtime import announce_ready, read_token, run_target, stop_signal

log = logging.getLogger("targets.cdn")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    flags = TargetFlags(
        "python -m targets.cdn",
        "A CDN edge cache with CloudFront's semantics in front of one origin: TTLs from "
        "Cache-Control/Expires, revalidation (304 -> RefreshHit), request collapsing, "
        "stale-if-error, invalidations; X-Cache, Age and Via on every answer.",
    )
    p = flags.parser
    p.add_argument("--origin", type=hostport, required=True, metavar="HOST:PORT")
    p.add_argument(
        "--max-bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="cache capacity in bytes (LRU eviction; also the largest object kept)",
    )
    p.add_argument("--min-ttl", type=float, default=0.0, help="MinTTL seconds (default 0)")
    p.add_argument(
        "--default-ttl",
        type=float,
        default=None,
        help="TTL when the origin sends no Cache-Control TTL or Expires (default 86400)",
    )
    p.add_argument("--max-ttl", type=float, default=None, help="MaxTTL seconds (default 31536000)")
    p.add_argument(
        "--origin-timeout",
        type=float,
        default=30.0,
        help="seconds to connect to the origin, and between its bytes (then 504)",
    )
    p.add_argument(
        "--cache-query",
        choices=[m.value for m in QueryMode],
        default=QueryMode.NONE.value,
        help="query strings in the cache key: none, all, or the --query-names allow list",
    )
    p.add_argument(
        "--query-names", default="", help="comma-separated query names (with allow-list)"
    )
    p.add_argument("--idle-timeout", type=float, default=60.0, help="viewer keep-alive seconds")
    flags.name("edge", "name in X-Cache, Via, logs and error bodies")
    flags.listen("viewer address (default 127.0.0.1:0: loopback, any free port)")
    flags.token_file("file with the token POST /_edge/invalidations requires")
    flags.network()
    return flags.parse(argv)


def build(args: argparse.Namespace, token: str | None) -> Edge:
    """The edge the flags describe; `ValueError` (the core's, naming the field) if not."""
    names = frozenset(n.strip() for n in args.query_names.split(",") if n.strip())
    keys = KeyPolicy(query=QueryMode(args.cache_query), query_names=names)
    ttls = TtlPolicy(min_ttl=args.min_ttl, default_ttl=args.default_ttl, max_ttl=args.max_ttl)
    if args.origin_timeout <= 0:
        raise ValueError(f"--origin-timeout: must be > 0 (got {args.origin_timeout})")
    return Edge(
        EdgeConfig(
            name=args.name,
            origin=args.origin,
            max_bytes=args.max_bytes,
            origin_timeout_s=args.origin_timeout,
            keys=keys,
            ttls=ttls,
            token=token,
            network=args.network,
        )
    )


async def serve(args: argparse.Namespace) -> int:
    token = read_token(args.token_file, flag="--token-file")
    edge = build(args, token)
    limits = ServerLimits(name=args.name, keepalive_timeout_s=args.idle_timeout)
    http = HttpServer(delayed(edge, edge.delays), limits)
    await http.listen(*args.listen)
    host, port = http.address
    stopped = stop_signal()
    announce_ready(name=args.name, address=f"{host}:{port}", origin="{}:{}".format(*args.origin))
    signame = await stopped
    log.info("%s: closing the listener, finishing requests in flight", signame)
    await http.shutdown(5.0)
    await edge.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_target("targets.cdn", parse_args(argv), serve)


if __name__ == "__main__":
    sys.exit(main())
