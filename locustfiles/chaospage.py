"""The chaos page of Locust's web UI, and the checks on what it sends (no Locust import).

The page (`GET /chaos` on the Locust web UI) is the harness's live map (one self-contained
file: no script, font or style from the network), pointed at Locust's own Flask app: it polls
`GET /chaos/api/map/state`, reads `GET /chaos/api/actions` and sends `POST /chaos/api/chaos`,
which `locustfiles/plugin.py` forwards to the harness control API with the bearer token it
reads from `RUSHLAB_CONTROL_TOKEN_FILE`. The token never reaches the browser. The Chaos tab's
table lists every process of the lab (`status_rows`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chaos import status as lab_status
from chaos.vocabulary import BY_NAME, NAMES, PARAMS

MAX_COUNT = 64
MAX_NAME = 100
ROW_KEYS = ("service", "instance", "role", "state", "view", "pid", "address")


class ActionError(ValueError):
    """The chaos request is malformed; the message says which field."""


def validate_action(body: Any) -> dict[str, Any]:
    """The body to forward to `POST {control}/chaos`, keeping only the known fields.

    `action` (a name of chaos/vocabulary.py) and `service` are required; `instance` and
    `count` are optional; the action's own parameters (`latency_ms`, `slots`, ...) are passed
    through within their bounds.
    """
    if not isinstance(body, dict):
        raise ActionError("expected a JSON object")
    action = body.get("action")
    if action not in BY_NAME:
        raise ActionError(f"action must be one of {', '.join(NAMES)}, got {action!r}")
    out: dict[str, Any] = {"action": action, "service": _name(body.get("service"), "service")}
    if body.get("instance") not in (None, ""):
        out["instance"] = _name(body["instance"], "instance")
    if body.get("count") is not None:
        count = body["count"]
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            raise ActionError(f"count must be an integer 1..{MAX_COUNT}, got {count!r}")
        out["count"] = count
    for param in PARAMS.values():
        value = body.get(param.name)
        if value is None or value == "":
            continue
        if param.type is str:
            out[param.name] = _name(value, param.name)
        else:
            out[param.name] = _number(value, param.name, param.low, param.high)
    return out


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise ActionError(f"{field} must be a non-empty name, got {value!r}")
    if not all(c.isalnum() or c in "-_." for c in value):
        raise ActionError(f"{field} may hold letters, digits, '-', '_' and '.', got {value!r}")
    return value


def _number(value: Any, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ActionError(f"{field} must be a number {low:g}..{high:g}, got {value!r}")
    return float(value)


def status_rows(status: Any) -> list[dict[str, Any]]:
    """One flat row per process of the control API's `GET /status` (every group of every
    kind, and the processes of their own), for the web UI's table."""
    found: list[dict[str, Any]] = []
    for group, row in lab_status.rows(status):
        if row is None:
            continue
        cells = {key: row.get(key, "") for key in ROW_KEYS}
        cells |= {"service": group, "instance": row.get("name", ""), "view": _view(row)}
        found.append({key: "" if cells[key] is None else cells[key] for key in ROW_KEYS})
    return sorted(found, key=lambda r: (str(r["service"]), str(r["instance"])))


def _view(row: dict[str, Any]) -> str:
    """The load balancer's view of a process: its own routable count, or a target's state."""
    if "routable" in row:
        return f"{row['routable']} routable"
    return str(row.get("target") or "")


def same_origin(origin: str | None, fetch_site: str | None, host: str) -> bool:
    """False for a request that a browser says came from another site (CSRF guard).

    Locust's Flask app answers CORS for any origin, so a page elsewhere could otherwise make the
    visitor's browser kill the lab's processes. Tools like curl send neither header: allowed.
    """
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    if origin is not None:
        return urlsplit(origin).netloc.lower() == host.lower()
    return True


MAP_PAGE = Path(__file__).resolve().parents[1] / "harness" / "static" / "map.html"
API = "/chaos/api"
"""Where the page sends its calls on Locust's app: `/map/state`, `/actions`, `/chaos`."""


def chaos_html() -> str:
    """The harness's live map (harness/static/map.html), calling this Locust process's
    `API` routes, which add the token, instead of the control API itself."""
    page = MAP_PAGE.read_text()
    return page.replace('<html lang="en">', f'<html lang="en" data-api="{API}">', 1)
