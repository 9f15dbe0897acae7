"""Load stages: how many users, at what spawn rate, for how long. Pure logic, no Locust import.

A rush is a list of stages run back to back: stage 1 covers run time [0, d1), stage 2
[d1, d1 + d2), and so on. `tick` answers Locust's `LoadTestShape.tick` question for a run time;
after the last stage it answers None, which makes Locust stop the run by itself (a headless
process then exits). The harness writes the stages as JSON into `RUSHLAB_STAGES`:

    [{"duration_s": 30, "users": 10, "spawn_rate": 5},
     {"duration_s": 60, "users": 200, "spawn_rate": 50}]

This module is imported both by the Locust process (through `locustfiles/shop.py`) and by the
harness and pytest, which must never import locust.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

STAGE_KEYS = frozenset({"duration_s", "users", "spawn_rate"})


class StagesError(ValueError):
    """The stages are malformed; the message names the stage (1-based) and the field."""


@dataclass(frozen=True, slots=True)
class Stage:
    """Hold `users` users (reached at `spawn_rate` users per second) for `duration_s` seconds."""

    duration_s: float
    users: int
    spawn_rate: float

    def __post_init__(self) -> None:
        _check_stage(self.duration_s, self.users, self.spawn_rate, where="stage")

    def to_json(self) -> dict[str, float | int]:
        return {"duration_s": self.duration_s, "users": self.users, "spawn_rate": self.spawn_rate}


def _check_stage(duration_s: object, users: object, spawn_rate: object, *, where: str) -> None:
    if isinstance(duration_s, bool) or not isinstance(duration_s, int | float):
        raise StagesError(f"{where}: duration_s must be a number of seconds, got {duration_s!r}")
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise StagesError(f"{where}: duration_s must be finite and > 0, got {duration_s!r}")
    if isinstance(users, bool) or not isinstance(users, int) or users < 0:
        raise StagesError(f"{where}: users must be an integer >= 0, got {users!r}")
    if isinstance(spawn_rate, bool) or not isinstance(spawn_rate, int | float):
        raise StagesError(f"{where}: spawn_rate must be a number (users/s), got {spawn_rate!r}")
    if not math.isfinite(spawn_rate) or spawn_rate <= 0:
        raise StagesError(f"{where}: spawn_rate must be finite and > 0, got {spawn_rate!r}")


def total_duration(stages: Iterable[Stage]) -> float:
    """Seconds from the start of the first stage to the end of the last."""
    return sum(stage.duration_s for stage in stages)


def boundaries(stages: Sequence[Stage]) -> list[tuple[float, float]]:
    """`[start, end)` of each stage in run time; each starts where the one before ends."""
    spans: list[tuple[float, float]] = []
    start = 0.0
    for stage in stages:
        end = start + stage.duration_s
        spans.append((start, end))
        start = end
    return spans


def tick(stages: Sequence[Stage], run_time: float) -> tuple[int, float] | None:
    """(users, spawn_rate) at `run_time` seconds into the run; None once the last stage is over.

    A negative run time (clock skew) counts as the start of the first stage.
    """
    elapsed = 0.0
    for stage in stages:
        elapsed += stage.duration_s
        if run_time < elapsed:
            return stage.users, float(stage.spawn_rate)
    return None


def parse_stages(text: str, *, source: str = "RUSHLAB_STAGES") -> tuple[Stage, ...]:
    """Stages from a JSON list of `{"duration_s", "users", "spawn_rate"}` objects.

    Raises `StagesError` naming `source`, the stage and the field for anything else.
    """
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StagesError(
            f"{source}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    return stages_from_json(raw, source=source)


def stages_from_json(raw: Any, *, source: str = "RUSHLAB_STAGES") -> tuple[Stage, ...]:
    """Stages from already-decoded JSON (see `parse_stages`)."""
    if not isinstance(raw, list):
        raise StagesError(f"{source}: expected a JSON list of stages, got {type(raw).__name__}")
    if not raw:
        raise StagesError(f"{source}: the list of stages is empty")
    stages: list[Stage] = []
    for number, item in enumerate(raw, start=1):
        where = f"{source}: stage {number}"
        if not isinstance(item, dict):
            raise StagesError(f"{where}: expected an object, got {type(item).__name__}")
        missing = sorted(STAGE_KEYS - item.keys())
        if missing:
            raise StagesError(f"{where}: missing {', '.join(missing)}")
        unknown = sorted(str(k) for k in item.keys() - STAGE_KEYS)
        if unknown:
            raise StagesError(
                f"{where}: unknown field(s) {', '.join(unknown)} "
                f"(expected {', '.join(sorted(STAGE_KEYS))})"
            )
        duration_s, users, spawn_rate = item["duration_s"], item["users"], item["spawn_rate"]
        _check_stage(duration_s, users, spawn_rate, where=where)
        stages.append(Stage(float(duration_s), int(users), float(spawn_rate)))
    return tuple(stages)


def stages_to_json(stages: Iterable[Stage]) -> str:
    """The JSON text `parse_stages` reads back into the same stages."""
    return json.dumps([stage.to_json() for stage in stages])
