"""Differential check: flag-service (through the unmodified Python flagd provider in RPC mode,
flagd.evaluation.v2) against OpenFeature's JS flagd evaluator (@openfeature/flagd-core, the
engine of the JS in-process provider; fractional bucketing v2 like flagd) on the same flag
files and the same seeded random contexts. Value, variant, reason and error code must agree.

FLAG_E2E_CONTEXTS (default 300) contexts per file; FLAG_E2E_SEED changes the seed. Every
mismatch is written to target/e2e/differential-<file>.json and summarised in the failure.

Differences with a known cause are tallied instead of failing, each under a rule in
harness/divergences.py: where the JS evaluator departs from flagd (REFERENCE rules) and where
flag-service would (SERVER rules; none at present). Any other difference fails the test."""

from __future__ import annotations

import collections
import json
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from openfeature.evaluation_context import EvaluationContext

from harness import divergences, jsref, report, testbed
from harness.contexts import ContextGenerator
from harness.providers import connect
from harness.server import FlagService

HERE = Path(__file__).parent
FILES = {
    "flags/testkit-flags.json": testbed.evaluator_flags,
    "flags/rich-targeting.json": lambda: HERE / "flags/rich-targeting.json",
    "flags/rich-fractional.json": lambda: HERE / "flags/rich-fractional.json",
}
CONTEXTS = int(os.environ.get("FLAG_E2E_CONTEXTS", "300"))
SEED = int(os.environ.get("FLAG_E2E_SEED", "20261121"))


DEFAULTS = {"boolean": False, "string": "caller-default", "integer": -1, "float": -1.5, "object": {"caller": "default"}}
WRONG_TYPE = {"boolean": "string", "string": "integer", "integer": "boolean", "float": "string", "object": "boolean"}


def flag_types(flag: dict, rng: random.Random) -> str:
    values = list(flag.get("variants", {}).values())
    if values and all(isinstance(v, bool) for v in values):
        kind = "boolean"
    elif values and all(isinstance(v, str) for v in values):
        kind = "string"
    elif values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        integral = all(float(v).is_integer() for v in values)
        kind = rng.choice(["integer", "float"]) if integral else "float"
    elif values and all(isinstance(v, dict) for v in values):
        kind = "object"
    else:
        kind = "string"
    if rng.random() < 0.03:
        kind = WRONG_TYPE[kind]
    return kind


def normalise(value):
    """JSON-ish equality: numbers compare by value (a Struct carries every number as a double),
    booleans never equal numbers."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return ("number", float(value))
    if isinstance(value, dict):
        return {key: normalise(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(item) for item in value]
    return repr(value)


def as_sent(context: dict) -> dict:
    """The context flag-service receives from the Python provider: the SDK keeps a targeting
    key only when it is truthy (EvaluationContext.merge uses `or`), and the provider always
    sends `targetingKey`, null when there is none."""
    sent = dict(context)
    sent["targetingKey"] = context.get("targetingKey") or None
    return sent


def via_provider(client, request: dict) -> dict:
    context = dict(request["context"])
    targeting_key = context.pop("targetingKey", None)
    result = getattr(client, f"get_{request['type']}_details")(
        request["flag"], request["default"], EvaluationContext(targeting_key, context)
    )
    return {
        "value": result.value,
        "variant": result.variant,
        "reason": result.reason,
        "errorCode": result.error_code.value if result.error_code else None,
    }


@pytest.fixture(scope="module")
def differential_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("differential")
    for relative, source in FILES.items():
        (workdir / relative).parent.mkdir(parents=True, exist_ok=True)
        (workdir / relative).write_bytes(source().read_bytes())
    service = FlagService(workdir, list(FILES), name="differential")
    service.start()
    yield service
    service.close()


@pytest.mark.parametrize("relative", list(FILES))
def test_flag_service_agrees_with_the_js_flagd_evaluator(differential_server, relative):
    path = differential_server.path(relative)
    document = json.loads(path.read_text(encoding="utf-8"))
    rng = random.Random(f"{SEED}:{relative}")
    generator = ContextGenerator(document, seed=rng.randrange(2**32))
    contexts = generator.contexts(CONTEXTS)
    requests = []
    for context in contexts:
        for key, flag in document["flags"].items():
            kind = flag_types(flag, rng)
            requests.append(
                {"file": str(path), "flag": key, "type": kind, "default": DEFAULTS[kind], "context": as_sent(context)}
            )

    reference = jsref.evaluate(requests)
    client, _ = connect("rpc", differential_server.grpc_port, selector=f"source={relative}", deadline_ms=10000)
    with ThreadPoolExecutor(max_workers=16) as pool:
        served = list(pool.map(lambda request: via_provider(client, request), requests))

    evaluators = document.get("$evaluators", {})
    mismatches = []
    reasons = collections.Counter()
    explained = collections.Counter()
    for request, got, expected in zip(requests, served, reference):
        reasons[got["reason"] if not got["errorCode"] else f"ERROR:{got['errorCode']}"] += 1
        same = (normalise(got["value"]), got["variant"], got["reason"], got["errorCode"]) == (
            normalise(expected["value"]),
            expected["variant"],
            expected["reason"],
            expected["errorCode"],
        )
        if same:
            continue
        rule = divergences.classify(document["flags"][request["flag"]], evaluators, request["context"], expected)
        if rule is not None:
            explained[rule.name] += 1
            continue
        mismatches.append({"flag": request["flag"], "type": request["type"], "context": request["context"],
                           "flag-service": got, "js-flagd-core": expected})

    name = Path(relative).stem
    report.note(
        f"differential {name}: {len(requests)} evaluations ({len(contexts)} contexts x {len(document['flags'])} flags), "
        f"{len(mismatches)} mismatches, outcomes {dict(sorted(reasons.items()))}"
        + (f"; explained differences {dict(sorted(explained.items()))}" if explained else "")
    )
    out = Path(os.environ.get("FLAG_E2E_REPORT", str(differential_server.workdir / "report.json"))).with_name(
        f"differential-{name}.json"
    )
    out.write_text(json.dumps(mismatches, indent=2), encoding="utf-8")
    if mismatches:
        by_flag = collections.Counter(m["flag"] for m in mismatches)
        examples = []
        for flag in by_flag:
            first = next(m for m in mismatches if m["flag"] == flag)
            examples.append(json.dumps(first, sort_keys=True))
        pytest.fail(
            f"{len(mismatches)} of {len(requests)} evaluations differ (all in {out}); per flag {dict(by_flag)}; "
            "first of each:\n" + "\n".join(examples),
            pytrace=False,
        )
