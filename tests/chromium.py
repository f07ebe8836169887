"""Headless Chromium driven over the DevTools protocol, for the browser tests.

The system's ``chromium`` (Debian's package; ``.ci/run`` installs it) is started with
a throw-away profile, the network switched off (offline emulation, every http(s) and
ws(s) URL blocked), and a page loaded from a ``file://`` URL. :func:`load_page`
reports what a reader would see: the load time, JavaScript errors, how many canvases
drew something, and whether the page is wider than the window.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: Canvases (through Bokeh's shadow roots) and how many sampled pixels each has drawn.
CANVAS_JS = r"""
(() => {
  const found = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.tagName === 'CANVAS') found.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return found.map((c) => {
    if (!c.width || !c.height) return 0;
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let drawn = 0;
    for (let i = 3; i < data.length; i += 4 * 7) if (data[i] !== 0) drawn++;
    return drawn;
  });
})()
"""


@dataclass
class PageReport:
    load_seconds: float
    errors: list = field(default_factory=list)
    canvases: list = field(default_factory=list)
    scroll_width: int = 0
    inner_width: int = 0
    screenshot: bytes = b""
    #: URLs the page asked for other than file:, data:, blob: and about: ones.
    requests: list = field(default_factory=list)

    @property
    def drawn_canvases(self) -> int:
        return sum(1 for c in self.canvases if c > 0)


class _Session:
    def __init__(self, url: str):
        import websocket

        self.ws = websocket.create_connection(url, timeout=120, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params):
        self.next_id += 1
        ident = self.next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(method)

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"
                and not e["params"]["request"]["url"].startswith(("file:", "data:", "blob:",
                                                                  "about:"))]

    def errors(self) -> list[str]:
        out = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(json.dumps(params.get("exceptionDetails", {}))[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                out.append(json.dumps(params.get("args", []))[:500])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.append(params["entry"].get("text", "")[:500])
        return out


def load_page(path: Path, width: int = 1280, height: int = 800, settle: float = 1.0,
              timeout: float = 120, chart: bool = True, then=None) -> PageReport:
    """Load ``path`` in headless Chromium, offline, and report on it.

    With ``chart`` the load time runs until the canvases have drawn and stopped
    changing (Bokeh draws after the load event); without, until the load event.
    ``then(session)`` is called at the end, the page still open.
    """
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--disable-background-networking", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if match:
                port = int(match.group(1))
            elif not line and proc.poll() is not None:
                raise RuntimeError("chromium exited before listening")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as resp:
            pages = [t for t in json.load(resp) if t.get("type") == "page"]
        session = _Session(pages[0]["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log", "Network"):
            session.call(f"{domain}.enable")
        session.call("Network.emulateNetworkConditions", offline=True, latency=0,
                     downloadThroughput=0, uploadThroughput=0)
        session.call("Network.setBlockedURLs", urls=["http://*", "https://*", "ws://*",
                                                     "wss://*"])
        session.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                     deviceScaleFactor=1, mobile=False)
        start = time.monotonic()
        session.call("Page.navigate", url=Path(path).resolve().as_uri())
        session.wait_for("Page.loadEventFired", timeout)
        # The chart is drawn once Bokeh has embedded it: wait until the canvases stop
        # changing in number, then measure.
        canvases, load_seconds = [], None
        while chart and time.monotonic() - start < timeout:
            value = session.call("Runtime.evaluate", expression=CANVAS_JS,
                                 returnByValue=True)["result"].get("value", [])
            if value and any(v > 0 for v in value) and value == canvases:
                break
            if value and load_seconds is None and any(v > 0 for v in value):
                load_seconds = time.monotonic() - start
            canvases = value
            time.sleep(0.25)
        if load_seconds is None:
            load_seconds = time.monotonic() - start
        time.sleep(settle)
        canvases = session.call("Runtime.evaluate", expression=CANVAS_JS,
                                returnByValue=True)["result"].get("value", [])
        widths = session.call("Runtime.evaluate", returnByValue=True, expression=(
            "[document.documentElement.scrollWidth, window.innerWidth]"))["result"]["value"]
        shot = session.call("Page.captureScreenshot", format="png")["data"]
        if then is not None:
            then(session)
        return PageReport(load_seconds, session.errors(), canvases, widths[0], widths[1],
                          base64.b64decode(shot), session.requests())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


#: Zoom the chart's time axis to ``[fraction_start, fraction_end]`` of its range; return
#: how many bars the price panel then holds and their time step (milliseconds).
ZOOM_JS = r"""
(async (f0, f1) => {
  const doc = Bokeh.documents[0];
  const models = Array.from(doc.all_models);
  const ranges = models.filter((m) => m.constructor.__name__ === "Range1d");
  const xr = ranges.find((r) => r.bounds != null) || ranges[0];
  const prices = models.filter((m) => m.constructor.__name__ === "ColumnDataSource"
      && (m.data instanceof Map ? m.data.has("o") : "o" in m.data));
  const get = (src, k) => (src.data instanceof Map ? src.data.get(k) : src.data[k]);
  const [lo, hi] = [xr.start, xr.end];
  xr.setv({start: lo + (hi - lo) * f0, end: lo + (hi - lo) * f1});
  await new Promise((r) => setTimeout(r, 300));
  const t = get(prices[0], "t");
  const inView = Array.from(t).filter((x) => x >= xr.start && x <= xr.end).length;
  return [inView, t.length > 1 ? t[1] - t[0] : 0];
})
"""


def zoom(path: Path, steps: list[tuple[float, float]]) -> list[tuple[int, float]]:
    """Open ``path`` and zoom its chart to each ``(start, end)`` fraction in turn."""
    results = []

    def inspect(session):
        for f0, f1 in steps:
            value = session.call("Runtime.evaluate", expression=f"{ZOOM_JS}({f0}, {f1})",
                                 awaitPromise=True, returnByValue=True)
            results.append(tuple(value["result"]["value"]))

    load_page(path, settle=0.2, then=inspect)
    return results
