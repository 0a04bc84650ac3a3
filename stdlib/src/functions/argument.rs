//! Reading arguments: typed access to run-time values, and preparing
//! patterns once when they were written as literals.

use crate::pattern::{self, Pattern};
use crate::signature::{Args, BuildError, Compiled, ConverterFn, FnError};
use crate::value::{Map, Value};

pub fn type_error(function: &'static str, param: &'static str, expected: &'static str, found: &Value) -> FnError {
    FnError::Type { function, param, expected, found: found.type_name() }
}

pub fn string<'a>(args: &Args<'a>, i: usize, function: &'static str, param: &'static str) -> Result<&'a str, FnError> {
    match args.get(i).copied() {
        Some(Value::Str(s)) => Ok(s),
        Some(other) => Err(type_error(function, param, "a string", other)),
        None => Err(type_error(function, param, "a string", &Value::Nil)),
    }
}

pub fn optional_string<'a>(args: &Args<'a>, i: usize, function: &'static str, param: &'static str) -> Result<Option<&'a str>, FnError> {
    match args.get(i).copied() {
        None | Some(Value::Nil) => Ok(None),
        Some(_) => string(args, i, function, param).map(Some),
    }
}

pub fn int(args: &Args<'_>, i: usize, function: &'static str, param: &'static str) -> Result<i64, FnError> {
    match args.get(i).copied() {
        Some(Value::Int(n)) => Ok(*n),
        Some(other) => Err(type_error(function, param, "an integer", other)),
        None => Err(type_error(function, param, "an integer", &Value::Nil)),
    }
}

pub fn map_mut<'a>(target: &'a mut Value, function: &'static str) -> Result<&'a mut Map, FnError> {
    match target {
        Value::Map(m) => Ok(m),
        other => Err(type_error(function, "target", "a map", other)),
    }
}

pub fn optional_bool(args: &Args<'_>, i: usize, function: &'static str, param: &'static str, default: bool) -> Result<bool, FnError> {
    match args.get(i).copied() {
        None | Some(Value::Nil) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(type_error(function, param, "a boolean", other)),
    }
}

/// A literal integer argument, if the argument is one.
pub fn literal_int(literals: &[Option<Value>], i: usize) -> Option<i64> {
    match literals.get(i) {
        Some(Some(Value::Int(n))) => Some(*n),
        _ => None,
    }
}

/// A literal string argument, if the argument is one.
pub fn literal_str(literals: &[Option<Value>], i: usize) -> Option<&str> {
    match literals.get(i) {
        Some(Some(Value::Str(s))) => Some(s),
        _ => None,
    }
}

/// A pattern argument: compiled now if it was a literal, else on each call.
#[derive(Clone)]
pub enum PatternArg {
    Ready(Box<Pattern>),
    Dynamic,
}

impl PatternArg {
    pub fn prepare(literals: &[Option<Value>], i: usize, glob: bool) -> Result<PatternArg, BuildError> {
        match literals.get(i) {
            Some(Some(Value::Str(p))) => {
                let compiled = if glob { pattern::glob(p) } else { Pattern::new(p) };
                Ok(PatternArg::Ready(Box::new(compiled.map_err(|m| BuildError::at(i, m))?)))
            }
            _ => Ok(PatternArg::Dynamic),
        }
    }

    pub fn get(&self, args: &Args<'_>, i: usize, function: &'static str, glob: bool) -> Result<std::borrow::Cow<'_, Pattern>, FnError> {
        match self {
            PatternArg::Ready(p) => Ok(std::borrow::Cow::Borrowed(p)),
            PatternArg::Dynamic => {
                let source = string(args, i, function, "pattern")?;
                let compiled = if glob { pattern::glob(source) } else { Pattern::new(source) };
                compiled.map(std::borrow::Cow::Owned).map_err(FnError::Pattern)
            }
        }
    }
}

/// OTTL's optional `function` and `replacementFormat` arguments of the
/// replace editors: each replacement (after `$1` expansion) is passed
/// through the converter, whose string result is put into the format's
/// `%s`. Without a function the format is not used, as in OTTL.
pub struct ReplaceFunction {
    function: &'static str,
    name: &'static str,
    convert: ConverterFn,
    /// The converter's parameter count: it is called with nil for its
    /// optional parameters.
    arity: usize,
    /// Where the format argument sits (`function`'s index + 1).
    format_at: usize,
}

impl ReplaceFunction {
    /// Prepares the function named at `function_at`, and checks a literal
    /// format after it.
    pub fn prepare(function: &'static str, literals: &[Option<Value>], function_at: usize) -> Result<Option<ReplaceFunction>, BuildError> {
        let format_at = function_at + 1;
        if let Some(format) = literal_str(literals, format_at) {
            check_format(format).map_err(|m| BuildError::at(format_at, m))?;
        }
        let Some(name) = literal_str(literals, function_at) else {
            return Ok(None);
        };
        let sig = super::lookup(name).ok_or_else(|| BuildError::at(function_at, format!("unknown function {name}")))?;
        let Compiled::Converter(convert) = (sig.build)(&[]).map_err(|e| BuildError::at(function_at, e.message))? else {
            return Err(BuildError::at(function_at, format!("{name} is not a converter")));
        };
        Ok(Some(ReplaceFunction { function, name: sig.name, convert, arity: sig.params.len(), format_at }))
    }

    /// The final text for one replacement.
    pub fn apply(&self, replacement: String, args: &Args<'_>) -> Result<String, FnError> {
        let input = Value::Str(replacement);
        let nil = Value::Nil;
        let mut call: Vec<&Value> = vec![&input];
        call.resize(self.arity.max(1), &nil);
        let converted = match (self.convert)(&call)? {
            Value::Str(s) => s,
            other => {
                return Err(FnError::Other(format!(
                    "{}: {} returned {}, and a replacement must be a string",
                    self.function,
                    self.name,
                    other.type_name()
                )))
            }
        };
        match optional_string(args, self.format_at, self.function, "replacementFormat")? {
            Some(format) => {
                check_format(format).map_err(|m| FnError::Other(format!("{}: {m}", self.function)))?;
                Ok(format.replacen("%s", &converted, 1))
            }
            None => Ok(converted),
        }
    }
}

/// OTTL's rule for `replacementFormat`: exactly one `%s`, and no other
/// format specifier.
pub fn check_format(format: &str) -> Result<(), String> {
    if format.matches('%').count() == 1 && format.contains("%s") {
        Ok(())
    } else {
        Err(format!("replacementFormat `{format}` must hold exactly one %s and no other % specifier"))
    }
}
