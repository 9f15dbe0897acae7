"""Load stages: `tick` and the JSON form the harness hands to Locust."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from locustfiles.stages import (
    Stage,
    StagesError,
    boundaries,
    parse_stages,
    stages_to_json,
    tick,
    total_duration,
)

pytestmark = pytest.mark.core

stage_st = st.builds(
    Stage,
    duration_s=st.floats(min_value=0.01, max_value=10_000),
    users=st.integers(min_value=0, max_value=100_000),
    spawn_rate=st.floats(min_value=0.01, max_value=10_000),
)
stages_st = st.lists(stage_st, min_size=1, max_size=12).map(tuple)


@given(stages_st, st.floats(min_value=0, max_value=1.0, exclude_max=True))
def test_tick_is_none_exactly_after_the_total_duration(
    stages: tuple[Stage, ...], fraction: float
) -> None:
    """Before the total duration tick gives a stage's values; from it on, None."""
    total = total_duration(stages)
    assert tick(stages, fraction * total) is not None
    assert tick(stages, math.nextafter(total, 0)) is not None
    assert tick(stages, total) is None
    assert tick(stages, total + 1) is None
    assert tick(stages, math.inf) is None


@given(stages_st, st.data())
def test_within_a_stage_tick_returns_that_stages_values(
    stages: tuple[Stage, ...], data: st.DataObject
) -> None:
    """Anywhere in [start, end) of stage i, tick answers stage i's users and spawn rate."""
    spans = boundaries(stages)
    index = data.draw(st.integers(min_value=0, max_value=len(stages) - 1))
    start, end = spans[index]
    at = data.draw(st.floats(min_value=start, max_value=end, exclude_max=True))
    stage = stages[index]
    expected = (stage.users, stage.spawn_rate)
    assert tick(stages, at) == expected
    assert tick(stages, start) == expected
    assert tick(stages, math.nextafter(end, -math.inf)) == expected


@given(stages_st)
def test_stages_are_contiguous_from_zero_to_the_total(stages: tuple[Stage, ...]) -> None:
    """Each stage starts where the one before ends; the first at 0, the last ends at the total."""
    spans = boundaries(stages)
    assert spans[0][0] == 0
    assert spans[-1][1] == total_duration(stages)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end == start
    for (start, end), stage in zip(spans, stages, strict=True):
        assert end > start
        assert math.isclose(end - start, stage.duration_s, rel_tol=1e-9, abs_tol=1e-9)


@given(stages_st, st.floats(min_value=-1e6, max_value=0, exclude_max=True))
def test_a_negative_run_time_is_the_first_stage(stages: tuple[Stage, ...], at: float) -> None:
    """Clock skew before the start counts as the first stage."""
    assert tick(stages, at) == (stages[0].users, stages[0].spawn_rate)


@given(stages_st)
def test_json_round_trip(stages: tuple[Stage, ...]) -> None:
    """What the harness writes, the locustfile reads back unchanged."""
    assert parse_stages(stages_to_json(stages)) == stages


def test_parse_accepts_integers_and_returns_floats() -> None:
    """JSON integers are fine for durations and rates."""
    parsed = parse_stages('[{"duration_s": 30, "users": 10, "spawn_rate": 5}]')
    assert parsed == (Stage(30.0, 10, 5.0),)
    assert isinstance(parsed[0].duration_s, float)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{", "RUSHLAB_STAGES: not JSON"),
        ('{"duration_s": 1}', "expected a JSON list of stages, got dict"),
        ("[]", "the list of stages is empty"),
        ("[3]", "stage 1: expected an object, got int"),
        ('[{"duration_s": 1, "users": 1}]', "stage 1: missing spawn_rate"),
        (
            '[{"duration_s": 1, "users": 1, "spawn_rate": 1, "ramp": 2}]',
            "stage 1: unknown field(s) ramp",
        ),
        (
            '[{"duration_s": 1, "users": 1, "spawn_rate": 1},'
            ' {"duration_s": 0, "users": 1, "spawn_rate": 1}]',
            "stage 2: duration_s must be finite and > 0",
        ),
        ('[{"duration_s": "30s", "users": 1, "spawn_rate": 1}]', "duration_s must be a number"),
        ('[{"duration_s": 1, "users": -1, "spawn_rate": 1}]', "users must be an integer >= 0"),
        ('[{"duration_s": 1, "users": 1.5, "spawn_rate": 1}]', "users must be an integer >= 0"),
        ('[{"duration_s": 1, "users": true, "spawn_rate": 1}]', "users must be an integer >= 0"),
        ('[{"duration_s": 1, "users": 1, "spawn_rate": 0}]', "spawn_rate must be finite and > 0"),
        ('[{"duration_s": 1e999, "users": 1, "spawn_rate": 1}]', "duration_s must be finite"),
    ],
)
def test_parse_errors_name_the_stage_and_field(text: str, message: str) -> None:
    """Malformed stages raise StagesError saying which stage and which field."""
    with pytest.raises(StagesError) as info:
        parse_stages(text)
    assert message in str(info.value)


def test_stage_checks_its_own_fields() -> None:
    """A Stage built in code is checked like one parsed from JSON."""
    with pytest.raises(StagesError, match="spawn_rate"):
        Stage(10, 5, -1)
