"""A flag-service process on loopback: started with flag files in a temp directory, waited on
until its HTTP readiness endpoint and gRPC health check answer, killed or restarted on demand."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = re.compile(r'"message":"serving".*?"grpc_addr":"[^"]*:(\d+)".*?"http_addr":"[^"]*:(\d+)"')


def binary() -> Path:
    path = os.environ.get("FLAG_SERVICE_BIN")
    if not path:
        raise RuntimeError("FLAG_SERVICE_BIN is not set; run the suite through scripts/flag-provider-e2e.sh")
    resolved = Path(path)
    if not resolved.is_file() or not os.access(resolved, os.X_OK):
        raise RuntimeError(f"FLAG_SERVICE_BIN={path} is not an executable file")
    return resolved


def write_atomically(path: Path, text: str) -> float:
    """Writes `text` to a temp file next to `path` and renames it over `path`, as deployment
    tools do. Returns `time.monotonic()` taken right after the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    return time.monotonic()


class FlagService:
    """One flag-service process serving `flag_files` (paths relative to `workdir`, passed to
    `--flags-file` exactly as written, so they are also the `source=` selectors)."""

    def __init__(
        self,
        workdir: Path,
        flag_files: list[str],
        name: str = "flag-service",
        context_values: dict[str, str] | None = None,
    ):
        self.workdir = workdir
        self.flag_files = list(flag_files)
        self.context_values = dict(context_values or {})
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self.grpc_port = 0
        self.http_port = 0
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self._lock = threading.Lock()
        self._restarts: list[threading.Thread] = []

    # -- addresses -------------------------------------------------------------------------
    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def path(self, relative: str) -> Path:
        return self.workdir / relative

    # -- lifecycle -------------------------------------------------------------------------
    def _environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCHYARD_")}
        env.update(
            {
                "SWITCHYARD_GRPC__HOST": "127.0.0.1",
                "SWITCHYARD_GRPC__PORT": str(self.grpc_port),
                "SWITCHYARD_HTTP__HOST": "127.0.0.1",
                "SWITCHYARD_HTTP__PORT": str(self.http_port),
                "SWITCHYARD_DATA_DIR": str(self.workdir / "data"),
                "SWITCHYARD_TELEMETRY__LOG_FORMAT": "json",
                "SWITCHYARD_SHUTDOWN__DRAIN_DELAY_MS": "0",
                "SWITCHYARD_SHUTDOWN__GRACE_PERIOD_MS": "500",
            }
        )
        return env

    def start(self, timeout: float = 60.0) -> None:
        """Starts the process (on the ports of the previous run, if any) and waits until it is
        ready. The first start picks free ports (port 0) and reads them from the log."""
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                return
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            log = open(self.log_path, "ab")
            args = [str(binary())]
            for flag_file in self.flag_files:
                args += ["--flags-file", flag_file]
            for key, value in self.context_values.items():
                args += ["--context-value", f"{key}={value}"]
            self.process = subprocess.Popen(
                args,
                cwd=self.workdir,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            self.starts += 1
            deadline = time.monotonic() + timeout
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.process.returncode} while starting:\n{self.log_tail()}"
                    )
                text = self.log_path.read_bytes()[offset:].decode("utf-8", "replace")
                match = SERVING.search(text)
                if match:
                    self.grpc_port, self.http_port = int(match.group(1)), int(match.group(2))
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not report its ports within {timeout}s:\n{self.log_tail()}")
                time.sleep(0.02)
            self._wait_ready(deadline)

    def _wait_ready(self, deadline: float) -> None:
        problem = "not tried"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited while starting:\n{self.log_tail()}")
            try:
                response = requests.get(f"{self.http_url}/readyz", timeout=1)
                if response.status_code != 200:
                    problem = f"/readyz answered {response.status_code}"
                    raise LookupError
                with grpc.insecure_channel(self.grpc_target) as channel:
                    health = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=""), timeout=1
                    )
                if health.status != health_pb2.HealthCheckResponse.SERVING:
                    problem = f"gRPC health is {health.status}"
                    raise LookupError
                return
            except (requests.RequestException, grpc.RpcError, LookupError) as error:
                if not isinstance(error, LookupError):
                    problem = repr(error)
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready in time ({problem}):\n{self.log_tail()}")

    def kill(self) -> None:
        """Drops every connection at once (SIGKILL), as a crash or a network cut would."""
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), SIGKILL if it takes more than 5 s."""
        with self._lock:
            if self.process is None or self.process.poll() is not None:
                return
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def restart_later(self, down_seconds: float) -> threading.Thread:
        """Kills the process now and starts it again (same ports, same files) after
        `down_seconds`, in the background; returns the thread doing it."""
        self.kill()

        def back_up() -> None:
            time.sleep(down_seconds)
            self.start()

        thread = threading.Thread(target=back_up, name=f"{self.name}-restart", daemon=True)
        thread.start()
        self._restarts.append(thread)
        return thread

    def close(self) -> None:
        for thread in self._restarts:
            thread.join(timeout=90)
        self.stop()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- flags -----------------------------------------------------------------------------
    def write_flags(self, relative: str, document: dict | str) -> float:
        """Replaces a flag file atomically; returns the monotonic time of the rename."""
        text = document if isinstance(document, str) else json.dumps(document, indent=2)
        return write_atomically(self.path(relative), text)

    # -- OFREP, for waiting on a reload without a provider -----------------------------------
    def ofrep(self, key: str, context: dict | None = None, selector: str | None = None) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if selector:
            headers["Flagd-Selector"] = selector
        return requests.post(
            f"{self.http_url}/ofrep/v1/evaluate/flags/{key}",
            data=json.dumps({"context": context or {}}),
            headers=headers,
            timeout=5,
        )

    def wait_for_value(self, key: str, expected, selector: str | None = None, timeout: float = 10.0) -> float:
        """Polls OFREP until `key` evaluates to `expected`; returns the monotonic time it did."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            response = self.ofrep(key, selector=selector)
            last = (response.status_code, response.text)
            if response.status_code == 200 and response.json().get("value") == expected:
                return time.monotonic()
            time.sleep(0.01)
        raise AssertionError(f"{key} never evaluated to {expected!r} within {timeout}s; last answer {last}")
