//! Checks a config document against its JSON Schema and its CEL rules. Schemas and rules are
//! compiled once into a [`Validator`] (per config) and reused for every version written, and every
//! problem is reported with the JSON path (see [`json_path`]) of the place it concerns.
//!
//! Schemas and rules are programs their authors hand us, so neither may run unbounded: a rule
//! whose worst case on the document exceeds [`rule_cost::MAX_RULE_COST`] is refused before it
//! runs (when it is saved, against the draft, and at every validation, against the document
//! checked), schema patterns have backtracking and size limits, and [`check`] runs the whole
//! validation on the blocking pool within [`CHECK_TIME_LIMIT`], never on an async worker.

use std::collections::HashMap;
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use std::time::Duration;

use serde_json::Value;

use crate::biz::json_path;
use crate::biz::rule_cost::{self, MAX_RULE_COST, MeasuredDocument};

/// The most rules one config may carry.
pub const MAX_RULES: usize = 64;
/// The longest rule expression accepted, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

/// How long checking one document may take, schema and rules together; beyond it the check
/// is a violation naming the rule (or the schema) that was running.
pub const CHECK_TIME_LIMIT: Duration = Duration::from_secs(2);

/// Limits of the regular expressions a schema's `pattern`s compile to: backtracking steps
/// per match, and the compiled program's size in bytes.
const PATTERN_BACKTRACK_LIMIT: usize = 1_000_000;
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// The CEL variable a rule sees the document as.
const DOCUMENT_VARIABLE: &str = "config";
/// The path reported for problems with the schema itself.
const SCHEMA_PATH: &str = "schema";

/// A CEL expression that must evaluate to `true` for a document to be valid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rule {
    pub expression: String,
    pub message: String,
}

/// What found a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationSource {
    Syntax,
    Schema,
    Rule,
}

impl ViolationSource {
    /// The lowercase name used in API responses.
    pub fn name(self) -> &'static str {
        match self {
            ViolationSource::Syntax => "syntax",
            ViolationSource::Schema => "schema",
            ViolationSource::Rule => "rule",
        }
    }
}

/// One problem with a document, a schema or a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub message: String,
    pub source: ViolationSource,
}

impl Violation {
    fn new(path: impl Into<String>, message: impl Into<String>, source: ViolationSource) -> Violation {
        Violation {
            path: path.into(),
            message: message.into(),
            source,
        }
    }
}

/// A rule with its compiled program.
struct CompiledRule {
    expression: String,
    message: String,
    program: cel::Program,
}

/// A compiled schema + rules, built once per config and reused for every validation.
pub struct Validator {
    schema: Option<jsonschema::Validator>,
    rules: Vec<CompiledRule>,
    env: Arc<cel::Env>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let expressions: Vec<&str> = self.rules.iter().map(|rule| rule.expression.as_str()).collect();
        f.debug_struct("Validator")
            .field("has_schema", &self.schema.is_some())
            .field("rules", &expressions)
            .finish()
    }
}

impl Validator {
    /// `schema`: JSON Schema as a JSON value; draft 2020-12 unless its `$schema` names draft-04 (also
    /// 06, 07 and 2019-09 when named). Errors: an invalid schema → a violation at `schema`; a CEL rule
    /// that does not compile, is empty, or is too long → a violation at `rules[i]`. Returns all such
    /// problems.
    pub fn compile(schema: Option<&Value>, rules: &[Rule]) -> Result<Validator, Vec<Violation>> {
        let mut problems = Vec::new();
        let compiled_schema = match schema.map(compile_schema).transpose() {
            Ok(compiled) => compiled,
            Err(problem) => {
                problems.push(problem);
                None
            }
        };
        if rules.len() > MAX_RULES {
            let message = format!("{} rules given; at most {MAX_RULES} are allowed", rules.len());
            problems.push(Violation::new("rules", message, ViolationSource::Rule));
        }
        let mut compiled_rules = Vec::with_capacity(rules.len());
        for (position, rule) in rules.iter().enumerate() {
            match compile_rule(rule) {
                Ok(compiled) => compiled_rules.push(compiled),
                Err(message) => problems.push(Violation::new(
                    format!("rules[{position}]"),
                    message,
                    ViolationSource::Rule,
                )),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Validator {
            schema: compiled_schema,
            rules: compiled_rules,
            env: Arc::new(cel::Env::stdlib()),
        })
    }

    /// Every violation: all schema errors (at the JSON path of the offending value), then each rule
    /// that evaluates to false, fails to evaluate or returns a non-bool (at `$`). The document is
    /// bound to the CEL variable `config`.
    pub fn validate(&self, document: &Value) -> Vec<Violation> {
        self.validate_reporting(document, &Progress::default())
    }

    /// [`Validator::validate`], noting in `progress` which step is running.
    fn validate_reporting(&self, document: &Value, progress: &Progress) -> Vec<Violation> {
        let mut violations = self.schema_violations(document);
        violations.extend(self.rule_violations(document, progress));
        violations
    }

    /// The rules too expensive to run on `document`, each at `rules[i]`: what saving a draft
    /// checks against its own content.
    pub fn costly_rules(&self, document: &Value) -> Vec<Violation> {
        let measured = MeasuredDocument::new(DOCUMENT_VARIABLE, document);
        self.rules
            .iter()
            .enumerate()
            .filter_map(|(position, rule)| {
                too_costly(rule, &measured)
                    .map(|message| Violation::new(format!("rules[{position}]"), message, ViolationSource::Rule))
            })
            .collect()
    }

    fn schema_violations(&self, document: &Value) -> Vec<Violation> {
        let Some(schema) = &self.schema else {
            return Vec::new();
        };
        schema
            .iter_errors(document)
            .map(|error| {
                let path = pointer_to_path(document, error.instance_path().as_str());
                Violation::new(path, error.to_string(), ViolationSource::Schema)
            })
            .collect()
    }

    fn rule_violations(&self, document: &Value, progress: &Progress) -> Vec<Violation> {
        if self.rules.is_empty() {
            return Vec::new();
        }
        let bound: Result<Box<dyn cel::common::value::Val>, _> = to_cel(document).try_into();
        let messages: Vec<String> = match bound {
            Ok(bound) => {
                let mut context = cel::Context::with_env(Arc::clone(&self.env));
                context.add_variable_as_val(DOCUMENT_VARIABLE, bound);
                let measured = MeasuredDocument::new(DOCUMENT_VARIABLE, document);
                self.rules
                    .iter()
                    .enumerate()
                    .filter_map(|(position, rule)| {
                        progress.running(Step::Rule(position));
                        too_costly(rule, &measured).or_else(|| evaluate(rule, &context))
                    })
                    .collect()
            }
            Err(error) => self.rules.iter().map(|rule| not_evaluated(rule, &error)).collect(),
        };
        messages
            .into_iter()
            .map(|message| Violation::new(json_path::ROOT, message, ViolationSource::Rule))
            .collect()
    }
}

/// Which part of a validation is running: what a check that runs out of time names.
#[derive(Debug, Default)]
struct Progress(AtomicUsize);

enum Step {
    Schema,
    Rule(usize),
}

impl Progress {
    fn running(&self, step: Step) {
        let code = match step {
            Step::Schema => 0,
            Step::Rule(position) => position + 1,
        };
        self.0.store(code, Ordering::Relaxed);
    }

    fn step(&self) -> Step {
        match self.0.load(Ordering::Relaxed) {
            0 => Step::Schema,
            code => Step::Rule(code - 1),
        }
    }
}

/// Compiles `schema` and `rules` and validates `document` on the blocking pool, within
/// [`CHECK_TIME_LIMIT`]. A check that runs out of time is one violation naming the rule (or
/// the schema) that was running; the thread it ran on finishes on its own, and soon, because
/// every rule that starts is bounded by [`MAX_RULE_COST`].
pub async fn check(
    schema: Option<Value>,
    rules: Vec<Rule>,
    document: Arc<Value>,
) -> Result<Vec<Violation>, Vec<Violation>> {
    let progress = Arc::new(Progress::default());
    let running = {
        let progress = Arc::clone(&progress);
        let rules = rules.clone();
        tokio::task::spawn_blocking(move || {
            let validator = Validator::compile(schema.as_ref(), &rules)?;
            Ok(validator.validate_reporting(&document, &progress))
        })
    };
    match tokio::time::timeout(CHECK_TIME_LIMIT, running).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(failed)) => Ok(vec![Violation::new(
            json_path::ROOT,
            format!("validation failed: {failed}"),
            ViolationSource::Rule,
        )]),
        Err(_) => {
            let limit = CHECK_TIME_LIMIT.as_secs_f64();
            let violation = match progress.step() {
                Step::Schema => Violation::new(
                    SCHEMA_PATH,
                    format!("the schema did not finish checking the document within {limit} s"),
                    ViolationSource::Schema,
                ),
                Step::Rule(position) => Violation::new(
                    format!("rules[{position}]"),
                    format!(
                        "rule `{}` did not finish within {limit} s",
                        rules
                            .get(position)
                            .map(|rule| rule.expression.as_str())
                            .unwrap_or_default()
                    ),
                    ViolationSource::Rule,
                ),
            };
            Ok(vec![violation])
        }
    }
}

/// Why `rule` may not run on `document`, if it may not.
fn too_costly(rule: &CompiledRule, document: &MeasuredDocument<'_>) -> Option<String> {
    let cost = rule_cost::estimate(rule.program.expression(), document);
    (cost > MAX_RULE_COST).then(|| {
        format!(
            "rule `{}` is too expensive for this document: up to {cost} steps, the limit is {MAX_RULE_COST} \
             (nested loops over large lists multiply; bound the lists or check fewer pairs)",
            rule.expression
        )
    })
}

/// Builds the schema validator for the draft the schema names.
fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, Violation> {
    let patterns = jsonschema::PatternOptions::fancy_regex()
        .backtrack_limit(PATTERN_BACKTRACK_LIMIT)
        .size_limit(PATTERN_SIZE_LIMIT)
        .dfa_size_limit(PATTERN_SIZE_LIMIT);
    jsonschema::options()
        .with_pattern_options(patterns)
        .with_draft(draft_of(schema))
        .build(schema)
        .map_err(|error| Violation::new(SCHEMA_PATH, error.to_string(), ViolationSource::Schema))
}

/// The draft named by `$schema`, 2020-12 when none (or an unknown one) is named.
fn draft_of(schema: &Value) -> jsonschema::Draft {
    let Some(uri) = schema.get("$schema").and_then(Value::as_str) else {
        return jsonschema::Draft::Draft202012;
    };
    let uri = uri.trim_end_matches('#');
    let uri = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))
        .unwrap_or(uri);
    match uri {
        "json-schema.org/draft-04/schema" => jsonschema::Draft::Draft4,
        "json-schema.org/draft-06/schema" => jsonschema::Draft::Draft6,
        "json-schema.org/draft-07/schema" => jsonschema::Draft::Draft7,
        "json-schema.org/draft/2019-09/schema" => jsonschema::Draft::Draft201909,
        _ => jsonschema::Draft::Draft202012,
    }
}

/// Checks the limits of one rule and compiles it; the error is a message for the caller.
fn compile_rule(rule: &Rule) -> Result<CompiledRule, String> {
    if rule.expression.trim().is_empty() {
        return Err("rule expression is empty".to_owned());
    }
    if rule.expression.len() > MAX_EXPRESSION_BYTES {
        return Err(format!(
            "rule expression is {} bytes; at most {MAX_EXPRESSION_BYTES} are allowed",
            rule.expression.len()
        ));
    }
    let program = cel::Program::compile(&rule.expression)
        .map_err(|error| format!("rule `{}` does not compile: {error}", rule.expression))?;
    Ok(CompiledRule {
        expression: rule.expression.clone(),
        message: rule.message.clone(),
        program,
    })
}

/// Runs one rule; `Some(message)` when it does not hold.
fn evaluate(rule: &CompiledRule, context: &cel::Context<'_, '_>) -> Option<String> {
    let expression = &rule.expression;
    match rule.program.execute(context) {
        Ok(cel::Value::Bool(true)) => None,
        Ok(cel::Value::Bool(false)) if rule.message.is_empty() => Some(format!("rule `{expression}` failed")),
        Ok(cel::Value::Bool(false)) => Some(rule.message.clone()),
        Ok(other) => Some(format!(
            "rule `{expression}` returned a {} instead of a bool",
            other.type_of()
        )),
        Err(error) => Some(not_evaluated(rule, &error)),
    }
}

fn not_evaluated(rule: &CompiledRule, error: &cel::ExecutionError) -> String {
    format!("rule `{}` could not be evaluated: {error}", rule.expression)
}

/// The CEL value of a JSON value; integers become CEL `int` whenever they fit, so that rules can
/// compare them with integer literals.
fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(flag) => cel::Value::Bool(*flag),
        Value::Number(number) => number_to_cel(number),
        Value::String(text) => cel::Value::String(Arc::new(text.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(fields) => {
            let map: HashMap<cel::objects::Key, cel::Value> = fields
                .iter()
                .map(|(key, field)| (cel::objects::Key::from(key.as_str()), to_cel(field)))
                .collect();
            cel::Value::Map(cel::objects::Map::from(map))
        }
    }
}

fn number_to_cel(number: &serde_json::Number) -> cel::Value {
    if let Some(integer) = number.as_i64() {
        return cel::Value::Int(integer);
    }
    if let Some(unsigned) = number.as_u64() {
        return cel::Value::UInt(unsigned);
    }
    number.as_f64().map_or(cel::Value::Null, cel::Value::Float)
}

/// Our JSON path for a JSON Pointer into `document`; a segment of digits is an index when the value
/// it steps into is an array.
fn pointer_to_path(document: &Value, pointer: &str) -> String {
    let mut path = json_path::ROOT.to_owned();
    let mut current = Some(document);
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        let position = array_position(current, &segment);
        match position {
            Some(position) => {
                path = json_path::index(&path, position);
                current = current.and_then(|value| value.get(position));
            }
            None => {
                path = json_path::child(&path, &segment);
                current = current.and_then(|value| value.get(segment.as_str()));
            }
        }
    }
    path
}

/// The index `segment` names when `parent` is an array and `segment` is all digits.
fn array_position(parent: Option<&Value>, segment: &str) -> Option<usize> {
    let is_array = parent.is_some_and(Value::is_array);
    let all_digits = !segment.is_empty() && segment.bytes().all(|byte| byte.is_ascii_digit());
    if !is_array || !all_digits {
        return None;
    }
    segment.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(expression: &str, message: &str) -> Rule {
        Rule {
            expression: expression.to_owned(),
            message: message.to_owned(),
        }
    }

    fn paths(violations: &[Violation]) -> Vec<&str> {
        violations.iter().map(|violation| violation.path.as_str()).collect()
    }

    #[test]
    fn validator_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Validator>();
    }

    #[test]
    fn source_names() {
        assert_eq!(ViolationSource::Syntax.name(), "syntax");
        assert_eq!(ViolationSource::Schema.name(), "schema");
        assert_eq!(ViolationSource::Rule.name(), "rule");
    }

    #[test]
    fn valid_document_has_no_violations() {
        let schema = json!({
            "type": "object",
            "required": ["server"],
            "properties": {"server": {"type": "object", "properties": {"port": {"type": "integer", "minimum": 1}}}}
        });
        let validator = Validator::compile(Some(&schema), &[rule("config.server.port > 0", "")]).unwrap();
        assert!(validator.validate(&json!({"server": {"port": 8080}})).is_empty());
    }

    #[test]
    fn no_schema_and_no_rules_accepts_anything() {
        let validator = Validator::compile(None, &[]).unwrap();
        assert!(validator.validate(&json!([1, "two", null])).is_empty());
    }

    #[test]
    fn draft_2020_12_reports_every_error_with_paths() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "required": ["server", "name"],
            "additionalProperties": false,
            "properties": {
                "server": {"type": "object", "properties": {"port": {"type": "integer", "minimum": 1024}}},
                "hosts": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "string"}]},
                "name": {"type": "string"},
                "secret": {"type": "string", "x-secret": true}
            }
        });
        let validator = Validator::compile(Some(&schema), &[]).unwrap();
        let document = json!({"server": {"port": 80}, "hosts": ["a", 7], "extra": true, "secret": "s"});
        let violations = validator.validate(&document);
        let mut found = paths(&violations);
        found.sort_unstable();
        assert_eq!(found, vec!["$", "$", "$.hosts[1]", "$.server.port"]);
        assert!(
            violations
                .iter()
                .all(|violation| violation.source == ViolationSource::Schema)
        );
        let port = violations
            .iter()
            .find(|violation| violation.path == "$.server.port")
            .unwrap();
        assert!(port.message.contains("1024"), "{}", port.message);
        assert!(violations.iter().any(|violation| violation.message.contains("name")));
        assert!(violations.iter().any(|violation| violation.message.contains("extra")));
    }

    #[test]
    fn digit_keys_of_objects_stay_keys() {
        let ports = json!({"type": "object", "additionalProperties": {"type": "integer"}});
        let schema = json!({"type": "object", "properties": {"ports": ports}});
        let validator = Validator::compile(Some(&schema), &[]).unwrap();
        let violations = validator.validate(&json!({"ports": {"80": "http"}}));
        assert_eq!(paths(&violations), vec!["$.ports['80']"]);
    }

    #[test]
    fn pointer_segments_are_unescaped() {
        let document = json!({"a/b": {"c~d": [0, 1]}});
        assert_eq!(pointer_to_path(&document, "/a~1b/c~0d/1"), "$['a/b']['c~d'][1]");
        assert_eq!(pointer_to_path(&document, ""), "$");
    }

    #[test]
    fn draft_04_uses_boolean_exclusive_maximum() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "object",
            "properties": {"replicas": {"type": "integer", "maximum": 10, "exclusiveMaximum": true}}
        });
        let validator = Validator::compile(Some(&schema), &[]).unwrap();
        assert!(validator.validate(&json!({"replicas": 9})).is_empty());
        assert_eq!(paths(&validator.validate(&json!({"replicas": 10}))), vec!["$.replicas"]);
    }

    #[test]
    fn boolean_exclusive_maximum_is_invalid_in_2020_12() {
        let schema = json!({"type": "integer", "maximum": 10, "exclusiveMaximum": true});
        let problems = Validator::compile(Some(&schema), &[]).unwrap_err();
        assert_eq!(paths(&problems), vec!["schema"]);
    }

    #[test]
    fn other_named_drafts_are_accepted() {
        for uri in [
            "http://json-schema.org/draft-06/schema#",
            "http://json-schema.org/draft-07/schema#",
            "https://json-schema.org/draft/2019-09/schema",
        ] {
            let schema = json!({"$schema": uri, "type": "integer", "x-secret": true});
            let validator = Validator::compile(Some(&schema), &[]).unwrap();
            assert_eq!(paths(&validator.validate(&json!("text"))), vec!["$"], "{uri}");
        }
        let custom = json!({"$schema": "https://example.com/custom", "prefixItems": [{"type": "string"}]});
        assert_eq!(draft_of(&custom), jsonschema::Draft::Draft202012);
        let validator = Validator::compile(Some(&custom), &[]).unwrap();
        assert_eq!(paths(&validator.validate(&json!([1]))), vec!["$[0]"]);
    }

    #[test]
    fn invalid_schema_is_reported() {
        let schema = json!({"type": "no-such-type"});
        let problems = Validator::compile(Some(&schema), &[]).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "schema");
        assert_eq!(problems[0].source, ViolationSource::Schema);
    }

    #[test]
    fn rules_that_hold_pass() {
        let rules = [
            rule("config.replicas <= config.max_replicas", "too many replicas"),
            rule("config.hosts.size() > 0", "no hosts"),
            rule("config.mode in ['a','b']", "bad mode"),
        ];
        let validator = Validator::compile(None, &rules).unwrap();
        let document = json!({"replicas": 2, "max_replicas": 3, "hosts": ["h"], "mode": "a"});
        assert!(validator.validate(&document).is_empty());
    }

    #[test]
    fn failing_rules_report_their_messages() {
        let rules = [
            rule("config.replicas <= config.max_replicas", "too many replicas"),
            rule("config.hosts.size() > 0", ""),
            rule("config.mode in ['a','b']", "bad mode"),
        ];
        let validator = Validator::compile(None, &rules).unwrap();
        let document = json!({"replicas": 5, "max_replicas": 3, "hosts": [], "mode": "c"});
        let violations = validator.validate(&document);
        let messages: Vec<&str> = violations.iter().map(|violation| violation.message.as_str()).collect();
        assert_eq!(
            messages,
            vec!["too many replicas", "rule `config.hosts.size() > 0` failed", "bad mode"]
        );
        assert_eq!(paths(&violations), vec!["$", "$", "$"]);
        assert!(
            violations
                .iter()
                .all(|violation| violation.source == ViolationSource::Rule)
        );
    }

    #[test]
    fn rules_compare_integers_with_literals_and_floats() {
        let rules = [rule("config.replicas <= 5", ""), rule("config.ratio < 1.0", "")];
        let validator = Validator::compile(None, &rules).unwrap();
        assert!(validator.validate(&json!({"replicas": 5, "ratio": 0.5})).is_empty());
        assert_eq!(validator.validate(&json!({"replicas": 6, "ratio": 0.5})).len(), 1);
    }

    #[test]
    fn rule_on_missing_field_is_an_evaluation_error() {
        let validator = Validator::compile(None, &[rule("config.replicas > 0", "need replicas")]).unwrap();
        let violations = validator.validate(&json!({"other": 1}));
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].path, "$");
        assert!(
            violations[0].message.contains("config.replicas > 0"),
            "{}",
            violations[0].message
        );
        assert!(
            violations[0].message.contains("could not be evaluated"),
            "{}",
            violations[0].message
        );
    }

    #[test]
    fn non_bool_rule_is_reported() {
        let validator = Validator::compile(None, &[rule("config.replicas + 1", "")]).unwrap();
        let violations = validator.validate(&json!({"replicas": 1}));
        assert_eq!(violations.len(), 1);
        assert!(
            violations[0].message.contains("instead of a bool"),
            "{}",
            violations[0].message
        );
    }

    #[test]
    fn schema_errors_come_before_rule_errors() {
        let schema = json!({"type": "object", "properties": {"replicas": {"type": "integer", "maximum": 3}}});
        let validator = Validator::compile(Some(&schema), &[rule("config.replicas < 2", "low")]).unwrap();
        let violations = validator.validate(&json!({"replicas": 4}));
        let sources: Vec<ViolationSource> = violations.iter().map(|violation| violation.source).collect();
        assert_eq!(sources, vec![ViolationSource::Schema, ViolationSource::Rule]);
        assert_eq!(paths(&violations), vec!["$.replicas", "$"]);
    }

    #[test]
    fn bad_rules_are_all_reported() {
        let long = format!("true && {}", "true && ".repeat(MAX_EXPRESSION_BYTES / 8));
        let rules = [
            rule("config.a ==", "broken"),
            rule("true", "fine"),
            rule("   ", "empty"),
            rule(&long, "long"),
        ];
        let schema = json!({"type": 12});
        let problems = Validator::compile(Some(&schema), &rules).unwrap_err();
        assert_eq!(paths(&problems), vec!["schema", "rules[0]", "rules[2]", "rules[3]"]);
        assert_eq!(problems[1].source, ViolationSource::Rule);
        assert!(problems[1].message.contains("config.a =="), "{}", problems[1].message);
    }

    #[test]
    fn too_many_rules_are_refused() {
        let rules = vec![rule("true", ""); MAX_RULES + 1];
        let problems = Validator::compile(None, &rules).unwrap_err();
        assert_eq!(paths(&problems), vec!["rules"]);
    }

    #[test]
    fn deeply_nested_rule_is_refused_without_crashing() {
        let nested = format!("{}true{}", "(".repeat(1000), ")".repeat(1000));
        let problems = Validator::compile(None, &[rule(&nested, "")]).unwrap_err();
        assert_eq!(paths(&problems), vec!["rules[0]"]);
    }
}
