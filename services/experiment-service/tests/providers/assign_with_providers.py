"""Evaluates one flag for every unit of a case file with the unmodified Python flagd provider,
in RPC mode and in in-process mode, against a running flag-service, and compares each served
variant with the one experiment-service's `Assign` gave (scripts/experiment-assignment-e2e.sh).

    assign_with_providers.py CASES.json

CASES.json: {"port": flagd gRPC port, "selector": SDK key, "flag": key,
             "cases": [{"context": {"targetingKey": ..., ...}, "variant": expected}, ...]}

Prints one line per mode; exits 1 when any unit differs or an evaluation fails."""

from __future__ import annotations

import json
import sys

from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import CacheType, ResolverType
from openfeature.evaluation_context import EvaluationContext

MODES = {"rpc": ResolverType.RPC, "in-process": ResolverType.IN_PROCESS}


def provider(mode: str, port: int, selector: str) -> FlagdProvider:
    settings = dict(
        resolver_type=MODES[mode],
        host="127.0.0.1",
        port=port,
        tls=False,
        selector=selector,
        deadline_ms=5000,
        stream_deadline_ms=0,
        retry_backoff_ms=1000,
        retry_backoff_max_ms=1000,
        retry_grace_period=2,
    )
    if mode == "rpc":
        settings["cache"] = CacheType.DISABLED
    return FlagdProvider(**settings)


def differences(mode: str, spec: dict) -> list[str]:
    api.set_provider_and_wait(provider(mode, spec["port"], spec["selector"]), mode)
    client = api.get_client(mode)
    out = []
    for case in spec["cases"]:
        attributes = dict(case["context"])
        key = attributes.pop("targetingKey")
        details = client.get_string_details(spec["flag"], "unresolved", EvaluationContext(key, attributes))
        if details.error_code is not None or details.variant != case["variant"]:
            out.append(
                f"{key} {attributes}: {mode} served {details.variant!r} "
                f"({details.error_code} {details.error_message}), Assign {case['variant']!r}"
            )
    api.shutdown()
    return out


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as file:
        spec = json.load(file)
    failed = False
    for mode in MODES:
        found = differences(mode, spec)
        print(f"{mode}: {len(spec['cases'])} units, {len(found)} differ from Assign")
        for line in found[:20]:
            print(f"  {line}")
        failed = failed or bool(found)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
