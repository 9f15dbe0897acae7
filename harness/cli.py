"""The `harness` command line. The one place that turns errors into exit codes:
0 success, 1 the run showed a failure it was asked to catch, 2 bad input or a broken lab.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from harness.errors import InputError
from harness.labinfo import LabInfo, NoLab, status_table
from targets.http.loop import run

if TYPE_CHECKING:
    from harness.topology import Topology

# Commands import what they need when they run: `harness chaos` must answer in a blink, not
# after loading FastAPI, pydantic models, the Grafana SDK and the whole lab.
ACTION_NAMES = ("kill", "stop", "pause", "resume", "restart", "resize", "add", "remove",
                "latency", "errors", "clear")  # fmt: skip

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


DOWN_TIMEOUT_S = 60.0  # `harness down` waits this long for the lab to drain and stop
SHOWCASE = Path(__file__).resolve().parents[1] / "chaos" / "scenarios" / "showcase.yaml"


@app.command()
def demo(
    quick: Annotated[
        bool, typer.Option(help="one load balancer and its servers only: no Prometheus, Locust")
    ] = False,
    report: Annotated[Path | None, typer.Option(help="folder for the reports")] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="folder for logs (default runs/<time>)")
    ] = None,
) -> None:
    """The lab in one run: the shop under a rush while servers are killed, added, removed."""
    if quick:
        _quick_demo(_run_dir(run_dir))
        return
    run_command(SHOWCASE, report=report, run_dir=run_dir)


def _quick_demo(folder: Path) -> None:
    from harness.demo import DemoSettings, render, run_demo
    from harness.supervisor import StartError

    settings = DemoSettings()
    console.print(f"starting a load balancer and {settings.servers} servers; logs in {folder}/")
    try:
        result = run(run_demo(settings, folder))
    except (StartError, TimeoutError) as exc:
        _fail(str(exc))
    console.print(render(result))


@app.command()
def up(
    topology: Annotated[
        Path | None, typer.Option(help="topology file (default: the shipped shop topology)")
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="folder for logs (default runs/<time>)")
    ] = None,
    control_port: Annotated[int, typer.Option(help="control API port (0: any free)")] = 0,
    live: Annotated[bool, typer.Option(help="live table of instances")] = True,
    prometheus: Annotated[bool, typer.Option(help="run Prometheus (Debian's package)")] = True,
    locust: Annotated[bool, typer.Option(help="run the Locust web UI")] = True,
    load_workers: Annotated[
        int, typer.Option(min=0, max=64, help="Locust worker processes (0: one process)")
    ] = 0,
    swarm_limit_s: Annotated[
        float, typer.Option(min=10, help="each swarm started in the UI stops after this")
    ] = 600.0,
    grafana_url: Annotated[
        str | None,
        typer.Option(
            envvar="RUSHLAB_GRAFANA_URL",
            help="a running Grafana: chaos events become annotations "
            "(token from RUSHLAB_GRAFANA_TOKEN)",
        ),
    ] = None,
) -> None:
    """Start the lab in the foreground; Ctrl-C (or `harness down`) stops every process."""
    from harness.control import Grafana
    from harness.prometheus import PrometheusError, find_binary
    from harness.session import Extra, run_session, with_locust, with_prometheus
    from harness.supervisor import StartError

    spec = _load_topology(topology)
    extras: list[Extra] = []
    if prometheus:
        try:
            find_binary("prometheus")
        except PrometheusError as exc:
            _fail(str(exc))
        extras.append(with_prometheus)
    if locust:
        extras.append(with_locust(load_workers, swarm_limit_s))
    grafana = None
    if grafana_url:
        token = os.environ.get("RUSHLAB_GRAFANA_TOKEN", "")
        if not token:
            _fail("--grafana-url needs a service-account token in RUSHLAB_GRAFANA_TOKEN")
        grafana = Grafana(grafana_url.rstrip("/"), token)
    folder = _run_dir(run_dir)
    console.print(f"starting topology {spec.name!r}; logs in {folder}/", style="bold")

    def ready(info: LabInfo) -> None:
        for name, url in info.urls.items():
            console.print(f"  {name}: {url}")
        token = info.token_file.absolute()
        shown = token.relative_to(Path.cwd()) if token.is_relative_to(Path.cwd()) else token
        console.print(f"  token: {shown}  (stop with Ctrl-C or `harness down`)")

    with Live(console=console, auto_refresh=False, transient=True) as screen:

        def show(table: Table) -> None:
            if live:
                screen.update(table, refresh=True)

        try:
            run(
                run_session(
                    spec,
                    folder,
                    on_ready=ready,
                    render=show,
                    extras=extras,
                    control_port=control_port,
                    grafana=grafana,
                )
            )
        except (StartError, TimeoutError, OSError) as exc:
            console.print(f"error: {exc}", style="red")
            raise typer.Exit(2) from None
    console.print("lab stopped", style="bold")


@app.command("run")
def run_command(
    scenario_file: Annotated[Path, typer.Argument(help="a scenario file (chaos/scenarios/*.yaml)")],
    report: Annotated[
        Path | None, typer.Option(help="folder for result.json, junit.xml, report.html")
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="folder for logs (default runs/<time>)")
    ] = None,
) -> None:
    """Run a scenario headless and judge its SLOs: exit 0 pass, 1 violated, 2 invalid run."""
    from harness.prometheus import PrometheusError, find_binary
    from harness.report import render_summary, write_reports
    from harness.runner import run_scenario
    from harness.scenario import load_scenario
    from harness.supervisor import StartError

    try:
        scenario = load_scenario(scenario_file)
        find_binary("prometheus")
    except InputError as exc:
        for line in exc.problems:
            console.print(line, style="red", highlight=False)
        raise typer.Exit(2) from None
    except PrometheusError as exc:
        _fail(str(exc))
    folder = _run_dir(run_dir)
    reports = report or folder / "report"
    console.print(f"scenario {scenario.name!r}: {scenario.description}", style="bold")
    try:
        result = run(run_scenario(scenario, folder, progress=console.print))
    except (StartError, TimeoutError, OSError, PrometheusError) as exc:
        _fail(f"the run broke: {exc} (logs in {folder}/)")
    paths = write_reports(result, reports)
    console.print(render_summary(result), highlight=False)
    console.print(f"reports: {', '.join(str(p) for p in paths.values())}")
    raise typer.Exit(result.exit_code)


@app.command()
def down() -> None:
    """Stop the running lab (the `harness up` process and everything it started)."""
    try:
        info = LabInfo.read()
    except NoLab:
        console.print("no lab is running")
        return
    os.kill(info.pid, signal.SIGTERM)
    console.print(f"stopping the lab in {info.run_dir} (pid {info.pid})")
    deadline = time.monotonic() + DOWN_TIMEOUT_S
    while info.running() and time.monotonic() < deadline:
        time.sleep(0.1)
    if info.running():
        _fail(f"the lab (pid {info.pid}) is still stopping after {DOWN_TIMEOUT_S:g} s")
    console.print("lab stopped")


@app.command()
def status() -> None:
    """Every instance of the running lab: pid, address, state, load balancer view."""
    info = _lab()
    code, body = run(info.call("GET", "/status"))
    if code != 200:
        _fail(f"control API answered {code}: {body}")
    console.print(status_table(body))


@app.command()
def chaos(
    action: Annotated[str, typer.Argument(help=f"one of: {', '.join(ACTION_NAMES)}")],
    service: Annotated[str, typer.Argument(help="service name, e.g. orders")],
    count: Annotated[int, typer.Option(min=1, max=64, help="how many instances")] = 1,
    instance: Annotated[str | None, typer.Option(help="this instance (default: random)")] = None,
    every: Annotated[
        bool, typer.Option("--all", help="every instance it can act on (default: one, random)")
    ] = False,
    latency_ms: Annotated[float | None, typer.Option(help="for latency")] = None,
    error_rate: Annotated[float | None, typer.Option(help="for errors, 0..1")] = None,
    slots: Annotated[int | None, typer.Option(help="for resize: the new capacity")] = None,
) -> None:
    """Apply one chaos action to the running lab."""
    if action not in ACTION_NAMES:
        _fail(f"unknown action {action!r}; actions: {', '.join(ACTION_NAMES)}")
    info = _lab()
    payload: dict[str, object] = {"action": action, "service": service, "count": count}
    if every:
        payload["all"] = True
    for key, value in (
        ("instance", instance),
        ("latency_ms", latency_ms),
        ("error_rate", error_rate),
        ("slots", slots),
    ):
        if value is not None:
            payload[key] = value
    code, body = run(info.call("POST", "/chaos", payload))
    if code != 200:
        detail = body.get("detail") if isinstance(body, dict) else body
        choices = body.get("choices") if isinstance(body, dict) else None
        _fail(
            f"{action} {service}: {detail}" + (f" (valid: {', '.join(choices)})" if choices else "")
        )
    event = body["event"]
    console.print(
        f"{event['action']} {event['service']} {', '.join(event['instances'])}: {event['detail']}"
    )


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="a topology or scenario file")],
) -> None:
    """Check a topology or scenario file; errors name file:line:col and the field."""
    from harness.topology import Topology
    from harness.yamlfile import validate as validate_yaml

    data = _read(file)
    kind = "topology" if isinstance(data, dict) and "services" in data else "scenario"
    try:
        if kind == "topology":
            validate_yaml(data, Topology, file)
        else:
            from harness.scenario import load_scenario

            load_scenario(file)
    except InputError as exc:
        for line in exc.problems:
            console.print(line, style="red", highlight=False)
        raise typer.Exit(2) from None
    console.print(f"{file}: a valid {kind}")


dashboards_app = typer.Typer(help="Grafana dashboards as code.", no_args_is_help=True)
app.add_typer(dashboards_app, name="dashboards")


@dashboards_app.command("build")
def dashboards_build(
    out: Annotated[Path | None, typer.Option(help="folder (default dashboards/generated)")] = None,
) -> None:
    """Generate the dashboards' JSON and Grafana's provisioning files from the code."""
    from dashboards.build import GENERATED, write_all

    for path in write_all(out or GENERATED):
        console.print(f"wrote {path}")


def _load_topology(path: Path | None) -> Topology:
    from harness.topology import load_topology

    try:
        return load_topology(path)
    except InputError as exc:
        for line in exc.problems:
            console.print(line, style="red", highlight=False)
        raise typer.Exit(2) from None


def _read(path: Path) -> object:
    from harness.yamlfile import read_yaml

    try:
        return read_yaml(path)
    except InputError as exc:
        _fail(str(exc))
        raise


def _lab() -> LabInfo:
    try:
        return LabInfo.read()
    except NoLab as exc:
        _fail(str(exc))
        raise


def _fail(message: str) -> NoReturn:
    console.print(f"error: {message}", style="red", highlight=False)
    raise typer.Exit(2)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
