"""What the flagd-testbed's launchpad does for flagd, done for flag-service: start a
configuration (the testbed flags laid out as flags/allFlags.json + rawflags/*), drop the
connection for N seconds, and flip `changing-flag`."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from . import testbed
from .server import FlagService, write_atomically


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Launchpad:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.server: FlagService | None = None

    def start(self, config: str = "default") -> FlagService:
        if self.server is not None:
            raise RuntimeError("one configuration per scenario")
        testbed.lay_out(self.workdir)
        self.server = FlagService(
            self.workdir,
            testbed.CONFIGS[config],
            name=f"testbed-{config}",
            context_values=testbed.context_values(config),
        )
        self.server.start()
        return self.server

    def restart(self, seconds: float) -> None:
        """Kills the server now (every stream drops) and starts it again after `seconds`."""
        assert self.server is not None
        self.server.restart_later(seconds)

    def change(self) -> str:
        """Flips `changing-flag` between foo and bar in rawflags/changing-flag.json, rebuilds
        flags/allFlags.json, and returns once the server evaluates the new value."""
        assert self.server is not None
        path = self.workdir / "rawflags/changing-flag.json"
        document = json.loads(path.read_text(encoding="utf-8"))
        flag = document["flags"]["changing-flag"]
        flag["defaultVariant"] = "bar" if flag["defaultVariant"] == "foo" else "foo"
        write_atomically(path, json.dumps(document, indent=2))
        testbed.regenerate_all_flags(self.workdir)
        self.server.wait_for_value("changing-flag", flag["defaultVariant"], selector=f"source={testbed.ALL_FLAGS}")
        return flag["defaultVariant"]

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
