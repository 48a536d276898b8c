"""A small headless-Chromium driver over the Chrome DevTools protocol (no browser download).

Drives Debian's ``/usr/bin/chromium`` through one page's DevTools websocket: navigate,
evaluate JavaScript, collect console errors and network requests, take screenshots.
Used by the browser tests and ``bench/bench_dashboard.py``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import websocket

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
)


class BrowserError(RuntimeError):
    """Chromium did not start, or a page did not do what was asked in time."""


class Page:
    """One tab: send DevTools commands, keep the events that matter to the tests."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []  # alert/confirm/prompt opened by the page
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def _record(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        params = message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            self.console_errors.append(
                " ".join(str(a.get("value", a.get("description", ""))) for a in args)
            )
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {})
            self.console_errors.append(
                str(exception.get("description") or details.get("text", "exception"))
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.console_errors.append(str(params["entry"].get("text", "")))
        elif method == "Page.javascriptDialogOpening":
            self.dialogs.append(str(params.get("message", "")))
        elif method == "Network.requestWillBeSent":
            self.requests.append(str(params.get("request", {}).get("url", "")))

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        wanted = self.next_id
        self.ws.send(json.dumps({"id": wanted, "method": method, "params": params or {}}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == wanted:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._record(message)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` (promises are awaited)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def set_viewport(self, width: int, height: int) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def goto(self, url: str, *, ready: str, timeout_s: float = 60) -> float:
        """Open ``url`` and wait until the JavaScript ``ready`` is true; seconds it took."""
        started = time.monotonic()
        self.send("Page.navigate", {"url": url})
        while time.monotonic() - started < timeout_s:
            with contextlib.suppress(BrowserError):
                if self.evaluate(ready) is True:
                    return time.monotonic() - started
            time.sleep(0.05)
        raise BrowserError(f"{url}: not ready after {timeout_s} s ({ready}); {self.console_errors}")

    def drain(self, seconds: float = 0.2) -> None:
        """Read pending events for a moment (console messages arrive asynchronously)."""
        self.ws.settimeout(seconds)
        with contextlib.suppress(websocket.WebSocketTimeoutException):
            while True:
                self._record(json.loads(self.ws.recv()))
        self.ws.settimeout(60)

    def screenshot(
        self, path: Path, *, full_page: bool = False, element: str | None = None
    ) -> Path:
        """A PNG of the viewport, the whole page, or the element of id ``element``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page or element is not None:
            params["captureBeyondViewport"] = True
        if element is not None:
            box = self.evaluate(
                f"(() => {{ const r = document.getElementById({json.dumps(element)})"
                ".getBoundingClientRect(); return [r.left + window.scrollX, "
                "r.top + window.scrollY, r.width, r.height]; })()"
            )
            left, top, width, height = box
            params["clip"] = {"x": left, "y": top, "width": width, "height": height, "scale": 1}
        data = self.send("Page.captureScreenshot", params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()


class Chromium:
    """A headless Chromium with a fresh profile; ``new_page()`` opens a tab to drive."""

    def __init__(self, executable: Path = CHROMIUM) -> None:
        if not executable.exists():
            raise BrowserError(
                f"{executable} not found: install Debian's chromium "
                "(apt-get install --no-install-recommends chromium)"
            )
        self.profile = Path(tempfile.mkdtemp(prefix="qtrace-chromium-"))
        self.log = (self.profile / "stderr.log").open("wb")
        self.proc = subprocess.Popen(
            [str(executable), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.port = self._wait_for_port()
        self.pages: list[Page] = []

    def _wait_for_port(self, timeout_s: float = 30) -> int:
        # Chromium writes the port it picked (we asked for 0) into the profile.
        marker = self.profile / "DevToolsActivePort"
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited with {self.proc.returncode}: {self._tail()}")
            if marker.exists():
                lines = marker.read_text().split()
                if lines:
                    return int(lines[0])
            time.sleep(0.05)
        raise BrowserError(f"chromium did not open its DevTools port: {self._tail()}")

    def _tail(self) -> str:
        self.log.flush()
        return (self.profile / "stderr.log").read_text(errors="replace")[-2000:]

    def new_page(self) -> Page:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            target = json.loads(response.read())
        page = Page(target["webSocketDebuggerUrl"])
        self.pages.append(page)
        return page

    def close(self) -> None:
        for page in self.pages:
            page.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


@contextlib.contextmanager
def chromium() -> Iterator[Chromium]:
    browser = Chromium()
    try:
        yield browser
    finally:
        browser.close()


RENDERED = "document.body !== null && document.body.getAttribute('data-rendered') === 'true'"


def png_pixels(browser: Chromium, png: bytes) -> npt.NDArray[np.uint8]:
    """The RGBA pixels (height, width, 4) of a PNG, decoded by Chromium itself."""
    page = browser.new_page()
    try:
        encoded = base64.b64encode(png).decode("ascii")
        result: list[Any] = page.evaluate(
            f"""new Promise((resolve, reject) => {{
              const image = new Image();
              image.onload = () => {{
                const canvas = document.createElement('canvas');
                canvas.width = image.width; canvas.height = image.height;
                const context = canvas.getContext('2d');
                context.drawImage(image, 0, 0);
                const data = context.getImageData(0, 0, image.width, image.height).data;
                let text = '';
                for (let i = 0; i < data.length; i += 0x8000) {{
                  text += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
                }}
                resolve([image.width, image.height, btoa(text)]);
              }};
              image.onerror = () => reject(new Error('not a PNG'));
              image.src = 'data:image/png;base64,{encoded}';
            }})"""
        )
    finally:
        page.close()
    width, height, data = result
    pixels = np.frombuffer(base64.b64decode(data), dtype=np.uint8)
    return pixels.reshape(int(height), int(width), 4)


def open_dashboard(
    browser: Chromium, html_path: Path, *, width: int = 1280, height: int = 800
) -> tuple[Page, float]:
    """Open a dashboard page and wait until every figure has rendered; seconds it took."""
    page = browser.new_page()
    page.set_viewport(width, height)
    seconds = page.goto(html_path.resolve().as_uri(), ready=RENDERED)
    page.drain()
    return page, seconds
