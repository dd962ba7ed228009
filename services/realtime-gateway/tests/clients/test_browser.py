"""Headless Chromium opens /demo, subscribes through the page and shows a publication."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from gateway import ADMIN_KEY


def test_the_demo_page_shows_a_publication_in_chromium(gateway):
    script = Path(__file__).with_name("demo_check.js")
    result = subprocess.run(
        ["node", str(script), f"http://{gateway.http}", ADMIN_KEY],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "NODE_PATH": os.environ["REALTIME_E2E_NODE_MODULES"]},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])["shown"]
    assert "product:browser" in shown and "4200" in shown
