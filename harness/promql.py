"""PromQL building blocks, and the plot queries a report makes.

The expressions of one kind of part live in its component module (harness/components/), built
from these helpers, and the report, the dashboards and the SLO examples take them from there.
Rate windows are 5 s: Prometheus scrapes every 1 s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SCRAPE_INTERVAL_S = 1.0  # Prometheus scrapes every target, and evaluates rules, this often
RATE = "5s"
QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class Line:
    """A PromQL range query; `label` may name result labels, as "{backend}" (one line each)."""

    label: str
    expr: str


@dataclass(frozen=True, slots=True)
class PlotQuery:
    """One chart of the report: its title, unit and lines."""

    title: str
    unit: str
    lines: tuple[Line, ...]


def selector(matchers: str) -> str:
    """`{matchers}`, or nothing for no matchers."""
    return f"{{{matchers}}}" if matchers else ""


def rate(metric: str, matchers: str = "", window: str = RATE) -> str:
    return f"rate({metric}{selector(matchers)}[{window}])"


def summed(metric: str, matchers: str = "", by: str = "", window: str = RATE) -> str:
    """`sum [by (by)] (rate(metric{matchers}[window]))`."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} ({rate(metric, matchers, window)})"


def quantile(q: float, histogram: str, matchers: str = "", by: str = "", window: str = RATE) -> str:
    """The `q` quantile of `histogram` (its `_bucket` series), summed over all but `by`."""
    grouping = ", ".join(part for part in (by, "le") if part)
    return (
        f"histogram_quantile({q:g}, sum by ({grouping})"
        f" ({rate(histogram + '_bucket', matchers, window)}))"
    )


def quantile_lines(histogram: str, matchers: str = "") -> tuple[Line, ...]:
    """p50, p95 and p99 of `histogram` as plot lines."""
    return tuple(Line(f"p{round(q * 100)}", quantile(q, histogram, matchers)) for q in QUANTILES)


def merged(plots: Iterable[PlotQuery]) -> list[PlotQuery]:
    """Plots in order of first appearance, the lines of plots with the same title joined (the
    client's request rate and each load balancer's on one chart)."""
    joined: dict[str, PlotQuery] = {}
    for plot in plots:
        found = joined.get(plot.title)
        joined[plot.title] = (
            plot if found is None else PlotQuery(found.title, found.unit, found.lines + plot.lines)
        )
    return list(joined.values())
