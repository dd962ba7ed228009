//! Flag evaluation, Switchyard's flag-engine next to Unleash's Rust engine (unleash-yggdrasil
//! 0.21.7), on equivalent flags and the same 64 evaluation contexts.
//!
//! Definitions: `flags.json` (flagd format, read by flag-engine and by the Node benchmark of
//! `@openfeature/flagd-core`) and `unleash-features.json` (Unleash's `/api/client/features`
//! format, read by yggdrasil). Contexts: `contexts.json`.
//!
//! One criterion group per case, each with a `switchyard` and a `yggdrasil` function:
//!
//! * `static` — flagd: a boolean flag with no targeting (`defaultVariant: on`).
//!   Unleash: an enabled toggle with the `default` strategy (on for everyone), asked with
//!   `is_enabled`. Exact equivalent: both answer `true` for every context without reading it.
//! * `targeting` — flagd: `if (email ends_with "@example.com" and country in [DE,FR,NL,BE,AT]
//!   and sem_ver(appVersion) >= 2.3.0) then "on" else "off"`.
//!   Unleash: the `default` strategy with three constraints, which Unleash ANDs:
//!   `email STR_ENDS_WITH ["@example.com"]`, `country IN [...]`, `appVersion SEMVER_GTE 2.3.0`,
//!   asked with `is_enabled` (enabled = "on"). Exact equivalent for these contexts. Two
//!   differences in general: Unleash context properties are strings only (flagd's can be any
//!   JSON), and `STR_ENDS_WITH` takes a list of suffixes (one here).
//!   Every context satisfies all three conditions, so neither engine can stop early.
//! * `fractional` — flagd: `fractional` shorthand, four buckets of weight 25, bucketed by
//!   murmur3(flagKey + targetingKey). Unleash: no operator of the same form; the nearest is a
//!   toggle whose `default` strategy is on for everyone and which has four variants of weight
//!   250 each with `stickiness: userId` (targetingKey -> userId), chosen by `get_variant`.
//!   It is the same work — one murmur3 of a key built from the flag and the user, then a walk
//!   over cumulative weights — but not the same arithmetic: Unleash hashes "toggle:userId" with
//!   seed 86028157 and takes `hash % 1000 + 1`, flagd hashes "toggleuserId" with seed 0 and
//!   takes `(hash * 100) >> 32`, so a given user may land in a different colour; the shares
//!   are 25 % each in both (checked below). `get_variant` also returns an owned variant (name
//!   and payload cloned) where flag-engine borrows from the flag; that is part of its API.
//! * `sem_ver` — flagd: `if sem_ver(appVersion) >= 2.3.0 then "on" else "off"`. Unleash: one
//!   `appVersion SEMVER_GTE 2.3.0` constraint, `is_enabled`. Exact equivalent (the pool has a
//!   pre-release, 4.1.0-rc.1, which both order above 2.3.0).
//!
//! Like a server, each engine gets contexts built once, in the form its API takes (a
//! `flag_engine::Context`, built from the JSON object, for flag-engine, an Unleash `Context` whose custom fields are string
//! `properties`), and every iteration takes the next of the 64 (different targeting keys, so
//! fractional does not hash one key over and over). flag-engine is called the way
//! flag-service calls it: `FlagSet::evaluate(key, &scope).expecting(kind)`, with a timestamp
//! read once (flag-service reads the clock per request, outside the engine).

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use flag_engine::{Context as EvaluationContext, FlagSet, Limits, Reason, Scope, ValueKind};
use serde_json::{Map, Value};
use unleash_yggdrasil::{ClientFeatures, Context, EngineState, UpdateMessage};

const POOL: usize = 64;

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

struct Fixture {
    flags: FlagSet,
    engine: EngineState,
    /// The contexts as flag-engine takes them.
    flagd_contexts: Vec<EvaluationContext>,
    /// The same contexts as yggdrasil takes them.
    unleash_contexts: Vec<Context>,
    timestamp: i64,
}

impl Fixture {
    fn load() -> Self {
        let flags = FlagSet::parse(&read("flags.json"), &Limits::default()).expect("flags.json compiles");
        assert!(flags.problems().is_empty(), "{:?}", flags.problems());

        let features: ClientFeatures =
            serde_json::from_str(&read("unleash-features.json")).expect("unleash-features.json deserializes");
        let engine = EngineState::default();
        if let Some(warnings) = engine.take_state(UpdateMessage::FullResponse(features)) {
            panic!("yggdrasil warned about unleash-features.json: {warnings:?}");
        }

        let document: Value = serde_json::from_str(&read("contexts.json")).expect("contexts.json parses");
        let json_contexts: Vec<Map<String, Value>> = document["contexts"]
            .as_array()
            .expect("contexts is an array")
            .iter()
            .map(|context| context.as_object().expect("a context is an object").clone())
            .collect();
        assert_eq!(json_contexts.len(), POOL);
        let unleash_contexts = json_contexts.iter().map(unleash_context).collect();
        let flagd_contexts = json_contexts.into_iter().map(EvaluationContext::from).collect();

        Self {
            flags,
            engine,
            flagd_contexts,
            unleash_contexts,
            timestamp: 1_767_225_600,
        }
    }

    fn scope(&self, index: usize) -> Scope<'_> {
        Scope {
            context: &self.flagd_contexts[index],
            timestamp: self.timestamp,
        }
    }

    /// Both engines agree on every context before anything is timed.
    fn check(&self) {
        for index in 0..POOL {
            let scope = self.scope(index);
            let context = &self.unleash_contexts[index];
            for (key, variant) in [("static-bool", "on"), ("targeted", "on"), ("semver", "on")] {
                let resolution = self.flags.evaluate(key, &scope).expecting(ValueKind::Boolean);
                assert_eq!(resolution.variant, Some(variant), "switchyard {key} #{index}");
                assert_eq!(resolution.value, Some(&Value::Bool(true)), "switchyard {key} #{index}");
                assert!(self.engine.is_enabled(key, context, &None), "yggdrasil {key} #{index}");
            }
            let resolution = self.flags.evaluate("fractional", &scope);
            assert_eq!(resolution.reason, Reason::TargetingMatch);
            let chosen = self.engine.get_variant("fractional", context, &None);
            assert!(
                chosen.enabled && chosen.feature_enabled,
                "yggdrasil fractional #{index}"
            );
            let colours = ["red", "blue", "green", "yellow"];
            assert!(colours.contains(&chosen.name.as_str()));
            assert!(resolution.variant.is_some_and(|name| colours.contains(&name)));
        }
        // flag-engine and flagd-core (JS) implement the same bucketing (flagd v2), so they must
        // assign every context the same colour; the bench script compares the two lists.
        if let Some(path) = std::env::var_os("FLAG_ENGINE_BENCH_ASSIGNMENTS") {
            let assignments: Map<String, Value> = (0..POOL)
                .map(|index| {
                    let scope = self.scope(index);
                    let key = scope
                        .context
                        .get("targetingKey")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let variant = self.flags.evaluate("fractional", &scope).variant.unwrap_or_default();
                    (key, Value::from(variant))
                })
                .collect();
            std::fs::write(&path, Value::Object(assignments).to_string()).expect("assignments written");
        }
        // Same shares: 10,000 users, each colour within 23–27 % in both engines.
        let mut shares: [HashMap<String, u32>; 2] = Default::default();
        for user in 0..10_000 {
            let key = format!("share-{user}");
            let mut flagd = EvaluationContext::new();
            flagd.insert("targetingKey", Value::String(key.clone()));
            let scope = Scope {
                context: &flagd,
                timestamp: self.timestamp,
            };
            let name = self
                .flags
                .evaluate("fractional", &scope)
                .variant
                .unwrap_or("none")
                .to_owned();
            *shares[0].entry(name).or_default() += 1;
            let unleash = Context {
                user_id: Some(key),
                ..Context::default()
            };
            *shares[1]
                .entry(self.engine.get_variant("fractional", &unleash, &None).name)
                .or_default() += 1;
        }
        for (engine, counts) in ["switchyard", "yggdrasil"].iter().zip(&shares) {
            assert_eq!(counts.len(), 4, "{engine}: {counts:?}");
            assert!(
                counts.values().all(|&n| (2_300..=2_700).contains(&n)),
                "{engine}: {counts:?}"
            );
        }
    }
}

/// targetingKey becomes Unleash's userId (what `stickiness: userId` hashes); every other field
/// a string property.
fn unleash_context(context: &Map<String, Value>) -> Context {
    let mut properties = HashMap::new();
    let mut user_id = None;
    for (name, value) in context {
        let text = value.as_str().expect("context values are strings").to_owned();
        if name == "targetingKey" {
            user_id = Some(text);
        } else {
            properties.insert(name.clone(), text);
        }
    }
    Context {
        user_id,
        properties: Some(properties),
        ..Context::default()
    }
}

/// (criterion group, flagd/Unleash flag key, the type flag-service would ask flag-engine for,
/// whether yggdrasil is asked for a variant rather than enabled/disabled)
const CASES: [(&str, &str, ValueKind, bool); 4] = [
    ("static", "static-bool", ValueKind::Boolean, false),
    ("targeting", "targeted", ValueKind::Boolean, false),
    ("fractional", "fractional", ValueKind::String, true),
    ("sem_ver", "semver", ValueKind::Boolean, false),
];

fn engines(c: &mut Criterion) {
    let fixture = Fixture::load();
    fixture.check();

    for (group_name, key, kind, wants_variant) in CASES {
        let mut group = c.benchmark_group(group_name);

        group.bench_function("switchyard", |b| {
            let mut next = 0usize;
            b.iter(|| {
                let scope = fixture.scope(next % POOL);
                next = next.wrapping_add(1);
                let resolution = fixture
                    .flags
                    .evaluate(black_box(key), black_box(&scope))
                    .expecting(kind);
                black_box(resolution.value);
                black_box(resolution.variant);
            });
        });

        group.bench_function("yggdrasil", |b| {
            let mut next = 0usize;
            b.iter(|| {
                let context = &fixture.unleash_contexts[next % POOL];
                next = next.wrapping_add(1);
                if wants_variant {
                    black_box(fixture.engine.get_variant(black_box(key), black_box(context), &None));
                } else {
                    black_box(fixture.engine.is_enabled(black_box(key), black_box(context), &None));
                }
            });
        });

        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(4))
        .sample_size(100)
}

criterion_group! {
    name = benches;
    config = config();
    targets = engines
}
criterion_main!(benches);
