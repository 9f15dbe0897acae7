"""What every lab dashboard is built from, on grafana-foundation-sdk (Grafana 11.6 flavour).

    dashboard        the frame: datasource variable, time settings, chaos annotations
    Layout           rows and panels in reading order, ids 1, 2, ...
    series, single   a time series panel, a stat panel
    quantiles        histogram_quantile targets, one per quantile
    chaos_events     the PromQL that marks chaos events (harness_chaos_events_total)
    to_json          Grafana's JSON, with the annotation settings the SDK's model lacks

Panels query the datasource variable `${datasource}` (uid `prometheus` in compose). Rate
windows are RATE (5 s): Prometheus scrapes every 1 s.

Chaos events show twice over, both as annotations: from Prometheus (the harness control API's
`harness_chaos_events_total`, always there in a harness run) and from Grafana's own store
(events the harness posts with `dashboards.grafana.post_annotation`, tagged CHAOS_TAG).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog import builder as cog
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models import prometheus as prometheus_models

from harness.promql import RATE

DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
GRAFANA = models.DataSourceRef(type_val="grafana", uid="-- Grafana --")

CHAOS_TAG = "chaos"
"""Tag of the annotations the harness pushes to Grafana; the dashboards show those tagged so."""
CHAOS_ANNOTATION = "Chaos (Prometheus)"
CHAOS_PUSHED_ANNOTATION = "Chaos (pushed to Grafana)"
# Prometheus annotation settings that Grafana reads but the SDK's AnnotationQuery model does
# not carry; `to_json` adds them (Grafana moves `expr` and `step` into `target` on load).
PROMETHEUS_ANNOTATION_EXTRAS: dict[str, dict[str, Any]] = {
    CHAOS_ANNOTATION: {
        "step": "5s",
        "titleFormat": "{{action}} {{service}}",
        "textFormat": "chaos: {{action}} on {{service}} (harness control API)",
        "tagKeys": "action,service",
        "useValueForTime": False,
    }
}

Target = tuple[str, str]  # (expr, legend)


def chaos_events(selector: str = "") -> str:
    """PromQL that is non-empty at each chaos event of `harness_chaos_events_total{selector}`.

    `changes(...) > 0` alone misses the first event of each (action, service): the counter's
    series is born at 1 and never changes from nothing. The `unless ... offset` half catches a
    series that did not exist one window earlier. The window is Grafana's $__rate_interval (a
    step plus one scrape), so no event falls between two steps at any zoom; the annotation's
    `step` (its minimum interval) keeps windows >= 5 s."""
    events = (
        f"harness_chaos_events_total{{{selector}}}" if selector else "harness_chaos_events_total"
    )
    return (
        f"(changes({events}[$__rate_interval]) > 0)"
        f" or ({events} unless harness_chaos_events_total offset $__rate_interval)"
    )


def dashboard(uid: str, title: str, description: str, chaos_expr: str) -> builders.Dashboard:
    """A lab dashboard with no panels yet: the `datasource` variable (Prometheus), 15 minutes
    refreshed every 5 s, and the chaos annotations (`chaos_expr` from Prometheus, CHAOS_TAG from
    Grafana's store). Add further variables before building."""
    return (
        builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["rushlab"])
        .editable()
        .time("now-15m", "now")
        .refresh("5s")
        .timezone("browser")
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .timepicker(builders.TimePicker().refresh_intervals(["1s", "5s", "10s", "30s", "1m", "5m"]))
        .with_variable(
            builders.DatasourceVariable("datasource")
            .label("Prometheus")
            .type("prometheus")
            .current(models.VariableOption(selected=True, text="Prometheus", value="prometheus"))
        )
        .annotation(
            builders.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(GRAFANA)
            .type("dashboard")
            .built_in(1)
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
        )
        .annotation(
            builders.AnnotationQuery()
            .name(CHAOS_ANNOTATION)
            .datasource(DATASOURCE)
            .enable(True)
            .icon_color("red")
            .expr(chaos_expr)
        )
        .annotation(
            builders.AnnotationQuery()
            .name(CHAOS_PUSHED_ANNOTATION)
            .datasource(GRAFANA)
            .enable(True)
            .icon_color("orange")
            .target(
                builders.AnnotationTarget()
                .type("tags")
                .tags([CHAOS_TAG])
                .match_any(False)
                .limit(500)
            )
        )
    )


def label_variable(name: str, label: str, query: str) -> builders.QueryVariable:
    """A multi-value variable of a label's values (`label_values(metric, label)`), "All" by
    default; "All" becomes `.*`, so panels select with `label=~"$name"`."""
    return (
        builders.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(models.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


class Layout:
    """Adds rows and panels in reading order, each with the next id."""

    def __init__(self, dashboard: builders.Dashboard) -> None:
        self.dashboard = dashboard
        self.next_id = 1

    def _id(self) -> int:
        value = self.next_id
        self.next_id += 1
        return value

    def row(self, title: str) -> None:
        self.dashboard.with_row(builders.Row(title).id(self._id()).collapsed(False))

    def add(self, panel: timeseries.Panel | stat.Panel | statetimeline.Panel) -> None:
        self.dashboard.with_panel(panel.id(self._id()))


def queries(targets: Sequence[Target]) -> list[cog.Builder[variants.Dataquery]]:
    """Range queries A, B, ... in code mode; a legend only where one is given."""
    out: list[cog.Builder[variants.Dataquery]] = []
    for i, (expr, legend) in enumerate(targets):
        query = (
            prometheus.Dataquery()
            .ref_id(chr(ord("A") + i))
            .expr(expr)
            .range()
            .editor_mode(prometheus_models.QueryEditorMode.CODE)
        )
        if legend:
            query.legend_format(legend)
        out.append(query)
    return out


def _legend(width: int) -> common_builders.VizLegendOptions:
    """A table with last and max under a wide panel; a plain list under a narrow one."""
    legend = (
        common_builders.VizLegendOptions()
        .show_legend(True)
        .placement(common.LegendPlacement.BOTTOM)
    )
    if width >= 12:
        return legend.display_mode(common.LegendDisplayMode.TABLE).calcs(["lastNotNull", "max"])
    return legend.display_mode(common.LegendDisplayMode.LIST).calcs([])


def series(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[Target],
    *,
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
    max_value: float | None = None,
) -> timeseries.Panel:
    """A time series panel of `targets` (expr, legend)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .span(width)
        .height(height)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(_legend(width))
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
        .targets(queries(targets))
    )
    if max_value is not None:
        panel.max(max_value)
    if stacked:
        panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    return panel


def single(
    title: str,
    description: str,
    unit: str,
    expr: str,
    *,
    thresholds: Sequence[tuple[float | None, str]] = ((None, "text"),),
    decimals: int | None = None,
) -> stat.Panel:
    """A stat panel: the last value of `expr`, with a sparkline."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(3)
        .height(4)
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .thresholds(
            builders.ThresholdsConfig()
            .mode(models.ThresholdsMode.ABSOLUTE)
            .steps([models.Threshold(value=v, color=c) for v, c in thresholds])
        )
        .targets(queries([(expr, "")]))
    )
    if decimals is not None:
        panel.decimals(decimals)
    return panel


def quantiles(
    bucket: str,
    selector: str,
    by: str,
    legend: str,
    qs: Sequence[float] = (0.5, 0.95, 0.99),
) -> list[Target]:
    """`histogram_quantile` of `bucket{selector}` summed by `by`, one target per quantile,
    legends "`legend` p50", ..."""
    matchers = f"{{{selector}}}" if selector else ""
    return [
        (
            f"histogram_quantile({q}, sum by ({by}, le) (rate({bucket}{matchers}[{RATE}])))",
            f"{legend} p{round(q * 100)}",
        )
        for q in qs
    ]


def to_json(dashboard: models.Dashboard) -> dict[str, Any]:
    """Grafana's JSON for `dashboard`: the SDK's encoding, plus the Prometheus annotation
    settings its model lacks (PROMETHEUS_ANNOTATION_EXTRAS)."""
    data: dict[str, Any] = json.loads(json.dumps(dashboard, cls=JSONEncoder))
    for annotation in data.get("annotations", {}).get("list", []):
        annotation.update(PROMETHEUS_ANNOTATION_EXTRAS.get(annotation.get("name"), {}))
    return data
