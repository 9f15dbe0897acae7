"""What every rate-limiting core shares: the settings, the decision, the protocol.

The cores are sans-I/O: no asyncio, no clock, no I/O. Time is an argument of
every decision (``now``, float seconds on a monotonic clock); the adapter (the
gateway, a queue worker) reads the clock, sleeps ``delay_s`` when told to, and
turns a rejection into ``429`` with the headers ``headers.py`` derives.

One vocabulary for every algorithm, so they swap by name (``registry.py``):

* ``rate``: requests (tokens) per second in the long run;
* ``burst``: the capacity, i.e. the most requests a fresh key passes at one
  instant (admitted, for the shaping leaky bucket: one at once, the rest
  queued). API Gateway's and Envoy's token-bucket burst means exactly this;
  nginx's ``burst=b`` and redis-cell's ``max_burst=b`` mean ``b`` *beyond* the
  first request, i.e. our ``burst = b + 1`` (semantics 4.2, 4.3, 10.6.5);
* ``cost``: what a request takes, default 1; 0 asks without taking anything,
  and a negative cost is a caller's bug (not checked: this is the hot path).

Every algorithm admits at most ``burst + rate * T`` over any interval of
length ``T`` (the shaping bucket counted when it releases requests); token
bucket, GCRA and both leaky buckets admit exactly the same requests, and the
sliding window is the approximate one (see its module). Decisions resolve
time to ``EPS_S``: a request at most that early passes, so ``retry_after_s``
is exactly when a retry passes despite float rounding.

``now`` should not go backwards for a key; a step back never admits more than
no time passing would (nginx treats steps back of up to 60 s as no time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol

from targets.checks import finite, require

__all__ = [
    "ALGORITHM_NAMES",
    "EPS_S",
    "MAX_BURST",
    "MAX_RATE",
    "ConfigError",
    "Decision",
    "LimitConfig",
    "Limiter",
]

ALGORITHM_NAMES: tuple[str, ...]
"""``registry.ALGORITHM_NAMES``, the registry's keys, read from there on first use (the
registry imports this module, so this one cannot import it at the top)."""

MAX_RATE: Final = 1e9
"""Requests per second; far above anything a Python process serves."""

MAX_BURST: Final = 1_000_000_000

EPS_S: Final = 1e-9
"""Time resolution of a decision, in seconds: float rounding below it is ignored."""


class ConfigError(ValueError):
    """Bad limiter settings; the message starts with the field name."""


class Decision(NamedTuple):
    """One request's verdict, with what the rate-limit headers need.

    A named tuple: immutable, and the cheapest record CPython builds (the gateway
    makes one per request). The limiters build it with
    ``tuple.__new__(Decision, (allowed, delay_s, ...))``, which skips the
    generated ``__new__`` and costs about half as much as ``Decision(...)``.

    * ``allowed``: the request may go, after ``delay_s``;
    * ``delay_s``: how long the adapter holds an allowed request before
      forwarding it (the shaping leaky bucket's queue; 0 otherwise);
    * ``retry_after_s``: for a rejection, seconds until the same request (same
      cost) would be allowed, ``math.inf`` if its cost exceeds ``limit``; 0
      when allowed;
    * ``remaining``: requests of cost 1 that would still be admitted at this
      instant, after this decision (a float: round it down with a small
      tolerance, as ``headers.py`` does, since time arithmetic leaves ~1e-12);
    * ``limit``: the burst, the most a fresh key admits at one instant;
    * ``reset_s``: seconds until the key is back at its full ``limit`` if no
      other request comes.
    """

    allowed: bool
    delay_s: float
    retry_after_s: float
    remaining: float
    limit: int
    reset_s: float


class Limiter(Protocol):
    """One key's limiter. Implementations are in ``registry.ALGORITHMS``."""

    def decide(self, now: float, cost: float = 1.0) -> Decision:
        """Admit or reject a request of ``cost`` arriving at ``now``, updating the state."""
        ...

    def full_at(self) -> float:
        """The earliest time from which this limiter decides exactly as a fresh one would
        (back at its full burst, ``-inf`` if it never decided): from then on, dropping it
        and creating a new one is invisible."""
        ...


def _algorithm_names() -> tuple[str, ...]:
    from targets.limiter.registry import ALGORITHM_NAMES  # noqa: PLC0415 (import cycle)

    return ALGORITHM_NAMES


if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        if name == "ALGORITHM_NAMES":
            return _algorithm_names()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _require(ok: bool, name: str, rule: str, got: object) -> None:
    require(ok, name, rule, got, ConfigError)


def _number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and finite(value)


@dataclass(frozen=True, slots=True)
class LimitConfig:
    """A limit, parsed once at the edge and handed whole to the limiters.

    ``LimitConfig(rate=10, burst=20)``: 20 at once, 10 per second after that.
    nginx's ``rate=10r/s burst=20`` is ``LimitConfig(10, 21, "leaky_bucket_shaping")``
    (``nodelay``: ``"leaky_bucket_policing"``); nginx's ``r/m`` is ``rate=n / 60``.
    """

    rate: float
    burst: int = 1
    algorithm: str = "token_bucket"

    def __post_init__(self) -> None:
        rate = self.rate
        _require(_number(rate) and 0 < rate <= MAX_RATE, "rate", f"> 0 and <= {MAX_RATE:g}", rate)
        burst = self.burst
        _require(
            type(burst) is int and 1 <= burst <= MAX_BURST,
            "burst",
            f"an integer from 1 to {MAX_BURST}",
            burst,
        )
        names = _algorithm_names()
        _require(self.algorithm in names, "algorithm", "one of " + ", ".join(names), self.algorithm)

    @property
    def window_s(self) -> float:
        """``burst / rate``: the time an empty limiter takes to be full again, the sliding
        window's window, and the ``w`` a ``RateLimit-Policy`` header advertises."""
        return self.burst / self.rate
