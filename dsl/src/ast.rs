//! The syntax tree. Every node carries the [`Span`] it was parsed from so the
//! checker can point at it and the formatter can keep comments in place.

use crate::source::Span;

#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// One parsed file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Module {
    pub items: Vec<Item>,
    /// Nodes whose declaration had a syntax error: they exist, so the
    /// checker does not also call every reference to them undefined.
    pub broken: Vec<Ident>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub kind: ItemKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ItemKind {
    Use(StringLit),
    Source(SourceDecl),
    Transform(TransformDecl),
    Sample(SampleDecl),
    Sink(SinkDecl),
    Batch(BuiltinDecl),
    MemoryLimit(BuiltinDecl),
    /// `cluster { mode = leader, ... }`: how replicas share the work.
    Cluster(Vec<Setting>),
    Pipeline(PipelineDecl),
    Test(TestDecl),
}

impl ItemKind {
    /// The node this item declares, if it declares one.
    pub fn node_name(&self) -> Option<&Ident> {
        match self {
            ItemKind::Source(d) => Some(&d.name),
            ItemKind::Transform(d) => Some(&d.name),
            ItemKind::Sample(d) => Some(&d.name),
            ItemKind::Sink(d) => Some(&d.name),
            ItemKind::Batch(d) | ItemKind::MemoryLimit(d) => Some(&d.name),
            ItemKind::Use(_) | ItemKind::Pipeline(_) | ItemKind::Test(_) | ItemKind::Cluster(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub key: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceDecl {
    pub name: Ident,
    pub kind: Ident,
    pub members: Vec<SourceMember>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceMember {
    Setting(Setting),
    Collect(CollectBlock),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CollectBlock {
    pub name: Ident,
    pub settings: Vec<Setting>,
    /// `collect x` without braces.
    pub bare: bool,
    pub span: Span,
}

impl SourceDecl {
    pub fn settings(&self) -> impl Iterator<Item = &Setting> {
        self.members.iter().filter_map(|m| match m {
            SourceMember::Setting(s) => Some(s),
            SourceMember::Collect(_) => None,
        })
    }
    pub fn collectors(&self) -> impl Iterator<Item = &CollectBlock> {
        self.members.iter().filter_map(|m| match m {
            SourceMember::Collect(c) => Some(c),
            SourceMember::Setting(_) => None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TransformDecl {
    pub name: Ident,
    pub members: Vec<TransformMember>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TransformMember {
    Setting(Setting),
    Statement(Statement),
}

/// `editor(args) [where condition]`
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub call: Call,
    pub condition: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampleDecl {
    pub name: Ident,
    pub members: Vec<SampleMember>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SampleMember {
    Setting(Setting),
    Rule(Box<SampleRule>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampleRule {
    pub kind: SampleRuleKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SampleRuleKind {
    /// `probabilistic 25% [by path]`
    Probabilistic { rate: Expr, by: Option<Path> },
    /// `keep [25% [by path]] where cond`
    Keep { rate: Option<Expr>, by: Option<Path>, condition: Expr },
    /// `drop where cond`
    Drop(Expr),
    /// `rate_limit 100 per 1m [by path] [where cond]`
    RateLimit { count: Expr, per: Expr, by: Option<Path>, condition: Option<Expr> },
    /// `dedup by path for 10m`
    Dedup { by: Path, window: Expr },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SinkDecl {
    pub name: Ident,
    pub kind: Ident,
    pub settings: Vec<Setting>,
}

/// `batch NAME { … }` and `memory_limit NAME { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltinDecl {
    pub name: Ident,
    pub settings: Vec<Setting>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PipelineDecl {
    pub name: Ident,
    pub nodes: Vec<NodeRef>,
}

/// `node` or `source.collector` in a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRef {
    pub node: Ident,
    pub port: Option<Ident>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TestDecl {
    pub name: StringLit,
    pub input: TestInput,
    pub expect: TestExpect,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TestInput {
    pub node: Ident,
    /// `log` (default) or `metric`.
    pub signal: Option<Ident>,
    pub assignments: Vec<Assignment>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub path: Path,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TestExpect {
    Dropped(Span),
    Conditions(Vec<Expr>, Span),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StringLit {
    pub value: String,
    /// `Some(n)` for a raw string written with n `#`s.
    pub raw_hashes: Option<usize>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Nil,
    Bool(bool),
    /// Integers keep their source text so `0x1F` formats as written.
    Int(i64, String),
    Float(f64, String),
    String(StringLit),
    /// A number with a unit (`30s`, `25%`, `64MiB`); what it means depends on
    /// where it is used, so the checker interprets it.
    Quantity {
        number: f64,
        text: String,
        unit: String,
    },
    Path(Path),
    Call(Call),
    List(Vec<Expr>),
    Map(Vec<MapEntry>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Paren(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct MapEntry {
    pub key: String,
    /// Written as a bare identifier rather than a string.
    pub bare_key: bool,
    pub key_span: Span,
    pub value: Expr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
        }
    }
    pub fn is_comparison(self) -> bool {
        matches!(self, BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge)
    }
    pub fn is_logical(self) -> bool {
        matches!(self, BinaryOp::Or | BinaryOp::And)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

/// `resource.attributes["k"]`: dotted segments, then bracket indexes.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub segments: Vec<Ident>,
    pub indexes: Vec<Expr>,
    pub span: Span,
}

impl Path {
    /// The dotted part, e.g. `resource.attributes`.
    pub fn dotted(&self) -> String {
        let names: Vec<&str> = self.segments.iter().map(|s| s.name.as_str()).collect();
        names.join(".")
    }
}
