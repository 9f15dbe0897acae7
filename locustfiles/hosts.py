"""Base URLs as people type them, and where a user may send load (no Locust import: the
harness and pytest use it too).

`canonical` is the one normalisation of a base URL in the lab, for RUSHLAB_SERVICES, the
harness's `--host` and whatever a person types in the Locust web form's Host field. Every form
a person pastes names the same base:

    http://127.0.0.1:8080   http://127.0.0.1:8080/   127.0.0.1:8080   http://localhost:8080/
        -> http://127.0.0.1:8080

(no scheme means `http`; `localhost` means 127.0.0.1, where the lab listens, never `::1`;
trailing slashes go). A path is a prefix every request path goes under:
`http://127.0.0.1:8080/shop/` -> `http://127.0.0.1:8080/shop`, and `join` puts exactly one
`/` between it and a path. The users' paths are absolute (`/api/orders`), so a prefix is
for a lab URL that has one (a gateway route compared side by side), not for `/api/`.

`allowed` says whether a user may send load to a base: loopback only (127.0.0.0/8, `::1`; a
host name only when the lab itself gave it, e.g. a DNS name such as `http://shop.lab:4001`),
and, when the lab lists the bases it knows (RUSHLAB_HOSTS), one of them. A refusal is a
`HostRefused` whose message says what to paste instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit


class HostError(ValueError):
    """Not a base URL (`http://HOST:PORT[/prefix]`); the message says what is wrong."""


class HostRefused(HostError):
    """A base URL this lab does not send load to: not loopback, or not one of the lab's."""


def canonical(value: object) -> str:
    """`value` as the lab's one spelling of a base URL (module docstring); HostError if it
    is none."""
    if not isinstance(value, str):
        raise HostError(f"expected a URL string, got {value!r}")
    text = value.strip()
    parts = urlsplit(text if "://" in text else f"http://{text}")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise HostError(f"expected http://HOST:PORT, got {value!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise HostError(f"a base URL takes no query, fragment or user, got {value!r}")
    try:
        port = parts.port
    except ValueError:
        raise HostError(f"bad port in {value!r}") from None
    host = parts.hostname.lower()
    host = "127.0.0.1" if host == "localhost" else f"[{host}]" if ":" in host else host
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


def join(base: str, path: str) -> str:
    """`path` under the canonical `base`, with exactly one `/` between them."""
    return f"{base}/{path.lstrip('/')}"


def allowed(value: object, known: Mapping[str, str], *, strict: bool) -> str:
    """The canonical base for `value`, where a user may send load; `HostRefused` naming why
    otherwise. `known` maps names to the lab's canonical bases (a host name is allowed only
    among them); with `strict` (the lab listed its bases), only those are."""
    try:
        base = canonical(value)
    except HostError as exc:
        raise HostRefused(f"host {value!r} refused: {exc}{_choices(known)}") from None
    bases = set(known.values())
    hostname = urlsplit(base).hostname or ""
    if not _loopback(hostname) and base not in bases:
        raise HostRefused(
            f"host {value!r} refused: the lab sends load to loopback only "
            f"(127.0.0.0/8){_choices(known)}"
        )
    if strict and base not in bases:
        raise HostRefused(f"host {value!r} refused: not a URL of this lab{_choices(known)}")
    return base


def _loopback(hostname: str) -> bool:
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False  # a name: only the lab's own (DNS) names, which `known` lists


def _choices(known: Mapping[str, str]) -> str:
    names: dict[str, str] = {}
    for name, url in known.items():
        names.setdefault(url, name)  # one entry a URL, by its first name
    listed = ", ".join(f"{name} {url}" for url, name in names.items())
    return f"; paste one of: {listed}" if listed else ""
