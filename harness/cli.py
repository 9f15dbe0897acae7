"""The `harness` command line. The one place that turns errors into exit codes:
0 success, 1 the run showed a failure it was asked to catch, 2 bad input or a broken lab.

Every command runs inside `_errors()`, which maps the harness's error tree (harness/errors.py)
to what the user sees: an `InputError` prints its problem lines, any other `RushlabError` (a
`LabError`: a process that did not start, Prometheus, no lab) and the OS's own `OSError` and
`TimeoutError` print one `error:` line; all exit 2.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from chaos.vocabulary import NAMES, PARAMS
from harness.errors import InputError, LabError, NoLab, RushlabError
from harness.labinfo import LabInfo, status_table
from targets.http.loop import run

if TYPE_CHECKING:
    pass

# Commands import what they need when they run: `harness chaos` must answer in a blink, not
# after loading FastAPI, pydantic models, the Grafana SDK and the whole lab.

app = typer.Typer(
    name="harness",
    help="A load-testing and chaos lab: real load balancers and servers on your machine.",
    no_args_is_help=True,
    add_completion=False,
)


def _say(*objects: object, **options: Any) -> None:
    """Print to the terminal (a Console per call: no module-level state)."""
    Console().print(*objects, **options)


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

    settings = DemoSettings()
    _say(f"starting a load balancer and {settings.servers} servers; logs in {folder}/")
    with _errors():
        result = run(run_demo(settings, folder))
    _say(render(result))


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
            help="a running Grafana 11: gets the lab's Prometheus as a data source, every "
            "dashboard, and chaos events as annotations (token from RUSHLAB_GRAFANA_TOKEN "
            "or --grafana-token-file)",
        ),
    ] = None,
    grafana_token_file: Annotated[
        Path | None,
        typer.Option(
            envvar="RUSHLAB_GRAFANA_TOKEN_FILE",
            help="a file holding the Grafana service-account token (instead of "
            "RUSHLAB_GRAFANA_TOKEN)",
        ),
    ] = None,
) -> None:
    """Start the lab in the foreground; Ctrl-C (or `harness down`) stops every process."""
    from dashboards.grafana import check_grafana
    from harness.control import Grafana
    from harness.prometheus import find_binary
    from harness.session import Extra, run_session, with_locust, with_prometheus
    from harness.topology import load_topology

    with _errors():
        spec = load_topology(topology)
        if prometheus:
            find_binary("prometheus")
    extras: list[Extra] = []
    if prometheus:
        extras.append(with_prometheus)
    if locust:
        extras.append(with_locust(load_workers, swarm_limit_s))
    grafana = None
    if grafana_url:
        grafana = Grafana(grafana_url.rstrip("/"), _grafana_token(grafana_token_file))
        with _errors():  # a Grafana that refuses starts nothing
            version = run(check_grafana(grafana.url, grafana.token))
        if not prometheus:
            _say("--no-prometheus: Grafana gets the chaos annotations only")
        _say(f"Grafana {version} at {grafana.url} accepts the token")
    folder = _run_dir(run_dir)
    _say(f"starting topology {spec.name!r}; logs in {folder}/", style="bold")

    def ready(info: LabInfo) -> None:
        for name, url in info.urls.items():
            _say(f"  {name}: {url}")
        token = info.token_file.absolute()
        shown = token.relative_to(Path.cwd()) if token.is_relative_to(Path.cwd()) else token
        _say(f"  token: {shown}  (stop with Ctrl-C or `harness down`)")

    with Live(console=Console(), auto_refresh=False, transient=True) as screen:

        def show(table: Table) -> None:
            if live:
                screen.update(table, refresh=True)

        with _errors():
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
    _say("lab stopped", style="bold")


def _grafana_token(token_file: Path | None) -> str:
    """The Grafana token: the file's content when one is named, else RUSHLAB_GRAFANA_TOKEN."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            _fail(f"--grafana-token-file {token_file}: {exc.strerror or exc}")
        if not token:
            _fail(f"--grafana-token-file {token_file} is empty")
        return token
    token = os.environ.get("RUSHLAB_GRAFANA_TOKEN", "")
    if not token:
        _fail(
            "--grafana-url needs a service-account token in RUSHLAB_GRAFANA_TOKEN or a file "
            "named by --grafana-token-file (RUSHLAB_GRAFANA_TOKEN_FILE)"
        )
    return token


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
    from harness.prometheus import find_binary
    from harness.report import render_summary, write_reports
    from harness.runner import run_scenario
    from harness.scenario import load_scenario

    with _errors():
        scenario = load_scenario(scenario_file)
        find_binary("prometheus")
    folder = _run_dir(run_dir)
    reports = report or folder / "report"
    _say(f"scenario {scenario.name!r}: {scenario.description}", style="bold")
    with _errors("the run broke: "):
        try:
            result = run(run_scenario(scenario, folder, progress=_say))
        except LabError as exc:
            raise LabError(f"{exc} (logs in {folder}/)") from exc
    paths = write_reports(result, reports)
    _say(render_summary(result), highlight=False)
    _say(f"reports: {', '.join(str(p) for p in paths.values())}")
    raise typer.Exit(result.exit_code)


@app.command()
def down() -> None:
    """Stop the running lab (the `harness up` process and everything it started)."""
    try:
        info = LabInfo.read()
    except NoLab:
        _say("no lab is running")
        return
    os.kill(info.pid, signal.SIGTERM)
    _say(f"stopping the lab in {info.run_dir} (pid {info.pid})")
    deadline = time.monotonic() + DOWN_TIMEOUT_S
    while info.running() and time.monotonic() < deadline:
        time.sleep(0.1)
    if info.running():
        _fail(f"the lab (pid {info.pid}) is still stopping after {DOWN_TIMEOUT_S:g} s")
    _say("lab stopped")


@app.command()
def status() -> None:
    """Every instance of the running lab: pid, address, state, load balancer view."""
    with _errors():
        info = LabInfo.read()
        code, body = run(info.call("GET", "/status"))
    if code != 200:
        _fail(f"control API answered {code}: {body}")
    _say(status_table(body))


@app.command()
def chaos(
    action: Annotated[str, typer.Argument(help=f"one of: {', '.join(NAMES)}")],
    service: Annotated[str, typer.Argument(help="service name, e.g. orders")],
    count: Annotated[int, typer.Option(min=1, max=64, help="how many instances")] = 1,
    instance: Annotated[str | None, typer.Option(help="this instance (default: random)")] = None,
    every: Annotated[
        bool, typer.Option("--all", help="every instance it can act on (default: one, random)")
    ] = False,
    latency_ms: Annotated[float | None, typer.Option(help=PARAMS["latency_ms"].help)] = None,
    error_rate: Annotated[float | None, typer.Option(help=PARAMS["error_rate"].help)] = None,
    slots: Annotated[int | None, typer.Option(help=PARAMS["slots"].help)] = None,
    version: Annotated[int | None, typer.Option(help=PARAMS["version"].help)] = None,
    region: Annotated[str | None, typer.Option(help=PARAMS["region"].help)] = None,
) -> None:
    """Apply one chaos action to the running lab (its parameters: chaos/vocabulary.py)."""
    if action not in NAMES:
        _fail(f"unknown action {action!r}; actions: {', '.join(NAMES)}")
    given = {
        "latency_ms": latency_ms,
        "error_rate": error_rate,
        "slots": slots,
        "version": version,
        "region": region,
    }
    payload: dict[str, object] = {"action": action, "service": service, "count": count}
    if every:
        payload["all"] = True
    if instance is not None:
        payload["instance"] = instance
    payload |= {name: value for name, value in given.items() if value is not None}
    with _errors():
        info = LabInfo.read()
        code, body = run(info.call("POST", "/chaos", payload))
    if code != 200:
        detail = body.get("detail") if isinstance(body, dict) else body
        choices = body.get("choices") if isinstance(body, dict) else None
        _fail(
            f"{action} {service}: {detail}" + (f" (valid: {', '.join(choices)})" if choices else "")
        )
    event = body["event"]
    _say(f"{event['action']} {event['service']} {', '.join(event['instances'])}: {event['detail']}")


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="a topology or scenario file")],
) -> None:
    """Check a topology or scenario file; errors name file:line:col and the field."""
    from harness.scenario import load_scenario
    from harness.topology import load_topology
    from harness.yamlfile import read_yaml

    with _errors():
        data = read_yaml(file)
        kind = "topology" if isinstance(data, dict) and "services" in data else "scenario"
        if kind == "topology":
            load_topology(file)
        else:
            load_scenario(file)
    _say(f"{file}: a valid {kind}")


dashboards_app = typer.Typer(help="Grafana dashboards as code.", no_args_is_help=True)
app.add_typer(dashboards_app, name="dashboards")


@dashboards_app.command("build")
def dashboards_build(
    out: Annotated[Path | None, typer.Option(help="folder (default dashboards/generated)")] = None,
) -> None:
    """Generate the dashboards' JSON and Grafana's provisioning files from the code."""
    from dashboards.build import GENERATED, write_all

    for path in write_all(out or GENERATED):
        _say(f"wrote {path}")


@contextmanager
def _errors(context: str = "") -> Iterator[None]:
    """Errors as the user sees them (see the module docstring); `context` leads the line."""
    try:
        yield
    except InputError as exc:
        for line in exc.problems:
            _say(line, style="red", highlight=False)
        raise typer.Exit(2) from None
    except (RushlabError, OSError, TimeoutError) as exc:
        _fail(f"{context}{exc}")


def _fail(message: str) -> NoReturn:
    _say(f"error: {message}", style="red", highlight=False)
    raise typer.Exit(2)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
