"""The flags every target process shares (`python -m targets.X`), and their old spellings.

One vocabulary: the same concept has the same flag in every target.

==========================  ================================================================
``--name NAME``             this instance's name: logs, the ready line, metrics, LB target id
``--listen HOST:PORT``      the socket it serves on (default ``127.0.0.1:0``: loopback, any
                            free port; the ready line says which)
``--control-listen H:P``    its control API's socket, for a target that has one of its own
``--token-file FILE``       the bearer token this process *requires* (control or admin API)
``--<peer>-control H:P``    a peer's control API this process calls: ``--lb-control`` (a load
                            balancer's), ``--lab-control`` (the harness's)
``--<peer>-token-file F``   the token it *presents* to that peer: ``--lb-token-file``,
                            ``--lab-token-file``
``--network-file FILE``     with ``--region NAME``: the lab's simulated round trips, and the
                            region this process is in (targets/http/netem.py)
``--log-level LEVEL``       debug, info, warning, error, critical
==========================  ================================================================

`TargetFlags` builds a target's parser with these in one argument group; `parse` gives every
address as `(host, port)`. An old spelling (`--host`/`--port`, `--instance-id`,
`--control-token-file`, ...) keeps working for one release: it does what the new flag does
and prints `PROG: warning: OLD is deprecated; use NEW` on stderr. A bad value exits 2 with
argparse's line naming the flag (`argument --listen: expected HOST:PORT, got 'x'`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final

from targets.http.netem import Network, NetworkError
from targets.runtime import parse_hostport

HostPort = tuple[str, int]
LOOPBACK_ANY: Final[HostPort] = ("127.0.0.1", 0)
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")


def hostport(value: str) -> HostPort:
    """argparse type of every address flag: `127.0.0.1:8080` -> ("127.0.0.1", 8080)."""
    try:
        return parse_hostport(value, flag="HOST:PORT")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}") from None


def _port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port 0..65535, got {value!r}")
    return int(value)


class _Deprecated(argparse.Action):
    """An old spelling: warn on stderr, then store where the new flag stores (and in `also`)."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        *,
        use: str,
        also: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(
            option_strings, dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs
        )
        self.use = use
        self.also = also

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(
            f"{parser.prog}: warning: {option_string} is deprecated; use {self.use}",
            file=sys.stderr,
        )
        for dest in (self.dest, *self.also):
            setattr(namespace, dest, values)


class TargetFlags:
    """A target's argument parser: its own flags on `parser`, the shared ones through the
    methods below (in the group "flags every target shares"), then `parse`."""

    def __init__(self, prog: str, description: str) -> None:
        self.parser = argparse.ArgumentParser(prog=prog, description=description)
        self.shared = self.parser.add_argument_group("flags every target shares")
        self._old: dict[str, list[str]] = {}  # NEW -> its old spellings, for the help's epilog
        self._finish: list[Callable[[argparse.Namespace], None]] = []
        self.shared.add_argument(
            "--log-level",
            type=str.lower,
            choices=LOG_LEVELS,
            default="info",
            metavar="LEVEL",
            help=f"{', '.join(LOG_LEVELS)} (default info)",
        )

    def name(self, default: str | None, help: str, *, old: str | None = None) -> None:
        """`--name NAME` (`args.name`): the instance's name."""
        self.shared.add_argument("--name", default=default, metavar="NAME", help=help)
        if old is not None:
            self.renamed(old, "--name", "name")

    def listen(
        self,
        help: str,
        *,
        old_host: str | None = "--host",
        old_port: str | None = "--port",
    ) -> None:
        """`--listen HOST:PORT` (`args.listen`); the old `--host`/`--port` pair sets it too."""
        self._address("--listen", "listen", help, old_host, old_port)

    def control_listen(
        self,
        help: str = "control API address (default 127.0.0.1:0; keep it private)",
        *,
        old: str | None = None,
        old_host: str | None = None,
        old_port: str | None = None,
    ) -> None:
        """`--control-listen HOST:PORT` (`args.control_listen`)."""
        self._address("--control-listen", "control_listen", help, old_host, old_port)
        if old is not None:
            self.renamed(old, "--control-listen", "control_listen", type=hostport)

    def token_file(self, help: str, *, old: str | None = None) -> None:
        """`--token-file FILE` (`args.token_file`): the token this process requires."""
        self._value("--token-file", str, "FILE", help, old=old)

    def peer_control(
        self, peer: str, help: str, *, required: bool = False, old: str | None = None
    ) -> None:
        """`--<peer>-control HOST:PORT` (`args.<peer>_control`): a peer's control API."""
        self._value(f"--{peer}-control", hostport, "HOST:PORT", help, required=required, old=old)

    def peer_token_file(
        self, peer: str, help: str, *, required: bool = False, old: str | None = None
    ) -> None:
        """`--<peer>-token-file FILE` (`args.<peer>_token_file`): the token presented to it."""
        self._value(f"--{peer}-token-file", str, "FILE", help, required=required, old=old)

    def renamed(
        self,
        old: str,
        new: str,
        dest: str,
        *,
        also: tuple[str, ...] = (),
        type: Callable[[str], Any] = str,
    ) -> None:
        """`old` still sets `dest` (and `also`), warning that `new` replaces it."""
        self.parser.add_argument(old, dest=dest, action=_Deprecated, use=new, also=also, type=type)
        self._old.setdefault(new, []).append(old)

    def network(self) -> None:
        """`--network-file FILE` and `--region NAME` (`args.network`: a `Network`, or None
        without them): this process's region, and the round trips that delay its clients
        (targets/http/netem.py)."""
        self.shared.add_argument(
            "--network-file", metavar="FILE", help="the lab's regions and round trips (JSON)"
        )
        self.shared.add_argument("--region", metavar="NAME", help="the region this process is in")

        def finish(args: argparse.Namespace) -> None:
            path, region = vars(args).pop("network_file"), vars(args).pop("region")
            args.network = None
            if (path is None) != (region is None):
                self.parser.error("--network-file and --region go together")
            if path is not None:
                try:
                    args.network = Network.load(path, region)
                except NetworkError as exc:
                    self.parser.error(f"--network-file: {exc}")

        self._finish.append(finish)

    def parse(self, argv: Sequence[str] | None = None) -> argparse.Namespace:
        """The arguments, every address as (host, port); exits 2 naming a bad flag."""
        if self._old:
            renames = "; ".join(f"{', '.join(old)} -> {new}" for new, old in self._old.items())
            self.parser.epilog = (
                f"Old spellings, accepted for one release (each warns on stderr): {renames}."
            )
        args = self.parser.parse_args(argv)
        for finish in self._finish:
            finish(args)
        return args

    def _address(
        self, flag: str, dest: str, help: str, old_host: str | None, old_port: str | None
    ) -> None:
        self.shared.add_argument(flag, type=hostport, metavar="HOST:PORT", help=help)
        use = f"{flag} HOST:PORT"
        host_dest, port_dest = f"_old_{dest}_host", f"_old_{dest}_port"
        if old_host is not None:
            self.renamed(old_host, use, host_dest)
        if old_port is not None:
            self.renamed(old_port, use, port_dest, type=_port)
        old = "/".join(o for o in (old_host, old_port) if o)

        def finish(args: argparse.Namespace) -> None:
            host = vars(args).pop(host_dest, None)
            port = vars(args).pop(port_dest, None)
            if host is None and port is None:
                if getattr(args, dest) is None:
                    setattr(args, dest, LOOPBACK_ANY)
                return
            if getattr(args, dest) is not None:
                self.parser.error(f"{flag}: give it alone, not with the old {old}")
            host = LOOPBACK_ANY[0] if host is None else host
            setattr(args, dest, (host, LOOPBACK_ANY[1] if port is None else port))

        self._finish.append(finish)

    def _value(
        self,
        flag: str,
        type: Callable[[str], Any],
        metavar: str,
        help: str,
        *,
        required: bool = False,
        old: str | None = None,
    ) -> None:
        dest = flag.removeprefix("--").replace("-", "_")
        self.shared.add_argument(flag, type=type, metavar=metavar, help=help)
        if old is not None:
            self.renamed(old, flag, dest, type=type)
        if required:  # checked after parsing: an old spelling may be what gave it
            self._require(dest, flag)

    def _require(self, dest: str, flag: str) -> None:
        def finish(args: argparse.Namespace) -> None:
            if getattr(args, dest) is None:
                self.parser.error(f"the following arguments are required: {flag}")

        self._finish.append(finish)
