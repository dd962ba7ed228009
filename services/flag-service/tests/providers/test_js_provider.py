"""The JS flagd provider (@openfeature/flagd-provider 0.16.1 on @openfeature/server-sdk, on
@grpc/grpc-js) against flag-service in RPC (flagd.evaluation.v2) and in-process
(flagd.sync.v1) mode: the same evaluations as the Python provider, and change events."""

from __future__ import annotations

import pytest

from conftest import CHANGING, SELECTOR
from harness import flagsets, jsref, report
from provider_cases import ERRORS, EVALUATIONS

MODES = ["rpc", "in-process"]


def request(flag: str, kind: str, default, attributes: dict) -> dict:
    context = dict(attributes)
    context.setdefault("targetingKey", "user-1")
    return {"flag": flag, "type": kind, "default": default, "context": context}


@pytest.mark.parametrize("mode", MODES)
def test_evaluations_and_errors(provider_server, mode):
    requests = [request(key, kind, default, attrs) for key, kind, default, attrs, *_ in EVALUATIONS]
    requests += [request(key, kind, default, {}) for key, kind, default, _ in ERRORS]
    answers = jsref.provider_check(
        {"host": "127.0.0.1", "port": provider_server.grpc_port, "mode": mode, "evaluations": requests}
    )["evaluations"]
    problems = []
    for case, answer in zip(EVALUATIONS, answers[: len(EVALUATIONS)]):
        key, _, _, attrs, value, variant, reason = case
        got = (answer["value"], answer["variant"], answer["reason"], answer["errorCode"])
        if got != (value, variant, reason, None):
            problems.append(f"{key} {attrs}: expected {(value, variant, reason, None)}, got {got}")
    for case, answer in zip(ERRORS, answers[len(EVALUATIONS) :]):
        key, kind, default, code = case
        got = (answer["value"], answer["reason"], answer["errorCode"])
        if got != (default, "ERROR", code.value):
            problems.append(f"{key} as {kind}: expected {(default, 'ERROR', code.value)}, got {got}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("mode", MODES)
def test_selector(provider_server, mode):
    answers = jsref.provider_check(
        {
            "host": "127.0.0.1",
            "port": provider_server.grpc_port,
            "mode": mode,
            "selector": f"source={SELECTOR}",
            "evaluations": [
                request("selector-flag", "string", "x", {}),
                request("cross-flagset-flag", "boolean", False, {}),
                request("boolean-flag", "boolean", False, {}),
            ],
        }
    )["evaluations"]
    assert [(a["value"], a["reason"], a["errorCode"]) for a in answers] == [
        ("foo", "STATIC", None),
        (True, "STATIC", None),
        (False, "ERROR", "FLAG_NOT_FOUND"),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_change_events(provider_server, mode):
    defaults = []
    current = provider_server.changing_default
    for _ in range(3):
        current = "bar" if current == "foo" else "foo"
        defaults.append(current)
    result = jsref.provider_check(
        {
            "host": "127.0.0.1",
            "port": provider_server.grpc_port,
            "mode": mode,
            "change": {
                "path": str(provider_server.path(CHANGING)),
                "documents": [flagsets.changing(d) for d in defaults],
                "flag": "changing-flag",
            },
        }
    )
    provider_server.changing_default = defaults[-1]
    changes = result["changes"]
    assert [c["flagsChanged"] for c in changes] == [["changing-flag"]] * 3, changes
    assert [c["valueAfter"] for c in changes] == defaults
    for change in changes:
        report.latency(f"js {mode}: file rename -> PROVIDER_CONFIGURATION_CHANGED", change["latencyMs"] / 1000)
