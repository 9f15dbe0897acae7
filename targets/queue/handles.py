"""Receipt handles: opaque, unforgeable, and enough to find the message in one lookup.

A handle is 40 URL-safe base64 characters over 30 bytes::

    queue id (4) | message row id (8) | receive nonce (8) | keyed BLAKE2b MAC (10)

The row id finds the message by primary key; the nonce is drawn afresh for each receive and
stored on the message, so only the handle of the latest receive matches; the MAC (keyed
with a secret kept in the database, so handles survive a restart) tells a handle this queue
issued from garbage or a forgery without touching the database.

Encoding and decoding are ``base64.urlsafe_b64encode``/``urlsafe_b64decode`` spelled out on
binascii (the same bytes, the same leniency: characters outside the alphabet are skipped),
and the MAC copies a BLAKE2b state keyed once: a receive makes ten handles, a delete batch
checks ten.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import struct
from typing import Final

_PAYLOAD: Final = struct.Struct(">IqQ")
_TO_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE: Final = bytes.maketrans(b"-_", b"+/")
_MAC_SIZE: Final = 10
HANDLE_LENGTH: Final = 40
KEY_SIZE: Final = 32


class HandleCodec:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"key: must be {KEY_SIZE} bytes, got {len(key)}")
        self._keyed = hashlib.blake2b(digest_size=_MAC_SIZE, key=key)

    def _mac(self, payload: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(payload)
        return mac.digest()

    def encode(self, queue_id: int, row: int, nonce: int) -> str:
        payload = _PAYLOAD.pack(queue_id, row, nonce)
        raw = binascii.b2a_base64(payload + self._mac(payload), newline=False)
        return raw.translate(_TO_URLSAFE).decode("ascii")

    def decode(self, handle: object) -> tuple[int, int, int] | None:
        """``(queue_id, row, nonce)`` of a handle this codec issued, else None."""
        if not isinstance(handle, str) or len(handle) != HANDLE_LENGTH:
            return None
        try:
            raw = binascii.a2b_base64(handle.encode("ascii").translate(_FROM_URLSAFE))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return None
        payload, mac = raw[:-_MAC_SIZE], raw[-_MAC_SIZE:]
        if len(payload) != _PAYLOAD.size or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        queue_id, row, nonce = _PAYLOAD.unpack(payload)
        return queue_id, row, nonce
