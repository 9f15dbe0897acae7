"""Child processes for the workers' end-to-end tests: queue, providers and workers on loopback.

`Lab.start` runs ``python -m <module>`` (`tests.helpers.start_target`: its ready line read)
and keeps the process; the `lab` fixture (conftest.py) stops and reaps every one in its
``finally``. `call` is a one-shot JSON request with urllib (no event loop in the test process).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from tests.helpers import Target, start_target


def call(url: str, method: str = "GET", payload: Any = None) -> Any:
    """A JSON request; the decoded answer (HTTP errors raise)."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return str(reply.read().decode())


def scrape(base: str) -> str:
    """`base`/metrics as Prometheus sees it from its second scrape on: a series is exposed at 0
    the first time (targets.fastmetrics.BornAtZeroRegistry), so read twice."""
    text(f"{base}/metrics")
    return text(f"{base}/metrics")


class Lab:
    """The processes one test started, each stopped and reaped by `stop_all`."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, Target] = {}

    def start(self, name: str, module: str, *args: str) -> str:
        """Start ``python -m module args``; its base URL, once it printed its ready line."""
        if name in self.procs:
            self.procs[name].stop()  # the one before, under the same name
        proc = start_target(module, *args, log=self.logs / f"{name}.log")
        self.procs[name] = proc
        return proc.url

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()[-2000:]

    def kill(self, name: str) -> None:
        """SIGKILL, reaped."""
        self.procs[name].stop(grace_s=0)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.stop()


def counts(queue_url: str, name: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = call(f"{queue_url}/queues/{name}")["attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def send(queue_url: str, name: str, bodies: list[str]) -> None:
    for i in range(0, len(bodies), 10):
        chunk = [{"body": body} for body in bodies[i : i + 10]]
        reply = call(f"{queue_url}/queues/{name}/messages", "POST", {"messages": chunk})
        assert not reply["failed"], reply


def metric(exposition: str, series: str) -> float:
    """The value of one exact series (name and labels as printed) in Prometheus text."""
    for line in exposition.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in the exposition")
