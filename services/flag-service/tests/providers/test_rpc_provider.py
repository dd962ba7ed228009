"""The Python flagd provider in RPC mode: every evaluation is a flagd.evaluation.v2 call to
flag-service, and changes arrive on its EventStream."""

from openfeature.contrib.provider.flagd.config import CacheType

from harness.providers import connect
from provider_cases import ProviderCases


class TestRpcProvider(ProviderCases):
    mode = "rpc"


def test_change_event_evicts_the_provider_cache(provider_server):
    """With the provider's LRU cache, a STATIC answer is served from the cache (CACHED) until a
    configuration_change event names the flag; then it is asked again."""
    client, log = connect("rpc", provider_server.grpc_port, cache=CacheType.LRU, events=("change",))
    first = client.get_string_details("changing-flag", "x")
    second = client.get_string_details("changing-flag", "x")
    assert (first.reason, second.reason, second.value) == ("STATIC", "CACHED", first.value)
    mark = log.mark()
    value, _ = provider_server.flip_changing_flag()
    log.wait("change", after=mark, timeout=10)
    third = client.get_string_details("changing-flag", "x")
    assert (third.value, third.reason) == (value, "STATIC")
    assert value != first.value
