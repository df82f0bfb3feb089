"""Headless Chromium driven over the DevTools protocol on a pipe (no extra package, no network port).

`Browser` starts Chromium with ``--remote-debugging-pipe`` (commands on fd 3, replies on fd 4,
JSON messages ended by a NUL byte), opens one page and offers what the report needs: load a
local file, evaluate JavaScript, take a screenshot, print a PDF, and the console errors seen.
WebGL runs on SwiftShader (software), so the 3D view draws on machines without a GPU.

Used by ``skull2face report --pdf`` (`print_pdf`) and by the browser tests.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

#: Flags: no sandbox (root in containers), software WebGL, and nothing that reaches the network
#: (QUIC, background fetches, component and sync updates).
FLAGS = ("--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe")


def find_browser() -> str | None:
    """Path of a Chromium-family browser on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    """Chromium could not be started, or did not answer in time."""


class Browser:
    """One headless Chromium page (a context manager).

    Parameters
    ----------
    width, height : int
        Window size in CSS pixels.
    timeout_s : float
        Longest wait for any one answer.
    """

    def __init__(self, width: int = 1200, height: int = 900, timeout_s: float = 60.0) -> None:
        exe = find_browser()
        if exe is None:
            raise BrowserError("no Chromium-family browser on PATH")
        self.timeout_s = timeout_s
        self._profile = tempfile.TemporaryDirectory(prefix="skull2face-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds() -> None:  # the protocol's fixed descriptors in the child, inheritable
            import fcntl

            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child_r, from_child_w)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self._proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={self._profile.name}", f"--window-size={int(width)},{int(height)}",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=fds, close_fds=False)  # os.pipe ends are close-on-exec; 3 and 4 are not
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        try:
            target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable")
            self.call("Emulation.setDeviceMetricsOverride", {"width": int(width), "height": int(height),
                                                             "deviceScaleFactor": 1, "mobile": False})
        except Exception:
            self.close()
            raise

    # -------------------------------------------------------------------------- protocol
    def _send(self, method: str, params: dict | None, session: str | None) -> int:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        return self._id

    def _read(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise BrowserError("Chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise BrowserError("Chromium closed the connection")
            self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)

    def _call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout_s
        while True:
            msg = self._read(deadline)
            if msg.get("id") == wanted:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def call(self, method: str, params: dict | None = None) -> dict:
        """Send a DevTools command to the page; its result."""
        return self._call(method, params, self._session)

    def wait_event(self, method: str, since: int = 0, timeout_s: float | None = None) -> dict:
        """The first event named ``method`` from ``self.events[since]`` on, waiting for it if needed."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        for ev in self.events[since:]:
            if ev.get("method") == method:
                return ev
        while True:
            msg = self._read(deadline)
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg

    # -------------------------------------------------------------------------- page
    def open(self, path: str | os.PathLike) -> None:
        """Load a local HTML file and wait for its load event."""
        self.events.clear()
        self.call("Page.navigate", {"url": Path(path).resolve().as_uri()})
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited); a thrown error raises."""
        res = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in res:
            raise BrowserError(f"{expression[:60]}: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout_s: float = 30.0) -> bool:
        """Poll a JavaScript expression until it is true (True) or time runs out (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.evaluate(f"!!({expression})"):
                return True
            time.sleep(0.1)
        return False

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries since the page was opened."""
        out = []
        for ev in self.events:
            p = ev.get("params", {})
            if ev.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif ev.get("method") == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append(str(d.get("exception", {}).get("description") or d.get("text")))
            elif ev.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out

    def screenshot(self, clip: dict | None = None) -> bytes:
        """PNG bytes of the viewport, or of ``clip`` ({x, y, width, height} in CSS px of the page)."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": clip is not None}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.call("Page.captureScreenshot", params)["data"])

    def pdf(self, footer_html: str, landscape: bool = False) -> bytes:
        """The page printed to PDF: A4, 12 mm margins, ``footer_html`` at the foot of every page
        (``<span class="pageNumber">`` and ``<span class="totalPages">`` are filled in)."""
        mm = 1 / 25.4
        res = self.call("Page.printToPDF", {
            "paperWidth": 210 * mm, "paperHeight": 297 * mm, "landscape": landscape,
            "marginTop": 12 * mm, "marginBottom": 16 * mm, "marginLeft": 12 * mm, "marginRight": 12 * mm,
            "printBackground": True, "displayHeaderFooter": True, "headerTemplate": "<span></span>",
            "footerTemplate": footer_html, "preferCSSPageSize": False})
        return base64.b64decode(res["data"])

    def close(self) -> None:
        """End Chromium (politely, then by its process id) and remove its profile."""
        try:
            if self._proc.poll() is None:
                try:
                    self._send("Browser.close", None, None)
                    self._proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    self._proc.kill()
                    self._proc.wait(timeout=5)
        finally:
            for fd in (self._to_child, self._from_child):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._profile.cleanup()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["Browser", "BrowserError", "FLAGS", "find_browser"]
