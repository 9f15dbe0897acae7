"""Tests for turning load balancer samples into the autoscaler's inputs (observe.py)."""

from __future__ import annotations

import pytest

from targets.autoscaler.observe import LoadWindow, TargetSample

pytestmark = pytest.mark.core


def t(target_id: str, in_flight: int = 0, requests: int = 0, healthy: bool = True) -> TargetSample:
    return TargetSample(target_id, healthy, in_flight, requests)


def test_in_flight_is_averaged_over_ready_replicas_and_samples() -> None:
    """The metric is the time average of in-flight requests per ready replica."""
    window = LoadWindow("in_flight")
    window.add(0.0, [t("a", 4), t("b", 2), t("c", 100)])
    window.add(0.5, [t("a", 2), t("b", 0), t("c", 100)])
    assert window.per_replica(["a", "b"]) == pytest.approx((3 + 1) / 2)


def test_request_rate_is_the_counter_change_per_second_per_replica() -> None:
    """request_rate: answered requests per second per replica across the interval."""
    window = LoadWindow("request_rate")
    window.add(10.0, [t("a", requests=100), t("b", requests=50)])
    window.add(10.5, [t("a", requests=150), t("b", requests=60)])
    window.add(11.0, [t("a", requests=200), t("b", requests=70)])
    assert window.per_replica(["a", "b"]) == pytest.approx((100 + 20) / 2)
    window.add(12.0, [t("a", requests=260), t("b", requests=70)])
    assert window.per_replica(["a", "b"]) == pytest.approx((60 + 0) / 2)  # no gap between


def test_missing_data_is_none_never_zero() -> None:
    """No sample, no ready replica in the samples, or one rate sample: the metric is missing."""
    assert LoadWindow("in_flight").per_replica(["a"]) is None
    window = LoadWindow("in_flight")
    window.add(0.0, [t("b", 5)])
    assert window.per_replica(["a"]) is None
    rate = LoadWindow("request_rate")
    rate.add(0.0, [t("a", requests=5)])
    assert rate.per_replica(["a"]) is None


def test_healthy_since_restarts_when_a_target_is_not_healthy() -> None:
    """A replica's warm-up clock starts at its first healthy sample and restarts after a flap."""
    window = LoadWindow("in_flight")
    window.add(1.0, [t("a"), t("b", healthy=False)])
    window.add(2.0, [t("a"), t("b")])
    assert window.healthy_since == {"a": 1.0, "b": 2.0}
    window.add(3.0, [t("a", healthy=False), t("b")])
    window.add(4.0, [t("a"), t("b")])
    assert window.healthy_since == {"a": 4.0, "b": 2.0}
    window.add(5.0, [t("a")])  # b deregistered
    assert window.healthy_since == {"a": 4.0}


def test_unhealthy_replicas_do_not_feed_the_metric() -> None:
    """Only healthy targets' load counts, even when named as replicas."""
    window = LoadWindow("in_flight")
    window.add(0.0, [t("a", 2), t("b", 50, healthy=False)])
    assert window.per_replica(["a", "b"]) == 2


def test_load_balancer_view_entries_become_samples() -> None:
    """`TargetSample.of` reads the load balancer's GET /targets entries."""
    view = {"id": "web-1", "state": "healthy", "in_flight": 3, "requests": 12, "port": 1}
    assert TargetSample.of(view) == t("web-1", 3, 12)
    assert not TargetSample.of({"id": "web-2", "state": "draining"}).healthy


def test_unknown_metric_is_refused_by_name() -> None:
    """A metric name outside in_flight/request_rate fails naming the field."""
    with pytest.raises(ValueError, match="metric: must be one of in_flight, request_rate"):
        LoadWindow("cpu")  # type: ignore[arg-type]
