//! Managed flags and segments, and how a project's flags become one flagd document per
//! environment.
//!
//! A flag belongs to a project and has one set of variants; each environment has its own state,
//! default variant and targeting. A segment is a reusable targeting condition; it is served as a
//! flagd `$evaluators` entry, so rules use it with `{"$ref": "<segment>"}` and in-process
//! providers receive it inlined like any other flagd evaluator. Everything is validated by
//! compiling it with flag-engine, exactly as it will be served.

use std::collections::BTreeMap;

use flag_engine::{FlagSet, Limits};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use switchyard_platform::error::FieldViolation;

pub use super::prerequisites::Prerequisite;
use super::prerequisites::served_targeting;

/// Where a flag is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    #[default]
    Active,
    /// Still served; reported so callers can be cleaned up.
    Deprecated,
    /// No longer served in any environment.
    Archived,
}

/// A flag's rules in one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentRules {
    pub enabled: bool,
    /// The variant served when targeting chooses none; `None` serves the caller's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_variant: Option<String>,
    /// JSON Logic choosing a variant (flagd's targeting); `None` serves the default variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targeting: Option<Value>,
    /// Flags that must serve given variants here for these rules to apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<Prerequisite>,
}

/// A flag as stored and versioned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagDefinition {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub lifecycle: Lifecycle,
    pub variants: Map<String, Value>,
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentRules>,
    /// Served with every evaluation (strings, numbers, booleans).
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Client-side SDK keys (`sdk-client`) may evaluate it; other flags stay server-side.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_visible: bool,
}

/// A reusable targeting condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SegmentDefinition {
    #[serde(default)]
    pub description: String,
    /// JSON Logic that is true for the segment's members.
    pub rule: Value,
}

const MAX_TAGS: usize = 32;
const MAX_TAG: usize = 64;
const MAX_DESCRIPTION: usize = 4_000;
const MAX_OWNER: usize = 256;
const MAX_ENVIRONMENTS: usize = 64;

pub use switchyard_platform::names::{check_id, parse_name};

/// The selector name of a project environment's flags.
pub fn source_name(project: &str, environment: &str) -> String {
    format!("projects/{project}/environments/{environment}")
}

impl FlagDefinition {
    /// The plain checks that need no other flag: lengths, ids, tags.
    pub fn check_fields(&self) -> Vec<FieldViolation> {
        let mut violations = Vec::new();
        if self.description.len() > MAX_DESCRIPTION {
            violations.push(FieldViolation::new(
                "description",
                format!("at most {MAX_DESCRIPTION} bytes"),
            ));
        }
        if self.owner.len() > MAX_OWNER {
            violations.push(FieldViolation::new("owner", format!("at most {MAX_OWNER} bytes")));
        }
        if self.tags.len() > MAX_TAGS {
            violations.push(FieldViolation::new("tags", format!("at most {MAX_TAGS} tags")));
        }
        for (index, tag) in self.tags.iter().enumerate() {
            if tag.is_empty() || tag.len() > MAX_TAG {
                violations.push(FieldViolation::new(
                    format!("tags[{index}]"),
                    format!("a tag has 1 to {MAX_TAG} bytes"),
                ));
            }
        }
        if self.environments.len() > MAX_ENVIRONMENTS {
            violations.push(FieldViolation::new(
                "environments",
                format!("at most {MAX_ENVIRONMENTS} environments"),
            ));
        }
        for environment in self.environments.keys() {
            if let Err(violation) = check_id(&format!("environments.{environment}"), environment) {
                violations.push(violation);
            }
        }
        violations
    }
}

/// A project's flags and segments as they are stored.
#[derive(Debug, Clone, Default)]
pub struct ProjectFlags {
    pub flags: BTreeMap<String, FlagDefinition>,
    pub segments: BTreeMap<String, SegmentDefinition>,
}

impl ProjectFlags {
    /// Every environment any flag has rules for.
    pub fn environments(&self) -> Vec<String> {
        let mut environments: Vec<String> = self
            .flags
            .values()
            .flat_map(|flag| flag.environments.keys().cloned())
            .collect();
        environments.sort_unstable();
        environments.dedup();
        environments
    }

    /// The flagd document served for `environment`: every flag that is not archived, segments
    /// as `$evaluators`, and the environment as the flag set id. Fails on a prerequisite that
    /// cannot be served (missing flag or variant, a cycle).
    pub fn document(&self, project: &str, environment: &str) -> Result<Value, FieldViolation> {
        self.document_for(project, environment, false)
    }

    /// The document client keys see: only the client-visible flags (prerequisites are inlined
    /// into targeting, so they still hold).
    pub fn client_document(&self, project: &str, environment: &str) -> Result<Value, FieldViolation> {
        self.document_for(project, environment, true)
    }

    fn document_for(&self, project: &str, environment: &str, client_only: bool) -> Result<Value, FieldViolation> {
        let mut flags = Map::new();
        for (key, flag) in self
            .flags
            .iter()
            .filter(|(_, flag)| flag.lifecycle != Lifecycle::Archived)
            .filter(|(_, flag)| !client_only || flag.client_visible)
        {
            flags.insert(key.clone(), self.served(key, flag, environment)?);
        }
        let evaluators: Map<String, Value> = self
            .segments
            .iter()
            .map(|(key, segment)| (key.clone(), segment.rule.clone()))
            .collect();
        Ok(json!({
            "metadata": { "flagSetId": source_name(project, environment) },
            "flags": flags,
            "$evaluators": evaluators,
        }))
    }

    /// A flag as flagd serves it in `environment`; a flag without rules there is disabled.
    fn served(&self, key: &str, flag: &FlagDefinition, environment: &str) -> Result<Value, FieldViolation> {
        let rules = flag.environments.get(environment);
        let mut served = Map::new();
        let enabled = rules.is_some_and(|rules| rules.enabled);
        served.insert("state".into(), (if enabled { "ENABLED" } else { "DISABLED" }).into());
        served.insert("variants".into(), Value::Object(flag.variants.clone()));
        if let Some(default) = rules.and_then(|rules| rules.default_variant.clone()) {
            served.insert("defaultVariant".into(), default.into());
        }
        let targeting = served_targeting(self, flag, environment).map_err(|message| {
            FieldViolation::new(format!("{key}.environments.{environment}.prerequisites"), message)
        })?;
        if let Some(targeting) = targeting {
            served.insert("targeting".into(), targeting);
        }
        if !flag.metadata.is_empty() {
            served.insert("metadata".into(), Value::Object(flag.metadata.clone()));
        }
        Ok(Value::Object(served))
    }

    /// Compiles every environment; the first mistake of each kind is reported at its field.
    pub fn compile(&self, project: &str) -> Result<Vec<(String, FlagSet)>, Vec<FieldViolation>> {
        let limits = Limits::default();
        let mut compiled = Vec::new();
        let mut violations = Vec::new();
        // A project whose flags have no environment yet still validates its variants.
        let environments = match self.environments() {
            environments if environments.is_empty() => vec![String::new()],
            environments => environments,
        };
        for environment in environments {
            let document = match self.document(project, &environment) {
                Ok(document) => document,
                Err(violation) => {
                    violations.push(violation);
                    continue;
                }
            };
            match FlagSet::from_document(&document, &limits) {
                Ok(flags) => {
                    for problem in flags.problems() {
                        let field = format!("{}.environments.{environment}.targeting", problem.flag);
                        violations.push(FieldViolation::new(field, problem.message));
                    }
                    if !environment.is_empty() {
                        compiled.push((environment, flags));
                    }
                }
                Err(error) => violations.push(FieldViolation::new(located(&error.path, &environment), error.message)),
            }
        }
        // A mistake outside the environments' rules (mixed variant types, say) fails every
        // environment the same way: report it once.
        let mut seen = std::collections::HashSet::new();
        violations.retain(|violation| seen.insert((violation.field.clone(), violation.description.clone())));
        if violations.is_empty() {
            Ok(compiled)
        } else {
            Err(violations)
        }
    }
}

/// Maps a path in the served document (`flags.x.defaultVariant`) to the managed flag's field
/// (`x.environments.prod.defaultVariant`).
fn located(path: &str, environment: &str) -> String {
    let Some(rest) = path.strip_prefix("flags.") else {
        return path.to_owned();
    };
    match rest.split_once('.') {
        Some((flag, field @ ("defaultVariant" | "targeting" | "state"))) => {
            format!("{flag}.environments.{environment}.{field}")
        }
        _ => rest.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(value: Value) -> FlagDefinition {
        serde_json::from_value(value).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn environments_serve_their_own_rules_and_segments_are_evaluators() {
        let mut project = ProjectFlags::default();
        project.segments.insert(
            "staff".into(),
            SegmentDefinition {
                description: String::new(),
                rule: json!({"ends_with": [{"var": "email"}, "@shop.com.bd"]}),
            },
        );
        project.flags.insert(
            "banner".into(),
            flag(json!({
                "variants": {"on": true, "off": false},
                "environments": {
                    "prod": {"enabled": true, "defaultVariant": "off", "targeting": {"if": [{"$ref": "staff"}, "on"]}},
                    "dev": {"enabled": true, "defaultVariant": "on"}
                }
            })),
        );
        project.flags.insert(
            "old".into(),
            flag(json!({"variants": {"a": 1}, "lifecycle": "archived", "environments": {"prod": {"enabled": true}}})),
        );
        let compiled = project.compile("shop").unwrap_or_default();
        let names: Vec<&str> = compiled.iter().map(|(environment, _)| environment.as_str()).collect();
        assert_eq!(names, ["dev", "prod"]);
        let prod = &compiled[1].1;
        assert!(prod.get("old").is_none(), "archived flags are not served");
        let staff = flag_engine::Context::from_iter([("email".to_owned(), json!("ana@shop.com.bd"))]);
        let resolution = prod.evaluate(
            "banner",
            &flag_engine::Scope {
                context: &staff,
                timestamp: 0,
            },
        );
        assert_eq!(resolution.variant, Some("on"));
        assert_eq!(
            prod.get("banner").and_then(|flag| flag.metadata().get("flagSetId")),
            Some(&json!("projects/shop/environments/prod"))
        );
    }

    #[test]
    fn mistakes_are_reported_at_the_managed_field() {
        let mut project = ProjectFlags::default();
        project.flags.insert("banner".into(), flag(json!({"variants": {"on": true}, "environments": {"prod": {"enabled": true, "defaultVariant": "nope"}}})));
        let violations = project.compile("shop").err().unwrap_or_default();
        assert_eq!(violations[0].field, "banner.environments.prod.defaultVariant");

        let mut project = ProjectFlags::default();
        project.flags.insert("banner".into(), flag(json!({"variants": {"on": true}, "environments": {"prod": {"enabled": true, "targeting": {"$ref": "nobody"}}}})));
        let violations = project.compile("shop").err().unwrap_or_default();
        assert_eq!(violations[0].field, "banner.environments.prod.targeting");
        assert!(violations[0].description.contains("nobody"));
    }

    #[test]
    fn ids_are_restricted() {
        assert!(check_id("flag", "new-checkout_v2.1").is_ok());
        for bad in ["", "-x", "a b", "x/y", "x'; DROP TABLE flags;--", &"x".repeat(200)] {
            assert!(check_id("flag", bad).is_err(), "{bad}");
        }
    }
}
