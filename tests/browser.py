"""A real headless browser for the page tests: Debian's `chromium`, driven over the DevTools
protocol (websocket-client; no browser download, no driver binary).

`Browser` starts one chromium with a throw-away profile, opens `url`, and offers what a page
test needs: `evaluate` (a JavaScript expression's value), `wait_for` (until an expression is
truthy, within a generous bound), `click` (a CSS selector's element) and `screenshot`. Calls
block: an asyncio test runs them with `asyncio.to_thread` so the lab it tests keeps serving.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    def __init__(self, url: str, *, width: int = 1500, height: int = 1000) -> None:
        binary = find_chromium()
        if binary is None:
            raise BrowserError("chromium is missing: apt-get install chromium")
        self.profile = Path(tempfile.mkdtemp(prefix="rushlab-chromium-"))
        self.process = subprocess.Popen(
            [
                binary,
                "--headless=new",
                "--no-sandbox",  # root in CI
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its renderers in its own process group, stopped with it
        )
        self._ids = itertools.count(1)
        try:
            # No Origin header: chromium refuses DevTools sockets from origins it was not told of.
            self.socket = websocket.create_connection(
                self._page_socket(), timeout=30, suppress_origin=True
            )
            self.call("Page.enable")
            self.call("Runtime.enable")
            self.call("Page.navigate", {"url": url})
        except Exception:
            self.close()
            raise

    def open(self, url: str) -> None:
        """Go to `url` and wait until the document has loaded."""
        self.call("Page.navigate", {"url": url})
        time.sleep(0.2)  # the old document may still answer "complete" for a moment
        self.wait_for("document.readyState === 'complete'")

    def _page_socket(self, timeout_s: float = 30.0) -> str:
        """The page's DevTools websocket, once chromium has written its port."""
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if port_file.exists() and port_file.read_text().strip():
                port = port_file.read_text().split()[0]
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as answer:
                    pages = [t for t in json.load(answer) if t["type"] == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            if self.process.poll() is not None:
                raise BrowserError(f"chromium exited with {self.process.returncode}")
            time.sleep(0.1)
        raise BrowserError("chromium did not open its DevTools port")

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        ident = next(self._ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 30.0) -> Any:
        """Evaluate `expression` until it is truthy; its value (a bound, not a timing claim)."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"still false after {timeout_s:g} s: {expression}")
            time.sleep(0.2)

    def click(self, selector: str) -> None:
        """Click the first element `selector` finds (an SVG element too)."""
        found = self.evaluate(
            f"""(() => {{ const node = document.querySelector({json.dumps(selector)});
            if (!node) return false;
            node.dispatchEvent(new MouseEvent("click", {{bubbles: true}})); return true; }})()"""
        )
        if not found:
            raise BrowserError(f"nothing to click: {selector}")

    def screenshot(self, path: Path) -> None:
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.socket.close()
        with contextlib.suppress(ProcessLookupError):  # the chromium started here, children too
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)
