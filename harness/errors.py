"""The harness's errors: one small tree, so the CLI (the one place that maps errors to exit
codes) catches the root and reads the branch. Light on purpose: the CLI imports it before it
knows which command runs.

    RushlabError
    ├── InputError        a file or value the user gave is wrong; `problems` are lines
    │                     ready to print (`file:line:col: field.path: message`)
    └── LabError          the lab could not do what was asked
        ├── StartError    a process did not start, or not in time (harness/supervisor.py)
        ├── PrometheusError  Prometheus missing, not starting, or a query failing
        ├── GrafanaError  Grafana's HTTP API refused or did not answer (dashboards/grafana.py)
        ├── NoLab         no running lab to talk to (harness/labinfo.py)
        └── ChaosRefused  a chaos action that cannot be done: 404 (unknown name) or 409

A violated SLO is not an error: it is a verdict (harness/slo.py).
"""

from __future__ import annotations


class RushlabError(Exception):
    """The root: every error the harness means to show a user."""


class InputError(RushlabError):
    """A file (or value) the user gave is wrong; `problems` are ready-to-print lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class LabError(RushlabError):
    """The lab could not do what was asked; the message says what and where to look."""


class StartError(LabError):
    """A process did not start, or did not say it was ready in time."""


class PrometheusError(LabError):
    """Prometheus is missing, did not start, or answered a query with an error."""


class GrafanaError(LabError):
    """Grafana's HTTP API refused a request or did not answer."""


class NoLab(LabError):
    """No running lab: none started here, it exited, or its control API does not answer."""


class ChaosRefused(LabError):
    """An action that cannot be done: `status` 404 (unknown name) or 409 (not possible now),
    with the valid `choices` when there are some."""

    def __init__(self, status: int, message: str, choices: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.choices = choices or []
