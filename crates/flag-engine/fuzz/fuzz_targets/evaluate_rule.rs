//! Arbitrary targeting rules against arbitrary contexts.
//!
//! The input is JSON: `[rule, context, evaluators]` (context and evaluators optional), or a
//! bare rule evaluated with an empty context. The rule becomes the targeting of a one-flag
//! document whose string variants cover what rules typically return ("a".."d", "true",
//! "false", "0", "1", "-1", "on", "off", "none"), with `evaluators` as its `$evaluators`. The
//! document must load (a rule that does not compile only breaks its flag), resolve without
//! panicking, within bounded time and memory, consistently, and survive the `to_document`
//! round trip with the same resolution for that context.
#![no_main]

use flag_engine::{Context, FlagSet, Limits, Scope};
use flag_engine_fuzz::{TIMESTAMP, check_round_trip, evaluate_all};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (rule, context, evaluators) = match input {
        Value::Array(mut parts) if (1..=3).contains(&parts.len()) => {
            let evaluators = if parts.len() == 3 { parts.pop() } else { None };
            let context = if parts.len() == 2 { parts.pop() } else { None };
            (parts.pop().unwrap_or_default(), context, evaluators)
        }
        rule => (rule, None, None),
    };
    if !rule.is_object() {
        // Only objects are targeting; anything else is a structural error parse_definition covers.
        return;
    }
    let context = match context {
        Some(Value::Object(context)) => Context::from(context),
        _ => Context::new(),
    };
    let mut document = json!({"flags": {"rule": {
        "state": "ENABLED",
        "variants": {
            "a": "a", "b": "b", "c": "c", "d": "d", "true": "true", "false": "false",
            "0": "0", "1": "1", "-1": "-1", "on": "on", "off": "off", "none": "none"
        },
        "defaultVariant": "none",
        "targeting": rule
    }}});
    if let Some(evaluators @ Value::Object(_)) = evaluators {
        document["$evaluators"] = evaluators;
    }

    let limits = Limits::default();
    let set = match FlagSet::from_document(&document, &limits) {
        Ok(set) => set,
        Err(error) => panic!("a one-flag document with an object rule was refused: {error}"),
    };
    let scope = Scope {
        context: &context,
        timestamp: TIMESTAMP,
    };
    evaluate_all(&set, &scope);
    check_round_trip(&set, &limits, &scope);
});
