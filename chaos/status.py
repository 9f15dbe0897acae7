"""The control API's `GET /status`, walked: every process of the lab under its group.

`GET /status` holds a section per kind (`services`, `pools`, `providers`, `edges`, ...), each
a group per name (its `instances`, and a service's `lb`), and `processes`, the processes of
their own (gateway, DNS, autoscaler, Prometheus). The status table (`harness/labinfo.py`)
and the Locust web UI's Chaos tab (`locustfiles/chaospage.py`) both list it through `rows`;
pure, so the Locust process can import it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def rows(status: Any) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """(group, None), a heading, above a group's processes (its load balancer first) unless
    the group is one process named after it (`queue-1`), then (group, row) for each; a
    process of its own (gateway, DNS, autoscaler, Prometheus) is one row. Anything not
    shaped as status is skipped."""
    if not isinstance(status, dict):
        return
    sections = [value for value in status.values() if isinstance(value, dict)]
    entries = [(name, entry) for section in sections for name, entry in section.items()]
    own = status.get("processes")
    for process in own if isinstance(own, list) else []:
        if isinstance(process, dict) and isinstance(process.get("name"), str):
            entries.append((process["name"], process))
    for name, entry in entries:
        if not isinstance(entry, dict):
            continue
        if "pid" in entry:
            yield name, entry
            continue
        instances = entry.get("instances")
        found = [entry.get("lb"), *(instances if isinstance(instances, list) else [])]
        processes = [row for row in found if isinstance(row, dict) and "name" in row]
        if len(processes) != 1 or not str(processes[0]["name"]).startswith(name):
            yield name, None
        for row in processes:
            yield name, row
