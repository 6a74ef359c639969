"""Headless Chromium driven over the Chrome DevTools Protocol, for tests of pages we write.

Launches Debian's `chromium` (or $SAFETYPAIRS_CHROMIUM) with `--remote-debugging-port=0`,
reads the chosen port from DevToolsActivePort in its profile folder, and talks to the first
page target over a websocket. Console errors, uncaught exceptions and log errors are collected
from the moment the domains are enabled, so a test can assert there were none.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect


def chromium_binary() -> str:
    """The browser to drive; a clear failure (not a skip) when none is installed, because
    bin/test installs Debian's package where it is missing."""
    binary = os.environ.get("SAFETYPAIRS_CHROMIUM") or shutil.which("chromium")
    if not binary:
        raise RuntimeError(
            "chromium not found: run the tests through bin/test (it installs Debian's chromium "
            "package) or set SAFETYPAIRS_CHROMIUM to a Chrome/Chromium binary"
        )
    return binary


class Chromium:
    def __init__(self, profile: Path, width: int = 1280, height: int = 1600) -> None:
        self.proc = subprocess.Popen(
            [
                chromium_binary(),
                "--headless=new",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-sync",
                "--hide-scrollbars",
                "--mute-audio",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._stack = ExitStack()
        try:
            port = self._port(profile / "DevToolsActivePort")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                page = next(t for t in json.load(r) if t["type"] == "page")
            url = page["webSocketDebuggerUrl"]
            self.ws: ClientConnection = self._stack.enter_context(connect(url, max_size=None))
        except BaseException:
            self.close()
            raise
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable")

    def _port(self, active_port_file: Path, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited: {self.proc.stderr.read().decode()[-2000:]}")
            lines = active_port_file.read_text().splitlines() if active_port_file.exists() else []
            if lines and lines[0].isdigit():
                return int(lines[0])
            time.sleep(0.05)
        raise TimeoutError("chromium did not write DevToolsActivePort")

    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """One command; events that arrive meanwhile are kept in `events`."""
        self._next_id += 1
        self.ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event["params"]
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            self.events.append(message)
            if message.get("method") == method:
                return message["params"]

    def open(self, path: Path) -> None:
        """Navigate to a local file and wait for its load event (images included)."""
        self.navigate(path.resolve().as_uri())

    def navigate(self, url: str) -> None:
        """Navigate to a URL (a page a test server serves) and wait for its load event."""
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def press(self, key: str, text: str | None = None) -> None:
        """One key press (down and up), as a person's keyboard sends it: `key` is the DOM key
        name ("a", "Enter", "ArrowLeft"); printable keys type their text."""
        codes = {"Enter": 13, "Escape": 27, "ArrowLeft": 37, "ArrowRight": 39, " ": 32}
        if text is None:
            text = {"Enter": "\r", " ": " "}.get(key, key if len(key) == 1 else "")
        code = codes.get(key, ord(key.upper()) if len(key) == 1 else 0)
        down = {"key": key, "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code}
        self.send("Input.dispatchKeyEvent", type="keyDown", text=text, **down)
        self.send("Input.dispatchKeyEvent", type="keyUp", **down)

    def evaluate(self, expression: str) -> Any:
        """The expression's value (awaited when it is a promise)."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])

    def errors(self) -> list[dict[str, Any]]:
        """Console errors, uncaught exceptions and error log entries (CSP violations, failed
        loads) seen so far."""
        self.send("Runtime.evaluate", expression="0")  # flush events queued before now
        found = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if (
                method == "Runtime.exceptionThrown"
                or (method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"))
                or (method == "Log.entryAdded" and params["entry"]["level"] == "error")
            ):
                found.append(e)
        return found

    def dialogs(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("method") == "Page.javascriptDialogOpening"]

    def close(self) -> None:
        self._stack.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
