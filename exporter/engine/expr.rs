//! Rule expressions: parsed once at load by evalexpr, then compiled to a small tree that reads
//! the target's variables by slot and allocates nothing when it runs.
//!
//! evalexpr's own tree walk clones every variable it reads and allocates an argument vector at
//! every node; at 1,000 rules over 1,000 containers per cycle that is most of the budget. So the
//! common operators (arithmetic, comparison, `&&`, `||`, `!`, constants and variables) are
//! compiled into [`Compiled`]; anything else (function calls, tuples) stays an evalexpr subtree
//! and is evaluated by evalexpr itself.
//!
//! Function calls are answered by [`super::functions`], evalexpr's built-ins switched off: some
//! of those panic on non-ASCII text or extreme numbers. As a backstop, a panic anywhere in an
//! evalexpr subtree is caught and becomes that evaluation's error (counted like any other in
//! `lookout_rule_evaluation_failures_total`), with the panic hook's report kept off stderr; the
//! compiled operators above are free of panics and run without that guard.
//!
//! The semantics are evalexpr's, with three deliberate differences:
//! - **A missing reading is unknown, not an error.** A variable without a value this cycle (no
//!   CPU figure for a stopped container, no swap) is `Empty`; any operation on it is unknown, and
//!   `&&`/`||` use three-valued logic (`false && unknown` is false, `true || unknown` is true).
//!   A rule whose `expr` is unknown is not breached; a `resolve` that is unknown counts as met
//!   (nothing holds the alert any more), as a series that vanished does in Prometheus.
//! - **Numbers compare as numbers:** `exit_code == 0` holds for the float `0.0` (evalexpr
//!   treats int `0` and float `0.0` as different values).
//! - **`&&` and `||` short-circuit.** The dry run at load evaluates both sides through evalexpr,
//!   so a type error on the right is still found.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use evalexpr::{Context, EvalexprError, EvalexprResult, Operator, Value};

use super::functions::{self, Mode};

/// The outcome of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    /// It read a variable that has no value this cycle.
    Unknown,
}

/// Why an expression did not compile, or failed on a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("{0}")]
    Parse(String),
    #[error("unknown variable `{name}`; {scope} rules can use: {known}")]
    UnknownVariable {
        name: String,
        scope: &'static str,
        known: String,
    },
    #[error("{0}")]
    Eval(String),
    #[error("the expression gives {0}, not a true/false condition")]
    NotBoolean(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Exp,
    Eq,
    Neq,
    Gt,
    Lt,
    Geq,
    Leq,
}

#[derive(Debug, Clone)]
enum Node {
    Const(Value),
    Var(usize),
    Neg(Box<Node>),
    Not(Box<Node>),
    Bin(Op, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    /// `var <op> number` or `number <op> var`: the threshold test most rules are made of,
    /// evaluated without going through [`Value`]s.
    CmpNum {
        op: Op,
        slot: usize,
        c: f64,
        /// The constant as written (for the general path when the variable is not a number).
        c_val: Box<Value>,
        var_left: bool,
    },
    /// A comparison of two arithmetic expressions over numbers (`a / b > 0.9`), in floats;
    /// `general` is the same comparison for when a variable is not a number.
    CmpArith {
        op: Op,
        sides: Box<(Num, Num)>,
        general: Box<Node>,
    },
    /// `var == "text"` or `var != "text"` (either side).
    EqText {
        slot: usize,
        text: Box<Value>,
        eq: bool,
    },
    /// Left to evalexpr (function calls, tuples, ...).
    Opaque(Box<Opaque>),
}

/// A subtree evalexpr evaluates, and the slots it reads.
#[derive(Debug, Clone)]
struct Opaque {
    tree: evalexpr::Node,
    reads: Vec<usize>,
}

/// Arithmetic over number variables and constants, in floats (after constant folding, every
/// operation has a variable on one side, and evalexpr computes a float with a float in floats).
#[derive(Debug, Clone)]
enum Num {
    Var(usize),
    Const(f64),
    Neg(Box<Num>),
    Bin(Op, Box<Num>, Box<Num>),
}

impl Num {
    fn from(n: &Node) -> Option<Num> {
        Some(match n {
            Node::Var(s) => Num::Var(*s),
            Node::Const(c) => Num::Const(number(c)?),
            Node::Neg(a) => Num::Neg(Box::new(Num::from(a)?)),
            // Two constants left unfolded failed to fold (an int division by zero): left to
            // the general path, which reports it.
            Node::Bin(_, a, b) if matches!((&**a, &**b), (Node::Const(_), Node::Const(_))) => {
                return None
            }
            Node::Bin(op @ (Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Mod | Op::Exp), a, b) => {
                Num::Bin(*op, Box::new(Num::from(a)?), Box::new(Num::from(b)?))
            }
            _ => return None,
        })
    }

    /// `Ok(None)`: a reading is missing. `Err`: a variable is not a float (take the general
    /// path).
    fn eval(&self, vals: &[Value]) -> Result<Option<f64>, ()> {
        Ok(match self {
            Num::Var(s) => match vals.get(*s) {
                Some(Value::Float(x)) => Some(*x),
                Some(Value::Empty) | None => None,
                Some(_) => return Err(()),
            },
            Num::Const(c) => Some(*c),
            Num::Neg(a) => a.eval(vals)?.map(|x| -x),
            Num::Bin(op, a, b) => {
                let (x, y) = (a.eval(vals)?, b.eval(vals)?);
                match (x, y) {
                    (Some(x), Some(y)) => Some(match op {
                        Op::Add => x + y,
                        Op::Sub => x - y,
                        Op::Mul => x * y,
                        Op::Div => x / y,
                        Op::Mod => x % y,
                        _ => x.powf(y),
                    }),
                    _ => None,
                }
            }
        })
    }
}

fn compare(op: Op, l: f64, r: f64) -> bool {
    match op {
        Op::Gt => l > r,
        Op::Lt => l < r,
        Op::Geq => l >= r,
        Op::Leq => l <= r,
        Op::Eq => l == r,
        _ => l != r,
    }
}

/// The names of a scope's variables, in slot order, for resolving identifiers.
#[derive(Debug, Clone, Copy)]
pub struct Names {
    pub scope: &'static str,
    pub names: &'static [&'static str],
}

impl Names {
    fn slot(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| *n == name)
    }
}

/// An expression compiled for one scope.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// As written.
    pub source: String,
    /// evalexpr's tree, kept for the dry run and for differential tests.
    tree: evalexpr::Node,
    root: Node,
    /// Whether `root` is a condition node (evaluated by `tri` without building a value).
    root_is_condition: bool,
    names: Names,
    /// The slots read, in order of first appearance (the first is the alert's `value`).
    pub reads: Vec<usize>,
}

impl Compiled {
    /// Parse and compile; identifiers are resolved against `names` now, so an unknown variable
    /// is a load error, not an evaluation error.
    pub fn new(source: &str, names: Names) -> Result<Compiled, ExprError> {
        let tree = evalexpr::build_operator_tree(source)
            .map_err(|e| ExprError::Parse(format!("cannot parse {source:?}: {e}")))?;
        let mut reads = Vec::new();
        for ident in tree.iter_variable_identifiers() {
            match names.slot(ident) {
                Some(s) => {
                    if !reads.contains(&s) {
                        reads.push(s)
                    }
                }
                None => {
                    return Err(ExprError::UnknownVariable {
                        name: ident.to_string(),
                        scope: names.scope,
                        known: names.names.join(", "),
                    })
                }
            }
        }
        let root = translate(&tree, &names)?;
        Ok(Compiled {
            source: source.to_string(),
            tree,
            root_is_condition: is_condition(&root),
            root,
            names,
            reads,
        })
    }

    /// Evaluate over a target's values (indexed by slot).
    pub fn eval<'a>(&'a self, values: &'a [Value]) -> Result<Cow<'a, Value>, ExprError> {
        eval(&self.root, values, self.env(Mode::Eval)).map_err(ExprError::Eval)
    }

    fn env(&self, mode: Mode) -> Env<'_> {
        Env {
            names: &self.names,
            mode,
        }
    }

    /// Evaluate as a condition.
    pub fn truth(&self, values: &[Value]) -> Result<Truth, ExprError> {
        self.truth_in(values, Mode::Eval)
    }

    fn truth_in(&self, values: &[Value], mode: Mode) -> Result<Truth, ExprError> {
        let env = self.env(mode);
        let t = if self.root_is_condition {
            tri(&self.root, values, env).map_err(ExprError::Eval)?
        } else {
            match eval(&self.root, values, env)
                .map_err(ExprError::Eval)?
                .as_ref()
            {
                Value::Boolean(b) => Some(*b),
                Value::Empty => None,
                other => return Err(ExprError::NotBoolean(describe(other))),
            }
        };
        Ok(match t {
            Some(true) => Truth::True,
            Some(false) => Truth::False,
            None => Truth::Unknown,
        })
    }

    /// The dry run at load: evaluate through evalexpr itself (every operand, no
    /// short-circuit) and through the compiled form, over sample values where every variable
    /// exists; either failing, or a result that is not a condition, is a load error.
    pub fn dry_run(&self, sample: &[Value]) -> Result<(), ExprError> {
        let ctx = SlotContext {
            names: &self.names,
            values: sample,
            mode: Mode::DryRun,
        };
        let v = contain(|| self.tree.eval_with_context(&ctx))
            .map_err(ExprError::Eval)?
            .map_err(|e| ExprError::Eval(e.to_string()))?;
        if !matches!(v, Value::Boolean(_)) {
            return Err(ExprError::NotBoolean(describe(&v)));
        }
        self.truth_in(sample, Mode::DryRun).map(|_| ())
    }

    /// evalexpr's own tree walk over the same values: the reference the compiled form is
    /// tested against, and the baseline of the engine benchmark.
    pub fn eval_with_evalexpr(&self, values: &[Value]) -> EvalexprResult<Value> {
        let ctx = SlotContext {
            names: &self.names,
            values,
            mode: Mode::Eval,
        };
        contain(|| self.tree.eval_with_context(&ctx)).map_err(EvalexprError::CustomMessage)?
    }
}

/// "a float (3.5)", for messages.
fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("a string ({s:?})"),
        Value::Float(f) => format!("a number ({f})"),
        Value::Int(i) => format!("a number ({i})"),
        Value::Boolean(b) => format!("a boolean ({b})"),
        Value::Tuple(_) => "a tuple".into(),
        Value::Empty => "nothing".into(),
    }
}

/// Whether a node yields a condition (evaluated by [`tri`] directly).
fn is_condition(n: &Node) -> bool {
    match n {
        Node::And(..)
        | Node::Or(..)
        | Node::Not(_)
        | Node::CmpNum { .. }
        | Node::CmpArith { .. }
        | Node::EqText { .. } => true,
        Node::Bin(op, ..) => matches!(op, Op::Eq | Op::Neq | Op::Gt | Op::Lt | Op::Geq | Op::Leq),
        _ => false,
    }
}

/// Fold constants, and specialise comparisons into the nodes that skip [`Value`]s.
fn binary_node(op: Op, a: Node, b: Node) -> Node {
    let cmp = matches!(op, Op::Eq | Op::Neq | Op::Gt | Op::Lt | Op::Geq | Op::Leq);
    if let (Node::Const(x), Node::Const(y)) = (&a, &b) {
        // An error (1 / 0) is left for the dry run to report.
        if let Ok(v) = binary(op, x, y) {
            return Node::Const(v);
        }
    }
    if cmp
        && !matches!(
            (&a, &b),
            (Node::Var(_), Node::Const(_)) | (Node::Const(_), Node::Var(_))
        )
    {
        if let (Some(l), Some(r)) = (Num::from(&a), Num::from(&b)) {
            return Node::CmpArith {
                op,
                sides: Box::new((l, r)),
                general: Box::new(Node::Bin(op, Box::new(a), Box::new(b))),
            };
        }
    }
    match (&a, &b) {
        (Node::Var(slot), Node::Const(c)) | (Node::Const(c), Node::Var(slot)) if cmp => {
            let var_left = matches!(a, Node::Var(_));
            if let Some(x) = number(c) {
                return Node::CmpNum {
                    op,
                    slot: *slot,
                    c: x,
                    c_val: Box::new(c.clone()),
                    var_left,
                };
            }
            if let (Value::String(_), Op::Eq | Op::Neq) = (c, op) {
                return Node::EqText {
                    slot: *slot,
                    text: Box::new(c.clone()),
                    eq: op == Op::Eq,
                };
            }
            Node::Bin(op, Box::new(a), Box::new(b))
        }
        _ => Node::Bin(op, Box::new(a), Box::new(b)),
    }
}

fn translate(n: &evalexpr::Node, names: &Names) -> Result<Node, ExprError> {
    let kids = n.children();
    let one = |i: usize| translate(&kids[i], names).map(Box::new);
    let bin = |op: Op| -> Result<Node, ExprError> {
        if kids.len() != 2 {
            return opaque(n, names);
        }
        Ok(binary_node(
            op,
            translate(&kids[0], names)?,
            translate(&kids[1], names)?,
        ))
    };
    match n.operator() {
        Operator::RootNode => match kids.len() {
            0 => Ok(Node::Const(Value::Empty)),
            1 => translate(&kids[0], names),
            _ => opaque(n, names),
        },
        Operator::Const { value } if !matches!(value, Value::Tuple(_)) => {
            Ok(Node::Const(value.clone()))
        }
        Operator::VariableIdentifierRead { identifier } => {
            // Resolved by Compiled::new already.
            Ok(Node::Var(names.slot(identifier).unwrap_or(usize::MAX)))
        }
        Operator::Add => bin(Op::Add),
        Operator::Sub => bin(Op::Sub),
        Operator::Mul => bin(Op::Mul),
        Operator::Div => bin(Op::Div),
        Operator::Mod => bin(Op::Mod),
        Operator::Exp => bin(Op::Exp),
        Operator::Eq => bin(Op::Eq),
        Operator::Neq => bin(Op::Neq),
        Operator::Gt => bin(Op::Gt),
        Operator::Lt => bin(Op::Lt),
        Operator::Geq => bin(Op::Geq),
        Operator::Leq => bin(Op::Leq),
        Operator::And if kids.len() == 2 => Ok(Node::And(one(0)?, one(1)?)),
        Operator::Or if kids.len() == 2 => Ok(Node::Or(one(0)?, one(1)?)),
        Operator::Not if kids.len() == 1 => Ok(Node::Not(one(0)?)),
        Operator::Neg if kids.len() == 1 => Ok(Node::Neg(one(0)?)),
        _ => opaque(n, names),
    }
}

fn opaque(n: &evalexpr::Node, names: &Names) -> Result<Node, ExprError> {
    let mut reads = Vec::new();
    for ident in n.iter_variable_identifiers() {
        if let Some(s) = names.slot(ident) {
            if !reads.contains(&s) {
                reads.push(s);
            }
        }
    }
    Ok(Node::Opaque(Box::new(Opaque {
        tree: n.clone(),
        reads,
    })))
}

const EMPTY: Value = Value::Empty;

/// What evaluation needs besides the values: the names (for evalexpr subtrees) and the mode.
#[derive(Clone, Copy)]
struct Env<'n> {
    names: &'n Names,
    mode: Mode,
}

fn eval<'a>(n: &'a Node, vals: &'a [Value], env: Env) -> Result<Cow<'a, Value>, String> {
    Ok(match n {
        Node::Const(v) => Cow::Borrowed(v),
        Node::Var(slot) => Cow::Borrowed(vals.get(*slot).unwrap_or(&EMPTY)),
        Node::Neg(a) => {
            let a = eval(a, vals, env)?;
            Cow::Owned(match a.as_ref() {
                Value::Empty => Value::Empty,
                Value::Int(i) => Value::Int(
                    i.checked_neg()
                        .ok_or_else(|| format!("negation of {i} overflows"))?,
                ),
                Value::Float(f) => Value::Float(-f),
                other => return Err(format!("expected a number, got {}", describe(other))),
            })
        }
        Node::Not(_)
        | Node::And(..)
        | Node::Or(..)
        | Node::CmpNum { .. }
        | Node::CmpArith { .. }
        | Node::EqText { .. } => Cow::Owned(match tri(n, vals, env)? {
            Some(b) => Value::Boolean(b),
            None => Value::Empty,
        }),
        Node::Bin(op, a, b) => {
            let a = eval(a, vals, env)?;
            let b = eval(b, vals, env)?;
            if matches!(a.as_ref(), Value::Empty) || matches!(b.as_ref(), Value::Empty) {
                return Ok(Cow::Owned(Value::Empty));
            }
            Cow::Owned(binary(*op, &a, &b)?)
        }
        Node::Opaque(o) => {
            let Opaque { tree, reads } = &**o;
            let ctx = SlotContext {
                names: env.names,
                values: vals,
                mode: env.mode,
            };
            match contain(|| tree.eval_with_context(&ctx))? {
                Ok(v) => Cow::Owned(v),
                Err(_)
                    if reads
                        .iter()
                        .any(|s| matches!(vals.get(*s), Some(Value::Empty))) =>
                {
                    Cow::Owned(Value::Empty)
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    })
}

/// Evaluate a condition: true, false, or unknown (`None`).
fn tri(n: &Node, vals: &[Value], env: Env) -> Result<Option<bool>, String> {
    match n {
        Node::CmpNum {
            op,
            slot,
            c,
            c_val,
            var_left,
        } => {
            let x = match vals.get(*slot) {
                Some(Value::Float(x)) => *x,
                Some(Value::Int(i)) => *i as f64,
                Some(Value::Empty) | None => return Ok(None),
                Some(other) => {
                    let c_val: &Value = c_val;
                    let (l, r) = if *var_left {
                        (other, c_val)
                    } else {
                        (c_val, other)
                    };
                    return tri_of(&binary(*op, l, r)?);
                }
            };
            let (l, r) = if *var_left { (x, *c) } else { (*c, x) };
            Ok(Some(compare(*op, l, r)))
        }
        Node::CmpArith { op, sides, general } => match (sides.0.eval(vals), sides.1.eval(vals)) {
            (Ok(Some(l)), Ok(Some(r))) => Ok(Some(compare(*op, l, r))),
            (Ok(_), Ok(_)) => Ok(None),
            _ => tri(general, vals, env),
        },
        Node::Var(s) => tri_of(vals.get(*s).unwrap_or(&EMPTY)),
        Node::EqText { slot, text, eq } => match (vals.get(*slot), &**text) {
            (Some(Value::String(v)), Value::String(t)) => Ok(Some((v == t) == *eq)),
            (Some(Value::Empty) | None, _) => Ok(None),
            (Some(other), t) => tri_of(&binary(if *eq { Op::Eq } else { Op::Neq }, other, t)?),
        },
        Node::Not(a) => Ok(tri(a, vals, env)?.map(|b| !b)),
        Node::And(a, b) => {
            let l = tri(a, vals, env)?;
            if l == Some(false) {
                return Ok(Some(false));
            }
            Ok(match (l, tri(b, vals, env)?) {
                (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            })
        }
        Node::Or(a, b) => {
            let l = tri(a, vals, env)?;
            if l == Some(true) {
                return Ok(Some(true));
            }
            Ok(match (l, tri(b, vals, env)?) {
                (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            })
        }
        other => tri_of(eval(other, vals, env)?.as_ref()),
    }
}

/// A condition operand: true, false, or unknown.
fn tri_of(v: &Value) -> Result<Option<bool>, String> {
    match v {
        Value::Boolean(b) => Ok(Some(*b)),
        Value::Empty => Ok(None),
        other => Err(format!("expected a boolean, got {}", describe(other))),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Float(f) => Some(*f),
        Value::Int(i) => Some(*i as f64),
        _ => None,
    }
}

fn binary(op: Op, a: &Value, b: &Value) -> Result<Value, String> {
    use Value::{Boolean, Float, Int};
    let sym = match op {
        Op::Add => "+",
        Op::Sub => "-",
        Op::Mul => "*",
        Op::Div => "/",
        Op::Mod => "%",
        Op::Exp => "^",
        Op::Eq => "==",
        Op::Neq => "!=",
        Op::Gt => ">",
        Op::Lt => "<",
        Op::Geq => ">=",
        Op::Leq => "<=",
    };
    let mismatch = || format!("cannot apply {sym} to {} and {}", describe(a), describe(b));
    match op {
        Op::Eq | Op::Neq => {
            let equal = match (number(a), number(b)) {
                (Some(x), Some(y)) => match (a, b) {
                    (Int(i), Int(j)) => i == j,
                    _ => x == y,
                },
                _ => a == b,
            };
            Ok(Boolean(equal == (op == Op::Eq)))
        }
        Op::Gt | Op::Lt | Op::Geq | Op::Leq => {
            let ord = match (a, b) {
                (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
                (Int(x), Int(y)) => Some(x.cmp(y)),
                _ => match (number(a), number(b)) {
                    (Some(x), Some(y)) => x.partial_cmp(&y),
                    _ => return Err(mismatch()),
                },
            };
            // NaN compares false both ways, as in evalexpr.
            Ok(Boolean(match (op, ord) {
                (_, None) => false,
                (Op::Gt, Some(o)) => o == Ordering::Greater,
                (Op::Lt, Some(o)) => o == Ordering::Less,
                (Op::Geq, Some(o)) => o != Ordering::Less,
                (_, Some(o)) => o != Ordering::Greater,
            }))
        }
        Op::Add => match (a, b) {
            (Value::String(x), Value::String(y)) => Ok(Value::String(format!("{x}{y}"))),
            (Int(x), Int(y)) => x
                .checked_add(*y)
                .map(Int)
                .ok_or_else(|| format!("{x} + {y} overflows")),
            _ => match (number(a), number(b)) {
                (Some(x), Some(y)) => Ok(Float(x + y)),
                _ => Err(mismatch()),
            },
        },
        Op::Sub | Op::Mul | Op::Div | Op::Mod => {
            let (Some(x), Some(y)) = (number(a), number(b)) else {
                return Err(mismatch());
            };
            if let (Int(i), Int(j)) = (a, b) {
                let r = match op {
                    Op::Sub => i.checked_sub(*j),
                    Op::Mul => i.checked_mul(*j),
                    Op::Div => i.checked_div(*j),
                    _ => i.checked_rem(*j),
                };
                return r
                    .map(Int)
                    .ok_or_else(|| format!("{i} {sym} {j} is not defined or overflows"));
            }
            Ok(Float(match op {
                Op::Sub => x - y,
                Op::Mul => x * y,
                Op::Div => x / y,
                _ => x % y,
            }))
        }
        Op::Exp => match (number(a), number(b)) {
            (Some(x), Some(y)) => Ok(Float(x.powf(y))),
            _ => Err(mismatch()),
        },
    }
}

/// An evalexpr context over slot-indexed values, for the subtrees evalexpr evaluates. Its
/// functions are lookout's ([`functions`]); evalexpr's built-ins are off.
struct SlotContext<'a> {
    names: &'a Names,
    values: &'a [Value],
    mode: Mode,
}

impl Context for SlotContext<'_> {
    fn get_value(&self, identifier: &str) -> Option<&Value> {
        self.names.slot(identifier).and_then(|s| self.values.get(s))
    }

    fn call_function(&self, identifier: &str, argument: &Value) -> EvalexprResult<Value> {
        functions::call(identifier, argument, self.mode)
    }

    fn are_builtin_functions_disabled(&self) -> bool {
        true
    }

    fn set_builtin_functions_disabled(&mut self, _disabled: bool) -> EvalexprResult<()> {
        Err(EvalexprError::BuiltinFunctionsCannotBeDisabled)
    }
}

thread_local! {
    /// Set while [`contain`] runs on this thread: a panic is caught there, so the hook keeps
    /// its report (for the error message) instead of printing it.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
    static REPORT: RefCell<Option<String>> = const { RefCell::new(None) };
}

static QUIET_HOOK: Once = Once::new();

/// Run `f`; a panic in it becomes `Err("panicked at FILE:LINE:COL: message")`. The process's
/// panic hook is wrapped once: on a thread inside `contain` it only records the report, anywhere
/// else it calls the hook that was there before.
pub(super) fn contain<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let kept = CONTAINED.try_with(Cell::get).unwrap_or(false)
                && REPORT
                    .try_with(|r| {
                        r.replace(Some(info.to_string().replace('\n', ": ")));
                    })
                    .is_ok();
            if !kept {
                previous(info)
            }
        }));
    });
    let outer = CONTAINED.replace(true);
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINED.set(outer);
    result.map_err(|payload| {
        REPORT
            .take()
            .unwrap_or_else(|| format!("panicked: {}", crate::supervise::panic_message(&*payload)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: Names = Names {
        scope: "test",
        names: &["cpu", "mem", "state", "oom", "code", "gone"],
    };

    fn vals() -> Vec<Value> {
        vec![
            Value::Float(85.5),
            Value::Float(40.0),
            Value::String("running".into()),
            Value::Boolean(false),
            Value::Float(0.0),
            Value::Empty,
        ]
    }

    fn truth(src: &str) -> Result<Truth, ExprError> {
        Compiled::new(src, NAMES).unwrap().truth(&vals())
    }

    #[test]
    fn conditions() {
        assert_eq!(truth("cpu > 80"), Ok(Truth::True));
        assert_eq!(truth("cpu > 80 && mem > 50"), Ok(Truth::False));
        assert_eq!(truth("cpu > 80 || mem > 50"), Ok(Truth::True));
        assert_eq!(truth("!(cpu > 80)"), Ok(Truth::False));
        assert_eq!(truth("state == \"running\""), Ok(Truth::True));
        assert_eq!(truth("state != \"running\" || oom"), Ok(Truth::False));
        assert_eq!(truth("(cpu + mem) / 2 > 60"), Ok(Truth::True));
        assert_eq!(truth("cpu - 5.5 == 80"), Ok(Truth::True));
        assert_eq!(truth("-cpu < 0"), Ok(Truth::True));
        assert_eq!(truth("2 ^ 3 == 8"), Ok(Truth::True));
        assert_eq!(truth("7 % 4 == 3"), Ok(Truth::True));
    }

    #[test]
    fn numbers_compare_as_numbers() {
        // code is the float 0.0; evalexpr alone would say 0.0 != 0.
        assert_eq!(truth("code == 0"), Ok(Truth::True));
        assert_eq!(truth("code != 0"), Ok(Truth::False));
    }

    #[test]
    fn a_missing_reading_is_unknown_with_three_valued_logic() {
        assert_eq!(truth("gone > 80"), Ok(Truth::Unknown));
        assert_eq!(truth("gone == 0"), Ok(Truth::Unknown));
        assert_eq!(truth("!(gone > 80)"), Ok(Truth::Unknown));
        assert_eq!(truth("gone * 2 + 1 > 80"), Ok(Truth::Unknown));
        assert_eq!(truth("gone > 80 && cpu > 80"), Ok(Truth::Unknown));
        assert_eq!(truth("gone > 80 && cpu < 80"), Ok(Truth::False));
        assert_eq!(truth("gone > 80 || cpu > 80"), Ok(Truth::True));
        assert_eq!(truth("gone > 80 || cpu < 80"), Ok(Truth::Unknown));
        // Through evalexpr's own evaluation (a function call), too.
        assert_eq!(truth("max(gone, 3) > 2"), Ok(Truth::Unknown));
        assert_eq!(truth("max(cpu, 3) > 80"), Ok(Truth::True));
    }

    #[test]
    fn errors() {
        assert!(matches!(
            Compiled::new("cpu > (80", NAMES),
            Err(ExprError::Parse(_))
        ));
        // evalexpr parses a dangling operator; the dry run refuses it.
        let sample: Vec<Value> = vals()
            .into_iter()
            .map(|v| if v.is_empty() { Value::Float(1.0) } else { v })
            .collect();
        let dangling = Compiled::new("cpu > 80 &&", NAMES).unwrap();
        assert!(dangling.dry_run(&sample).is_err());
        let e = Compiled::new("cpus > 80", NAMES).unwrap_err();
        assert!(e.to_string().starts_with("unknown variable `cpus`"), "{e}");
        assert!(matches!(truth("state > 5"), Err(ExprError::Eval(_))));
        assert!(matches!(truth("cpu + 1"), Err(ExprError::NotBoolean(_))));
        assert!(matches!(truth("cpu && oom"), Err(ExprError::Eval(_))));
    }

    #[test]
    fn dry_run_finds_type_errors_behind_a_short_circuit() {
        let sample = vals()
            .into_iter()
            .map(|v| match v {
                Value::Empty => Value::Float(1.0),
                v => v,
            })
            .collect::<Vec<_>>();
        let c = Compiled::new("oom && state > 5", NAMES).unwrap();
        // oom is false: the compiled form never looks at the right side...
        assert_eq!(c.truth(&sample), Ok(Truth::False));
        // ...but the dry run does.
        assert!(c.dry_run(&sample).is_err());
        assert!(Compiled::new("cpu > 80", NAMES)
            .unwrap()
            .dry_run(&sample)
            .is_ok());
        assert!(Compiled::new("nosuchfn(cpu) > 1", NAMES)
            .unwrap()
            .dry_run(&sample)
            .is_err());
        assert!(matches!(
            Compiled::new("cpu * 2", NAMES).unwrap().dry_run(&sample),
            Err(ExprError::NotBoolean(_))
        ));
    }

    /// The compiled form agrees with evalexpr wherever no reading is missing and no int/float
    /// equality is involved.
    #[test]
    fn agrees_with_evalexpr() {
        let exprs = [
            "cpu > 80",
            "cpu >= 85.5",
            "cpu <= 85.5 && mem < 40",
            "cpu * 2 - mem / 4 > 100",
            "cpu % 7 < 3 || !oom",
            "state == \"running\" && !(cpu < mem)",
            "state + \"x\" == \"runningx\"",
            "state < \"s\"",
            "3 / 2 == 1",
            "cpu ^ 2 > 7000",
            "-mem < -39",
            "5 - 7 < 0 && 2 * 3 == 6",
            "state > 5",
            "cpu + state",
            "oom + 1",
            "mem",
            "1 / 0 == 1",
            "80 < cpu && 50 >= mem",
            "\"running\" == state || state != \"x\"",
            "cpu == 85.5 && 85.5 != mem",
            "state == 5",
            "5 < state",
            "oom == false",
            "!(cpu > 90) && !oom",
            "(cpu + mem) * 2 > 250 || cpu / mem < 2",
            "-cpu + 100 >= mem % 7",
            "2 * 3 + cpu > 90",
            "cpu / (2 - 2) > 1",
            "cpu > 1 / 0",
            "state + 1 > 2",
        ];
        let v = vals();
        for src in exprs {
            let c = Compiled::new(src, NAMES).unwrap();
            let ours = c.eval(&v).map(|c| c.into_owned());
            let theirs = c.eval_with_evalexpr(&v);
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{src}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{src}: ours {ours:?}, evalexpr {theirs:?}"),
            }
        }
    }

    #[test]
    fn string_functions_count_characters() {
        let names = Names {
            scope: "test",
            names: &["line", "n"],
        };
        let vals = [Value::String("ééééé FATAL".into()), Value::Float(3.0)];
        let truth = |src: &str| Compiled::new(src, names).unwrap().truth(&vals);
        assert_eq!(
            truth("str::substring(line, 0, 3) == \"ééé\""),
            Ok(Truth::True)
        );
        assert_eq!(
            truth("str::substring(line, n) == \"éé FATAL\""),
            Ok(Truth::True)
        );
        assert_eq!(truth("len(line) == 11"), Ok(Truth::True));
        assert_eq!(truth("contains(line, \"FATAL\")"), Ok(Truth::True));
        // Out of range: an error for this evaluation, not a panic.
        let e = truth("str::substring(line, 0, 40) == \"x\"").unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    }

    #[test]
    fn a_panic_in_an_evalexpr_subtree_is_an_error() {
        let e = truth("test::panic(cpu)").unwrap_err();
        let ExprError::Eval(m) = &e else {
            panic!("{e:?}")
        };
        assert!(m.contains("test::panic called"), "{m}");
        assert!(
            m.contains("functions.rs"),
            "the hook kept the location: {m}"
        );
        // Under compiled operators, too; and the next evaluation is unaffected.
        assert!(matches!(
            truth("cpu > 80 && test::panic(1)"),
            Err(ExprError::Eval(_))
        ));
        assert_eq!(truth("cpu > 80"), Ok(Truth::True));
        // The hook is chained: a panic outside evaluation still reaches it.
        assert!(std::panic::catch_unwind(|| panic!("elsewhere")).is_err());
    }

    #[test]
    fn dry_run_checks_names_and_arity_but_not_sample_ranges() {
        let sample: Vec<Value> = vals()
            .into_iter()
            .map(|v| if v.is_empty() { Value::Float(1.0) } else { v })
            .collect();
        let dry = |src: &str| Compiled::new(src, NAMES).unwrap().dry_run(&sample);
        // "running" is 7 characters; the real text may be longer.
        assert_eq!(dry("str::substring(state, 0, 40) == \"x\""), Ok(()));
        assert!(dry("str::substring(state) == \"x\"").is_err());
        assert!(dry("str::substring(state, 0, 1, 2) == \"x\"").is_err());
        assert!(dry("str::substrin(state, 0) == \"x\"").is_err());
        assert!(dry("str::regex_matches(state, \"(\")").is_err());
        // evalexpr's built-ins are off: only lookout's functions answer.
        assert!(dry("random() > 0.5").is_err());
        assert_eq!(dry("max(cpu, mem) > 1 && math::abs(code) == 0"), Ok(()));
    }

    #[test]
    fn reads_in_order() {
        let c = Compiled::new("mem > 1 && cpu > mem || max(code, 1) > 0", NAMES).unwrap();
        assert_eq!(c.reads, vec![1, 0, 4]);
    }
}
