//! Type and context checking of transform statements, conditions and paths.

use dbintel_stdlib::{FunctionKind, FunctionSig, ParamType, ReturnType};

use crate::ast::*;
use crate::codes;
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::plan::Context;
use crate::source::Span;

/// Static type of an expression. `Any` is what a path into attributes holds:
/// only known at run time, so it fits everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Any,
    Nil,
    Bool,
    Int,
    Double,
    String,
    Map,
    List,
    Time,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Any => "any value",
            Ty::Nil => "nil",
            Ty::Bool => "a boolean",
            Ty::Int => "an integer",
            Ty::Double => "a float",
            Ty::String => "a string",
            Ty::Map => "a map",
            Ty::List => "a list",
            Ty::Time => "a time",
        }
    }
    fn is_numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Double | Ty::Any | Ty::Time)
    }
}

fn from_return(r: ReturnType) -> Ty {
    match r {
        ReturnType::Nothing => Ty::Nil,
        ReturnType::Any => Ty::Any,
        ReturnType::String => Ty::String,
        ReturnType::Int => Ty::Int,
        ReturnType::Double => Ty::Double,
        ReturnType::Bool => Ty::Bool,
        ReturnType::Map => Ty::Map,
        ReturnType::List => Ty::List,
        ReturnType::Time => Ty::Time,
    }
}

/// What a path names, after OTTL context prefixes are folded away.
#[derive(Debug, Clone, Copy)]
struct PathInfo {
    ty: Ty,
    /// `None` when valid for logs and data points alike.
    context: Option<Context>,
}

const LOG_FIELDS: &[&str] = &["attributes", "body", "severity_text", "severity_number", "time"];
const DATAPOINT_FIELDS: &[&str] = &["attributes", "value", "time"];
const METRIC_FIELDS: &[&str] = &["name", "unit", "description"];
/// Every path spelling we accept, for "did you mean" and help texts.
pub const KNOWN_PATHS: &[&str] = &[
    "attributes",
    "resource.attributes",
    "body",
    "severity_text",
    "severity_number",
    "time",
    "name",
    "unit",
    "description",
    "value",
    "log.attributes",
    "log.body",
    "log.severity_text",
    "log.severity_number",
    "log.time",
    "datapoint.attributes",
    "datapoint.value",
    "datapoint.time",
    "metric.name",
    "metric.unit",
    "metric.description",
];

fn field_info(field: &str) -> Option<PathInfo> {
    let (ty, context) = match field {
        "attributes" => (Ty::Map, None),
        "time" => (Ty::Time, None),
        "body" => (Ty::Any, Some(Context::Log)),
        "severity_text" => (Ty::String, Some(Context::Log)),
        "severity_number" => (Ty::Int, Some(Context::Log)),
        "name" | "unit" | "description" => (Ty::String, Some(Context::Datapoint)),
        "value" => (Ty::Double, Some(Context::Datapoint)),
        _ => return None,
    };
    Some(PathInfo { ty, context })
}

fn resolve(segments: &[&str]) -> Option<PathInfo> {
    match segments {
        ["resource", "attributes"] => Some(PathInfo { ty: Ty::Map, context: None }),
        [field] => field_info(field),
        ["log", field] if LOG_FIELDS.contains(field) => field_info(field).map(|info| PathInfo { context: Some(Context::Log), ..info }),
        ["datapoint", field] if DATAPOINT_FIELDS.contains(field) => {
            field_info(field).map(|info| PathInfo { context: Some(Context::Datapoint), ..info })
        }
        ["metric", field] if METRIC_FIELDS.contains(field) => field_info(field),
        _ => None,
    }
}

/// A path that pins the context, remembered to explain a conflict.
#[derive(Debug, Clone)]
struct ContextUse {
    span: Span,
    path: String,
}

/// Checks the expressions of one transform (or sample, or test) and infers
/// which context its paths need.
pub struct ExprChecker<'d> {
    pub diagnostics: &'d mut Vec<Diagnostic>,
    /// `context = ...` if the block declared one.
    declared: Option<(Context, Span)>,
    first_log: Option<ContextUse>,
    first_datapoint: Option<ContextUse>,
}

impl<'d> ExprChecker<'d> {
    pub fn new(diagnostics: &'d mut Vec<Diagnostic>, declared: Option<(Context, Span)>) -> ExprChecker<'d> {
        ExprChecker { diagnostics, declared, first_log: None, first_datapoint: None }
    }

    /// The context the block runs in: as declared, or as its paths imply.
    /// Reports a block that mixes log-only and datapoint-only paths.
    pub fn finish(self, block: Span) -> Context {
        if let Some((declared, _)) = self.declared {
            return declared;
        }
        match (self.first_log, self.first_datapoint) {
            (Some(log), Some(dp)) => {
                self.diagnostics.push(
                    Diagnostic::new(
                        codes::MIXED_CONTEXTS,
                        dp.span,
                        format!("`{}` only exists on data points, but `{}` only on logs", dp.path, log.path),
                    )
                    .label("a data point path")
                    .with_secondary(log.span, "a log path")
                    .with_secondary(block, "in this block")
                    .help("split the statements into one transform per context, or set `context = log` / `context = datapoint`"),
                );
                Context::Any
            }
            (Some(_), None) => Context::Log,
            (None, Some(_)) => Context::Datapoint,
            (None, None) => Context::Any,
        }
    }

    pub fn statement(&mut self, statement: &Statement) {
        self.call(&statement.call, FunctionKind::Editor);
        if let Some(condition) = &statement.condition {
            self.condition(condition);
        }
    }

    /// An expression used as a condition (`where`, `keep where`, `expect`).
    pub fn condition(&mut self, expr: &Expr) {
        let ty = self.expr(expr);
        if !matches!(ty, Ty::Bool | Ty::Any) {
            self.diagnostics.push(
                Diagnostic::new(codes::NOT_A_CONDITION, expr.span, format!("a condition must be true or false, this is {}", ty.name()))
                    .label("not a condition")
                    .help("compare it: `attributes[\"k\"] == \"v\"`, or test it: `IsMatch(...)`"),
            );
        }
    }

    pub fn expr(&mut self, expr: &Expr) -> Ty {
        match &expr.kind {
            ExprKind::Nil => Ty::Nil,
            ExprKind::Bool(_) => Ty::Bool,
            ExprKind::Int(..) => Ty::Int,
            ExprKind::Float(..) => Ty::Double,
            ExprKind::String(_) => Ty::String,
            ExprKind::Quantity { text, unit, .. } => {
                self.diagnostics.push(
                    Diagnostic::new(
                        codes::UNIT_IN_EXPRESSION,
                        expr.span,
                        format!("`{text}{unit}` has a unit; units only belong in settings and sampling rules"),
                    )
                    .label("unit not allowed here")
                    .help(format!("write the plain number `{text}`")),
                );
                Ty::Any
            }
            ExprKind::Path(path) => self.path(path),
            ExprKind::Call(call) => self.call(call, FunctionKind::Converter),
            ExprKind::List(items) => {
                for item in items {
                    self.expr(item);
                }
                Ty::List
            }
            ExprKind::Map(entries) => {
                for entry in entries {
                    self.expr(&entry.value);
                }
                Ty::Map
            }
            ExprKind::Paren(inner) => self.expr(inner),
            ExprKind::Not(inner) => {
                self.condition(inner);
                Ty::Bool
            }
            ExprKind::Neg(inner) => {
                let ty = self.expr(inner);
                self.numeric_operand(ty, inner.span, "-");
                if ty == Ty::Int {
                    Ty::Int
                } else {
                    Ty::Double
                }
            }
            ExprKind::Binary { op, lhs, rhs } if op.is_logical() => {
                self.condition(lhs);
                self.condition(rhs);
                Ty::Bool
            }
            ExprKind::Binary { op, lhs, rhs } if op.is_comparison() => {
                let (l, r) = (self.expr(lhs), self.expr(rhs));
                let ordered = !matches!(op, BinaryOp::Eq | BinaryOp::Ne);
                let comparable =
                    l == r || matches!(l, Ty::Any | Ty::Nil) || matches!(r, Ty::Any | Ty::Nil) || (l.is_numeric() && r.is_numeric());
                if !comparable || (ordered && (matches!(l, Ty::Map | Ty::List | Ty::Bool) || matches!(r, Ty::Map | Ty::List | Ty::Bool))) {
                    self.diagnostics.push(
                        Diagnostic::new(
                            codes::OPERAND_TYPE,
                            expr.span,
                            format!("cannot compare {} {} {}", l.name(), op.symbol(), r.name()),
                        )
                        .label("these never compare")
                        .help("convert one side first, e.g. Int(...) or String(...)"),
                    );
                }
                Ty::Bool
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let (l, r) = (self.expr(lhs), self.expr(rhs));
                self.numeric_operand(l, lhs.span, op.symbol());
                self.numeric_operand(r, rhs.span, op.symbol());
                match (l, r) {
                    (Ty::Int, Ty::Int) => Ty::Int,
                    (Ty::Any, _) | (_, Ty::Any) => Ty::Any,
                    _ => Ty::Double,
                }
            }
        }
    }

    fn numeric_operand(&mut self, ty: Ty, span: Span, op: &str) {
        if !ty.is_numeric() {
            let mut d =
                Diagnostic::new(codes::OPERAND_TYPE, span, format!("`{op}` needs numbers, this is {}", ty.name())).label("not a number");
            if ty == Ty::String && op == "+" {
                d = d.help("join strings with Concat([a, b], \"\")");
            }
            self.diagnostics.push(d);
        }
    }

    /// Checks a path and returns its type.
    pub fn path(&mut self, path: &Path) -> Ty {
        let segments: Vec<&str> = path.segments.iter().map(|s| s.name.as_str()).collect();
        let dotted = path.dotted();
        let Some(info) = resolve(&segments) else {
            let mut d =
                Diagnostic::new(codes::UNKNOWN_PATH, path.span, format!("unknown path `{dotted}`")).label("not a field of a record");
            d = match did_you_mean(&dotted, KNOWN_PATHS.iter().copied()) {
                Some(suggestion) => d.help(format!("did you mean `{suggestion}`?")),
                None => d.help(format!("paths are: {}", KNOWN_PATHS[..10].join(", "))),
            };
            self.diagnostics.push(d);
            return Ty::Any;
        };
        for index in &path.indexes {
            let ty = self.expr(index);
            if !matches!(ty, Ty::String | Ty::Int | Ty::Any) {
                self.diagnostics.push(
                    Diagnostic::new(
                        codes::OPERAND_TYPE,
                        index.span,
                        format!("an index must be a string key or an integer, this is {}", ty.name()),
                    )
                    .label("bad index"),
                );
            }
        }
        if !path.indexes.is_empty() && !matches!(info.ty, Ty::Map | Ty::Any) {
            self.diagnostics.push(
                Diagnostic::new(codes::OPERAND_TYPE, path.span, format!("`{dotted}` is {}, it cannot be indexed", info.ty.name()))
                    .label("cannot index"),
            );
        }
        if let Some(context) = info.context {
            self.note_context(context, path.span, &dotted);
        }
        if path.indexes.is_empty() {
            info.ty
        } else {
            Ty::Any
        }
    }

    fn note_context(&mut self, context: Context, span: Span, path: &str) {
        if let Some((declared, declared_span)) = self.declared {
            if declared != Context::Any && declared != context {
                let (wanted, other) = match context {
                    Context::Log => ("logs", "datapoint"),
                    _ => ("data points", "log"),
                };
                self.diagnostics.push(
                    Diagnostic::new(
                        codes::PATH_CONTEXT,
                        span,
                        format!("`{path}` only exists on {wanted}, but this block's context is {other}"),
                    )
                    .label("not valid in this context")
                    .with_secondary(declared_span, "context set here")
                    .help(format!("use a path that exists on {other}s, or change the context")),
                );
            }
            return;
        }
        let slot = match context {
            Context::Log => &mut self.first_log,
            _ => &mut self.first_datapoint,
        };
        if slot.is_none() {
            *slot = Some(ContextUse { span, path: path.to_string() });
        }
    }

    /// Checks a call; `expected` is what the position needs (a statement
    /// needs an editor, a value needs a converter).
    fn call(&mut self, call: &Call, expected: FunctionKind) -> Ty {
        let name = call.name.name.as_str();
        let Some(sig) = dbintel_stdlib::lookup(name) else {
            let mut d =
                Diagnostic::new(codes::UNKNOWN_FUNCTION, call.name.span, format!("unknown function `{name}`")).label("no such function");
            let same_kind = dbintel_stdlib::all().filter(|s| s.kind == expected).map(|s| s.name);
            let suggestion = did_you_mean(name, same_kind).or_else(|| did_you_mean(name, dbintel_stdlib::all().map(|s| s.name)));
            d = match (suggestion, name) {
                (_, "env" | "file") => d.help("env() and file() only give values to settings, such as dsn = env(\"PG_DSN\")"),
                (Some(s), _) => d.help(format!("did you mean `{s}`?")),
                (None, _) => d.help("`dbintel functions` lists every function"),
            };
            self.diagnostics.push(d);
            for arg in &call.args {
                self.expr(&arg.value);
            }
            return Ty::Any;
        };
        match (expected, sig.kind) {
            (FunctionKind::Editor, FunctionKind::Converter) => self.diagnostics.push(
                Diagnostic::new(
                    codes::CONVERTER_AS_STATEMENT,
                    call.name.span,
                    format!("`{name}` is a converter: it returns a value and changes nothing"),
                )
                .label("returns a value")
                .help(format!("store its result: set(attributes[\"key\"], {name}(...))")),
            ),
            (FunctionKind::Converter, FunctionKind::Editor) => self.diagnostics.push(
                Diagnostic::new(
                    codes::EDITOR_AS_VALUE,
                    call.name.span,
                    format!("`{name}` is an editor: it changes a record and has no value"),
                )
                .label("used as a value")
                .help("editors are statements of their own; converters (Capitalised) give values"),
            ),
            _ => {}
        }
        self.args(sig, call);
        from_return(sig.returns)
    }

    fn args(&mut self, sig: &FunctionSig, call: &Call) {
        let mut bound: Vec<Option<&Arg>> = vec![None; sig.params.len()];
        let mut positional = 0;
        let mut seen_named = false;
        for arg in &call.args {
            match &arg.name {
                None if seen_named => {
                    self.diagnostics.push(
                        Diagnostic::new(codes::ARITY, arg.value.span, "a positional argument cannot follow a named one")
                            .label("move it before the named arguments"),
                    );
                    self.expr(&arg.value);
                }
                None => {
                    if positional < bound.len() {
                        bound[positional] = Some(arg);
                    } else {
                        self.expr(&arg.value);
                    }
                    positional += 1;
                }
                Some(name) => {
                    seen_named = true;
                    match sig.param_index(&name.name) {
                        Some(i) if bound[i].is_none() => bound[i] = Some(arg),
                        Some(_) => self.diagnostics.push(
                            Diagnostic::new(codes::UNKNOWN_NAMED_ARG, name.span, format!("`{}` is given twice", name.name))
                                .label("already given"),
                        ),
                        None => {
                            let mut d = Diagnostic::new(
                                codes::UNKNOWN_NAMED_ARG,
                                name.span,
                                format!("`{}` has no parameter `{}`", sig.name, name.name),
                            )
                            .label("unknown parameter");
                            d = match did_you_mean(&name.name, sig.params.iter().map(|p| p.name)) {
                                Some(s) => d.help(format!("did you mean `{s}`? usage: {}", sig.usage())),
                                None => d.help(format!("usage: {}", sig.usage())),
                            };
                            self.diagnostics.push(d);
                        }
                    }
                }
            }
        }
        let missing: Vec<&str> = sig.params.iter().zip(&bound).filter(|(p, a)| !p.optional && a.is_none()).map(|(p, _)| p.name).collect();
        if positional > sig.params.len() || !missing.is_empty() {
            let required = sig.required_arity();
            let expected = if required == sig.params.len() { format!("{required}") } else { format!("{required} to {}", sig.params.len()) };
            let detail = if missing.is_empty() { String::new() } else { format!("; missing {}", missing.join(", ")) };
            self.diagnostics.push(
                Diagnostic::new(
                    codes::ARITY,
                    call.span,
                    format!("`{}` takes {expected} arguments, {} given{detail}", sig.name, call.args.len()),
                )
                .label("wrong number of arguments")
                .help(format!("usage: {}", sig.usage())),
            );
        }
        let errors_before = self.diagnostics.len();
        for (param, arg) in sig.params.iter().zip(&bound) {
            if let Some(arg) = arg {
                self.arg(sig, param.name, param.ty, &arg.value);
            }
        }
        if self.diagnostics.len() == errors_before {
            self.literal_args(sig, call, &bound);
        }
    }

    /// Lets the function refuse its literal arguments now (a negative
    /// limit, a marker longer than it, a format without `%s`), with the
    /// argument it names underlined, rather than when the plan starts.
    fn literal_args(&mut self, sig: &FunctionSig, call: &Call, bound: &[Option<&Arg>]) {
        let literals: Vec<Option<dbintel_stdlib::Value>> =
            sig.params.iter().zip(bound).map(|(p, a)| a.and_then(|a| literal_value(&a.value, p.ty))).collect();
        if let Err(e) = (sig.build)(&literals) {
            let (span, param) = match e.param.and_then(|i| bound.get(i).copied().flatten().map(|a| (a.value.span, sig.params[i].name))) {
                Some((span, name)) => (span, Some(name)),
                None => (call.span, None),
            };
            let message = match param {
                Some(name) => format!("argument `{name}` of `{}`: {}", sig.name, e.message),
                None => format!("`{}`: {}", sig.name, e.message),
            };
            self.diagnostics.push(
                Diagnostic::new(codes::ARG_VALUE, span, message).label("refused by the function").help(format!("usage: {}", sig.usage())),
            );
        }
    }

    fn arg(&mut self, sig: &FunctionSig, param: &str, ty: ParamType, value: &Expr) {
        let mismatch = |this: &mut Self, found: &str| {
            this.diagnostics.push(
                Diagnostic::new(
                    codes::ARG_TYPE,
                    value.span,
                    format!("argument `{param}` of `{}` must be {}, found {found}", sig.name, ty.describe()),
                )
                .label(format!("expected {}", ty.describe()))
                .help(format!("usage: {}", sig.usage())),
            );
        };
        match ty {
            ParamType::Target | ParamType::TargetMap => {
                let ExprKind::Path(path) = &value.kind else {
                    self.expr(value);
                    return mismatch(self, "a value that cannot be written to");
                };
                let found = self.path(path);
                if ty == ParamType::TargetMap && !matches!(found, Ty::Map | Ty::Any) {
                    mismatch(self, found.name());
                }
            }
            ParamType::Regex => match &value.kind {
                ExprKind::String(lit) => self.regex(lit),
                _ => {
                    let found = self.expr(value);
                    if !matches!(found, Ty::String | Ty::Any) {
                        mismatch(self, found.name());
                    }
                }
            },
            ParamType::OneOf(words) => match &value.kind {
                ExprKind::String(lit) if words.contains(&lit.value.as_str()) => {}
                ExprKind::String(lit) => mismatch(self, &format!("\"{}\"", lit.value)),
                _ => {
                    self.expr(value);
                    mismatch(self, "an expression (a literal is required)");
                }
            },
            ParamType::Function => {
                let named = match &value.kind {
                    ExprKind::Path(p) if p.segments.len() == 1 && p.indexes.is_empty() => Some(p.segments[0].name.as_str()),
                    _ => None,
                };
                match named.and_then(dbintel_stdlib::lookup) {
                    Some(f)
                        if f.kind == FunctionKind::Converter
                            && f.required_arity() == 1
                            && matches!(f.returns, ReturnType::String | ReturnType::Any) => {}
                    Some(f) if f.kind == FunctionKind::Converter && f.required_arity() == 1 => {
                        mismatch(self, &format!("`{}`, which returns {}", f.name, from_return(f.returns).name()))
                    }
                    Some(f) => mismatch(self, &format!("`{}`, which is not a one-argument converter", f.name)),
                    None => mismatch(self, "something else"),
                }
            }
            _ => {
                let found = self.expr(value);
                let fits = matches!(
                    (ty, found),
                    (_, Ty::Any | Ty::Nil)
                        | (ParamType::Any, _)
                        | (ParamType::String, Ty::String)
                        | (ParamType::Int, Ty::Int)
                        | (ParamType::Double, Ty::Int | Ty::Double)
                        | (ParamType::Bool, Ty::Bool)
                        | (ParamType::Map, Ty::Map)
                        | (ParamType::List, Ty::List)
                );
                if !fits {
                    mismatch(self, found.name());
                }
            }
        }
    }

    /// Compiles a regex literal now, so a bad one never reaches run time.
    fn regex(&mut self, lit: &StringLit) {
        if let Err(message) = dbintel_stdlib::pattern::check(&lit.value) {
            let help = if lit.raw_hashes.is_none() && lit.value.contains('\\') {
                "regexes read best as raw strings: r\"\\d+\" needs no doubled backslashes"
            } else {
                "the syntax is Rust regex plus look-around and backreferences (fancy-regex)"
            };
            self.diagnostics.push(
                Diagnostic::new(codes::BAD_REGEX, lit.span, format!("invalid regular expression: {message}"))
                    .label("does not compile")
                    .help(help),
            );
        }
    }
}

/// The value of an argument written as a literal (what the function's
/// `build` sees), or `None` when it is only known at run time.
fn literal_value(expr: &Expr, ty: ParamType) -> Option<dbintel_stdlib::Value> {
    use dbintel_stdlib::Value;
    match &expr.kind {
        ExprKind::Nil => Some(Value::Nil),
        ExprKind::Bool(b) => Some(Value::Bool(*b)),
        ExprKind::Int(i, _) => Some(Value::Int(*i)),
        ExprKind::Float(f, _) => Some(Value::Double(*f)),
        ExprKind::String(s) => Some(Value::Str(s.value.clone())),
        ExprKind::Paren(inner) => literal_value(inner, ty),
        ExprKind::Neg(inner) => match literal_value(inner, ty)? {
            Value::Int(i) => i.checked_neg().map(Value::Int),
            Value::Double(f) => Some(Value::Double(-f)),
            _ => None,
        },
        ExprKind::Path(p) if ty == ParamType::Function => Some(Value::Str(p.dotted())),
        ExprKind::List(items) => items.iter().map(|i| literal_value(i, ParamType::Any)).collect::<Option<Vec<_>>>().map(Value::List),
        _ => None,
    }
}
