"""What a consumer reads from a message: the event's id and whether it is poison.

A message reaches a consumer three ways: a queue message whose body is the event (the
payment enqueued it), a queue message or HTTP push whose body is SNS's JSON envelope
(``Type: Notification``, the event in ``Message``), or a raw delivery (the event alone).
``read_event`` unwraps the envelope and returns the event's own ``event_id`` when it has
one, else the SNS ``MessageId``, else the transport's id: every copy of one published event
carries the same id, so a consumer can count duplicates. Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    poison: bool
    body: Any  # the event, parsed (None when it is not JSON)


def _parse(text: object) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def read_event(body: str, fallback_id: str) -> Event:
    data = _parse(body)
    envelope_id = None
    if isinstance(data, dict) and data.get("Type") == "Notification" and "Message" in data:
        envelope_id = data.get("MessageId")
        data = _parse(data["Message"])
    event_id = data.get("event_id") if isinstance(data, dict) else None
    if not isinstance(event_id, str) or not event_id:
        event_id = envelope_id if isinstance(envelope_id, str) and envelope_id else fallback_id
    poison = isinstance(data, dict) and data.get("poison") is True
    return Event(event_id, poison, data)
