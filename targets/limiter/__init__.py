"""Pure rate-limiting cores for the gateway and the queue workers (semantics 4, 10.6).

Sans-I/O: nothing here imports asyncio, a clock or a socket; ``now`` (monotonic
seconds) is an argument of every decision, and the adapter sleeps, answers 429
and sets headers.

* ``core.py``: ``LimitConfig`` (rate, burst, algorithm), ``Decision``, the
  ``Limiter`` protocol, ``ConfigError``;
* one module per algorithm: ``token_bucket.py`` (API Gateway, Envoy),
  ``leaky_bucket.py`` (nginx ``limit_req``, shaping and ``nodelay`` policing),
  ``gcra.py`` (redis-cell), ``sliding_window.py`` (Cloudflare's approximation);
* ``registry.py``: ``ALGORITHMS`` by name and ``create(config)``;
* ``keyed.py``: ``KeyedLimiter``, one limiter per key with LRU eviction and
  invisible expiry, O(1) per decision;
* ``headers.py``: ``Retry-After``, ``RateLimit``/``RateLimit-Policy`` (IETF
  draft), the older ``RateLimit-*`` and GitHub's ``X-RateLimit-*`` fields.

Usage, in an adapter::

    limits = KeyedLimiter(LimitConfig(rate=10, burst=20), max_keys=100_000)
    decision = limits.decide(client_ip, time.monotonic())
    if not decision.allowed:
        ...  # 429 with headers.retry_after(decision)
    elif decision.delay_s:
        await asyncio.sleep(decision.delay_s)  # shaping
"""

from targets.limiter.core import ConfigError, Decision, LimitConfig, Limiter
from targets.limiter.keyed import KeyedLimiter
from targets.limiter.registry import ALGORITHMS, create

__all__ = [
    "ALGORITHMS",
    "ConfigError",
    "Decision",
    "KeyedLimiter",
    "LimitConfig",
    "Limiter",
    "create",
]
