"""The queue's errors: one small tree, named as SQS names them.

::

    QueueError                         code (JSON ``__type``), query_code (legacy), status 400
    ├── QueueDoesNotExist              unknown queue
    ├── QueueNameExists                CreateQueue: same name, different attributes
    ├── ResourceNotFoundException      redrive (StartMessageMoveTask): unknown queue
    ├── ReceiptHandleIsInvalid         garbage, forged or stale (superseded) receipt handle
    ├── MessageNotInflight             ChangeMessageVisibility on a message not in flight
    ├── PurgeQueueInProgress           a second PurgeQueue within 60 s
    ├── InvalidParameterValue          a request parameter out of range or malformed
    ├── MissingParameter               a required parameter absent or empty
    ├── InvalidMessageContents         a body or attribute with characters SQS refuses
    ├── InvalidAttributeName           an unknown queue or message-system attribute name
    ├── InvalidAttributeValue          a queue attribute value out of range or malformed
    ├── UnsupportedOperation           FIFO queues and other actions this model leaves out
    └── batch request errors: EmptyBatchRequest, TooManyEntriesInBatchRequest,
        BatchEntryIdsNotDistinct, InvalidBatchEntryId, BatchRequestTooLong

``code`` is the error shape name of the AWS API model (botocore's ``sqs`` service-2.json),
which the JSON protocol sends as ``__type``; ``query_code`` is the legacy query-protocol code
SQS sends in the ``x-amzn-query-error: <query_code>;Sender`` header (botocore then reports
that one as ``Error.Code``). Every message names the parameter first, e.g.
``"VisibilityTimeout: must be 0..43200, got 50000"``. A batch action reports per-entry
failures as ``BatchFailure`` values built from these errors, not as exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class QueueError(Exception):
    """Base of every error the queue engine raises; carries its SQS names and HTTP status."""

    code: ClassVar[str] = "InternalError"
    query_code: ClassVar[str] = "InternalError"
    status: ClassVar[int] = 400
    sender_fault: ClassVar[bool] = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class QueueDoesNotExist(QueueError):
    code = "QueueDoesNotExist"
    query_code = "AWS.SimpleQueueService.NonExistentQueue"


class QueueNameExists(QueueError):
    code = "QueueNameExists"
    query_code = "QueueAlreadyExists"


class ResourceNotFoundException(QueueError):
    code = "ResourceNotFoundException"
    query_code = "ResourceNotFoundException"


class ReceiptHandleIsInvalid(QueueError):
    code = "ReceiptHandleIsInvalid"
    query_code = "ReceiptHandleIsInvalid"


class MessageNotInflight(QueueError):
    code = "MessageNotInflight"
    query_code = "AWS.SimpleQueueService.MessageNotInflight"


class PurgeQueueInProgress(QueueError):
    code = "PurgeQueueInProgress"
    query_code = "AWS.SimpleQueueService.PurgeQueueInProgress"


class InvalidParameterValue(QueueError):
    code = "InvalidParameterValue"
    query_code = "InvalidParameterValue"


class MissingParameter(QueueError):
    code = "MissingParameter"
    query_code = "MissingParameter"


class InvalidMessageContents(QueueError):
    code = "InvalidMessageContents"
    query_code = "InvalidMessageContents"


class InvalidAttributeName(QueueError):
    code = "InvalidAttributeName"
    query_code = "InvalidAttributeName"


class InvalidAttributeValue(QueueError):
    code = "InvalidAttributeValue"
    query_code = "InvalidAttributeValue"


class UnsupportedOperation(QueueError):
    code = "UnsupportedOperation"
    query_code = "AWS.SimpleQueueService.UnsupportedOperation"


class EmptyBatchRequest(QueueError):
    code = "EmptyBatchRequest"
    query_code = "AWS.SimpleQueueService.EmptyBatchRequest"


class TooManyEntriesInBatchRequest(QueueError):
    code = "TooManyEntriesInBatchRequest"
    query_code = "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"


class BatchEntryIdsNotDistinct(QueueError):
    code = "BatchEntryIdsNotDistinct"
    query_code = "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"


class InvalidBatchEntryId(QueueError):
    code = "InvalidBatchEntryId"
    query_code = "AWS.SimpleQueueService.InvalidBatchEntryId"


class BatchRequestTooLong(QueueError):
    code = "BatchRequestTooLong"
    query_code = "AWS.SimpleQueueService.BatchRequestTooLong"


@dataclass(frozen=True, slots=True)
class BatchFailure:
    """One failed entry of a batch action (SQS ``BatchResultErrorEntry``)."""

    id: str
    code: str
    message: str
    sender_fault: bool = True

    @classmethod
    def of(cls, entry_id: str, error: QueueError) -> BatchFailure:
        return cls(entry_id, error.code, error.message, error.sender_fault)
