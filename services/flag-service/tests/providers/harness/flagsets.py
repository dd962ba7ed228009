"""Flag documents the provider tests write themselves, next to copies of testbed files."""

TARGETED = {
    "metadata": {"flagSetId": "e2e-set", "version": "7"},
    "flags": {
        "tier-boolean": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"if": [{"in": [{"var": "tier"}, ["gold", "platinum"]]}, "on", None]},
            "metadata": {"owner": "team-e2e", "rank": 3, "ratio": 0.25, "critical": True},
        },
        "tier-string": {
            "state": "ENABLED",
            "variants": {"gold": "label-gold", "silver": "label-silver", "bronze": "label-bronze"},
            "defaultVariant": "bronze",
            "targeting": {
                "if": [
                    {"==": [{"var": "tier"}, "gold"]},
                    "gold",
                    {"ends_with": [{"var": "email"}, "@example.com"]},
                    "silver",
                    None,
                ]
            },
        },
        "tier-integer": {
            "state": "ENABLED",
            "variants": {"low": 1, "high": 1000},
            "defaultVariant": "low",
            "targeting": {"if": [{">=": [{"var": "age"}, 18]}, "high", None]},
        },
        "tier-float": {
            "state": "ENABLED",
            "variants": {"small": 0.25, "big": 2.5},
            "defaultVariant": "small",
            "targeting": {"if": [{"sem_ver": [{"var": "app.version"}, ">=", "2.0.0"]}, "big", None]},
        },
        "tier-object": {
            "state": "ENABLED",
            "variants": {
                "basic": {"seats": 1, "features": ["a"]},
                "pro": {"seats": 10, "features": ["a", "b"], "limits": {"rps": 100}},
            },
            "defaultVariant": "basic",
            "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "pro", None]},
        },
        "tier-no-default": {
            "state": "ENABLED",
            "variants": {"gold": "label-gold", "other": "label-other"},
            "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "gold", None]},
        },
    },
}


def changing(default_variant: str) -> dict:
    return {
        "flags": {
            "changing-flag": {
                "state": "ENABLED",
                "variants": {"foo": "foo", "bar": "bar"},
                "defaultVariant": default_variant,
            },
            "steady-flag": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"},
        }
    }
