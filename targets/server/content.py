"""The shop's content, with the caching headers a CDN edge reads (pure: no I/O, no clock).

- catalogue pages (`GET /catalogue`, `/catalogue/{page}`): public, `max-age` of the catalogue's
  lifetime, `stale-while-revalidate` and `stale-if-error` windows, a strong ETag of the
  content version and page;
- product images (`GET /images/{product}`): public, long-lived, an ETag; the same bytes on every
  server, as static files are;
- the account page (`GET /account`): one customer's own data, `private, no-store`: a shared cache
  must never keep it (the user is the `user` cookie, else "guest");
- a page or product that does not exist is a 404 with a short `max-age` (an edge may cache it).

A request whose `If-None-Match` names the current ETag gets `304 Not Modified`, no body: an edge
revalidating a stale copy pays a head, not the page. The content version (`ContentConfig.version`)
is part of every ETag and body, so publishing a new version changes what a fresh fetch returns
while copies of the old one live in caches until they expire or are invalidated; a page says
its version in `X-Content-Version` too, so a client can count what it was shown
(`locust_content_version_total`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from targets.http.messages import Headers

PAGES = 20
PRODUCTS_PER_PAGE = 12
IMAGE_BYTES = 16 * 1024
NOT_FOUND_MAX_AGE_S = 5
FRAMEWORK_DEFAULT = b"max-age=0, private, must-revalidate"


@dataclass(frozen=True, slots=True)
class ContentConfig:
    version: int = 1
    catalogue_max_age_s: int = 30
    image_max_age_s: int = 3600
    # After max-age, a cache may answer the old page at once while it revalidates in the
    # background (stale-while-revalidate), and keep answering it while the origin fails
    # (stale-if-error); 0 leaves the directive out.
    stale_while_revalidate_s: int = 30
    stale_if_error_s: int = 600
    # The catalogue sent as a web framework's default (Rails'): every cache must ask again,
    # and a shared one may not keep it. What a misconfigured origin does to its CDN.
    catalogue_private: bool = False


@dataclass(frozen=True, slots=True)
class Content:
    """One answer: its status, type, body and the caching headers."""

    status: int
    content_type: bytes
    body: bytes
    cache_control: bytes
    etag: bytes | None = None
    version: int | None = None  # the content version it shows (X-Content-Version)

    def headers(self) -> Headers:
        headers = [(b"content-type", self.content_type), (b"cache-control", self.cache_control)]
        if self.etag is not None:
            headers.append((b"etag", self.etag))
        if self.version is not None:
            headers.append((b"x-content-version", b"%d" % self.version))
        return headers

    def matches(self, if_none_match: bytes | None) -> bool:
        """Whether a conditional request's `If-None-Match` names this answer (then 304)."""
        if self.etag is None or if_none_match is None or self.status != 200:
            return False
        tags = {tag.strip().removeprefix(b"W/") for tag in if_none_match.split(b",")}
        return b"*" in tags or self.etag in tags


def _json(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _public(max_age_s: int, swr_s: int = 0, sie_s: int = 0) -> bytes:
    directives = [f"public, max-age={max_age_s}"]
    if swr_s:
        directives.append(f"stale-while-revalidate={swr_s}")
    if sie_s:
        directives.append(f"stale-if-error={sie_s}")
    return ", ".join(directives).encode()


def _not_found(what: str) -> Content:
    body = _json({"error": "not_found", "detail": what})
    return Content(404, b"application/json", body, _public(NOT_FOUND_MAX_AGE_S))


def catalogue(config: ContentConfig, page: str = "1") -> Content:
    """Page `page` of the catalogue: its products, each with its image's path."""
    if not page.isdigit() or not 1 <= int(page) <= PAGES:
        return _not_found(f"no catalogue page {page!r} (pages 1 to {PAGES})")
    n = int(page)
    products = [
        {
            "id": f"p{(n - 1) * PRODUCTS_PER_PAGE + i}",
            "name": f"Product {(n - 1) * PRODUCTS_PER_PAGE + i}",
            "price": 5 + ((n * 31 + i * 17) % 200),
            "image": f"/images/p{(n - 1) * PRODUCTS_PER_PAGE + i}",
        }
        for i in range(1, PRODUCTS_PER_PAGE + 1)
    ]
    body = _json({"page": n, "pages": PAGES, "version": config.version, "products": products})
    etag = f'"v{config.version}-page{n}"'.encode()
    cache_control = (
        FRAMEWORK_DEFAULT
        if config.catalogue_private
        else _public(
            config.catalogue_max_age_s, config.stale_while_revalidate_s, config.stale_if_error_s
        )
    )
    return Content(200, b"application/json", body, cache_control, etag, config.version)


def image(config: ContentConfig, product: str) -> Content:
    """A product's image: IMAGE_BYTES of SVG, the same on every server and version."""
    count = PAGES * PRODUCTS_PER_PAGE
    if not (product.startswith("p") and product[1:].isdigit() and 1 <= int(product[1:]) <= count):
        return _not_found(f"no product {product!r} (p1 to p{count})")
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
        f'<rect width="64" height="64" fill="#{int(product[1:]) * 2654435761 % 0xFFFFFF:06x}"/>'
        f"<!-- {product} "
    ).encode()
    tail = b" --></svg>\n"
    body = head + b"." * (IMAGE_BYTES - len(head) - len(tail)) + tail
    etag = f'"img-{product}"'.encode()
    return Content(200, b"image/svg+xml", body, _public(config.image_max_age_s), etag)


def account(config: ContentConfig, user: str) -> Content:
    """The customer's own page: never stored by a shared cache."""
    body = _json({"user": user, "version": config.version, "basket": len(user) % 5})
    return Content(200, b"application/json", body, b"private, no-store")


def user_of(cookie: bytes | None) -> str:
    """The `user` cookie's value (at most 64 characters), else "guest"."""
    for part in (cookie or b"").split(b";"):
        name, _, value = part.strip().partition(b"=")
        if name == b"user" and value:
            return value[:64].decode("ascii", "replace")
    return "guest"
