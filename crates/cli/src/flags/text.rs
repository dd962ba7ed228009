//! How flags, versions and evaluations look in `--output text`: one `field  value` line per
//! fact for a single resource, a table for lists. Maps arrive in no particular order, so
//! everything is sorted here, to print the same way every time.

use switchyard_api::flags::v1::{self as pb, Lifecycle};

use crate::output::{compact, compact_struct, print_table, time};

/// The last segment of a resource name: the flag or segment key.
pub fn key(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

pub fn lifecycle(value: i32) -> &'static str {
    match Lifecycle::try_from(value) {
        Ok(Lifecycle::Unspecified | Lifecycle::Active) => "active",
        Ok(Lifecycle::Deprecated) => "deprecated",
        Ok(Lifecycle::Archived) => "archived",
        Err(_) => "unknown",
    }
}

/// Prints `field  value` lines with the values aligned.
pub fn print_fields(fields: &[(String, String)]) {
    let width = fields.iter().map(|(field, _)| field.chars().count()).max().unwrap_or(0);
    for (field, value) in fields {
        let value = if value.is_empty() { "-" } else { value.as_str() };
        println!("{field:<width$}  {value}");
    }
}

/// The flag's environments sorted by id.
fn environments(flag: &pb::Flag) -> Vec<(&String, &pb::EnvironmentRules)> {
    let mut environments: Vec<_> = flag.environments.iter().collect();
    environments.sort_by(|a, b| a.0.cmp(b.0));
    environments
}

/// `enabled, default off, targeting {...}` for one environment.
pub fn rules(rules: &pb::EnvironmentRules) -> String {
    let state = if rules.enabled { "enabled" } else { "disabled" };
    let default = match rules.default_variant.as_str() {
        "" => "(caller's)",
        variant => variant,
    };
    let mut text = format!("{state}, default {default}");
    if !rules.prerequisites.is_empty() {
        text.push_str(", requires ");
        text.push_str(&prerequisites(&rules.prerequisites));
    }
    if let Some(targeting) = rules
        .targeting
        .as_ref()
        .filter(|targeting| !targeting.fields.is_empty())
    {
        text.push_str(", targeting ");
        text.push_str(&compact_struct(targeting));
    }
    text
}

/// `beta=on|yes, other=x`: each flag that must serve one of the listed variants.
fn prerequisites(prerequisites: &[pb::Prerequisite]) -> String {
    let each: Vec<String> = prerequisites
        .iter()
        .map(|prerequisite| format!("{}={}", prerequisite.flag, prerequisite.variants.join("|")))
        .collect();
    each.join(", ")
}

fn variants(flag: &pb::Flag) -> String {
    let Some(variants) = &flag.variants else {
        return String::new();
    };
    let mut pairs: Vec<String> = variants
        .fields
        .iter()
        .map(|(name, value)| format!("{name}={}", compact(value)))
        .collect();
    pairs.sort();
    pairs.join(", ")
}

pub fn print_flag(flag: &pb::Flag) {
    let mut fields = vec![
        ("flag".to_owned(), key(&flag.name).to_owned()),
        ("version".to_owned(), flag.version.to_string()),
        ("description".to_owned(), flag.description.clone()),
        ("owner".to_owned(), flag.owner.clone()),
        ("tags".to_owned(), flag.tags.join(", ")),
        ("lifecycle".to_owned(), lifecycle(flag.lifecycle).to_owned()),
        ("variants".to_owned(), variants(flag)),
    ];
    if let Some(metadata) = flag.metadata.as_ref().filter(|metadata| !metadata.fields.is_empty()) {
        fields.push(("metadata".to_owned(), compact_struct(metadata)));
    }
    fields.push(("updated".to_owned(), time(flag.update_time.as_ref())));
    for (environment, environment_rules) in environments(flag) {
        fields.push((format!("env {environment}"), rules(environment_rules)));
    }
    print_fields(&fields);
}

/// `dev:on prod:off`: where the flag is enabled, at a glance.
fn states(flag: &pb::Flag) -> String {
    let states: Vec<String> = environments(flag)
        .into_iter()
        .map(|(environment, rules)| format!("{environment}:{}", if rules.enabled { "on" } else { "off" }))
        .collect();
    states.join(" ")
}

pub fn print_flags(flags: &[pb::Flag]) {
    let rows: Vec<Vec<String>> = flags
        .iter()
        .map(|flag| {
            vec![
                key(&flag.name).to_owned(),
                flag.version.to_string(),
                lifecycle(flag.lifecycle).to_owned(),
                flag.tags.join(","),
                states(flag),
                flag.description.clone(),
            ]
        })
        .collect();
    print_table(
        &["FLAG", "VERSION", "LIFECYCLE", "TAGS", "ENVIRONMENTS", "DESCRIPTION"],
        &rows,
    );
}

pub fn print_versions(versions: &[pb::FlagVersion]) {
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|version| {
            vec![
                version.version.to_string(),
                time(version.create_time.as_ref()),
                version.author.clone(),
                version.message.clone(),
            ]
        })
        .collect();
    print_table(&["VERSION", "TIME", "AUTHOR", "MESSAGE"], &rows);
}

pub fn print_changes(changes: &[pb::FieldChange]) {
    if changes.is_empty() {
        println!("no changes");
    }
    for change in changes {
        let before = change.before.as_ref().map(compact).unwrap_or_default();
        let after = change.after.as_ref().map(compact).unwrap_or_default();
        match change.kind.as_str() {
            "added" => println!("+ {}: {after}", change.path),
            "removed" => println!("- {}: {before}", change.path),
            _ => println!("~ {}: {before} -> {after}", change.path),
        }
    }
}

/// The value an evaluation served; unset means the caller falls back to its own default.
fn value(evaluation: &pb::Evaluation) -> String {
    evaluation
        .value
        .as_ref()
        .map_or_else(|| "(caller's default)".to_owned(), compact)
}

/// The reason, or for a failed evaluation the error code and its explanation.
fn outcome(evaluation: &pb::Evaluation) -> String {
    if evaluation.error_code.is_empty() {
        return evaluation.reason.clone();
    }
    format!(
        "{} {}: {}",
        evaluation.reason, evaluation.error_code, evaluation.error_message
    )
}

pub fn print_evaluation(evaluation: &pb::Evaluation) {
    let mut fields = vec![
        ("flag".to_owned(), evaluation.flag.clone()),
        ("value".to_owned(), value(evaluation)),
        ("variant".to_owned(), evaluation.variant.clone()),
        ("reason".to_owned(), outcome(evaluation)),
    ];
    if let Some(metadata) = evaluation
        .metadata
        .as_ref()
        .filter(|metadata| !metadata.fields.is_empty())
    {
        fields.push(("metadata".to_owned(), compact_struct(metadata)));
    }
    print_fields(&fields);
}

pub fn print_evaluations(evaluations: &[pb::Evaluation]) {
    let rows: Vec<Vec<String>> = evaluations
        .iter()
        .map(|evaluation| {
            vec![
                evaluation.flag.clone(),
                value(evaluation),
                evaluation.variant.clone(),
                outcome(evaluation),
            ]
        })
        .collect();
    print_table(&["FLAG", "VALUE", "VARIANT", "REASON"], &rows);
}

pub fn print_audit(records: &[pb::AuditRecord]) {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|record| {
            vec![
                record.sequence.to_string(),
                time(record.create_time.as_ref()),
                record.actor.clone(),
                record.action.clone(),
                record.resource.clone(),
            ]
        })
        .collect();
    print_table(&["SEQUENCE", "TIME", "ACTOR", "ACTION", "RESOURCE"], &rows);
}

pub fn print_segment(segment: &pb::Segment) {
    print_fields(&[
        ("segment".to_owned(), key(&segment.name).to_owned()),
        ("version".to_owned(), segment.version.to_string()),
        ("description".to_owned(), segment.description.clone()),
        (
            "rule".to_owned(),
            segment.rule.as_ref().map(compact_struct).unwrap_or_default(),
        ),
    ]);
}

pub fn print_segments(segments: &[pb::Segment]) {
    let rows: Vec<Vec<String>> = segments
        .iter()
        .map(|segment| {
            vec![
                key(&segment.name).to_owned(),
                segment.version.to_string(),
                segment.description.clone(),
            ]
        })
        .collect();
    print_table(&["SEGMENT", "VERSION", "DESCRIPTION"], &rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_as_one_line() {
        let targeting = serde_json::json!({"if": [{"var": "beta"}, "on"]});
        let mut rules = pb::EnvironmentRules {
            enabled: false,
            default_variant: String::new(),
            targeting: Some(serde_json::from_value(targeting).unwrap()),
            ..Default::default()
        };
        assert_eq!(
            super::rules(&rules),
            r#"disabled, default (caller's), targeting {"if":[{"var":"beta"},"on"]}"#
        );
        rules.targeting = None;
        rules.default_variant = "off".into();
        rules.prerequisites = vec![pb::Prerequisite {
            flag: "checkout".into(),
            variants: vec!["new".into(), "both".into()],
        }];
        assert_eq!(
            super::rules(&rules),
            "disabled, default off, requires checkout=new|both"
        );
    }

    #[test]
    fn failed_evaluations_show_their_error() {
        let evaluation = pb::Evaluation {
            flag: "ghost".into(),
            reason: "ERROR".into(),
            error_code: "FLAG_NOT_FOUND".into(),
            error_message: "flag not found".into(),
            ..Default::default()
        };
        assert_eq!(outcome(&evaluation), "ERROR FLAG_NOT_FOUND: flag not found");
        assert_eq!(value(&evaluation), "(caller's default)");
        assert_eq!(lifecycle(0), "active");
        assert_eq!(key("projects/shop/flags/banner"), "banner");
    }
}
