"""Step definitions for the flagd-testbed provider scenarios (gherkin/*.feature), written for
this suite: the Python flagd provider against flag-service started by harness/launchpad.py.
Registered as a pytest plugin by conftest.py."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

import pytest
from openfeature import api
from openfeature.contrib.provider.flagd.config import CacheType
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider import ProviderStatus
from pytest_bdd import given, parsers, then, when

from harness import providers
from harness.launchpad import Launchpad, unused_port
from harness.providers import EventLog

# Provider configurations of the "a <kind> flagd provider" step: launchpad config and options.
PROVIDER_KINDS = {
    "stable": "default",
    "syncpayload": "sync-payload",
    "metadata": "metadata",
}
EVENT_TIMEOUT = 30.0


def typed(kind: str, text: str):
    if kind == "Boolean":
        return text.strip().lower() == "true"
    if kind == "Integer":
        return int(text)
    if kind == "Float":
        return float(text)
    if kind == "Object":
        return json.loads(text)
    if kind == "CacheType":
        return CacheType(text.lower())
    if kind == "StringList":
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass
class Scenario:
    mode: str
    launchpad: Launchpad
    options: dict = field(default_factory=dict)
    client: object = None
    flag: tuple | None = None  # (key, type, default)
    targeting_key: str | None = None
    attributes: dict = field(default_factory=dict)
    details: object = None
    events: EventLog = field(default_factory=EventLog)
    consumed: set = field(default_factory=set)
    last_event: object = None
    mark: int = 0

    def take(self, kind: str, timeout: float):
        """The oldest event of `kind` not yet taken (waiting up to `timeout`)."""
        deadline = time.monotonic() + timeout
        with self.events.condition:
            while True:
                for index, event in enumerate(self.events.events):
                    if index >= self.mark and event.kind == kind and index not in self.consumed:
                        self.consumed.add(index)
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [e.kind for e in self.events.events]
                    raise AssertionError(f"no {kind} event within {timeout}s (events: {seen})")
                self.events.condition.wait(remaining)


@pytest.fixture
def scenario_state(gherkin_mode, tmp_path):
    launchpad = Launchpad(tmp_path / "launchpad")
    state = Scenario(mode=gherkin_mode, launchpad=launchpad)
    yield state
    api.shutdown()
    launchpad.close()


# ---- Given --------------------------------------------------------------------------------------
@given(parsers.re(r'an option "(?P<name>[^"]*)" of type "(?P<kind>[^"]*)" with value "(?P<value>.*)"$'))
def an_option(scenario_state, name, kind, value):
    scenario_state.options[snake(name)] = typed(kind, value)


@given(parsers.parse("a {kind} flagd provider"))
def a_provider(scenario_state, kind):
    options = dict(scenario_state.options)
    if kind == "unavailable":
        port = unused_port()
    else:
        server = scenario_state.launchpad.start(PROVIDER_KINDS[kind])
        port = server.grpc_port
    options.setdefault("deadline_ms", 3000)
    client, _ = providers.connect(scenario_state.mode, port, wait=False, **options)
    scenario_state.client = client
    if kind != "unavailable":
        providers.wait_status(client, ProviderStatus.READY, timeout=10)


@given(parsers.re(r'a (?P<kind>\w+)-flag with key "(?P<key>[^"]*)" and a default value "(?P<default>.*)"$'))
def a_flag(scenario_state, kind, key, default):
    scenario_state.flag = (key, kind, typed(kind, default))


@given(parsers.re(r'a context containing a key "(?P<key>[^"]*)", with type "(?P<kind>[^"]*)" and with value "(?P<value>.*)"$'))
def a_context_key(scenario_state, key, kind, value):
    scenario_state.attributes[key] = typed(kind, value)


@given(parsers.re(r'a context containing a targeting key with value "(?P<value>.*)"$'))
def a_targeting_key(scenario_state, value):
    scenario_state.targeting_key = value


@given(parsers.re(r'a context containing a nested property with outer key "(?P<outer>[^"]*)" and inner key '
                  r'"(?P<inner>[^"]*)", with value "(?P<value>.*)"$'))
def a_nested_property(scenario_state, outer, inner, value):
    scenario_state.attributes.setdefault(outer, {})[inner] = value


@given(parsers.parse("a {kind} event handler"))
def an_event_handler(scenario_state, kind):
    scenario_state.client.add_handler(providers.EVENTS[kind], scenario_state.events.handler(kind))


# ---- When ---------------------------------------------------------------------------------------
@when("the flag was evaluated with details")
def evaluate(scenario_state):
    key, kind, default = scenario_state.flag
    method = {"Boolean": "boolean", "String": "string", "Integer": "integer", "Float": "float", "Object": "object"}[kind]
    context = EvaluationContext(scenario_state.targeting_key, dict(scenario_state.attributes))
    scenario_state.details = getattr(scenario_state.client, f"get_{method}_details")(key, default, context)


@when(parsers.parse("the connection is lost for {seconds:d}s"))
def connection_lost(scenario_state, seconds):
    scenario_state.launchpad.restart(seconds)


@when("the flag was modified")
def flag_modified(scenario_state):
    scenario_state.launchpad.change()


@when(parsers.parse("a {kind} event was fired"))
def event_fired(scenario_state, kind):
    scenario_state.last_event = scenario_state.take(kind, EVENT_TIMEOUT)
    # Like the testbed's step: what came before is cleared.
    scenario_state.mark = scenario_state.events.mark()


# ---- Then ---------------------------------------------------------------------------------------
@then(parsers.re(r'the resolved details value should be "(?P<value>.*)"$'))
def value_is(scenario_state, value):
    _, kind, _ = scenario_state.flag
    details = scenario_state.details
    assert details.value == typed(kind, value), details


@then(parsers.re(r'the reason should be "(?P<reason>.*)"$'))
def reason_is(scenario_state, reason):
    assert scenario_state.details.reason == reason, scenario_state.details


@then(parsers.re(r'the error-code should be "(?P<code>.*)"$'))
def error_code_is(scenario_state, code):
    error = scenario_state.details.error_code
    assert (error.value if error else "") == code, scenario_state.details


@then(parsers.re(r'the variant should be "(?P<variant>.*)"$'))
def variant_is(scenario_state, variant):
    assert scenario_state.details.variant == variant, scenario_state.details


@then("the resolved metadata should contain")
def metadata_contains(scenario_state, datatable):
    header, *rows = datatable
    columns = {name: index for index, name in enumerate(header)}
    metadata = dict(scenario_state.details.flag_metadata)
    for row in rows:
        key = row[columns["key"]]
        expected = typed(row[columns["metadata_type"]], row[columns["value"]])
        assert key in metadata, (key, metadata)
        assert metadata[key] == expected and type(metadata[key]) is type(expected), (key, metadata[key], expected)
    assert len(metadata) == len(rows), metadata


@then("the resolved metadata is empty")
def metadata_empty(scenario_state):
    assert dict(scenario_state.details.flag_metadata) == {}, scenario_state.details.flag_metadata


@then(parsers.parse("the {kind} event handler should have been executed"))
def handler_executed(scenario_state, kind):
    scenario_state.take(kind, EVENT_TIMEOUT)


@then(parsers.parse("the {kind} event handler should have been executed within {ms:d}ms"))
def handler_executed_within(scenario_state, kind, ms):
    scenario_state.take(kind, ms / 1000)


@then("the flag should be part of the event payload")
def flag_in_payload(scenario_state):
    key = scenario_state.flag[0]
    assert key in (scenario_state.last_event.details.flags_changed or []), scenario_state.last_event.details
