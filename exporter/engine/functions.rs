//! The functions rule expressions can call: evalexpr's built-in set under the same names, written
//! again so that none of them can panic or quietly go wrong on text or numbers a target carries.
//!
//! evalexpr 11.3.1 consults the context's functions before its built-ins; lookout's context
//! ([`super::expr`]) switches the built-ins off and answers every call from here, so no code of
//! evalexpr's `function/builtin.rs` runs. What was wrong with it:
//! - `str::substring` slices by byte: an index inside a multi-byte character (`"é"`, a
//!   mountpoint like `/media/x/DONNÉES`, a GPU name) panics.
//! - `len` counts bytes, so `len("é") == 2`.
//! - `math::abs` of the smallest integer, and `shl`/`shr` by a negative count or by 64 or more,
//!   overflow: a panic in a debug build, a wrong number in release.
//! - `min` and `max` start from sentinels: `max(-1e300, -2e300)` is the integer
//!   `-9223372036854775808`, `min(1e300)` is `9223372036854775807`.
//! - `str::regex_matches` and `str::regex_replace` are not in our build of evalexpr at all.
//!
//! Differences from evalexpr's functions:
//! - **Strings count characters** (Unicode scalar values), not bytes: `len`, and the indices of
//!   `str::substring(s, start[, end])` (end exclusive; an index past the end is an error).
//! - **Whole-number floats are accepted where an integer is expected** (string indices, bit
//!   operands, shift counts), because lookout's readings are floats: `restart_count` is `3.0`.
//! - `contains(text, part)` is also a substring test on two strings (evalexpr: tuples only).
//! - `min` and `max` also take a single number; ties give the first argument.
//! - Overflow is an error (`math::abs`, `shl`, `shr`), never a panic or a wrapped value.
//! - `str::regex_matches(s, re)` and `str::regex_replace(s, re, with)` use the `regex` crate's
//!   syntax; a pattern that does not compile is an error. Compiled patterns are cached per
//!   thread (up to [`REGEX_CACHE`] of them).
//!
//! At the load-time dry run ([`Mode::DryRun`]), a string index out of range is clamped instead
//! of failing: the sample text is not the real one, and the point of the dry run is to find
//! unknown functions, wrong argument counts and type errors.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;

use evalexpr::{EvalexprError, EvalexprResult, Value, ValueType};
use regex::Regex;

/// Every function name, as documented in `rules/README.md`.
pub const NAMES: &[&str] = &[
    "min",
    "max",
    "floor",
    "round",
    "ceil",
    "if",
    "contains",
    "contains_any",
    "len",
    "typeof",
    "math::abs",
    "math::ln",
    "math::log",
    "math::log2",
    "math::log10",
    "math::exp",
    "math::exp2",
    "math::pow",
    "math::sqrt",
    "math::cbrt",
    "math::hypot",
    "math::sin",
    "math::cos",
    "math::tan",
    "math::asin",
    "math::acos",
    "math::atan",
    "math::atan2",
    "math::sinh",
    "math::cosh",
    "math::tanh",
    "math::asinh",
    "math::acosh",
    "math::atanh",
    "math::is_nan",
    "math::is_finite",
    "math::is_infinite",
    "math::is_normal",
    "str::from",
    "str::to_lowercase",
    "str::to_uppercase",
    "str::trim",
    "str::substring",
    "str::regex_matches",
    "str::regex_replace",
    "bitand",
    "bitor",
    "bitxor",
    "bitnot",
    "shl",
    "shr",
];

/// How many compiled patterns each thread keeps; past that the cache starts over.
pub const REGEX_CACHE: usize = 64;

/// Whether a call is a real evaluation or the load-time dry run over sample values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Eval,
    /// Data-dependent range errors (a string index past the sample's end) are clamped.
    DryRun,
}

/// Call function `name` with evalexpr's argument convention: one argument as itself, several
/// as a tuple, none as `Empty`. An unknown name is `FunctionIdentifierNotFound`.
pub fn call(name: &str, arg: &Value, mode: Mode) -> EvalexprResult<Value> {
    use Value::{Boolean, Float, Int};
    Ok(match name {
        "min" => extreme(arg, Ordering::Less)?,
        "max" => extreme(arg, Ordering::Greater)?,
        "floor" => Float(number(arg)?.floor()),
        "round" => Float(number(arg)?.round()),
        "ceil" => Float(number(arg)?.ceil()),
        "if" => {
            let [cond, yes, no] = args::<3>(arg)?;
            match cond {
                Boolean(true) => yes.clone(),
                Boolean(false) => no.clone(),
                other => return Err(EvalexprError::expected_boolean(other.clone())),
            }
        }
        "contains" => contains(arg)?,
        "contains_any" => contains_any(arg)?,
        "len" => match arg {
            Value::String(s) => Int(count(s.chars().count())),
            Value::Tuple(t) => Int(count(t.len())),
            other => {
                return Err(EvalexprError::type_error(
                    other.clone(),
                    vec![ValueType::String, ValueType::Tuple],
                ))
            }
        },
        "typeof" => Value::from(match arg {
            Value::String(_) => "string",
            Float(_) => "float",
            Int(_) => "int",
            Boolean(_) => "boolean",
            Value::Tuple(_) => "tuple",
            Value::Empty => "empty",
        }),
        "math::abs" => match arg {
            Float(f) => Float(f.abs()),
            Int(i) => Int(i
                .checked_abs()
                .ok_or_else(|| custom(format!("math::abs({i}) overflows")))?),
            other => return Err(EvalexprError::expected_number(other.clone())),
        },
        "math::ln" => Float(number(arg)?.ln()),
        "math::log" => math2(arg, f64::log)?,
        "math::log2" => Float(number(arg)?.log2()),
        "math::log10" => Float(number(arg)?.log10()),
        "math::exp" => Float(number(arg)?.exp()),
        "math::exp2" => Float(number(arg)?.exp2()),
        "math::pow" => math2(arg, f64::powf)?,
        "math::sqrt" => Float(number(arg)?.sqrt()),
        "math::cbrt" => Float(number(arg)?.cbrt()),
        "math::hypot" => math2(arg, f64::hypot)?,
        "math::sin" => Float(number(arg)?.sin()),
        "math::cos" => Float(number(arg)?.cos()),
        "math::tan" => Float(number(arg)?.tan()),
        "math::asin" => Float(number(arg)?.asin()),
        "math::acos" => Float(number(arg)?.acos()),
        "math::atan" => Float(number(arg)?.atan()),
        "math::atan2" => math2(arg, f64::atan2)?,
        "math::sinh" => Float(number(arg)?.sinh()),
        "math::cosh" => Float(number(arg)?.cosh()),
        "math::tanh" => Float(number(arg)?.tanh()),
        "math::asinh" => Float(number(arg)?.asinh()),
        "math::acosh" => Float(number(arg)?.acosh()),
        "math::atanh" => Float(number(arg)?.atanh()),
        "math::is_nan" => Boolean(number(arg)?.is_nan()),
        "math::is_finite" => Boolean(number(arg)?.is_finite()),
        "math::is_infinite" => Boolean(number(arg)?.is_infinite()),
        "math::is_normal" => Boolean(number(arg)?.is_normal()),
        "str::from" => Value::String(arg.str_from()),
        "str::to_lowercase" => Value::String(text(arg)?.to_lowercase()),
        "str::to_uppercase" => Value::String(text(arg)?.to_uppercase()),
        "str::trim" => Value::from(text(arg)?.trim()),
        "str::substring" => substring(arg, mode)?,
        "str::regex_matches" => {
            let [subject, pattern] = args::<2>(arg)?;
            let subject = text(subject)?;
            Boolean(with_regex(text(pattern)?, |re| re.is_match(subject))?)
        }
        "str::regex_replace" => {
            let [subject, pattern, with] = args::<3>(arg)?;
            let (subject, with) = (text(subject)?, text(with)?);
            Value::String(with_regex(text(pattern)?, |re| {
                re.replace_all(subject, with).into_owned()
            })?)
        }
        "bitand" => int2(arg, |a, b| Some(a & b))?,
        "bitor" => int2(arg, |a, b| Some(a | b))?,
        "bitxor" => int2(arg, |a, b| Some(a ^ b))?,
        "bitnot" => Int(!int(arg)?),
        "shl" => int2(arg, |a, b| a.checked_shl(u32::try_from(b).ok()?))?,
        "shr" => int2(arg, |a, b| a.checked_shr(u32::try_from(b).ok()?))?,
        // For the tests of the panic backstop; a plain `true` in the dry run, so rules load.
        #[cfg(test)]
        "test::panic" if mode == Mode::Eval => panic!("test::panic called"),
        #[cfg(test)]
        "test::panic" => Boolean(true),
        _ => return Err(EvalexprError::FunctionIdentifierNotFound(name.to_string())),
    })
}

fn custom(message: String) -> EvalexprError {
    EvalexprError::CustomMessage(message)
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Exactly `N` arguments.
fn args<const N: usize>(arg: &Value) -> EvalexprResult<&[Value; N]> {
    match arg {
        Value::Tuple(t) => t
            .as_slice()
            .try_into()
            .map_err(|_| EvalexprError::expected_fixed_len_tuple(N, arg.clone())),
        other => Err(EvalexprError::expected_fixed_len_tuple(N, other.clone())),
    }
}

fn number(v: &Value) -> EvalexprResult<f64> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        other => Err(EvalexprError::expected_number(other.clone())),
    }
}

fn text(v: &Value) -> EvalexprResult<&str> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(EvalexprError::expected_string(other.clone())),
    }
}

/// An integer, or a float with no fraction that fits one.
fn int(v: &Value) -> EvalexprResult<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        // The bounds are exact in f64: -2^63 is representable, and anything below 2^63 fits.
        Value::Float(f) if f.fract() == 0.0 && *f >= -(2f64.powi(63)) && *f < 2f64.powi(63) => {
            Ok(*f as i64)
        }
        other => Err(EvalexprError::expected_int(other.clone())),
    }
}

fn math2(arg: &Value, f: fn(f64, f64) -> f64) -> EvalexprResult<Value> {
    let [a, b] = args::<2>(arg)?;
    Ok(Value::Float(f(number(a)?, number(b)?)))
}

fn int2(arg: &Value, f: fn(i64, i64) -> Option<i64>) -> EvalexprResult<Value> {
    let [a, b] = args::<2>(arg)?;
    let (a, b) = (int(a)?, int(b)?);
    f(a, b).map(Value::Int).ok_or_else(|| {
        custom(format!(
            "a shift of {a} by {b} bits is out of range (0 to 63)"
        ))
    })
}

/// `min` (want `Less`) or `max` (want `Greater`) of one number or a tuple of numbers. Two
/// integers compare as integers (exact); anything else as floats, where NaN loses to any number.
fn extreme(arg: &Value, want: Ordering) -> EvalexprResult<Value> {
    let items = match arg {
        Value::Tuple(t) => t.as_slice(),
        one => std::slice::from_ref(one),
    };
    let mut best: Option<&Value> = None;
    for v in items {
        let x = number(v)?;
        let replace = match best {
            None => true,
            Some(b) => match (v, b) {
                (Value::Int(i), Value::Int(j)) => i.cmp(j) == want,
                _ => {
                    let y = number(b)?;
                    (y.is_nan() && !x.is_nan()) || x.partial_cmp(&y) == Some(want)
                }
            },
        };
        if replace {
            best = Some(v);
        }
    }
    best.cloned()
        .ok_or_else(|| EvalexprError::expected_number(arg.clone()))
}

fn contains(arg: &Value) -> EvalexprResult<Value> {
    let [hay, needle] = args::<2>(arg)?;
    match (hay, needle) {
        (Value::String(h), Value::String(n)) => Ok(Value::Boolean(h.contains(n.as_str()))),
        (Value::Tuple(t), n) => Ok(Value::Boolean(t.contains(element(n)?))),
        (other, _) => Err(EvalexprError::type_error(
            other.clone(),
            vec![ValueType::Tuple, ValueType::String],
        )),
    }
}

fn contains_any(arg: &Value) -> EvalexprResult<Value> {
    let [hay, needles] = args::<2>(arg)?;
    let Value::Tuple(hay) = hay else {
        return Err(EvalexprError::expected_tuple(hay.clone()));
    };
    let Value::Tuple(needles) = needles else {
        return Err(EvalexprError::expected_tuple(needles.clone()));
    };
    let mut any = false;
    for n in needles {
        any |= hay.contains(element(n)?);
    }
    Ok(Value::Boolean(any))
}

/// What `contains` can look for in a tuple: a string, number or boolean.
fn element(v: &Value) -> EvalexprResult<&Value> {
    match v {
        Value::String(_) | Value::Int(_) | Value::Float(_) | Value::Boolean(_) => Ok(v),
        other => Err(EvalexprError::type_error(
            other.clone(),
            vec![
                ValueType::String,
                ValueType::Int,
                ValueType::Float,
                ValueType::Boolean,
            ],
        )),
    }
}

/// `str::substring(s, start)` or `str::substring(s, start, end)`, in characters.
fn substring(arg: &Value, mode: Mode) -> EvalexprResult<Value> {
    let parts = match arg {
        Value::Tuple(t) if (2..=3).contains(&t.len()) => t.as_slice(),
        other => {
            return Err(EvalexprError::expected_ranged_len_tuple(
                2..=3,
                other.clone(),
            ))
        }
    };
    let s = text(&parts[0])?;
    let len = s.chars().count();
    let start = int(&parts[1])?;
    let end = match parts.get(2) {
        Some(e) => int(e)?,
        None => count(len),
    };
    let in_range = 0 <= start && start <= end && end <= count(len);
    let (start, end) = match (in_range, mode) {
        (true, _) => (start as usize, end as usize),
        (false, Mode::DryRun) => {
            let clamp = |i: i64| usize::try_from(i).unwrap_or(0).min(len);
            (clamp(start), clamp(end).max(clamp(start)))
        }
        (false, Mode::Eval) => {
            return Err(custom(format!(
                "str::substring: characters {start}..{end} are out of range for {s:?} ({len} characters)"
            )))
        }
    };
    Ok(Value::String(
        s.chars().skip(start).take(end - start).collect(),
    ))
}

thread_local! {
    static REGEXES: RefCell<HashMap<String, Result<Regex, String>>> = RefCell::new(HashMap::new());
}

/// Run `f` with `pattern` compiled (cached per thread); a pattern that does not compile is an
/// error (cached too, so a bad pattern costs one compilation per thread).
fn with_regex<R>(pattern: &str, f: impl FnOnce(&Regex) -> R) -> EvalexprResult<R> {
    REGEXES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(pattern) {
            if cache.len() >= REGEX_CACHE {
                cache.clear();
            }
            let compiled = Regex::new(pattern).map_err(|e| e.to_string());
            cache.insert(pattern.to_string(), compiled);
        }
        match &cache[pattern] {
            Ok(re) => Ok(f(re)),
            Err(e) => Err(EvalexprError::invalid_regex(pattern.to_string(), e.clone())),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Value::{Boolean, Float, Int};

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn t(items: &[Value]) -> Value {
        Value::Tuple(items.to_vec())
    }

    fn eval(name: &str, arg: Value) -> EvalexprResult<Value> {
        call(name, &arg, Mode::Eval)
    }

    #[test]
    fn substring_counts_characters() {
        let line = s("ééééé FATAL");
        assert_eq!(
            eval("str::substring", t(&[line.clone(), Int(0), Int(3)])),
            Ok(s("ééé"))
        );
        assert_eq!(
            eval("str::substring", t(&[line.clone(), Int(6)])),
            Ok(s("FATAL"))
        );
        assert_eq!(
            eval("str::substring", t(&[line.clone(), Float(1.0), Float(2.0)])),
            Ok(s("é"))
        );
        assert_eq!(
            eval("str::substring", t(&[line.clone(), Int(11), Int(11)])),
            Ok(s(""))
        );
        assert_eq!(
            eval(
                "str::substring",
                t(&[s("/media/x/DONNÉES"), Int(9), Int(16)])
            ),
            Ok(s("DONNÉES"))
        );
        // Out of range, reversed, negative, fractional: errors, never a panic.
        for (a, b) in [(0, 12), (4, 3), (-1, 2), (12, 12)] {
            let r = eval("str::substring", t(&[line.clone(), Int(a), Int(b)]));
            assert!(r.is_err(), "{a}..{b}: {r:?}");
        }
        assert!(eval("str::substring", t(&[line.clone(), Float(0.5)])).is_err());
        assert!(eval(
            "str::substring",
            t(&[line.clone(), Int(i64::MIN), Int(i64::MAX)])
        )
        .is_err());
        // Arity and types.
        assert!(eval("str::substring", line.clone()).is_err());
        assert!(eval("str::substring", t(&[Int(1), Int(0)])).is_err());
        // The dry run clamps instead.
        assert_eq!(
            call(
                "str::substring",
                &t(&[s("sample"), Int(2), Int(40)]),
                Mode::DryRun
            ),
            Ok(s("mple"))
        );
        assert_eq!(
            call(
                "str::substring",
                &t(&[s("sample"), Int(-4), Int(-9)]),
                Mode::DryRun
            ),
            Ok(s(""))
        );
    }

    #[test]
    fn len_counts_characters() {
        assert_eq!(eval("len", s("DONNÉES")), Ok(Int(7)));
        assert_eq!(eval("len", t(&[Int(1), s("x")])), Ok(Int(2)));
        assert!(eval("len", Float(1.0)).is_err());
    }

    #[test]
    fn min_and_max_have_no_sentinels() {
        assert_eq!(
            eval("max", t(&[Float(-1e300), Float(-2e300)])),
            Ok(Float(-1e300))
        );
        assert_eq!(eval("min", t(&[Float(1e300), Int(5)])), Ok(Int(5)));
        assert_eq!(eval("min", Float(1e300)), Ok(Float(1e300)));
        assert_eq!(eval("max", t(&[Int(3), Float(2.5)])), Ok(Int(3)));
        assert_eq!(
            eval("max", t(&[Int(i64::MAX - 1), Int(i64::MAX)])),
            Ok(Int(i64::MAX))
        );
        assert_eq!(eval("max", t(&[Float(f64::NAN), Int(1)])), Ok(Int(1)));
        assert!(eval("max", t(&[Int(1), s("x")])).is_err());
        assert!(eval("min", Value::Empty).is_err());
    }

    #[test]
    fn overflow_is_an_error() {
        assert!(eval("math::abs", Int(i64::MIN)).is_err());
        assert_eq!(eval("math::abs", Int(-3)), Ok(Int(3)));
        assert_eq!(eval("math::abs", Float(-2.5)), Ok(Float(2.5)));
        assert_eq!(eval("shl", t(&[Int(1), Int(4)])), Ok(Int(16)));
        assert_eq!(eval("shr", t(&[Float(256.0), Int(4)])), Ok(Int(16)));
        for n in [64, -1, i64::MAX] {
            assert!(eval("shl", t(&[Int(1), Int(n)])).is_err(), "shl {n}");
            assert!(eval("shr", t(&[Int(1), Int(n)])).is_err(), "shr {n}");
        }
        assert_eq!(eval("bitand", t(&[Float(6.0), Int(3)])), Ok(Int(2)));
        assert_eq!(eval("bitnot", Int(0)), Ok(Int(-1)));
        assert!(eval("bitand", t(&[Float(6.5), Int(3)])).is_err());
        assert!(eval("bitor", t(&[Float(1e19), Int(3)])).is_err());
    }

    #[test]
    fn regexes() {
        let line = s("ééééé FATAL: disk");
        assert_eq!(
            eval("str::regex_matches", t(&[line.clone(), s("^é+ FATAL")])),
            Ok(Boolean(true))
        );
        assert_eq!(
            eval("str::regex_replace", t(&[line.clone(), s("é+"), s("e")])),
            Ok(s("e FATAL: disk"))
        );
        // A bad pattern is an error, every time (cached).
        for _ in 0..2 {
            let e = eval("str::regex_matches", t(&[line.clone(), s("(unclosed")])).unwrap_err();
            assert!(matches!(e, EvalexprError::InvalidRegex { .. }), "{e}");
        }
        // More distinct patterns than the cache holds.
        for i in 0..(REGEX_CACHE * 2 + 1) {
            let p = format!("^x{{{i}}}$");
            assert_eq!(
                eval("str::regex_matches", t(&[s(&"x".repeat(i)), s(&p)])),
                Ok(Boolean(true))
            );
        }
    }

    #[test]
    fn the_rest_keep_evalexprs_meaning() {
        assert_eq!(eval("floor", Float(2.7)), Ok(Float(2.0)));
        assert_eq!(eval("round", Int(2)), Ok(Float(2.0)));
        assert_eq!(eval("ceil", Float(2.1)), Ok(Float(3.0)));
        assert_eq!(eval("if", t(&[Boolean(true), Int(1), s("no")])), Ok(Int(1)));
        assert!(eval("if", t(&[Int(1), Int(1), Int(2)])).is_err());
        assert!(eval("if", t(&[Boolean(true), Int(1)])).is_err());
        assert_eq!(
            eval("contains", t(&[t(&[Int(1), s("a")]), s("a")])),
            Ok(Boolean(true))
        );
        assert_eq!(
            eval("contains", t(&[s("ééééé FATAL"), s("FATAL")])),
            Ok(Boolean(true))
        );
        assert!(eval("contains", t(&[Int(1), Int(1)])).is_err());
        assert_eq!(
            eval(
                "contains_any",
                t(&[t(&[Int(1), Int(2)]), t(&[Int(3), Int(2)])])
            ),
            Ok(Boolean(true))
        );
        assert_eq!(eval("typeof", Value::Empty), Ok(s("empty")));
        assert_eq!(eval("str::from", Float(1.5)), Ok(s("1.5")));
        assert_eq!(eval("str::to_uppercase", s("données")), Ok(s("DONNÉES")));
        assert_eq!(eval("str::trim", s("  x ")), Ok(s("x")));
        assert_eq!(eval("math::log", t(&[Float(8.0), Int(2)])), Ok(Float(3.0)));
        assert_eq!(eval("math::is_nan", Float(f64::NAN)), Ok(Boolean(true)));
        assert!(matches!(
            eval("nosuch", Int(1)),
            Err(EvalexprError::FunctionIdentifierNotFound(_))
        ));
    }

    /// Every documented name is callable (with some arguments, possibly wrong ones), and no
    /// argument shape makes any of them panic.
    #[test]
    fn no_function_panics_on_odd_arguments() {
        let odd = [
            Value::Empty,
            Int(i64::MIN),
            Int(i64::MAX),
            Int(-1),
            Float(f64::NAN),
            Float(f64::INFINITY),
            Float(-0.0),
            s(""),
            s("ééé"),
            Boolean(true),
            t(&[]),
        ];
        let mut shapes: Vec<Value> = odd.to_vec();
        for a in &odd {
            for b in &odd {
                shapes.push(t(&[a.clone(), b.clone()]));
                for c in [Int(-1), Int(2), s("é"), Float(1e300)] {
                    shapes.push(t(&[a.clone(), b.clone(), c]));
                }
            }
        }
        for name in NAMES {
            for arg in &shapes {
                let r = std::panic::catch_unwind(|| call(name, arg, Mode::Eval));
                assert!(r.is_ok(), "{name}({arg:?}) panicked");
                let r = std::panic::catch_unwind(|| call(name, arg, Mode::DryRun));
                assert!(r.is_ok(), "{name}({arg:?}) panicked in the dry run");
            }
            assert!(
                !matches!(
                    call(name, &t(&[Int(1), Int(1)]), Mode::Eval),
                    Err(EvalexprError::FunctionIdentifierNotFound(_))
                ),
                "{name}"
            );
        }
    }
}
