"""A run's reports: result.json, junit.xml and a self-contained report.html, from one RunResult.

Every renderer returns a string; `write_reports` is the one function that writes files, and the
CLI prints `render_summary`. The HTML needs no network and no JavaScript: the plots are inline
SVG drawn here (`render_svg`), with the chaos events as dashed vertical lines on every plot.

- result.json: everything (`render_json`; `result_from_json` reads it back into the same
  RunResult). Each plotted series carries its points and a summary (points, min, max, avg,
  last). JSON has no NaN: a missing value is `null`, read back as NaN.
- junit.xml: one testsuite per run, one testcase per SLO (a `failure` when violated; the
  measured value and the limit in its message, or in `system-out` when it passed), and a
  "run validity" testcase with an `error` when the run is invalid.
- report.html: verdict, SLO table, chaos events, problems, and the plots of `standard_plots`
  (request rate, error rate, p50/p95/p99 latency, instances and healthy targets, each
  instance's share of traffic), or whatever plots the runner put in the result.
"""

from __future__ import annotations

import html
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.components import COMPONENTS
from harness.livemap import snapshot_page
from harness.promql import PlotQuery, merged
from harness.slo import Event, Outcome, Series, Verdict, exit_code, num, outcome
from harness.topology import Topology

FORMAT = "rushlab.result/1"


@dataclass(frozen=True, slots=True)
class Plot:
    """One chart: lines by label, values in `unit`, over run time."""

    title: str
    unit: str
    series: dict[str, Series]


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run produced: enough for every report. Times `started`/`ended` are epoch seconds;
    events and series use run time (seconds since `started`)."""

    scenario: str
    description: str
    started: float
    ended: float
    duration_s: float
    events: list[Event] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    map_state: dict[str, Any] | None = None
    """The live map's state near the end of the load (`map.html` beside the report)."""

    @property
    def exit_code(self) -> int:
        return exit_code(self.verdicts, self.problems)

    @property
    def outcome(self) -> Outcome:
        return outcome(self.verdicts, self.problems)


# -- what to plot ----------------------------------------------------------------------------


def standard_plots(topology: Topology) -> list[PlotQuery]:
    """The plots a report shows for `topology`: each component's, in registry order (the
    client's lines first), plots of the same title joined."""
    return merged(plot for component in COMPONENTS for plot in component.plots(topology))


# -- result.json -----------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def summarize(series: Series) -> dict[str, float | int | None]:
    """Points, min, max, avg and last of the finite values (None for each when there are none)."""
    values = [v for _, v in series if math.isfinite(v)]
    if not values:
        return {"points": len(series), "min": None, "max": None, "avg": None, "last": None}
    return {
        "points": len(series),
        "min": min(values),
        "max": max(values),
        "avg": sum(values) / len(values),
        "last": values[-1],
    }


def to_json_data(result: RunResult) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "scenario": result.scenario,
        "description": result.description,
        "started": result.started,
        "ended": result.ended,
        "started_utc": _utc(result.started),
        "duration_s": result.duration_s,
        "outcome": result.outcome,
        "exit_code": result.exit_code,
        "verdicts": [
            {
                "name": v.name,
                "kind": v.kind,
                "passed": v.passed,
                "measured": _finite(v.measured),
                "op": v.op,
                "limit": _finite(v.limit),
                "detail": v.detail,
                "expr": v.expr,
                "outcome": v.outcome,
                "points": v.points,
                "missing": v.missing,
                "skipped": v.skipped,
                "absent": v.absent,
            }
            for v in result.verdicts
        ],
        "problems": list(result.problems),
        "events": [
            {
                "t": e.t,
                "action": e.action,
                "service": e.service,
                "instances": list(e.instances),
                "detail": e.detail,
            }
            for e in result.events
        ],
        "plots": [
            {
                "title": p.title,
                "unit": p.unit,
                "series": [
                    {
                        "label": label,
                        "summary": summarize(points),
                        "points": [[t, _finite(v)] for t, v in points],
                    }
                    for label, points in p.series.items()
                ],
            }
            for p in result.plots
        ],
    }


def render_json(result: RunResult) -> str:
    """result.json: strict JSON (no NaN), one field per line at the top."""
    return json.dumps(to_json_data(result), indent=1, allow_nan=False) + "\n"


def result_from_json(text: str) -> RunResult:
    """The RunResult `render_json` wrote (a null value comes back as NaN)."""
    data = json.loads(text)
    if data.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} document (format: {data.get('format')!r})")

    def value(v: float | None) -> float:
        return math.nan if v is None else float(v)

    return RunResult(
        scenario=data["scenario"],
        description=data["description"],
        started=data["started"],
        ended=data["ended"],
        duration_s=data["duration_s"],
        events=[
            Event(e["t"], e["action"], e["service"], tuple(e["instances"]), e["detail"])
            for e in data["events"]
        ],
        verdicts=[
            Verdict(
                v["name"],
                v["kind"],
                v["passed"],
                v["measured"],
                value(v["limit"]),
                v["detail"],
                v["op"],
                v["expr"],
                points=v["points"],
                missing=v["missing"],
                skipped=v["skipped"],
                absent=v["absent"],
                no_data=v["outcome"] == "no data",
            )
            for v in data["verdicts"]
        ],
        problems=list(data["problems"]),
        plots=[
            Plot(
                p["title"],
                p["unit"],
                {s["label"]: [(t, value(v)) for t, v in s["points"]] for s in p["series"]},
            )
            for p in data["plots"]
        ],
    )


def read_result(path: Path) -> RunResult:
    return result_from_json(path.read_text())


# -- junit.xml -------------------------------------------------------------------------------

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: str) -> str:
    """Text XML 1.0 can carry (control characters dropped)."""
    return _NOT_XML.sub("", text)


def _measured(v: Verdict) -> str:
    unit = " s" if v.kind == "recovery" else ""
    got = "no data" if v.measured is None else f"{num(v.measured)}{unit}"
    return f"measured {got}, limit {v.op} {num(v.limit)}{unit}; {_counted(v)}"


def _counted(v: Verdict) -> str:
    """How many points the verdict judged and how many it could not."""
    text = f"{v.points} points judged, {v.missing} missing"
    if v.skipped:
        text += f", {v.skipped} skipped"
    if v.absent:
        text += f", {v.absent} absent read as absent_means"
    return text


def render_junit(result: RunResult) -> str:
    """junit.xml: one testsuite, a testcase per SLO, an error testcase for an invalid run."""
    failures = sum(not v.passed and not v.no_data for v in result.verdicts)
    errors = 1 if result.problems else 0
    tests = len(result.verdicts) + errors
    counts = {"tests": str(tests), "failures": str(failures), "errors": str(errors)}
    time = f"{result.duration_s:.3f}"
    root = ET.Element("testsuites", {"name": "rushlab", **counts, "time": time})
    started = datetime.fromtimestamp(result.started, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    suite = ET.SubElement(
        root,
        "testsuite",
        {"name": _x(result.scenario), **counts, "skipped": "0", "time": time, "timestamp": started},
    )
    properties = ET.SubElement(suite, "properties")
    for name, text in (
        ("description", result.description),
        ("outcome", result.outcome),
        ("exit_code", str(result.exit_code)),
        ("started_utc", _utc(result.started)),
        ("ended_utc", _utc(result.ended)),
    ):
        ET.SubElement(properties, "property", name=name, value=_x(text))
    classname = f"rushlab.{_x(result.scenario)}"
    for v in result.verdicts:
        case = ET.SubElement(suite, "testcase", classname=classname, name=_x(v.name), time="0")
        message = f"{v.kind}: {_measured(v)}"
        if v.passed:
            ET.SubElement(case, "system-out").text = _x(f"{message}\n{v.detail}\n{v.expr}\n")
        elif v.no_data:  # not a violation: nothing could be judged (the run is invalid)
            error = ET.SubElement(case, "error", message=_x(message), type="slo.no-data")
            error.text = _x(f"{v.detail}\n{v.expr}\n")
        else:
            failure = ET.SubElement(case, "failure", message=_x(message), type=f"slo.{v.kind}")
            failure.text = _x(f"{v.detail}\n{v.expr}\n")
    if result.problems:
        case = ET.SubElement(suite, "testcase", classname=classname, name="run validity", time="0")
        error = ET.SubElement(
            case,
            "error",
            message=_x(f"invalid run: {'; '.join(result.problems)}"),
            type="invalid-run",
        )
        error.text = _x("\n".join(result.problems) + "\n")
    ET.SubElement(suite, "system-out").text = _x(render_summary(result))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


# -- summary ---------------------------------------------------------------------------------


def render_summary(result: RunResult) -> str:
    """A few plain lines for the terminal: verdict, events, each SLO, problems."""
    passed = sum(v.passed for v in result.verdicts)
    lines = [
        f"{result.scenario}: {result.outcome.upper()} (exit code {result.exit_code})"
        f"  {num(result.duration_s)} s, {len(result.events)} chaos event(s),"
        f" {passed} of {len(result.verdicts)} SLOs passed"
    ]
    for e in result.events:
        who = f" {','.join(e.instances)}" if e.instances else ""
        lines.append(f"  {e.t:7.1f} s  {e.action} {e.service}{who}  {e.detail}".rstrip())
    width = max((len(v.name) for v in result.verdicts), default=0)
    for v in result.verdicts:
        mark = "PASS" if v.passed else "NO DATA" if v.no_data else "FAIL"
        lines.append(f"  {mark}  {v.name:<{width}}  {v.kind:<9}  {_measured(v)}")
        if not v.passed:
            lines.append(f"        {v.detail}")
    if result.problems:
        lines.append("  invalid run:")
        lines.extend(f"    - {p}" for p in result.problems)
    return "\n".join(lines) + "\n"


# -- report.html -----------------------------------------------------------------------------

PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
)  # fmt: skip
WIDTH, HEIGHT = 780, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 180, 22, 34

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 2em auto; max-width: 1000px;
       padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.badge { font-size: .75em; padding: .15em .6em; border-radius: .3em; color: #fff; }
.badge.pass { background: #2e7d32; } .badge.fail { background: #c62828; }
.badge.invalid { background: #6d4c41; }
.meta { color: #666; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #ddd;
         vertical-align: top; }
tr.pass td.result { background: #e8f5e9; color: #1b5e20; font-weight: bold; }
tr.fail td.result { background: #ffebee; color: #b71c1c; font-weight: bold; }
tr.fail { background: #fff8f8; }
tr.nodata td.result { background: #efebe9; color: #4e342e; font-weight: bold; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font-size: .85em; color: #444; word-break: break-all; }
.problems { border: 2px solid #6d4c41; background: #efebe9; padding: .2em 1em; }
figure { margin: 1.2em 0; } figcaption { font-weight: bold; margin-bottom: .2em; }
svg { display: block; } svg text { font: 11px system-ui, sans-serif; fill: #444; }
svg .grid { stroke: #eee; } svg .axis { stroke: #999; }
svg .event { stroke: #c62828; stroke-dasharray: 4 3; stroke-width: 1.2; }
svg text.event-label { fill: #c62828; font-size: 10px; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi], about `count` of them (steps of 1, 2, 2.5, 5)."""
    if not hi > lo:
        hi = lo + 1
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _tick(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _tag(name: str, attrs: Mapping[str, object], body: str | None = None) -> str:
    """An SVG element; numbers get one decimal, text is escaped (`body` is markup)."""
    pairs = " ".join(
        f'{key}="{value:.1f}"' if isinstance(value, float) else f'{key}="{_e(value)}"'
        for key, value in attrs.items()
    )
    return f"<{name} {pairs}/>" if body is None else f"<{name} {pairs}>{body}</{name}>"


def render_svg(plot: Plot, duration_s: float, events: Sequence[Event] = ()) -> str:
    """One line chart as inline SVG: axes, grid, a polyline per label, legend, event lines."""
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bottom, right = TOP + ph, LEFT + pw
    values = [v for points in plot.series.values() for _, v in points if math.isfinite(v)]
    times = [t for points in plot.series.values() for t, _ in points if math.isfinite(t)]
    t_end = max([duration_s, *times]) or 1.0
    yticks = nice_ticks(min([0.0, *values]), max(values, default=1.0))
    y_lo, y_hi = yticks[0], yticks[-1]

    def x(t: float) -> float:
        return LEFT + t / t_end * pw

    def y(v: float) -> float:
        return bottom - (v - y_lo) / (y_hi - y_lo) * ph

    out = [
        f'<svg class="plot" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' role="img" aria-label="{_e(plot.title)}">'
    ]
    for v in yticks:
        out.append(_tag("line", {"class": "grid", "x1": LEFT, "x2": right, "y1": y(v), "y2": y(v)}))
        out.append(_tag("text", {"x": LEFT - 6, "y": y(v) + 4, "text-anchor": "end"}, _tick(v)))
    for t in nice_ticks(0.0, t_end, 8):
        if t <= t_end:
            out.append(
                _tag(
                    "line",
                    {"class": "axis", "x1": x(t), "x2": x(t), "y1": bottom, "y2": bottom + 4},
                )
            )
            out.append(
                _tag("text", {"x": x(t), "y": bottom + 16, "text-anchor": "middle"}, _tick(t))
            )
    out.append(_tag("line", {"class": "axis", "x1": LEFT, "x2": right, "y1": bottom, "y2": bottom}))
    out.append(_tag("line", {"class": "axis", "x1": LEFT, "x2": LEFT, "y1": TOP, "y2": bottom}))
    out.append(
        _tag("text", {"x": LEFT + pw / 2, "y": HEIGHT - 4, "text-anchor": "middle"}, "run time (s)")
    )
    middle = TOP + ph / 2
    turn = f"rotate(-90 12 {middle:.1f})"
    out.append(
        _tag(
            "text",
            {"x": 12, "y": middle, "text-anchor": "middle", "transform": turn},
            _e(plot.unit),
        )
    )
    for i, (label, points) in enumerate(plot.series.items()):
        color = PALETTE[i % len(PALETTE)]
        for segment in _segments(points):
            coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in segment)
            line = {"fill": "none", "stroke": color, "stroke-width": "1.6", "points": coords}
            out.append(_tag("polyline", line, f"<title>{_e(label)}</title>"))
        ly = TOP + 6 + i * 16
        out.append(
            _tag("rect", {"x": right + 12, "y": ly, "width": 14, "height": 3, "fill": color})
        )
        out.append(_tag("text", {"x": right + 32, "y": ly + 5}, _e(_clip(label, 22))))
    if not values:
        out.append(
            _tag("text", {"x": LEFT + pw / 2, "y": middle, "text-anchor": "middle"}, "no data")
        )
    for event in (e for e in events if 0 <= e.t <= t_end):
        ex = x(event.t)
        who = f" {','.join(event.instances)}" if event.instances else ""
        tip = f"{num(event.t)} s: {event.action} {event.service}{who} {event.detail}".rstrip()
        mark = {"class": "event", "x1": ex, "x2": ex, "y1": TOP, "y2": bottom}
        out.append(_tag("line", mark, f"<title>{_e(tip)}</title>"))
        out.append(
            _tag("text", {"class": "event-label", "x": ex + 3, "y": TOP + 9}, _e(event.action))
        )
    out.append("</svg>")
    return "\n".join(out)


def _segments(points: Series) -> list[Series]:
    """The runs of finite points (a missing value breaks the line)."""
    segments: list[Series] = [[]]
    for t, v in points:
        if math.isfinite(v) and math.isfinite(t):
            segments[-1].append((t, v))
        elif segments[-1]:
            segments.append([])
    return [s for s in segments if s]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _slo_table(verdicts: Sequence[Verdict]) -> str:
    if not verdicts:
        return "<p>This scenario has no SLOs.</p>"
    rows = []
    for v in verdicts:
        unit = " s" if v.kind == "recovery" else ""
        state = "pass" if v.passed else "nodata" if v.no_data else "fail"
        measured = "no data" if v.measured is None else f"{num(v.measured)}{unit}"
        rows.append(
            f'<tr class="slo {state}"><td class="result">{_e(v.outcome.upper())}</td>'
            f"<td>{_e(v.name)}</td><td>{_e(v.kind)}</td>"
            f'<td class="num">{_e(measured)}</td>'
            f'<td class="num">{_e(v.op)} {num(v.limit)}{unit}</td>'
            f'<td class="num points">{v.points} / {v.missing}'
            f"{f' (+{v.skipped} skipped)' if v.skipped else ''}</td>"
            f"<td>{_e(v.detail)}<br><code>{_e(v.expr)}</code></td></tr>"
        )  # fmt: skip
    head = (
        "<tr><th>result</th><th>SLO</th><th>kind</th><th>measured</th><th>limit</th>"
        '<th title="grid points judged / missing">points / missing</th>'
        "<th>detail and expression</th></tr>"
    )
    return f'<table class="slos">\n{head}\n' + "\n".join(rows) + "\n</table>"


def _event_table(events: Sequence[Event]) -> str:
    if not events:
        return "<p>No chaos events.</p>"
    rows = [
        f'<tr><td class="num">{num(e.t)} s</td><td>{_e(e.action)}</td><td>{_e(e.service)}</td>'
        f"<td>{_e(', '.join(e.instances))}</td><td>{_e(e.detail)}</td></tr>"
        for e in events
    ]
    head = "<tr><th>t</th><th>action</th><th>service</th><th>instances</th><th>detail</th></tr>"
    return f'<table class="events">\n{head}\n' + "\n".join(rows) + "\n</table>"


def render_html(result: RunResult) -> str:
    """report.html: one file, no scripts, no network."""
    state = result.outcome
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(result.scenario)}: {state.upper()}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f'<header><h1>{_e(result.scenario)} <span class="badge {state}">{state.upper()}</span>'
        "</h1>",
        f"<p>{_e(result.description)}</p>",
        f'<p class="meta">{_utc(result.started)} to {_utc(result.ended)}'
        f" · {num(result.duration_s)} s · exit code {result.exit_code}</p></header>",
    ]
    if result.problems:
        items = "".join(f"<li>{_e(p)}</li>" for p in result.problems)
        parts.append(
            '<section class="problems"><h2>Invalid run</h2><p>These SLO results cannot be'
            f" trusted:</p><ul>{items}</ul></section>"
        )
    parts += [
        "<section><h2>SLOs</h2>",
        _slo_table(result.verdicts),
        "</section><section><h2>Chaos events</h2>",
        _event_table(result.events),
        *(
            [
                '<p>The lab as it stood near the end of the rush: <a href="map.html">its map</a>'
                " (every part, its state and its traffic).</p>"
            ]
            if result.map_state
            else []
        ),
        "</section><section><h2>Plots</h2>",
        "<p>Dashed red lines: chaos events (hover for details).</p>",
    ]
    for plot in result.plots:
        parts.append(
            f"<figure><figcaption>{_e(plot.title)} ({_e(plot.unit)})</figcaption>"
            f"{render_svg(plot, result.duration_s, result.events)}</figure>"
        )
    parts.append("</section></body></html>\n")
    return "\n".join(parts)


def write_reports(result: RunResult, folder: Path) -> dict[str, Path]:
    """Write result.json, junit.xml and report.html into `folder`; their paths by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": folder / "result.json",
        "junit": folder / "junit.xml",
        "html": folder / "report.html",
    }
    paths["json"].write_text(render_json(result))
    paths["junit"].write_text(render_junit(result))
    paths["html"].write_text(render_html(result))
    if result.map_state:
        paths["map"] = folder / "map.html"
        paths["map"].write_text(snapshot_page(result.map_state))
    return paths
