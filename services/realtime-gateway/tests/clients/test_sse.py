"""SSE from a plain HTTP client: events with resumable ids and Last-Event-ID recovery."""

from __future__ import annotations

import http.client
import json


def events(gateway, path: str, headers=None):
    """Opens the stream now (so it is subscribed before anything is published) and returns
    its events as an iterator."""
    host, port = gateway.http.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    assert response.status == 200, response.read()
    return read_events(response)


def read_events(response):
    event = {}
    while True:
        line = response.readline().decode().rstrip("\n")
        if line == "":
            if "data" in event:
                yield event
            event = {}
            continue
        field, _, value = line.partition(": ")
        event[field] = value


def test_sse_resumes_with_last_event_id(gateway):
    api = gateway.api()
    stream = events(gateway, "/realtime/sse?channel=product:sse-py")
    api.publish("product:sse-py", "first")
    first = next(stream)
    assert json.loads(first["data"])["pub"]["data"] == "first"
    api.publish("product:sse-py", "second")
    api.publish("product:sse-py", "third")
    resumed = events(gateway, "/realtime/sse?channel=product:sse-py", {"Last-Event-ID": first["id"]})
    assert [json.loads(next(resumed)["data"])["pub"]["data"] for _ in range(2)] == ["second", "third"]
