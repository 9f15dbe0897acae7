"""How commands reach a running lab: `runs/current.json` points at the lab that `harness up`
started (its pid, control API, token file, URLs). Kept light on purpose: `harness chaos`,
`status` and `down` import only this, so they start in a fraction of a second.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from harness.errors import NoLab
from targets.http.client import fetch_json
from targets.http.upstream import UpstreamError

CURRENT = Path("runs") / "current.json"


@dataclass(frozen=True, slots=True)
class LabInfo:
    """What `lab.json` says about a running lab."""

    run_dir: Path
    pid: int
    control: str
    token_file: Path
    urls: dict[str, str]

    @classmethod
    def read(cls, pointer: Path = CURRENT) -> LabInfo:
        try:
            data = json.loads(pointer.read_text())
            info = cls(
                Path(data["run_dir"]),
                int(data["pid"]),
                str(data["control"]),
                Path(data["token_file"]),
                dict(data["urls"]),
            )
        except (OSError, ValueError, KeyError) as exc:
            raise NoLab(
                f"no running lab found ({pointer}: {exc}); start one with `harness up`"
            ) from None
        if not _alive(info.pid):
            raise NoLab(f"the lab in {info.run_dir} is not running (pid {info.pid} is gone)")
        return info

    def running(self) -> bool:
        """Whether the `harness up` process still runs."""
        return _alive(self.pid)

    def write(self, pointer: Path = CURRENT) -> None:
        data = {
            "run_dir": str(self.run_dir),
            "pid": self.pid,
            "control": self.control,
            "token_file": str(self.token_file),
            "urls": self.urls,
        }
        text = json.dumps(data, indent=2)
        (self.run_dir / "lab.json").write_text(text)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        tmp = pointer.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(pointer)

    async def call(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        """One control API call: (status, JSON body)."""
        host, _, port = self.control.rpartition(":")
        token = self.token_file.read_text().strip()
        try:
            reply = await fetch_json(
                host,
                int(port),
                method,
                path,
                payload,
                headers=[(b"authorization", f"Bearer {token}".encode())],
                timeout_s=60,
            )
        except UpstreamError as exc:
            raise NoLab(f"the lab's control API at {self.control} does not answer: {exc}") from None
        return reply.status, reply.json()


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited and not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True  # no /proc here: trust the signal


def status_table(status: dict[str, Any]) -> Table:
    """Every instance of every service: state, the load balancer's view, requests in flight."""
    table = Table(title="lab", title_justify="left")
    for column in (
        "service",
        "instance",
        "role",
        "pid",
        "address",
        "state",
        "lb view",
        "in flight",
    ):
        table.add_column(column)
    groups = [value for value in status.values() if isinstance(value, dict)]
    entries = [(name, entry) for section in groups for name, entry in section.items()]
    for name, entry in [*entries, *((p["name"], p) for p in status.get("processes", []))]:
        rows = (
            [entry] if "pid" in entry else [*filter(None, [entry.get("lb")]), *entry["instances"]]
        )
        for n, row in enumerate(rows):
            table.add_row(*_row("" if n else name, row))
    return table


def _row(group: str, row: dict[str, Any]) -> list[str]:
    """One process of status as table cells: its group (on its first row), name, role, pid,
    address, state (coloured unless running) and the load balancer's view when there is one."""
    state = row["state"]
    style = {"running": "", "paused": "yellow"}.get(state, "red")
    view = f"{row['routable']} routable" if "routable" in row else row.get("target", "")
    in_flight = row.get("in_flight")
    return [
        group, row["name"], row["role"], str(row["pid"]), row.get("address") or "",
        f"[{style}]{state}[/]" if style else state, view,
        "" if in_flight is None else str(in_flight),
    ]  # fmt: skip
