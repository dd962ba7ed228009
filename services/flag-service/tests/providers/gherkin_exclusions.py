"""Which flagd-testbed gherkin scenarios run against flag-service, and why the others do not.
The one place the suite's exclusions are listed; conftest.py applies them at collection."""

# Feature files of the testbed's provider suite that run. config.feature is left out: it only
# checks how the provider reads its own options and environment, and never talks to a server.
FEATURES = [
    "evaluation.feature",
    "targeting.feature",
    "events.feature",
    "metadata.feature",
    "selector.feature",
    "disabled.feature",
    "contextEnrichment.feature",
    "connection.feature",
    "rpc-caching.feature",
    "sync-payload.feature",
]

# Provider modes run; a scenario runs in a mode when it carries the mode's tag. (@file, the
# provider's offline file mode, involves no server and is not run.)
MODES = ["rpc", "in-process"]

# Scenarios with any of these tags are skipped, in every mode, for the reason given.
EXCLUDED_TAGS = {
    "customCert": "TLS with the testbed's custom CA: its certificates are not in the shared testbed copy and the "
    "suite runs flag-service in plaintext",
    "unixsocket": "flag-service listens on TCP only; no unix-socket listener",
    "os.linux": "only used together with @unixsocket",
    "targetURI": "needs the envoy:// name resolver and an envoy proxy in front of the server",
    "forbidden": "needs a proxy answering HTTP 403 (PERMISSION_DENIED) in front of the server",
    "deprecated": "@no-default: the pre-v0.14 behaviour (FLAG_NOT_FOUND for a missing default variant), "
    "superseded by @no-default-variant, which runs",
    "fractional-v1": "legacy percentage bucketing (flagd <= v0.11); flag-service buckets like flagd v0.16 (v2)",
}

# Mode-specific exclusions: (mode, tag) -> reason.
EXCLUDED_IN_MODE = {
    ("rpc", "fractional-v3"): "CBOR bucketing (v3) is not what flagd v0.16.1 runs; flag-service evaluates RPC "
    "requests with v2 like flagd and the JS flagd-core",
    ("in-process", "fractional-v2"): "in-process evaluation happens in the client: openfeature-provider-flagd 0.6.1 "
    "(openfeature-flagd-core 2.0.0) buckets with v3 (CBOR), so its @fractional-v3 examples run instead",
}

# Scenarios that run but are expected to fail, strictly: (feature file, scenario name) -> reason.
EXPECTED_FAILURES: dict[tuple[str, str], str] = {}
