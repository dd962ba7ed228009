//! The flagd-testbed evaluator suite (Gherkin), run against flag-engine.
//!
//! Every example row of every scenario in `evaluator/gherkin/*.feature` becomes one test, run
//! against the testbed's own `evaluator/flags/testkit-flags.json`. The runner uses libtest-mimic
//! so that nextest lists and runs each scenario on its own. A step phrase this runner does not
//! know fails its scenario: a new testbed version cannot pass by being skipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use flag_engine::{Context, FlagSet, Limits, Resolution, Scope, ValueKind};
use gherkin::{Feature, GherkinEnv, Scenario, Step};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Map, Value, json};

/// Tags whose scenarios do not apply to us, each with the reason.
const EXCLUDED_TAGS: &[(&str, &str)] = &[
    (
        "fractional-v1",
        "legacy float bucketing (abs(hash) / i32::MAX * 100); flagd replaced it with v2, which we implement",
    ),
    (
        "fractional-v3",
        "a bucketing revision after v2 that flagd has not adopted; the issue excludes it",
    ),
];

fn testbed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/flagd-testbed/evaluator")
}

fn main() {
    let args = Arguments::from_args();
    let root = testbed();
    let text = std::fs::read_to_string(root.join("flags/testkit-flags.json")).expect("testkit-flags.json is readable");
    let flags = Arc::new(FlagSet::parse(&text, &Limits::default()).expect("testkit-flags.json loads"));

    let mut features: Vec<PathBuf> = std::fs::read_dir(root.join("gherkin"))
        .expect("the evaluator gherkin directory exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "feature"))
        .collect();
    features.sort();

    let mut trials = Vec::new();
    for path in features {
        let feature = parse_feature(&path);
        let stem = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or("feature")
            .to_owned();
        for scenario in &feature.scenarios {
            for case in expand(&feature, scenario) {
                let flags = Arc::clone(&flags);
                let name = format!("{stem}::{}", case.name);
                let excluded = case
                    .tags
                    .iter()
                    .find_map(|tag| EXCLUDED_TAGS.iter().find(|(excluded, _)| excluded == tag));
                let steps = case.steps;
                let trial = Trial::test(name, move || run(&flags, &steps));
                trials.push(trial.with_ignored_flag(excluded.is_some()));
            }
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

/// The gherkin crate accepts only the specification's escapes in table cells (`\|`, `\\`,
/// `\n`); the testbed writes `\"`, which other parsers keep as it is. Doubling the backslash
/// first gives every parser the same cell text.
fn parse_feature(path: &Path) -> Feature {
    let text = std::fs::read_to_string(path)
        .expect("feature is readable")
        .replace("\\\"", "\\\\\"");
    Feature::parse(text, GherkinEnv::default()).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// One concrete scenario: an example row substituted into the steps.
struct Case {
    name: String,
    tags: Vec<String>,
    steps: Vec<(String, Option<Vec<Vec<String>>>)>,
}

fn expand(feature: &Feature, scenario: &Scenario) -> Vec<Case> {
    let background = feature.background.iter().flat_map(|background| background.steps.iter());
    let steps: Vec<&Step> = background.chain(scenario.steps.iter()).collect();
    let tags: Vec<String> = feature
        .tags
        .iter()
        .chain(&scenario.tags)
        .map(|tag| tag.trim_start_matches('@').to_owned())
        .collect();
    let concrete = |step: &Step, row: &[(&str, &str)]| {
        let mut text = step.value.clone();
        for (column, value) in row {
            text = text.replace(&format!("<{column}>"), value);
        }
        (text, step.table.as_ref().map(|table| table.rows.clone()))
    };

    if scenario.examples.is_empty() {
        let steps = steps.iter().map(|step| concrete(step, &[])).collect();
        return vec![Case {
            name: scenario.name.clone(),
            tags,
            steps,
        }];
    }
    let mut cases = Vec::new();
    for (block, examples) in scenario.examples.iter().enumerate() {
        let Some(table) = &examples.table else { continue };
        let Some((header, rows)) = table.rows.split_first() else {
            continue;
        };
        let mut block_tags = tags.clone();
        block_tags.extend(examples.tags.iter().map(|tag| tag.trim_start_matches('@').to_owned()));
        for (index, row) in rows.iter().enumerate() {
            let pairs: Vec<(&str, &str)> = header
                .iter()
                .map(String::as_str)
                .zip(row.iter().map(String::as_str))
                .collect();
            let label = row.join(" | ");
            cases.push(Case {
                name: format!("{} [examples {} row {}: {label}]", scenario.name, block + 1, index + 1),
                tags: block_tags.clone(),
                steps: steps.iter().map(|step| concrete(step, &pairs)).collect(),
            });
        }
    }
    cases
}

/// The state a scenario builds up step by step.
#[derive(Default)]
struct World {
    flag: Option<(String, ValueKind, Value)>,
    context: Context,
    details: Option<Details>,
}

/// What an OpenFeature client would report for one evaluation.
struct Details {
    value: Value,
    reason: String,
    error_code: Option<String>,
    metadata: Map<String, Value>,
}

fn run(flags: &FlagSet, steps: &[(String, Option<Vec<Vec<String>>>)]) -> Result<(), Failed> {
    let mut world = World::default();
    for (text, table) in steps {
        step(flags, &mut world, text, table.as_deref())
            .map_err(|message| Failed::from(format!("step \"{text}\": {message}")))?;
    }
    Ok(())
}

fn step(flags: &FlagSet, world: &mut World, text: &str, table: Option<&[Vec<String>]>) -> Result<(), String> {
    let args = quoted(text);
    let arg = |index: usize| {
        args.get(index)
            .cloned()
            .ok_or_else(|| format!("missing argument {index}"))
    };
    if text == "an evaluator" {
        return Ok(());
    }
    if let Some((kind, _)) = text
        .strip_prefix("a ")
        .and_then(|rest| rest.split_once("-flag with key "))
    {
        let kind = kind_named(kind)?;
        let fallback = typed(kind_type_name(kind), &arg(1)?)?;
        world.flag = Some((arg(0)?, kind, fallback));
        return Ok(());
    }
    if text.starts_with("a context containing a targeting key with value") {
        world.context.insert("targetingKey", Value::String(arg(0)?));
        return Ok(());
    }
    if text.starts_with("a context containing a key ") {
        let value = typed(&arg(1)?, &arg(2)?)?;
        world.context.insert(arg(0)?, value);
        return Ok(());
    }
    if text.starts_with("a context containing a nested property with outer key") {
        world.context.insert(arg(0)?, json!({ arg(1)?: arg(2)? }));
        return Ok(());
    }
    if text == "the flag was evaluated with details" {
        world.details = Some(evaluate(flags, world)?);
        return Ok(());
    }
    let details = world.details.as_ref().ok_or("no evaluation yet")?;
    if text.starts_with("the resolved details value should be") {
        let (_, kind, _) = world.flag.as_ref().ok_or("no flag chosen")?;
        let expected = typed(kind_type_name(*kind), &arg(0)?)?;
        return same_value(&details.value, &expected);
    }
    if text.starts_with("the reason should be") {
        return expect_eq(&details.reason, &arg(0)?);
    }
    if text.starts_with("the error-code should be") {
        return expect_eq(details.error_code.as_deref().unwrap_or(""), &arg(0)?);
    }
    if text == "the resolved metadata is empty" {
        return if details.metadata.is_empty() {
            Ok(())
        } else {
            Err(format!("metadata {:?}", details.metadata))
        };
    }
    if text == "the resolved metadata should contain" {
        let rows = table.ok_or("expected a table")?;
        for row in rows.iter().skip(1) {
            let [key, kind, value] = row.as_slice() else {
                return Err(format!("bad row {row:?}"));
            };
            let actual = details
                .metadata
                .get(key)
                .ok_or_else(|| format!("metadata has no \"{key}\""))?;
            same_value(actual, &typed(kind, value)?)?;
        }
        return Ok(());
    }
    Err("this runner does not know the step".into())
}

fn evaluate(flags: &FlagSet, world: &World) -> Result<Details, String> {
    let (key, kind, fallback) = world.flag.as_ref().ok_or("no flag chosen")?;
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    let scope = Scope {
        context: &world.context,
        timestamp,
    };
    let Resolution {
        value,
        reason,
        error,
        metadata,
        ..
    } = flags.evaluate(key, &scope).expecting(*kind);
    Ok(Details {
        value: value.cloned().unwrap_or_else(|| fallback.clone()),
        reason: reason.as_str().to_owned(),
        error_code: error.map(|(code, _)| code.as_str().to_owned()),
        metadata: metadata.clone(),
    })
}

fn kind_named(name: &str) -> Result<ValueKind, String> {
    Ok(match name {
        "Boolean" => ValueKind::Boolean,
        "String" => ValueKind::String,
        "Integer" => ValueKind::Integer,
        "Float" => ValueKind::Float,
        "Object" => ValueKind::Object,
        other => return Err(format!("unknown flag type {other}")),
    })
}

fn kind_type_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Boolean => "Boolean",
        ValueKind::String => "String",
        ValueKind::Integer => "Integer",
        ValueKind::Float => "Float",
        ValueKind::Object => "Object",
    }
}

/// A Gherkin cell read as the named type.
fn typed(kind: &str, text: &str) -> Result<Value, String> {
    let bad = |_| format!("\"{text}\" is not a {kind}");
    Ok(match kind {
        "String" => Value::String(text.to_owned()),
        "Boolean" => Value::Bool(text.parse().map_err(|_| format!("\"{text}\" is not a Boolean"))?),
        "Integer" => Value::from(
            text.parse::<i64>()
                .map_err(|_| format!("\"{text}\" is not an Integer"))?,
        ),
        "Float" => Value::from(text.parse::<f64>().map_err(|_| format!("\"{text}\" is not a Float"))?),
        "Object" => serde_json::from_str(&text.replace("\\\"", "\"")).map_err(bad)?,
        other => return Err(format!("unknown type {other}")),
    })
}

fn same_value(actual: &Value, expected: &Value) -> Result<(), String> {
    let equal = match (actual.as_f64(), expected.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => actual == expected,
    };
    if equal {
        Ok(())
    } else {
        Err(format!("got {actual}, expected {expected}"))
    }
}

fn expect_eq(actual: &str, expected: &str) -> Result<(), String> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("got \"{actual}\", expected \"{expected}\""))
    }
}

/// The double-quoted arguments of a step, in order; `\"` inside one stands for a quote.
fn quoted(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (&mut current, c) {
            (None, '"') => current = Some(String::new()),
            (Some(arg), '\\') => {
                if let Some(next) = chars.next() {
                    arg.push('\\');
                    arg.push(next);
                }
            }
            (Some(_), '"') => args.extend(current.take()),
            (Some(arg), c) => arg.push(c),
            (None, _) => {}
        }
    }
    args
}
