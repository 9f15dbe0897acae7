"""The shop's cacheable content (targets/server/content.py): the headers a CDN reads, and a real
edge (`python -m targets.cdn`) in front of a real server (`python -m targets.server`) keeping
what it may and never what it must not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from targets.http.client import Reply, fetch
from targets.http.server import HttpServer
from targets.server.app import ServerConfig, ShopServer
from targets.server.content import (
    IMAGE_BYTES,
    PAGES,
    ContentConfig,
    account,
    catalogue,
    image,
    user_of,
)
from targets.server.core import Distribution, ServiceTime
from tests.helpers import Target, start_target

CONFIG = ContentConfig(version=3, catalogue_max_age_s=30, image_max_age_s=3600)
PLAIN = ContentConfig(version=3, stale_while_revalidate_s=0, stale_if_error_s=0)


@pytest.mark.core
def test_catalogue_page_is_public_with_a_versioned_etag() -> None:
    page = catalogue(CONFIG, "2")
    assert page.status == 200
    assert page.cache_control == (
        b"public, max-age=30, stale-while-revalidate=30, stale-if-error=600"
    )
    assert catalogue(PLAIN, "2").cache_control == b"public, max-age=30"
    framework = ContentConfig(catalogue_private=True)
    assert catalogue(framework, "2").cache_control == b"max-age=0, private, must-revalidate"
    assert page.etag == b'"v3-page2"'
    body = json.loads(page.body)
    assert body["version"] == 3
    assert body["page"] == 2
    assert len(body["products"]) == 12
    assert body["products"][0]["image"] == "/images/p13"
    assert catalogue(ContentConfig(version=4), "2").etag != page.etag


@pytest.mark.core
@pytest.mark.parametrize("page", ["0", str(PAGES + 1), "x", "-1"])
def test_missing_page_is_a_briefly_cacheable_404(page: str) -> None:
    answer = catalogue(CONFIG, page)
    assert answer.status == 404
    assert answer.cache_control == b"public, max-age=5"
    assert answer.etag is None
    assert page in json.loads(answer.body)["detail"]


@pytest.mark.core
def test_image_is_long_lived_and_the_same_for_every_version() -> None:
    picture = image(CONFIG, "p7")
    assert picture.status == 200
    assert picture.content_type == b"image/svg+xml"
    assert len(picture.body) == IMAGE_BYTES
    assert picture.cache_control == b"public, max-age=3600"
    assert image(ContentConfig(version=9), "p7") == image(ContentConfig(version=9), "p7")
    assert image(ContentConfig(version=9), "p7").body == picture.body
    assert image(CONFIG, "p7").body != image(CONFIG, "p8").body
    assert image(CONFIG, "p0").status == 404
    assert image(CONFIG, "q1").status == 404


@pytest.mark.core
def test_account_page_is_never_stored() -> None:
    page = account(CONFIG, "ada")
    assert page.cache_control == b"private, no-store"
    assert page.etag is None
    assert json.loads(page.body)["user"] == "ada"


@pytest.mark.core
@pytest.mark.parametrize(
    ("cookie", "user"),
    [
        (None, "guest"),
        (b"", "guest"),
        (b"user=ada", "ada"),
        (b"theme=dark; user=bob; x=1", "bob"),
        (b"user=", "guest"),
        (b"username=eve", "guest"),
    ],
)
def test_user_of_reads_the_user_cookie(cookie: bytes | None, user: str) -> None:
    assert user_of(cookie) == user


@pytest.mark.core
@pytest.mark.parametrize(
    ("if_none_match", "matches"),
    [
        (None, False),
        (b'"v3-page2"', True),
        (b'W/"v3-page2"', True),
        (b'"v2-page2", "v3-page2"', True),
        (b"*", True),
        (b'"v2-page2"', False),
    ],
)
def test_if_none_match(if_none_match: bytes | None, matches: bool) -> None:
    assert catalogue(CONFIG, "2").matches(if_none_match) is matches
    assert not account(CONFIG, "ada").matches(b"*")  # no validator, never a 304


# --- a real edge in front of a real server -------------------------------------------------------


@pytest.fixture
def shop_behind_edge(tmp_path: Path) -> Iterator[tuple[Target, Target]]:
    server = start_target(
        "targets.server",
        *("--service-ms", "0", "--catalogue-max-age", "1", "--content-version", "5"),
        "--catalogue-stale-while-revalidate=0",  # after 1 s the edge must ask first
        log=tmp_path / "server.log",
    )
    edge = start_target(
        "targets.cdn",
        *("--origin", "{}:{}".format(*server.hostport()), "--name", "edge-1"),
        log=tmp_path / "edge.log",
    )
    yield server, edge
    assert edge.stop() == 0
    assert server.stop() == 0


async def get(target: Target, path: str, cookie: str | None = None) -> Reply:
    headers = [(b"cookie", cookie.encode())] if cookie else []
    return await fetch(*target.hostport(), "GET", path, headers=headers, timeout_s=10.0)


def x_cache(reply: Reply) -> str:
    return (reply.header(b"x-cache") or b"").decode()


def served(server_metrics: str, endpoint: str, code: str) -> float:
    line = f'server_requests_total{{code="{code}",endpoint="{endpoint}"}}'
    values = [float(row.split()[-1]) for row in server_metrics.splitlines() if row.startswith(line)]
    return sum(values)


@pytest.mark.e2e
async def test_edge_keeps_the_catalogue_revalidates_it_and_never_keeps_an_account(
    shop_behind_edge: tuple[Target, Target],
) -> None:
    """The catalogue is a Miss, then Hits; once its 1 s lifetime is over the edge asks the
    server with its ETag, which answers 304 (RefreshHit, same body). Each user's account page
    goes to the server every time and each user sees their own."""
    server, edge = shop_behind_edge
    first = await get(edge, "/api/catalogue/2")
    assert (first.status, x_cache(first)) == (200, "Miss from edge-1")
    assert first.header(b"etag") == b'"v5-page2"'
    again = await get(edge, "/api/catalogue/2")
    assert (again.status, x_cache(again), again.body) == (200, "Hit from edge-1", first.body)
    picture = await get(edge, "/images/p3")
    assert (picture.status, len(picture.body)) == (200, IMAGE_BYTES)
    assert x_cache(await get(edge, "/images/p3")) == "Hit from edge-1"

    for user in ("ada", "bob", "ada"):
        page = await get(edge, "/account", cookie=f"user={user}")
        assert x_cache(page) == "Miss from edge-1"
        assert json.loads(page.body)["user"] == user

    await asyncio.sleep(1.5)
    refreshed = await get(edge, "/api/catalogue/2")
    assert (refreshed.status, x_cache(refreshed)) == (200, "RefreshHit from edge-1")
    assert refreshed.body == first.body
    await get(server, "/metrics")  # series are born at 0 on their first scrape
    metrics = (await get(server, "/metrics")).body.decode()
    assert served(metrics, "catalogue", "200") == 1
    assert served(metrics, "catalogue", "304") == 1
    assert served(metrics, "account", "200") == 3
    assert served(metrics, "image", "200") == 1


@pytest.mark.inprocess
async def test_publishing_a_version_changes_etags_and_bodies() -> None:
    """`PUT /admin/content` (with the token) publishes a version: the page's ETag, body and
    X-Content-Version follow, and a conditional request for the old ETag is a 200 again. A
    bad body is a 400 naming the field; without the token, 401."""

    app = ShopServer(
        ServerConfig(service_time=ServiceTime(Distribution.CONSTANT, 0), admin_token="t")
    )
    http = HttpServer(app)
    await http.listen("127.0.0.1", 0)
    host, port = http.address
    auth = [(b"authorization", b"Bearer t")]
    try:
        old = await fetch(host, port, "GET", "/catalogue/1")
        assert old.header(b"x-content-version") == b"1"
        put = await fetch(host, port, "PUT", "/admin/content", body=b'{"version": 2}', headers=auth)
        assert (put.status, put.json()["version"]) == (200, 2)
        new = await fetch(
            host,
            port,
            "GET",
            "/catalogue/1",
            headers=[(b"if-none-match", old.header(b"etag") or b"")],
        )
        assert (new.status, new.header(b"etag")) == (200, b'"v2-page1"')
        assert json.loads(new.body)["version"] == 2
        bad = await fetch(host, port, "PUT", "/admin/content", body=b'{"version": 0}', headers=auth)
        assert bad.status == 400
        assert bad.json()["error"] == "invalid_content"
        assert bad.json()["detail"].startswith("version:")
        assert (await fetch(host, port, "PUT", "/admin/content", body=b"{}")).status == 401
    finally:
        await http.shutdown(1.0)
