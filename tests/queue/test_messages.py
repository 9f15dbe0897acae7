"""Tests for message rules and digests (targets.queue.messages) and receipt handles."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from targets.queue.errors import InvalidMessageContents, InvalidParameterValue, MissingParameter
from targets.queue.handles import HANDLE_LENGTH, HandleCodec
from targets.queue.messages import (
    MessageAttribute,
    check_attributes,
    check_body,
    decode_attributes,
    encode_attributes,
    md5_of_attributes,
    md5_of_body,
    select_attributes,
)

pytestmark = pytest.mark.core

# --- MD5 digests ---------------------------------------------------------------------------


def check(attributes: dict[str, MessageAttribute], expected: str) -> None:
    assert md5_of_attributes(attributes) == expected


def test_body_md5_is_the_md5_of_the_utf8_body():
    """MD5OfMessageBody is what boto3 computes: md5(body.encode('utf-8'))."""
    assert md5_of_body("héllo ☃") == hashlib.md5("héllo ☃".encode()).hexdigest()


def test_attribute_md5_amazon_sample_with_strings():
    """AWS SDK sample vector: two String attributes, given out of order."""
    check(
        {
            "test_attribute_name_2": MessageAttribute("String", "test_attribute_value_2"),
            "test_attribute_name_1": MessageAttribute("String", "test_attribute_value_1"),
        },
        "d53f3b558fe951154770f25cb63dbba9",
    )


def test_attribute_md5_amazon_sample_with_binary():
    """AWS SDK sample vector: one Binary attribute (transport byte 2)."""
    check(
        {"test_attribute_name": MessageAttribute("Binary", binary_value=b"test_attribute_value")},
        "23f6bd27ea87aab7dfeadcc9aebee495",
    )


def test_attribute_md5_with_numbers():
    """Number attributes hash as strings with their DataType (LocalStack, sqslite vectors)."""
    check(
        {"timestamp": MessageAttribute("Number", "1493147359900")},
        "235c5c510d26fb653d073faed50ae77c",
    )
    check(
        {
            "ordinal": MessageAttribute("Number", "1"),
            "category": MessageAttribute("String", "test"),
        },
        "d21ae90c49061e927f57df5f5d72be1f",
    )


def test_attribute_md5_matches_the_documented_algorithm():
    """Independent re-statement of the SQS developer guide's algorithm."""
    attributes = {
        "b": MessageAttribute("Number.float", "1.5"),
        "a": MessageAttribute("Binary.gif", binary_value=b"\x00\xff"),
    }

    def field(value: bytes) -> bytes:
        return len(value).to_bytes(4, "big") + value

    expected = hashlib.md5(
        field(b"a")
        + field(b"Binary.gif")
        + b"\x02"
        + field(b"\x00\xff")
        + field(b"b")
        + field(b"Number.float")
        + b"\x01"
        + field(b"1.5")
    ).hexdigest()
    check(attributes, expected)


# --- validation ----------------------------------------------------------------------------


def test_body_character_set():
    """Tab, LF, CR and printable Unicode are allowed; other controls and surrogates are not."""
    assert check_body("a\tb\nc\rd \U0001f600 \ufffd") == "a\tb\nc\rd \U0001f600 \ufffd"
    for bad in ["\x01", "\x1f", "\ufffe", "\ud800"]:
        with pytest.raises(InvalidMessageContents):
            check_body("ok" + bad)
    with pytest.raises(MissingParameter):
        check_body("")


@pytest.mark.parametrize(
    ("attributes", "fragment"),
    [
        ({f"a{i}": MessageAttribute("String", "x") for i in range(11)}, "at most 10"),
        ({"AWS.trace": MessageAttribute("String", "x")}, "invalid attribute name"),
        ({"amazon.x": MessageAttribute("String", "x")}, "invalid attribute name"),
        ({".lead": MessageAttribute("String", "x")}, "invalid attribute name"),
        ({"two..dots": MessageAttribute("String", "x")}, "invalid attribute name"),
        ({"sp ace": MessageAttribute("String", "x")}, "invalid attribute name"),
        ({"a": MessageAttribute("Text", "x")}, "DataType"),
        ({"a": MessageAttribute("String.", "x")}, "DataType"),
        ({"a": MessageAttribute("String", "")}, "StringValue"),
        ({"a": MessageAttribute("Number", "twelve")}, "must be a number"),
        ({"a": MessageAttribute("Number", "1e200")}, "must be a number"),
        ({"a": MessageAttribute("Binary")}, "BinaryValue"),
        ({"a": MessageAttribute("Binary", "x", b"y")}, "StringValue"),
        ({"a": MessageAttribute("String", "x", b"y")}, "BinaryValue"),
    ],
)
def test_bad_message_attributes(attributes: dict[str, MessageAttribute], fragment: str):
    """Names, types and values follow SQS's rules; errors name MessageAttributes."""
    with pytest.raises(InvalidParameterValue) as info:
        check_attributes(attributes)
    assert info.value.message.startswith("MessageAttributes")
    assert fragment in info.value.message


def test_attribute_size_counts_name_type_and_value():
    """SQS counts attribute name, type and value bytes toward the message size."""
    assert check_attributes({"ab": MessageAttribute("String", "xyz")}) == 2 + 6 + 3
    assert check_attributes({"b": MessageAttribute("Binary", binary_value=b"1234")}) == 1 + 6 + 4
    assert check_attributes(None) == 0


def test_select_attributes_by_all_name_and_prefix():
    """MessageAttributeNames: All / .*, exact names, prefix.*; nothing when none asked."""
    attributes = {n: MessageAttribute("String", "v") for n in ["a.x", "a.y", "b"]}
    assert select_attributes(attributes, []) == {}
    assert select_attributes(attributes, ["All"]) == attributes
    assert select_attributes(attributes, [".*"]) == attributes
    assert set(select_attributes(attributes, ["a.*"])) == {"a.x", "a.y"}
    assert set(select_attributes(attributes, ["b", "c"])) == {"b"}


attribute_values = st.one_of(
    st.builds(MessageAttribute, st.just("String"), st.text(min_size=1)),
    st.builds(MessageAttribute, st.just("Binary.raw"), st.none(), st.binary(min_size=1)),
)


@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,9}", fullmatch=True), attribute_values))
def test_attributes_survive_storage(attributes: dict[str, MessageAttribute]):
    """encode_attributes / decode_attributes round-trip every value exactly."""
    packed = encode_attributes(attributes)
    assert (decode_attributes(packed) if packed else {}) == attributes


# --- receipt handles -----------------------------------------------------------------------


def test_handles_round_trip_and_have_a_fixed_length():
    """A handle decodes to the queue id, row and nonce it was made from."""
    codec = HandleCodec(b"k" * 32)
    handle = codec.encode(7, 123_456_789, 2**63 - 1)
    assert len(handle) == HANDLE_LENGTH
    assert codec.decode(handle) == (7, 123_456_789, 2**63 - 1)


def test_handles_of_another_key_are_rejected():
    """A handle made with another store's key does not decode."""
    assert HandleCodec(b"a" * 32).decode(HandleCodec(b"b" * 32).encode(1, 2, 3)) is None


@given(st.text(max_size=60))
def test_arbitrary_strings_are_not_handles(text: str):
    """Random text never passes the MAC."""
    assert HandleCodec(b"k" * 32).decode(text) is None


def test_codec_key_must_be_32_bytes():
    """The MAC key size is fixed."""
    with pytest.raises(ValueError, match="key"):
        HandleCodec(b"short")
