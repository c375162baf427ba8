"""Open a local HTML file in headless Chromium and report what a reader's browser would see.

Drives Chromium over the DevTools protocol (a websocket on the loopback interface): loads the page,
records console errors, uncaught exceptions, browser log errors and every request that is not the
page itself or a data: URI, decodes every image, and takes a full-page screenshot.
"""

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage", "--remote-debugging-port=0")
IMAGES_JS = """Promise.all(Array.from(document.images).map(img => img.decode().then(
    () => ({alt: img.alt, width: img.naturalWidth, height: img.naturalHeight, error: ""}),
    e => ({alt: img.alt, width: img.naturalWidth, height: img.naturalHeight, error: String(e)}))))"""


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageReport:
    images: list = field(default_factory=list)  # [{"alt", "width", "height", "error"}]
    errors: list = field(default_factory=list)  # console errors, exceptions, browser log errors
    requests: list = field(default_factory=list)  # URLs requested other than the page and data: URIs
    screenshot: bytes = b""  # PNG of the whole page
    page_height: int = 0
    values: dict = field(default_factory=dict)  # name -> value of each expression passed to open_page


class _DevTools:
    """A minimal DevTools protocol client on one page's websocket: commands and the events between them."""

    def __init__(self, ws_url: str, timeout: float):
        import websocket  # the dev extra's websocket-client

        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events = []

    def call(self, method: str, **params) -> dict:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method} failed: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, deadline: float) -> None:
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} before the deadline")
            self.events.append(json.loads(self.ws.recv()))

    def close(self) -> None:
        self.ws.close()


def _debugger_url(profile: Path, proc: subprocess.Popen, deadline: float) -> str:
    """The first page target's websocket URL, once Chromium has written its DevToolsActivePort."""
    port_file = profile / "DevToolsActivePort"
    while not port_file.exists() or not port_file.read_text().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"chromium did not start (exit code {proc.poll()})")
        time.sleep(0.05)
    port = port_file.read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
        targets = json.load(response)
    return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")


def _collect(events: list, page_url: str) -> tuple:
    errors, requests = [], []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            errors.append("exception: " + params["exceptionDetails"].get("text", ""))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(f"log ({params['entry']['source']}): {params['entry']['text']}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if url != page_url and not url.startswith("data:"):
                requests.append(url)
    return errors, requests


def _stop(proc: subprocess.Popen) -> None:
    """Stop Chromium's process group and wait for it, so its profile folder can be removed."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for _ in range(100):  # the forked processes exit just after the parent
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def open_page(path, *, width: int = 1366, height: int = 850, timeout: float = 60.0, expressions=None) -> PageReport:
    """Load `path` at a laptop-sized viewport (width x height CSS pixels) and report on it; `expressions`
    ({name: JavaScript expression}) are evaluated in the loaded page, their values in PageReport.values."""
    binary = chromium_binary()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (Debian package `chromium`)")
    page_url = Path(path).resolve().as_uri()
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="chromium-profile-", ignore_cleanup_errors=True) as profile:
        # Its own process group, so that stopping it also stops the renderer and helper processes it forked; its
        # temp folder (where it keeps its singleton socket, left behind when it is stopped) inside the profile's.
        proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                env={**os.environ, "TMPDIR": profile}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            tools = _DevTools(_debugger_url(Path(profile), proc, deadline), timeout)
            try:
                for domain in ("Page", "Runtime", "Log", "Network"):
                    tools.call(f"{domain}.enable")
                tools.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                           mobile=False)
                tools.call("Page.navigate", url=page_url)
                tools.wait_for("Page.loadEventFired", deadline)
                images = tools.call("Runtime.evaluate", expression=IMAGES_JS, awaitPromise=True,
                                    returnByValue=True)["result"]["value"]
                page_height = tools.call("Runtime.evaluate", expression="document.documentElement.scrollHeight",
                                         returnByValue=True)["result"]["value"]
                values = {name: tools.call("Runtime.evaluate", expression=js, returnByValue=True)["result"].get("value")
                          for name, js in (expressions or {}).items()}
                shot = tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                  clip={"x": 0, "y": 0, "width": width, "height": page_height, "scale": 1})
                errors, requests = _collect(tools.events, page_url)
            finally:
                tools.close()
        finally:
            _stop(proc)
    return PageReport(images=images, errors=errors, requests=requests, screenshot=base64.b64decode(shot["data"]),
                      page_height=page_height, values=values)
