"""The Python flagd provider in IN_PROCESS mode: flag-service streams the flag definitions
over flagd.sync.v1 and the provider evaluates them itself."""

from openfeature.evaluation_context import EvaluationContext

from harness.providers import connect
from provider_cases import ProviderCases


class TestInProcessProvider(ProviderCases):
    mode = "in-process"


def test_flag_metadata_includes_flag_set_metadata(provider_server):
    """Flag metadata reaches the provider, with the flag set's metadata (flagSetId, version)
    folded in, as flagd sends it."""
    client, _ = connect("in-process", provider_server.grpc_port)
    gold = EvaluationContext("user-1", {"tier": "gold"})
    assert dict(client.get_boolean_details("tier-boolean", False, gold).flag_metadata) == {
        "flagSetId": "e2e-set",
        "version": "7",
        "owner": "team-e2e",
        "rank": 3,
        "ratio": 0.25,
        "critical": True,
    }
    assert dict(client.get_string_details("tier-string", "x", gold).flag_metadata) == {
        "flagSetId": "e2e-set",
        "version": "7",
    }
    assert dict(client.get_string_details("selector-flag", "x").flag_metadata) == {"flagSetId": "selector-set"}
    assert dict(client.get_boolean_details("boolean-flag", False).flag_metadata) == {}
