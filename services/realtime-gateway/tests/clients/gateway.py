"""realtime-gateway processes for the client suite, and what a client needs to talk to them:
connection tokens, an admin key, gRPC stubs generated from proto/ and a small JSON-protocol
client over the unmodified `websockets` package."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
import websockets

from switchyard.realtime.v1 import realtime_service_pb2 as pb
from switchyard.realtime.v1 import realtime_service_pb2_grpc as pb_grpc

SECRET = "realtime-e2e-secret"
ADMIN_KEY = "sy_e2eadmin_" + secrets.token_hex(32)
REDIS_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379")


def binary() -> str:
    path = os.environ.get("REALTIME_GATEWAY_BIN", "")
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError(f"REALTIME_GATEWAY_BIN={path!r} is not an executable realtime-gateway")
    return path


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


class Gateway:
    """One realtime-gateway process on free loopback ports, with its own data directory."""

    def __init__(self, redis_prefix: str | None = None):
        self.dir = tempfile.TemporaryDirectory(prefix="realtime-e2e-")
        key_hash = hashlib.sha256(ADMIN_KEY.encode()).hexdigest()
        lines = [
            f"data_dir = {toml_value(self.dir.name)}",
            "[grpc]", 'host = "127.0.0.1"', "port = 0",
            "[http]", 'host = "127.0.0.1"', "port = 0",
            "[auth]", f"jwt_hs256_secret = {toml_value(SECRET)}",
            "[[auth.api_keys]]", 'id = "e2eadmin"', f"sha256 = {toml_value(key_hash)}",
            'tenant = "default"', 'roles = ["admin"]',
            "[service]", "node_report_ms = 200",
            "[service.namespaces.load]", "history_size = 10000", "history_ttl_secs = 300",
            "public = true", "allow_anonymous = true",
        ]
        if redis_prefix is not None:
            lines.insert(0, f"redis_url = {toml_value(REDIS_URL)}")
            lines.insert(lines.index("[service]") + 1, f"redis_prefix = {toml_value(redis_prefix)}")
        settings = Path(self.dir.name) / "settings.toml"
        settings.write_text("\n".join(lines) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
        self.process = subprocess.Popen(
            [binary(), "--config", str(settings)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True,
        )
        self.http, self.grpc = self._wait_serving()
        self.ws_url = f"ws://{self.http}/realtime/websocket"

    def _wait_serving(self) -> tuple[str, str]:
        log = []
        for line in self.process.stderr:
            log.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("message") == "serving":
                # Keep draining so the process never blocks on a full pipe.
                threading.Thread(target=lambda: [None for _ in self.process.stderr], daemon=True).start()
                return entry["http_addr"], entry["grpc_addr"]
        raise RuntimeError("realtime-gateway exited before serving:\n" + "".join(log))

    def api(self) -> "Api":
        return Api(self.grpc)

    def kill(self):
        """SIGKILL: no goodbye to clients."""
        self.process.kill()
        self.process.wait()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.dir.cleanup()


def cluster(count: int) -> list[Gateway]:
    prefix = f"e2e:{uuid.uuid4().hex}:"
    return [Gateway(redis_prefix=prefix) for _ in range(count)]


class Api:
    """The gRPC server API with the admin key."""

    def __init__(self, address: str):
        self.channel = grpc.insecure_channel(address)
        self.stub = pb_grpc.RealtimeServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {ADMIN_KEY}"),)

    def publish(self, channel: str, data, idempotency_key: str = "") -> pb.PublishResponse:
        value = json_value(data)
        request = pb.PublishRequest(channel=channel, data=value, idempotency_key=idempotency_key)
        return self.stub.Publish(request, metadata=self.metadata, timeout=10)

    def publish_event(self, channel: str, event) -> pb.PublishResponse:
        return self.stub.Publish(pb.PublishRequest(channel=channel, event=event), metadata=self.metadata, timeout=10)


def json_value(data):
    from google.protobuf import json_format, struct_pb2

    value = struct_pb2.Value()
    json_format.Parse(json.dumps(data), value)
    return value


def token(user: str, channels=(), seconds: int = 300, **claims) -> str:
    """An HS256 connection token, signed with the suite's secret."""

    def part(obj) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    body = {"sub": user, "exp": int(time.time()) + seconds, "channels": list(channels), **claims}
    signing_input = part({"alg": "HS256", "typ": "JWT"}) + "." + part(body)
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


class Client:
    """The JSON protocol over a `websockets` connection: commands with ids, replies matched
    to them, pushes queued in arrival order, server pings answered."""

    def __init__(self, socket):
        self.socket = socket
        self.next_id = 1
        self.pending: list[dict] = []

    @classmethod
    async def open(cls, url: str, token_text: str | None = None) -> "Client":
        client = cls(await websockets.connect(url))
        reply = await client.command("connect", {"token": token_text} if token_text else {})
        assert "connect" in reply, reply
        return client

    async def command(self, method: str, body: dict) -> dict:
        command_id = self.next_id
        self.next_id += 1
        await self.socket.send(json.dumps({"id": command_id, method: body}))
        while True:
            for index, message in enumerate(self.pending):
                if message.get("id") == command_id:
                    return self.pending.pop(index)
            await self._fill()

    async def push(self, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for index, message in enumerate(self.pending):
                if "push" in message:
                    return self.pending.pop(index)["push"]
            await self._fill(max(0.01, deadline - time.monotonic()))

    async def _fill(self, timeout: float = 10):
        import asyncio

        frame = await asyncio.wait_for(self.socket.recv(), timeout)
        for line in frame.split("\n"):
            message = json.loads(line)
            if "ping" in message:
                await self.socket.send('{"pong":{}}')
                continue
            self.pending.append(message)

    async def cut(self):
        """Drops the TCP connection without a close handshake, as a lost mobile link does."""
        self.socket.transport.abort()
