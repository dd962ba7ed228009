//! What the fuzz targets share: the properties every evaluation and every loaded document must
//! have, and a builder of arbitrary evaluation contexts.
//!
//! A property that does not hold panics, which libFuzzer reports as a crash (with the input
//! saved under fuzz/artifacts/<target>/).

use arbitrary::Unstructured;
use flag_engine::{Context, ErrorCode, Flag, FlagSet, FlagState, Limits, Reason, Resolution, Scope};
use serde_json::{Map, Number, Value};

/// `$flagd.timestamp` of every evaluation unless a target picks its own.
pub const TIMESTAMP: i64 = 1_700_000_000;

/// What can be compared of a resolution across two loads of the same flag: the error message
/// may legitimately differ (a `$ref` that no longer resolves), its code may not.
pub type Outcome = (Option<Value>, Option<String>, Reason, Option<ErrorCode>);

pub fn outcome(resolution: &Resolution<'_>) -> Outcome {
    (
        resolution.value.cloned(),
        resolution.variant.map(str::to_owned),
        resolution.reason,
        resolution.error.as_ref().map(|(code, _)| *code),
    )
}

/// Evaluates `flag` through `set` and checks what any resolution must satisfy.
pub fn evaluate_checked<'a>(set: &'a FlagSet, flag: &Flag, scope: &Scope<'_>) -> Resolution<'a> {
    let resolution = set.evaluate(flag.key(), scope);
    check(flag, &resolution);
    resolution
}

/// Invariants of one resolution of `flag`.
pub fn check(flag: &Flag, resolution: &Resolution<'_>) {
    let key = flag.key();
    match resolution.reason {
        Reason::Error => {
            assert!(resolution.error.is_some(), "{key}: ERROR without an error code");
            assert!(
                resolution.value.is_none() && resolution.variant.is_none(),
                "{key}: ERROR with a value"
            );
        }
        Reason::Disabled => {
            assert_eq!(flag.state(), FlagState::Disabled, "{key}: DISABLED for an enabled flag");
            assert!(
                resolution.error.is_none() && resolution.value.is_none(),
                "{key}: DISABLED with a value"
            );
        }
        Reason::Static => {
            assert!(!flag.is_targeted(), "{key}: STATIC for a targeted flag");
            assert!(resolution.error.is_none(), "{key}: STATIC with an error");
        }
        Reason::TargetingMatch => {
            assert!(flag.is_targeted(), "{key}: TARGETING_MATCH without targeting");
            assert!(resolution.value.is_some(), "{key}: TARGETING_MATCH without a value");
        }
        Reason::Default => assert!(resolution.error.is_none(), "{key}: DEFAULT with an error"),
    }
    if flag.state() == FlagState::Disabled {
        assert_eq!(resolution.reason, Reason::Disabled, "{key}: a disabled flag resolved");
    }
    if flag.problem().is_some() && flag.state() == FlagState::Enabled {
        let code = resolution.error.as_ref().map(|(code, _)| *code);
        assert_eq!(
            code,
            Some(ErrorCode::ParseError),
            "{key}: broken targeting did not fail"
        );
    }
    match (resolution.value, resolution.variant) {
        (Some(value), Some(variant)) => {
            let own = flag
                .variants()
                .find(|(name, _)| *name == variant)
                .map(|(_, value)| value);
            assert_eq!(own, Some(value), "{key}: variant {variant:?} is not the flag's");
            assert!(
                flag.kind().accepts(value),
                "{key}: value {value} is not a {}",
                flag.kind().as_str()
            );
            // The caller asking for the flag's own type never gets TYPE_MISMATCH.
            let typed = resolution.clone().expecting(flag.kind());
            assert!(typed.error.is_none(), "{key}: TYPE_MISMATCH for its own kind");
        }
        (None, None) => {}
        (value, variant) => panic!("{key}: value {value:?} without variant {variant:?} or the reverse"),
    }
}

/// `set` written out with `to_document` and loaded again (from the value and from its JSON
/// text) is the same set: the load succeeds, writes out the same document, and every flag
/// resolves alike for `scope`. This is what flagd's sync protocol relies on.
pub fn check_round_trip(set: &FlagSet, limits: &Limits, scope: &Scope<'_>) {
    let document = set.to_document();
    let again = match FlagSet::from_document(&document, limits) {
        Ok(again) => again,
        Err(error) => panic!("to_document output does not load again: {error}\n{document}"),
    };
    assert_eq!(again.len(), set.len(), "the round trip lost flags");
    assert_eq!(again.to_document(), document, "to_document is not a fixed point");

    // Through JSON text too, as the sync protocol carries it. Floats may move by an ulp there:
    // serde_json (without its `float_roundtrip` feature, as in the workspace) does not parse
    // long decimals correctly rounded, so a float written back out can read differently.
    let text = document.to_string();
    match FlagSet::parse(&text, limits) {
        Ok(parsed) => assert!(
            same_but_float_rounding(&parsed.to_document(), &document),
            "the JSON text round trip differs:\n{}\n{document}",
            parsed.to_document()
        ),
        Err(error) => panic!("to_document's JSON text does not parse again: {error}\n{text}"),
    }

    for flag in set.flags() {
        let Some(reloaded) = again.get(flag.key()) else {
            panic!("{}: missing after the round trip", flag.key());
        };
        assert_eq!(
            reloaded.definition(),
            flag.definition(),
            "{}: definition differs",
            flag.key()
        );
        let before = evaluate_checked(set, flag, scope);
        let after = evaluate_checked(&again, reloaded, scope);
        assert_eq!(
            outcome(&before),
            outcome(&after),
            "{}: resolves differently after the round trip\n{}",
            flag.key(),
            flag.definition()
        );
    }
}

/// Equal, except that floats may differ in their last bits.
fn same_but_float_rounding(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a == b || (a - b).abs() <= a.abs().max(b.abs()) * 1e-15,
            _ => false,
        },
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_but_float_rounding(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, a), (kb, b))| ka == kb && same_but_float_rounding(a, b))
        }
        _ => left == right,
    }
}

/// Every flag of `set` evaluated for `scope`, plus a key that is not there.
pub fn evaluate_all(set: &FlagSet, scope: &Scope<'_>) {
    for flag in set.flags() {
        evaluate_checked(set, flag, scope);
    }
    let missing = set.evaluate("\u{0}not-a-flag", scope);
    assert_eq!(
        missing.error.as_ref().map(|(code, _)| *code),
        Some(ErrorCode::FlagNotFound)
    );
}

/// Strings a context value is often worth being: what the fixtures compare with.
const WORDS: &[&str] = &[
    "",
    "DE",
    "FR",
    "de",
    "premium",
    "admin",
    "beta",
    "alpha",
    "x",
    "y",
    "1",
    "0",
    "1.0",
    "-1",
    "1e3",
    " 12 ",
    "NaN",
    "true",
    "ceo@example.com",
    "dev@switchyard.dev",
    "ballmer@macrosoft.com",
    "@switchyard.dev",
    "5c3d8535-f81a-4478-a6d3-afaa4d51199e",
    "1.4.2",
    "2.0.0",
    "v1.0.0-rc.1",
    "1.0.0-alpha.1+build.5",
    "01.2.3",
    "2.0.0.0",
    "ümlaut-✓",
];

/// Builds a context from raw bytes: keys drawn mostly from `keys` (the paths a document's
/// rules read; dotted paths are also nested), values of every JSON type with an eye for what
/// rules compare against (numbers at edges, version strings, the fixtures' words).
pub fn arbitrary_context(u: &mut Unstructured<'_>, keys: &[&str]) -> arbitrary::Result<Map<String, Value>> {
    let mut context = Map::new();
    let entries = u.int_in_range(0..=10)?;
    for _ in 0..entries {
        let key = arbitrary_key(u, keys)?;
        let value = arbitrary_value(u, keys, 0)?;
        insert_path(&mut context, &key, value);
    }
    Ok(context)
}

fn arbitrary_key(u: &mut Unstructured<'_>, keys: &[&str]) -> arbitrary::Result<String> {
    if !keys.is_empty() && u.ratio(7, 8)? {
        Ok((*u.choose(keys)?).to_owned())
    } else {
        u.arbitrary()
    }
}

/// Inserts `value` at a dotted path, creating objects on the way (an existing non-object
/// value on the way is replaced).
fn insert_path(context: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        Some((first, rest)) if !first.is_empty() => {
            let slot = context
                .entry(first.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                insert_path(inner, rest, value);
            }
        }
        _ => {
            context.insert(path.to_owned(), value);
        }
    }
}

fn arbitrary_value(u: &mut Unstructured<'_>, keys: &[&str], depth: usize) -> arbitrary::Result<Value> {
    let kinds = if depth >= 4 { 7 } else { 9 };
    Ok(match u.int_in_range(0..=kinds)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.int_in_range(-3i64..=130)?),
        3 => Value::from(*u.choose(&[i64::MIN, i64::MAX, -1, 0, 1, 2, 9_007_199_254_740_993])?),
        4 => Value::from(u.arbitrary::<u64>()?),
        5 => Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        6 => Value::String((*u.choose(WORDS)?).to_owned()),
        7 => Value::String(u.arbitrary()?),
        8 => {
            let len = u.int_in_range(0..=6)?;
            Value::Array(
                (0..len)
                    .map(|_| arbitrary_value(u, keys, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => {
            let len = u.int_in_range(0..=4)?;
            let mut object = Map::new();
            for _ in 0..len {
                let key = arbitrary_key(u, keys)?;
                object.insert(key, arbitrary_value(u, keys, depth + 1)?);
            }
            Value::Object(object)
        }
    })
}

/// Reads a fuzz input as a context: a JSON object as written (the readable corpus entries),
/// anything else as bytes for [`arbitrary_context`]. Also picks the timestamp.
pub fn context_from_bytes(data: &[u8], keys: &[&str]) -> (Context, i64) {
    if let Ok(Value::Object(context)) = serde_json::from_slice::<Value>(data) {
        return (Context::from(context), TIMESTAMP);
    }
    let mut u = Unstructured::new(data);
    let timestamp = if u.ratio(1, 4).unwrap_or(false) {
        u.arbitrary().unwrap_or(TIMESTAMP)
    } else {
        TIMESTAMP
    };
    // Running out of bytes keeps what was built so far.
    let context = arbitrary_context(&mut u, keys).unwrap_or_default();
    (Context::from(context), timestamp)
}
