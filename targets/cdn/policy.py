"""The edge cache's policies: what the cache key holds, and how long a response is kept.

Pure: no I/O, no clock (``now`` is an argument). core.py asks these rules about each
request and origin answer; the errors of the whole package are here::

    CdnError (ValueError)        message starts with the field: "min_ttl: must be ..."
    ├── InvalidPolicy            a key or TTL policy value out of range
    ├── InvalidPath              an invalidation path (store.py)
    └── TooManyInvalidations     over 3,000 file paths or 15 wildcards in progress (store.py)

Cache key (``KeyPolicy``). The path, plus the query strings, headers and cookies the policy
names (CloudFront's cache policy); anything else is ignored, so two requests that differ
only in an excluded value share an entry. Query mode ``none`` | ``all`` | ``allow-list``;
the selected ``name=value`` pairs are sorted, so their order never matters (CloudFront keys
on the order as sent; we sort, so clients that reorder share entries). Query and cookie
names are case-sensitive, header names are not. GET and HEAD share a key (HEAD is answered
from the GET entry); other methods are never cached.

TTL (``lifetime``), CloudFront's rules (semantics.md 7.2):

* ``no-store``, ``no-cache`` or ``private``: not stored when ``min_ttl`` is 0, else stored
  for ``min_ttl``. (CloudFront does not keep no-cache objects for revalidation the way an
  RFC 9111 shared cache does; we follow CloudFront.)
* else ``s-maxage`` > ``max-age`` > ``Expires - Date`` (``Expires - now`` without ``Date``;
  an unparseable ``Expires`` is already expired) -> clamped to ``[min_ttl, max_ttl]``.
* no ``Cache-Control`` TTL and no ``Expires``: ``default_ttl`` (86,400 s; never below
  ``min_ttl``). ``max_ttl`` (31,536,000 s) applies only to header-given TTLs.
* An object whose TTL comes out 0 is stored only when it has a validator (``ETag`` or
  ``Last-Modified``): it is then revalidated on every request (``RefreshHit``).

Status codes. 200, 203, 204, 300, 301, 302, 303, 307, 308 are cached by those rules (307
and 308 only when the origin sends ``Cache-Control``, as CloudFront's 3xx page says). 206 is
not cached: a range is not part of the key. 404, 414, 500, 501, 502, 503, 504 are always
cached; 400, 403, 405, 412, 415 only with ``max-age`` or ``s-maxage``. An error is kept for
the greater of its header TTL (at most ``max_ttl``) and its error caching minimum TTL
(``error_caching_min_ttl``, 10 s, per status in ``error_ttls``), whatever ``no-store`` says.
416 and every other code are never cached.

Stale windows: the origin's ``stale-while-revalidate=N`` / ``stale-if-error=N``, else the
policy's defaults: no stale-while-revalidate, and stale-if-error without a bound
(CloudFront serves the expired object on an origin 5xx; ``stale-if-error=0`` turns it off).
"""

from __future__ import annotations

import calendar
import enum
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_tz
from typing import Final
from urllib.parse import quote

from targets.checks import as_enum, finite, require

Headers = tuple[tuple[str, str], ...]
"""Header pairs as received: names in any case, repeats allowed, order kept."""

DEFAULT_TTL: Final = 86_400.0
MAX_TTL: Final = 31_536_000.0
ERROR_CACHING_MIN_TTL: Final = 10.0
CACHEABLE_METHODS: Final = frozenset({"GET", "HEAD"})
CACHEABLE_STATUSES: Final = frozenset({200, 203, 204, 300, 301, 302, 303, 307, 308})
CACHE_CONTROL_ONLY: Final = frozenset({307, 308})
ALWAYS_CACHED_ERRORS: Final = frozenset({404, 414, 500, 501, 502, 503, 504})
HEADER_CACHED_ERRORS: Final = frozenset({400, 403, 405, 412, 415})
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DIRECTIVE: Final = re.compile(
    r"""([!#$%&'*+\-.^_`|~0-9A-Za-z]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*)))?"""
)
_DELTA: Final = re.compile(r"\d+")
_PLAIN_PATH: Final = re.compile(r"[A-Za-z0-9_.~/-]*")
"""A path ``quote(path, safe="/")`` leaves as it is: only unreserved characters and '/'."""


class CdnError(ValueError):
    """Base of the edge cache's errors; the message starts with the field it is about."""


class InvalidPolicy(CdnError):
    """A key or TTL policy value out of range."""


class InvalidPath(CdnError):
    """An invalidation path that does not start with '/' or has a '*' before its end."""


class TooManyInvalidations(CdnError):
    """More file paths or wildcard paths in progress than CloudFront allows."""


def first_header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header `name` (case-insensitive), or None."""
    return next((v for n, v in headers if n.lower() == name), None)


def joined_header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """Every value of header `name`, joined by ", " as one field line, or None."""
    values = [v for n, v in headers if n.lower() == name]
    return ", ".join(values) if values else None


def http_date(value: str | None) -> float | None:
    """An HTTP-date as epoch seconds (a date without a zone is read as UTC), or None."""
    if value is None:
        return None
    parsed = parsedate_tz(value)
    if parsed is None:
        return None
    return float(calendar.timegm(parsed[:9]) - (parsed[9] or 0))


def delta_seconds(value: str | None) -> float:
    """A delta-seconds header (``Age``): 0 unless a non-negative integer."""
    return float(value.strip()) if value is not None and _DELTA.fullmatch(value.strip()) else 0.0


# --- cache key -------------------------------------------------------------------------------


class QueryMode(enum.StrEnum):
    NONE = "none"
    ALL = "all"
    ALLOW_LIST = "allow-list"


@dataclass(frozen=True, slots=True)
class Request:
    """What the key and ``decide`` read of a viewer request (cookies already parsed)."""

    method: str
    path: str
    query: Headers = ()
    headers: Headers = ()
    cookies: Headers = ()


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """Which query strings, headers and cookies are part of the cache key.

    ``query_names`` is the allow list (only with ``query="allow-list"``); header names are
    matched case-insensitively, query and cookie names exactly.
    """

    query: QueryMode = QueryMode.NONE
    query_names: frozenset[str] = frozenset()
    headers: frozenset[str] = frozenset()
    cookies: frozenset[str] = frozenset()
    path_only: bool = field(init=False, repr=False, compare=False)
    """Whether the key is the method and path alone (no query, header or cookie in it)."""

    def __post_init__(self) -> None:
        mode = as_enum(QueryMode, self.query, "query", InvalidPolicy)
        object.__setattr__(self, "query", mode)
        check(
            mode is QueryMode.ALLOW_LIST or not self.query_names,
            "query_names",
            "empty unless query is allow-list",
            sorted(self.query_names),
        )
        for name in self.headers:
            check(bool(_TOKEN.fullmatch(name)), "headers", "header names", name)
        object.__setattr__(self, "query_names", frozenset(self.query_names))
        object.__setattr__(self, "headers", frozenset(h.lower() for h in self.headers))
        object.__setattr__(self, "cookies", frozenset(self.cookies))
        only = not (mode is QueryMode.ALL or self.query_names or self.headers or self.cookies)
        object.__setattr__(self, "path_only", only)

    def key(
        self,
        method: str,
        path: str,
        query_pairs: Iterable[tuple[str, str]] = (),
        headers: Iterable[tuple[str, str]] | Mapping[str, str] = (),
        cookies: Iterable[tuple[str, str]] | Mapping[str, str] = (),
    ) -> str:
        """The cache key: stable, and equal for requests that differ only in what this
        policy leaves out. Every part is percent-encoded, so distinct inputs never collide:
        ``GET /a/b?x=1&y=2 h:accept=text%2Fhtml c:session=abc``."""
        verb = method.upper()
        verb = "GET" if verb in CACHEABLE_METHODS else verb
        quoted = path if _PLAIN_PATH.fullmatch(path) else quote(path, safe="/")
        if self.path_only:  # the hit path of the default policy: nothing else to look at
            return f"{verb} {quoted}"
        parts = [verb, quoted]
        if self.query is QueryMode.ALL:
            chosen = list(query_pairs)
        else:
            chosen = [(k, v) for k, v in query_pairs if k in self.query_names]
        if chosen:
            parts[-1] += "?" + "&".join(f"{_q(k)}={_q(v)}" for k, v in sorted(chosen))
        header_pairs = [(n.lower(), v.strip()) for n, v in _pairs(headers)]
        named = []
        for name in sorted(self.headers):
            values = [v for n, v in header_pairs if n == name]
            if values:
                named.append(f"{_q(name)}={_q(','.join(values))}")
        if named:
            parts.append("h:" + "&".join(named))
        jar = sorted((n, v) for n, v in _pairs(cookies) if n in self.cookies)
        if jar:
            parts.append("c:" + "&".join(f"{_q(n)}={_q(v)}" for n, v in jar))
        return " ".join(parts)

    def request_key(self, request: Request) -> str:
        return self.key(
            request.method, request.path, request.query, request.headers, request.cookies
        )


def _q(text: str) -> str:
    return quote(text, safe="")


def _pairs(
    items: Iterable[tuple[str, str]] | Mapping[str, str],
) -> Iterable[tuple[str, str]]:
    return items.items() if isinstance(items, Mapping) else items


def check(ok: bool, name: str, rule: str, got: object) -> None:
    """Raise InvalidPolicy unless `ok`: ``<name>: must be <rule> (got <got>)``."""
    require(ok, name, rule, got, InvalidPolicy)


# --- TTLs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TtlPolicy:
    """CloudFront's cache-policy TTLs and error caching minimum TTLs, in seconds.

    ``default_ttl`` left out is 86,400 s, raised to ``min_ttl`` or lowered to a given
    ``max_ttl``; ``max_ttl`` left out is 31,536,000 s, or the default when that is larger
    (CloudFront's CachePolicyConfig defaults). ``error_ttls`` overrides
    ``error_caching_min_ttl`` per status. ``stale_while_revalidate`` / ``stale_if_error``
    are the windows used when the origin sends none.
    """

    min_ttl: float = 0.0
    default_ttl: float | None = None
    max_ttl: float | None = None
    error_caching_min_ttl: float = ERROR_CACHING_MIN_TTL
    error_ttls: Mapping[int, float] = field(default_factory=dict, hash=False)
    stale_while_revalidate: float = 0.0
    stale_if_error: float = math.inf

    def __post_init__(self) -> None:
        for name in ("min_ttl", "error_caching_min_ttl", "stale_while_revalidate"):
            value = getattr(self, name)
            check(finite(value) and value >= 0, name, "a number >= 0", value)
        sie = self.stale_if_error
        check(sie == math.inf or (finite(sie) and sie >= 0), "stale_if_error", ">= 0", sie)
        for name, given in (("default_ttl", self.default_ttl), ("max_ttl", self.max_ttl)):
            check(given is None or (finite(given) and given >= 0), name, ">= 0", given)
        check(
            self.max_ttl is None or self.max_ttl >= self.min_ttl,
            "max_ttl",
            f"at least min_ttl ({self.min_ttl})",
            self.max_ttl,
        )
        check(
            self.min_ttl <= self.default_s <= self.max_s,
            "default_ttl",
            f"within min_ttl..max_ttl ({self.min_ttl}..{self.max_s})",
            self.default_s,
        )
        for status, ttl in self.error_ttls.items():
            check(
                status in ALWAYS_CACHED_ERRORS | HEADER_CACHED_ERRORS,
                "error_ttls",
                "keyed by a status CloudFront caches",
                status,
            )
            check(finite(ttl) and ttl >= 0, f"error_ttls[{status}]", ">= 0", ttl)

    @property
    def default_s(self) -> float:
        if self.default_ttl is not None:
            return self.default_ttl
        ceiling = self.max_ttl if self.max_ttl is not None else math.inf
        return min(max(DEFAULT_TTL, self.min_ttl), ceiling)

    @property
    def max_s(self) -> float:
        return self.max_ttl if self.max_ttl is not None else max(MAX_TTL, self.default_s)

    def error_ttl(self, status: int) -> float:
        """The error caching minimum TTL of `status`."""
        return self.error_ttls.get(status, self.error_caching_min_ttl)


@dataclass(frozen=True, slots=True)
class CacheControl:
    """The ``Cache-Control`` directives an edge cache reads (unknown ones are ignored; a
    repeated one counts once, first wins; a malformed number is ignored)."""

    s_maxage: float | None = None
    max_age: float | None = None
    no_store: bool = False
    no_cache: bool = False
    private: bool = False
    stale_while_revalidate: float | None = None
    stale_if_error: float | None = None

    @classmethod
    def parse(cls, value: str | None) -> CacheControl:
        seen: dict[str, str | None] = {}
        for match in _DIRECTIVE.finditer(value or ""):
            name = match.group(1).lower()
            argument = match.group(2) if match.group(2) is not None else match.group(3)
            seen.setdefault(name, argument)

        def seconds(name: str) -> float | None:
            raw = seen.get(name)
            return float(raw) if raw is not None and _DELTA.fullmatch(raw) else None

        return cls(
            s_maxage=seconds("s-maxage"),
            max_age=seconds("max-age"),
            no_store="no-store" in seen,
            no_cache="no-cache" in seen,
            private="private" in seen,
            stale_while_revalidate=seconds("stale-while-revalidate"),
            stale_if_error=seconds("stale-if-error"),
        )

    @property
    def ttl(self) -> float | None:
        """The TTL these directives give a shared cache: ``s-maxage`` over ``max-age``."""
        return self.s_maxage if self.s_maxage is not None else self.max_age


@dataclass(frozen=True, slots=True)
class Lifetime:
    """How long a response is kept, and why (``source`` names the rule that decided)."""

    stored: bool
    ttl: float
    source: str
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0


def lifetime(
    status: int, headers: Iterable[tuple[str, str]], policy: TtlPolicy, now: float
) -> Lifetime:
    """Whether a response with `status` and `headers`, received at `now`, is stored, and
    its TTL (the module docstring states the rules)."""
    headers = tuple(headers)
    raw_cc = joined_header(headers, "cache-control")
    cc = CacheControl.parse(raw_cc)
    expires = first_header(headers, "expires")
    header_ttl, source = cc.ttl, "s-maxage" if cc.s_maxage is not None else "max-age"
    if header_ttl is None and expires is not None:
        at = http_date(expires)
        date = http_date(first_header(headers, "date"))
        base = date if date is not None else now
        header_ttl, source = (max(0.0, at - base) if at is not None else 0.0), "expires"
    if status in ALWAYS_CACHED_ERRORS or status in HEADER_CACHED_ERRORS:
        if status in HEADER_CACHED_ERRORS and cc.ttl is None:
            return Lifetime(False, 0.0, f"status {status} without max-age or s-maxage")
        floor = policy.error_ttl(status)
        ttl = max(floor, min(header_ttl, policy.max_s)) if header_ttl is not None else floor
        chosen = "error-ttl" if header_ttl is None or ttl == floor else source
        return Lifetime(ttl > 0, ttl, chosen)
    if status not in CACHEABLE_STATUSES:
        return Lifetime(False, 0.0, f"status {status} is not cached")
    if status in CACHE_CONTROL_ONLY and raw_cc is None:
        return Lifetime(False, 0.0, f"status {status} without Cache-Control")
    swr = cc.stale_while_revalidate
    sie = cc.stale_if_error
    windows = (
        swr if swr is not None else policy.stale_while_revalidate,
        sie if sie is not None else policy.stale_if_error,
    )
    validated = any(first_header(headers, n) is not None for n in ("etag", "last-modified"))
    refusals = (("no-store", cc.no_store), ("private", cc.private), ("no-cache", cc.no_cache))
    refusal = next((name for name, said in refusals if said), None)
    if refusal is not None:
        if policy.min_ttl == 0:
            return Lifetime(False, 0.0, refusal)
        return Lifetime(True, policy.min_ttl, f"min-ttl ({refusal})", *windows)
    if header_ttl is None:
        ttl, source = policy.default_s, "default-ttl"
    elif (ttl := min(max(header_ttl, policy.min_ttl), policy.max_s)) != header_ttl:
        source = "min-ttl" if ttl == policy.min_ttl else "max-ttl"
    return Lifetime(ttl > 0 or validated, ttl, source, *windows)
