"""Headless Chromium for the report tests: screenshots, the DOM after load, and a probe that records
whether every <img> decoded. Missing Chromium skips the tests, except under CI where it fails them.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
         "--virtual-time-budget=10000")   # let the load event (and the probe) finish before dumping
TIMEOUT_S = 90

# After load, record each image's decoded width and the totals on <body>; data-probe proves it ran.
PROBE = """<script>window.addEventListener("load", function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    var good = imgs[i].complete && imgs[i].naturalWidth > 0;
    imgs[i].setAttribute("data-natural-width", imgs[i].naturalWidth);
    imgs[i].setAttribute("data-decoded", good ? "yes" : "no");
    ok += good ? 1 : 0;
  }
  document.body.setAttribute("data-images", imgs.length);
  document.body.setAttribute("data-decoded", ok);
  document.body.setAttribute("data-probe", "done");
});</script>"""
CSP_META = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>')


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_chromium() -> str:
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    msg = ("headless Chromium is needed to check that the report renders; install Debian's package: "
           "apt-get install -y --no-install-recommends chromium (make test does this when run as root)")
    if in_ci():
        pytest.fail(f"CI is set but no Chromium was found ({', '.join(NAMES)}): {msg}", pytrace=False)
    pytest.skip(f"no Chromium on this machine: {msg}")


def run(binary: str, args: list[str], url: str, profile: Path) -> subprocess.CompletedProcess:
    """One Chromium run with its own profile folder (concurrent runs must not share one)."""
    cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *args, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


def screenshot(binary: str, html: Path, png: Path, size: tuple[int, int], profile: Path) -> Path:
    run(binary, [f"--screenshot={png}", f"--window-size={size[0]},{size[1]}"], html.as_uri(), profile)
    assert png.is_file(), "chromium wrote no screenshot"
    return png


def dump_dom(binary: str, html: Path, profile: Path) -> str:
    return run(binary, ["--dump-dom"], html.as_uri(), profile).stdout


def with_probe(html: str) -> str:
    """The report with the image probe added; its CSP (which forbids every script) is taken out."""
    stripped, n = CSP_META.subn("", html)
    assert n == 1, f"expected one CSP meta tag in the report, found {n}"
    assert stripped.count("</body>") == 1
    return stripped.replace("</body>", PROBE + "</body>")
