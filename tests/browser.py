"""Open a page in headless Chromium (Debian's package) and read back what the page says about itself.

``surgery.report`` pages record on load, in ``<body data-*>``, how many sections and plots
rendered and any script error; Chromium's ``--dump-dom`` prints the DOM after the load
event, so those attributes are the page's own verdict.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: apt-get install chromium; "
                                                             ".ci/run installs it)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=10000"]


def body_attributes(page: Path, timeout: float = 60) -> dict[str, str]:
    """The ``data-*`` attributes of ``<body>`` after the page loaded in headless Chromium."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="surgery-chromium-") as profile:
        out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
                             capture_output=True, text=True, timeout=timeout, check=False)
    match = re.search(r"<body([^>]*)>", out.stdout)
    assert match, f"Chromium printed no DOM (exit {out.returncode}): {out.stderr[-500:]}"
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', match.group(1)))
