//! A fixed, rich flag document (fixtures/rich-flags.json: every JSON Logic operator flagd
//! knows, `$ref`s, fractional, sem_ver, `$flagd` properties, every variant type) evaluated for
//! arbitrary contexts.
//!
//! The input is a context: a JSON object as written (the readable corpus entries), or bytes
//! from which `arbitrary_context` builds one with the keys the document's rules read. Every
//! flag must resolve without panicking, within bounded time and memory, and consistently (see
//! `check`).
#![no_main]

use std::sync::LazyLock;

use flag_engine::{FlagSet, Limits, Scope};
use flag_engine_fuzz::{context_from_bytes, evaluate_all};
use libfuzzer_sys::fuzz_target;

static FLAGS: LazyLock<FlagSet> = LazyLock::new(|| {
    let set = FlagSet::parse(include_str!("../fixtures/rich-flags.json"), &Limits::default())
        .unwrap_or_else(|error| panic!("fixtures/rich-flags.json does not load: {error}"));
    assert!(
        set.problems().is_empty(),
        "fixtures/rich-flags.json: {:?}",
        set.problems()
    );
    set
});

/// The paths the fixture's rules read (nested ones become nested objects).
const KEYS: &[&str] = &[
    "targetingKey",
    "email",
    "domain",
    "user",
    "user.id",
    "user.name",
    "user.age",
    "user.address.country",
    "user.groups",
    "locale",
    "country",
    "extraCountries",
    "id",
    "scores",
    "items",
    "enabled",
    "kind",
    "blocked",
    "phone",
    "address",
    "tier",
    "bonusVariant",
    "weight",
    "version",
    "minVersion",
    "app.version",
    "activateAt",
    "age",
    "bucket",
    "offset",
    "beta",
    "a",
    "b",
    "c",
    "d",
    "n",
    "pick",
    "choices.x",
    "choices.y",
    "variant",
    "vip",
    "fallback",
    "$flagd",
];

fuzz_target!(|data: &[u8]| {
    let (context, timestamp) = context_from_bytes(data, KEYS);
    evaluate_all(
        &FLAGS,
        &Scope {
            context: &context,
            timestamp,
        },
    );
});
