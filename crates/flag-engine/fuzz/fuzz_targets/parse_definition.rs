//! Arbitrary bytes as a flagd flag-definition document.
//!
//! Whatever the bytes, `FlagSet::parse` returns (no panic, bounded time and memory). When the
//! document loads: every flag evaluates with an empty context without panicking and with
//! consistent resolutions, and `to_document` → `from_document` loads again into the same set
//! (see `check_round_trip`). The same bytes are also loaded under tight limits, which must
//! only ever refuse more, never accept what the default limits refuse.
#![no_main]

use flag_engine::{Context, FlagSet, Limits, Scope};
use flag_engine_fuzz::{TIMESTAMP, check_round_trip, evaluate_all};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = Limits::default();
    let loaded = FlagSet::parse(text, &limits);

    let tight = Limits {
        max_flags: 8,
        max_variants: 8,
        max_key_length: 16,
        max_rule_depth: 6,
        max_rule_nodes: 40,
        max_document_nodes: 200,
    };
    let tightly_loaded = FlagSet::parse(text, &tight);
    if tightly_loaded.is_ok() {
        assert!(
            loaded.is_ok(),
            "accepted under tight limits, refused under the defaults"
        );
    }

    let context = Context::new();
    let scope = Scope {
        context: &context,
        timestamp: TIMESTAMP,
    };
    if let Ok(tight_set) = &tightly_loaded {
        evaluate_all(tight_set, &scope);
    }
    if let Ok(set) = &loaded {
        evaluate_all(set, &scope);
        check_round_trip(set, &limits, &scope);
    }
});
