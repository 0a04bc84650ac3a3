//! From the checked AST to executable statements. The checker has already
//! proven names, arities and types, so failures here are rare: a regex that
//! parses but does not build, or a function that refuses its literals.

use dbintel_dsl::ast::{self, ExprKind};
use dbintel_stdlib::{Compiled, ParamType, Value};

use super::expr::{CExpr, MAX_ARGS};
use super::path::{CPath, Root};
use super::statement::CStatement;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (in `{statement}`)")]
pub struct CompileError {
    pub statement: String,
    pub message: String,
}

fn error(statement: &str, message: impl Into<String>) -> CompileError {
    CompileError { statement: statement.to_string(), message: message.into() }
}

pub fn compile_statement(statement: &ast::Statement) -> Result<CStatement, CompileError> {
    let text = dbintel_dsl::format::statement(statement);
    let call = &statement.call;
    let sig = dbintel_stdlib::lookup(&call.name.name).ok_or_else(|| error(&text, format!("unknown function {}", call.name.name)))?;
    let bound = bind(sig, call, &text)?;
    let target = match bound.first().and_then(|a| a.as_ref()) {
        Some(ast::Expr { kind: ExprKind::Path(p), .. }) => compile_path(p).map_err(|m| error(&text, m))?,
        _ => return Err(error(&text, "the first argument must be a path")),
    };
    let literals: Vec<Option<Value>> = bound.iter().enumerate().map(|(i, a)| a.and_then(|e| literal(e, sig.params[i].ty))).collect();
    let Compiled::Editor(editor) = (sig.build)(&literals).map_err(|m| error(&text, m))? else {
        return Err(error(&text, format!("{} is not an editor", sig.name)));
    };
    let mut args = vec![CExpr::Literal(Value::Nil)];
    for (i, arg) in bound.iter().enumerate().skip(1) {
        args.push(match arg {
            Some(e) => compile_arg(e, sig.params[i].ty).map_err(|m| error(&text, m))?,
            None => CExpr::Literal(Value::Nil),
        });
    }
    let condition = statement.condition.as_ref().map(|c| compile_expr(c).map_err(|m| error(&text, m))).transpose()?;
    let target_text = bound.first().and_then(|a| a.as_ref()).map(|e| dbintel_dsl::format::expr(e)).unwrap_or_default();
    Ok(CStatement { text, function: sig.name, target_text, editor, target, args, condition })
}

pub fn compile_condition(expr: &ast::Expr) -> Result<CExpr, CompileError> {
    compile_expr(expr).map_err(|m| error(&dbintel_dsl::format::expr(expr), m))
}

/// Arguments in parameter order (named ones placed where they belong).
fn bind<'a>(sig: &dbintel_stdlib::FunctionSig, call: &'a ast::Call, text: &str) -> Result<Vec<Option<&'a ast::Expr>>, CompileError> {
    if sig.params.len() > MAX_ARGS {
        return Err(error(text, "too many parameters"));
    }
    let mut bound: Vec<Option<&ast::Expr>> = vec![None; sig.params.len()];
    for (position, arg) in call.args.iter().enumerate() {
        let index = match &arg.name {
            Some(name) => sig.param_index(&name.name).ok_or_else(|| error(text, format!("no parameter {}", name.name)))?,
            None => position,
        };
        if index >= bound.len() {
            return Err(error(text, "too many arguments"));
        }
        bound[index] = Some(&arg.value);
    }
    Ok(bound)
}

/// The value of an argument written as a literal, if it is one.
fn literal(expr: &ast::Expr, ty: ParamType) -> Option<Value> {
    match &expr.kind {
        ExprKind::Nil => Some(Value::Nil),
        ExprKind::Bool(b) => Some(Value::Bool(*b)),
        ExprKind::Int(i, _) => Some(Value::Int(*i)),
        ExprKind::Float(f, _) => Some(Value::Double(*f)),
        ExprKind::String(s) => Some(Value::Str(s.value.clone())),
        ExprKind::Paren(inner) => literal(inner, ty),
        ExprKind::Path(p) if ty == ParamType::Function => Some(Value::Str(p.dotted())),
        ExprKind::List(items) => items.iter().map(|i| literal(i, ParamType::Any)).collect::<Option<Vec<_>>>().map(Value::List),
        _ => None,
    }
}

fn compile_arg(expr: &ast::Expr, ty: ParamType) -> Result<CExpr, String> {
    match literal(expr, ty) {
        Some(v) => Ok(CExpr::Literal(v)),
        None => compile_expr(expr),
    }
}

fn compile_expr(expr: &ast::Expr) -> Result<CExpr, String> {
    if let Some(v) = literal(expr, ParamType::Any) {
        return Ok(CExpr::Literal(v));
    }
    Ok(match &expr.kind {
        ExprKind::Path(p) => CExpr::Path(compile_path(p)?),
        ExprKind::Call(call) => {
            let text = dbintel_dsl::format::expr(expr);
            let sig = dbintel_stdlib::lookup(&call.name.name).ok_or_else(|| format!("unknown function {}", call.name.name))?;
            let bound = bind(sig, call, &text).map_err(|e| e.message)?;
            let literals: Vec<Option<Value>> =
                bound.iter().enumerate().map(|(i, a)| a.and_then(|e| literal(e, sig.params[i].ty))).collect();
            let Compiled::Converter(function) = (sig.build)(&literals)? else {
                return Err(format!("{} is not a converter", sig.name));
            };
            let args = bound
                .iter()
                .enumerate()
                .map(|(i, a)| match a {
                    Some(e) => compile_arg(e, sig.params[i].ty),
                    None => Ok(CExpr::Literal(Value::Nil)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            CExpr::Call { name: sig.name, function, args }
        }
        ExprKind::List(items) => CExpr::List(items.iter().map(compile_expr).collect::<Result<_, _>>()?),
        ExprKind::Map(entries) => {
            CExpr::Map(entries.iter().map(|e| Ok((e.key.clone(), compile_expr(&e.value)?))).collect::<Result<_, String>>()?)
        }
        ExprKind::Not(inner) => CExpr::Not(Box::new(compile_expr(inner)?)),
        ExprKind::Neg(inner) => CExpr::Neg(Box::new(compile_expr(inner)?)),
        ExprKind::Paren(inner) => compile_expr(inner)?,
        ExprKind::Binary { op, lhs, rhs } => {
            CExpr::Binary { op: *op, lhs: Box::new(compile_expr(lhs)?), rhs: Box::new(compile_expr(rhs)?) }
        }
        ExprKind::Quantity { .. } => return Err("units are not values".into()),
        _ => return Err("unsupported expression".into()),
    })
}

pub fn compile_path(path: &ast::Path) -> Result<CPath, String> {
    let segments: Vec<&str> = path.segments.iter().map(|s| s.name.as_str()).collect();
    let field = match segments.as_slice() {
        ["resource", "attributes"] => "resource.attributes",
        ["log" | "datapoint" | "metric", field] => field,
        [field] => field,
        _ => return Err(format!("unknown path {}", path.dotted())),
    };
    let root = match field {
        "attributes" => Root::Attributes,
        "resource.attributes" => Root::ResourceAttributes,
        "body" => Root::Body,
        "severity_text" => Root::SeverityText,
        "severity_number" => Root::SeverityNumber,
        "time" => Root::Time,
        "name" => Root::Name,
        "unit" => Root::Unit,
        "description" => Root::Description,
        "value" => Root::Value,
        other => return Err(format!("unknown path {other}")),
    };
    let keys = path.indexes.iter().map(compile_expr).collect::<Result<_, _>>()?;
    Ok(CPath { root, keys })
}
