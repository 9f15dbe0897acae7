"""The PromQL inside dashboard JSON: list it, fill in Grafana's variables, name its metrics.

Tests and the harness use these to hold dashboards to the metric contract (docs/metrics.md):
`dashboard_queries` lists every panel target and Prometheus annotation of a dashboard,
`interpolate` replaces Grafana's variables the way Grafana would before it asks Prometheus, and
`metric_names` reads the metric names an expression selects.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Grafana's own interval variables, with the values they take for a 5 s step over a 1 s
# scrape interval ($__rate_interval = max($__interval + scrape interval, 4 * scrape interval)).
GRAFANA_DEFAULTS: Mapping[str, str] = {
    "__interval": "5s",
    "__rate_interval": "6s",
    "__range": "5m",
}

# $name, ${name}, ${name:format} and [[name]]: the forms Grafana's template service replaces.
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]")

# Removed before looking for metric names: string literals (label values, regexes, the
# arguments of label_replace), label matchers, range and offset durations, and the label lists
# of grouping and vector-matching modifiers.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "inf",
        "nan",
        "atan2",
    }
)


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL expression of a dashboard and where it sits."""

    where: str  # "panel 12 (Requests per second) A" or "annotation Chaos (Prometheus)"
    expr: str
    legend: str = ""

    @property
    def metrics(self) -> frozenset[str]:
        return metric_names(self.expr)

    @property
    def client_side(self) -> bool:
        """Measured by Locust (only a run with Locust has data for it)."""
        return any(name.startswith("locust_") for name in self.metrics)


def dashboard_queries(dashboard: Mapping[str, Any]) -> list[Query]:
    """Every Prometheus target of every panel (rows' nested panels included), then every
    Prometheus annotation query, in dashboard order."""
    queries = [
        Query(_where(panel, t), t["expr"], t.get("legendFormat", ""))
        for panel in _panels(dashboard.get("panels", []))
        for t in panel.get("targets", [])
        if "expr" in t
    ]
    for annotation in dashboard.get("annotations", {}).get("list", []):
        expr = annotation.get("expr") or (annotation.get("target") or {}).get("expr")
        if expr:
            queries.append(Query(f"annotation {annotation.get('name', '')}", expr))
    return queries


def _where(panel: Mapping[str, Any], target: Mapping[str, Any]) -> str:
    return f"panel {panel['id']} ({panel.get('title', '')}) {target.get('refId', '')}".rstrip()


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def interpolate(expr: str, variables: Mapping[str, str]) -> str:
    """`expr` with Grafana's variables replaced: `variables`, then GRAFANA_DEFAULTS. Unknown
    names stay as they are, as in Grafana (so label_replace's "$1" survives)."""
    values = {**GRAFANA_DEFAULTS, **variables}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(replace, expr)


def metric_names(expr: str) -> frozenset[str]:
    """The metric names `expr` selects (functions, keywords and label names left out)."""
    text = _STRING.sub('""', expr)
    previous = None
    while previous != text:  # innermost first: a label list may sit inside brackets
        previous = text
        text = _MATCHERS.sub(" ", text)
        text = _BRACKETS.sub(" ", text)
        text = _LABEL_LIST.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return frozenset(names)
