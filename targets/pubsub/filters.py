"""SNS subscription filter policies, compiled once and matched per publish. Pure: no I/O.

A policy is a JSON object. Its keys are ANDed; the list under a key holds alternatives
(ORed); ``"$or": [policy, ...]`` is an explicit OR of sub-policies. Keys in the message but
not in the policy are ignored. An alternative is a literal (string, number, true, false,
null: equality, case-sensitive; numbers compare numerically) or an operator::

    {"prefix": "x"}  {"suffix": "x"}  {"equals-ignore-case": "x"}
    {"anything-but": v | [v, ...] | {"prefix": "x"} | {"suffix": "x"}}
    {"numeric": ["=", 5]}  {"numeric": [">", 0, "<=", 100]}
    {"exists": true | false}

A key the message lacks (or holds null) matches only ``{"exists": false}``. Scope
``MessageAttributes`` (default) reads the message attributes (String, String.Array: any
element, Number: numeric; Binary matches only ``exists``), allows no nesting, and passes no
message without attributes; ``MessageBody`` reads the body as a JSON object, where a policy
may nest objects (a nested key under a missing or non-object parent is absent) and a list in
the message matches when any of its elements does (a list of objects: when any object
does). Limits as SNS: at most 5 keys in all, at most 150 combinations (the
product of the alternatives per key; ``$or`` branches add up), numbers within ±1e9. Every
violation is ``InvalidParameter("FilterPolicy: ...")``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from targets.pubsub.errors import InvalidParameter

MAX_KEYS: Final = 5
MAX_COMBINATIONS: Final = 150
MAX_NUMBER: Final = 1e9
SCOPES: Final = ("MessageAttributes", "MessageBody")
_ABSENT: Final = object()
_COMPARE: Final[dict[str, Callable[[float, float], bool]]] = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}

Test = Callable[[Any], bool]
"""One alternative: the value found (a str, a float, True/False/None, or _ABSENT)."""
Node = Callable[[Any], bool]
"""A compiled (sub-)policy: the object (dict) it reads keys from."""


def _fail(what: str) -> InvalidParameter:
    return InvalidParameter(f"FilterPolicy: {what}")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(f"{where}: expected a number, got {value!r}")
    if abs(value) > MAX_NUMBER:
        raise _fail(f"{where}: {value!r} is outside -1e9..1e9")
    return float(value)


def _is_num(v: Any) -> bool:
    return isinstance(v, float)


class _Opaque:
    """A Binary attribute: it exists, and equals nothing a policy can say."""

    __slots__ = ()


def _present(v: Any) -> bool:
    return v is not _ABSENT and v is not None


def _comparable(v: Any) -> bool:
    """A value anything-but can judge: present, and not a Binary attribute."""
    return v is not _ABSENT and not isinstance(v, _Opaque)


def _literal(value: Any, where: str) -> Test:
    if isinstance(value, str):
        return lambda v: v == value
    if value is None or isinstance(value, bool):
        return lambda v: v is value
    wanted = _number(value, where)
    return lambda v: _is_num(v) and v == wanted


def _numeric(spec: Any, where: str) -> Test:
    if not isinstance(spec, list) or len(spec) not in (2, 4):
        raise _fail(f"{where}: numeric takes [op, n] or [op, n, op, n], got {spec!r}")
    checks: list[tuple[Callable[[float, float], bool], float]] = []
    for i in range(0, len(spec), 2):
        op = spec[i]
        if not isinstance(op, str) or op not in _COMPARE or (len(spec) == 4 and op == "="):
            raise _fail(f"{where}: bad numeric operator {op!r}")
        checks.append((_COMPARE[op], _number(spec[i + 1], where)))
    if len(spec) == 4 and not (spec[0].startswith(">") and spec[2].startswith("<")):
        raise _fail(f'{where}: a numeric range is [">"|">=", low, "<"|"<=", high]')
    return lambda v: _is_num(v) and all(f(v, n) for f, n in checks)


def _string_op(name: str, arg: Any, where: str) -> Test:
    if not isinstance(arg, str):
        raise _fail(f"{where}: {name} takes a string, got {arg!r}")
    if name == "prefix":
        return lambda v: isinstance(v, str) and v.startswith(arg)
    if name == "suffix":
        return lambda v: isinstance(v, str) and v.endswith(arg)
    folded = arg.casefold()
    return lambda v: isinstance(v, str) and v.casefold() == folded


def _anything_but(arg: Any, where: str) -> Test:
    if isinstance(arg, dict):
        if len(arg) != 1 or next(iter(arg)) not in ("prefix", "suffix"):
            raise _fail(f"{where}: anything-but takes a value, a list or prefix/suffix")
        name, value = next(iter(arg.items()))
        inner = _string_op(name, value, where)
        return lambda v: isinstance(v, str) and not inner(v)
    values = arg if isinstance(arg, list) else [arg]
    if not values:
        raise _fail(f"{where}: anything-but needs at least one value")
    tests = [_literal(value, where) for value in values]
    return lambda v: _comparable(v) and not any(t(v) for t in tests)


def _alternative(value: Any, where: str) -> Test:
    if not isinstance(value, dict):
        if isinstance(value, list):
            raise _fail(f"{where}: nested lists are not allowed")
        test = _literal(value, where)
        return lambda v: v is not _ABSENT and test(v)
    if len(value) != 1:
        raise _fail(f"{where}: an operator object has exactly one operator, got {value!r}")
    name, arg = next(iter(value.items()))
    if name == "exists":
        if not isinstance(arg, bool):
            raise _fail(f"{where}: exists takes true or false")
        return _present if arg else (lambda v: not _present(v))
    if name == "numeric":
        return _numeric(arg, where)
    if name in ("prefix", "suffix", "equals-ignore-case"):
        return _string_op(name, arg, where)
    if name == "anything-but":
        return _anything_but(arg, where)
    raise _fail(f"{where}: unknown operator {name!r}")


@dataclass(slots=True)
class _Count:
    keys: int = 0


def _compile(policy: Any, where: str, nested: bool, count: _Count) -> tuple[Node, int]:
    """A (sub-)policy: the matcher and its number of combinations."""
    if not isinstance(policy, dict) or not policy:
        raise _fail(f"{where or 'policy'}: expected a non-empty JSON object")
    nodes: list[Node] = []
    combinations = 1
    for key, value in policy.items():
        at = f"{where}.{key}" if where else key
        if key == "$or":
            if not isinstance(value, list) or len(value) < 2:
                raise _fail(f"{at}: $or takes a list of at least two policies")
            branches = [_compile(b, at, nested, count) for b in value]
            tests = [node for node, _ in branches]
            nodes.append(partial(_any_branch, tests))
            combinations *= sum(n for _, n in branches)
        elif isinstance(value, list):
            count.keys += 1
            if not value:
                raise _fail(f"{at}: expected at least one value")
            alternatives = [_alternative(v, at) for v in value]
            nodes.append(partial(_match_key, key=key, alternatives=alternatives))
            combinations *= len(alternatives)
        elif isinstance(value, dict):
            if not nested:
                raise _fail(f"{at}: attribute policies are not nested (scope MessageAttributes)")
            inner, n = _compile(value, at, nested, count)
            nodes.append(partial(_nested, key=key, inner=inner))
            combinations *= n
        else:
            raise _fail(f"{at}: expected a list of values, got {value!r}")
    return (lambda obj: all(node(obj) for node in nodes)), combinations


def _any_branch(branches: list[Node], obj: Mapping[str, Any]) -> bool:
    return any(branch(obj) for branch in branches)


def _nested(obj: Mapping[str, Any], *, key: str, inner: Node) -> bool:
    value = obj.get(key)
    if isinstance(value, list):  # a list of objects: any of them
        return any(inner(v) for v in value if isinstance(v, dict))
    return inner(value if isinstance(value, dict) else {})  # no object: every key absent


def _match_key(obj: Mapping[str, Any], *, key: str, alternatives: list[Test]) -> bool:
    value = obj.get(key, _ABSENT)
    if isinstance(value, list):  # any element matches
        return any(a(_normal(v)) for v in value for a in alternatives)
    return any(a(_normal(value)) for a in alternatives)


def _normal(value: Any) -> Any:
    """JSON values as the tests compare them: numbers as floats."""
    if isinstance(value, bool) or value is None or value is _ABSENT:
        return value
    if isinstance(value, int | float):
        return float(value)
    return value


@dataclass(frozen=True, slots=True)
class FilterPolicy:
    scope: str
    keys: int
    combinations: int
    _match: Node

    def matches(self, attributes: Mapping[str, tuple[str, str]], body: str | None) -> bool:
        """Whether a message with these attributes (name -> (DataType, StringValue)) and
        body passes."""
        if self.scope == "MessageBody":
            try:
                data = json.loads(body) if body is not None else None
            except ValueError:
                return False
            return isinstance(data, dict) and self._match(data)
        return bool(attributes) and self._match(_attribute_values(attributes))


def _attribute_values(attributes: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, (kind, value) in attributes.items():
        base = kind.split(".", 1)[0]
        if kind == "String.Array":
            try:
                array = json.loads(value)
            except ValueError:
                continue
            if isinstance(array, list):
                values[name] = [v for v in array if not isinstance(v, list | dict)]
        elif base == "Number":
            try:
                values[name] = float(value)
            except ValueError:
                continue
        elif base == "String":
            values[name] = value
        else:  # Binary: present, never equal to anything
            values[name] = _Opaque()
    return values


def compile_policy(
    policy: str | Mapping[str, Any], scope: str = "MessageAttributes"
) -> FilterPolicy:
    if scope not in SCOPES:
        raise InvalidParameter(
            f"FilterPolicyScope: MessageAttributes or MessageBody, got {scope!r}"
        )
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError as exc:
            raise _fail(f"not JSON: {exc}") from None
    count = _Count()
    match, combinations = _compile(policy, "", scope == "MessageBody", count)
    if count.keys > MAX_KEYS:
        raise _fail(f"{count.keys} keys, at most {MAX_KEYS}")
    if combinations > MAX_COMBINATIONS:
        raise _fail(f"{combinations} combinations of values, at most {MAX_COMBINATIONS}")
    return FilterPolicy(scope, count.keys, combinations, match)
