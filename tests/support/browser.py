"""A page as a real browser sees it: headless Chromium (Debian's `chromium` package), no driver library.

    check = check_page("report.html")
    check.errors, check.console, check.images   # script errors, console messages, [{"src", "ok"}]

Chromium loads a copy of the page with a small script injected at the top of <head>: it records
every error event (script errors, resources that fail to load) and, once the page has loaded,
whether each image decoded (``complete && naturalWidth > 0``), into an element that
``--dump-dom`` prints. Console messages come from Chromium's log on stderr (its ``CONSOLE``
lines); the rest of that log (dbus, GPU and sandbox warnings) is noise.
"""
from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from typing import Dict, List

from tests.support.marks import require

RESULT_ID = "__page_check__"
_PROBE = """<script>
window.__pageErrors = [];
window.addEventListener("error", function (e) {
  var target = e.target && e.target.src ? " (" + e.target.tagName + " " + e.target.src.slice(0, 60) + ")" : "";
  window.__pageErrors.push((e.message || "failed to load") + target);
}, true);
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {src: img.src.slice(0, 40), alt: img.alt, ok: img.complete && img.naturalWidth > 0};
  });
  var out = document.createElement("pre");
  out.id = "%s";
  out.textContent = JSON.stringify({errors: window.__pageErrors, images: images});
  document.body.appendChild(out);
});
</script>""" % RESULT_ID


class BrowserMissingError(RuntimeError):
    pass


@dataclasses.dataclass
class PageCheck:
    errors: List[str]            # error events: script errors and resources that failed to load
    console: List[str]           # console messages Chromium logged
    images: List[Dict[str, object]]

    @property
    def broken_images(self) -> List[Dict[str, object]]:
        return [image for image in self.images if not image["ok"]]


def find_chromium() -> str:
    require("browser", "starts headless Chromium")
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise BrowserMissingError("no headless browser: neither `chromium` nor `chromium-browser` is on PATH "
                              "(Debian: apt-get install -y chromium; `make test` installs it)")


def check_page(page_path: str, timeout: float = 120) -> PageCheck:
    """Loads ``page_path`` in headless Chromium and reports what went wrong in it."""
    with open(page_path, encoding="utf-8") as f:
        page = f.read()
    head = re.search(r"<head[^>]*>", page, flags=re.IGNORECASE)
    assert head, f"{page_path} has no <head>"
    with tempfile.TemporaryDirectory(prefix="page-check-") as folder:
        copy = os.path.join(folder, os.path.basename(page_path))
        with open(copy, "w", encoding="utf-8") as f:
            f.write(page[:head.end()] + _PROBE + page[head.end():])
        result = subprocess.run(
            [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={os.path.join(folder, 'profile')}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=5000", "--dump-dom", "file://" + copy],
            capture_output=True, text=True, timeout=timeout)
    found = re.search(f'<pre id="{RESULT_ID}">(.*?)</pre>', result.stdout, flags=re.DOTALL)
    assert found, f"Chromium did not finish loading {page_path} (exit {result.returncode}):\n{result.stderr[-3000:]}"
    recorded = json.loads(html.unescape(found.group(1)))
    # "[pid:tid:time:INFO:CONSOLE:4] "message", source: ..." (older Chromium: "CONSOLE(4)").
    console = [line for line in result.stderr.splitlines() if re.search(r":CONSOLE[:(]\d+", line)]
    return PageCheck(recorded["errors"], console, recorded["images"])
