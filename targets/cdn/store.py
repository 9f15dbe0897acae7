"""The edge cache's bookkeeping: request collapsing, invalidations, the byte-bounded LRU.

Pure: no I/O, no clock (``now`` is an argument), no futures (the adapter attaches those to
the tokens ``Collapser`` hands back).

Collapsing (semantics.md 7.4). The first miss for a cache key leads (sends the origin
request); requests for the same key that arrive before ``finish`` wait and get the leader's
answer. Only requests that share a key collapse.

Invalidation (7.6). ``/a/b`` matches that path exactly; ``/a/*`` (``*`` only as the last
character, ``/*`` for everything) matches every path with that prefix. Paths are
case-sensitive and match the path only, so every query, header and cookie variant of
``/a/b`` goes. CloudFront removes invalidated objects, and so does the adapter, at once
(``store.delete_where(lambda e: inv.matches(e.path))``): no lookup pays for an invalidation
log, and the memory is freed now. Removal alone misses one race: an origin request sent
before the invalidation whose answer arrives after it would store the old object again. So
``Invalidations`` also remembers each invalidation for ``horizon_s``, and ``admits`` refuses
to store an answer whose origin request began at or before a matching invalidation (or
before what it has forgotten). For CloudFront's limits (3,000 file paths, 15 wildcards) an
invalidation counts as in progress for ``in_progress_s`` after its creation; its effect is
immediate.

The store (``LruStore``) is bounded by bytes: ``put`` evicts the least recently used items
until the new one fits; an item larger than the whole store is not stored.
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

from targets.cdn.policy import InvalidPath, TooManyInvalidations, check
from targets.checks import finite, require

MAX_INVALIDATION_PATHS: Final = 3000
MAX_INVALIDATION_WILDCARDS: Final = 15


# --- request collapsing ----------------------------------------------------------------------


class Role(enum.StrEnum):
    LEADER = "leader"  # sends the origin request
    WAITER = "waiter"  # waits for the leader's answer


T = TypeVar("T")


class Collapser(Generic[T]):
    """One origin request per cache key at a time: the first miss for a key leads, the
    requests for that key that arrive before ``finish`` wait. Pure bookkeeping of tokens
    (the adapter's request ids); the adapter attaches the futures."""

    def __init__(self) -> None:
        self._waiters: dict[str, list[T]] = {}
        self.leaders = 0  # origin requests led, in all
        self.collapsed = 0  # requests that waited instead, in all

    def join(self, key: str, token: T) -> Role:
        waiters = self._waiters.get(key)
        if waiters is None:
            self._waiters[key] = []
            self.leaders += 1
            return Role.LEADER
        waiters.append(token)
        self.collapsed += 1
        return Role.WAITER

    def finish(self, key: str) -> tuple[T, ...]:
        """The leader for `key` is done: its waiters, in arrival order; the key is free."""
        return tuple(self._waiters.pop(key))

    def waiting(self, key: str) -> int:
        return len(self._waiters.get(key, ()))

    def __contains__(self, key: object) -> bool:
        return key in self._waiters

    def __len__(self) -> int:
        """Keys with an origin request in flight."""
        return len(self._waiters)


class Passes:
    """Keys whose last origin answer the cache could not keep (`private`, `no-store`): for
    `ttl_s` after it, requests for such a key go to the origin each on its own instead of
    waiting behind one another (Varnish's hit-for-miss; nginx lets its cache-lock waiters
    through the same way). At most `max_keys`, the oldest mark dropped first."""

    def __init__(self, ttl_s: float = 120.0, max_keys: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._until: dict[str, float] = {}

    def mark(self, key: str, now: float) -> None:
        self._until.pop(key, None)
        self._until[key] = now + self.ttl_s
        if len(self._until) > self.max_keys:
            del self._until[next(iter(self._until))]

    def clear(self, key: str) -> None:
        self._until.pop(key, None)

    def active(self, key: str, now: float) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if now >= until:
            del self._until[key]
            return False
        return True

    def __len__(self) -> int:
        return len(self._until)


# --- invalidation ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathPattern:
    """``/a/b`` (exactly that path) or ``/a/*`` / ``/a*`` / ``/*`` (every path with the
    prefix before the ``*``). Case-sensitive."""

    text: str

    def __post_init__(self) -> None:
        text = self.text
        require(text.startswith("/"), "Paths", "a path starting with '/'", text, InvalidPath)
        require("*" not in text[:-1], "Paths", "a path with '*' only at its end", text, InvalidPath)

    @property
    def wildcard(self) -> bool:
        return self.text.endswith("*")

    def matches(self, path: str) -> bool:
        if self.wildcard:
            return path.startswith(self.text[:-1])
        return path == self.text


@dataclass(frozen=True, slots=True)
class Invalidation:
    """One invalidation batch, effective at ``at``."""

    at: float
    patterns: tuple[PathPattern, ...]

    def matches(self, path: str) -> bool:
        return any(p.matches(path) for p in self.patterns)


class Invalidations:
    """The invalidations of one distribution: CloudFront's limits on those in progress, and
    a memory of recent ones so a late origin answer is not stored (``admits``)."""

    def __init__(
        self,
        *,
        in_progress_s: float = 5.0,
        horizon_s: float = 120.0,
        max_paths: int = MAX_INVALIDATION_PATHS,
        max_wildcards: int = MAX_INVALIDATION_WILDCARDS,
    ) -> None:
        for name, value in (("in_progress_s", in_progress_s), ("horizon_s", horizon_s)):
            check(finite(value) and value >= 0, name, "a number >= 0", value)
        check(horizon_s >= in_progress_s, "horizon_s", "at least in_progress_s", horizon_s)
        self.in_progress_s = in_progress_s
        self.horizon_s = horizon_s
        self.max_paths = max_paths
        self.max_wildcards = max_wildcards
        self._recent: list[Invalidation] = []
        self._forgotten_before = -math.inf

    def create(self, paths: Iterable[str], now: float) -> Invalidation:
        """A new invalidation of `paths` at `now` (duplicates count once). The adapter then
        removes the matching entries: ``store.delete_where(lambda e: inv.matches(e.path))``."""
        patterns = tuple(PathPattern(p) for p in dict.fromkeys(paths))
        require(bool(patterns), "Paths", "at least one path", [], InvalidPath)
        self.prune(now)
        files, wildcards = self.in_progress(now)
        new_wild = sum(p.wildcard for p in patterns)
        require(
            files + len(patterns) - new_wild <= self.max_paths,
            "Paths",
            f"at most {self.max_paths} file paths in progress",
            files + len(patterns) - new_wild,
            TooManyInvalidations,
        )
        require(
            wildcards + new_wild <= self.max_wildcards,
            "Paths",
            f"at most {self.max_wildcards} wildcard paths in progress",
            wildcards + new_wild,
            TooManyInvalidations,
        )
        made = Invalidation(now, patterns)
        self._recent.append(made)
        return made

    def in_progress(self, now: float) -> tuple[int, int]:
        """(file paths, wildcard paths) of the invalidations still in progress."""
        live = [p for i in self._recent if now < i.at + self.in_progress_s for p in i.patterns]
        wild = sum(p.wildcard for p in live)
        return len(live) - wild, wild

    def admits(self, path: str, requested_at: float) -> bool:
        """Whether an answer for `path` whose origin request began at `requested_at` may be
        stored: no invalidation matching it came at or after that instant (and none that
        might have was forgotten)."""
        if requested_at <= self._forgotten_before:
            return False
        return not any(i.at >= requested_at and i.matches(path) for i in self._recent)

    def prune(self, now: float) -> None:
        """Forget invalidations older than ``horizon_s``."""
        cutoff = now - self.horizon_s
        old = [i for i in self._recent if i.at < cutoff]
        if old:
            self._forgotten_before = max(self._forgotten_before, *(i.at for i in old))
            self._recent = [i for i in self._recent if i.at >= cutoff]


# --- the store -------------------------------------------------------------------------------


class _Sized(Protocol):
    @property
    def size(self) -> int: ...


E = TypeVar("E", bound=_Sized)


class LruStore(Generic[E]):
    """Entries bounded by bytes (each item's ``size``), evicting the least recently used.

    ``get`` and ``put`` make a key the most recently used; ``peek`` does not. An item larger
    than ``max_bytes`` is not stored (and the key's old item goes). Every operation is O(1)
    but ``delete_where`` (O(n), for invalidations).
    """

    def __init__(self, max_bytes: int) -> None:
        check(isinstance(max_bytes, int) and max_bytes >= 0, "max_bytes", ">= 0", max_bytes)
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, E] = OrderedDict()
        self.bytes_stored = 0
        self.evictions = 0  # items evicted to make room, in all
        self.rejected = 0  # items larger than max_bytes, in all

    def get(self, key: str) -> E | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def peek(self, key: str) -> E | None:
        return self._items.get(key)

    def put(self, key: str, item: E) -> tuple[str, ...]:
        """Store `item` under `key`; the keys evicted to make room, oldest first."""
        self.delete(key)
        size = item.size
        if size > self.max_bytes:
            self.rejected += 1
            return ()
        evicted = []
        while self.bytes_stored + size > self.max_bytes:
            old_key, old = self._items.popitem(last=False)
            self.bytes_stored -= old.size
            self.evictions += 1
            evicted.append(old_key)
        self._items[key] = item
        self.bytes_stored += size
        return tuple(evicted)

    def delete(self, key: str) -> bool:
        item = self._items.pop(key, None)
        if item is None:
            return False
        self.bytes_stored -= item.size
        return True

    def delete_where(self, doomed: Callable[[E], bool]) -> int:
        """Delete every item `doomed` says; how many."""
        keys = [k for k, item in self._items.items() if doomed(item)]
        for k in keys:
            self.delete(k)
        return len(keys)

    def keys(self) -> Iterator[str]:
        """Least recently used first."""
        return iter(tuple(self._items))

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)
