//! The worst-case cost of a CEL rule on a document, read off the rule's syntax tree before it
//! runs.
//!
//! The CEL interpreter has no step counter and cannot be interrupted, so a rule such as three
//! nested `all` over a 2,000-element list would hold a thread for hours. Instead of stopping a
//! rule midway, we refuse to start one whose bound exceeds [`MAX_RULE_COST`]. The bound counts
//! one step per node evaluated, multiplies a comprehension's body by the length of its range,
//! and charges operations that copy or scan a value (`+`, `in`, `matches`, …) its length.
//!
//! Lengths come from the document itself: `config.items` is measured where it is, and a loop
//! variable is as long as the longest value inside its range (numbers have no length, so
//! `a + b` over numbers costs one step). What cannot be traced to the document or to the
//! rule's literals is assumed as long as the longest value the rule could build — the
//! document's longest, once more for every `+` in the rule, since macros never grow a value.

use std::collections::HashMap;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, MapExpr, StructExpr, operators};
use serde_json::Value;

/// The most steps a rule may be bound to take on a document: two nested `all` over 1,000
/// elements each (9 million steps) ran in 0.9 s on one core of a debug build, far less in
/// release; a single `all` may cover a million elements.
pub const MAX_RULE_COST: u64 = 10_000_000;

/// Calls whose result is a scalar whatever their operands.
const SCALAR_RESULTS: &[&str] = &[
    operators::LOGICAL_AND,
    operators::LOGICAL_OR,
    operators::LOGICAL_NOT,
    operators::SUBSTRACT,
    operators::MULTIPLY,
    operators::DIVIDE,
    operators::MODULO,
    operators::EQUALS,
    operators::NOT_EQUALS,
    operators::GREATER_EQUALS,
    operators::LESS_EQUALS,
    operators::GREATER,
    operators::LESS,
    operators::NEGATE,
    operators::NOT_STRICTLY_FALSE,
    operators::IN,
    "size",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "int",
    "uint",
    "double",
    "bool",
    "type",
    "has",
];

/// How long a value is (elements, entries or bytes; 0 for a scalar) and how long the longest
/// value inside it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Shape {
    length: u64,
    inner: u64,
}

impl Shape {
    const SCALAR: Shape = Shape { length: 0, inner: 0 };

    /// A value that is any element of this one.
    fn element(self) -> Shape {
        Shape {
            length: self.inner,
            inner: self.inner,
        }
    }

    fn longest(self) -> u64 {
        self.length.max(self.inner)
    }
}

/// A document measured once, in one pass, for every rule checked against it: each array
/// and object keeps its [`Shape`], so a rule that names many paths costs a lookup per path.
pub struct MeasuredDocument<'d> {
    /// The CEL variable the document is bound to.
    variable: &'d str,
    document: &'d Value,
    /// Shapes of the document's arrays and objects, by address.
    containers: HashMap<usize, Shape>,
}

impl<'d> MeasuredDocument<'d> {
    pub fn new(variable: &'d str, document: &'d Value) -> MeasuredDocument<'d> {
        let mut containers = HashMap::new();
        measure(document, &mut containers);
        MeasuredDocument {
            variable,
            document,
            containers,
        }
    }

    fn shape(&self, value: &Value) -> Shape {
        match value {
            Value::String(text) => Shape {
                length: text.len() as u64,
                inner: 0,
            },
            Value::Array(_) | Value::Object(_) => self.containers.get(&address(value)).copied().unwrap_or_default(),
            Value::Null | Value::Bool(_) | Value::Number(_) => Shape::SCALAR,
        }
    }
}

/// The shape of `value`, noting that of every array and object inside it (keys count as
/// values inside their object).
fn measure(value: &Value, containers: &mut HashMap<usize, Shape>) -> Shape {
    let shape = match value {
        Value::String(text) => {
            return Shape {
                length: text.len() as u64,
                inner: 0,
            };
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => return Shape::SCALAR,
        Value::Array(items) => Shape {
            length: items.len() as u64,
            inner: items
                .iter()
                .map(|item| measure(item, containers).longest())
                .max()
                .unwrap_or(0),
        },
        Value::Object(fields) => Shape {
            length: fields.len() as u64,
            inner: fields
                .iter()
                .map(|(key, field)| (key.len() as u64).max(measure(field, containers).longest()))
                .max()
                .unwrap_or(0),
        },
    };
    containers.insert(address(value), shape);
    shape
}

/// Where a value of the document lives: its identity while the document is borrowed.
fn address(value: &Value) -> usize {
    std::ptr::from_ref(value) as usize
}

/// The most steps `rule` can take on `document`.
pub fn estimate(rule: &IdedExpr, document: &MeasuredDocument<'_>) -> u64 {
    let whole = document.shape(document.document);
    let (longest_literal, concatenations) = literals(rule);
    let unknown = whole.longest().max(longest_literal).max(1);
    let mut estimator = Estimator {
        document,
        unknown: Shape {
            length: unknown.saturating_mul(concatenations + 1),
            inner: unknown.saturating_mul(concatenations + 1),
        },
        scope: Vec::new(),
    };
    estimator.cost(rule).0
}

struct Estimator<'d, 'm> {
    document: &'m MeasuredDocument<'d>,
    /// What a value the rule builds can be at most.
    unknown: Shape,
    /// Loop variables in scope, innermost last.
    scope: Vec<(&'d str, Shape)>,
}

/// A step count and the shape of the value it produces.
type Costed = (u64, Shape);

impl<'d, 'm> Estimator<'d, 'm> {
    fn cost(&mut self, node: &'d IdedExpr) -> Costed {
        if let Some(value) = self.in_document(node) {
            return (path_length(node), self.document.shape(value));
        }
        match &node.expr {
            Expr::Unspecified => (1, Shape::SCALAR),
            Expr::Literal(literal) => (1, literal_shape(literal)),
            Expr::Ident(name) => (1, self.variable(name)),
            Expr::Select(select) => {
                let (cost, operand) = self.cost(&select.operand);
                let shape = if select.test { Shape::SCALAR } else { operand.element() };
                (cost.saturating_add(1), shape)
            }
            Expr::List(list) => {
                let (cost, inner) = self.all(list.elements.iter());
                (
                    cost,
                    Shape {
                        length: list.elements.len() as u64,
                        inner,
                    },
                )
            }
            Expr::Map(MapExpr { entries }) | Expr::Struct(StructExpr { entries, .. }) => {
                let (cost, inner) = self.entries(entries.iter().map(|entry| &entry.expr));
                (
                    cost,
                    Shape {
                        length: entries.len() as u64,
                        inner,
                    },
                )
            }
            Expr::Call(call) => {
                let mut operands = Vec::with_capacity(call.args.len() + 1);
                let mut cost: u64 = 1;
                for operand in call.target.iter().map(|target| &**target).chain(&call.args) {
                    let (steps, shape) = self.cost(operand);
                    cost = cost.saturating_add(steps);
                    operands.push(shape);
                }
                let (work, shape) = self.call(&call.func_name, &operands);
                (cost.saturating_add(work), shape)
            }
            Expr::Comprehension(comprehension) => {
                let (range_cost, range) = self.cost(&comprehension.iter_range);
                let (init_cost, accumulator) = self.cost(&comprehension.accu_init);
                let builds_list = matches!(comprehension.accu_init.expr, Expr::List(_));
                let result = if builds_list {
                    Shape {
                        length: range.length,
                        inner: self.unknown.inner,
                    }
                } else {
                    accumulator
                };
                let depth = self.scope.len();
                self.scope.push((comprehension.iter_var.as_str(), range.element()));
                if let Some(second) = &comprehension.iter_var2 {
                    self.scope.push((second.as_str(), range.element()));
                }
                self.scope.push((comprehension.accu_var.as_str(), result));
                let body = self
                    .cost(&comprehension.loop_cond)
                    .0
                    .saturating_add(self.cost(&comprehension.loop_step).0);
                let (result_cost, _) = self.cost(&comprehension.result);
                self.scope.truncate(depth);
                let cost = range_cost
                    .saturating_add(init_cost)
                    .saturating_add(range.length.saturating_mul(body))
                    .saturating_add(result_cost);
                (cost, result)
            }
        }
    }

    /// The value a plain path from the document (`config.a.b`, no loop variable named
    /// `config` in scope) leads to.
    fn in_document(&self, node: &IdedExpr) -> Option<&'d Value> {
        let segments = path_segments(&node.expr)?;
        let (root, fields) = segments.split_first()?;
        let variable = self.document.variable;
        if *root != variable || self.scope.iter().any(|(name, _)| *name == variable) {
            return None;
        }
        fields
            .iter()
            .try_fold(self.document.document, |value, field| value.get(*field))
            .or(Some(&Value::Null))
    }

    fn variable(&self, name: &str) -> Shape {
        if let Some((_, shape)) = self.scope.iter().rev().find(|(bound, _)| *bound == name) {
            return *shape;
        }
        if name == self.document.variable {
            return self.document.shape(self.document.document);
        }
        self.unknown
    }

    /// Extra steps a call takes beyond evaluating its operands, and what it returns.
    fn call(&self, function: &str, operands: &[Shape]) -> (u64, Shape) {
        let first = operands.first().copied().unwrap_or_default();
        let second = operands.get(1).copied().unwrap_or_default();
        match function {
            operators::ADD => {
                let joined = Shape {
                    length: first.length.saturating_add(second.length),
                    inner: first.inner.max(second.inner),
                };
                (joined.length, joined)
            }
            operators::IN => (second.length, Shape::SCALAR),
            "matches" | "contains" | "startsWith" | "endsWith" => {
                (first.length.saturating_add(second.length), Shape::SCALAR)
            }
            operators::CONDITIONAL => {
                let third = operands.get(2).copied().unwrap_or_default();
                let either = Shape {
                    length: second.length.max(third.length),
                    inner: second.inner.max(third.inner),
                };
                (0, either)
            }
            operators::INDEX | operators::OPT_INDEX | operators::OPT_SELECT => (0, first.element()),
            "string" | "bytes" => (
                first.longest(),
                Shape {
                    length: first.longest().max(32),
                    inner: 0,
                },
            ),
            _ if SCALAR_RESULTS.contains(&function) => (0, Shape::SCALAR),
            _ => (first.longest(), self.unknown),
        }
    }

    fn all(&mut self, nodes: impl Iterator<Item = &'d IdedExpr>) -> (u64, u64) {
        nodes.fold((1, 0), |(cost, inner), node| {
            let (steps, shape) = self.cost(node);
            (cost.saturating_add(steps), inner.max(shape.longest()))
        })
    }

    fn entries(&mut self, entries: impl Iterator<Item = &'d EntryExpr>) -> (u64, u64) {
        entries.fold((1, 0), |(cost, inner), entry| {
            let (steps, shape) = match entry {
                EntryExpr::StructField(field) => self.cost(&field.value),
                EntryExpr::MapEntry(pair) => {
                    let (key_steps, _) = self.cost(&pair.key);
                    let (value_steps, value) = self.cost(&pair.value);
                    (key_steps.saturating_add(value_steps), value)
                }
            };
            (cost.saturating_add(steps), inner.max(shape.longest()))
        })
    }
}

/// Steps to follow `config.a.b`: one per segment.
fn path_length(node: &IdedExpr) -> u64 {
    path_segments(&node.expr).map_or(1, |segments| segments.len() as u64)
}

/// `config.a.b` as `["config", "a", "b"]`; `None` for anything but identifiers and fields.
fn path_segments(expr: &Expr) -> Option<Vec<&str>> {
    let mut segments = Vec::new();
    let mut expr = expr;
    loop {
        match expr {
            Expr::Ident(name) => {
                segments.push(name.as_str());
                segments.reverse();
                return Some(segments);
            }
            Expr::Select(select) if !select.test => {
                segments.push(select.field.as_str());
                expr = &select.operand.expr;
            }
            _ => return None,
        }
    }
}

fn literal_shape(literal: &LiteralValue) -> Shape {
    match literal {
        LiteralValue::String(text) => Shape {
            length: text.inner().len() as u64,
            inner: 0,
        },
        LiteralValue::Bytes(bytes) => Shape {
            length: bytes.inner().len() as u64,
            inner: 0,
        },
        _ => Shape::SCALAR,
    }
}

/// The longest literal the rule writes (list elements or string bytes) and how many `+`
/// calls it makes.
fn literals(rule: &IdedExpr) -> (u64, u64) {
    let mut longest = 0;
    let mut concatenations = 0;
    let mut pending = vec![rule];
    while let Some(node) = pending.pop() {
        match &node.expr {
            Expr::Unspecified | Expr::Ident(_) => {}
            Expr::Literal(literal) => longest = longest.max(literal_shape(literal).length),
            Expr::Select(select) => pending.push(&select.operand),
            Expr::List(list) => {
                longest = longest.max(list.elements.len() as u64);
                pending.extend(&list.elements);
            }
            Expr::Map(map) => {
                longest = longest.max(map.entries.len() as u64);
                pending.extend(map.entries.iter().flat_map(|entry| entry_children(&entry.expr)));
            }
            Expr::Struct(object) => {
                pending.extend(object.entries.iter().flat_map(|entry| entry_children(&entry.expr)));
            }
            Expr::Call(call) => {
                if call.func_name == operators::ADD {
                    concatenations += 1;
                }
                pending.extend(call.target.iter().map(|target| &**target));
                pending.extend(&call.args);
            }
            Expr::Comprehension(comprehension) => pending.extend([
                &comprehension.iter_range,
                &comprehension.accu_init,
                &comprehension.loop_cond,
                &comprehension.loop_step,
                &comprehension.result,
            ]),
        }
    }
    (longest, concatenations)
}

fn entry_children(entry: &EntryExpr) -> Vec<&IdedExpr> {
    match entry {
        EntryExpr::StructField(field) => vec![&field.value],
        EntryExpr::MapEntry(pair) => vec![&pair.key, &pair.value],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cost(rule: &str, document: &Value) -> u64 {
        let program = cel::Program::compile(rule).unwrap();
        estimate(program.expression(), &MeasuredDocument::new("config", document))
    }

    fn numbers(count: usize) -> Value {
        json!({"xs": (0..count).collect::<Vec<_>>()})
    }

    #[test]
    fn a_value_is_measured_with_the_longest_value_inside_it() {
        let document = json!({"a": [1, 2, 3], "b": {"name": "twelve chars"}});
        let shape = MeasuredDocument::new("config", &document).shape(&document);
        assert_eq!(shape, Shape { length: 2, inner: 12 });
    }

    #[test]
    fn arithmetic_in_nested_loops_over_small_lists_is_cheap() {
        let steps = cost(
            "config.xs.all(a, config.xs.all(b, config.xs.all(c, a + b + c >= 0)))",
            &numbers(20),
        );
        assert!(steps < 1_000_000, "{steps}");
    }

    #[test]
    fn a_rule_without_loops_costs_a_few_steps() {
        assert!(cost("config.replicas >= 2 && config.region != ''", &numbers(2_000)) < 20);
    }

    #[test]
    fn one_loop_grows_with_the_list_and_nested_loops_multiply() {
        let single = cost("config.xs.all(a, a >= 0)", &numbers(2_000));
        assert!((2_000..40_000).contains(&single), "{single}");
        let double = cost("config.xs.all(a, config.xs.all(b, a + b >= 0))", &numbers(2_000));
        assert!(double > single * 1_000, "{double}");
        let triple = cost(
            "config.xs.all(a, config.xs.all(b, config.xs.all(c, a + b + c >= 0)))",
            &numbers(2_000),
        );
        assert!(triple > MAX_RULE_COST, "{triple}");
    }

    #[test]
    fn loops_over_literal_lists_count_their_elements() {
        let literal = format!("[{}].all(a, a > 0)", vec!["1"; 500].join(","));
        let steps = cost(&literal, &json!({}));
        assert!((500..10_000).contains(&steps), "{steps}");
    }

    #[test]
    fn concatenation_in_a_loop_is_charged_for_what_it_copies() {
        let big = json!({"xs": [1, 2, 3], "text": "x".repeat(1_000_000)});
        assert!(cost("config.xs.map(x, config.text + config.text).size() > 0", &big) > 3_000_000);
    }
}
