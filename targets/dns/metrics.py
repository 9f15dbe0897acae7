"""The DNS server's Prometheus metrics, in a registry it is given.

Per-query series are lock-free (targets/fastmetrics.py). Label values stay bounded: `name` is a
record name of the zone or `_other` (unknown names, names outside the zone, unreadable
queries), `qtype` one of a fixed list of common types or `_other`. Health gauges are read from
the core at scrape time, so they never drift from what the server answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from targets.dns.core import Rcode, Zone
from targets.fastmetrics import FastCounter

OTHER: Final = "_other"
QTYPES: Final = frozenset(
    ("A", "AAAA", "ANY", "CAA", "CNAME", "HTTPS", "MX", "NS", "PTR", "SOA", "SRV", "SVCB", "TXT")
)
"""Query types counted under their own name; every other type is `_other`."""


class DnsMetrics:
    def __init__(self, registry: CollectorRegistry, zone: Zone) -> None:
        self.zone = zone
        self.queries = FastCounter(
            "dns_queries_total",
            "DNS queries answered, by name (a record name of the zone, else _other), query type "
            "and response code.",
            ["name", "qtype", "rcode"],
        )
        self.answers = FastCounter(
            "dns_answers_total",
            "Weighted and failover answers, by name and the set_id of the record answered.",
            ["name", "set_id"],
        )
        self.region_answers = FastCounter(
            "dns_region_answers_total",
            "Latency answers, by name, the client's region and the set_id answered.",
            ["name", "region", "set_id"],
        )
        registry.register(self.queries)
        registry.register(self.answers)
        registry.register(self.region_answers)
        self.dropped = Counter(
            "dns_dropped_total",
            "Datagrams dropped without an answer: shorter than a DNS header, or a response.",
            registry=registry,
        )
        self.health_checks = Counter(
            "dns_health_checks_total",
            "Health check probes, by check id and result (ok, fail).",
            ["check", "result"],
            registry=registry,
        )
        registry.register(HealthCollector(zone))
        for check in zone.health:
            for result in ("ok", "fail"):
                self.health_checks.labels(check, result)
        self.zone_changed()

    def zone_changed(self) -> None:
        """Zero series for the names and set ids now in the zone, so rate() sees their first
        event (a counter that appears already at 1 has no increase in Prometheus's eyes)."""
        for name, records in self.zone.sets.items():
            self.queries.inc((name, "A", Rcode.NOERROR.name), 0)
            for rec in records:
                if rec.set_id is not None:
                    self.answers.inc((name, rec.set_id), 0)
                if rec.region is not None and self.zone.regions is not None:
                    for region in self.zone.regions.names:
                        self.region_answers.inc((name, region, rec.set_id or ""), 0)

    def label(self, name: str) -> str:
        """`name` as a bounded label value."""
        return name if name in self.zone.sets else OTHER

    def query(self, name: str, qtype: str, rcode: Rcode) -> None:
        self.queries.inc((name, qtype if qtype in QTYPES else OTHER, rcode.name))


class HealthCollector(Collector):
    """`dns_health_check_healthy`, read from the core at scrape time."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone

    def collect(self) -> Iterator[Metric]:
        healthy = GaugeMetricFamily(
            "dns_health_check_healthy",
            "1 while the health check is healthy (its records may be answered), else 0.",
            labels=["check"],
        )
        for check, state in self.zone.health.items():
            healthy.add_metric([check], int(state.healthy))
        yield healthy
