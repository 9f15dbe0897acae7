"""The topic service's errors, named and sent as SNS sends them (query protocol).

::

    SnsError                      code, HTTP status, sender fault
    ├── InvalidParameter          a parameter malformed or out of range (400)
    ├── InvalidParameterValue     ParameterValueInvalid: a value SNS refuses (400)
    ├── NotFound                  unknown topic or subscription (404)
    ├── AuthorizationError        confirmation with a wrong or expired token (403)
    ├── FilterPolicyLimitExceeded too many filter policies on one topic (403)
    ├── Throttled                 (429)
    ├── InvalidAction             unknown or missing ``Action`` (400)
    ├── InternalError             the service failed, e.g. a commit (500)
    └── PublishBatch's request errors: EmptyBatchRequest, TooManyEntriesInBatchRequest,
        BatchEntryIdsNotDistinct, InvalidBatchEntryId, BatchRequestTooLong

The error body is SNS's ``ErrorResponse`` XML (``<Error><Type>Sender</Type><Code>NotFound
</Code><Message>...``); botocore reports ``Code`` as ``Error.Code`` and maps it to the
modelled exception (``client.exceptions.NotFoundException``). Every message names the
parameter first, e.g. ``"TopicArn: topic does not exist"``.
"""

from __future__ import annotations

from typing import ClassVar


class SnsError(Exception):
    """Base of every error the topic service answers with: its SNS code and HTTP status."""

    code: ClassVar[str] = "InternalError"
    status: ClassVar[int] = 400
    sender_fault: ClassVar[bool] = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(SnsError):
    code = "InvalidParameter"


class InvalidParameterValue(SnsError):
    code = "ParameterValueInvalid"


class NotFound(SnsError):
    code = "NotFound"
    status = 404


class AuthorizationError(SnsError):
    code = "AuthorizationError"
    status = 403


class FilterPolicyLimitExceeded(SnsError):
    code = "FilterPolicyLimitExceeded"
    status = 403


class Throttled(SnsError):
    code = "Throttled"
    status = 429


class InvalidAction(SnsError):
    code = "InvalidAction"


class InternalError(SnsError):
    code = "InternalError"
    status = 500
    sender_fault = False


class EmptyBatchRequest(SnsError):
    code = "EmptyBatchRequest"


class TooManyEntriesInBatchRequest(SnsError):
    code = "TooManyEntriesInBatchRequest"


class BatchEntryIdsNotDistinct(SnsError):
    code = "BatchEntryIdsNotDistinct"


class InvalidBatchEntryId(SnsError):
    code = "InvalidBatchEntryId"


class BatchRequestTooLong(SnsError):
    code = "BatchRequestTooLong"
