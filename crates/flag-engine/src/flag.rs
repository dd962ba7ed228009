//! One compiled flag and how it resolves, with flagd's reasons and error codes.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::Metadata;
use crate::logic::{Budget, Exhausted, Root};
use crate::logic::{Expr, Scope};
use crate::short_str;

/// Whether a flag serves its variants at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagState {
    Enabled,
    Disabled,
}

/// The type of a flag's variants, or the type a caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    Boolean,
    String,
    /// Whole numbers only.
    Integer,
    /// Any number.
    Float,
    Object,
}

impl ValueKind {
    /// The kind a value belongs to (integers are also floats; see [`ValueKind::accepts`]).
    pub fn of(value: &Value) -> Option<Self> {
        Some(match value {
            Value::Bool(_) => Self::Boolean,
            Value::String(_) => Self::String,
            Value::Number(number) if is_whole(number) => Self::Integer,
            Value::Number(_) => Self::Float,
            Value::Object(_) => Self::Object,
            Value::Null | Value::Array(_) => return None,
        })
    }

    /// Whether a caller asking for `self` can be given `value`.
    pub fn accepts(self, value: &Value) -> bool {
        match (self, value) {
            (Self::Boolean, Value::Bool(_)) | (Self::String, Value::String(_)) => true,
            (Self::Integer, Value::Number(number)) => is_whole(number),
            (Self::Float, Value::Number(_)) | (Self::Object, Value::Object(_)) => true,
            _ => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::String => "string",
            Self::Integer => "integer",
            Self::Float => "float",
            Self::Object => "object",
        }
    }
}

fn is_whole(number: &serde_json::Number) -> bool {
    number.is_i64() || number.is_u64() || number.as_f64().is_some_and(|n| n.fract() == 0.0 && n.abs() < 9.2e18)
}

/// Why a resolution has the value it has (OpenFeature's reasons, as flagd reports them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No targeting: the default variant.
    Static,
    /// Targeting chose the variant.
    TargetingMatch,
    /// Targeting chose nothing: the default variant, or the caller's default when there is none.
    Default,
    /// The flag is disabled: the caller's default.
    Disabled,
    Error,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "STATIC",
            Self::TargetingMatch => "TARGETING_MATCH",
            Self::Default => "DEFAULT",
            Self::Disabled => "DISABLED",
            Self::Error => "ERROR",
        }
    }
}

/// OpenFeature error codes, as flagd reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    FlagNotFound,
    TypeMismatch,
    ParseError,
    General,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FlagNotFound => "FLAG_NOT_FOUND",
            Self::TypeMismatch => "TYPE_MISMATCH",
            Self::ParseError => "PARSE_ERROR",
            Self::General => "GENERAL",
        }
    }
}

/// The outcome of evaluating one flag; borrows the flag's variant and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution<'a> {
    /// `None` means the caller's own default applies (disabled, no default variant, or error).
    pub value: Option<&'a Value>,
    pub variant: Option<&'a str>,
    pub reason: Reason,
    pub error: Option<(ErrorCode, Cow<'static, str>)>,
    pub metadata: &'a Metadata,
}

impl<'a> Resolution<'a> {
    pub(crate) fn failed(code: ErrorCode, message: impl Into<Cow<'static, str>>, metadata: &'a Metadata) -> Self {
        Self {
            value: None,
            variant: None,
            reason: Reason::Error,
            error: Some((code, message.into())),
            metadata,
        }
    }

    /// The same resolution for a caller that needs a value of `kind`: TYPE_MISMATCH otherwise.
    pub fn expecting(self, kind: ValueKind) -> Self {
        match self.value {
            Some(value) if !kind.accepts(value) => Self::failed(
                ErrorCode::TypeMismatch,
                format!("the flag's value is not of type {}", kind.as_str()),
                self.metadata,
            ),
            _ => self,
        }
    }
}

/// Evaluation steps one resolution may take before it fails with GENERAL.
const STEP_BUDGET: u32 = 100_000;

/// A flag compiled for evaluation.
#[derive(Debug, Clone)]
pub struct Flag {
    key: Value,
    state: FlagState,
    /// Sorted by name, for binary search.
    variants: Box<[(Box<str>, Value)]>,
    default_variant: Option<usize>,
    kind: ValueKind,
    targeting: Targeting,
    /// For an `if` rule whose results are all literals (the commonest shape): what each result
    /// means, in the order [`Expr::choose`] numbers them, so that evaluation needs no lookup.
    outcomes: Option<Box<[Outcome]>>,
    metadata: Metadata,
}

/// What a value chosen by targeting means for the flag.
#[derive(Debug, Clone)]
enum Outcome {
    Variant(usize),
    /// `null`: the default variant, reported as DEFAULT.
    Default,
    /// Not the name of a variant: GENERAL, with this message.
    Invalid(String),
}

/// A flag's targeting: none, a compiled rule, or the reason its rule does not compile (the
/// flag then resolves with PARSE_ERROR, as in flagd, while the rest of its set keeps working).
#[derive(Debug, Clone)]
pub(crate) enum Targeting {
    None,
    /// `source` is the rule as written, with `$ref`s inlined.
    Rule {
        expr: Expr,
        source: Value,
    },
    Broken {
        reason: String,
        source: Value,
    },
}

impl Flag {
    pub(crate) fn new(
        key: &str,
        state: FlagState,
        mut variants: Vec<(Box<str>, Value)>,
        default_variant: Option<&str>,
        kind: ValueKind,
        targeting: Targeting,
        metadata: Metadata,
    ) -> Self {
        variants.sort_by(|a, b| a.0.cmp(&b.0));
        let variants = variants.into_boxed_slice();
        let default_variant = default_variant.and_then(|name| find(&variants, name));
        let outcomes = match &targeting {
            Targeting::Rule { expr, .. } => expr
                .literal_results()
                .map(|results| results.into_iter().map(|value| outcome(&variants, value)).collect()),
            _ => None,
        };
        Self {
            key: Value::String(key.to_owned()),
            state,
            variants,
            default_variant,
            kind,
            targeting,
            outcomes,
            metadata,
        }
    }

    pub fn key(&self) -> &str {
        self.key.as_str().unwrap_or_default()
    }

    pub fn state(&self) -> FlagState {
        self.state
    }

    /// The type of every variant of this flag.
    pub fn kind(&self) -> ValueKind {
        self.kind
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub fn variants(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.variants.iter().map(|(name, value)| (&**name, value))
    }

    pub fn default_variant(&self) -> Option<&str> {
        self.default_variant.map(|index| &*self.variants[index].0)
    }

    /// Whether the flag has targeting (static flags resolve without looking at the context).
    pub fn is_targeted(&self) -> bool {
        !matches!(self.targeting, Targeting::None)
    }

    /// Why the flag's targeting does not compile, if it does not.
    pub fn problem(&self) -> Option<&str> {
        match &self.targeting {
            Targeting::Broken { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// The flag as flagd JSON: state, variants, defaultVariant (`""` when there is none, as
    /// flagd writes it), targeting with `$ref`s inlined, and metadata when there is any.
    pub fn definition(&self) -> Value {
        let mut definition = Map::new();
        let state = match self.state {
            FlagState::Enabled => "ENABLED",
            FlagState::Disabled => "DISABLED",
        };
        definition.insert("state".into(), state.into());
        let variants = self
            .variants
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        definition.insert("variants".into(), Value::Object(variants));
        definition.insert(
            "defaultVariant".into(),
            self.default_variant().unwrap_or_default().into(),
        );
        if let Targeting::Rule { source, .. } | Targeting::Broken { source, .. } = &self.targeting {
            definition.insert("targeting".into(), source.clone());
        }
        if !self.metadata.is_empty() {
            definition.insert("metadata".into(), Value::Object(self.metadata.clone()));
        }
        Value::Object(definition)
    }

    pub fn evaluate(&self, scope: &Scope<'_>) -> Resolution<'_> {
        if self.state == FlagState::Disabled {
            return Resolution {
                value: None,
                variant: None,
                reason: Reason::Disabled,
                error: None,
                metadata: &self.metadata,
            };
        }
        match &self.targeting {
            Targeting::None => self.default_resolution(Reason::Static),
            Targeting::Broken { reason, .. } => {
                Resolution::failed(ErrorCode::ParseError, reason.clone(), &self.metadata)
            }
            Targeting::Rule { expr, .. } => self.target(expr, scope),
        }
    }

    fn target(&self, rule: &Expr, scope: &Scope<'_>) -> Resolution<'_> {
        let root = Root {
            context: scope.context,
            flag_key: &self.key,
            timestamp: scope.timestamp,
        };
        let mut budget = Budget(STEP_BUDGET);
        if let Some(outcomes) = &self.outcomes {
            return match rule.choose(&root, &mut budget) {
                Ok(Some(index)) => self.outcome_resolution(&outcomes[index]),
                Ok(None) => self.default_resolution(Reason::Default),
                Err(Exhausted) => self.exhausted(),
            };
        }
        match rule.evaluate(&root, &mut budget) {
            Ok(chosen) => self.outcome_resolution(&outcome(&self.variants, &chosen)),
            Err(Exhausted) => self.exhausted(),
        }
    }

    #[cold]
    fn exhausted(&self) -> Resolution<'_> {
        Resolution::failed(
            ErrorCode::General,
            format!("targeting took more than {STEP_BUDGET} steps"),
            &self.metadata,
        )
    }

    fn outcome_resolution(&self, outcome: &Outcome) -> Resolution<'_> {
        match outcome {
            Outcome::Variant(index) => self.variant_resolution(*index, Reason::TargetingMatch),
            Outcome::Default => self.default_resolution(Reason::Default),
            Outcome::Invalid(message) => Resolution::failed(ErrorCode::General, message.clone(), &self.metadata),
        }
    }

    fn default_resolution(&self, reason: Reason) -> Resolution<'_> {
        match self.default_variant {
            Some(index) => self.variant_resolution(index, reason),
            // No default variant: the caller's default, reported as DEFAULT (flagd's "code default").
            None => Resolution {
                value: None,
                variant: None,
                reason: Reason::Default,
                error: None,
                metadata: &self.metadata,
            },
        }
    }

    fn variant_resolution(&self, index: usize, reason: Reason) -> Resolution<'_> {
        let (name, value) = &self.variants[index];
        Resolution {
            value: Some(value),
            variant: Some(name),
            reason,
            error: None,
            metadata: &self.metadata,
        }
    }
}

/// What targeting choosing `chosen` means: a variant named by a string (or by a boolean or number
/// as JavaScript prints it), the default for null, an error for anything else.
fn outcome(variants: &[(Box<str>, Value)], chosen: &Value) -> Outcome {
    let name: Cow<'_, str> = match chosen {
        Value::Null => return Outcome::Default,
        Value::String(name) => Cow::Borrowed(name),
        Value::Bool(flag) => Cow::Borrowed(if *flag { "true" } else { "false" }),
        Value::Number(number) => Cow::Owned(number.to_string()),
        Value::Array(_) | Value::Object(_) => {
            return Outcome::Invalid("targeting returned neither a variant name nor null".to_owned());
        }
    };
    match find(variants, &name) {
        Some(index) => Outcome::Variant(index),
        None => Outcome::Invalid(format!(
            "targeting chose \"{name}\", which is not a variant of this flag"
        )),
    }
}

fn find(variants: &[(Box<str>, Value)], name: &str) -> Option<usize> {
    // Flags mostly have a few variants: comparing lengths first skips most string comparisons.
    if variants.len() <= 8 {
        return variants
            .iter()
            .position(|(candidate, _)| short_str::equal(candidate, name));
    }
    variants.binary_search_by(|(candidate, _)| (**candidate).cmp(name)).ok()
}
