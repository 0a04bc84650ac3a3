//! The compiled pipeline: a checked DAG of nodes with typed settings. This is
//! the only thing the engine reads.

use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;

use crate::ast;
use crate::source::Span;

/// Which kinds of records an edge carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Signals {
    pub metrics: bool,
    pub logs: bool,
}

impl Signals {
    pub const NONE: Signals = Signals { metrics: false, logs: false };
    pub const METRICS: Signals = Signals { metrics: true, logs: false };
    pub const LOGS: Signals = Signals { metrics: false, logs: true };
    pub const BOTH: Signals = Signals { metrics: true, logs: true };

    pub fn union(self, other: Signals) -> Signals {
        Signals { metrics: self.metrics || other.metrics, logs: self.logs || other.logs }
    }
    pub fn intersects(self, other: Signals) -> bool {
        (self.metrics && other.metrics) || (self.logs && other.logs)
    }
    pub fn is_empty(self) -> bool {
        !self.metrics && !self.logs
    }
}

impl fmt::Display for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.metrics, self.logs) {
            (true, true) => f.write_str("metrics and logs"),
            (true, false) => f.write_str("metrics"),
            (false, true) => f.write_str("logs"),
            (false, false) => f.write_str("nothing"),
        }
    }
}

/// Where a secret comes from. Only the reference is kept; the value is read
/// by the engine when it connects, and never printed.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(String),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env({name:?})"),
            SecretRef::File(path) => write!(f, "file({path:?})"),
        }
    }
}

/// A checked setting value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Duration(Duration),
    /// 0.0–100.0
    Percent(f64),
    Bytes(u64),
    Secret(SecretRef),
    Word(String),
    List(Vec<Value>),
    Map(IndexMap<String, Value>),
    /// `disk("/path")` for a queue.
    Disk(String),
    /// `redis("redis://…", username = env(…), password = env(…))` for a
    /// sampler's state.
    Redis(RedisState),
}

/// Where a sampler keeps shared state: a `redis://` or `rediss://` (TLS)
/// URL, and credentials kept out of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisState {
    pub url: String,
    pub username: Option<SecretRef>,
    pub password: Option<SecretRef>,
}

/// Settings of one node or collector, complete with defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings(pub IndexMap<String, Value>);

impl Settings {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
    pub fn duration(&self, key: &str) -> Option<Duration> {
        match self.get(key) {
            Some(Value::Duration(d)) => Some(*d),
            _ => None,
        }
    }
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }
    pub fn bytes(&self, key: &str) -> Option<u64> {
        match self.get(key) {
            Some(Value::Bytes(b)) => Some(*b),
            _ => None,
        }
    }
    pub fn percent(&self, key: &str) -> Option<f64> {
        match self.get(key) {
            Some(Value::Percent(p)) => Some(*p),
            _ => None,
        }
    }
    /// A bare word or a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Word(s)) | Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }
    pub fn secret(&self, key: &str) -> Option<&SecretRef> {
        match self.get(key) {
            Some(Value::Secret(s)) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// In declaration order, so output and scheduling are stable.
    pub nodes: IndexMap<String, Node>,
    /// The union of every pipeline's edges (for checks and pictures).
    pub edges: Vec<Edge>,
    /// Each pipeline's path. Data follows its own pipeline's path only: a
    /// node shared by two pipelines is one instance, but what enters it
    /// from one pipeline leaves along that pipeline.
    pub pipelines: IndexMap<String, PipelinePath>,
    pub tests: Vec<TestCase>,
    /// The `cluster` block, complete with defaults (`mode = none` when
    /// there is none).
    pub cluster: Settings,
}

impl Plan {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }
    pub fn outgoing<'a>(&'a self, from: &'a str) -> impl Iterator<Item = &'a Edge> + 'a {
        self.edges.iter().filter(move |e| e.from == from)
    }
    pub fn incoming<'a>(&'a self, to: &'a str) -> impl Iterator<Item = &'a Edge> + 'a {
        self.edges.iter().filter(move |e| e.to == to)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    pub span: Span,
    /// What reaches this node (union over its incoming edges).
    pub input: Signals,
    /// What leaves it.
    pub output: Signals,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Source(SourceNode),
    Transform(TransformNode),
    Sample(SampleNode),
    Batch(Settings),
    MemoryLimit(Settings),
    Sink(SinkNode),
}

impl NodeKind {
    pub fn label(&self) -> &'static str {
        match self {
            NodeKind::Source(_) => "source",
            NodeKind::Transform(_) => "transform",
            NodeKind::Sample(_) => "sample",
            NodeKind::Batch(_) => "batch",
            NodeKind::MemoryLimit(_) => "memory_limit",
            NodeKind::Sink(_) => "sink",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceNode {
    /// `postgres`, `mysql`, `sql`.
    pub kind: String,
    pub settings: Settings,
    pub collectors: IndexMap<String, Collector>,
    /// The databases this source scrapes: one per entry of `targets`, or
    /// one named after the source for a plain `dsn`. Filled by the checker
    /// (a `dsn`, an inline list) or from a targets file (`targets =
    /// file(...)`, read by [`crate::targets`]).
    pub targets: Vec<TargetSpec>,
    /// `targets = file("…")` as written, until the file is read.
    pub targets_file: Option<(String, crate::source::Span)>,
}

impl SourceNode {
    /// The key of each target's lease: `source` for a source's only target
    /// named after it (a plain `dsn`), else `source/target`.
    pub fn target_keys<'a>(&'a self, source: &'a str) -> impl Iterator<Item = String> + 'a {
        self.targets.iter().map(move |t| target_key(source, &t.name))
    }
}

/// `source` for the target named after its source, else `source/target`.
pub fn target_key(source: &str, target: &str) -> String {
    if source == target {
        source.to_string()
    } else {
        format!("{source}/{target}")
    }
}

/// One database a source scrapes.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSpec {
    /// Unique within the source; the target's identity in status, leases
    /// and logs.
    pub name: String,
    pub dsn: TargetDsn,
    /// Extra resource attributes of this target's data.
    pub attributes: IndexMap<String, String>,
    /// The source's settings with this target's overrides applied.
    pub settings: Settings,
}

/// Where a target's DSN comes from. Never holds a password: that stays a
/// [`SecretRef`] until the engine connects.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetDsn {
    /// The whole DSN from `env()` or `file()`.
    Secret(SecretRef),
    /// A DSN written without its password, and where the password is.
    Url { url: String, password: Option<SecretRef> },
    /// The DSN's parts.
    Parts { host: String, port: Option<u16>, database: Option<String>, user: Option<String>, password: Option<SecretRef> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Collector {
    pub settings: Settings,
    pub signals: Signals,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Log,
    Datapoint,
    Any,
}

impl Context {
    pub fn signals(self) -> Signals {
        match self {
            Context::Log => Signals::LOGS,
            Context::Datapoint => Signals::METRICS,
            Context::Any => Signals::BOTH,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMode {
    /// Log the error, skip the rest of this record's statements, keep it.
    Ignore,
    /// As ignore, without logging.
    Silent,
    /// Drop the record and count an error.
    Propagate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TransformNode {
    pub context: Context,
    pub error_mode: ErrorMode,
    /// Checked statements; the engine compiles them to executable form.
    pub statements: Vec<ast::Statement>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampleNode {
    pub settings: Settings,
    pub rules: Vec<SampleRule>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SampleRule {
    /// Keep `ratio` (0–1) of records, decided by a hash of `by` (or at random).
    Probabilistic {
        ratio: f64,
        by: Option<ast::Path>,
    },
    /// When `condition` holds: keep (all, or `ratio` of them, by `by`).
    Keep {
        condition: ast::Expr,
        ratio: Option<f64>,
        by: Option<ast::Path>,
    },
    Drop(ast::Expr),
    /// Drop what is over `count` per `per` (per key), among the records
    /// `condition` selects (all without one).
    RateLimit {
        count: u64,
        per: Duration,
        by: Option<ast::Path>,
        condition: Option<ast::Expr>,
    },
    /// Keep the first record per key per `window`.
    Dedup {
        by: ast::Path,
        window: Duration,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SinkNode {
    /// `otlp`, `newrelic`, `stdout`, `file`.
    pub kind: String,
    pub settings: Settings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelinePath {
    /// Node names from source to sink.
    pub nodes: Vec<String>,
    /// The source collector it starts from, or `None` for all of them.
    pub collector: Option<String>,
}

/// `from[.port] -> to`. `port` names the collector of a source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Edge {
    pub from: String,
    pub port: Option<String>,
    pub to: String,
    pub signals: Signals,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    pub name: String,
    pub node: String,
    pub signal: Context,
    pub input: Vec<ast::Assignment>,
    pub expect: ast::TestExpect,
    pub span: Span,
}
