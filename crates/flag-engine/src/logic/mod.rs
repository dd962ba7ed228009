//! JSON Logic targeting compiled into an expression tree.
//!
//! Rules are parsed once, when a flag set loads: operator names are resolved to an enum,
//! `$ref`s are inlined, custom operators get their constant arguments pre-parsed (a `sem_ver`
//! target version, fractional weights), and literal subtrees are folded. Evaluation then walks
//! the tree without looking at a single operator name.

mod eval;
mod js;

use serde_json::{Map, Value};

use crate::context::{Context, ContextKey};
use crate::semver::{Comparison, Version};

pub(crate) use eval::{Budget, Exhausted, Root};

/// What an evaluation sees: the caller's context, plus what flagd adds to it (`$flagd.flagKey`,
/// `$flagd.timestamp`).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The evaluation context; `targetingKey` is an ordinary entry.
    pub context: &'a Context,
    /// Seconds since the Unix epoch, exposed to rules as `$flagd.timestamp`.
    pub timestamp: i64,
}

/// A compiled JSON Logic rule.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Literal(Value),
    /// An array whose elements are rules.
    Array(Box<[Expr]>),
    Var(Box<Var>),
    Op(Op, Box<[Expr]>),
    Fractional(Box<Fractional>),
    SemVer(Box<SemVer>),
    Check(Box<Check>),
}

#[derive(Debug, Clone)]
pub(crate) struct Var {
    path: Path,
    default: Option<Expr>,
}

#[derive(Debug, Clone)]
enum Path {
    /// The whole data (`{"var": ""}`).
    Whole,
    /// One top-level key other than `$flagd` (`{"var": "country"}`): most paths.
    Key(ContextKey),
    Keys(Box<[Box<str>]>),
    /// A path computed by a rule.
    Computed(Expr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Equal,
    StrictEqual,
    NotEqual,
    StrictNotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Not,
    Truthy,
    And,
    Or,
    If,
    In,
    Cat,
    Substr,
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
    Min,
    Max,
    Merge,
    Missing,
    MissingSome,
    Map,
    Filter,
    Reduce,
    All,
    Some,
    None,
    Log,
    StartsWith,
    EndsWith,
}

impl Op {
    /// Operators that compare two operands into a boolean (or null).
    fn is_comparison(self) -> bool {
        matches!(
            self,
            Self::Equal
                | Self::StrictEqual
                | Self::NotEqual
                | Self::StrictNotEqual
                | Self::Less
                | Self::LessOrEqual
                | Self::Greater
                | Self::GreaterOrEqual
                | Self::In
                | Self::StartsWith
                | Self::EndsWith
        )
    }

    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "==" => Self::Equal,
            "===" => Self::StrictEqual,
            "!=" => Self::NotEqual,
            "!==" => Self::StrictNotEqual,
            "<" => Self::Less,
            "<=" => Self::LessOrEqual,
            ">" => Self::Greater,
            ">=" => Self::GreaterOrEqual,
            "!" => Self::Not,
            "!!" => Self::Truthy,
            "and" => Self::And,
            "or" => Self::Or,
            "if" | "?:" => Self::If,
            "in" => Self::In,
            "cat" => Self::Cat,
            "substr" => Self::Substr,
            "+" => Self::Add,
            "-" => Self::Subtract,
            "*" => Self::Multiply,
            "/" => Self::Divide,
            "%" => Self::Modulo,
            "min" => Self::Min,
            "max" => Self::Max,
            "merge" => Self::Merge,
            "missing" => Self::Missing,
            "missing_some" => Self::MissingSome,
            "map" => Self::Map,
            "filter" => Self::Filter,
            "reduce" => Self::Reduce,
            "all" => Self::All,
            "some" => Self::Some,
            "none" => Self::None,
            "log" => Self::Log,
            "starts_with" => Self::StartsWith,
            "ends_with" => Self::EndsWith,
            _ => return None,
        })
    }
}

impl Expr {
    /// The results of an `if` rule whose every result is a literal — `if` conditions then a
    /// variant name, the `else` name last — in the order [`Expr::choose`] numbers them.
    pub(crate) fn literal_results(&self) -> Option<Vec<&Value>> {
        let Expr::Op(Op::If, args) = self else {
            return None;
        };
        args.chunks(2)
            .map(|chunk| match chunk {
                [_, Expr::Literal(result)] | [Expr::Literal(result)] => Some(result),
                _ => None,
            })
            .collect()
    }
}

/// The commonest condition in targeting, one context value compared with a constant
/// (`{"ends_with": [{"var": "email"}, "@shop.com"]}`), compiled into one node: evaluating it
/// reads the value and tests it, without evaluating the `var` and the literal as rules of
/// their own and without building their values.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    subject: Path,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    /// `in` with an array of strings: the value is one of them (strictly equal). Sorted, so
    /// that long lists (user ids, say) are searched rather than scanned.
    OneOf(Box<[Box<str>]>),
    /// Any other comparison, with the constant as its right operand.
    Compare(Op, Value),
}

impl Check {
    /// A check for `op(args)`, when `args` are a `var` (plain path, no default) and a literal.
    fn compile(op: Op, args: &mut Box<[Expr]>) -> Option<Self> {
        if !op.is_comparison() {
            return None;
        }
        let [Expr::Var(var), Expr::Literal(constant)] = &mut **args else {
            return None;
        };
        if var.default.is_some() || matches!(var.path, Path::Computed(_)) {
            return None;
        }
        let test = match (op, &*constant) {
            (Op::In, Value::Array(items)) if items.iter().all(Value::is_string) => {
                let mut items: Vec<Box<str>> = items.iter().filter_map(Value::as_str).map(Box::from).collect();
                items.sort_unstable();
                Test::OneOf(items.into_boxed_slice())
            }
            _ => Test::Compare(op, std::mem::take(constant)),
        };
        let subject = std::mem::replace(&mut var.path, Path::Whole);
        Some(Self { subject, test })
    }
}

/// `fractional`: weighted buckets chosen by hashing a bucketing key.
#[derive(Debug, Clone)]
pub(crate) struct Fractional {
    /// The rule giving the bucketing key; `None` means flag key + targeting key.
    key: Option<Expr>,
    buckets: Box<[Bucket]>,
    /// The weights, when none of them is computed.
    fixed_weights: Option<Box<[u64]>>,
    /// Every bucket's variant is a literal (checked when compiling), so only the chosen one
    /// needs evaluating.
    literal_variants: bool,
}

#[derive(Debug, Clone)]
struct Bucket {
    variant: Expr,
    weight: Expr,
}

/// `sem_ver`: a version comparison whose operator (and usually target) are known in advance.
#[derive(Debug, Clone)]
pub(crate) struct SemVer {
    version: Expr,
    comparison: Comparison,
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    Parsed(Version<'static>),
    Computed(Expr),
}

/// Why a rule could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("unknown operator \"{0}\"")]
    UnknownOperator(String),
    #[error("\"$ref\" names no evaluator \"{0}\"")]
    UnknownEvaluator(String),
    #[error("\"$ref\" must name an evaluator with a string")]
    InvalidRef,
    #[error("evaluators refer to each other in a cycle through \"{0}\"")]
    RefCycle(String),
    #[error("the rule nests deeper than {0} levels")]
    TooDeep(usize),
    #[error("the rule has more than {0} nodes")]
    TooLarge(usize),
    #[error("fractional: {0}")]
    Fractional(&'static str),
}

/// Replaces every `{"$ref": name}` in `rule` with the shared evaluator `name`, recursively, as
/// flagd does when a document loads. The result is bounded like a compiled rule.
pub(crate) fn inline_refs(
    rule: &Value,
    evaluators: &Map<String, Value>,
    max_depth: usize,
    max_nodes: usize,
) -> Result<Value, CompileError> {
    let mut inliner = Inliner {
        evaluators,
        max_depth,
        max_nodes,
        nodes: 0,
        open: Vec::new(),
    };
    inliner.inline(rule, 0)
}

struct Inliner<'a> {
    evaluators: &'a Map<String, Value>,
    max_depth: usize,
    max_nodes: usize,
    nodes: usize,
    /// The evaluators being inlined, outermost first, to catch cycles.
    open: Vec<&'a str>,
}

impl<'a> Inliner<'a> {
    fn inline(&mut self, rule: &Value, depth: usize) -> Result<Value, CompileError> {
        if depth > self.max_depth {
            return Err(CompileError::TooDeep(self.max_depth));
        }
        self.nodes += 1;
        if self.nodes > self.max_nodes {
            return Err(CompileError::TooLarge(self.max_nodes));
        }
        match rule {
            Value::Array(items) => items
                .iter()
                .map(|item| self.inline(item, depth + 1))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Value::Object(object) => match object.get("$ref") {
                Some(name) if object.len() == 1 => self.reference(name, depth),
                _ => {
                    let mut inlined = Map::with_capacity(object.len());
                    for (key, value) in object {
                        inlined.insert(key.clone(), self.inline(value, depth + 1)?);
                    }
                    Ok(Value::Object(inlined))
                }
            },
            scalar => Ok(scalar.clone()),
        }
    }

    fn reference(&mut self, name: &Value, depth: usize) -> Result<Value, CompileError> {
        let Value::String(name) = name else {
            return Err(CompileError::InvalidRef);
        };
        let evaluators = self.evaluators;
        let Some((name, rule)) = evaluators.get_key_value(name.as_str()) else {
            return Err(CompileError::UnknownEvaluator(name.clone()));
        };
        if self.open.contains(&name.as_str()) {
            return Err(CompileError::RefCycle(name.clone()));
        }
        self.open.push(name);
        let inlined = self.inline(rule, depth);
        self.open.pop();
        inlined
    }
}

/// Compiles rules (their `$ref`s already inlined) within size limits.
pub(crate) struct Compiler {
    max_depth: usize,
    max_nodes: usize,
    nodes: usize,
    total: usize,
}

impl Compiler {
    pub(crate) fn new(max_depth: usize, max_nodes: usize) -> Self {
        Self {
            max_depth,
            max_nodes,
            nodes: 0,
            total: 0,
        }
    }

    /// Compiles one flag's targeting; the node budget is per rule.
    pub(crate) fn compile(&mut self, rule: &Value) -> Result<Expr, CompileError> {
        self.nodes = 0;
        let expr = self.expr(rule, 0);
        self.total += self.nodes;
        expr
    }

    /// Nodes compiled so far, over every rule.
    pub(crate) fn total_nodes(&self) -> usize {
        self.total
    }

    fn expr(&mut self, rule: &Value, depth: usize) -> Result<Expr, CompileError> {
        if depth > self.max_depth {
            return Err(CompileError::TooDeep(self.max_depth));
        }
        self.nodes += 1;
        if self.nodes > self.max_nodes {
            return Err(CompileError::TooLarge(self.max_nodes));
        }
        match rule {
            Value::Array(items) => {
                let items = items
                    .iter()
                    .map(|item| self.expr(item, depth + 1))
                    .collect::<Result<Box<[_]>, _>>()?;
                Ok(fold_array(items))
            }
            Value::Object(object) if object.len() == 1 => {
                let Some((name, args)) = object.iter().next() else {
                    return Ok(Expr::Literal(rule.clone()));
                };
                self.operation(name, args, depth)
            }
            _ => Ok(Expr::Literal(rule.clone())),
        }
    }

    fn operation(&mut self, name: &str, args: &Value, depth: usize) -> Result<Expr, CompileError> {
        match name {
            "var" => self.var(args, depth),
            "fractional" => self.fractional(args, depth),
            "sem_ver" => self.sem_ver(args, depth),
            _ => {
                let op = Op::named(name).ok_or_else(|| CompileError::UnknownOperator(name.to_owned()))?;
                let mut args = self.args(args, depth)?;
                // flagd's string operators yield null (not false) when misused, so that the
                // flag falls back to its default variant instead of looking up "false".
                if matches!(op, Op::StartsWith | Op::EndsWith) && args.len() != 2 {
                    return Ok(Expr::Literal(Value::Null));
                }
                match Check::compile(op, &mut args) {
                    Some(check) => Ok(Expr::Check(Box::new(check))),
                    None => Ok(Expr::Op(op, args)),
                }
            }
        }
    }

    fn args(&mut self, args: &Value, depth: usize) -> Result<Box<[Expr]>, CompileError> {
        match args {
            Value::Array(items) => items.iter().map(|item| self.expr(item, depth + 1)).collect(),
            single => Ok(Box::new([self.expr(single, depth + 1)?])),
        }
    }

    fn var(&mut self, args: &Value, depth: usize) -> Result<Expr, CompileError> {
        let (path, default) = match args {
            Value::Array(items) => (items.first(), items.get(1)),
            single => (Some(single), None),
        };
        let path = match path {
            None | Some(Value::Null) => Path::Whole,
            Some(Value::String(text)) if text.is_empty() => Path::Whole,
            Some(Value::String(text)) if !text.contains('.') && text != "$flagd" => Path::Key(ContextKey::new(text)),
            Some(Value::String(text)) => Path::Keys(text.split('.').map(Box::from).collect()),
            Some(Value::Number(number)) => Path::Keys(Box::new([Box::from(js::number_text(number))])),
            Some(rule) => Path::Computed(self.expr(rule, depth + 1)?),
        };
        let default = default.map(|rule| self.expr(rule, depth + 1)).transpose()?;
        Ok(Expr::Var(Box::new(Var { path, default })))
    }

    fn sem_ver(&mut self, args: &Value, depth: usize) -> Result<Expr, CompileError> {
        let Ok([version, comparison, target]) = <[Expr; 3]>::try_from(self.args(args, depth)?.into_vec()) else {
            return Ok(Expr::Literal(Value::Null));
        };
        let Expr::Literal(Value::String(comparison)) = comparison else {
            return Ok(Expr::Literal(Value::Null));
        };
        let Some(comparison) = Comparison::parse(&comparison) else {
            return Ok(Expr::Literal(Value::Null));
        };
        let target = match &target {
            Expr::Literal(value) => match version_of(value) {
                Some(parsed) => Target::Parsed(parsed.into_owned()),
                None => return Ok(Expr::Literal(Value::Null)),
            },
            _ => Target::Computed(target),
        };
        Ok(Expr::SemVer(Box::new(SemVer {
            version,
            comparison,
            target,
        })))
    }

    fn fractional(&mut self, args: &Value, depth: usize) -> Result<Expr, CompileError> {
        let items: &[Value] = match args {
            Value::Array(items) => items,
            _ => return Err(CompileError::Fractional("expects an array of buckets")),
        };
        let (key, bucket_rules) = match items.split_first() {
            Some((Value::Array(_), _)) | None => (None, items),
            Some((key, rest)) => (Some(self.expr(key, depth + 1)?), rest),
        };
        if bucket_rules.is_empty() {
            return Err(CompileError::Fractional("needs at least one bucket"));
        }
        let buckets = bucket_rules
            .iter()
            .map(|bucket| self.bucket(bucket, depth + 1))
            .collect::<Result<Box<[_]>, _>>()?;
        let literal_weights: Option<Vec<&Value>> = buckets
            .iter()
            .map(|bucket| match &bucket.weight {
                Expr::Literal(weight) => Some(weight),
                _ => None,
            })
            .collect();
        let fixed_weights = match literal_weights {
            None => None,
            Some(literals) => {
                let weights = literals.into_iter().map(eval::weight).collect::<Option<Vec<u64>>>();
                match weights.and_then(eval::valid_weights) {
                    Some(weights) => Some(weights),
                    // Weights that can never be valid: the operator always yields null.
                    None => return Ok(Expr::Literal(Value::Null)),
                }
            }
        };
        let mut literal_variants = true;
        for bucket in buckets.iter() {
            match &bucket.variant {
                Expr::Literal(value) if !eval::is_variant(value) => return Ok(Expr::Literal(Value::Null)),
                Expr::Literal(_) => {}
                _ => literal_variants = false,
            }
        }
        Ok(Expr::Fractional(Box::new(Fractional {
            key,
            buckets,
            fixed_weights,
            literal_variants,
        })))
    }

    fn bucket(&mut self, rule: &Value, depth: usize) -> Result<Bucket, CompileError> {
        let (variant, weight) = match rule {
            Value::Array(parts) => match parts.as_slice() {
                [variant] => (variant, &Value::from(1)),
                [variant, weight] => (variant, weight),
                _ => return Err(CompileError::Fractional("a bucket is [variant] or [variant, weight]")),
            },
            _ => return Err(CompileError::Fractional("a bucket is [variant] or [variant, weight]")),
        };
        Ok(Bucket {
            variant: self.expr(variant, depth + 1)?,
            weight: self.expr(weight, depth + 1)?,
        })
    }
}

/// An array of literals is itself a literal.
fn fold_array(items: Box<[Expr]>) -> Expr {
    if !items.iter().all(|item| matches!(item, Expr::Literal(_))) {
        return Expr::Array(items);
    }
    let values = items
        .into_vec()
        .into_iter()
        .map(|item| match item {
            Expr::Literal(value) => value,
            _ => Value::Null,
        })
        .collect();
    Expr::Literal(Value::Array(values))
}

/// A context value read as a version: strings as written, numbers as JavaScript prints them.
fn version_of(value: &Value) -> Option<Version<'_>> {
    match value {
        Value::String(text) => Version::parse(text),
        Value::Number(number) => Version::parse(&js::number_text(number)).map(Version::into_owned),
        _ => None,
    }
}
