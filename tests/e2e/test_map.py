"""The live map in a real browser (headless chromium over the DevTools protocol) against a
running default shop under a Locust rush: every instance of the topology is on the map,
killing a server from the map turns its box to killed and the load balancer's view follows,
a refused action shows its reason, and the page's update delay is measured. A screenshot of
the map under the rush is kept in the run folder (`map.png`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from harness.components.edges import Edges
from harness.components.entry import entry_points
from harness.control import Controller, control_app
from harness.livemap import LiveMap, snapshot_page
from harness.locust import LocustPlan, start_locust
from harness.runtime import LabRuntime
from harness.session import map_url
from harness.supervisor import Supervisor
from harness.topology import load_topology
from targets import asgi
from targets.http.client import fetch
from targets.http.upstream import UpstreamError
from tests.browser import Browser, BrowserError, find_chromium

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(420),  # generous: a browser, a lab and a rush on 2 shared cores
    pytest.mark.skipif(find_chromium() is None, reason="needs Debian's chromium"),
]
SHOP = Path(__file__).parents[2] / "harness" / "topologies" / "shop.yaml"
ARTIFACT = Path(__file__).parents[2] / "out" / "map.png"


@dataclass
class Lab:
    runtime: LabRuntime
    browser: Browser
    locust: str  # the Locust web UI

    async def js(self, expression: str) -> object:
        return await asyncio.to_thread(self.browser.evaluate, expression)

    async def wait_for(self, expression: str, timeout_s: float = 60.0) -> object:
        return await asyncio.to_thread(self.browser.wait_for, expression, timeout_s)

    async def click(self, selector: str) -> None:
        await asyncio.to_thread(self.browser.click, selector)

    async def open(self, url: str) -> None:
        await asyncio.to_thread(self.browser.open, url)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with Supervisor(tmp_path / "run") as supervisor:
        runtime = LabRuntime(load_topology(SHOP), supervisor, seed=3)
        await runtime.start()
        await runtime.wait_healthy()
        await runtime.start_prometheus()
        control = await asgi.start(control_app(Controller(runtime)), "127.0.0.1", 0)
        try:
            services, host = entry_points(runtime)
            plan = LocustPlan(
                services=services,
                host=host,
                headless=False,  # the web UI, its Chaos tab and its /chaos page
                run_time_s=90,
                control_url=f"http://127.0.0.1:{control.port}",
                control_token_file=runtime.token_file,
            )
            locust = await start_locust(supervisor, plan, runtime.run_dir)
            for name, (where, port) in locust.metrics.items():
                runtime.scrape(f"{where}:{port}", service="load", role="locust", instance=name)
            runtime.notify()
            assert locust.web_url is not None
            await _swarm(locust.web_url, users=8)
            readers = [asyncio.create_task(_read(url)) for url in edge_urls(runtime)]
            url = map_url(f"127.0.0.1:{control.port}", runtime.token)
            browser = await asyncio.to_thread(Browser, url, width=1900, height=1100)
            try:
                yield Lab(runtime, browser, locust.web_url)
            finally:
                browser.close()
                for reader in readers:
                    reader.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
        finally:
            await control.stop()


async def _swarm(web_url: str, users: int) -> None:
    """Start a rush from Locust's web UI, as its form does."""
    address = urlsplit(web_url)
    reply = await fetch(
        address.hostname or "",
        address.port or 80,
        "POST",
        "/swarm",
        body=f"user_count={users}&spawn_rate={users}".encode(),
        headers=[(b"content-type", b"application/x-www-form-urlencoded")],
        timeout_s=10.0,
    )
    assert reply.status == 200, reply.body


def edge_urls(runtime: LabRuntime) -> list[str]:
    return list(runtime.part(Edges).entry_urls().values())


async def _read(url: str, seconds: float = 120.0) -> None:
    """A reader of the catalogue through a CDN edge (the shop's users go to the gateway), a
    few times a second, for at most `seconds`."""
    address = urlsplit(url)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(UpstreamError):
            await fetch(address.hostname or "", address.port or 80, "GET", "/api/catalogue/1")
        await asyncio.sleep(0.2)


async def test_the_map_shows_the_lab_and_breaks_it_from_a_click(lab: Lab) -> None:
    expected = {i.name for group in lab.runtime.groups() for i in group.instances.values()}
    await lab.wait_for(f"document.querySelectorAll('[data-instance]').length >= {len(expected)}")
    shown = set(
        await lab.js(
            "[...document.querySelectorAll('[data-instance]')].map(n => n.dataset.instance)"
        )
    )  # type: ignore[arg-type]
    assert expected <= shown
    boxes = set(
        await lab.js("[...document.querySelectorAll('[data-box]')].map(n => n.dataset.box)")
    )  # type: ignore[arg-type]
    assert {"clients", "gateway", "dns", "edge:cdn", "queue:emails", "topic:payments"} <= boxes
    assert {"service:orders", "workers:email-workers", "provider:mail"} <= boxes
    # Under the rush the arrows carry traffic, and every number on the map has a value (a
    # query that matches nothing, a typo in a metric's name, would say "no data").
    await lab.wait_for("document.querySelectorAll('path.arrow.busy').length > 0")
    no_data = (
        "[...document.querySelectorAll('#svg text')].filter(t => t.textContent.includes('no data'))"
        ".map(t => (t.closest('[data-box]')?.dataset.box ?? 'arrow') + ': ' + t.textContent)"
    )
    with contextlib.suppress(BrowserError):
        await lab.wait_for(f"{no_data}.length === 0")
    assert await lab.js(no_data) == []

    # Kill a server from the map: its box turns to killed, the load balancer stops routing it.
    await lab.click('[data-instance="orders-2"]')
    await lab.click('#menu button[data-action="kill"]')
    await lab.wait_for("document.querySelector('#result').className === 'done'")
    assert "kill orders orders-2" in str(
        await lab.js("document.querySelector('#result').textContent")
    )
    await lab.wait_for(
        "document.querySelector('[data-instance=\"orders-2\"]').dataset.state === 'killed'"
    )
    await lab.wait_for(
        "document.querySelector('[data-instance=\"orders-2\"]').dataset.target !== 'healthy'"
    )

    # A refused action shows its reason: resize without its slots.
    await lab.click('[data-box="service:orders"] .title')
    await lab.click('#menu button[data-action="resize"]')
    await lab.wait_for("document.querySelector('#result').className === 'refused'")
    refusal = str(await lab.js("document.querySelector('#result').textContent"))
    assert "resize needs slots" in refusal, refusal
    # The event appears in the page's event list as it happens.
    events = str(await lab.js("document.querySelector('#events').textContent"))
    assert "kill orders orders-2" in events

    ARTIFACT.parent.mkdir(exist_ok=True)
    await asyncio.to_thread(lab.browser.screenshot, ARTIFACT)
    stats = await lab.js("JSON.stringify(window.mapStats)")
    delays = json.loads(str(stats))["delays_ms"]
    print(
        f"\nmap updates: {len(delays)}, each from asking to drawn: median"
        f" {statistics.median(delays):.0f} ms, max {max(delays):.0f} ms; screenshot {ARTIFACT}"
    )

    # Locust's Chaos tab lists every part, the queue and the workers too.
    await lab.open(lab.locust)
    tab = "[...document.querySelectorAll('button')].find(b => b.textContent === 'Chaos')"
    await lab.wait_for(f"{tab} !== undefined")
    await lab.js(f"{tab}.click()")
    for name in ("queue-1", "email-workers-1", "topics-1", "mail-1", "gateway", "orders-lb"):
        await lab.wait_for(f"document.body.innerText.includes({json.dumps(name)})")

    # Locust's /chaos is the same map, through Locust (the token stays there): its refusals too.
    await lab.open(lab.locust + "/chaos")
    await lab.wait_for(f"document.querySelectorAll('[data-instance]').length >= {len(expected)}")
    await lab.click('[data-box="service:orders"] .title')
    await lab.click('#menu button[data-action="resize"]')
    await lab.wait_for("document.querySelector('#result').className === 'refused'")
    refusal = str(await lab.js("document.querySelector('#result').textContent"))
    assert "resize needs slots" in refusal, refusal
    assert len(delays) >= 3  # it keeps updating

    # A run report's map.html: the same drawing from a state kept in the file, no server.
    snapshot = lab.runtime.run_dir / "map.html"
    snapshot.write_text(snapshot_page(await LiveMap(lab.runtime, list).state()))
    await lab.open(snapshot.as_uri())
    await lab.wait_for(f"document.querySelectorAll('[data-instance]').length >= {len(expected)}")
    assert "snapshot" in str(await lab.js("document.querySelector('#delay').textContent"))
