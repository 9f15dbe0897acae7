"""Forward TCP from --listen to --to: a Locust worker's loopback-only /metrics, for Prometheus.

locustfiles/plugin.py serves a worker's metrics on 127.0.0.1:$RUSHLAB_METRICS_PORT, which
nothing outside the worker's container can reach. docker-compose.yml runs this in the worker's
network namespace (`network_mode: service:locust-worker-N`), listening on the compose network.
Standard library only; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.close()


async def _serve(listen: tuple[str, int], to: tuple[str, int]) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.wait_for(asyncio.open_connection(*to), 2.0)
        except (OSError, TimeoutError):
            client_w.close()  # Prometheus records the scrape as failed: `up` 0
            return
        await asyncio.gather(_pipe(client_r, upstream_w), _pipe(upstream_r, client_w))

    server = await asyncio.start_server(handle, *listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"forwarding {listen[0]}:{listen[1]} -> {to[0]}:{to[1]}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_hostport, required=True, metavar="HOST:PORT")
    parser.add_argument("--to", type=_hostport, required=True, metavar="HOST:PORT")
    args = parser.parse_args()
    asyncio.run(_serve(args.listen, args.to))


if __name__ == "__main__":
    main()
