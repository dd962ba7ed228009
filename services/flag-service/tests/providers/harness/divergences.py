"""Why flag-service and the JS reference may legitimately answer differently.

Each rule looks at one (flag, context) pair and says whether a known behaviour difference
applies. `REFERENCE` rules are places where @openfeature/flagd-core 4.0.1 departs from flagd
v0.16.1 (Go, diegoholiveira/jsonlogic v3.9.1), which flag-service follows. `SERVER` rules
would be places where flag-service departs from flagd; there are none (the ones the check found
were fixed and are kept fixed by test_flagd_edge_cases.py). Anything else fails the test."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

MISSING = object()


def resolve_refs(node, evaluators: dict, depth: int = 0):
    if depth > 20:
        return node
    if isinstance(node, dict):
        if set(node) == {"$ref"} and node["$ref"] in evaluators:
            return resolve_refs(evaluators[node["$ref"]], evaluators, depth + 1)
        return {key: resolve_refs(value, evaluators, depth) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve_refs(item, evaluators, depth) for item in node]
    return node


def operations(node):
    """Every (operator, arguments) in a rule."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from operations(value)
    elif isinstance(node, list):
        for item in node:
            yield from operations(item)


def var_path(node) -> str | None:
    if isinstance(node, dict) and set(node) == {"var"}:
        target = node["var"][0] if isinstance(node["var"], list) and node["var"] else node["var"]
        return target if isinstance(target, str) else None
    return None


def lookup(context: dict, path: str):
    node = context
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def arguments(args) -> list:
    return args if isinstance(args, list) else [args]


# --- flagd's sem_ver: golang.org/x/mod/semver after prefixing "v" --------------------------------
GO_SEMVER = re.compile(
    r"^v(0|[1-9]\d*)(?:\.(0|[1-9]\d*)(?:\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?)?)?$"
)


def go_version(value):
    text = value if isinstance(value, str) else (None if value is None or value is MISSING else str(value))
    if text is None:
        return None
    if not text.startswith("v"):
        text = "v" + (text[1:] if text.startswith("V") else text)
    match = GO_SEMVER.match(text)
    if not match:
        return None
    major, minor, patch, pre, _ = match.groups()
    return int(major), int(minor or 0), int(patch or 0), (pre or "")[1:]


def go_less(left, right) -> bool:
    if left[:3] != right[:3]:
        return left[:3] < right[:3]
    if not left[3] or not right[3]:
        return bool(left[3]) and not right[3]
    a, b = left[3].split("."), right[3].split(".")
    for x, y in zip(a, b):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return int(x) < int(y)
        if x.isdigit() != y.isdigit():
            return x.isdigit()
        return x < y
    return len(a) < len(b)


@dataclass(frozen=True)
class Rule:
    name: str
    why: str
    applies: Callable[[dict, dict, dict], bool]  # (resolved targeting, context as sent, reference answer)


def _js_threw(rule, context, reference) -> bool:
    return reference.get("errorCode") == "GENERAL" and str(reference.get("errorMessage") or "").startswith(
        "Error evaluating targeting rule"
    )


def _cat_with_null(rule, context, reference) -> bool:
    return any(
        op == "cat" and any((p := var_path(arg)) and lookup(context, p) in (None, MISSING) for arg in arguments(args))
        for op, args in operations(rule)
    )


def _fractional_null_key(rule, context, reference) -> bool:
    key = context.get("targetingKey")
    if not isinstance(key, str) or not key:
        return False
    for op, args in operations(rule):
        if op == "fractional" and isinstance(args, list) and args and not isinstance(args[0], list):
            path = var_path(args[0])
            if path and lookup(context, path) in (None, MISSING):
                return True
    return False


def _missing_null(rule, context, reference) -> bool:
    return any(
        op == "missing" and any(isinstance(p, str) and lookup(context, p) is None for p in arguments(args))
        for op, args in operations(rule)
    )


def _semver_values(rule, context):
    for op, args in operations(rule):
        if op == "sem_ver" and isinstance(args, list) and args:
            path = var_path(args[0])
            if path:
                yield lookup(context, path)


def _semver_whitespace(rule, context, reference) -> bool:
    return any(isinstance(value, str) and value != value.strip() for value in _semver_values(rule, context))


def _semver_structured(rule, context, reference) -> bool:
    return any(isinstance(value, (list, dict)) for value in _semver_values(rule, context))


REFERENCE = [
    Rule(
        "js-engine-throws",
        "json-logic-engine (under @openfeature/flagd-core) throws on operands of mixed types (false == \"DE\", "
        "\"x\" < 13, arithmetic on strings) and flagd-core answers GENERAL; flagd's Go JsonLogic coerces like "
        "JavaScript and never fails there, and neither does flag-service",
        _js_threw,
    ),
    Rule(
        "cat-null",
        "`cat` of a null/missing value: flagd (jsonlogic ToString(nil)) writes \"\", flagd-core writes \"null\"",
        _cat_with_null,
    ),
    Rule(
        "fractional-null-bucket-key",
        "`fractional` whose bucketing expression is null while the context has a targeting key: flagd "
        "(fractional.go) drops the null and buckets on flagKey+targetingKey, flagd-core returns null",
        _fractional_null_key,
    ),
    Rule(
        "missing-null",
        "`missing` on a key whose value is null: flagd (jsonlogic getVar == nil) counts it as missing, "
        "flagd-core does not",
        _missing_null,
    ),
    Rule(
        "semver-whitespace",
        "a version with surrounding whitespace (\"1.0.0 \"): node-semver trims it, flagd (x/mod/semver) rejects "
        "it and sem_ver yields null",
        _semver_whitespace,
    ),
    Rule(
        "semver-structured-value",
        "sem_ver on an array: flagd-core uses JavaScript's String() ([\"2.0.0\"] -> \"2.0.0\", a version), "
        "flagd formats it with %v (\"[2.0.0]\", not a version) and sem_ver yields null",
        _semver_structured,
    ),
]


# flag-service behaviours that differ from flagd; none at present (F1-F5 were fixed, and
# test_flagd_edge_cases.py keeps them fixed).
SERVER: list[Rule] = []


def classify(flag: dict, evaluators: dict, context: dict, reference: dict) -> Rule | None:
    rule = resolve_refs(flag.get("targeting"), evaluators)
    for candidate in SERVER + REFERENCE:
        if candidate.applies(rule, context, reference):
            return candidate
    return None
