//! Behaviour beyond the testbed: definition errors, JSON Logic operators, limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use flag_engine::{Context, ErrorCode, FlagSet, Limits, Reason, Scope, ValueKind};
use serde_json::{Value, json};

fn set(document: Value) -> FlagSet {
    FlagSet::from_document(&document, &Limits::default()).expect("document loads")
}

fn refused(document: Value) -> String {
    FlagSet::from_document(&document, &Limits::default())
        .expect_err("document is refused")
        .to_string()
}

fn context(value: Value) -> Context {
    Context::from(value.as_object().cloned().unwrap_or_default())
}

/// A flag resolved for a context at timestamp 0.
fn evaluate<'f>(flags: &'f FlagSet, key: &str, context: &Context) -> flag_engine::Resolution<'f> {
    flags.evaluate(key, &Scope { context, timestamp: 0 })
}

/// The variant a rule picks for a context, from a flag whose variants are the strings "a".."d",
/// the booleans' names, and "none" as default.
fn pick(rule: Value, ctx: Value) -> (Option<String>, Reason) {
    let flags = set(json!({"flags": {"f": {
        "state": "ENABLED",
        "variants": {"a": "a", "b": "b", "c": "c", "d": "d", "true": "true", "false": "false", "none": "none"},
        "defaultVariant": "none",
        "targeting": rule
    }}}));
    let ctx = context(ctx);
    let resolution = flags.evaluate(
        "f",
        &Scope {
            context: &ctx,
            timestamp: 1_700_000_000,
        },
    );
    assert!(resolution.error.is_none(), "{:?}", resolution.error);
    (resolution.variant.map(str::to_owned), resolution.reason)
}

fn variant(rule: Value, ctx: Value) -> String {
    pick(rule, ctx).0.unwrap_or_default()
}

#[test]
fn structural_mistakes_name_their_path() {
    let flag = |extra: Value| {
        let mut flag = json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"});
        for (key, value) in extra.as_object().unwrap() {
            flag[key] = value.clone();
        }
        json!({"flags": {"f": flag}})
    };
    assert!(
        refused(flag(json!({"defaultVariant": "maybe"})))
            .starts_with("flags.f.defaultVariant: \"maybe\" is not one of the variants")
    );
    assert!(refused(flag(json!({"state": "ON"}))).starts_with("flags.f.state:"));
    assert!(refused(flag(json!({"defaultvariant": "on"}))).starts_with("flags.f.defaultvariant: unknown field"));
    assert!(
        refused(flag(json!({"variants": {"on": true, "off": "no"}}))).contains("all variants of a flag have one type")
    );
    assert!(refused(flag(json!({"variants": {}}))).starts_with("flags.f.variants:"));
    assert!(refused(flag(json!({"variants": {"list": [1, 2]}}))).starts_with("flags.f.variants.list:"));
    assert!(refused(flag(json!({"targeting": "if"}))).starts_with("flags.f.targeting:"));
    assert!(refused(flag(json!({"metadata": {"nested": {"a": 1}}}))).starts_with("flags.f.metadata.nested:"));
    assert!(refused(json!({"flag": {}})).starts_with("flag: unknown field"));
    assert!(refused(json!([])).starts_with("$: expected an object"));
    let error = FlagSet::parse("{\"flags\": {", &Limits::default()).unwrap_err();
    assert!(error.to_string().starts_with("$: not valid JSON"), "{error}");
}

#[test]
fn limits_bound_documents_and_rules() {
    let limits = Limits {
        max_flags: 1,
        max_rule_depth: 8,
        max_rule_nodes: 20,
        ..Limits::default()
    };
    let two = json!({"flags": {
        "a": {"state": "ENABLED", "variants": {"x": 1}},
        "b": {"state": "ENABLED", "variants": {"x": 1}}
    }});
    assert!(
        FlagSet::from_document(&two, &limits)
            .unwrap_err()
            .message
            .contains("more than 1 flags")
    );

    let mut deep = json!("a");
    for _ in 0..20 {
        deep = json!({"if": [true, deep]});
    }
    let flags = FlagSet::from_document(
        &json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "targeting": deep}}}),
        &limits,
    )
    .unwrap();
    let problems = flags.problems();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].message.contains("nests deeper than 8"), "{problems:?}");
    let resolution = evaluate(&flags, "f", &Context::new());
    assert_eq!(resolution.error.unwrap().0, ErrorCode::ParseError);

    let wide = json!({"cat": (0..50).map(|i| json!(i)).collect::<Vec<_>>()});
    let flags = FlagSet::from_document(
        &json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "targeting": wide}}}),
        &limits,
    )
    .unwrap();
    assert!(flags.problems()[0].message.contains("more than 20 nodes"));
}

#[test]
fn runaway_evaluation_is_cut_off() {
    // 1,000 × 1,000 nested map: a million steps, more than one resolution may take.
    let items: Vec<Value> = (0..1000).map(Value::from).collect();
    let rule = json!({"if": [{"map": [{"var": "items"}, {"map": [{"var": ""}, 1]}]}, "a", "b"]});
    let nested: Vec<Value> = (0..1000).map(|_| Value::Array(items.clone())).collect();
    let flags = set(json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "targeting": rule}}}));
    let ctx = context(json!({ "items": nested }));
    let resolution = evaluate(&flags, "f", &ctx);
    assert_eq!(resolution.error.map(|(code, _)| code), Some(ErrorCode::General));
}

#[test]
fn evaluator_references_inline_and_cycles_are_refused() {
    let flags = set(json!({
        "flags": {
            "loop": {"state": "ENABLED", "variants": {"a": "a"}, "targeting": {"if": [{"$ref": "one"}, "a"]}},
            "chain": {"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "targeting": {"if": [{"$ref": "outer"}, "a", "b"]}}
        },
        "$evaluators": {
            "one": {"$ref": "two"},
            "two": {"$ref": "one"},
            "outer": {"and": [{"$ref": "inner"}, true]},
            "inner": {"==": [{"var": "tier"}, "gold"]}
        }
    }));
    assert!(
        flags
            .problems()
            .iter()
            .any(|problem| problem.flag == "loop" && problem.message.contains("cycle"))
    );
    let ctx = context(json!({"tier": "gold"}));
    assert_eq!(evaluate(&flags, "chain", &ctx).variant, Some("a"));
}

#[test]
fn comparison_and_logic_operators() {
    assert_eq!(
        variant(json!({"if": [{"==": [{"var": "n"}, "1"]}, "a", "b"]}), json!({"n": 1})),
        "a"
    );
    assert_eq!(
        variant(json!({"if": [{"===": [{"var": "n"}, "1"]}, "a", "b"]}), json!({"n": 1})),
        "b"
    );
    assert_eq!(
        variant(json!({"if": [{"!=": [{"var": "n"}, 2]}, "a", "b"]}), json!({"n": 1})),
        "a"
    );
    assert_eq!(
        variant(json!({"if": [{"<": [1, {"var": "n"}, 3]}, "a", "b"]}), json!({"n": 2})),
        "a"
    );
    assert_eq!(
        variant(json!({"if": [{"<=": [1, {"var": "n"}, 3]}, "a", "b"]}), json!({"n": 4})),
        "b"
    );
    assert_eq!(
        variant(
            json!({"if": [{">=": [{"var": "age"}, 18]}, "a", "b"]}),
            json!({"age": 18})
        ),
        "a"
    );
    assert_eq!(variant(json!({"if": [{">": ["b", "a"]}, "a", "b"]}), json!({})), "a");
    assert_eq!(
        variant(
            json!({"if": [{"and": [true, {"var": "x"}]}, "a", "b"]}),
            json!({"x": 0})
        ),
        "b"
    );
    assert_eq!(
        variant(
            json!({"if": [{"or": [false, {"var": "x"}]}, "a", "b"]}),
            json!({"x": "y"})
        ),
        "a"
    );
    assert_eq!(variant(json!({"if": [{"!": {"var": "x"}}, "a", "b"]}), json!({})), "a");
    assert_eq!(variant(json!({"if": [{"!!": [[]]}, "a", "b"]}), json!({})), "b");
    assert_eq!(
        variant(json!({"if": [false, "a", {"var": "missing"}, "b", "c"]}), json!({})),
        "c"
    );
}

#[test]
fn string_array_and_arithmetic_operators() {
    let ctx = json!({"email": "ana@shop.com.bd", "roles": ["buyer", "seller"], "cart": [{"price": 5}, {"price": 7}]});
    assert_eq!(
        variant(
            json!({"if": [{"in": ["@shop.com.bd", {"var": "email"}]}, "a", "b"]}),
            ctx.clone()
        ),
        "a"
    );
    assert_eq!(
        variant(
            json!({"if": [{"in": ["seller", {"var": "roles"}]}, "a", "b"]}),
            ctx.clone()
        ),
        "a"
    );
    assert_eq!(
        variant(
            json!({"if": [{"ends_with": [{"var": "email"}, ".bd"]}, "a", "b"]}),
            ctx.clone()
        ),
        "a"
    );
    assert_eq!(variant(json!({"substr": [{"var": "email"}, 0, 1]}), ctx.clone()), "a");
    assert_eq!(variant(json!({"substr": ["xxd", -1]}), ctx.clone()), "d");
    assert_eq!(variant(json!({"cat": ["tr", "ue"]}), ctx.clone()), "true");
    let total = json!({"reduce": [{"var": "cart"}, {"+": [{"var": "current.price"}, {"var": "accumulator"}]}, 0]});
    assert_eq!(
        variant(json!({"if": [{"==": [total, 12]}, "a", "b"]}), ctx.clone()),
        "a"
    );
    assert_eq!(
        variant(json!({"if": [{"==": [{"%": [7, 4]}, 3]}, "a", "b"]}), ctx.clone()),
        "a"
    );
    assert_eq!(
        variant(
            json!({"if": [{"==": [{"max": [1, 9, 4]}, {"*": [3, 3]}]}, "a", "b"]}),
            ctx.clone()
        ),
        "a"
    );
    assert_eq!(
        variant(
            json!({"if": [{"==": [{"/": [{"-": [10, 4]}, 2]}, 3]}, "a", "b"]}),
            ctx.clone()
        ),
        "a"
    );
    let expensive = json!({"some": [{"var": "cart"}, {">": [{"var": "price"}, 6]}]});
    assert_eq!(variant(json!({"if": [expensive, "a", "b"]}), ctx.clone()), "a");
    let cheap = json!({"all": [{"var": "cart"}, {"<": [{"var": "price"}, 6]}]});
    assert_eq!(variant(json!({"if": [cheap, "a", "b"]}), ctx.clone()), "b");
    let prices = json!({"map": [{"filter": [{"var": "cart"}, {">": [{"var": "price"}, 6]}]}, {"var": "price"}]});
    assert_eq!(
        variant(
            json!({"if": [{"==": [{"merge": [prices]}, [7]]}, "a", "b"]}),
            ctx.clone()
        ),
        "a"
    );
    assert_eq!(
        variant(json!({"if": [{"missing": ["email", "phone"]}, "a", "b"]}), ctx.clone()),
        "a"
    );
    assert_eq!(
        variant(
            json!({"if": [{"missing_some": [1, ["email", "phone"]]}, "a", "b"]}),
            ctx
        ),
        "b"
    );
}

#[test]
fn var_reads_paths_defaults_and_flagd_enrichment() {
    let ctx = json!({"user": {"tags": ["vip"]}, "targetingKey": "u-1"});
    assert_eq!(
        variant(json!({"var": "user.tags.0"}), json!({"user": {"tags": ["a"]}})),
        "a"
    );
    assert_eq!(variant(json!({"var": ["user.plan", "c"]}), ctx.clone()), "c");
    assert_eq!(
        variant(
            json!({"if": [{"==": [{"var": "$flagd.flagKey"}, "f"]}, "a", "b"]}),
            ctx.clone()
        ),
        "a"
    );
    assert_eq!(
        variant(
            json!({"if": [{"==": [{"var": "$flagd.timestamp"}, 1_700_000_000]}, "a", "b"]}),
            ctx.clone()
        ),
        "a"
    );
    assert_eq!(
        variant(
            json!({"if": [{">": [{"var": "$flagd.timestamp"}, 1_800_000_000]}, "a", "b"]}),
            ctx
        ),
        "b"
    );
    assert_eq!(
        pick(json!({"var": "nothing"}), json!({})),
        (Some("none".into()), Reason::Default)
    );
}

#[test]
fn targeting_results_that_are_not_variants_are_errors() {
    let flags = set(json!({"flags": {"f": {
        "state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a",
        "targeting": {"var": "choice"}
    }}}));
    let error_code = |ctx: &Context| evaluate(&flags, "f", ctx).error.map(|(code, _)| code);
    assert_eq!(error_code(&context(json!({"choice": "zzz"}))), Some(ErrorCode::General));
    assert_eq!(
        error_code(&context(json!({"choice": {"a": 1}}))),
        Some(ErrorCode::General)
    );
    assert_eq!(error_code(&context(json!({"choice": "b"}))), None);
}

#[test]
fn typed_resolution_and_metadata() {
    let flags = set(json!({
        "metadata": {"flagSetId": "checkout", "version": "7"},
        "flags": {
            "ratio": {"state": "ENABLED", "variants": {"low": 0.25, "high": 1}, "defaultVariant": "low", "metadata": {"version": "8"}},
            "count": {"state": "ENABLED", "variants": {"one": 1, "two": 2}, "defaultVariant": "two"}
        }
    }));
    assert_eq!(flags.get("ratio").unwrap().kind(), ValueKind::Float);
    assert_eq!(flags.get("count").unwrap().kind(), ValueKind::Integer);
    let empty = Context::new();
    let scope = Scope {
        context: &empty,
        timestamp: 0,
    };
    let ratio = flags.evaluate("ratio", &scope);
    assert_eq!(ratio.metadata.get("flagSetId"), Some(&json!("checkout")));
    assert_eq!(
        ratio.metadata.get("version"),
        Some(&json!("8")),
        "a flag's metadata overrides its set's"
    );
    assert_eq!(
        ratio.clone().expecting(ValueKind::Integer).error.map(|(code, _)| code),
        Some(ErrorCode::TypeMismatch)
    );
    assert_eq!(ratio.expecting(ValueKind::Float).value, Some(&json!(0.25)));
    assert_eq!(
        flags.evaluate("count", &scope).expecting(ValueKind::Float).value,
        Some(&json!(2))
    );
    assert_eq!(
        flags.evaluate("count", &scope).expecting(ValueKind::String).reason,
        Reason::Error
    );
    let missing = flags.evaluate("nope", &scope);
    assert_eq!(
        (missing.reason, missing.error.map(|(code, _)| code)),
        (Reason::Error, Some(ErrorCode::FlagNotFound))
    );
}

#[test]
fn fractional_splits_by_weight_and_is_sticky() {
    let rule = json!({"fractional": [{"var": "targetingKey"}, ["a", 10], ["b", 90]]});
    let flags = set(
        json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "defaultVariant": "a", "targeting": rule}}}),
    );
    let mut a = 0;
    for i in 0..5_000 {
        let ctx = context(json!({"targetingKey": format!("user-{i}")}));
        let scope = Scope {
            context: &ctx,
            timestamp: 0,
        };
        let first = flags.evaluate("f", &scope).variant;
        assert_eq!(
            first,
            flags.evaluate("f", &scope).variant,
            "the same key always lands in the same bucket"
        );
        a += usize::from(first == Some("a"));
    }
    assert!((400..600).contains(&a), "10% of 5,000 should be near 500, got {a}");
    let ctx = context(json!({"targetingKey": 42}));
    let resolution = evaluate(&flags, "f", &ctx);
    assert_eq!(
        resolution.reason,
        Reason::Default,
        "a non-string bucketing key falls back to the default variant"
    );

    // A bucketing rule yielding null gives the default, as OpenFeature's flagd-core does: the
    // author chose a key, and a unit without it is not bucketed by another one.
    let by_missing = json!({"fractional": [{"var": "sessionId"}, ["a", 1], ["b", 1]]});
    let shorthand = json!({"fractional": [["a", 1], ["b", 1]]});
    for i in 0..50 {
        let ctx = json!({"targetingKey": format!("user-{i}")});
        assert_eq!(pick(by_missing.clone(), ctx.clone()).1, Reason::Default);
        assert_eq!(pick(shorthand.clone(), ctx).1, Reason::TargetingMatch);
    }
    let with_session = json!({"targetingKey": "user-1", "sessionId": "s-1"});
    assert_eq!(pick(by_missing.clone(), with_session).1, Reason::TargetingMatch);
    assert_eq!(pick(shorthand.clone(), json!({"targetingKey": ""})).1, Reason::Default);
    let fractional_weight = json!({"fractional": [["a", 1.5], ["b", 1]]});
    assert_eq!(
        pick(fractional_weight, json!({"targetingKey": "u"})).1,
        Reason::Default,
        "weights are whole numbers"
    );
}

#[test]
fn documents_round_trip_with_refs_inlined_and_sets_merge() {
    let flags = set(json!({
        "metadata": {"flagSetId": "shop"},
        "flags": {
            "gold": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                     "targeting": {"if": [{"$ref": "is_gold"}, "on"]}},
            "plain": {"state": "DISABLED", "variants": {"a": "a"}}
        },
        "$evaluators": {"is_gold": {"==": [{"var": "tier"}, "gold"]}}
    }));
    let document = flags.to_document();
    assert!(!document.to_string().contains("$ref"), "{document}");
    assert_eq!(document["flags"]["gold"]["metadata"]["flagSetId"], json!("shop"));
    assert_eq!(document["flags"]["plain"]["defaultVariant"], json!(""));
    let again = FlagSet::from_document(&document, &Limits::default()).unwrap();
    let ctx = context(json!({"tier": "gold"}));
    let scope = Scope {
        context: &ctx,
        timestamp: 0,
    };
    assert_eq!(again.evaluate("gold", &scope), flags.evaluate("gold", &scope));
    assert_eq!(again.evaluate("plain", &scope).reason, Reason::Disabled);

    let override_set =
        set(json!({"flags": {"gold": {"state": "ENABLED", "variants": {"x": 1}, "defaultVariant": "x"}}}));
    let merged = FlagSet::merged([&flags, &override_set], |_| true);
    assert_eq!(merged.len(), 2);
    assert_eq!(merged.get("gold").unwrap().kind(), ValueKind::Integer, "later sets win");
    let shop_only = FlagSet::merged([&flags, &override_set], |flag| {
        flag.metadata().get("flagSetId") == Some(&json!("shop"))
    });
    assert_eq!(shop_only.len(), 2);
    assert_eq!(
        shop_only.get("gold").unwrap().kind(),
        ValueKind::Boolean,
        "a flag outside the selection hides nothing"
    );
}

/// Edge cases where flagd's Go evaluator is the reference (found by the provider suite's
/// differential check against flagd's behaviour).
#[test]
fn edge_cases_follow_flagd() {
    // `missing`: an empty string is present.
    assert_eq!(
        variant(
            json!({"if": [{"missing": ["expires"]}, "a", "b"]}),
            json!({"expires": ""})
        ),
        "b"
    );
    // A bucket whose variant evaluates to an array or object voids the whole fractional.
    let structured = json!({"fractional": [{"var": "targetingKey"}, [{"var": "color"}, 0], ["b", 10]]});
    assert_eq!(
        pick(structured.clone(), json!({"targetingKey": "user-7", "color": []})).1,
        Reason::Default
    );
    assert_eq!(
        pick(structured, json!({"targetingKey": "user-7", "color": "a"})),
        (Some("b".into()), Reason::TargetingMatch)
    );
    // An array where the bucketing key goes is one more bucket, keyed on flag key + targeting key.
    let array_key = json!({"fractional": [{"var": "k"}, ["a", 0], ["b", 0]]});
    assert_eq!(
        pick(array_key, json!({"targetingKey": "user-7", "k": ["c", 5]})),
        (Some("c".into()), Reason::TargetingMatch)
    );
    // sem_ver: shorthand versions cannot carry a pre-release; ^ compares the major only.
    assert_eq!(
        pick(json!({"sem_ver": [{"var": "v"}, "=", "1.0.0"]}), json!({"v": "1-1"})).1,
        Reason::Default
    );
    assert_eq!(
        variant(
            json!({"if": [{"sem_ver": [{"var": "v"}, "^", "3.1.0"]}, "a", "b"]}),
            json!({"v": "3.0.0"})
        ),
        "a"
    );
}

/// Inputs the fuzzer found (crates/flag-engine/fuzz/regressions), as behaviour.
#[test]
fn fuzzing_findings_stay_fixed() {
    // A reduce that doubles its accumulator runs out of budget, not memory.
    let doubling = json!({"reduce": [vec![1; 40], {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, [1]]});
    let flags = set(
        json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": "a"}, "targeting": {"if": [doubling, "a"]}}}}),
    );
    let resolution = evaluate(&flags, "f", &Context::new());
    assert_eq!(resolution.error.map(|(code, _)| code), Some(ErrorCode::General));

    // A targeting that is only a $ref to a non-rule is broken (and stays so through to_document).
    let scalar_ref = set(
        json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": "a"}, "targeting": {"$ref": "x"}}}, "$evaluators": {"x": 1}}),
    );
    let resolution = evaluate(&scalar_ref, "f", &Context::new());
    assert_eq!(resolution.error.map(|(code, _)| code), Some(ErrorCode::ParseError));
    let again = FlagSet::from_document(&scalar_ref.to_document(), &Limits::default()).unwrap();
    assert_eq!(evaluate(&again, "f", &Context::new()).reason, Reason::Error);

    // Evaluators that reference each other twice per level cannot blow up a whole document.
    let mut evaluators = serde_json::Map::new();
    evaluators.insert("e0".into(), json!({"==": [1, 1]}));
    for level in 1..11 {
        evaluators.insert(
            format!("e{level}"),
            json!({"and": [{"$ref": format!("e{}", level - 1)}, {"$ref": format!("e{}", level - 1)}]}),
        );
    }
    let flags: serde_json::Map<String, Value> = (0..300)
        .map(|index| {
            (
                format!("f{index}"),
                json!({"state": "ENABLED", "variants": {"a": "a"}, "targeting": {"if": [{"$ref": "e10"}, "a"]}}),
            )
        })
        .collect();
    let error =
        FlagSet::from_document(&json!({"flags": flags, "$evaluators": evaluators}), &Limits::default()).unwrap_err();
    assert!(error.message.contains("expand to more than"), "{error}");
}
