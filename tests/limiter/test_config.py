"""Tests for the limiter settings, the registry and the package's purity (targets.limiter)."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from targets.limiter import ALGORITHMS, ConfigError, KeyedLimiter, LimitConfig, create
from targets.limiter.core import ALGORITHM_NAMES, Decision
from targets.limiter.gcra import Gcra
from targets.limiter.leaky_bucket import LeakyBucketPolicing, LeakyBucketShaping
from targets.limiter.sliding_window import SlidingWindow
from targets.limiter.token_bucket import TokenBucket

pytestmark = pytest.mark.core

PACKAGE = Path(__file__).resolve().parents[2] / "targets" / "limiter"


def config_error(**kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        LimitConfig(**{"rate": 10.0, **kwargs})  # type: ignore[arg-type]
    return str(info.value)


def keyed_error(**kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        KeyedLimiter(LimitConfig(10.0), **kwargs)  # type: ignore[arg-type]
    return str(info.value)


# --- LimitConfig ---------------------------------------------------------------------------------


def test_defaults_are_one_request_at_a_time_token_bucket():
    """Only the rate is required: burst 1 (nginx's burst=0), token bucket."""
    config = LimitConfig(rate=5)
    assert (config.rate, config.burst, config.algorithm) == (5, 1, "token_bucket")


def test_window_is_burst_over_rate():
    """window_s is the time an empty limiter takes to fill: burst / rate."""
    assert LimitConfig(rate=10, burst=20).window_s == 2.0


def test_config_error_is_value_error():
    """ConfigError is a ValueError so generic callers can catch it."""
    assert issubclass(ConfigError, ValueError)


def test_error_names_field_rule_and_value():
    """The message reads `<field>: must be <rule> (got <value>)`."""
    assert config_error(rate=0) == "rate: must be > 0 and <= 1e+09 (got 0)"


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": -1.0}, "rate"),
        ({"rate": math.nan}, "rate"),
        ({"rate": math.inf}, "rate"),
        ({"rate": True}, "rate"),
        ({"rate": "10"}, "rate"),
        ({"rate": 2e9}, "rate"),
        ({"burst": 0}, "burst"),
        ({"burst": -3}, "burst"),
        ({"burst": 1.5}, "burst"),
        ({"burst": 2.0}, "burst"),
        ({"burst": True}, "burst"),
        ({"burst": 10**10}, "burst"),
        ({"algorithm": "leaky_bucket"}, "algorithm"),
        ({"algorithm": ""}, "algorithm"),
    ],
)
def test_validation_names_field(kwargs, field_name):
    """Invalid settings raise ConfigError starting with the field name and quoting the value."""
    message = config_error(**kwargs)
    assert message.startswith(f"{field_name}: must be ")
    assert repr(kwargs[field_name]) in message


def test_algorithm_error_lists_the_choices():
    """An unknown algorithm lists every registered name."""
    message = config_error(algorithm="fixed_window")
    assert all(name in message for name in ALGORITHM_NAMES)


def test_config_is_frozen():
    """A limit cannot change under the limiters that share it."""
    config = LimitConfig(rate=1.0)
    with pytest.raises(AttributeError):
        config.rate = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"max_keys": 0}, "max_keys"),
        ({"max_keys": 1.0}, "max_keys"),
        ({"max_keys": True}, "max_keys"),
        ({"idle_ttl_s": -1}, "idle_ttl_s"),
        ({"idle_ttl_s": math.nan}, "idle_ttl_s"),
        ({"idle_ttl_s": math.inf}, "idle_ttl_s"),
        ({"idle_ttl_s": False}, "idle_ttl_s"),
    ],
)
def test_keyed_limiter_validation_names_field(kwargs, field_name):
    """KeyedLimiter's own settings are checked the same way."""
    message = keyed_error(**kwargs)
    assert message.startswith(f"{field_name}: must be ")
    assert repr(kwargs[field_name]) in message


# --- registry ------------------------------------------------------------------------------------


def test_registry_has_every_named_algorithm():
    """ALGORITHMS holds exactly the names LimitConfig accepts, in the same order."""
    assert tuple(ALGORITHMS) == ALGORITHM_NAMES


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("token_bucket", TokenBucket),
        ("leaky_bucket_shaping", LeakyBucketShaping),
        ("leaky_bucket_policing", LeakyBucketPolicing),
        ("gcra", Gcra),
        ("sliding_window", SlidingWindow),
    ],
)
def test_create_picks_the_algorithm_by_name(name, kind):
    """create(config) builds the class registered under config.algorithm."""
    assert type(create(LimitConfig(1.0, 1, name))) is kind


def test_registry_is_read_only():
    """No module-level mutable state: the registry cannot be changed at run time."""
    with pytest.raises(TypeError):
        ALGORITHMS["mine"] = TokenBucket  # type: ignore[index]


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_limiters_hold_no_per_instance_dict(name):
    """Per-key state uses __slots__: no __dict__ per key (memory with many keys)."""
    assert not hasattr(create(LimitConfig(1.0, 1, name)), "__dict__")


def test_decision_is_an_immutable_record():
    """Decision is a named tuple with the fields the headers need."""
    decision = Decision(True, 0.0, 0.0, 4.0, 5, 0.1)
    assert decision._fields == (
        "allowed",
        "delay_s",
        "retry_after_s",
        "remaining",
        "limit",
        "reset_s",
    )
    with pytest.raises(AttributeError):
        decision.allowed = False  # type: ignore[misc]


# --- purity --------------------------------------------------------------------------------------


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_no_io_no_clock_no_asyncio(path):
    """Every limiter module is sans-I/O: no asyncio, clock, socket, randomness or threads."""
    forbidden = {"asyncio", "time", "socket", "random", "threading", "os", "datetime", "uvloop"}
    assert imported_modules(path) & forbidden == set()
