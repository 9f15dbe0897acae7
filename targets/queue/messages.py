"""Message bodies and message attributes: SQS's validation rules and its two MD5 digests.

``md5_of_body`` is the hex MD5 of the UTF-8 body (``MD5OfMessageBody`` / ``MD5OfBody``).
``md5_of_attributes`` is SQS's documented digest of message attributes
(``MD5OfMessageAttributes``), the one the AWS SDKs verify: for each attribute in order of
name, the name, then the data type, each as a 4-byte big-endian length and its UTF-8 bytes,
then one transport byte (1 for a string value, 2 for a binary one) and the value, again
length-prefixed.

Attributes are stored as compact JSON (``encode_attributes`` / ``decode_attributes``):
``{"name": ["String", "value"], "bin": ["Binary", "<base64>"]}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from targets.queue.errors import (
    InvalidMessageContents,
    InvalidParameterValue,
    MissingParameter,
)

MAX_MESSAGE_ATTRIBUTES: Final = 10
MAX_ATTRIBUTE_NAME: Final = 256
MAX_DATA_TYPE: Final = 256
BASE_TYPES: Final = ("String", "Number", "Binary")

# SQS accepts #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
_INVALID_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTRIBUTE_NAME: Final = re.compile(r"[A-Za-z0-9_.\-]+")
_RESERVED_PREFIXES: Final = ("aws.", "amazon.")
_STRING_FIELD: Final = b"\x01"
_BINARY_FIELD: Final = b"\x02"


@dataclass(frozen=True, slots=True)
class MessageAttribute:
    """A user message attribute: ``String``/``Number`` carry ``string_value``, ``Binary``
    carries ``binary_value``; a ``.custom`` suffix on the type is kept (``Number.float``)."""

    data_type: str
    string_value: str | None = None
    binary_value: bytes | None = None

    @property
    def is_binary(self) -> bool:
        return self.data_type.startswith("Binary")

    def size(self, name: str) -> int:
        """Bytes SQS counts toward the message size: name, type and value."""
        value = self.binary_value if self.is_binary else (self.string_value or "").encode()
        return len(name.encode()) + len(self.data_type.encode()) + len(value or b"")


def md5_of_body(body: str) -> str:
    return hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()


def md5_of_attributes(attributes: Mapping[str, MessageAttribute]) -> str:
    """SQS's ``MD5OfMessageAttributes`` over ``attributes``, sorted by name."""
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        attribute = attributes[name]
        _length_prefixed(digest, name.encode())
        _length_prefixed(digest, attribute.data_type.encode())
        if attribute.is_binary:
            digest.update(_BINARY_FIELD)
            _length_prefixed(digest, attribute.binary_value or b"")
        else:
            digest.update(_STRING_FIELD)
            _length_prefixed(digest, (attribute.string_value or "").encode())
    return digest.hexdigest()


def _length_prefixed(digest: hashlib._Hash, value: bytes) -> None:
    digest.update(struct.pack(">I", len(value)))
    digest.update(value)


def check_body(body: object, param: str = "MessageBody") -> str:
    """The body, or ``MissingParameter`` (empty) / ``InvalidMessageContents`` (characters)."""
    if not isinstance(body, str) or not body:
        raise MissingParameter(f"{param}: the request must contain a non-empty message body")
    bad = _INVALID_CHAR.search(body)
    if bad is not None:
        raise InvalidMessageContents(
            f"{param}: invalid character U+{ord(bad.group()):04X} at offset {bad.start()}"
        )
    return body


def check_attributes(attributes: Mapping[str, MessageAttribute] | None) -> int:
    """Validate user message attributes; return their size in bytes (0 when none)."""
    if not attributes:
        return 0
    if len(attributes) > MAX_MESSAGE_ATTRIBUTES:
        raise InvalidParameterValue(
            f"MessageAttributes: at most {MAX_MESSAGE_ATTRIBUTES} attributes, got {len(attributes)}"
        )
    size = 0
    for name, attribute in attributes.items():
        _check_attribute(name, attribute)
        size += attribute.size(name)
    return size


def _check_attribute(name: str, attribute: MessageAttribute) -> None:
    where = f"MessageAttributes.{name}"
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= MAX_ATTRIBUTE_NAME
        or _ATTRIBUTE_NAME.fullmatch(name) is None
        or name.lower().startswith(_RESERVED_PREFIXES)
        or name.startswith(".")
        or name.endswith(".")
        or ".." in name
    ):
        raise InvalidParameterValue(
            f"MessageAttributes: invalid attribute name {name!r} (1..256 of A-Z a-z 0-9 _ - ., "
            "no leading, trailing or double period, no AWS. or Amazon. prefix)"
        )
    data_type = attribute.data_type
    base, _, custom = data_type.partition(".")
    if (
        base not in BASE_TYPES
        or len(data_type) > MAX_DATA_TYPE
        or (not custom and "." in data_type)
    ):
        raise InvalidParameterValue(
            f"{where}.DataType: must be String, Number or Binary (optionally .custom), "
            f"got {data_type!r}"
        )
    if base == "Binary":
        if not isinstance(attribute.binary_value, bytes) or not attribute.binary_value:
            raise InvalidParameterValue(f"{where}.BinaryValue: a Binary attribute needs a value")
        if attribute.string_value is not None:
            raise InvalidParameterValue(f"{where}.StringValue: not allowed on a Binary attribute")
        return
    value = attribute.string_value
    if not isinstance(value, str) or not value:
        raise InvalidParameterValue(f"{where}.StringValue: a {base} attribute needs a value")
    if attribute.binary_value is not None:
        raise InvalidParameterValue(f"{where}.BinaryValue: not allowed on a {base} attribute")
    bad = _INVALID_CHAR.search(value)
    if bad is not None:
        raise InvalidMessageContents(
            f"{where}.StringValue: invalid character U+{ord(bad.group()):04X}"
        )
    if base == "Number":
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite() or not Decimal("-1e128") < number < Decimal("1e126"):
            raise InvalidParameterValue(
                f"{where}.StringValue: must be a number in (-10^128, 10^126), got {value!r}"
            )


def encode_attributes(attributes: Mapping[str, MessageAttribute] | None) -> str | None:
    if not attributes:
        return None
    packed: dict[str, list[str]] = {}
    for name, attribute in attributes.items():
        if attribute.is_binary:
            value = base64.b64encode(attribute.binary_value or b"").decode()
        else:
            value = attribute.string_value or ""
        packed[name] = [attribute.data_type, value]
    return json.dumps(packed, separators=(",", ":"), ensure_ascii=False)


def decode_attributes(packed: str) -> dict[str, MessageAttribute]:
    attributes: dict[str, MessageAttribute] = {}
    for name, (data_type, value) in json.loads(packed).items():
        if data_type.startswith("Binary"):
            attributes[name] = MessageAttribute(data_type, binary_value=base64.b64decode(value))
        else:
            attributes[name] = MessageAttribute(data_type, string_value=value)
    return attributes


def select_attributes(
    attributes: Mapping[str, MessageAttribute], names: Iterable[str]
) -> dict[str, MessageAttribute]:
    """The attributes ReceiveMessage's ``MessageAttributeNames`` asks for: ``All`` or ``.*``,
    exact names, and prefixes written ``prefix.*``."""
    wanted = list(names)
    if not wanted or not attributes:
        return {}
    if "All" in wanted or ".*" in wanted:
        return dict(attributes)
    exact = {n for n in wanted if not n.endswith(".*")}
    prefixes = tuple(n[:-1] for n in wanted if n.endswith(".*"))
    return {
        name: value
        for name, value in attributes.items()
        if name in exact or (prefixes and name.startswith(prefixes))
    }
