"""OFREP over plain HTTP (requests), as an OFREP provider would speak it to flag-service."""

from __future__ import annotations

import json

import pytest
import requests

from conftest import SELECTOR

TEMPLATE = {"showImages": True, "title": "Check out these pics!", "imagesPerPage": 100}


def post(server, path: str, body, headers: dict | None = None) -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(
        f"{server.http_url}/ofrep/v1/evaluate/flags{path}",
        data=data,
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=10,
    )


@pytest.mark.parametrize(
    "key, context, expected",
    [
        ("boolean-flag", {}, {"value": True, "variant": "on", "reason": "STATIC"}),
        ("integer-flag", {}, {"value": 10, "variant": "ten", "reason": "STATIC"}),
        ("float-flag", {}, {"value": 0.5, "variant": "half", "reason": "STATIC"}),
        ("object-flag", {}, {"value": TEMPLATE, "variant": "template", "reason": "STATIC"}),
        ("tier-string", {"email": "ada@example.com"}, {"value": "label-silver", "variant": "silver", "reason": "TARGETING_MATCH"}),
        ("tier-string", {"email": "ada@example.org"}, {"value": "label-bronze", "variant": "bronze", "reason": "DEFAULT"}),
        ("tier-integer", {"age": 21}, {"value": 1000, "variant": "high", "reason": "TARGETING_MATCH"}),
        # The caller's default applies: no value, no variant.
        ("null-default-flag", {}, {"reason": "DEFAULT"}),
        ("disabled-boolean-flag", {}, {"reason": "DISABLED"}),
    ],
)
def test_single_flag(provider_server, key, context, expected):
    response = post(provider_server, f"/{key}", {"context": {"targetingKey": "user-1", **context}})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert {k: v for k, v in body.items() if k != "metadata"} == {"key": key, **expected}
    assert isinstance(body.get("metadata"), dict)


def test_single_flag_metadata_merges_set_and_flag_metadata(provider_server):
    body = post(provider_server, "/tier-boolean", {"context": {"targetingKey": "u", "tier": "gold"}}).json()
    assert body["metadata"] == {
        "flagSetId": "e2e-set",
        "version": "7",
        "owner": "team-e2e",
        "rank": 3,
        "ratio": 0.25,
        "critical": True,
    }


def test_unknown_flag_is_404_flag_not_found(provider_server):
    response = post(provider_server, "/no-such-flag", {"context": {"targetingKey": "u"}})
    assert response.status_code == 404
    body = response.json()
    assert body["key"] == "no-such-flag"
    assert body["errorCode"] == "FLAG_NOT_FOUND"
    assert body.get("errorDetails")
    assert "value" not in body


@pytest.mark.parametrize("path", ["/boolean-flag", ""])
@pytest.mark.parametrize("body", [b"{not json", b'{"context": ', b"\xff\xfe"])
def test_malformed_body_is_400_invalid_context(provider_server, path, body):
    response = post(provider_server, path, body)
    assert response.status_code == 400, response.text
    assert response.json()["errorCode"] == "INVALID_CONTEXT"


def test_context_that_is_not_an_object_is_400_invalid_context(provider_server):
    response = post(provider_server, "/boolean-flag", {"context": ["a", "b"]})
    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_CONTEXT"


@pytest.mark.parametrize("path", ["/boolean-flag", ""])
def test_oversized_body_is_413(provider_server, path):
    # Above the default limit (limits.max_request_bytes = 4 MiB).
    padding = "x" * (5 * 1024 * 1024)
    response = post(provider_server, path, json.dumps({"context": {"targetingKey": "u", "padding": padding}}))
    assert response.status_code == 413, response.text[:200]


def test_bulk_evaluates_every_flag_with_etag(provider_server):
    context = {"context": {"targetingKey": "user-1", "tier": "gold"}}
    response = post(provider_server, "", context)
    assert response.status_code == 200, response.text
    etag = response.headers.get("ETag")
    assert etag, response.headers
    flags = {item["key"]: item for item in response.json()["flags"]}
    assert flags["boolean-flag"] == {"key": "boolean-flag", "value": True, "variant": "on", "reason": "STATIC", "metadata": {}}
    assert flags["tier-object"]["value"] == {"seats": 10, "features": ["a", "b"], "limits": {"rps": 100}}
    assert flags["tier-object"]["reason"] == "TARGETING_MATCH"
    # Disabled flags and flags without a default variant are listed without a value.
    assert flags["disabled-string-flag"]["reason"] == "DISABLED" and "value" not in flags["disabled-string-flag"]
    assert flags["null-default-flag"]["reason"] == "DEFAULT" and "value" not in flags["null-default-flag"]
    # Later files override earlier ones: cross-flagset-flag is enabled in selector-flags.json.
    assert flags["cross-flagset-flag"]["reason"] == "STATIC"

    # Same context and definitions: 304 with no body.
    again = post(provider_server, "", context, {"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    # Another context: a full answer with another ETag.
    other = post(provider_server, "", {"context": {"targetingKey": "user-1", "tier": "silver"}}, {"If-None-Match": etag})
    assert other.status_code == 200
    assert other.headers["ETag"] != etag
    # Changed definitions: the old ETag no longer matches.
    value, _ = provider_server.flip_changing_flag()
    provider_server.wait_for_value("changing-flag", value)
    changed = post(provider_server, "", context, {"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert {item["key"]: item for item in changed.json()["flags"]}["changing-flag"]["value"] == value


def test_bulk_with_selector_header(provider_server):
    response = post(provider_server, "", {"context": {"targetingKey": "u"}}, {"Flagd-Selector": f"source={SELECTOR}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(item["key"] for item in body["flags"]) == ["cross-flagset-flag", "selector-flag"]
    assert body["metadata"] == {"source": SELECTOR}


def test_single_with_selector_header(provider_server):
    headers = {"Flagd-Selector": "flagSetId=selector-set"}
    found = post(provider_server, "/selector-flag", {"context": {}}, headers)
    assert found.status_code == 200
    assert found.json()["value"] == "foo"
    assert found.json()["metadata"]["flagSetId"] == "selector-set"
    missing = post(provider_server, "/boolean-flag", {"context": {}}, headers)
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == "FLAG_NOT_FOUND"


def test_invalid_selector_is_400(provider_server):
    response = post(provider_server, "/boolean-flag", {"context": {}}, {"Flagd-Selector": "project=x"})
    assert response.status_code == 400
    assert response.json()["errorCode"] == "GENERAL"
