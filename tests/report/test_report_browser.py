"""End to end: report.html opens in headless Chromium with every image and chart loaded and no console error.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``:
JSON messages on file descriptors 3 and 4), so no websocket library, selenium or
playwright is needed. The tests install nothing: where no Chromium is found they skip, saying
why (CI's ``.ci/run`` installs Debian's ``chromium`` first). Set GANFORGE_CHROMIUM to use another
Chromium or Chrome binary.

``python tests/test_report_browser.py REPORT.html SHOT.png`` writes a full-page screenshot
(how docs/images/report.png was made).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pytest

pytestmark = pytest.mark.slow  # starts Chromium

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PAGE_TIMEOUT_S = 60  # launching Chromium, loading and probing one page
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe",
)

# Runs in the page once it has loaded: every image decoded (or not), every chart's size.
PROBE = """(async () => {
  const images = [...document.images];
  await Promise.all(images.map((image) => image.decode().catch(() => null)));
  return {
    images: images.map((image) => ({id: image.id, cls: image.className, alt: image.alt, complete: image.complete,
                                    width: image.naturalWidth, height: image.naturalHeight})),
    charts: [...document.querySelectorAll("svg.chart")].map((svg) => {
      const box = svg.getBoundingClientRect();
      return {id: svg.id, width: box.width, height: box.height, lines: svg.querySelectorAll("polyline").length};
    }),
    sections: [...document.querySelectorAll("main > section")].map((section) => section.id),
    pageHeight: document.documentElement.scrollHeight,
  };
})()"""


# --------------------------------------------------------------------------- finding Chromium


def find_chromium() -> str | None:
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def chromium_or_reason() -> tuple[str | None, str | None]:
    """(path, None) where a Chromium is found; (None, why not) otherwise."""
    chosen = os.environ.get("GANFORGE_CHROMIUM")
    if chosen:
        path = shutil.which(chosen)
        return path, None if path else f"GANFORGE_CHROMIUM={chosen} is not an executable file"
    path = find_chromium()
    return path, None if path else "no Chromium found: install Debian's chromium (as .ci/run does) or set GANFORGE_CHROMIUM"


@pytest.fixture(scope="session")
def chromium() -> str:
    path, reason = chromium_or_reason()
    if path is None:
        pytest.skip(reason or "no Chromium")
    return path


# --------------------------------------------------------------------------- a DevTools client over a pipe


class Browser:
    """One headless Chromium, driven by DevTools protocol messages (NUL-terminated JSON) over fds 3 and 4."""

    def __init__(self, binary: str, width: int = 1280, height: int = 900) -> None:
        self.profile = tempfile.mkdtemp(prefix="ganforge-chromium-")
        to_browser_read, to_browser_write = os.pipe()
        from_browser_read, from_browser_write = os.pipe()
        # Above 10 so that placing them on 3 and 4 in the child cannot overwrite one with the other.
        child_in = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_browser_read)
        os.close(from_browser_write)

        def give_pipes() -> None:  # in the child, before exec: fds 3 and 4 (dup2 makes them inheritable)
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, preexec_fn=give_pipes, close_fds=False,
        )
        os.close(child_in)
        os.close(child_out)
        self.writer, self.reader = to_browser_write, from_browser_read
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self.width, self.height = width, height
        self.session: str | None = None

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("Browser.close", session=False)
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for fd in (self.writer, self.reader):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def stderr_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> int:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.writer, json.dumps(message).encode() + b"\0")
        return self.next_id

    def wait_for(self, matches: Callable[[dict[str, Any]], bool], timeout: float = PAGE_TIMEOUT_S) -> dict[str, Any]:
        """Read messages (keeping every event) until one matches."""
        deadline = time.monotonic() + timeout
        for event in self.events:
            if matches(event):
                return event
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" not in message:
                    self.events.append(message)
                if matches(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from Chromium in {timeout} s; its log:\n{self.stderr_tail()}")
            ready, _, _ = select.select([self.reader], [], [], left)
            if ready:
                chunk = os.read(self.reader, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe (exit {self.process.poll()}); "
                                       f"its log:\n{self.stderr_tail()}")
                self.buffer += chunk

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> dict[str, Any]:
        sent = self.send(method, params, session)
        answer = self.wait_for(lambda message: message.get("id") == sent)
        if "error" in answer:
            raise RuntimeError(f"{method} failed: {answer['error']}")
        return answer.get("result", {})

    def open(self, page: Path) -> None:
        """A new tab showing ``page``, once its load event fired, with console and log reporting on."""
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        attached = self.call("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)
        self.session = attached["sessionId"]
        for domain in ("Runtime.enable", "Log.enable", "Page.enable", "Network.enable"):
            self.call(domain)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        self.call("Page.navigate", {"url": page.resolve().as_uri()})
        self.wait_for(lambda message: message.get("method") == "Page.loadEventFired"
                      and message.get("sessionId") == self.session)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"the probe failed in the page: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (a resource that failed to load) so far."""
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append("console: " + " ".join(str(arg.get("value", arg.get("description")))
                                                     for arg in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                errors.append("exception: " + str(details.get("exception", {}).get("description", details.get("text"))))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                errors.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
        return errors

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for so far (the page itself included)."""
        return [event["params"]["request"]["url"] for event in self.events
                if event.get("method") == "Network.requestWillBeSent"]

    def screenshot(self, out: Path, height: int) -> Path:
        """The whole page, ``height`` pixels tall, as a PNG."""
        shot = self.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1},
        })
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))
        return out


def load_page(binary: str, page: Path, screenshot: Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """Open ``page``; return what the probe saw (with the URLs it requested) and the console errors;
    optionally write a full-page screenshot."""
    with Browser(binary) as browser:
        browser.open(page)
        seen = browser.evaluate(PROBE)
        time.sleep(0.2)  # let late console messages arrive
        browser.call("Runtime.evaluate", {"expression": "0"})
        if screenshot is not None:
            browser.screenshot(screenshot, seen["pageHeight"])
        seen["requests"] = browser.requested_urls()
        return seen, browser.console_errors()


# --------------------------------------------------------------------------- the tests


def external(urls: list[str]) -> list[str]:
    """The URLs that are neither the page's own file nor embedded data (none in a self-contained page)."""
    return [url[:120] for url in urls if not url.startswith(("file:", "data:"))]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import ganforge

    out = tmp_path_factory.mktemp("browser") / "digits"
    ganforge.train(out, model="dcgan", data="digits", image_size=28, width=4, batch_size=8, steps=10, log_every=2,
                   sample_every=5, checkpoint_every=0, seed=0, tensorboard=False, show_progress=False)
    return out


def test_the_probe_sees_a_broken_image_and_a_console_error(chromium: str, tmp_path: Path) -> None:
    """The harness is not blind: a missing image and a console.error are reported."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img id="gone" src="missing.png">'
                    '<script>console.error("deliberate error")</script></body></html>')
    seen, errors = load_page(chromium, page)
    assert seen["images"] == [{"id": "gone", "cls": "", "alt": "", "complete": True, "width": 0, "height": 0}]
    assert any("deliberate error" in error for error in errors), errors
    assert any("missing.png" in error or "Failed to load" in error for error in errors), errors


def test_report_loads_in_chromium(chromium: str, digits_run: Path, tmp_path: Path) -> None:
    from ganforge.report.run_page import SECTIONS, write_report

    page = write_report([digits_run])
    seen, errors = load_page(chromium, page, screenshot=tmp_path / "report.png")

    assert errors == []
    assert seen["requests"] and external(seen["requests"]) == []
    assert seen["sections"] == [key for key, _ in SECTIONS]
    grids = [image for image in seen["images"] if image["cls"] == "sample-grid"]
    assert len(grids) == 2  # samples at steps 5 and 10
    assert any(image["id"] == "interpolation-strip" for image in seen["images"])
    for image in seen["images"]:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
    chart_ids = {chart["id"] for chart in seen["charts"]}
    assert {"chart-losses", "chart-d-outputs", "chart-metric-seconds_per_step"} <= chart_ids
    for chart in seen["charts"]:
        assert chart["width"] > 300 and chart["height"] > 100 and chart["lines"] >= 1, chart
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_comparison_of_a_toy_and_an_image_run_loads_in_chromium(chromium: str, digits_run: Path,
                                                                  tmp_path: Path) -> None:
    import ganforge
    from ganforge.report.run_page import write_report

    toy = tmp_path / "toy"
    ganforge.train(toy, model="toy", data="ring8", width=16, batch_size=32, steps=10, log_every=2, sample_every=5,
                   checkpoint_every=0, tensorboard=False, show_progress=False)
    seen, errors = load_page(chromium, write_report([digits_run, toy], tmp_path / "both.html"))

    assert errors == []
    assert external(seen["requests"]) == []
    assert any(image["id"] == "decision-surface" and image["width"] == 512 for image in seen["images"])
    assert all(image["complete"] and image["width"] > 0 for image in seen["images"])
    assert len([image for image in seen["images"] if image["cls"] == "sample-grid"]) == 4


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tests/test_report_browser.py REPORT.html SHOT.png")
    binary, why_not = chromium_or_reason()
    if binary is None:
        sys.exit(why_not)
    probe, console = load_page(binary, Path(sys.argv[1]), Path(sys.argv[2]))
    print(json.dumps({"images": len(probe["images"]), "charts": len(probe["charts"]), "errors": console,
                      "height": probe["pageHeight"]}))
