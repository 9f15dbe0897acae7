"""Receipt handles: opaque, unforgeable, and enough to find the message in one lookup.

A handle is 40 URL-safe base64 characters over 30 bytes::

    queue id (4) | message row id (8) | receive nonce (8) | keyed BLAKE2b MAC (10)

The row id finds the message by primary key; the nonce is drawn afresh for each receive and
stored on the message, so only the handle of the latest receive matches; the MAC (keyed
with a secret kept in the database, so handles survive a restart) tells a handle this queue
issued from garbage or a forgery without touching the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from typing import Final

_PAYLOAD: Final = struct.Struct(">IqQ")
_MAC_SIZE: Final = 10
HANDLE_LENGTH: Final = 40
KEY_SIZE: Final = 32


class HandleCodec:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"key: must be {KEY_SIZE} bytes, got {len(key)}")
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hashlib.blake2b(payload, digest_size=_MAC_SIZE, key=self._key).digest()

    def encode(self, queue_id: int, row: int, nonce: int) -> str:
        payload = _PAYLOAD.pack(queue_id, row, nonce)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).decode("ascii")

    def decode(self, handle: object) -> tuple[int, int, int] | None:
        """``(queue_id, row, nonce)`` of a handle this codec issued, else None."""
        if not isinstance(handle, str) or len(handle) != HANDLE_LENGTH:
            return None
        try:
            raw = base64.urlsafe_b64decode(handle.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return None
        payload, mac = raw[:-_MAC_SIZE], raw[-_MAC_SIZE:]
        if len(payload) != _PAYLOAD.size or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        queue_id, row, nonce = _PAYLOAD.unpack(payload)
        return queue_id, row, nonce
