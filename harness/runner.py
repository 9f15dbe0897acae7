"""Running a scenario: the lab, Prometheus and Locust up, the chaos timeline played on the load's
clock, then the SLOs judged from Prometheus and the reports written.

    load_scenario -> LabRuntime.start beside Prometheus -> every scrape target written
        -> Locust (headless, stages) -> every target up
        -> t = 0 once Prometheus has scraped every target twice (the start file)
        -> chaos steps at their at_s
        -> Locust's test ends by itself -> the final scrape -> Locust released
        -> range queries on the run's grid -> slo.evaluate + slo.check_run -> RunResult

The run's clock and its end are Prometheus's, so no count is lost at either edge. Locust holds
its test until Prometheus has scraped it twice (every series at 0, `locustfiles/plugin.py`) and
the runner writes the start file, which it does, at t = 0, once Prometheus has scraped every
target successfully twice (`up` 1: a failed scrape is no sample): a target scraped only once
would leave its rate() undefined at the first grid point (Prometheus scrapes each target at its
own offset in the interval). After the test stops, Locust stays until the runner releases it:
the run ends at the first instant at which Prometheus holds every Locust process's final counts
(`locust_counts_final` is 1 for all), and every SLO is judged on a 1 s grid counted back from
that instant, so the last point is each counter's final value and judging never starts before
the final scrape has landed.

One typed `Scenario` flows from the file to the result; the verdict is data, the exit code is the
CLI's business. When an SLO expression returns several series, the worst point (the highest for
a `max` bound, the lowest for a `min`) at each time is judged. A point where the expression
has no value is skipped if a scrape target it reads was down then (`_down_times`), else it is
missing data (`harness/slo.py`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from chaos.actions import ChaosRequest
from chaos.vocabulary import BY_NAME
from dashboards.queries import metric_names
from harness import slo
from harness.components.entry import client_regions, entry_points, known_hosts, resolver
from harness.control import Controller, control_app
from harness.errors import ChaosRefused
from harness.livemap import LiveMap
from harness.locust import LocustHandles, LocustPlan, start_locust
from harness.prometheus import Prometheus, Series
from harness.report import Plot, RunResult, standard_plots
from harness.runtime import LabRuntime
from harness.scenario import ChaosStep, Scenario, resolve_timeline
from harness.supervisor import Supervisor, free_port
from locustfiles.stages import Stage
from targets import asgi
from targets.runtime import parse_hostport

log = logging.getLogger(__name__)
FINAL_GRACE_S = 60.0  # after the load's end: Locust stops its users and is scraped again
POLL_S = 0.1
Progress = Callable[[str], None]


async def run_scenario(scenario: Scenario, run_dir: Path, progress: Progress = print) -> RunResult:
    """Run `scenario` for real; the result holds verdicts, problems, events and plots."""
    async with Supervisor(run_dir) as supervisor:
        lab = LabRuntime(scenario.system, supervisor, seed=scenario.seed)
        progress(f"starting topology {scenario.system.name!r} and Prometheus")
        # Prometheus hands new targets to its scrapers only every 5 s, counted from its own
        # start (harness/prometheus.py): started first, that clock runs while the topology
        # boots. `_run` writes every target at once when the lab serves.
        starting = asyncio.create_task(lab.start_prometheus())
        try:
            await lab.start()
            await lab.wait_healthy()
            prometheus = await starting
        finally:
            await _cancel(starting)
        controller = Controller(lab)
        control = await asgi.start(control_app(controller))
        try:
            return await _run(scenario, lab, prometheus, controller, control.port, progress)
        finally:
            await control.stop()


async def _cancel(task: asyncio.Task[Prometheus]) -> None:
    """Cancel `task` unless done, and wait for it; its error, if any, is not the one raised
    (whatever stopped the lab from starting is)."""
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()


async def _run(  # noqa: PLR0917 - what run_scenario started
    scenario: Scenario,
    lab: LabRuntime,
    prometheus: Prometheus,
    controller: Controller,
    control_port: int,
    progress: Progress,
) -> RunResult:
    wait = scenario.load.wait_s or (0.5, 2.0)
    load = scenario.load
    services, host = entry_points(
        lab, side_by_side=load.side_by_side, via_dns=load.via_dns, by_region=load.by_region
    )
    dns = resolver(lab)
    plan = LocustPlan(
        services=services,
        host=host,
        # The lab's bases, and the entry the runner chose (a DNS name with `via_dns`): a
        # scenario's users go where the lab sent them, and nowhere else.
        hosts={**known_hosts(lab), **({"entry": host} if host else {})},
        stages=tuple(Stage(s.duration_s, s.users, s.spawn_rate) for s in scenario.load.stages),
        workers=scenario.load.workers,
        metrics_port=free_port(),
        worker_metrics_ports=tuple(free_port() for _ in range(scenario.load.workers)),
        control_url=f"http://127.0.0.1:{control_port}",
        control_token_file=lab.token_file,
        wait_s=(wait[0], wait[1]),
        timeout_s=scenario.load.timeout_s or 10.0,
        locustfile=scenario.load.locustfile_path,
        dns=parse_hostport(dns, flag="dns") if scenario.load.via_dns and dns else None,
        poison_rate=scenario.load.poison_rate,
        release_file=lab.run_dir / "locust.release",
        start_file=lab.run_dir / "locust.start",
        regions=client_regions(lab) if load.by_region else {},
    )
    lab.scrape(f"127.0.0.1:{control_port}", role="harness", instance="harness")
    await lab.start_autoscalers(("127.0.0.1", control_port))
    for i, port in enumerate((plan.metrics_port, *plan.worker_metrics_ports)):
        name = "locust" if i == 0 else f"locust-worker-{i}"
        lab.scrape(f"127.0.0.1:{port}", service="load", role="locust", instance=name)
    # Every target in one file: Prometheus discovers them together.
    lab.notify()
    steps = resolve_timeline(
        scenario,
        {group.name: sorted(group.instances) for group in lab.groups()},
        scenario.system,
    )
    progress(f"load for {scenario.duration_s:g} s, {len(steps)} chaos step(s)")
    processes = 1 + scenario.load.workers
    # Locust boots while Prometheus discovers the targets; it holds its test until scraped.
    locust = await start_locust(lab.supervisor, plan, lab.run_dir)
    targets = len(lab.scrape_targets())
    progress(f"prometheus at {prometheus.url}; waiting for {targets} scrape targets")
    await prometheus.wait_for_targets(targets, timeout_s=60)
    problems: list[str] = []
    snapshot: asyncio.Task[dict[str, Any] | None] | None = None
    try:
        # Two successful scrapes of every target (Locust's included, held before its test),
        # so every rate() has a value at t = 0: a target scraped once then would read "no
        # data". `up` is 0 for a failed scrape, which gives no sample of anything else.
        twice = f"count(sum_over_time(up[1m]) >= 2) >= {targets}"
        if await _until(prometheus, twice, locust, timeout_s=60) is None:
            problems.append("Prometheus never scraped every target twice before the test began")
        assert plan.start_file is not None
        plan.start_file.touch()
        started = round(time.time(), 3)  # milliseconds, as Prometheus keeps time
        live = LiveMap(lab, lambda: controller.events.events)
        snapshot = asyncio.create_task(_snapshot(live, started + scenario.duration_s - 2))
        refused = await _play(steps, controller, started, progress)
        final = await _until(
            prometheus,
            f"count(locust_counts_final == 1) >= {processes}",
            locust,
            timeout_s=started + scenario.duration_s + FINAL_GRACE_S - time.time(),
        )
        if final is None:
            problems.append(
                "the load generator's final counts never reached Prometheus (Locust exited"
                " or never stopped): the run is judged up to its last scrape"
            )
        ended = final or round(time.time(), 3)
    except BaseException:
        if snapshot is not None:
            snapshot.cancel()
        raise
    finally:
        assert plan.release_file is not None
        plan.release_file.touch()
    code = await locust.wait(timeout_s=60)
    progress(f"load done (locust exit {code}); judging {ended - started:.1f} s")
    # Every applied action is in the controller's log, the timeline's and any other caller's
    # (an autoscaler's decisions); refused timeline steps are events too.
    applied = [
        slo.Event(e.at - started, e.action, e.service, e.instances, e.detail)
        for e in controller.events.events
    ]
    events = sorted([*applied, *refused], key=lambda event: event.t)
    pictured = await snapshot if snapshot is not None else None
    return await _judge(
        scenario, prometheus, lab, started, ended, events, problems, map_state=pictured
    )


async def _snapshot(live: LiveMap, at: float) -> dict[str, Any] | None:
    """The live map's state at `at` (unix; the rush still on), for the report's map.html;
    None when it cannot be read (the report then has no map, the verdict is unchanged)."""
    await asyncio.sleep(max(0.0, at - time.time()))
    try:
        return await live.state()
    except Exception:  # a picture of the lab, never a reason to fail a run
        log.warning("the map's snapshot failed", exc_info=True)
        return None


async def _until(
    prometheus: Prometheus, expr: str, locust: LocustHandles, timeout_s: float
) -> float | None:
    """The first time (unix, evaluated then) at which `expr` has a value; None when Locust's
    main process exits first or `timeout_s` passes."""
    deadline = time.time() + max(0.0, timeout_s)
    while locust.main.process.returncode is None and time.time() < deadline:
        at = math.floor(time.time() * 1000) / 1000  # milliseconds, as Prometheus keeps time
        if await prometheus.query(expr, at=at):
            return at
        await asyncio.sleep(POLL_S)
    return None


async def _play(
    steps: list[ChaosStep], controller: Controller, started: float, progress: Progress
) -> list[slo.Event]:
    """Apply each step at its time; steps due at the same time run side by side (the
    controller still orders those on one service). Returns the refused steps as events (the
    controller logs the applied ones)."""
    refused: list[slo.Event] = []
    for at_s, group in itertools.groupby(steps, key=lambda step: step.at_s):
        await asyncio.sleep(max(0.0, started + at_s - time.time()))
        requests = [(step, request) for step in group for request in _requests(step)]
        done = await asyncio.gather(
            *(_apply(step, request, controller, started, progress) for step, request in requests)
        )
        refused.extend(event for event in done if event is not None)
    return refused


async def _apply(
    step: ChaosStep,
    request: ChaosRequest,
    controller: Controller,
    started: float,
    progress: Progress,
) -> slo.Event | None:
    t = time.time() - started
    try:
        event = await controller.chaos(request)
    except ChaosRefused as exc:
        progress(f"{t:6.1f} s  {step.action} {step.service}: refused: {exc.message}")
        return slo.Event(t, step.action, step.service, (), f"refused: {exc}")
    progress(f"{t:6.1f} s  {event.action} {event.service} {' '.join(event.instances)}")
    return None


def _requests(step: ChaosStep) -> list[ChaosRequest]:
    """The control requests for one resolved step (its instances chosen by the seed)."""
    if BY_NAME[step.action].selects == "new":
        count = max(1, len(step.instances))
        return [ChaosRequest(step.action, step.service, count=count, params=step.params)]
    if not step.instances:  # `clear` with nothing chosen: every running instance
        return [ChaosRequest(step.action, step.service, params=step.params)]
    return [
        ChaosRequest(step.action, step.service, instance=name, params=step.params)
        for name in step.instances
    ]


async def _judge(  # noqa: PLR0917 - the run's facts, gathered by _run
    scenario: Scenario,
    prometheus: Prometheus,
    lab: LabRuntime,
    started: float,
    ended: float,
    events: list[slo.Event],
    problems: list[str],
    *,
    map_state: dict[str, Any] | None = None,
) -> RunResult:
    run = slo.Run(ended - started)

    async def on_grid(expr: str) -> list[Series]:
        """`expr` at the run's grid points (unix time: `started` + each run time)."""
        return await prometheus.query_range(expr, started + run.grid()[0], ended, step=1.0)

    async def series(expr: str, worst: str = "max") -> slo.Series:
        return _worst(await on_grid(expr), started, worst)

    # Every query at once (Prometheus runs them side by side); results kept in their order.
    slos = scenario.slos
    watched = [
        target.labels.get("instance", target.address)
        for target in lab.scrape_targets()
        if target.labels.get("role") in ("lb", "locust")
    ]
    queries = standard_plots(lab.topology)
    measured, down, up, (locust_workers, cpu), found = await asyncio.gather(
        asyncio.gather(*(series(s.expr, "max" if s.op == "<=" else "min") for s in slos)),
        asyncio.gather(*(_down_times(s.expr, prometheus, on_grid, run, started) for s in slos)),
        asyncio.gather(*(series(f'max(up{{instance="{name}"}})') for name in watched)),
        asyncio.gather(series("max(locust_workers)", "min"), series("max(locust_cpu_percent)")),
        asyncio.gather(*(on_grid(line.expr) for query in queries for line in query.lines)),
    )
    data = {s.expr: points for s, points in zip(slos, measured, strict=True)}
    down_at = {s.expr: times for s, times in zip(slos, down, strict=True)}
    verdicts = slo.evaluate(slos, data, events, run, down_at)
    scrape_up = dict(zip(watched, up, strict=True))
    # Workers leave when the last stage ends: judge the connection count before that.
    workers = [p for p in locust_workers if p[0] < scenario.duration_s - 2]
    problems = [
        *problems,
        *slo.check_run(cpu, scenario.load.workers, workers, scrape_up),
        *slo.no_data_problems(verdicts),
    ]
    plots = []
    answers = iter(found)
    for query in queries:
        lines: dict[str, slo.Series] = {}
        for line in query.lines:
            for each in next(answers):
                label = line.label.format_map(_Missing(each.labels))
                lines[label] = [(t - started, v) for t, v in each.points]
        plots.append(Plot(query.title, query.unit, lines))
    return RunResult(
        scenario=scenario.name,
        description=scenario.description,
        started=started,
        ended=ended,
        duration_s=run.duration_s,
        events=events,
        verdicts=verdicts,
        problems=problems,
        plots=plots,
        map_state=map_state,
    )


async def _down_times(
    expr: str,
    prometheus: Prometheus,
    on_grid: Callable[[str], Awaitable[list[Series]]],
    run: slo.Run,
    started: float,
) -> list[float]:
    """The grid times at which a scrape target that exported a metric `expr` reads (during
    the run) was down: killed, paused, or not yet back."""
    names = sorted(metric_names(expr))
    if not names:
        return []
    selector = "{__name__=~" + json.dumps("|".join(re.escape(n) for n in names)) + "}"
    span = f"{math.ceil(run.duration_s) + 2}s"
    sources = await prometheus.query(
        f"count by (instance) (last_over_time({selector}[{span}]))", at=started + run.duration_s
    )
    instances = sorted(s.labels["instance"] for s in sources if "instance" in s.labels)
    if not instances:
        return []
    matcher = json.dumps("|".join(re.escape(i) for i in instances))
    found = await on_grid(f"up{{instance=~{matcher}}}")
    up: dict[float, int] = {}  # grid time -> sources up then (a target chaos took out of
    for series in found:  # the scrape list has no `up` at all: it counts as down)
        for t, v in series.points:
            key = slo.grid_time(t - started)
            up[key] = up.get(key, 0) + (v >= 1)
    return [t for t in run.grid() if up.get(t, 0) < len(instances)]


class _Missing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


def _worst(found: list[Series], started: float, worst: str) -> slo.Series:
    """One series from several: the worst value at each time, in run time. A NaN (a quantile
    without traffic) counts only where no series has a number: it is a value, undefined, not
    an absence."""
    pick = max if worst == "max" else min
    by_time: dict[float, float] = {}
    for s in found:
        for t, v in s.points:
            key = slo.grid_time(t - started)
            held = by_time.get(key)
            if held is None or math.isnan(held):
                by_time[key] = v
            elif not math.isnan(v):
                by_time[key] = pick(held, v)
    return sorted(by_time.items())
