//! Reading arguments: typed access to run-time values, and preparing
//! patterns once when they were written as literals.

use std::sync::Arc;

use crate::pattern::{self, Pattern};
use crate::signature::{Args, FnError};
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

/// A pattern argument: compiled now if it was a literal, else on each call.
#[derive(Clone)]
pub enum PatternArg {
    Ready(Box<Pattern>),
    Dynamic,
}

impl PatternArg {
    pub fn prepare(literals: &[Option<Value>], i: usize, glob: bool) -> Result<PatternArg, String> {
        match literals.get(i) {
            Some(Some(Value::Str(p))) => {
                let compiled = if glob { pattern::glob(p)? } else { Pattern::new(p)? };
                Ok(PatternArg::Ready(Box::new(compiled)))
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

/// OTTL's optional `function` argument: a converter applied to each
/// replacement, then `replacementFormat` (`%s` stands for its result).
pub type PostFn = Arc<dyn Fn(String) -> String + Send + Sync>;

pub fn prepare_post(literals: &[Option<Value>], function_at: usize) -> Result<Option<PostFn>, String> {
    let format = match literals.get(function_at + 1) {
        Some(Some(Value::Str(f))) => Some(f.clone()),
        _ => None,
    };
    let Some(Some(Value::Str(name))) = literals.get(function_at) else {
        return Ok(None);
    };
    let sig = super::lookup(name).ok_or_else(|| format!("unknown function {name}"))?;
    let crate::signature::Compiled::Converter(convert) = (sig.build)(&[])? else {
        return Err(format!("{name} is not a converter"));
    };
    Ok(Some(Arc::new(move |s: String| {
        let value = Value::Str(s);
        let out = match convert(&[&value]) {
            Ok(v) => v.to_string(),
            Err(_) => String::new(),
        };
        match &format {
            Some(f) => f.replacen("%s", &out, 1),
            None => out,
        }
    })))
}
