"""The `harness` command line. The one place that turns errors into exit codes:
0 success, 1 the run showed a failure it was asked to catch, 2 bad input or a broken lab.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from harness.demo import DemoSettings, render, run_demo
from harness.supervisor import StartError
from targets.http.loop import run

app = typer.Typer(
    name="harness",
    help="A load-testing and chaos lab: real load balancers and servers on your machine.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@app.callback()
def _root() -> None:
    """A load-testing and chaos lab: real load balancers and servers on your machine."""


def _run_dir(given: Path | None) -> Path:
    return given or Path("runs") / time.strftime("%Y%m%d-%H%M%S")


@app.command()
def demo(
    seconds: Annotated[float, typer.Option(min=4, max=600, help="length of the load")] = 12.0,
    servers: Annotated[int, typer.Option(min=2, max=32, help="servers at the start")] = 3,
    users: Annotated[int, typer.Option(min=1, max=512, help="concurrent virtual users")] = 24,
    run_dir: Annotated[
        Path | None, typer.Option(help="folder for logs (default runs/<time>)")
    ] = None,
) -> None:
    """Start a load balancer and servers, load them, kill/add/stop servers mid-run, report."""
    settings = DemoSettings(seconds=seconds, servers=servers, users=users)
    folder = _run_dir(run_dir)
    console.print(
        f"starting a load balancer and {servers} servers; logs in {folder}/", style="bold"
    )
    try:
        result = run(run_demo(settings, folder))
    except (StartError, TimeoutError) as exc:
        console.print(f"error: {exc}", style="red")
        raise typer.Exit(2) from None
    console.print(render(result))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
