"""Fixtures of realtime-gateway's client suite: every gateway is a real process
(REALTIME_GATEWAY_BIN) on free loopback ports; clients are the unmodified `websockets`
package and, for /demo, Debian's Chromium driven by playwright-core."""

from __future__ import annotations

import pytest

from gateway import Gateway, binary


def pytest_sessionstart(session):
    # Fail at once, with the reason, rather than once per test.
    binary()


@pytest.fixture(scope="module")
def gateway():
    node = Gateway()
    yield node
    node.stop()
