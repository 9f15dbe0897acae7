"""Queue attributes: SQS's settable attributes, their ranges and defaults, parsed once.

SQS passes attributes as a map of strings (``{"VisibilityTimeout": "60"}``);
``QueueConfig.apply`` checks such a map on top of a base configuration (the defaults for
CreateQueue, the current one for SetQueueAttributes) and returns a new frozen
``QueueConfig``; ``QueueConfig.attributes`` gives the same strings back, as
GetQueueAttributes returns them. Ints are accepted too, for the plain JSON API.

=================================  ================  =======================================
attribute                          range             default
=================================  ================  =======================================
VisibilityTimeout                  0..43200 s        30
MessageRetentionPeriod             60..1209600 s     345600 (4 days)
DelaySeconds                       0..900 s          0
ReceiveMessageWaitTimeSeconds      0..20 s           0 (short polling)
MaximumMessageSize                 1024..262144 B    262144 (SQS's 256 KiB; 1 MiB today)
RedrivePolicy                      JSON              none: ``deadLetterTargetArn`` (an ARN or
                                                     a queue name), ``maxReceiveCount`` 1..1000
RedriveAllowPolicy                 JSON              none (allowAll): ``redrivePermission``
                                                     allowAll | denyAll | byQueue with 1..10
                                                     ``sourceQueueArns``
Policy, KmsMasterKeyId, KmsDataKeyReusePeriodSeconds, SqsManagedSseEnabled: kept, no effect
=================================  ================  =======================================

An empty string for RedrivePolicy or RedriveAllowPolicy removes it, as in SQS. FIFO
attributes are refused: this model has standard queues only. Whether a dead-letter target
exists and allows the source is the store's business (it knows the queues); here the
target is reduced to a queue name with ``Arns``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from targets.queue.errors import (
    InvalidAttributeName,
    InvalidAttributeValue,
    InvalidParameterValue,
    UnsupportedOperation,
)

MAX_VISIBILITY_TIMEOUT: Final = 43_200
MAX_DELAY_SECONDS: Final = 900
MAX_WAIT_TIME_SECONDS: Final = 20
MESSAGE_SIZE_LIMIT: Final = 262_144
MAX_RECEIVE_COUNT: Final = 1000
MAX_ALLOWED_SOURCES: Final = 10
QUEUE_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,80}")

RANGES: Final[dict[str, tuple[int, int]]] = {
    "VisibilityTimeout": (0, MAX_VISIBILITY_TIMEOUT),
    "MessageRetentionPeriod": (60, 1_209_600),
    "DelaySeconds": (0, MAX_DELAY_SECONDS),
    "ReceiveMessageWaitTimeSeconds": (0, MAX_WAIT_TIME_SECONDS),
    "MaximumMessageSize": (1024, MESSAGE_SIZE_LIMIT),
}
PASSTHROUGH: Final = frozenset(
    {"Policy", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "SqsManagedSseEnabled"}
)
FIFO_ONLY: Final = frozenset(
    {"ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"}
)
COUNTS: Final = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)
READ_ONLY: Final = frozenset({*COUNTS, "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn"})
SETTABLE: Final = frozenset({*RANGES, "RedrivePolicy", "RedriveAllowPolicy", *PASSTHROUGH})
READABLE: Final = frozenset({*SETTABLE, *READ_ONLY})
PERMISSIONS: Final = ("allowAll", "denyAll", "byQueue")


@dataclass(frozen=True, slots=True)
class Arns:
    """Queue ARNs of the one fake account and region: ``arn:aws:sqs:<region>:<account>:<name>``."""

    region: str = "us-east-1"
    account_id: str = "000000000000"

    @property
    def prefix(self) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account_id}:"

    def arn(self, name: str) -> str:
        return self.prefix + name

    def name_of(self, reference: str) -> str | None:
        """The queue name an ARN of this account (or a bare queue name) refers to."""
        name = reference.removeprefix(self.prefix)
        return name if QUEUE_NAME.fullmatch(name) else None


@dataclass(frozen=True, slots=True)
class RedrivePolicy:
    dead_letter_queue: str
    max_receive_count: int


@dataclass(frozen=True, slots=True)
class RedriveAllowPolicy:
    permission: str
    source_queues: tuple[str, ...] = ()

    def allows(self, source: str) -> bool:
        if self.permission == "byQueue":
            return source in self.source_queues
        return self.permission == "allowAll"


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """A queue's settable attributes, checked."""

    visibility_timeout: int = 30
    message_retention_period: int = 345_600
    delay_seconds: int = 0
    receive_message_wait_time_seconds: int = 0
    maximum_message_size: int = MESSAGE_SIZE_LIMIT
    redrive_policy: RedrivePolicy | None = None
    redrive_allow_policy: RedriveAllowPolicy | None = None
    passthrough: tuple[tuple[str, str], ...] = field(default=())

    def apply(
        self, changes: Mapping[str, object], arns: Arns, *, creating: bool = False
    ) -> QueueConfig:
        """This configuration with ``changes`` (SQS attribute names to values) applied."""
        updates: dict[str, object] = {}
        passthrough = dict(self.passthrough)
        for name, value in changes.items():
            if name in RANGES:
                low, high = RANGES[name]
                updates[_FIELDS[name]] = _int_attribute(name, value, low, high)
            elif name == "RedrivePolicy":
                updates["redrive_policy"] = _redrive_policy(value, arns)
            elif name == "RedriveAllowPolicy":
                updates["redrive_allow_policy"] = _redrive_allow_policy(value, arns)
            elif name in PASSTHROUGH:
                passthrough[name] = _string_attribute(name, value)
            elif name == "FifoQueue" and creating:
                if str(value).lower() != "false":
                    raise UnsupportedOperation(
                        "FifoQueue: only standard queues are modelled, got FIFO"
                    )
            elif name in READ_ONLY:
                raise InvalidAttributeName(f"{name}: read-only attribute, cannot be set")
            elif name in FIFO_ONLY or name == "FifoQueue":
                raise InvalidAttributeName(f"{name}: FIFO-only attribute; queues are standard")
            else:
                raise InvalidAttributeName(f"{name}: unknown attribute")
        if passthrough:
            updates["passthrough"] = tuple(sorted(passthrough.items()))
        return replace(self, **updates)  # type: ignore[arg-type]

    def attributes(self, arns: Arns | None = None) -> dict[str, str]:
        """The settable attributes as GetQueueAttributes returns them (strings); queues in
        the redrive policies as ARNs, or as bare names without ``arns`` (the stored form,
        which ``apply`` reads back whatever the account and region)."""

        def ref(name: str) -> str:
            return name if arns is None else arns.arn(name)

        result = {
            "VisibilityTimeout": str(self.visibility_timeout),
            "MessageRetentionPeriod": str(self.message_retention_period),
            "DelaySeconds": str(self.delay_seconds),
            "ReceiveMessageWaitTimeSeconds": str(self.receive_message_wait_time_seconds),
            "MaximumMessageSize": str(self.maximum_message_size),
        }
        if self.redrive_policy is not None:
            result["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": ref(self.redrive_policy.dead_letter_queue),
                    "maxReceiveCount": self.redrive_policy.max_receive_count,
                },
                separators=(",", ":"),
            )
        if self.redrive_allow_policy is not None:
            allow: dict[str, object] = {"redrivePermission": self.redrive_allow_policy.permission}
            if self.redrive_allow_policy.source_queues:
                allow["sourceQueueArns"] = [ref(n) for n in self.redrive_allow_policy.source_queues]
            result["RedriveAllowPolicy"] = json.dumps(allow, separators=(",", ":"))
        result.update(self.passthrough)
        return result


_FIELDS: Final = {
    "VisibilityTimeout": "visibility_timeout",
    "MessageRetentionPeriod": "message_retention_period",
    "DelaySeconds": "delay_seconds",
    "ReceiveMessageWaitTimeSeconds": "receive_message_wait_time_seconds",
    "MaximumMessageSize": "maximum_message_size",
}


def parse_int(value: object) -> int | None:
    """An int from an int or a decimal string (SQS sends numbers as strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,12}", value.strip()):
        return int(value)
    return None


def _int_attribute(name: str, value: object, low: int, high: int) -> int:
    number = parse_int(value)
    if number is None or not low <= number <= high:
        raise InvalidAttributeValue(f"{name}: must be {low}..{high}, got {value!r}")
    return number


def _string_attribute(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidAttributeValue(f"{name}: must be a string, got {value!r}")
    return value


def _json_object(name: str, value: object) -> dict[str, object] | None:
    if value == "":
        return None
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    raise InvalidParameterValue(f"{name}: must be a JSON object, got {value!r}")


def _redrive_policy(value: object, arns: Arns) -> RedrivePolicy | None:
    policy = _json_object("RedrivePolicy", value)
    if policy is None:
        return None
    target = policy.get("deadLetterTargetArn")
    name = arns.name_of(target) if isinstance(target, str) else None
    if name is None:
        raise InvalidParameterValue(
            f"RedrivePolicy: deadLetterTargetArn must be a queue ARN of {arns.prefix}* "
            f"or a queue name, got {target!r}"
        )
    count = parse_int(policy.get("maxReceiveCount"))
    if count is None or not 1 <= count <= MAX_RECEIVE_COUNT:
        raise InvalidParameterValue(
            f"RedrivePolicy: maxReceiveCount must be 1..{MAX_RECEIVE_COUNT}, "
            f"got {policy.get('maxReceiveCount')!r}"
        )
    return RedrivePolicy(name, count)


def _redrive_allow_policy(value: object, arns: Arns) -> RedriveAllowPolicy | None:
    policy = _json_object("RedriveAllowPolicy", value)
    if policy is None:
        return None
    permission = policy.get("redrivePermission")
    if permission not in PERMISSIONS:
        raise InvalidParameterValue(
            f"RedriveAllowPolicy: redrivePermission must be allowAll, denyAll or byQueue, "
            f"got {permission!r}"
        )
    sources = policy.get("sourceQueueArns", [])
    if permission != "byQueue":
        if sources:
            raise InvalidParameterValue(
                f"RedriveAllowPolicy: sourceQueueArns only goes with byQueue, got {permission}"
            )
        return RedriveAllowPolicy(str(permission))
    if not isinstance(sources, list) or not 1 <= len(sources) <= MAX_ALLOWED_SOURCES:
        raise InvalidParameterValue(
            f"RedriveAllowPolicy: byQueue needs 1..{MAX_ALLOWED_SOURCES} sourceQueueArns, "
            f"got {sources!r}"
        )
    names = [arns.name_of(s) if isinstance(s, str) else None for s in sources]
    if any(n is None for n in names):
        raise InvalidParameterValue(
            f"RedriveAllowPolicy: sourceQueueArns must be queue ARNs or names, got {sources!r}"
        )
    return RedriveAllowPolicy("byQueue", tuple(sorted({n for n in names if n})))
