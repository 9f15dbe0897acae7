"""How commands reach a running lab: `runs/current.json` points at the lab that `harness up`
started (its pid, control API, token file, URLs). Kept light on purpose: `harness chaos`,
`status` and `down` import only this, so they start in a fraction of a second.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table

from chaos import status as lab_status
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


COLUMNS = (
    ("instance", None),
    ("role", 10),
    ("pid", None),
    ("address", None),
    ("state", 7),
    ("lb view", 8),
    ("in flight", 2),
)
"""The status table's columns: None, never wrapped; else wrapped between words, and a word
folded only if the column would otherwise be wider than this."""
STATE_STYLES: Mapping[str, str] = MappingProxyType({"running": "", "paused": "yellow"})
"""The colour of a state in the status table (red for any other)."""


def status_table(status: dict[str, Any]) -> Table:
    """Every instance of every service: state, the load balancer's view, requests in flight.

    Readable at 80 columns: a group of several processes is a bold heading row above them
    (no column of group names), names, pids and addresses are never cut or wrapped, and the
    columns on the right (role, state, lb view, in flight) wrap between words instead."""
    table = Table(
        title="lab",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 0),
    )
    rows = [_cells(row) if row is not None else [name] for name, row in lab_status.rows(status)]
    for n, (column, least) in enumerate(COLUMNS):
        cells = [row[n] for row in rows if n < len(row)]
        if least is None:  # never wrapped: as wide as its widest cell
            table.add_column(column, no_wrap=True, min_width=max(map(len, cells), default=0))
            continue
        words = [len(word) for cell in cells for word in cell.split()]
        table.add_column(column, overflow="fold", min_width=min(max(words, default=0), least))
    for row in rows:
        styled = [escape(cell) for cell in row]
        if len(row) == 1:
            styled[0] = f"[bold]{styled[0]}[/]"
        elif (style := STATE_STYLES.get(row[4], "red")) != "":
            styled[4] = f"[{style}]{styled[4]}[/]"
        table.add_row(*styled)
    return table


def _cells(row: dict[str, Any]) -> list[str]:
    """One process of status as the text of its cells: name, role, pid, address, state, the
    load balancer's view when there is one, and requests in flight."""
    view = f"{row['routable']} routable" if "routable" in row else row.get("target", "")
    in_flight = row.get("in_flight")
    return [
        row["name"], row["role"], str(row["pid"]), row.get("address") or "", row["state"],
        view, "" if in_flight is None else str(in_flight),
    ]  # fmt: skip
