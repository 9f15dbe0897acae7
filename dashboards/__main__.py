"""`python -m dashboards build|check`: regenerate dashboards/generated, or check it is current."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dashboards.build import COMPOSE_PROMETHEUS_URL, GENERATED, stale, write_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dashboards",
        description="Grafana dashboards as code: build the JSON and provisioning files.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="write the generated files")
    build.add_argument("--out", type=Path, default=GENERATED, help=f"folder (default {GENERATED})")
    build.add_argument(
        "--prometheus-url",
        default=COMPOSE_PROMETHEUS_URL,
        help=f"the datasource's URL (default {COMPOSE_PROMETHEUS_URL}, for compose)",
    )
    check = commands.add_parser("check", help="exit 1 when a generated file is not current")
    check.add_argument("--out", type=Path, default=GENERATED, help=f"folder (default {GENERATED})")
    args = parser.parse_args(argv)
    if args.command == "build":
        for path in write_all(args.out, args.prometheus_url):
            print(path)
        return 0
    names = stale(args.out)
    for name in names:
        print(f"{args.out / name}: not current; run `python -m dashboards build`", file=sys.stderr)
    return 1 if names else 0


if __name__ == "__main__":
    sys.exit(main())
