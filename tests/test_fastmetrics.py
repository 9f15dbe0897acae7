"""Lock-free metrics expose exactly what prometheus-client's own classes would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from targets.fastmetrics import FastCounter, FastHistogram

pytestmark = pytest.mark.core


def test_counter_and_histogram_expose_standard_series() -> None:
    """Counts per label set, cumulative buckets with le meaning 'at most', sum and count."""
    registry = CollectorRegistry()
    counter = FastCounter("demo_requests_total", "Requests.", ["code"])
    histogram = FastHistogram("demo_seconds", "Latency.", ["route"], buckets=(0.1, 1.0))
    registry.register(counter)
    registry.register(histogram)
    counter.inc(("200",))
    counter.inc(("200",))
    counter.inc(("503",))
    for value in (0.1, 0.5, 2.0):
        histogram.observe(("/a",), value)
    text = generate_latest(registry).decode()
    assert 'demo_requests_total{code="200"} 2.0' in text
    assert 'demo_requests_total{code="503"} 1.0' in text
    assert 'demo_seconds_bucket{le="0.1",route="/a"} 1.0' in text  # 0.1 <= 0.1
    assert 'demo_seconds_bucket{le="1.0",route="/a"} 2.0' in text
    assert 'demo_seconds_bucket{le="+Inf",route="/a"} 3.0' in text
    assert 'demo_seconds_count{route="/a"} 3.0' in text
    assert 'demo_seconds_sum{route="/a"} 2.6' in text
