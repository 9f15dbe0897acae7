"""The chaos page of Locust's web UI: the HTML, and the checks on what it sends (no Locust import).

The page (`GET /chaos` on the Locust web UI) is self-contained: no script, font or style from the
network. It polls `GET /chaos/api/status` and sends `POST /chaos/api/action`; both routes live on
Locust's own Flask app (see `locustfiles/plugin.py`), which forwards them to the harness control
API with the bearer token it reads from `RUSHLAB_CONTROL_TOKEN_FILE`. The token never reaches
the browser.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from chaos.vocabulary import ACTIONS, BY_NAME, NAMES, PARAMS

# The buttons beside each instance: the actions that pick instances and need no parameter.
INSTANCE_ACTIONS = tuple(
    spec.name for spec in ACTIONS if spec.selects == "instances" and not spec.params
)
MAX_COUNT = 64
MAX_NAME = 100
ROW_KEYS = ("service", "instance", "role", "state", "pid", "address")


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
    """One flat row per instance of the control API's `GET /status`, for the web UI's table."""
    rows: list[dict[str, Any]] = []
    services = status.get("services") if isinstance(status, dict) else None
    if not isinstance(services, dict):
        return rows
    for service, info in sorted(services.items()):
        instances = info.get("instances") if isinstance(info, dict) else None
        for inst in instances if isinstance(instances, list) else []:
            if not isinstance(inst, dict):
                continue
            row = {key: inst.get(key, "") for key in ROW_KEYS[1:]}
            row["instance"] = inst.get("name", "")
            row["service"] = service
            rows.append({key: "" if row[key] is None else row[key] for key in ROW_KEYS})
    return rows


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


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rushlab chaos</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
  h1 { font-size: 1.3em; margin: 0 0 .3em; }
  h2 { font-size: 1.1em; margin: 1.2em 0 .3em; display: flex; gap: .6em; align-items: center; }
  table { border-collapse: collapse; background: #fff; min-width: 40em; }
  th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
  th { background: #eee; }
  button { margin: 0 .15em; cursor: pointer; }
  input { width: 5em; }
  .state-running { color: #080; } .state-paused { color: #a60; }
  .state-exited, .state-killed, .state-stopped { color: #b00; }
  #msg { margin: .8em 0; padding: .4em .6em; background: #fff; border: 1px solid #ddd;
         white-space: pre-wrap; font-family: monospace; max-height: 12em; overflow: auto; }
  .error { color: #b00; }
  .muted { color: #777; font-weight: normal; font-size: .9em; }
</style>
</head>
<body>
<h1>rushlab chaos <span class="muted">(<a href="./">back to Locust</a>)</span></h1>
<div class="muted">Instances of each service, refreshed every 2 s. Actions go through this
Locust process to the harness control API.</div>
<div id="msg">loading...</div>
<div id="services"></div>
<script>
"use strict";
const INSTANCE_ACTIONS = $INSTANCE_ACTIONS;
const msg = document.getElementById("msg");
const root = document.getElementById("services");

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") node.onclick = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function say(text, isError) {
  msg.textContent = text;
  msg.className = isError ? "error" : "";
}

async function act(body) {
  say("sending " + JSON.stringify(body) + " ...");
  try {
    const reply = await fetch("/chaos/api/action", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body),
    });
    const data = await reply.json();
    say((reply.ok ? "done: " : "failed (" + reply.status + "): ") + JSON.stringify(data),
        !reply.ok);
  } catch (e) {
    say("failed: " + e, true);
  }
  refresh();
}

const blocks = new Map();  // service -> {section, body}; kept so typed inputs survive refreshes

function serviceBlock(name) {
  if (blocks.has(name)) return blocks.get(name);
  const count = el("input", {type: "number", min: "1", max: "64", value: "1", title: "count"});
  const latency = el("input", {type: "number", min: "0", value: "200", title: "latency ms"});
  const rate = el("input", {type: "number", min: "0", max: "1", step: "0.05", value: "0.2",
                            title: "error rate"});
  const n = () => parseInt(count.value, 10) || 1;
  const head = el("h2", {}, name,
    el("span", {class: "muted"}, "count"), count,
    el("button", {onclick: () => act({action: "add", service: name, count: n()})}, "add"),
    el("button", {onclick: () => act({action: "remove", service: name, count: n()})}, "remove"),
    el("span", {class: "muted"}, "latency ms"), latency,
    el("button", {onclick: () => act({action: "latency", service: name,
                                      latency_ms: Number(latency.value)})}, "latency"),
    el("span", {class: "muted"}, "error rate"), rate,
    el("button", {onclick: () => act({action: "errors", service: name,
                                      error_rate: Number(rate.value)})}, "errors"),
    el("button", {onclick: () => act({action: "clear", service: name})}, "clear"));
  const body = el("tbody", {});
  const table = el("table", {},
    el("thead", {}, el("tr", {}, ...["instance", "role", "state", "pid", "address", "actions"]
      .map(h => el("th", {}, h)))), body);
  const block = {section: el("section", {}, head, table), body};
  blocks.set(name, block);
  return block;
}

function instanceRow(service, inst) {
  const buttons = INSTANCE_ACTIONS.map(a => el("button", {
    onclick: () => act({action: a, service: service, instance: inst.name})}, a));
  const state = String(inst.state ?? "");
  return el("tr", {},
    el("td", {}, String(inst.name ?? "")),
    el("td", {}, String(inst.role ?? "")),
    el("td", {class: "state-" + state}, state),
    el("td", {}, String(inst.pid ?? "")),
    el("td", {}, String(inst.address ?? "")),
    el("td", {}, ...buttons));
}

async function refresh() {
  try {
    const reply = await fetch("/chaos/api/status");
    const data = await reply.json();
    if (!reply.ok) {
      say("control API: " + (data.detail || data.error || reply.status), true);
      return;
    }
    const services = data.services || {};
    const names = Object.keys(services).sort();
    for (const name of names) {
      const block = serviceBlock(name);
      const instances = (services[name] && services[name].instances) || [];
      block.body.replaceChildren(...instances.map(inst => instanceRow(name, inst)));
    }
    for (const name of [...blocks.keys()]) if (!names.includes(name)) blocks.delete(name);
    const wanted = names.map(name => blocks.get(name).section);
    const current = [...root.children];
    if (wanted.length !== current.length || wanted.some((node, i) => node !== current[i])) {
      root.replaceChildren(...wanted);  // only when the services change: inputs keep focus
    }
    if (msg.textContent === "loading...") say("ready");
  } catch (e) {
    say("status failed: " + e, true);
  }
}

refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""
CHAOS_HTML = _PAGE.replace("$INSTANCE_ACTIONS", json.dumps(INSTANCE_ACTIONS))
