"""Edge cases where flag-service once answered differently from flagd v0.16.1, found by the
differential check and fixed in flag-engine (findings F1-F5). Each test asserts what flagd
answers, through the Python provider in RPC mode, so a regression fails the run."""

from __future__ import annotations

import json

import mmh3
import pytest
from openfeature.evaluation_context import EvaluationContext

from harness.providers import connect
from harness.server import FlagService

VARIANTS = {"true": "true", "false": "false", "fallback": "fallback", "x": "x", "y": "y", "blue": "blue",
            "unknown": "unknown", "known": "known"}


def flag(targeting) -> dict:
    return {"state": "ENABLED", "variants": VARIANTS, "defaultVariant": "fallback", "targeting": targeting}


FLAGS = {
    "flags": {
        "semver-eq": flag({"sem_ver": [{"var": "v"}, "=", "1.0.0"]}),
        "semver-caret": flag({"sem_ver": [{"var": "v"}, "^", "3.1.0"]}),
        "semver-tilde": flag({"sem_ver": [{"var": "v"}, "~", "2.1.3"]}),
        "fractional-array-variant": flag({"fractional": [{"var": "targetingKey"}, [{"var": "color"}, 0], ["blue", 10]]}),
        "missing-expires": flag({"if": [{"missing": ["expires"]}, "unknown", "known"]}),
        "fractional-array-key": flag({"fractional": [{"var": "k"}, ["x", 50], ["y", 50]]}),
    }
}


@pytest.fixture(scope="module")
def deviations_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("deviations")
    (workdir / "flags.json").write_text(json.dumps(FLAGS), encoding="utf-8")
    service = FlagService(workdir, ["flags.json"], name="deviations")
    service.start()
    yield service
    service.close()


def evaluate(server, key: str, attributes: dict, targeting_key: str = "user-7"):
    client, _ = connect("rpc", server.grpc_port)
    result = client.get_string_details(key, "caller", EvaluationContext(targeting_key, attributes))
    return result.value, result.reason


@pytest.mark.parametrize("version", ["1-1", "1.0-rc.1", "1.0.0+build@x"])
def test_f1_invalid_versions_make_sem_ver_null(deviations_server, version):
    # flagd: "v" + version fails semver.IsValid -> sem_ver is null -> default variant.
    assert evaluate(deviations_server, "semver-eq", {"v": version}) == ("fallback", "DEFAULT")


@pytest.mark.parametrize("key, version", [("semver-caret", "3.0.0"), ("semver-caret", "3.1.0-beta.1"),
                                          ("semver-tilde", "2.1.0")])
def test_f2_caret_and_tilde_compare_only_major_and_minor(deviations_server, key, version):
    # flagd: semver.Compare(semver.Major(v1), semver.Major(v2)) == 0 (MajorMinor for ~).
    assert evaluate(deviations_server, key, {"v": version}) == ("true", "TARGETING_MATCH")


@pytest.mark.parametrize("color", [[], ["x"], {"k": 1}])
def test_f3_structured_variant_voids_the_fractional(deviations_server, color):
    # flagd: every bucket's variant must be string/bool/number/null, else fractional is null.
    assert evaluate(deviations_server, "fractional-array-variant", {"color": color}) == ("fallback", "DEFAULT")


def test_f4_empty_string_is_not_missing(deviations_server):
    # flagd (jsonlogic v3.9.1 missing): only a nil value is missing.
    assert evaluate(deviations_server, "missing-expires", {"expires": ""}) == ("known", "TARGETING_MATCH")


def test_f5_array_bucketing_value_becomes_a_bucket(deviations_server):
    # flagd: a non-string, non-null first argument stays in the list as a bucket (["y"], weight 1)
    # and the key is flagKey + targetingKey.
    buckets = [("y", 1), ("x", 50), ("y", 50)]
    point = (mmh3.hash("fractional-array-key" + "user-7", 0, signed=False) * 101) >> 32
    end = 0
    for name, weight in buckets:
        end += weight
        if point < end:
            expected = name
            break
    assert evaluate(deviations_server, "fractional-array-key", {"k": ["y"]}) == (expected, "TARGETING_MATCH")


def test_the_same_flags_agree_with_flagd_on_ordinary_input(deviations_server):
    """The flags above evaluate as flagd does when the input is ordinary, so the xfails above
    fail for the stated reason and not because the flags are broken."""
    assert evaluate(deviations_server, "semver-eq", {"v": "1.0.0"}) == ("true", "TARGETING_MATCH")
    assert evaluate(deviations_server, "semver-eq", {"v": "not-a-version"}) == ("fallback", "DEFAULT")
    assert evaluate(deviations_server, "semver-caret", {"v": "3.2.0"}) == ("true", "TARGETING_MATCH")
    assert evaluate(deviations_server, "semver-caret", {"v": "4.0.0"}) == ("false", "TARGETING_MATCH")
    assert evaluate(deviations_server, "fractional-array-variant", {"color": "x"}) == ("blue", "TARGETING_MATCH")
    assert evaluate(deviations_server, "missing-expires", {}) == ("unknown", "TARGETING_MATCH")
    assert evaluate(deviations_server, "missing-expires", {"expires": 5}) == ("known", "TARGETING_MATCH")
    assert evaluate(deviations_server, "fractional-array-key", {"k": 5}) == ("fallback", "DEFAULT")
