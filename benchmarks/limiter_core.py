"""How many rate-limit decisions per second the pure limiter cores make (`targets.limiter`).

No sockets, no reference system: absolute figures, one process, one core. For each algorithm
of `ALGORITHMS`, decisions per second in four cases:

* `bare`: one limiter object called directly (a gateway's global, unkeyed limit);
* `one_key`: a `KeyedLimiter` with every decision on one key;
* `keys_100k`: a `KeyedLimiter` holding 100,000 keys (client addresses), taken round robin;
* `new_keys`: every decision on a key never seen before, with `max_keys` 100,000 already held,
  so each one creates a limiter and evicts the least recently used (a flood of new clients).

Each key is offered twice its rate (`rate` 100/s, `burst` 10), so both the admit and the reject
paths run. Time is simulated: `now` advances by a fixed step, and no clock is read in the loop.
The garbage collector stays on, as in the gateway.

Figures are **medians over rounds** of decisions per CPU-second of this process (`cpu`, what
one core delivers, less moved by other tenants of the machine) and per wall-clock second
(`wall`, lower when the machine is busy); `cpu_best` is the best round, the closest to what an
idle core does. Goal (issue 5): at least 500,000 decisions per CPU-second (median) for
`one_key` and `keys_100k`.

    PYTHONPATH=. .venv/bin/python -m benchmarks.limiter_core [--decisions N] [--rounds R]

Progress and a table go to stderr; the last line on stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks.support import emit, log
from targets.limiter import ALGORITHMS, KeyedLimiter, LimitConfig, create

GOAL = 500_000
"""Decisions per CPU-second the gateway needs from the core (issue 5)."""

RATE = 100.0
BURST = 10
KEYS = 100_000
CASES = ("bare", "one_key", "keys_100k", "new_keys")
GOAL_CASES = ("one_key", "keys_100k")


def addresses(count: int, prefix: str = "") -> list[str]:
    """Distinct client addresses, as the gateway would key them."""
    return [f"{prefix}10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(count)]


def _timed(
    decide: Callable[[str, float], object], calls: list[tuple[str, float]]
) -> tuple[float, float]:
    """(CPU seconds, wall seconds) to make every call; `calls` is built before the clocks run."""
    cpu, wall = time.process_time(), time.perf_counter()
    for key, now in calls:
        decide(key, now)
    return time.process_time() - cpu, time.perf_counter() - wall


def _schedule(keys: list[str], decisions: int, step: float) -> list[tuple[str, float]]:
    """`decisions` (key, now) pairs: round robin over `keys`, `now` growing by `step`."""
    per = len(keys)
    return [(keys[i % per], (i + 1) * step) for i in range(decisions)]


def _bare(config: LimitConfig, decisions: int) -> tuple[float, float]:
    """One limiter called directly, as `_timed` does through a KeyedLimiter."""
    decide = create(config).decide
    times = [(i + 1) / (2.0 * RATE) for i in range(decisions)]
    cpu, wall = time.process_time(), time.perf_counter()
    for now in times:
        decide(now)
    return time.process_time() - cpu, time.perf_counter() - wall


def _keyed(config: LimitConfig, keys: list[str], decisions: int) -> tuple[float, float]:
    """Round robin over `keys`, every key created before the clocks start."""
    limits = KeyedLimiter(config, max_keys=len(keys))
    for key in keys:
        limits.decide(key, 0.0)
    calls = _schedule(keys, decisions, 1.0 / (2.0 * RATE * len(keys)))
    times = _timed(limits.decide, calls)
    if len(limits) != len(keys):
        raise RuntimeError(f"expected {len(keys)} keys held, found {len(limits)}")
    return times


def _new_keys(config: LimitConfig, held: list[str], fresh: list[str]) -> tuple[float, float]:
    """Every decision on an unseen key while `held` fill the limiter (each one evicts)."""
    limits = KeyedLimiter(config, max_keys=len(held))
    for key in held:
        limits.decide(key, 0.0)
    times = _timed(limits.decide, _schedule(fresh, len(fresh), 1e-6))
    if limits.evicted != len(fresh):
        raise RuntimeError(f"expected {len(fresh)} evictions, counted {limits.evicted}")
    return times


def run(decisions: int = 300_000, rounds: int = 3) -> dict[str, Any]:
    one = ["10.0.0.1"]
    many = addresses(KEYS)
    fresh = addresses(decisions, prefix="new-")
    cases: dict[str, Callable[[LimitConfig], tuple[float, float]]] = {
        "bare": lambda config: _bare(config, decisions),
        "one_key": lambda config: _keyed(config, one, decisions),
        "keys_100k": lambda config: _keyed(config, many, decisions),
        "new_keys": lambda config: _new_keys(config, many, fresh),
    }
    cpu: dict[str, dict[str, list[float]]] = {n: {c: [] for c in CASES} for n in ALGORITHMS}
    wall: dict[str, dict[str, list[float]]] = {n: {c: [] for c in CASES} for n in ALGORITHMS}
    for r in range(rounds):
        for name in ALGORITHMS:
            config = LimitConfig(RATE, BURST, name)
            for case, measure in cases.items():
                cpu_s, wall_s = measure(config)
                cpu[name][case].append(decisions / cpu_s)
                wall[name][case].append(decisions / wall_s)
            figures = ", ".join(f"{c} {cpu[name][c][-1]:,.0f}" for c in CASES)
            log(f"round {r + 1}/{rounds} {name}: {figures} decisions/CPU-s")

    def summary(
        samples: dict[str, dict[str, list[float]]], pick: Callable[[list[float]], float]
    ) -> dict[str, dict[str, int]]:
        return {
            name: {case: round(pick(values)) for case, values in by_case.items()}
            for name, by_case in samples.items()
        }

    results = summary(cpu, statistics.median)
    return {
        "benchmark": "limiter_core",
        "cpu": results,
        "cpu_best": summary(cpu, max),
        "wall": summary(wall, statistics.median),
        "unit": "decisions per second: median over rounds (cpu_best: the best round)",
        "goal": GOAL,
        "ok": all(results[name][case] >= GOAL for name in results for case in GOAL_CASES),
        "decisions": decisions,
        "rounds": rounds,
        "keys": KEYS,
        "config": {"rate": RATE, "burst": BURST, "offered_per_key": 2 * RATE},
        "python": platform.python_version(),
    }


def table(figures: dict[str, dict[str, int]]) -> str:
    """Figures per algorithm and case as a fixed-width table, for humans."""
    rows = [f"{'algorithm':<24}" + "".join(f"{case:>12}" for case in CASES)]
    for name, by_case in figures.items():
        rows.append(f"{name:<24}" + "".join(f"{by_case[case]:>12,}" for case in CASES))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.limiter_core",
        description="Decisions per second of the pure rate-limiter cores.",
    )
    p.add_argument("--decisions", type=int, default=300_000, help="per case and round")
    p.add_argument("--rounds", type=int, default=3, help="rounds; figures are medians")
    args = p.parse_args(argv)
    if args.decisions < 1 or args.rounds < 1:
        p.error("--decisions and --rounds must be positive")
    result = run(args.decisions, args.rounds)
    log("decisions per CPU-second (medians):\n" + table(result["cpu"]))
    log("decisions per CPU-second (best round):\n" + table(result["cpu_best"]))
    log("decisions per wall-clock second (medians):\n" + table(result["wall"]))
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
