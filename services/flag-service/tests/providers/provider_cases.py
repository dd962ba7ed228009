"""What the Python flagd provider must see from flag-service in both of its server modes.

`test_rpc_provider.py` (flagd.evaluation.v2) and `test_in_process_provider.py` (flagd.sync.v1)
subclass `ProviderCases` with their mode; each adds the checks only its mode can make."""

from __future__ import annotations

import time

import pytest
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode

from conftest import CHANGING, DISABLED, SELECTOR
from harness import report
from harness.providers import connect

TEMPLATE = {"showImages": True, "title": "Check out these pics!", "imagesPerPage": 100}
PRO = {"seats": 10, "features": ["a", "b"], "limits": {"rps": 100}}
TARGETING_KEY = "5c3d8535-f81a-4478-a6d3-afaa4d51199e"

# (flag, type, caller default, context attributes, value, variant, reason)
EVALUATIONS = [
    # STATIC: a default variant and no targeting.
    ("boolean-flag", "boolean", False, {}, True, "on", "STATIC"),
    ("string-flag", "string", "bye", {}, "hi", "greeting", "STATIC"),
    ("integer-flag", "integer", 1, {}, 10, "ten", "STATIC"),
    ("float-flag", "float", 0.1, {}, 0.5, "half", "STATIC"),
    ("object-flag", "object", {}, {}, TEMPLATE, "template", "STATIC"),
    # TARGETING_MATCH: targeting picked a variant; DEFAULT: targeting returned null.
    ("tier-boolean", "boolean", False, {"tier": "gold"}, True, "on", "TARGETING_MATCH"),
    ("tier-boolean", "boolean", True, {"tier": "silver"}, False, "off", "DEFAULT"),
    ("tier-string", "string", "x", {"email": "ada@example.com"}, "label-silver", "silver", "TARGETING_MATCH"),
    ("tier-string", "string", "x", {"email": "ada@example.org"}, "label-bronze", "bronze", "DEFAULT"),
    ("tier-integer", "integer", 0, {"age": 30}, 1000, "high", "TARGETING_MATCH"),
    ("tier-integer", "integer", 0, {"age": 12}, 1, "low", "DEFAULT"),
    ("tier-float", "float", 0.0, {"app": {"version": "2.1.0"}}, 2.5, "big", "TARGETING_MATCH"),
    ("tier-float", "float", 0.0, {"app": {"version": "1.9.9"}}, 0.25, "small", "DEFAULT"),
    ("tier-object", "object", {}, {"tier": "gold"}, PRO, "pro", "TARGETING_MATCH"),
    ("targeting-key-flag", "string", "x", {"targetingKey": TARGETING_KEY}, "hit", "hit", "TARGETING_MATCH"),
    ("targeting-key-flag", "string", "x", {"targetingKey": "someone-else"}, "miss", "miss", "DEFAULT"),
    # No default variant: the caller's default, reason DEFAULT, no variant.
    ("null-default-flag", "boolean", True, {}, True, None, "DEFAULT"),
    ("null-default-flag", "boolean", False, {}, False, None, "DEFAULT"),
    ("undefined-default-flag", "integer", 100, {}, 100, None, "DEFAULT"),
    ("tier-no-default", "string", "mine", {"tier": "bronze"}, "mine", None, "DEFAULT"),
    ("tier-no-default", "string", "mine", {"tier": "gold"}, "label-gold", "gold", "TARGETING_MATCH"),
    # Disabled: the caller's default, reason DISABLED, no variant.
    ("disabled-boolean-flag", "boolean", False, {}, False, None, "DISABLED"),
    ("disabled-string-flag", "string", "bye", {}, "bye", None, "DISABLED"),
    ("disabled-integer-flag", "integer", 1, {}, 1, None, "DISABLED"),
    ("disabled-float-flag", "float", 0.1, {}, 0.1, None, "DISABLED"),
    ("disabled-object-flag", "object", {"x": 1}, {}, {"x": 1}, None, "DISABLED"),
]

# (flag, type, caller default, error code)
ERRORS = [
    ("no-such-flag", "boolean", True, ErrorCode.FLAG_NOT_FOUND),
    ("no-such-flag", "object", {"a": 1}, ErrorCode.FLAG_NOT_FOUND),
    ("boolean-flag", "string", "caller", ErrorCode.TYPE_MISMATCH),
    ("string-flag", "integer", 7, ErrorCode.TYPE_MISMATCH),
    ("integer-flag", "boolean", True, ErrorCode.TYPE_MISMATCH),
    ("object-flag", "string", "caller", ErrorCode.TYPE_MISMATCH),
    ("float-flag", "object", {"a": 1}, ErrorCode.TYPE_MISMATCH),
]


def details(client, flag_type: str, key: str, default, attributes: dict | None = None):
    attributes = dict(attributes or {})
    targeting_key = attributes.pop("targetingKey", "user-1")
    context = EvaluationContext(targeting_key, attributes)
    return getattr(client, f"get_{flag_type}_details")(key, default, context)


class ProviderCases:
    mode: str

    def connect(self, server, **options):
        return connect(self.mode, server.grpc_port, **options)

    @pytest.mark.parametrize("case", EVALUATIONS, ids=[f"{c[0]}:{c[6]}:{i}" for i, c in enumerate(EVALUATIONS)])
    def test_evaluation(self, provider_server, case):
        key, flag_type, default, attributes, value, variant, reason = case
        client, _ = self.connect(provider_server)
        result = details(client, flag_type, key, default, attributes)
        assert (result.value, result.variant, result.reason, result.error_code) == (value, variant, reason, None), (
            result
        )

    @pytest.mark.parametrize("case", ERRORS, ids=[f"{c[0]}:{c[1]}:{c[3].value}" for c in ERRORS])
    def test_error(self, provider_server, case):
        key, flag_type, default, code = case
        client, _ = self.connect(provider_server)
        result = details(client, flag_type, key, default)
        assert (result.value, result.reason, result.error_code) == (default, "ERROR", code), result

    def test_change_event_names_the_changed_flag(self, provider_server):
        """Rewrites flags/changing.json (temp file + rename) five times; each time the provider
        must emit PROVIDER_CONFIGURATION_CHANGED naming exactly `changing-flag`, and then
        evaluate the new value. The time from rename to handler is recorded."""
        client, log = self.connect(provider_server, events=("change",))
        time.sleep(0.2)  # let events of the provider's own start-up pass
        for _ in range(5):
            mark = log.mark()
            value, renamed_at = provider_server.flip_changing_flag()
            event = log.wait("change", after=mark, timeout=10)
            assert event.details.flags_changed == ["changing-flag"], event.details
            assert event.at > renamed_at
            report.latency(f"{self.mode}: file rename -> PROVIDER_CONFIGURATION_CHANGED", event.at - renamed_at)
            result = client.get_string_details("changing-flag", "x")
            assert (result.value, result.variant, result.reason) == (value, value, "STATIC")
            time.sleep(0.1)

    @pytest.mark.parametrize("selector", [SELECTOR, f"source={SELECTOR}", "flagSetId=selector-set"])
    def test_selector_limits_flags_to_one_source(self, provider_server, selector):
        client, _ = self.connect(provider_server, selector=selector)
        selected = details(client, "string", "selector-flag", "x")
        assert (selected.value, selected.variant, selected.reason) == ("foo", "foo", "STATIC")
        cross = details(client, "boolean", "cross-flagset-flag", False)
        assert (cross.value, cross.variant, cross.reason) == (True, "on", "STATIC")
        outside = details(client, "boolean", "boolean-flag", False)
        assert (outside.value, outside.reason, outside.error_code) == (False, "ERROR", ErrorCode.FLAG_NOT_FOUND)

    def test_selector_picks_the_disabled_copy_of_a_flag(self, provider_server):
        """`cross-flagset-flag` is DISABLED in disabled-flags.json and enabled in the later
        selector-flags.json: without a selector the later file wins, with one the chosen file."""
        everything, _ = self.connect(provider_server)
        result = details(everything, "boolean", "cross-flagset-flag", False)
        assert (result.value, result.variant, result.reason) == (True, "on", "STATIC")
        disabled, _ = self.connect(provider_server, selector=f"source={DISABLED}")
        result = details(disabled, "boolean", "cross-flagset-flag", False)
        assert (result.value, result.variant, result.reason) == (False, None, "DISABLED")

    def test_change_events_follow_the_selector(self, provider_server):
        """A provider whose selector excludes flags/changing.json hears nothing when it
        changes; one that selects it hears the change."""
        other, other_log = self.connect(provider_server, selector=f"source={SELECTOR}", events=("change",))
        mine, my_log = self.connect(provider_server, selector=f"source={CHANGING}", events=("change",))
        time.sleep(0.2)
        other_mark, my_mark = other_log.mark(), my_log.mark()
        value, renamed_at = provider_server.flip_changing_flag()
        event = my_log.wait("change", after=my_mark, timeout=10)
        assert event.details.flags_changed == ["changing-flag"]
        report.latency(f"{self.mode}: file rename -> PROVIDER_CONFIGURATION_CHANGED", event.at - renamed_at)
        assert mine.get_string_value("changing-flag", "x") == value
        time.sleep(1.5)
        unexpected = [e.details.flags_changed for e in other_log.events[other_mark:]]
        assert unexpected == [], f"a provider selecting {SELECTOR} was told about {unexpected}"
