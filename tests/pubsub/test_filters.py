"""SNS filter policies (targets.pubsub.filters): each operator, the limits, the policies SNS
refuses, both scopes; then random policies and messages checked against a plain reference
matcher written here from the AWS rules (reference/semantics.md 6.2 and 10.5.3)."""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.pubsub.errors import InvalidParameter
from targets.pubsub.filters import MAX_COMBINATIONS, MAX_KEYS, FilterPolicy, compile_policy

pytestmark = pytest.mark.core

Attrs = dict[str, tuple[str, str]]


def s(value: str) -> tuple[str, str]:
    return ("String", value)


def n(value: str) -> tuple[str, str]:
    return ("Number", value)


def arr(*values: Any) -> tuple[str, str]:
    return ("String.Array", json.dumps(list(values)))


def attr_match(policy: Mapping[str, Any], attributes: Attrs) -> bool:
    return compile_policy(dict(policy)).matches(attributes, None)


def body_match(policy: Mapping[str, Any], body: Any) -> bool:
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    return compile_policy(dict(policy), "MessageBody").matches({}, text)


def rejected(policy: Any, scope: str = "MessageAttributes") -> InvalidParameter:
    with pytest.raises(InvalidParameter) as caught:
        compile_policy(policy, scope)
    error = caught.value
    assert error.code == "InvalidParameter"
    assert error.status == 400
    return error


# --- each operator: one message it matches, one it does not -------------------------------

OPERATOR_CASES: list[tuple[str, dict[str, Any], Attrs, Attrs]] = [
    ("exact string", {"color": ["red"]}, {"color": s("red")}, {"color": s("blue")}),
    (
        "exact string is case-sensitive",
        {"color": ["red"]},
        {"color": s("red")},
        {"color": s("Red")},
    ),
    ("exact number", {"amount": [1500]}, {"amount": n("1500")}, {"amount": n("1501")}),
    (
        "exact number compares numerically",
        {"amount": [1500]},
        {"amount": n("1.5e3")},
        {"amount": s("1500")},
    ),
    ("exact float", {"price": [2.5]}, {"price": n("2.50")}, {"price": n("2.49999")}),
    (
        "prefix",
        {"event": [{"prefix": "order-"}]},
        {"event": s("order-created")},
        {"event": s("reorder-x")},
    ),
    ("suffix", {"image": [{"suffix": ".png"}]}, {"image": s("cat.png")}, {"image": s("cat.jpg")}),
    (
        "equals-ignore-case",
        {"customer": [{"equals-ignore-case": "Alice"}]},
        {"customer": s("aLiCE")},
        {"customer": s("alicia")},
    ),
    (
        "anything-but one value",
        {"store": [{"anything-but": "a"}]},
        {"store": s("b")},
        {"store": s("a")},
    ),
    (
        "anything-but a list",
        {"store": [{"anything-but": ["a", "b"]}]},
        {"store": s("c")},
        {"store": s("b")},
    ),
    (
        "anything-but numbers",
        {"size": [{"anything-but": [100, 200]}]},
        {"size": n("150")},
        {"size": n("200.0")},
    ),
    (
        "anything-but prefix",
        {"id": [{"anything-but": {"prefix": "org-"}}]},
        {"id": s("user-1")},
        {"id": s("org-1")},
    ),
    (
        "anything-but suffix",
        {"file": [{"anything-but": {"suffix": ".tmp"}}]},
        {"file": s("a.txt")},
        {"file": s("a.tmp")},
    ),
    ("numeric =", {"n": [{"numeric": ["=", 5]}]}, {"n": n("5.0")}, {"n": n("5.00001")}),
    ("numeric <", {"n": [{"numeric": ["<", 5]}]}, {"n": n("4.9")}, {"n": n("5")}),
    ("numeric <=", {"n": [{"numeric": ["<=", 5]}]}, {"n": n("5")}, {"n": n("5.1")}),
    ("numeric >", {"n": [{"numeric": [">", 5]}]}, {"n": n("5.1")}, {"n": n("5")}),
    ("numeric >=", {"n": [{"numeric": [">=", 5]}]}, {"n": n("5")}, {"n": n("4.9")}),
    ("numeric range", {"n": [{"numeric": [">", 0, "<=", 150]}]}, {"n": n("150")}, {"n": n("0")}),
    (
        "numeric range, upper bound exclusive",
        {"n": [{"numeric": [">=", 0, "<", 150]}]},
        {"n": n("0")},
        {"n": n("150")},
    ),
    (
        "numeric only matches Number attributes",
        {"n": [{"numeric": [">", 0]}]},
        {"n": n("1")},
        {"n": s("1")},
    ),
    (
        "exists true",
        {"store": [{"exists": True}]},
        {"store": s("fans"), "x": s("1")},
        {"x": s("1")},
    ),
    (
        "exists false",
        {"store": [{"exists": False}]},
        {"x": s("1")},
        {"store": s("fans"), "x": s("1")},
    ),
    (
        "values in a list are ORed",
        {"color": ["red", "green"]},
        {"color": s("green")},
        {"color": s("blue")},
    ),
    (
        "keys are ANDed",
        {"color": ["red"], "size": ["L"]},
        {"color": s("red"), "size": s("L")},
        {"color": s("red"), "size": s("M")},
    ),
    (
        "a key the policy names must be there",
        {"color": ["red"]},
        {"color": s("red")},
        {"colour": s("red")},
    ),
    (
        "keys the policy does not name are ignored",
        {"color": ["red"]},
        {"color": s("red"), "other": s("x"), "more": n("3")},
        {"other": s("x")},
    ),
    (
        "String.Array: any element",
        {"interests": ["rugby"]},
        {"interests": arr("football", "rugby")},
        {"interests": arr("football", "soccer")},
    ),
    (
        "String.Array: numbers",
        {"codes": [{"numeric": [">", 10]}]},
        {"codes": arr(1, 11)},
        {"codes": arr(1, 10)},
    ),
    (
        "String.Array: prefix on an element",
        {"tags": [{"prefix": "env:"}]},
        {"tags": arr("team:x", "env:prod")},
        {"tags": arr("team:x")},
    ),
    ("Binary exists", {"blob": [{"exists": True}]}, {"blob": ("Binary", "AAEC")}, {}),
    (
        "custom type String.x is a string",
        {"c": ["x"]},
        {"c": ("String.custom", "x")},
        {"c": ("String.custom", "y")},
    ),
]


@pytest.mark.parametrize(
    ("policy", "matching", "not_matching"),
    [case[1:] for case in OPERATOR_CASES],
    ids=[case[0] for case in OPERATOR_CASES],
)
def test_operator(policy: dict[str, Any], matching: Attrs, not_matching: Attrs) -> None:
    assert attr_match(policy, matching)
    assert not attr_match(policy, not_matching)


def test_binary_attribute_never_equals_its_text() -> None:
    assert not attr_match({"blob": ["AAEC"]}, {"blob": ("Binary", "AAEC")})
    assert not attr_match({"blob": [{"prefix": "A"}]}, {"blob": ("Binary", "AAEC")})


def test_anything_but_needs_the_key() -> None:
    """AWS: anything-but matches a value the list lacks, not a missing attribute."""
    assert not attr_match({"store": [{"anything-but": ["a"]}]}, {"other": s("x")})
    assert not attr_match({"id": [{"anything-but": {"prefix": "x"}}]}, {"other": s("x")})


def test_exact_and_operators_mix_in_one_list() -> None:
    policy = {"price": [{"numeric": ["<", 10]}, 100], "kind": ["a", {"prefix": "z"}]}
    assert attr_match(policy, {"price": n("5"), "kind": s("zed")})
    assert attr_match(policy, {"price": n("100"), "kind": s("a")})
    assert not attr_match(policy, {"price": n("50"), "kind": s("a")})
    assert not attr_match(policy, {"price": n("5"), "kind": s("b")})


def test_or_of_sub_policies() -> None:
    policy = {
        "source": ["aws.cloudwatch"],
        "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}],
    }
    assert attr_match(policy, {"source": s("aws.cloudwatch"), "namespace": s("AWS/EC2")})
    assert attr_match(policy, {"source": s("aws.cloudwatch"), "metricName": s("CPUUtilization")})
    assert not attr_match(policy, {"source": s("aws.cloudwatch"), "namespace": s("AWS/S3")})
    assert not attr_match(policy, {"source": s("aws.s3"), "namespace": s("AWS/EC2")})


def test_nested_or() -> None:
    policy = {"$or": [{"a": ["1"]}, {"$or": [{"b": ["2"]}, {"c": ["3"]}]}]}
    assert attr_match(policy, {"c": s("3")})
    assert not attr_match(policy, {"c": s("4")})


def test_unparseable_attribute_values_count_as_absent() -> None:
    assert attr_match({"n": [{"exists": False}]}, {"n": n("not a number")})
    assert attr_match({"a": [{"exists": False}]}, {"a": ("String.Array", "[oops")})


def test_policy_as_json_text() -> None:
    policy = compile_policy('{"color": ["red"], "n": [{"numeric": [">", 1]}]}')
    assert isinstance(policy, FilterPolicy)
    assert (policy.scope, policy.keys, policy.combinations) == ("MessageAttributes", 2, 1)
    assert policy.matches({"color": s("red"), "n": n("2")}, None)


# --- limits --------------------------------------------------------------------------------


def test_five_keys_accepted_six_rejected() -> None:
    five = {f"k{i}": ["v"] for i in range(5)}
    assert compile_policy(five).keys == MAX_KEYS == 5
    error = rejected({f"k{i}": ["v"] for i in range(6)})
    assert error.message.startswith("FilterPolicy: ")
    assert "6 keys" in error.message
    assert "at most 5" in error.message


def test_keys_are_counted_across_or_branches() -> None:
    assert compile_policy({"a": ["1"], "$or": [{"b": ["1"], "c": ["1"]}, {"d": ["1"]}]}).keys == 4
    error = rejected(
        {"a": ["1"], "b": ["1"], "$or": [{"c": ["1"], "d": ["1"]}, {"e": ["1"]}, {"f": ["1"]}]}
    )
    assert "keys" in error.message


def test_150_combinations_accepted_more_rejected() -> None:
    ok = {"a": list(range(5)), "b": list(range(5)), "c": list(range(6))}
    assert compile_policy(ok).combinations == MAX_COMBINATIONS == 150
    error = rejected({"a": list(range(5)), "b": list(range(5)), "c": list(range(7))})
    assert error.message.startswith("FilterPolicy: ")
    assert "175 combinations" in error.message
    assert "150" in error.message


def test_one_key_with_151_values_is_too_many_combinations() -> None:
    assert compile_policy({"a": list(range(150))}).combinations == 150
    assert "151 combinations" in rejected({"a": list(range(151))}).message


def test_or_branches_add_up() -> None:
    ok = {"a": list(range(10)), "$or": [{"b": list(range(7))}, {"c": list(range(8))}]}
    assert compile_policy(ok).combinations == 150
    too_many = {"a": list(range(10)), "$or": [{"b": list(range(8))}, {"c": list(range(8))}]}
    assert "160 combinations" in rejected(too_many).message


def test_numbers_outside_one_billion_rejected() -> None:
    assert compile_policy({"n": [1e9, -1e9, {"numeric": ["<", 1e9]}]})
    assert "outside" in rejected({"n": [1e9 + 1]}).message
    assert "outside" in rejected({"n": [{"numeric": [">", -2e9]}]}).message


# --- policies SNS refuses ------------------------------------------------------------------

BAD_POLICIES: list[tuple[str, Any, str]] = [
    ("unknown operator", {"a": [{"wildcard": "x*"}]}, "unknown operator"),
    ("two operators in one object", {"a": [{"prefix": "x", "suffix": "y"}]}, "exactly one"),
    ("empty operator object", {"a": [{}]}, "exactly one"),
    ("value not in a list", {"a": "red"}, "expected a list"),
    ("number not in a list", {"a": 5}, "expected a list"),
    ("empty list", {"a": []}, "at least one value"),
    ("nested list", {"a": [["x"]]}, "nested lists"),
    ("prefix of a number", {"a": [{"prefix": 5}]}, "prefix takes a string"),
    ("suffix of null", {"a": [{"suffix": None}]}, "suffix takes a string"),
    ("equals-ignore-case of a list", {"a": [{"equals-ignore-case": ["x"]}]}, "takes a string"),
    ("exists of a string", {"a": [{"exists": "true"}]}, "exists takes true or false"),
    ("exists of a number", {"a": [{"exists": 1}]}, "exists takes true or false"),
    ("numeric of a number", {"a": [{"numeric": 5}]}, "numeric takes"),
    ("numeric of three items", {"a": [{"numeric": [">", 1, "<"]}]}, "numeric takes"),
    ("numeric unknown op", {"a": [{"numeric": ["!=", 1]}]}, "bad numeric operator"),
    ("numeric string bound", {"a": [{"numeric": [">", "1"]}]}, "expected a number"),
    ("numeric bool bound", {"a": [{"numeric": [">", True]}]}, "expected a number"),
    ("numeric = in a range", {"a": [{"numeric": ["=", 1, "<", 2]}]}, "bad numeric operator"),
    ("numeric range upside down", {"a": [{"numeric": ["<", 5, ">", 1]}]}, "numeric range"),
    ("numeric two lower bounds", {"a": [{"numeric": [">", 1, ">=", 2]}]}, "numeric range"),
    ("anything-but empty list", {"a": [{"anything-but": []}]}, "at least one value"),
    (
        "anything-but unknown operator",
        {"a": [{"anything-but": {"wildcard": "x"}}]},
        "anything-but takes",
    ),
    (
        "anything-but prefix of a number",
        {"a": [{"anything-but": {"prefix": 1}}]},
        "prefix takes a string",
    ),
    (
        "anything-but of an operator in a list",
        {"a": [{"anything-but": [{"prefix": "x"}]}]},
        "expected a number",
    ),
    ("$or of one branch", {"$or": [{"a": ["1"]}]}, "$or takes a list of at least two"),
    ("$or not a list", {"$or": {"a": ["1"]}}, "$or takes a list"),
    ("$or of a non-object", {"$or": [{"a": ["1"]}, ["b"]]}, "expected a non-empty JSON object"),
    ("empty policy", {}, "expected a non-empty JSON object"),
    ("policy is a list", [{"a": ["1"]}], "expected a non-empty JSON object"),
    ("not JSON", '{"a": ["1"]', "not JSON"),
    ("JSON NaN", '{"a": [NaN]}', "expected a number"),
    ("JSON Infinity", '{"a": [{"numeric": ["<", Infinity]}]}', "expected a number"),
]


@pytest.mark.parametrize(
    ("policy", "says"), [case[1:] for case in BAD_POLICIES], ids=[c[0] for c in BAD_POLICIES]
)
def test_bad_policy_rejected(policy: Any, says: str) -> None:
    error = rejected(policy)
    assert error.message.startswith("FilterPolicy: ")
    assert says in error.message


def test_error_names_the_key() -> None:
    assert rejected({"color": [{"prefix": 1}]}).message.startswith("FilterPolicy: color: ")
    nested = rejected({"order": {"status": [{"exists": 0}]}}, "MessageBody")
    assert nested.message.startswith("FilterPolicy: order.status: ")


def test_unknown_scope_rejected() -> None:
    with pytest.raises(InvalidParameter, match="FilterPolicyScope"):
        compile_policy({"a": ["1"]}, "MessageHeaders")


# --- scopes --------------------------------------------------------------------------------


def test_attribute_scope_refuses_nesting() -> None:
    error = rejected({"order": {"status": ["paid"]}})
    assert "not nested" in error.message
    assert "order" in error.message


def test_body_scope_nested_keys() -> None:
    policy = {"order": {"status": ["paid"], "total": [{"numeric": [">=", 100]}]}}
    assert compile_policy(policy, "MessageBody").keys == 2
    assert body_match(policy, {"order": {"status": "paid", "total": 120, "id": 7}})
    assert not body_match(policy, {"order": {"status": "paid", "total": 99}})
    assert not body_match(policy, {"order": {"status": "open", "total": 120}})
    assert not body_match(policy, {"order": "paid"})
    assert not body_match(policy, {"status": "paid", "total": 120})


def test_body_scope_deep_nesting_and_or() -> None:
    policy = {"a": {"b": {"c": ["x"]}}, "$or": [{"k": ["1"]}, {"m": {"n": [{"exists": True}]}}]}
    assert body_match(policy, {"a": {"b": {"c": "x"}}, "k": "1"})
    assert body_match(policy, {"a": {"b": {"c": "x"}}, "m": {"n": 0}})
    assert not body_match(policy, {"a": {"b": {"c": "y"}}, "k": "1"})
    assert not body_match(policy, {"a": {"b": {"c": "x"}}, "k": "2"})


def test_body_scope_list_matches_any_element() -> None:
    assert body_match({"tags": ["x"]}, {"tags": ["y", "x"]})
    assert not body_match({"tags": ["x"]}, {"tags": ["y", "z"]})
    assert body_match({"n": [{"numeric": [">", 2]}]}, {"n": [1, 3]})
    assert not body_match({"n": [{"numeric": [">", 2]}]}, {"n": [1, 2]})


def test_body_scope_json_types() -> None:
    assert body_match({"n": [5]}, {"n": 5.0})
    assert not body_match({"n": [5]}, {"n": "5"})
    assert not body_match({"n": ["5"]}, {"n": 5})
    assert body_match({"b": [True]}, {"b": True})
    assert not body_match({"b": [True]}, {"b": 1})
    assert not body_match({"b": [1]}, {"b": True})
    assert not body_match({"b": [False]}, {"b": 0})
    assert body_match({"z": [None]}, {"z": None})
    assert not body_match({"z": [None]}, {})
    assert not body_match({"z": [None]}, {"z": "null"})


def test_body_scope_needs_a_json_object() -> None:
    policy = {"a": [{"exists": False}]}
    assert body_match(policy, {"b": 1})
    assert not body_match(policy, "not json")
    assert not body_match(policy, "[1, 2]")
    assert not body_match(policy, "7")
    assert not body_match(policy, None)


def test_body_scope_ignores_attributes() -> None:
    policy = compile_policy({"color": ["red"]}, "MessageBody")
    assert not policy.matches({"color": s("red")}, '{"colour": "red"}')
    assert policy.matches({"color": s("blue")}, '{"color": "red"}')


def test_attribute_scope_ignores_body() -> None:
    policy = compile_policy({"color": ["red"]})
    assert not policy.matches({}, '{"color": "red"}')


# --- bugs: behaviour the module's docstring (or AWS's) promises, not what it does ---------


def test_binary_attribute_does_not_match_anything_but() -> None:
    assert not attr_match({"blob": [{"anything-but": ["x"]}]}, {"blob": ("Binary", "AAEC")})


def test_body_scope_nested_policy_over_a_list_of_objects() -> None:
    assert body_match({"items": {"kind": ["x"]}}, {"items": [{"kind": "y"}, {"kind": "x"}]})


def test_body_scope_nested_exists_false_when_parent_missing() -> None:
    policy = {"a": {"b": [{"exists": False}]}}
    assert body_match(policy, {"a": {}})
    assert body_match(policy, {"other": 1})
    assert body_match(policy, {"a": 5})


@pytest.mark.parametrize("spec", [[[], 5], [">", 0, {}, 5]])
def test_numeric_unhashable_operator_rejected(spec: list[Any]) -> None:
    rejected({"a": [{"numeric": spec}]})


def test_exists_false_needs_some_attribute() -> None:
    assert not attr_match({"store": [{"exists": False}]}, {})


def test_exists_true_needs_a_non_null_value() -> None:
    assert not body_match({"store": [{"exists": True}]}, {"store": None})


# --- a reference matcher, straight from the AWS rules -------------------------------------

ABSENT = object()
_OPS: dict[str, Callable[[float, float], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def ref_normal(value: Any) -> Any:
    """Numbers become floats; strings, booleans and null stay what they are."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def ref_attributes(attributes: Attrs) -> dict[str, Any]:
    """What a String, Number or String.Array attribute offers the policy."""
    view: dict[str, Any] = {}
    for name, (kind, text) in attributes.items():
        if kind == "String":
            view[name] = text
        elif kind == "Number":
            view[name] = float(text)
        elif kind == "String.Array":
            view[name] = [ref_normal(v) for v in json.loads(text)]
    return view


def ref_equal(literal: Any, value: Any) -> bool:
    if isinstance(literal, str):
        return isinstance(value, str) and value == literal
    if literal is None or isinstance(literal, bool):
        return value is literal
    return isinstance(value, float) and value == float(literal)


def ref_string_op(name: str, arg: str, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if name == "prefix":
        return value.startswith(arg)
    if name == "suffix":
        return value.endswith(arg)
    return value.lower() == arg.lower()  # equals-ignore-case (ASCII in these tests)


def ref_one(alternative: Any, value: Any) -> bool:
    """One alternative (not exists) against one value that is there."""
    if not isinstance(alternative, dict):
        return ref_equal(alternative, value)
    ((name, arg),) = alternative.items()
    if name in ("prefix", "suffix", "equals-ignore-case"):
        return ref_string_op(name, arg, value)
    if name == "numeric":
        pairs = [(arg[i], arg[i + 1]) for i in range(0, len(arg), 2)]
        return isinstance(value, float) and all(_OPS[op](value, b) for op, b in pairs)
    assert name == "anything-but"
    if isinstance(arg, dict):
        ((inner, text),) = arg.items()
        return isinstance(value, str) and not ref_string_op(inner, text, value)
    excluded = arg if isinstance(arg, list) else [arg]
    return not any(ref_equal(x, value) for x in excluded)


def ref_key(alternatives: list[Any], value: Any) -> bool:
    """A key's list of alternatives (ORed); a list value matches when any element does."""
    present = value is not ABSENT
    values = value if isinstance(value, list) else [value]
    for alternative in alternatives:
        if isinstance(alternative, dict) and "exists" in alternative:
            if alternative["exists"] == present:
                return True
        elif present and any(ref_one(alternative, v) for v in values):
            return True
    return False


def ref_matches(policy: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    """Keys ANDed; ``$or`` any branch; a nested policy reads a nested object."""
    for key, condition in policy.items():
        if key == "$or":
            ok = any(ref_matches(branch, obj) for branch in condition)
        elif isinstance(condition, dict):
            inner = obj.get(key)
            ok = isinstance(inner, dict) and ref_matches(condition, inner)
        else:
            ok = ref_key(condition, obj.get(key, ABSENT))
        if not ok:
            return False
    return True


def ref_body(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: ref_body(v) for k, v in body.items()}
    if isinstance(body, list):
        return [ref_body(v) for v in body]
    return ref_normal(body)


# --- strategies ----------------------------------------------------------------------------

KEYS = ("a", "b", "c")
strings = st.text(alphabet="abAB", max_size=3)
numbers = st.sampled_from([-3, -1, 0, 0.5, 1, 2, 2.5, 3])
literals = st.one_of(strings, numbers)
body_literals = st.one_of(strings, numbers, st.booleans(), st.none())
numeric_specs = st.one_of(
    st.tuples(st.sampled_from(sorted(_OPS)), numbers).map(list),
    st.tuples(st.sampled_from([">", ">="]), numbers, st.sampled_from(["<", "<="]), numbers).map(
        list
    ),
)


def alternatives(literal: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    string_op = st.sampled_from(["prefix", "suffix"])
    return st.one_of(
        literal,
        st.builds(lambda op, x: {op: x}, string_op, strings),
        strings.map(lambda x: {"equals-ignore-case": x}),
        st.one_of(
            literal,
            st.lists(literal, min_size=1, max_size=3),
            st.builds(lambda op, x: {op: x}, string_op, strings),
        ).map(lambda x: {"anything-but": x}),
        numeric_specs.map(lambda spec: {"numeric": spec}),
        st.booleans().map(lambda b: {"exists": b}),
    )


def flat_policies(
    literal: st.SearchStrategy[Any], max_keys: int, max_values: int
) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(
        st.sampled_from(KEYS),
        st.lists(alternatives(literal), min_size=1, max_size=max_values),
        min_size=1,
        max_size=max_keys,
    )


def with_or(top: dict[str, Any], branches: list[dict[str, Any]]) -> dict[str, Any]:
    return {**top, "$or": branches}


attribute_policies = st.one_of(
    flat_policies(literals, 3, 3),
    st.builds(
        with_or,
        st.one_of(st.just({}), flat_policies(literals, 1, 3)),
        st.lists(flat_policies(literals, 2, 3), min_size=2, max_size=2),
    ),
)
number_texts = st.sampled_from(["-3", "-1", "-0", "0", "0.5", "1", "1.0", "1e0", "2", "2.5", "3"])
array_items = st.one_of(strings, st.sampled_from([-1, 0, 0.5, 1, 2, 3]))
attribute_values = st.one_of(
    strings.map(lambda x: ("String", x)),
    number_texts.map(lambda x: ("Number", x)),
    st.lists(array_items, min_size=1, max_size=3).map(lambda xs: arr(*xs)),
)
# At least one attribute: AWS's rule for an empty set has its own test above.
attribute_sets = st.dictionaries(st.sampled_from(KEYS), attribute_values, min_size=1)

body_policies = st.builds(
    lambda top, nested: {**top, "n": nested} if nested else top,
    flat_policies(body_literals, 2, 3),
    st.one_of(st.none(), flat_policies(body_literals, 1, 3)),
)
body_scalars = st.one_of(strings, st.sampled_from([-1, 0, 0.5, 1, 2, 3]), st.booleans())
body_values = st.one_of(body_scalars, st.lists(body_scalars, min_size=1, max_size=3))
# "n" is always an object (possibly empty): nested absence and nulls have their own tests.
bodies = st.builds(
    lambda top, nested: {**top, "n": nested},
    st.dictionaries(st.sampled_from(KEYS), body_values, min_size=2),
    st.dictionaries(st.sampled_from(KEYS), body_values, min_size=1),
)


# --- properties ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(policy=attribute_policies, attributes=attribute_sets)
def test_attribute_scope_agrees_with_reference(policy: dict[str, Any], attributes: Attrs) -> None:
    expected = ref_matches(policy, ref_attributes(attributes))
    assert compile_policy(policy).matches(attributes, None) is expected
    assert compile_policy(json.dumps(policy)).matches(attributes, None) is expected


@settings(max_examples=300, deadline=None)
@given(policy=body_policies, body=bodies)
def test_body_scope_agrees_with_reference(policy: dict[str, Any], body: dict[str, Any]) -> None:
    expected = ref_matches(policy, ref_body(body))
    compiled = compile_policy(policy, "MessageBody")
    assert compiled.matches({}, json.dumps(body)) is expected


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(1, 8), min_size=1, max_size=8))
def test_limits_accept_exactly_what_sns_accepts(sizes: list[int]) -> None:
    policy = {f"k{i}": list(range(size)) for i, size in enumerate(sizes)}
    combinations = math.prod(sizes)
    if len(sizes) <= MAX_KEYS and combinations <= MAX_COMBINATIONS:
        compiled = compile_policy(policy)
        assert (compiled.keys, compiled.combinations) == (len(sizes), combinations)
        return
    error = rejected(policy)
    if len(sizes) > MAX_KEYS:
        assert f"{len(sizes)} keys" in error.message
    else:
        assert f"{combinations} combinations" in error.message
