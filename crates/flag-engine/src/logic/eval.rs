//! Evaluation of compiled rules.
//!
//! Results borrow from the rule or the context wherever they can (`Cow`), so a typical
//! targeting rule — a few `var`s compared with literals — allocates nothing.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::context::Context;
use crate::short_str;

use super::js::{compare, loose_equal, number_value, strict_equal, to_number, to_text, truthy};
use super::{Bucket, Check, Expr, Fractional, Op, Path, SemVer, Target, Test, Var, version_of};
use crate::bucketing;

/// The evaluation ran out of steps (a rule mapping over a huge context array, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exhausted;

type Outcome<'a> = Result<Cow<'a, Value>, Exhausted>;

/// The data of one evaluation: the context with flagd's enrichment.
#[derive(Debug)]
pub(crate) struct Root<'a> {
    pub(crate) context: &'a Context,
    /// The flag key as a JSON string, so `$flagd.flagKey` can be borrowed.
    pub(crate) flag_key: &'a Value,
    pub(crate) timestamp: i64,
}

/// Steps left; every node evaluated spends one.
#[derive(Debug)]
pub(crate) struct Budget(pub(crate) u32);

impl Budget {
    fn spend(&mut self) -> Result<(), Exhausted> {
        self.charge(1)
    }

    /// Spends `steps` at once: building or copying a value costs in proportion to its size,
    /// so rules that grow values (a `reduce` doubling an array, `cat` in a loop) run out of
    /// budget instead of memory or time.
    fn charge(&mut self, steps: usize) -> Result<(), Exhausted> {
        let steps = u32::try_from(steps).unwrap_or(u32::MAX);
        self.0 = self.0.checked_sub(steps).ok_or(Exhausted)?;
        Ok(())
    }
}

/// What copying or building `value` costs: one step per element or per 16 bytes of text.
fn size_of(value: &Value) -> usize {
    match value {
        Value::String(text) => 1 + text.len() / 16,
        Value::Array(items) => 1 + items.len(),
        Value::Object(fields) => 1 + fields.len(),
        _ => 1,
    }
}

/// What `var` reads: the root, or the current element inside `map`, `filter`, `all`...
#[derive(Debug, Clone, Copy)]
struct Data<'a> {
    root: &'a Root<'a>,
    item: Option<&'a Value>,
}

impl Expr {
    pub(crate) fn evaluate<'a>(&'a self, root: &'a Root<'a>, budget: &mut Budget) -> Outcome<'a> {
        eval(self, Data { root, item: None }, budget)
    }

    /// For an `if` rule with literal results ([`Expr::literal_results`]): the index of the
    /// result it takes, `None` when it takes none (it then yields null). Conditions are tested
    /// exactly as [`Expr::evaluate`] tests them, with the same steps.
    pub(crate) fn choose<'a>(&'a self, root: &'a Root<'a>, budget: &mut Budget) -> Result<Option<usize>, Exhausted> {
        budget.spend()?;
        let Expr::Op(Op::If, args) = self else {
            return Ok(None);
        };
        let chosen = branch(args, Data { root, item: None }, budget)?;
        // The literal taken, or the null evaluation builds without one: one step either way.
        budget.spend()?;
        // Results sit at odd positions, the `else` last: position / 2 numbers them in order.
        Ok(chosen.map(|index| index / 2))
    }
}

fn eval<'a>(expr: &'a Expr, data: Data<'a>, budget: &mut Budget) -> Outcome<'a> {
    budget.spend()?;
    match expr {
        Expr::Literal(value) => Ok(Cow::Borrowed(value)),
        Expr::Array(items) => {
            let values = items.iter().map(|item| eval(item, data, budget).map(Cow::into_owned));
            Ok(Cow::Owned(Value::Array(values.collect::<Result<_, _>>()?)))
        }
        Expr::Var(var) => eval_var(var, data, budget),
        Expr::Op(op, args) => {
            let value = eval_op(*op, args, data, budget)?;
            // Values an operator builds cost their size (see `Budget::charge`).
            if let Cow::Owned(built) = &value {
                budget.charge(size_of(built))?;
            }
            Ok(value)
        }
        Expr::Fractional(fractional) => eval_fractional(fractional, data, budget),
        Expr::SemVer(sem_ver) => eval_sem_ver(sem_ver, data, budget),
        Expr::Check(check) => {
            let holds = check_holds(check, data, budget)?;
            // As an operator's result would, the boolean costs its size.
            budget.spend()?;
            Ok(Cow::Owned(holds.map_or(Value::Null, Value::Bool)))
        }
    }
}

fn null<'a>() -> Outcome<'a> {
    Ok(Cow::Owned(Value::Null))
}

fn boolean<'a>(value: bool) -> Outcome<'a> {
    Ok(Cow::Owned(Value::Bool(value)))
}

fn eval_var<'a>(var: &'a Var, data: Data<'a>, budget: &mut Budget) -> Outcome<'a> {
    let found = resolve(&var.path, data, budget)?;
    match (found, &var.default) {
        (Some(value), _) if !value.is_null() => Ok(value),
        (_, Some(default)) => eval(default, data, budget),
        (found, None) => Ok(found.unwrap_or(Cow::Owned(Value::Null))),
    }
}

/// An operand's value: a `var` (the usual operand) is read without a dispatch through
/// [`eval`], with the same step; anything else is evaluated.
fn operand<'a>(expr: &'a Expr, data: Data<'a>, budget: &mut Budget) -> Outcome<'a> {
    match expr {
        Expr::Var(var) => {
            budget.spend()?;
            eval_var(var, data, budget)
        }
        _ => eval(expr, data, budget),
    }
}

/// Whether `text` is one of the sorted `items`. A short list is compared item by item to its
/// end — a loop whose length does not depend on which item matches predicts well; a long one
/// (user ids, say) is binary-searched.
fn one_of(items: &[Box<str>], text: &str) -> bool {
    const SCANNED: usize = 16;
    if items.len() <= SCANNED {
        return items
            .iter()
            .fold(false, |found, item| found | short_str::equal(item, text));
    }
    items.binary_search_by(|item| (**item).cmp(text)).is_ok()
}

/// What a `var` path points at, `None` when nothing is there.
fn resolve<'a>(path: &'a Path, data: Data<'a>, budget: &mut Budget) -> Result<Option<Cow<'a, Value>>, Exhausted> {
    Ok(match path {
        Path::Whole => Some(whole(data)),
        Path::Key(key) => match data.item {
            Some(item) => descend(item, std::iter::once(key.name())).map(Cow::Borrowed),
            None => data.root.context.lookup(key).map(Cow::Borrowed),
        },
        Path::Keys(keys) => lookup(data, keys.iter().map(|key| &**key)),
        Path::Computed(rule) => {
            let path = eval(rule, data, budget)?;
            match to_text(&path) {
                text if text.is_empty() => Some(whole(data)),
                text => lookup(data, text.split('.')),
            }
        }
    })
}

/// A [`Check`]: the same answer as its operator applied to the `var` and the constant, and the
/// same steps for those two operands (the caller spends the operator's). `None` where the
/// operator yields null.
fn check_holds<'a>(check: &'a Check, data: Data<'a>, budget: &mut Budget) -> Result<Option<bool>, Exhausted> {
    budget.charge(2)?;
    let found = resolve(&check.subject, data, budget)?;
    let value = found.as_deref().unwrap_or(&Value::Null);
    Ok(match &check.test {
        Test::OneOf(items) => Some(value.as_str().is_some_and(|text| one_of(items, text))),
        Test::Compare(op, constant) => compared(*op, value, constant),
    })
}

fn whole<'a>(data: Data<'a>) -> Cow<'a, Value> {
    if let Some(item) = data.item {
        return Cow::Borrowed(item);
    }
    let mut object = data.root.context.to_map();
    object.insert("$flagd".to_owned(), flagd_object(data.root));
    Cow::Owned(Value::Object(object))
}

fn flagd_object(root: &Root<'_>) -> Value {
    let mut flagd = Map::new();
    flagd.insert("flagKey".to_owned(), root.flag_key.clone());
    flagd.insert("timestamp".to_owned(), Value::from(root.timestamp));
    Value::Object(flagd)
}

fn lookup<'a, 'k>(data: Data<'a>, mut keys: impl Iterator<Item = &'k str>) -> Option<Cow<'a, Value>> {
    if let Some(item) = data.item {
        return descend(item, keys).map(Cow::Borrowed);
    }
    let first = keys.next()?;
    if first == "$flagd" {
        return match (keys.next(), keys.next()) {
            (None, _) => Some(Cow::Owned(flagd_object(data.root))),
            (Some("flagKey"), None) => Some(Cow::Borrowed(data.root.flag_key)),
            (Some("timestamp"), None) => Some(Cow::Owned(Value::from(data.root.timestamp))),
            _ => None,
        };
    }
    descend(data.root.context.get(first)?, keys).map(Cow::Borrowed)
}

fn descend<'a, 'k>(mut value: &'a Value, keys: impl Iterator<Item = &'k str>) -> Option<&'a Value> {
    for key in keys {
        value = match value {
            Value::Object(object) => object.get(key)?,
            Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

fn eval_op<'a>(op: Op, args: &'a [Expr], data: Data<'a>, budget: &mut Budget) -> Outcome<'a> {
    match op {
        Op::If => eval_if(args, data, budget),
        Op::And | Op::Or => eval_and_or(op == Op::And, args, data, budget),
        Op::Map | Op::Filter | Op::All | Op::Some | Op::None => eval_over_array(op, args, data, budget),
        Op::Reduce => eval_reduce(args, data, budget),
        Op::Missing => eval_missing(args, data, budget),
        Op::MissingSome => eval_missing_some(args, data, budget),
        // Most operators take one to three arguments: evaluate them into an array on the
        // stack rather than a Vec on the heap.
        _ => match args {
            [first] => Ok(apply(op, &[eval(first, data, budget)?])),
            [first, second] => {
                let values = [eval(first, data, budget)?, eval(second, data, budget)?];
                Ok(apply(op, &values))
            }
            [first, second, third] => {
                let values = [
                    eval(first, data, budget)?,
                    eval(second, data, budget)?,
                    eval(third, data, budget)?,
                ];
                Ok(apply(op, &values))
            }
            _ => {
                let values = evaluate_all(args, data, budget)?;
                Ok(apply(op, &values))
            }
        },
    }
}

fn evaluate_all<'a>(args: &'a [Expr], data: Data<'a>, budget: &mut Budget) -> Result<Vec<Cow<'a, Value>>, Exhausted> {
    args.iter().map(|arg| eval(arg, data, budget)).collect()
}

/// Operators whose arguments are all evaluated first.
fn apply<'a>(op: Op, values: &[Cow<'a, Value>]) -> Cow<'a, Value> {
    let arg = |index: usize| values.get(index).map_or(&Value::Null, |value| &**value);
    let owned = Cow::Owned;
    match op {
        Op::Less | Op::LessOrEqual | Op::Greater | Op::GreaterOrEqual => owned(Value::Bool(ordered(op, values))),
        Op::Equal | Op::NotEqual | Op::StrictEqual | Op::StrictNotEqual | Op::In | Op::StartsWith | Op::EndsWith => {
            owned(compared(op, arg(0), arg(1)).map_or(Value::Null, Value::Bool))
        }
        Op::Not => owned(Value::Bool(!truthy(arg(0)))),
        Op::Truthy => owned(Value::Bool(truthy(arg(0)))),
        Op::Cat => owned(Value::String(values.iter().map(|value| to_text(value)).collect())),
        Op::Substr => owned(substring(arg(0), arg(1), values.get(2).map(|value| &**value))),
        Op::Add => owned(number_value(values.iter().map(|value| to_number(value)).sum())),
        Op::Multiply => owned(number_value(values.iter().map(|value| to_number(value)).product())),
        Op::Subtract if values.len() == 1 => owned(number_value(-to_number(arg(0)))),
        Op::Subtract => owned(number_value(to_number(arg(0)) - to_number(arg(1)))),
        Op::Divide => owned(number_value(to_number(arg(0)) / to_number(arg(1)))),
        Op::Modulo => owned(number_value(to_number(arg(0)) % to_number(arg(1)))),
        Op::Min => owned(extreme(values, f64::min)),
        Op::Max => owned(extreme(values, f64::max)),
        Op::Merge => owned(Value::Array(values.iter().flat_map(|value| flatten(value)).collect())),
        Op::Log => values.first().cloned().unwrap_or(Cow::Owned(Value::Null)),
        Op::If
        | Op::And
        | Op::Or
        | Op::Map
        | Op::Filter
        | Op::Reduce
        | Op::All
        | Op::Some
        | Op::None
        | Op::Missing
        | Op::MissingSome => owned(Value::Null),
    }
}

/// `<`, `<=` (both also as "between" with three arguments), `>`, `>=`.
fn ordered(op: Op, values: &[Cow<'_, Value>]) -> bool {
    let holds = |left: &Value, right: &Value| ordered_pair(op, left, right);
    match values {
        [left, right] => holds(left, right),
        [low, middle, high] if matches!(op, Op::Less | Op::LessOrEqual) => holds(low, middle) && holds(middle, high),
        [left, right, ..] => holds(left, right),
        _ => false,
    }
}

fn ordered_pair(op: Op, left: &Value, right: &Value) -> bool {
    let order = compare(left, right);
    match op {
        Op::Less => order == Some(Ordering::Less),
        Op::LessOrEqual => matches!(order, Some(Ordering::Less | Ordering::Equal)),
        Op::Greater => order == Some(Ordering::Greater),
        _ => matches!(order, Some(Ordering::Greater | Ordering::Equal)),
    }
}

fn contains(haystack: &Value, needle: &Value) -> bool {
    match haystack {
        Value::String(text) => text.contains(&*to_text(needle)),
        Value::Array(items) => items.iter().any(|item| strict_equal(item, needle)),
        _ => false,
    }
}

fn substring(source: &Value, start: &Value, length: Option<&Value>) -> Value {
    let chars: Vec<char> = to_text(source).chars().collect();
    let count = chars.len() as f64;
    let start = to_number(start);
    let start = if start.is_nan() { 0.0 } else { start };
    let begin = if start < 0.0 {
        (count + start).max(0.0)
    } else {
        start.min(count)
    };
    let end = match length.map(to_number) {
        Some(length) if length < 0.0 => (count + length).max(begin),
        Some(length) if !length.is_nan() => (begin + length).min(count),
        _ => count,
    };
    // Both bounds are whole-number-free floats clamped to [0, count]; truncation picks indices.
    Value::String(
        chars[begin as usize..(end as usize).max(begin as usize)]
            .iter()
            .collect(),
    )
}

fn extreme(values: &[Cow<'_, Value>], pick: fn(f64, f64) -> f64) -> Value {
    let mut numbers = values.iter().map(|value| to_number(value));
    let Some(first) = numbers.next() else {
        return Value::Null;
    };
    number_value(numbers.fold(first, pick))
}

fn flatten(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

/// flagd's `starts_with` / `ends_with`: null (`None`) unless both arguments are strings.
fn affix(text: &Value, affix: &Value, test: fn(&str, &str) -> bool) -> Option<bool> {
    match (text, affix) {
        (Value::String(text), Value::String(affix)) => Some(test(text, affix)),
        _ => None,
    }
}

fn eval_if<'a>(args: &'a [Expr], data: Data<'a>, budget: &mut Budget) -> Outcome<'a> {
    match branch(args, data, budget)?.map(|index| &args[index]) {
        // Mostly a variant name: taken as it is, one dispatch fewer.
        Some(Expr::Literal(value)) => {
            budget.spend()?;
            Ok(Cow::Borrowed(value))
        }
        Some(chosen) => eval(chosen, data, budget),
        None => null(),
    }
}

/// The branch `if` takes, as the index in `args` of its result: the value after the first
/// truthy condition, else the trailing `else` value; `None` when there is neither.
fn branch<'a>(args: &'a [Expr], data: Data<'a>, budget: &mut Budget) -> Result<Option<usize>, Exhausted> {
    let mut pairs = args.chunks_exact(2);
    for (index, pair) in pairs.by_ref().enumerate() {
        if test(&pair[0], data, budget)? {
            return Ok(Some(2 * index + 1));
        }
    }
    Ok((!pairs.remainder().is_empty()).then(|| args.len() - 1))
}

/// Whether `expr` is truthy, for conditions: the same answer as `truthy(eval(expr))`, without
/// building the values of `and`, `or`, `!` and `if` that only their truthiness is asked of.
fn test<'a>(expr: &'a Expr, data: Data<'a>, budget: &mut Budget) -> Result<bool, Exhausted> {
    let (op, args) = match expr {
        Expr::Op(op, args) => (op, args),
        // A null (not a version) is falsy.
        Expr::SemVer(sem_ver) => return Ok(sem_ver_holds(sem_ver, data, budget)? == Some(true)),
        Expr::Check(check) => {
            budget.spend()?;
            return Ok(check_holds(check, data, budget)? == Some(true));
        }
        _ => {
            let value = eval(expr, data, budget)?;
            return Ok(truthy(&value));
        }
    };
    budget.spend()?;
    match op {
        // `and` yields its first falsy operand or its last: truthy exactly when all are.
        Op::And => {
            for arg in args.iter() {
                if !test(arg, data, budget)? {
                    return Ok(false);
                }
            }
            Ok(!args.is_empty())
        }
        Op::Or => {
            for arg in args.iter() {
                if test(arg, data, budget)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Op::Not => Ok(!match args.first() {
            Some(arg) => test(arg, data, budget)?,
            None => false,
        }),
        Op::Truthy => match args.first() {
            Some(arg) => test(arg, data, budget),
            None => Ok(false),
        },
        Op::If => match branch(args, data, budget)? {
            Some(chosen) => test(&args[chosen], data, budget),
            None => Ok(false),
        },
        _ => match &**args {
            // Most conditions compare one value with another; a null (`starts_with` on a
            // number, say) is falsy.
            [left, right] if op.is_comparison() => {
                let (left, right) = (eval(left, data, budget)?, eval(right, data, budget)?);
                Ok(compared(*op, &left, &right) == Some(true))
            }
            _ => Ok(truthy(&*eval_op(*op, args, data, budget)?)),
        },
    }
}

/// The two-operand comparisons, as booleans; `None` where the operator yields null
/// (`starts_with`/`ends_with` unless both operands are strings).
fn compared(op: Op, left: &Value, right: &Value) -> Option<bool> {
    Some(match op {
        Op::Equal => loose_equal(left, right),
        Op::NotEqual => !loose_equal(left, right),
        Op::StrictEqual => strict_equal(left, right),
        Op::StrictNotEqual => !strict_equal(left, right),
        Op::Less | Op::LessOrEqual | Op::Greater | Op::GreaterOrEqual => ordered_pair(op, left, right),
        Op::In => contains(right, left),
        Op::StartsWith => affix(left, right, short_str::starts_with)?,
        Op::EndsWith => affix(left, right, short_str::ends_with)?,
        _ => return None,
    })
}

fn eval_and_or<'a>(is_and: bool, args: &'a [Expr], data: Data<'a>, budget: &mut Budget) -> Outcome<'a> {
    let mut last = Cow::Owned(Value::Null);
    for arg in args {
        last = eval(arg, data, budget)?;
        if truthy(&last) != is_and {
            return Ok(last);
        }
    }
    Ok(last)
}

fn eval_over_array<'a>(op: Op, args: &'a [Expr], data: Data<'a>, budget: &mut Budget) -> Outcome<'a> {
    let (Some(source), Some(rule)) = (args.first(), args.get(1)) else {
        return match op {
            Op::Map | Op::Filter => Ok(Cow::Owned(Value::Array(Vec::new()))),
            _ => boolean(false),
        };
    };
    let source = eval(source, data, budget)?;
    let items = match &*source {
        Value::Array(items) => items.as_slice(),
        _ => &[],
    };
    let mut results = Vec::new();
    for item in items {
        let scoped = Data {
            root: data.root,
            item: Some(item),
        };
        let result = eval(rule, scoped, budget)?;
        match op {
            Op::Map => results.push(result.into_owned()),
            Op::Filter if truthy(&result) => results.push(item.clone()),
            Op::All if !truthy(&result) => return boolean(false),
            Op::Some if truthy(&result) => return boolean(true),
            Op::None if truthy(&result) => return boolean(false),
            _ => {}
        }
    }
    match op {
        Op::Map | Op::Filter => Ok(Cow::Owned(Value::Array(results))),
        Op::All => boolean(!items.is_empty()),
        Op::Some => boolean(false),
        _ => boolean(true),
    }
}

fn eval_reduce<'a>(args: &'a [Expr], data: Data<'a>, budget: &mut Budget) -> Outcome<'a> {
    let (Some(source), Some(rule)) = (args.first(), args.get(1)) else {
        return null();
    };
    let mut accumulator = match args.get(2) {
        Some(initial) => eval(initial, data, budget)?.into_owned(),
        None => Value::Null,
    };
    let source = eval(source, data, budget)?;
    let Value::Array(items) = &*source else {
        return Ok(Cow::Owned(accumulator));
    };
    for item in items {
        // The accumulator is copied into each step's data.
        budget.charge(size_of(&accumulator) + size_of(item))?;
        let mut pair = Map::new();
        pair.insert("current".to_owned(), item.clone());
        pair.insert("accumulator".to_owned(), accumulator);
        let pair = Value::Object(pair);
        accumulator = eval(
            rule,
            Data {
                root: data.root,
                item: Some(&pair),
            },
            budget,
        )?
        .into_owned();
    }
    Ok(Cow::Owned(accumulator))
}

fn eval_missing<'a>(args: &'a [Expr], data: Data<'a>, budget: &mut Budget) -> Outcome<'a> {
    let values = evaluate_all(args, data, budget)?;
    let keys: Vec<&Value> = match values.first().map(|value| &**value) {
        Some(Value::Array(keys)) => keys.iter().collect(),
        _ => values.iter().map(|value| &**value).collect(),
    };
    Ok(Cow::Owned(Value::Array(missing_keys(&keys, data))))
}

fn eval_missing_some<'a>(args: &'a [Expr], data: Data<'a>, budget: &mut Budget) -> Outcome<'a> {
    let values = evaluate_all(args, data, budget)?;
    let needed = values.first().map_or(0.0, |value| to_number(value));
    let keys: Vec<&Value> = match values.get(1).map(|value| &**value) {
        Some(Value::Array(keys)) => keys.iter().collect(),
        _ => Vec::new(),
    };
    let missing = missing_keys(&keys, data);
    let present = (keys.len() - missing.len()) as f64;
    Ok(Cow::Owned(Value::Array(if present >= needed {
        Vec::new()
    } else {
        missing
    })))
}

fn missing_keys(keys: &[&Value], data: Data<'_>) -> Vec<Value> {
    keys.iter()
        .filter(|key| {
            let path = to_text(key);
            let found = if path.is_empty() {
                Some(whole(data))
            } else {
                lookup(data, path.split('.'))
            };
            // As in flagd (unlike json-logic-js), an empty string is present.
            found.is_none_or(|value| value.is_null())
        })
        .map(|key| (*key).clone())
        .collect()
}

fn eval_fractional<'a>(fractional: &'a Fractional, data: Data<'a>, budget: &mut Budget) -> Outcome<'a> {
    let key = match &fractional.key {
        // A bucketing expression that yields nothing (`{"var": "sessionId"}` without a
        // sessionId) voids the rule, as in OpenFeature's flagd-core: the flag falls back to its
        // default rather than bucketing by another key the author did not choose.
        Some(rule) => match eval(rule, data, budget)? {
            key if key.is_null() => return null(),
            key => key,
        },
        None => Cow::Owned(Value::Null),
    };
    // flagd reads a first argument that is an array as one more bucket; the key then becomes
    // flag key + targeting key, as it does when the rule names no bucketing expression.
    // The default key (flag key + targeting key) is put together on the stack when short.
    let mut buffer = [0u8; 192];
    let mut spill = Vec::new();
    let (key, extra): (&[u8], _) = match &*key {
        Value::String(key) => (key.as_bytes(), None),
        Value::Null => match default_bucket_key(data) {
            Some((flag_key, targeting_key)) => (joined_key(flag_key, targeting_key, &mut buffer, &mut spill), None),
            None => return null(),
        },
        Value::Array(parts) => match (default_bucket_key(data), extra_bucket(parts)) {
            (Some((flag_key, targeting_key)), Some(bucket)) => (
                joined_key(flag_key, targeting_key, &mut buffer, &mut spill),
                Some(bucket),
            ),
            _ => return null(),
        },
        _ => return null(),
    };
    // flagd checks every bucket's variant before choosing: one that is an array or object
    // voids the whole rule.
    let variants = match fractional.literal_variants {
        true => None,
        false => {
            let values = fractional
                .buckets
                .iter()
                .map(|bucket| eval(&bucket.variant, data, budget))
                .collect::<Result<Vec<_>, _>>()?;
            if values.iter().any(|value| !is_variant(value)) {
                return null();
            }
            Some(values)
        }
    };
    let computed;
    let weights: &[u64] = match (&fractional.fixed_weights, &extra) {
        (Some(weights), None) => weights,
        _ => match bucket_weights(
            &fractional.buckets,
            extra.as_ref().map(|(_, weight)| *weight),
            data,
            budget,
        )? {
            Some(weights) => {
                computed = weights;
                &computed
            }
            None => return null(),
        },
    };
    let Some(index) = bucketing::pick_bytes(key, weights) else {
        return null();
    };
    let index = match extra {
        Some((variant, _)) if index == 0 => return Ok(Cow::Owned(variant)),
        Some(_) => index - 1,
        None => index,
    };
    match variants {
        Some(mut values) => Ok(values.swap_remove(index)),
        None => eval(&fractional.buckets[index].variant, data, budget),
    }
}

/// What flagd accepts as a bucket's variant: a string, boolean, number or null.
pub(super) fn is_variant(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

/// An array given where the bucketing key goes, read as a bucket: `[variant]` or
/// `[variant, weight]`.
fn extra_bucket(parts: &[Value]) -> Option<(Value, u64)> {
    match parts {
        [variant] if is_variant(variant) => Some((variant.clone(), 1)),
        [variant, weight] if is_variant(variant) => Some((variant.clone(), self::weight(weight)?)),
        _ => None,
    }
}

/// Without a bucketing key flagd hashes the flag key followed by a non-empty targeting key.
/// `flag_key` followed by `targeting_key`, in `buffer` when it fits, otherwise in `spill`.
fn joined_key<'b>(flag_key: &str, targeting_key: &str, buffer: &'b mut [u8; 192], spill: &'b mut Vec<u8>) -> &'b [u8] {
    let length = flag_key.len() + targeting_key.len();
    if length <= buffer.len() {
        buffer[..flag_key.len()].copy_from_slice(flag_key.as_bytes());
        buffer[flag_key.len()..length].copy_from_slice(targeting_key.as_bytes());
        &buffer[..length]
    } else {
        spill.extend_from_slice(flag_key.as_bytes());
        spill.extend_from_slice(targeting_key.as_bytes());
        spill
    }
}

fn default_bucket_key<'a>(data: Data<'a>) -> Option<(&'a str, &'a str)> {
    let targeting_key = data
        .root
        .context
        .get("targetingKey")?
        .as_str()
        .filter(|key| !key.is_empty())?;
    let flag_key = data.root.flag_key.as_str()?;
    Some((flag_key, targeting_key))
}

fn bucket_weights(
    buckets: &[Bucket],
    first: Option<u64>,
    data: Data<'_>,
    budget: &mut Budget,
) -> Result<Option<Box<[u64]>>, Exhausted> {
    let mut weights = Vec::with_capacity(buckets.len() + 1);
    weights.extend(first);
    for bucket in buckets {
        let value = eval(&bucket.weight, data, budget)?;
        let Some(weight) = weight(&value) else {
            return Ok(None);
        };
        weights.push(weight);
    }
    Ok(valid_weights(weights))
}

/// A bucket weight as flagd reads it: a whole number, negative ones counting as zero; `None`
/// for anything else (the whole `fractional` then yields null).
pub(super) fn weight(value: &Value) -> Option<u64> {
    let number = value.as_f64()?;
    if number.fract() != 0.0 || number > f64::from(i32::MAX) {
        return None;
    }
    // Whole and at most i32::MAX, so the conversion is exact.
    Some(number.max(0.0) as u64)
}

/// Weights whose total stays within flagd's bound (i32::MAX).
pub(super) fn valid_weights(weights: Vec<u64>) -> Option<Box<[u64]>> {
    let total: u64 = weights.iter().sum();
    (total <= i32::MAX as u64).then(|| weights.into_boxed_slice())
}

fn eval_sem_ver<'a>(sem_ver: &'a SemVer, data: Data<'a>, budget: &mut Budget) -> Outcome<'a> {
    match sem_ver_holds(sem_ver, data, budget)? {
        Some(holds) => boolean(holds),
        None => null(),
    }
}

/// `None` when either side is not a version (the operator then yields null).
fn sem_ver_holds<'a>(sem_ver: &'a SemVer, data: Data<'a>, budget: &mut Budget) -> Result<Option<bool>, Exhausted> {
    let version = operand(&sem_ver.version, data, budget)?;
    let Some(version) = version_of(&version) else {
        return Ok(None);
    };
    let holds = match &sem_ver.target {
        Target::Parsed(target) => sem_ver.comparison.holds(&version, target),
        Target::Computed(rule) => match version_of(&*eval(rule, data, budget)?) {
            Some(target) => sem_ver.comparison.holds(&version, &target),
            None => return Ok(None),
        },
    };
    Ok(Some(holds))
}

#[cfg(test)]
mod tests {
    //! The shortcuts compiled for common shapes ([`Check`], [`Expr::choose`]) must answer
    //! exactly as the general evaluation of the same rule, and spend the same steps.

    use serde_json::json;

    use super::*;
    use crate::context::ContextKey;
    use crate::logic::Compiler;

    /// Values a context may hold, including none at all (`None`).
    fn subjects() -> Vec<Option<Value>> {
        let values = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(7),
            json!(-2.5),
            json!("7"),
            json!(""),
            json!("DE"),
            json!("de"),
            json!("ana@shop.com"),
            json!("shop.com"),
            json!("@shop.com"),
            json!("ünïcødé@shop.com"),
            json!(["DE"]),
            json!({"DE": 1}),
        ];
        std::iter::once(None).chain(values.into_iter().map(Some)).collect()
    }

    fn constants() -> Vec<Value> {
        // A long list (searched, not scanned) holding some of the subjects among others.
        let long: Vec<Value> = (0..40)
            .map(|n| json!(format!("user-{n}")))
            .chain([json!("DE"), json!("ana@shop.com"), json!("7"), json!("")])
            .collect();
        vec![
            Value::Array(long),
            json!(["DE", "FR", "NL"]),
            json!(["DE", 7]),
            json!([]),
            json!("@shop.com"),
            json!("ana"),
            json!("DE"),
            json!(""),
            json!(7),
            json!("7"),
            json!(null),
            json!(true),
        ]
    }

    fn compile(rule: &Value) -> Expr {
        Compiler::new(64, 10_000)
            .compile(rule)
            .unwrap_or_else(|error| panic!("{rule}: {error}"))
    }

    /// Evaluates and tests `expr`, returning both answers and the steps each spent.
    fn run(expr: &Expr, context: &Context) -> (Value, u32, bool, u32) {
        let flag_key = json!("f");
        let root = Root {
            context,
            flag_key: &flag_key,
            timestamp: 0,
        };
        let data = Data {
            root: &root,
            item: None,
        };
        let mut budget = Budget(1_000);
        let value = eval(expr, data, &mut budget)
            .map(Cow::into_owned)
            .unwrap_or(json!("exhausted"));
        let evaluated = 1_000 - budget.0;
        let mut budget = Budget(1_000);
        let holds = test(expr, data, &mut budget).unwrap_or(false);
        (value, evaluated, holds, 1_000 - budget.0)
    }

    #[test]
    fn checks_answer_as_their_operator_does() {
        let operators = [
            "==",
            "===",
            "!=",
            "!==",
            "<",
            "<=",
            ">",
            ">=",
            "in",
            "starts_with",
            "ends_with",
        ];
        let mut compared = 0;
        for name in operators {
            let op = Op::named(name).unwrap_or_else(|| panic!("{name}"));
            for constant in constants() {
                let rule = json!({ name: [{"var": "x"}, constant] });
                let check = compile(&rule);
                assert!(matches!(check, Expr::Check(_)), "{rule} compiles to a check");
                let general = Expr::Op(
                    op,
                    Box::new([
                        Expr::Var(Box::new(Var {
                            path: Path::Key(ContextKey::new("x")),
                            default: None,
                        })),
                        Expr::Literal(constant.clone()),
                    ]),
                );
                for subject in subjects() {
                    let context: Context = subject.iter().map(|value| ("x".to_owned(), value.clone())).collect();
                    assert_eq!(
                        run(&check, &context),
                        run(&general, &context),
                        "{rule} with x = {subject:?}"
                    );
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 11 * 12 * 17);
    }

    #[test]
    fn operands_that_are_not_a_plain_var_and_a_literal_stay_general() {
        for rule in [
            json!({"==": [{"var": ["x", 1]}, 1]}),
            json!({"==": [1, {"var": "x"}]}),
            json!({"==": [{"var": {"cat": ["x"]}}, 1]}),
            json!({"==": [{"var": "x"}, {"var": "y"}]}),
            json!({"==": [{"var": "x"}, 1, 2]}),
            json!({"cat": [{"var": "x"}, "a"]}),
        ] {
            assert!(matches!(compile(&rule), Expr::Op(..)), "{rule}");
        }
    }

    #[test]
    fn choosing_a_literal_result_picks_what_evaluating_yields() {
        let rules = [
            json!({"if": [{"ends_with": [{"var": "x"}, "@shop.com"]}, "staff", "guest"]}),
            json!({"if": [{"==": [{"var": "x"}, 7]}, "seven", {"in": [{"var": "x"}, ["DE", "FR"]]}, "eu", null]}),
            json!({"if": [{"var": "x"}, true, 3]}),
            json!({"if": [{"var": "x"}, "only"]}),
            json!({"if": []}),
            json!({"?:": [{"!": {"var": "x"}}, "no", "yes"]}),
        ];
        for rule in rules {
            let expr = compile(&rule);
            let results = expr
                .literal_results()
                .unwrap_or_else(|| panic!("{rule} has literal results"));
            for subject in subjects() {
                let context: Context = subject.iter().map(|value| ("x".to_owned(), value.clone())).collect();
                let flag_key = json!("f");
                let root = Root {
                    context: &context,
                    flag_key: &flag_key,
                    timestamp: 0,
                };
                let mut chosen_budget = Budget(1_000);
                let chosen = expr.choose(&root, &mut chosen_budget).unwrap_or(None);
                let mut budget = Budget(1_000);
                let evaluated = expr.evaluate(&root, &mut budget).map(Cow::into_owned);
                let expected = chosen.map_or(Value::Null, |index| results[index].clone());
                assert_eq!(evaluated, Ok(expected), "{rule} with x = {subject:?}");
                assert_eq!(chosen_budget.0, budget.0, "{rule} with x = {subject:?}: steps");
            }
        }
        assert!(
            compile(&json!({"if": [{"var": "x"}, {"var": "y"}, "b"]}))
                .literal_results()
                .is_none()
        );
        assert!(compile(&json!({"and": [true, "a"]})).literal_results().is_none());
    }
}
