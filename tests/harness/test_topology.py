"""Topology files: autoscaling settings are checked with file:line:col before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError
from harness.topology import load_topology

SERVICE = """\
name: t
services:
  web:
    replicas: 1
    min_replicas: {min}
    max_replicas: 4
    autoscaling:
      {autoscaling}
"""


def problems(tmp_path: Path, min_replicas: int, autoscaling: str) -> list[str]:
    path = tmp_path / "topology.yaml"
    path.write_text(SERVICE.format(min=min_replicas, autoscaling=autoscaling))
    with pytest.raises(InputError) as caught:
        load_topology(path)
    return [line.removeprefix(f"{path}:") for line in caught.value.problems]


def test_autoscaling_gives_the_core_its_policy(tmp_path: Path) -> None:
    """The service's replica bounds and the autoscaling fields make the core's Policy."""
    path = tmp_path / "topology.yaml"
    path.write_text(SERVICE.format(min=1, autoscaling="{target: 4, warmup_s: 2}"))
    policy = load_topology(path).services["web"].autoscaler_policy()
    assert policy is not None
    assert (policy.target, policy.min_replicas, policy.max_replicas, policy.warmup_s) == (
        4,
        1,
        4,
        2,
    )


def test_autoscaling_target_must_be_positive(tmp_path: Path) -> None:
    """A target of 0 is refused at its own line and field path."""
    [line] = problems(tmp_path, 1, "{target: 0}")
    assert line.startswith("8:8: services.web.autoscaling.target: Input should be greater than 0")


def test_autoscaling_needs_min_replicas_of_one(tmp_path: Path) -> None:
    """No scale to zero: autoscaling with min_replicas 0 names the service."""
    [line] = problems(tmp_path, 0, "{target: 2}")
    assert "services.web" in line
    assert "autoscaling needs min_replicas >= 1" in line


def test_core_rules_are_reported_through_the_topology(tmp_path: Path) -> None:
    """A rule only the core knows (interval within the scale-out period) names the field."""
    [line] = problems(tmp_path, 1, "{target: 2, evaluation_interval_s: 20, scale_out_period_s: 10}")
    assert "autoscaling: evaluation_interval_s: must be > 0 and <= scale_out_period_s" in line
