"""How long the lab takes to come up, and how long a new instance takes to serve.

(a) `up_ready_s`: from starting `python -m harness up --no-live` to a ready lab, i.e. to
`runs/current.json` appearing (the harness writes it once every service's load balancer sees
all its replicas healthy and Prometheus and the Locust web UI answer). The same with
`--no-prometheus --no-locust` shows what those two cost. Each `harness up` runs with a fresh
temporary directory as working directory (its `runs/` folder, `current.json` included, lands
there, never in the repository's) and is stopped with `python -m harness down` from that
directory; `down_s` is the time from sending `down` to the `up` process's exit.

While `up` starts, the run folder is watched (every 20 ms): the harness opens each child's log
file when it spawns the child, so the time each file appears tells when each step began
(`phases`): Python start-up and the harness's imports (until `control.token`), the services
(load balancers, then their servers, until they are all healthy: the first log of Prometheus or
Locust, or `current.json`), Prometheus (until Locust's log appears), Locust (until
`current.json`).

(b) `add_to_first_request_s`: with the full lab up, from sending `python -m harness chaos add
orders` to the first answer from the new instance through the orders load balancer. Four
threads poll the load balancer (the `orders (load balancer)` URL of `current.json`) with
keep-alive `GET /api/orders/1` from before the command until the new instance (named in the
command's output) has answered one; each answer's JSON says which instance served it.
`add_phases` splits that time with the run folder (the new instance's log appears when the
harness spawns it) and the orders load balancer's log (`registered <name>`, `target <name> ->
healthy`, millisecond timestamps).

Rounds alternate: a full `up` (then one `add`, then `down`), then an `up` without Prometheus and
Locust (then `down`). Nothing is pinned: the lab is a dozen processes and would not fit on one
CPU. The machine's other load shows in these figures: compare only figures from the same run.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.support import PYTHON, REPO, BenchError, Proc, ProcessGroup, log, require_tool

ROUNDS = 3
PATH = "/api/orders/1"
SERVICE = "orders"
POLLERS = 4
WATCH_EVERY_S = 0.02
READY_TIMEOUT_S = 120.0
DOWN_TIMEOUT_S = 60.0
COMMAND_TIMEOUT_S = 60.0
FIRST_REQUEST_TIMEOUT_S = 30.0

FULL = "full"
LIGHT = "no_prometheus_no_locust"
LIGHT_FLAGS = ("--no-prometheus", "--no-locust")

ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
HARNESS = [PYTHON, "-m", "harness"]
LB_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


@dataclass(slots=True)
class Session:
    """One running `harness up`, started in its own working directory."""

    proc: Proc
    cwd: Path
    started: float  # time.monotonic() when `up` was started
    seen: dict[str, float] = field(default_factory=dict)
    """File name in the run folder -> seconds after `started` it was first seen."""

    def run_dir(self) -> Path | None:
        found = [p for p in (self.cwd / "runs").glob("*") if p.is_dir()]
        return found[0] if len(found) == 1 else None

    def current(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.cwd / "runs" / "current.json").read_text())
        return data

    def launch(self, *args: str) -> subprocess.Popen[str]:
        """Start `python -m harness ARGS` from this session's directory (see `finish`)."""
        return subprocess.Popen(
            [*HARNESS, *args],
            cwd=self.cwd,
            env={**ENV, "COLUMNS": "200"},  # rich wraps its output at 80 columns otherwise
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def harness(self, *args: str) -> str:
        """Run `python -m harness ARGS` from this session's directory; its output."""
        return finish(self.launch(*args), "harness " + " ".join(args))


def finish(command: subprocess.Popen[str], what: str) -> str:
    """Wait for the command `what`; its output (`BenchError` unless it exits with 0)."""
    try:
        output, _ = command.communicate(timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        command.kill()
        command.wait()
        raise BenchError(f"{what}: no answer in {COMMAND_TIMEOUT_S:g} s") from None
    if command.returncode != 0:
        raise BenchError(f"{what} exited with {command.returncode}:\n{output}")
    return output


def watch(session: Session, until: Path, timeout_s: float) -> float:
    """Record files appearing in the run folder until `until` exists; seconds until it did."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = time.monotonic() - session.started
        run_dir = session.run_dir()
        if run_dir is not None:
            with contextlib.suppress(OSError):
                for entry in os.scandir(run_dir):
                    session.seen.setdefault(entry.name, now)
        if until.exists():
            return now
        if not session.proc.alive():
            raise BenchError(
                f"harness up exited ({session.proc.popen.returncode}) before the lab was ready"
                f"\n{session.proc.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise BenchError(f"no {until.name} after {timeout_s:g} s\n{session.proc.log_tail()}")
        time.sleep(WATCH_EVERY_S)


def start_up(group: ProcessGroup, name: str, flags: tuple[str, ...]) -> tuple[Session, float]:
    """Start `harness up --no-live FLAGS` in a fresh directory; (session, seconds to ready)."""
    cwd = group.dir / name
    cwd.mkdir()
    log_path = group.dir / f"{name}.log"
    with log_path.open("wb") as out:
        started = time.monotonic()
        popen = subprocess.Popen(
            [*HARNESS, "up", "--no-live", *flags],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            cwd=cwd,
            env=ENV,
        )
    proc = Proc(name, popen, log_path)
    group.procs.append(proc)  # stopped with the group whatever happens
    session = Session(proc, cwd, started)
    ready_s = watch(session, cwd / "runs" / "current.json", READY_TIMEOUT_S)
    return session, ready_s


def stop(session: Session) -> tuple[float, float]:
    """`harness down` from the session's directory: (seconds until `up` exited, seconds from
    the `down` command's exit to `up`'s, i.e. without the command's own start-up)."""
    begin = time.monotonic()
    session.harness("down")
    signalled = time.monotonic()
    try:
        session.proc.popen.wait(DOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BenchError(
            f"harness up still runs {DOWN_TIMEOUT_S:g} s after `harness down`"
            f"\n{session.proc.log_tail()}"
        ) from None
    if session.proc.popen.returncode != 0:
        raise BenchError(
            f"harness up exited with {session.proc.popen.returncode}\n{session.proc.log_tail()}"
        )
    end = time.monotonic()
    return end - begin, end - signalled


def span(begin: float | None, end: float | None) -> float | None:
    """`end - begin`, or None when either is unknown."""
    return None if begin is None or end is None else end - begin


def rounded(times: dict[str, float | None]) -> dict[str, float]:
    """The known times, to the millisecond."""
    return {k: round(v, 3) for k, v in times.items() if v is not None}


def describe(times: dict[str, float]) -> str:
    return "  ".join(f"{k.removesuffix('_s')} {v:.2f}" for k, v in times.items())


def phases(seen: dict[str, float], ready_s: float) -> dict[str, float]:
    """Where the time to ready went, from the moments the run folder's files appeared."""

    def first(names: list[str]) -> float | None:
        times = [seen[n] for n in names if n in seen]
        return min(times) if times else None

    lbs = [n for n in seen if n.endswith("-lb.log")]
    servers = [n for n in seen if re.fullmatch(r".+-\d+\.log", n) and not n.startswith("locust")]
    token = seen.get("control.token")
    servers_spawned = first(servers)
    prometheus = seen.get("prometheus.log")
    locust = first(["locust.log", "locust-master.log"])
    services_done = first(["prometheus.log", "locust.log", "locust-master.log"]) or ready_s
    return rounded(
        {
            "harness_start_s": token,
            "services_s": span(token, services_done),
            "lb_start_s": span(first(lbs), servers_spawned),
            "servers_to_healthy_s": span(servers_spawned, services_done),
            "prometheus_s": span(prometheus, locust or ready_s),
            "locust_s": span(locust, ready_s),
        }
    )


# -- (b) add an instance ---------------------------------------------------------------------------


class Poller:
    """Threads sending GET PATH to the load balancer back to back; every answer's instance."""

    def __init__(self, host: str, port: int, threads: int = POLLERS) -> None:
        self.host, self.port = host, port
        self.answers: list[tuple[float, str]] = []  # (time.monotonic(), instance)
        self.errors = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, daemon=True, name=f"poller-{i}")
            for i in range(threads)
        ]

    def __enter__(self) -> Poller:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10.0)

    def _loop(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5.0)
        while not self._stop.is_set():
            try:
                conn.request("GET", PATH)
                reply = conn.getresponse()
                body = reply.read()
                at = time.monotonic()
                if reply.status != 200:
                    self.errors += 1
                    continue
                self.answers.append((at, str(json.loads(body).get("instance"))))
            except (OSError, http.client.HTTPException, ValueError):
                self.errors += 1
                conn.close()
                time.sleep(0.05)
        conn.close()

    def first_from(self, instance: str, timeout_s: float) -> float | None:
        """When `instance` first answered (time.monotonic()), waiting up to `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            hits = [at for at, name in list(self.answers) if name == instance]
            if hits:
                return min(hits)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)


def lb_log_times(log_path: Path, instance: str) -> dict[str, float]:
    """Epoch times of `registered <instance>` and `target <instance> -> healthy` in an LB log."""
    wanted = {"registered": f"registered {instance} ", "healthy": f"target {instance} -> healthy"}
    found: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in log_path.read_text(errors="replace").splitlines():
            match = LB_LOG_TIME.match(line)
            if match is None:
                continue
            for key, text in wanted.items():
                if key not in found and text in line:
                    stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
                    found[key] = stamp.timestamp()  # the log's local time, as the LB wrote it
    return found


def add_instance(session: Session) -> dict[str, Any]:
    """`harness chaos add orders` and the time to the new instance's first answer."""
    url = urlsplit(session.current()["urls"][f"{SERVICE} (load balancer)"])
    if url.hostname is None or url.port is None:
        raise BenchError(f"current.json: no address for the {SERVICE} load balancer")
    run_dir = session.run_dir()
    if run_dir is None:
        raise BenchError(f"no run folder under {session.cwd}/runs")
    before = {entry.name for entry in os.scandir(run_dir)}
    with Poller(url.hostname, url.port) as poller:
        time.sleep(1.0)
        if not poller.answers:
            raise BenchError(f"the {SERVICE} load balancer at {url.netloc} answers nothing")
        known = {name for _, name in poller.answers}
        sent, sent_epoch = time.monotonic(), time.time()
        command = session.launch("chaos", "add", SERVICE)
        spawned: float | None = None
        try:
            while command.poll() is None:  # the lab spawns the instance while the command waits
                if spawned is None:
                    with contextlib.suppress(OSError):
                        if any(e.name not in before for e in os.scandir(run_dir)):
                            spawned = time.monotonic() - sent
                if time.monotonic() - sent > COMMAND_TIMEOUT_S:
                    break  # finish() says so
                time.sleep(WATCH_EVERY_S)
            command_s = time.monotonic() - sent
            output = finish(command, f"harness chaos add {SERVICE}")
        finally:
            if command.poll() is None:
                command.kill()
                command.wait()
        match = re.search(rf"^add {SERVICE} (\S+):", output, re.MULTILINE)
        if match is None:
            raise BenchError(f"no instance name in the output of chaos add:\n{output}")
        instance = match.group(1)
        first = poller.first_from(instance, FIRST_REQUEST_TIMEOUT_S)
        if first is None:
            raise BenchError(
                f"{instance} served nothing within {FIRST_REQUEST_TIMEOUT_S:g} s of its start"
            )
    first_s = first - sent
    lb_times = lb_log_times(run_dir / f"{SERVICE}-lb.log", instance)
    registered = lb_times.get("registered")
    healthy = lb_times.get("healthy")
    # The LB's log times are epoch seconds: as seconds after the command was sent.
    registered_s = span(sent_epoch, registered)
    healthy_s = span(sent_epoch, healthy)
    split = {
        "command_to_spawn_s": spawned,
        "spawn_to_registered_s": span(spawned, registered_s),
        "registered_to_healthy_s": span(registered_s, healthy_s),
        "healthy_to_first_request_s": span(healthy_s, first_s),
    }
    return {
        "instance": instance,
        "first_request_s": round(first_s, 3),
        "command_s": round(command_s, 3),
        "instances_before": sorted(known),
        "poll_answers": len(poller.answers),
        "poll_errors": poller.errors,
        "phases": rounded(split),
    }


# -- the benchmark ---------------------------------------------------------------------------------


def run(rounds: int = ROUNDS) -> dict[str, Any]:
    """Run the timings; the result object (see the README for its fields)."""
    require_tool("prometheus")  # the full `harness up` refuses to start without it
    ups: list[dict[str, Any]] = []
    adds: list[dict[str, Any]] = []
    with ProcessGroup("bench-lab-") as group:
        for round_ in range(1, rounds + 1):
            for variant, flags in ((FULL, ()), (LIGHT, LIGHT_FLAGS)):
                where = f"round {round_}/{rounds} {variant}"
                session, ready_s = start_up(group, f"up-{variant}-r{round_}", flags)
                split = phases(session.seen, ready_s)
                log(f"{where}: ready in {ready_s:.2f} s  {describe(split)}")
                if variant == FULL:
                    add = add_instance(session)
                    adds.append({"round": round_, **add})
                    log(
                        f"{where}: add {SERVICE}: {add['instance']} served "
                        f"{add['first_request_s']:.2f} s after the command (the command took "
                        f"{add['command_s']:.2f} s)  {describe(add['phases'])}"
                    )
                down_s, stopping_s = stop(session)
                log(f"{where}: down in {down_s:.2f} s ({stopping_s:.2f} s after the command)")
                ups.append(
                    {
                        "variant": variant,
                        "round": round_,
                        "ready_s": round(ready_s, 3),
                        "down_s": round(down_s, 3),
                        "stopping_s": round(stopping_s, 3),
                        "phases": split,
                    }
                )
    return report(ups, adds)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def report(ups: list[dict[str, Any]], adds: list[dict[str, Any]]) -> dict[str, Any]:
    """The benchmark's JSON object from its samples."""

    def samples(variant: str, key: str) -> list[float]:
        return [u[key] for u in ups if u["variant"] == variant]

    def median_phases(rows: list[dict[str, float]]) -> dict[str, float]:
        keys = dict.fromkeys(k for row in rows for k in row)
        return {k: _median([row[k] for row in rows if k in row]) for k in keys}

    full, light = samples(FULL, "ready_s"), samples(LIGHT, "ready_s")
    first = [a["first_request_s"] for a in adds]
    return {
        "benchmark": "lab_timings",
        "up_ready_s": _median(full),
        "up_ready_s_no_prometheus_no_locust": _median(light),
        "prometheus_and_locust_s": round(_median(full) - _median(light), 3),
        "add_to_first_request_s": _median(first),
        "add_command_s": _median([a["command_s"] for a in adds]),
        "down_s": _median(samples(FULL, "down_s")),
        "down_s_no_prometheus_no_locust": _median(samples(LIGHT, "down_s")),
        "stopping_s": _median(samples(FULL, "stopping_s")),
        "up_phases": median_phases([u["phases"] for u in ups if u["variant"] == FULL]),
        "up_phases_no_prometheus_no_locust": median_phases(
            [u["phases"] for u in ups if u["variant"] == LIGHT]
        ),
        "add_phases": median_phases([a["phases"] for a in adds]),
        "samples": {
            "up_ready_s": full,
            "up_ready_s_no_prometheus_no_locust": light,
            "add_to_first_request_s": first,
        },
        "rounds": max(u["round"] for u in ups),
        "cpus": len(os.sched_getaffinity(0)),
        "service": SERVICE,
        "path": PATH,
        "ups": ups,
        "adds": adds,
    }
