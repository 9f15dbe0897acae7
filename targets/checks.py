"""Field checks for the pure cores' settings, with one message shape everywhere:
`<field>: must be <rule> (got <value>)`. No I/O; each core passes its own error class."""

from __future__ import annotations

import enum
import math
from typing import TypeVar

E = TypeVar("E", bound=enum.Enum)


def require(ok: bool, field: str, rule: str, got: object, error: type[ValueError]) -> None:
    if not ok:
        raise error(f"{field}: must be {rule} (got {got!r})")


def finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def as_enum(kind: type[E], value: object, field: str, error: type[ValueError]) -> E:
    """`value` as a member of `kind` (members and their values are accepted)."""
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in kind)
        raise error(f"{field}: must be one of {choices} (got {value!r})") from None
