//! Prerequisites: a flag's rules apply only while other flags serve given variants.
//!
//! They are compiled into plain flagd targeting, so every protocol — and in-process providers,
//! which evaluate locally — honours them without knowing of them. The prerequisite flag's own
//! choice is inlined as an expression: its targeting (with `$flagd.flagKey` and fractional's
//! default bucketing key pinned to the prerequisite's key, so it buckets exactly as when it is
//! evaluated on its own), falling back to its default variant. A disabled or archived
//! prerequisite is never met. When a prerequisite is not met the flag serves its default variant.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::{FlagDefinition, Lifecycle, ProjectFlags};

/// How deep prerequisites may chain (a flag's prerequisite having prerequisites...).
const MAX_CHAIN: usize = 8;

/// A flag that must serve one of `variants` for the owning flag's rules to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Prerequisite {
    pub flag: String,
    pub variants: Vec<String>,
}

/// The targeting `flag` is served with in `environment`: its own, guarded by its
/// prerequisites when it has any. `Err` names what is wrong with a prerequisite.
pub fn served_targeting(
    project: &ProjectFlags,
    flag: &FlagDefinition,
    environment: &str,
) -> Result<Option<Value>, String> {
    let Some(rules) = flag.environments.get(environment) else {
        return Ok(None);
    };
    if rules.prerequisites.is_empty() {
        return Ok(rules.targeting.clone());
    }
    let condition = all_met(project, &rules.prerequisites, environment, 0)?;
    let chosen = rules
        .targeting
        .clone()
        .or_else(|| rules.default_variant.clone().map(Value::String))
        .unwrap_or(Value::Null);
    Ok(Some(json!({ "if": [condition, chosen, null] })))
}

fn all_met(
    project: &ProjectFlags,
    prerequisites: &[Prerequisite],
    environment: &str,
    depth: usize,
) -> Result<Value, String> {
    if depth >= MAX_CHAIN {
        return Err(format!(
            "prerequisites chain deeper than {MAX_CHAIN} flags (or form a cycle)"
        ));
    }
    let conditions = prerequisites
        .iter()
        .map(|prerequisite| met(project, prerequisite, environment, depth))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match conditions.len() {
        1 => conditions.into_iter().next().unwrap_or(Value::Bool(false)),
        _ => json!({ "and": conditions }),
    })
}

fn met(project: &ProjectFlags, prerequisite: &Prerequisite, environment: &str, depth: usize) -> Result<Value, String> {
    let Some(required) = project.flags.get(&prerequisite.flag) else {
        return Err(format!("prerequisite flag \"{}\" does not exist", prerequisite.flag));
    };
    if let Some(unknown) = prerequisite
        .variants
        .iter()
        .find(|variant| !required.variants.contains_key(*variant))
    {
        return Err(format!(
            "\"{unknown}\" is not a variant of prerequisite flag \"{}\"",
            prerequisite.flag
        ));
    }
    let rules = match required.environments.get(environment) {
        Some(rules) if rules.enabled && required.lifecycle != Lifecycle::Archived => rules,
        _ => return Ok(Value::Bool(false)),
    };
    let own = rules
        .targeting
        .as_ref()
        .map(|targeting| pinned(targeting, &prerequisite.flag));
    let guarded = match (rules.prerequisites.is_empty(), own) {
        (true, own) => own,
        (false, own) => {
            let condition = all_met(project, &rules.prerequisites, environment, depth + 1)?;
            let chosen = own
                .or_else(|| rules.default_variant.clone().map(Value::String))
                .unwrap_or(Value::Null);
            Some(json!({ "if": [condition, chosen, null] }))
        }
    };
    let choice = match (guarded, &rules.default_variant) {
        (Some(expression), Some(default)) => json!({ "or": [expression, default] }),
        (Some(expression), None) => expression,
        (None, Some(default)) => Value::String(default.clone()),
        (None, None) => Value::Null,
    };
    Ok(json!({ "in": [choice, prerequisite.variants] }))
}

/// `rule` as it behaves for flag `key` when evaluated inside another flag.
fn pinned(rule: &Value, key: &str) -> Value {
    match rule {
        Value::Array(items) => Value::Array(items.iter().map(|item| pinned(item, key)).collect()),
        Value::Object(object) if object.len() == 1 => {
            let Some((operator, args)) = object.iter().next() else {
                return rule.clone();
            };
            match (operator.as_str(), args) {
                ("var", Value::String(path)) if path == "$flagd.flagKey" => Value::String(key.to_owned()),
                ("var", Value::Array(path)) if path.first() == Some(&json!("$flagd.flagKey")) => {
                    Value::String(key.to_owned())
                }
                ("fractional", Value::Array(args)) => {
                    let mut args: Vec<Value> = args.iter().map(|arg| pinned(arg, key)).collect();
                    if matches!(args.first(), Some(Value::Array(_))) {
                        // The default bucketing key is flag key + targeting key (null without one).
                        let bucket =
                            json!({"if": [{"var": "targetingKey"}, {"cat": [key, {"var": "targetingKey"}]}, null]});
                        args.insert(0, bucket);
                    }
                    json!({ "fractional": args })
                }
                (operator, args) => json!({ operator: pinned(args, key) }),
            }
        }
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(name, value)| (name.clone(), pinned(value, key)))
                .collect(),
        ),
        scalar => scalar.clone(),
    }
}

#[cfg(test)]
mod tests {
    use flag_engine::{FlagSet, Limits, Scope};

    use super::*;

    fn flag(value: Value) -> FlagDefinition {
        serde_json::from_value(value).unwrap_or_else(|error| panic!("{error}"))
    }

    fn variant(project: &ProjectFlags, key: &str, context: Value) -> Option<String> {
        let document = project
            .document("shop", "prod")
            .unwrap_or_else(|violation| panic!("{violation:?}"));
        let flags = FlagSet::from_document(&document, &Limits::default()).unwrap_or_default();
        let context = flag_engine::Context::from(context.as_object().cloned().unwrap_or_default());
        flags
            .evaluate(
                key,
                &Scope {
                    context: &context,
                    timestamp: 0,
                },
            )
            .variant
            .map(str::to_owned)
    }

    fn project() -> ProjectFlags {
        let mut project = ProjectFlags::default();
        project.flags.insert(
            "payments-v2".into(),
            flag(json!({"variants": {"on": true, "off": false}, "environments": {"prod": {"enabled": true, "defaultVariant": "off",
                "targeting": {"fractional": [["on", 50], ["off", 50]]}}}})),
        );
        project.flags.insert(
            "wallet".into(),
            flag(json!({"variants": {"shown": "shown", "hidden": "hidden"}, "environments": {"prod": {"enabled": true, "defaultVariant": "hidden",
                "targeting": {"if": [{"==": [{"var": "country"}, "BD"]}, "shown"]},
                "prerequisites": [{"flag": "payments-v2", "variants": ["on"]}]}}})),
        );
        project
    }

    #[test]
    fn a_rule_applies_only_where_its_prerequisite_serves_the_variant() {
        let project = project();
        for user in 0..200 {
            let context = json!({"targetingKey": format!("user-{user}"), "country": "BD"});
            let payments = variant(&project, "payments-v2", context.clone());
            let wallet = variant(&project, "wallet", context);
            let expected = if payments.as_deref() == Some("on") {
                "shown"
            } else {
                "hidden"
            };
            assert_eq!(wallet.as_deref(), Some(expected), "user-{user}: payments {payments:?}");
        }
    }

    #[test]
    fn a_disabled_prerequisite_is_never_met_and_mistakes_are_named() {
        let mut project = project();
        if let Some(rules) = project
            .flags
            .get_mut("payments-v2")
            .and_then(|flag| flag.environments.get_mut("prod"))
        {
            rules.enabled = false;
        }
        assert_eq!(
            variant(&project, "wallet", json!({"targetingKey": "u", "country": "BD"})).as_deref(),
            Some("hidden")
        );

        let mut missing = project.clone();
        if let Some(rules) = missing
            .flags
            .get_mut("wallet")
            .and_then(|flag| flag.environments.get_mut("prod"))
        {
            rules.prerequisites = vec![Prerequisite {
                flag: "nope".into(),
                variants: vec!["on".into()],
            }];
        }
        assert!(missing.document("shop", "prod").is_err());

        let mut cycle = project.clone();
        if let Some(rules) = cycle
            .flags
            .get_mut("payments-v2")
            .and_then(|flag| flag.environments.get_mut("prod"))
        {
            rules.enabled = true;
            rules.prerequisites = vec![Prerequisite {
                flag: "wallet".into(),
                variants: vec!["shown".into()],
            }];
        }
        let error = cycle
            .document("shop", "prod")
            .err()
            .map(|violation| violation.description)
            .unwrap_or_default();
        assert!(error.contains("cycle"), "{error}");
    }
}
