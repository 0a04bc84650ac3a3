//! The checker: every module of a compilation in, a [`Plan`] and every
//! diagnostic out. It never stops at the first error.
//!
//! Order: declarations (names must be unique), each node on its own
//! (settings, statements, rules), pipelines (wiring), the graph as a whole
//! (cycles, signal types, unused nodes), then tests.

mod expr;
pub mod log_sources;
pub mod secrets;
pub mod settings;
mod sinks;

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

pub use expr::Ty;
pub use settings::EnvPolicy;

use crate::ast::*;
use crate::codes;
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::plan::{self, Collector, Context, Edge, ErrorMode, Node, NodeKind, Plan, Signals};
use crate::schema;
use crate::source::Span;
use expr::ExprChecker;
use settings::SettingsChecker;

/// Names of the built-in processors, usable without a declaration.
const BUILTIN_NODES: &[&str] = &["batch", "memory_limit"];

pub struct CheckInput<'a> {
    pub modules: &'a [Module],
    pub env_is_set: &'a dyn Fn(&str) -> bool,
    pub env_policy: EnvPolicy,
}

pub fn check(input: CheckInput<'_>) -> (Plan, Vec<Diagnostic>) {
    let mut checker = Checker { diagnostics: Vec::new(), env_is_set: input.env_is_set, env_policy: input.env_policy };
    let plan = checker.run(input.modules);
    (plan, checker.diagnostics)
}

struct Checker<'a> {
    diagnostics: Vec<Diagnostic>,
    env_is_set: &'a dyn Fn(&str) -> bool,
    env_policy: EnvPolicy,
}

impl Checker<'_> {
    fn settings(&mut self) -> SettingsChecker<'_> {
        SettingsChecker { diagnostics: &mut self.diagnostics, env_is_set: self.env_is_set, env_policy: self.env_policy }
    }

    fn run(&mut self, modules: &[Module]) -> Plan {
        let items: Vec<&Item> = modules.iter().flat_map(|m| m.items.iter()).collect();

        // 1. declarations
        let mut declared: IndexMap<String, &Item> = IndexMap::new();
        for item in &items {
            let Some(name) = item.kind.node_name() else { continue };
            let builtin_kind = matches!(item.kind, ItemKind::Batch(_) | ItemKind::MemoryLimit(_));
            if BUILTIN_NODES.contains(&name.name.as_str()) && !builtin_kind {
                self.diagnostics.push(
                    Diagnostic::new(codes::RESERVED_NAME, name.span, format!("`{}` is the name of a built-in node", name.name))
                        .label("reserved")
                        .help("choose another name"),
                );
                continue;
            }
            if let Some(first) = declared.get(&name.name) {
                let first_span = first.kind.node_name().map(|n| n.span).unwrap_or(first.span);
                self.diagnostics.push(
                    Diagnostic::new(codes::DUPLICATE_NODE, name.span, format!("node `{}` is defined twice", name.name))
                        .label("defined again here")
                        .with_secondary(first_span, "first defined here")
                        .help("node names are shared by every file of a pipeline set; rename one"),
                );
                continue;
            }
            declared.insert(name.name.clone(), item);
        }

        // 2. each node on its own
        let mut nodes: IndexMap<String, Node> = IndexMap::new();
        for (name, item) in &declared {
            if let Some(kind) = self.node(item) {
                let span = item.kind.node_name().map(|n| n.span).unwrap_or(item.span);
                nodes.insert(name.clone(), Node { name: name.clone(), kind, span, input: Signals::NONE, output: Signals::NONE });
            }
        }

        sinks::check(&mut self.diagnostics, &declared);
        log_sources::check_links(&mut self.diagnostics, &declared, &nodes);

        let broken: HashSet<&str> = modules.iter().flat_map(|m| m.broken.iter().map(|i| i.name.as_str())).collect();

        // 3. pipelines
        let mut pipelines: IndexMap<String, plan::PipelinePath> = IndexMap::new();
        let mut pipeline_spans: HashMap<String, Span> = HashMap::new();
        let mut edges: Vec<(Edge, Span)> = Vec::new();
        let mut used: HashSet<String> = HashSet::new();
        for item in &items {
            let ItemKind::Pipeline(p) = &item.kind else { continue };
            if let Some(first) = pipeline_spans.get(&p.name.name) {
                self.diagnostics.push(
                    Diagnostic::new(codes::DUPLICATE_PIPELINE, p.name.span, format!("pipeline `{}` is defined twice", p.name.name))
                        .label("defined again here")
                        .with_secondary(*first, "first defined here"),
                );
                continue;
            }
            pipeline_spans.insert(p.name.name.clone(), p.name.span);
            let names = self.pipeline(p, &declared, &broken, &mut nodes, &mut edges, &mut used);
            let collector = p.nodes.first().and_then(|n| n.port.as_ref()).map(|port| port.name.clone());
            pipelines.insert(p.name.name.clone(), plan::PipelinePath { nodes: names, collector });
        }

        // 4. the graph as a whole
        let mut unique_edges: Vec<Edge> = Vec::new();
        let mut edge_spans: Vec<Span> = Vec::new();
        for (edge, span) in edges {
            if !unique_edges.contains(&edge) {
                unique_edges.push(edge);
                edge_spans.push(span);
            }
        }
        let acyclic = self.check_cycles(&nodes, &unique_edges, &edge_spans);
        if acyclic {
            self.propagate_signals(&mut nodes, &mut unique_edges, &edge_spans);
        }
        for (name, item) in &declared {
            if !used.contains(name) {
                let span = item.kind.node_name().map(|n| n.span).unwrap_or(item.span);
                self.diagnostics.push(
                    Diagnostic::new(codes::UNUSED_NODE, span, format!("node `{name}` is not used by any pipeline"))
                        .label("unused")
                        .help(format!("add it to a pipeline, e.g. `pipeline p = ... -> {name} -> ...`, or remove it")),
                );
            }
        }

        for item in &items {
            if let ItemKind::Pipeline(p) = &item.kind {
                self.check_query_text_is_sanitized(p, &nodes);
            }
        }

        // 5. tests
        let tests = self.tests(&items, &nodes);

        let cluster = self.cluster(&items);
        Plan { nodes, edges: unique_edges, pipelines, tests, cluster }
    }

    /// The one `cluster` block (or the defaults), its timings checked: a
    /// leader must give up (`renew`) before its lease can expire for the
    /// others (`duration`), and try (`retry`) more often than that.
    fn cluster(&mut self, items: &[&Item]) -> plan::Settings {
        let blocks: Vec<(&Item, &Vec<Setting>)> =
            items.iter().filter_map(|i| if let ItemKind::Cluster(s) = &i.kind { Some((*i, s)) } else { None }).collect();
        let Some((first, settings)) = blocks.first() else { return defaults(schema::CLUSTER_SETTINGS) };
        for (again, settings) in &blocks[1..] {
            // still checked, so every mistake shows at once
            let refs: Vec<&Setting> = settings.iter().collect();
            self.settings().check("the cluster block", again.span, &refs, schema::CLUSTER_SETTINGS);
            self.diagnostics.push(
                Diagnostic::new(codes::DUPLICATE_CLUSTER, again.span, "a second `cluster` block")
                    .label("again here")
                    .with_secondary(first.span, "first here")
                    .help("one set of files describes one deployment: keep a single `cluster` block"),
            );
        }
        let refs: Vec<&Setting> = settings.iter().collect();
        let checked = self.settings().check("the cluster block", first.span, &refs, schema::CLUSTER_SETTINGS);
        let (duration, renew, retry) = (checked.duration("duration"), checked.duration("renew"), checked.duration("retry"));
        if let (Some(duration), Some(renew), Some(retry)) = (duration, renew, retry) {
            let span = |key: &str| settings.iter().find(|s| s.key.name == key).map_or(first.span, |s| s.span);
            if renew >= duration {
                self.diagnostics.push(
                    Diagnostic::new(
                        codes::CLUSTER_TIMING,
                        span("renew"),
                        format!("`renew` ({renew:?}) must be shorter than `duration` ({duration:?})"),
                    )
                    .label("too long")
                    .help("a leader that cannot renew must stop before its lease expires for the others, e.g. duration = 15s, renew = 10s"),
                );
            } else if retry >= renew {
                self.diagnostics.push(
                    Diagnostic::new(
                        codes::CLUSTER_TIMING,
                        span("retry"),
                        format!("`retry` ({retry:?}) must be shorter than `renew` ({renew:?})"),
                    )
                    .label("too long")
                    .help("several renewal attempts must fit before giving up, e.g. renew = 10s, retry = 2s"),
                );
            }
        }
        checked
    }

    fn node(&mut self, item: &Item) -> Option<NodeKind> {
        match &item.kind {
            ItemKind::Source(decl) => self.source(decl, item.span),
            ItemKind::Transform(decl) => Some(self.transform(decl, item.span)),
            ItemKind::Sample(decl) => Some(self.sample(decl, item.span)),
            ItemKind::Sink(decl) => self.sink(decl, item.span),
            ItemKind::Batch(decl) => {
                let settings: Vec<&Setting> = decl.settings.iter().collect();
                Some(NodeKind::Batch(self.settings().check("a batch", item.span, &settings, schema::BATCH_SETTINGS)))
            }
            ItemKind::MemoryLimit(decl) => {
                let settings: Vec<&Setting> = decl.settings.iter().collect();
                Some(NodeKind::MemoryLimit(self.settings().check("a memory_limit", item.span, &settings, schema::MEMORY_LIMIT_SETTINGS)))
            }
            _ => None,
        }
    }

    fn unknown_kind(&mut self, kind: &Ident, what: &str, known: &[&str]) {
        let mut d = Diagnostic::new(codes::UNKNOWN_KIND, kind.span, format!("unknown {what} kind `{}`", kind.name))
            .label(format!("not a {what} kind"));
        d = match did_you_mean(&kind.name, known.iter().copied()) {
            Some(s) => d.help(format!("did you mean `{s}`? {what} kinds: {}", known.join(", "))),
            None => d.help(format!("{what} kinds: {}", known.join(", "))),
        };
        self.diagnostics.push(d);
    }

    fn source(&mut self, decl: &SourceDecl, span: Span) -> Option<NodeKind> {
        let Some(spec) = schema::source_kind(&decl.kind.name) else {
            let known: Vec<&str> = schema::SOURCE_KINDS.iter().map(|k| k.name).collect();
            self.unknown_kind(&decl.kind, "source", &known);
            return None;
        };
        let all: Vec<&Setting> = decl.settings().collect();
        let (targets_setting, settings): (Vec<&Setting>, Vec<&Setting>) =
            all.into_iter().partition(|s| s.key.name == "targets" && spec.server_kind.is_none());
        let what = format!("a {} source", spec.name);
        let dsn_given = settings.iter().any(|s| s.key.name == "dsn");
        let settings = self.settings().check(&what, span, &settings, spec.settings);
        // a log source connects nowhere: its target is its server's, linked
        // once every node (and targets file) is known
        let (targets, targets_file) = if spec.server_kind.is_some() {
            log_sources::check_source(&mut self.diagnostics, decl);
            (Vec::new(), None)
        } else {
            self.targets(decl, spec, &settings, targets_setting.first().copied(), dsn_given)
        };
        let mut collectors: IndexMap<String, Collector> = IndexMap::new();
        let mut collector_spans: HashMap<String, Span> = HashMap::new();
        for block in decl.collectors() {
            let name = &block.name.name;
            if let Some(first) = collector_spans.get(name) {
                self.diagnostics.push(
                    Diagnostic::new(codes::DUPLICATE_COLLECTOR, block.name.span, format!("collector `{name}` appears twice"))
                        .label("again here")
                        .with_secondary(*first, "first here"),
                );
                continue;
            }
            collector_spans.insert(name.clone(), block.name.span);
            let Some(collector_spec) = spec.collector(name) else {
                let known: Vec<&str> = spec.collectors.iter().map(|c| c.name).collect();
                let mut d =
                    Diagnostic::new(codes::UNKNOWN_COLLECTOR, block.name.span, format!("a {} source has no collector `{name}`", spec.name))
                        .label("unknown collector");
                d = match did_you_mean(name, known.iter().copied()) {
                    Some(s) => d.help(format!("did you mean `{s}`? collectors: {}", known.join(", "))),
                    None => d.help(format!("collectors: {}", known.join(", "))),
                };
                self.diagnostics.push(d);
                continue;
            };
            let block_settings: Vec<&Setting> = block.settings.iter().collect();
            let what = format!("collector `{name}`");
            let collector_settings = self.settings().check(&what, block.span, &block_settings, collector_spec.settings);
            let mut signals = collector_spec.signals;
            if name == "activity" && collector_settings.bool("samples_as_logs") == Some(false) {
                signals = Signals::METRICS;
            }
            if spec.open_collectors.is_some() {
                signals = match collector_settings.str("kind") {
                    Some("log") => Signals::LOGS,
                    _ => Signals::METRICS,
                };
            }
            collectors.insert(name.clone(), Collector { settings: collector_settings, signals });
        }
        if decl.collectors().next().is_none() {
            let known: Vec<&str> = spec.collectors.iter().map(|c| c.name).collect();
            let help = if known.is_empty() {
                "add one `collect NAME { query = \"select ...\" }` per query".to_string()
            } else {
                format!("add at least one of: {}", known.iter().map(|k| format!("collect {k}")).collect::<Vec<_>>().join(", "))
            };
            self.diagnostics.push(
                Diagnostic::new(codes::MISSING_SETTING, decl.name.span, format!("source `{}` collects nothing", decl.name.name))
                    .label("no collect block")
                    .help(help),
            );
        }
        Some(NodeKind::Source(plan::SourceNode { kind: spec.name.to_string(), settings, collectors, targets, targets_file }))
    }

    /// A source's targets: one named after it for a `dsn`, an inline list,
    /// or a file to read after checking (`targets = file("…")`).
    #[allow(clippy::type_complexity)]
    fn targets(
        &mut self,
        decl: &SourceDecl,
        spec: &schema::SourceKindSpec,
        settings: &plan::Settings,
        targets: Option<&Setting>,
        dsn_given: bool,
    ) -> (Vec<plan::TargetSpec>, Option<(String, Span)>) {
        let source = &decl.name;
        match (targets, settings.secret("dsn")) {
            (None, Some(dsn)) => {
                let target = plan::TargetSpec {
                    name: source.name.clone(),
                    dsn: plan::TargetDsn::Secret(dsn.clone()),
                    attributes: IndexMap::new(),
                    settings: settings.clone(),
                };
                (vec![target], None)
            }
            (None, None) => {
                if !dsn_given {
                    self.diagnostics.push(
                        Diagnostic::new(codes::TARGETS_OR_DSN, source.span, format!("source `{}` says nowhere to connect", source.name))
                            .label("no dsn, no targets")
                            .help(format!(
                                "add `dsn = env(\"PG_DSN\")`, or `targets = file(\"targets.yaml\")` / `targets = [ {{ name = \"…\", dsn = env(\"…\") }} ]` for several ({} source)",
                                spec.name
                            )),
                    );
                }
                (Vec::new(), None)
            }
            (Some(t), dsn) => {
                if dsn.is_some() || dsn_given {
                    self.diagnostics.push(
                        Diagnostic::new(
                            codes::TARGETS_OR_DSN,
                            t.key.span,
                            format!("source `{}` has both `dsn` and `targets`", source.name),
                        )
                        .label("one or the other")
                        .help("a plain `dsn` is one target; put it in the list instead"),
                    );
                    return (Vec::new(), None);
                }
                match &t.value.kind {
                    ExprKind::Call(call) if call.name.name == "file" => match call.args.as_slice() {
                        [arg] if arg.name.is_none() => match &arg.value.kind {
                            ExprKind::String(path) if !path.value.is_empty() => (Vec::new(), Some((path.value.clone(), arg.value.span))),
                            _ => {
                                self.bad_targets(t);
                                (Vec::new(), None)
                            }
                        },
                        _ => {
                            self.bad_targets(t);
                            (Vec::new(), None)
                        }
                    },
                    ExprKind::List(items) => {
                        let mut found = Vec::new();
                        for item in items {
                            let ExprKind::Map(entries) = &item.kind else {
                                self.bad_targets(t);
                                continue;
                            };
                            let raw = entries
                                .iter()
                                .map(|e| crate::targets::RawEntry { key: e.key.clone(), key_span: e.key_span, value: e.value.clone() })
                                .collect();
                            if let Some(target) = crate::targets::target(item.span, raw, settings, &mut self.settings()) {
                                found.push((target, item.span));
                            }
                        }
                        if items.is_empty() {
                            self.diagnostics
                                .push(Diagnostic::new(codes::TARGETS_FILE, t.value.span, "`targets` lists no target").label("empty"));
                        }
                        crate::targets::check_unique(&found, &mut self.diagnostics);
                        (found.into_iter().map(|(t, _)| t).collect(), None)
                    }
                    _ => {
                        self.bad_targets(t);
                        (Vec::new(), None)
                    }
                }
            }
        }
    }

    fn bad_targets(&mut self, t: &Setting) {
        self.diagnostics.push(
            Diagnostic::new(codes::SETTING_TYPE, t.value.span, "`targets` is a list of targets or file(\"…\")")
                .label("not a targets list")
                .help("targets = file(\"/etc/dbintel-targets/targets.yaml\"), or targets = [ { name = \"orders\", dsn = env(\"ORDERS_DSN\") } ]"),
        );
    }

    fn transform(&mut self, decl: &TransformDecl, span: Span) -> NodeKind {
        let settings: Vec<&Setting> = decl
            .members
            .iter()
            .filter_map(|m| match m {
                TransformMember::Setting(s) => Some(s),
                TransformMember::Statement(_) => None,
            })
            .collect();
        let checked = self.settings().check("a transform", span, &settings, schema::TRANSFORM_SETTINGS);
        let declared_context = settings.iter().find(|s| s.key.name == "context").and_then(|s| {
            let context = match checked.str("context")? {
                "log" => Context::Log,
                "datapoint" => Context::Datapoint,
                _ => Context::Any,
            };
            Some((context, s.value.span))
        });
        let error_mode = match checked.str("error_mode") {
            Some("ignore") => ErrorMode::Ignore,
            Some("silent") => ErrorMode::Silent,
            _ => ErrorMode::Propagate,
        };
        let statements: Vec<Statement> = decl
            .members
            .iter()
            .filter_map(|m| match m {
                TransformMember::Statement(s) => Some(s.clone()),
                TransformMember::Setting(_) => None,
            })
            .collect();
        let mut exprs = ExprChecker::new(&mut self.diagnostics, declared_context);
        for statement in &statements {
            exprs.statement(statement);
        }
        let context = exprs.finish(decl.name.span);
        NodeKind::Transform(plan::TransformNode { context, error_mode, statements })
    }

    fn sample(&mut self, decl: &SampleDecl, span: Span) -> NodeKind {
        let settings: Vec<&Setting> = decl
            .members
            .iter()
            .filter_map(|m| match m {
                SampleMember::Setting(s) => Some(s),
                SampleMember::Rule(_) => None,
            })
            .collect();
        let checked = self.settings().check("a sample", span, &settings, schema::SAMPLE_SETTINGS);
        let mut rules = Vec::new();
        for member in &decl.members {
            let SampleMember::Rule(rule) = member else { continue };
            if let Some(rule) = self.sample_rule(rule) {
                rules.push(rule);
            }
        }
        if rules.is_empty() && checked.int("max_records_per_second").is_none() {
            self.diagnostics.push(
                Diagnostic::new(codes::MISSING_SETTING, decl.name.span, format!("sample `{}` has no rules", decl.name.name))
                    .label("keeps everything")
                    .help("add a rule: probabilistic 25% by attributes[\"db.query.id\"], keep 10% where ..., drop where ..., rate_limit 100 per 1m, dedup by ... for 10m, or max_records_per_second = N"),
            );
        }
        NodeKind::Sample(plan::SampleNode { settings: checked, rules })
    }

    fn sample_rule(&mut self, rule: &SampleRule) -> Option<plan::SampleRule> {
        let mut exprs = ExprChecker::new(&mut self.diagnostics, Some((Context::Any, rule.span)));
        match &rule.kind {
            SampleRuleKind::Probabilistic { rate, by } => {
                if let Some(by) = by {
                    exprs.path(by);
                }
                let percent = self.settings().percent("probabilistic", rate)?;
                Some(plan::SampleRule::Probabilistic { ratio: percent / 100.0, by: by.clone() })
            }
            SampleRuleKind::Keep { rate, by, condition } => {
                exprs.condition(condition);
                if let Some(by) = by {
                    exprs.path(by);
                }
                let ratio = match rate {
                    Some(rate) => Some(self.settings().percent("keep", rate)? / 100.0),
                    None => None,
                };
                Some(plan::SampleRule::Keep { condition: condition.clone(), ratio, by: by.clone() })
            }
            SampleRuleKind::Dedup { by, window } => {
                exprs.path(by);
                let window = match self.settings().value("for", schema::SettingType::Duration, window) {
                    Some(plan::Value::Duration(d)) => Some(d),
                    _ => None,
                };
                Some(plan::SampleRule::Dedup { by: by.clone(), window: window? })
            }
            SampleRuleKind::Drop(condition) => {
                exprs.condition(condition);
                Some(plan::SampleRule::Drop(condition.clone()))
            }
            SampleRuleKind::RateLimit { count, per, by, condition } => {
                if let Some(by) = by {
                    exprs.path(by);
                }
                if let Some(condition) = condition {
                    exprs.condition(condition);
                }
                let count = match &count.kind {
                    ExprKind::Int(n, _) if *n > 0 => Some(*n as u64),
                    _ => {
                        self.diagnostics.push(
                            Diagnostic::new(
                                codes::OUT_OF_RANGE,
                                count.span,
                                "rate_limit needs a whole number of records greater than zero",
                            )
                            .label("expected a count"),
                        );
                        None
                    }
                };
                let per = match self.settings().value("per", schema::SettingType::Duration, per) {
                    Some(plan::Value::Duration(d)) => Some(d),
                    _ => None,
                };
                Some(plan::SampleRule::RateLimit { count: count?, per: per?, by: by.clone(), condition: condition.clone() })
            }
        }
    }

    fn sink(&mut self, decl: &SinkDecl, span: Span) -> Option<NodeKind> {
        let Some(spec) = schema::sink_kind(&decl.kind.name) else {
            let known: Vec<&str> = schema::SINK_KINDS.iter().map(|k| k.name).collect();
            self.unknown_kind(&decl.kind, "sink", &known);
            return None;
        };
        let settings: Vec<&Setting> = decl.settings.iter().collect();
        let what = format!("a {} sink", spec.name);
        let settings = self.settings().check(&what, span, &settings, spec.settings);
        Some(NodeKind::Sink(plan::SinkNode { kind: spec.name.to_string(), settings }))
    }

    /// Wires one pipeline; returns its node names in order.
    fn pipeline(
        &mut self,
        pipeline: &PipelineDecl,
        declared: &IndexMap<String, &Item>,
        broken: &HashSet<&str>,
        nodes: &mut IndexMap<String, Node>,
        edges: &mut Vec<(Edge, Span)>,
        used: &mut HashSet<String>,
    ) -> Vec<String> {
        let mut names = Vec::new();
        let mut resolved: Vec<Option<(&NodeRef, &'static str)>> = Vec::new();
        let last = pipeline.nodes.len().saturating_sub(1);
        for (position, node_ref) in pipeline.nodes.iter().enumerate() {
            let name = node_ref.node.name.as_str();
            names.push(name.to_string());
            used.insert(name.to_string());
            if !declared.contains_key(name) && !nodes.contains_key(name) {
                if broken.contains(name) {
                    resolved.push(None);
                    continue;
                } else if BUILTIN_NODES.contains(&name) {
                    nodes.insert(name.to_string(), builtin_default(name, node_ref.node.span));
                } else {
                    let mut d =
                        Diagnostic::new(codes::UNDEFINED_NODE, node_ref.node.span, format!("no node named `{name}`")).label("undefined");
                    let candidates = declared.keys().map(String::as_str).chain(BUILTIN_NODES.iter().copied());
                    d = match did_you_mean(name, candidates) {
                        Some(s) => d.help(format!("did you mean `{s}`?")),
                        None => {
                            d.help("define it with source, transform, sample, sink, batch or memory_limit (or `use` the file that does)")
                        }
                    };
                    self.diagnostics.push(d);
                    resolved.push(None);
                    continue;
                }
            }
            let Some(node) = nodes.get(name) else {
                // declared but failed its own checks; already reported
                resolved.push(None);
                continue;
            };
            let role = match &node.kind {
                NodeKind::Source(_) => "source",
                NodeKind::Sink(_) => "sink",
                _ => "processor",
            };
            if let Some(port) = &node_ref.port {
                match &node.kind {
                    NodeKind::Source(source) if !source.collectors.contains_key(&port.name) => {
                        let known: Vec<&str> = source.collectors.keys().map(String::as_str).collect();
                        let mut d = Diagnostic::new(
                            codes::UNKNOWN_COLLECTOR,
                            port.span,
                            format!("source `{name}` does not collect `{}`", port.name),
                        )
                        .label("not collected by this source");
                        d = match did_you_mean(&port.name, known.iter().copied()) {
                            Some(s) => d.help(format!("did you mean `{name}.{s}`?")),
                            None => d.help(format!("it collects: {}", known.join(", "))),
                        };
                        self.diagnostics.push(d);
                    }
                    NodeKind::Source(_) => {}
                    _ => self.diagnostics.push(
                        Diagnostic::new(
                            codes::PORT_ON_NON_SOURCE,
                            port.span,
                            format!("only sources have collectors; `{name}` is a {}", node.kind.label()),
                        )
                        .label("remove this")
                        .help(format!("write just `{name}`")),
                    ),
                }
            }
            let misplaced = match (position, role) {
                (0, "source") => None,
                (0, _) => Some("a pipeline starts at a source"),
                (p, "sink") if p == last => None,
                (p, _) if p == last => Some("a pipeline ends at a sink"),
                (_, "source") => Some("a source can only start a pipeline"),
                (_, "sink") => Some("a sink can only end a pipeline"),
                _ => None,
            };
            if let Some(why) = misplaced {
                self.diagnostics.push(
                    Diagnostic::new(codes::BAD_PIPELINE_SHAPE, node_ref.span, format!("{why}; `{name}` is a {}", node.kind.label()))
                        .label("in the wrong place")
                        .help("pipelines read: source[.collector] -> processors... -> sink"),
                );
            }
            resolved.push(Some((node_ref, role)));
        }
        for pair in resolved.windows(2) {
            if let [Some((from, _)), Some((to, _))] = pair {
                let edge = Edge {
                    from: from.node.name.clone(),
                    port: from.port.as_ref().map(|p| p.name.clone()),
                    to: to.node.name.clone(),
                    signals: Signals::NONE,
                };
                edges.push((edge, to.span));
            }
        }
        names
    }

    /// Warns when a pipeline carries query text (statement events, raw
    /// activity samples) to a sink with no transform on the way that calls
    /// NormalizeSQL or RedactPII: utility statements and activity samples
    /// hold literals as written.
    fn check_query_text_is_sanitized(&mut self, pipeline: &PipelineDecl, nodes: &IndexMap<String, Node>) {
        let Some(first) = pipeline.nodes.first() else { return };
        let Some(NodeKind::Source(source)) = nodes.get(&first.node.name).map(|n| &n.kind) else { return };
        let log_source = schema::source_kind(&source.kind).is_some_and(|k| k.server_kind.is_some());
        if !matches!(source.kind.as_str(), "postgres" | "mysql") && !log_source {
            return;
        }
        // a log's messages, details, statements and plans are the most
        // PII-dense text there is; only autovacuum and checkpoint records
        // carry none
        let carries_text = |name: &str, collector: &Collector| {
            if log_source {
                return !matches!(name, "autovacuum" | "checkpoints");
            }
            name == "statements" || (name == "activity" && collector.settings.bool("samples_as_logs") == Some(true))
        };
        let texty: Vec<&String> = source
            .collectors
            .iter()
            .filter(|(name, c)| first.port.as_ref().is_none_or(|p| &p.name == *name) && carries_text(name, c))
            .map(|(name, _)| name)
            .collect();
        if texty.is_empty() {
            return;
        }
        let sanitizes = pipeline.nodes[1..].iter().any(|r| match nodes.get(&r.node.name).map(|n| &n.kind) {
            Some(NodeKind::Transform(t)) => t.statements.iter().any(|s| s.call.args.iter().any(|a| calls_sanitizer(&a.value))),
            _ => false,
        });
        if !sanitizes {
            let collectors: Vec<String> = texty.iter().map(|c| format!("{}.{c}", first.node.name)).collect();
            self.diagnostics.push(
                Diagnostic::new(
                    codes::UNSANITIZED_TEXT,
                    pipeline.name.span,
                    format!("{} carries query text, and nothing on pipeline `{}` sanitizes it", collectors.join(", "), pipeline.name.name),
                )
                .label(if log_source { "raw log text would reach the sink" } else { "raw SQL would reach the sink" })
                .help("add a transform that calls NormalizeSQL / RedactPII, e.g. `use \"sanitize_pii.pipe\"` and put sanitize_pii before the sink"),
            );
        }
    }

    /// Reports every cycle among processors. Returns true if there is none.
    fn check_cycles(&mut self, nodes: &IndexMap<String, Node>, edges: &[Edge], spans: &[Span]) -> bool {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let index: HashMap<&str, usize> = nodes.keys().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let mut adjacency: Vec<Vec<(usize, usize)>> = vec![Vec::new(); nodes.len()];
        for (e, edge) in edges.iter().enumerate() {
            if let (Some(&a), Some(&b)) = (index.get(edge.from.as_str()), index.get(edge.to.as_str())) {
                adjacency[a].push((b, e));
            }
        }
        let mut marks = vec![Mark::New; nodes.len()];
        let mut acyclic = true;
        // iterative DFS: a long chain of nodes must not overflow the stack
        for start in 0..nodes.len() {
            if marks[start] != Mark::New {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            marks[start] = Mark::Open;
            while let Some((node, next)) = stack.last_mut() {
                let node = *node;
                if let Some(&(child, edge)) = adjacency[node].get(*next) {
                    *next += 1;
                    match marks[child] {
                        Mark::New => {
                            marks[child] = Mark::Open;
                            stack.push((child, 0));
                        }
                        Mark::Open => {
                            acyclic = false;
                            let from = stack.iter().position(|(n, _)| *n == child).unwrap_or(0);
                            let mut cycle: Vec<&str> = stack[from..].iter().map(|(n, _)| nodes[*n].name.as_str()).collect();
                            cycle.push(nodes[child].name.as_str());
                            self.diagnostics.push(
                                Diagnostic::new(codes::CYCLE, spans[edge], format!("pipelines form a cycle: {}", cycle.join(" -> ")))
                                    .label("this edge closes the cycle")
                                    .help("records would loop forever; reorder the nodes so every pipeline flows one way"),
                            );
                        }
                        Mark::Done => {}
                    }
                } else {
                    marks[node] = Mark::Done;
                    stack.pop();
                }
            }
        }
        acyclic
    }

    /// Computes what flows on each edge, in topological order, and reports
    /// nodes that receive nothing they can handle.
    fn propagate_signals(&mut self, nodes: &mut IndexMap<String, Node>, edges: &mut [Edge], spans: &[Span]) {
        let mut indegree: HashMap<String, usize> = nodes.keys().map(|n| (n.clone(), 0)).collect();
        for edge in edges.iter() {
            *indegree.entry(edge.to.clone()).or_default() += 1;
        }
        let mut ready: Vec<String> = nodes.keys().filter(|n| indegree.get(*n) == Some(&0)).cloned().collect();
        while let Some(name) = ready.pop() {
            let Some(node) = nodes.get_mut(&name) else { continue };
            node.input = edges.iter().filter(|e| e.to == name).fold(Signals::NONE, |acc, e| acc.union(e.signals));
            node.output = match &node.kind {
                NodeKind::Source(source) => source.collectors.values().fold(Signals::NONE, |acc, c| acc.union(c.signals)),
                NodeKind::Sink(_) => Signals::NONE,
                _ => node.input,
            };
            if let NodeKind::Transform(t) = &node.kind {
                let incoming: Vec<usize> = edges.iter().enumerate().filter(|(_, e)| e.to == name).map(|(i, _)| i).collect();
                if !node.input.is_empty() && !node.input.intersects(t.context.signals()) {
                    let span = incoming.first().map(|&i| spans[i]).unwrap_or(node.span);
                    let handles = match t.context {
                        Context::Log => "logs",
                        _ => "data points",
                    };
                    self.diagnostics.push(
                        Diagnostic::new(
                            codes::SIGNAL_MISMATCH,
                            span,
                            format!("`{name}` only works on {handles}, but only {} reach it here", node.input),
                        )
                        .label(format!("carries {}", node.input))
                        .with_secondary(node.span, format!("`{name}` is defined here"))
                        .help("wire it after a collector that emits what it needs, or change its paths/context"),
                    );
                }
            }
            let (output, source_collectors) = match &node.kind {
                NodeKind::Source(s) => (node.output, Some(s.collectors.clone())),
                _ => (node.output, None),
            };
            for edge in edges.iter_mut().filter(|e| e.from == name) {
                edge.signals = match (&source_collectors, &edge.port) {
                    (Some(collectors), Some(port)) => collectors.get(port).map(|c| c.signals).unwrap_or(Signals::NONE),
                    _ => output,
                };
                if let Some(d) = indegree.get_mut(&edge.to) {
                    *d -= 1;
                    if *d == 0 {
                        ready.push(edge.to.clone());
                    }
                }
            }
        }
    }

    fn tests(&mut self, items: &[&Item], nodes: &IndexMap<String, Node>) -> Vec<plan::TestCase> {
        let mut tests = Vec::new();
        let mut names: HashMap<String, Span> = HashMap::new();
        for item in items {
            let ItemKind::Test(test) = &item.kind else { continue };
            if let Some(first) = names.get(&test.name.value) {
                self.diagnostics.push(
                    Diagnostic::new(codes::DUPLICATE_TEST, test.name.span, format!("test \"{}\" is defined twice", test.name.value))
                        .label("again here")
                        .with_secondary(*first, "first here"),
                );
                continue;
            }
            names.insert(test.name.value.clone(), test.name.span);
            let target = &test.input.node;
            let node_context = match nodes.get(&target.name).map(|n| &n.kind) {
                Some(NodeKind::Transform(t)) => Some(t.context),
                Some(NodeKind::Sample(_)) => Some(Context::Any),
                Some(other) => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            codes::TEST_TARGET,
                            target.span,
                            format!("tests run transforms and samples; `{}` is a {}", target.name, other.label()),
                        )
                        .label("cannot be tested"),
                    );
                    None
                }
                None => {
                    let mut d = Diagnostic::new(codes::TEST_TARGET, target.span, format!("no transform or sample named `{}`", target.name))
                        .label("undefined");
                    if let Some(s) = did_you_mean(&target.name, nodes.keys().map(String::as_str)) {
                        d = d.help(format!("did you mean `{s}`?"));
                    }
                    self.diagnostics.push(d);
                    None
                }
            };
            let signal = match test.input.signal.as_ref().map(|s| s.name.as_str()) {
                None | Some("log") => Context::Log,
                Some("metric") => Context::Datapoint,
                Some(other) => {
                    let span = test.input.signal.as_ref().map(|s| s.span).unwrap_or(test.input.span);
                    self.diagnostics.push(
                        Diagnostic::new(codes::TEST_TARGET, span, format!("`{other}` is not a record kind"))
                            .label("expected log or metric")
                            .help("write `input NODE log { ... }` or `input NODE metric { ... }`"),
                    );
                    Context::Log
                }
            };
            if let Some(Context::Log | Context::Datapoint) = node_context {
                if node_context != Some(signal) {
                    self.diagnostics.push(
                        Diagnostic::new(
                            codes::SIGNAL_MISMATCH,
                            test.input.span,
                            format!(
                                "`{}` works on {} but the test feeds it a {}",
                                target.name,
                                describe_context(node_context),
                                describe_context(Some(signal))
                            ),
                        )
                        .label("wrong record kind"),
                    );
                }
            }
            let mut exprs = ExprChecker::new(&mut self.diagnostics, Some((signal, test.input.span)));
            for assignment in &test.input.assignments {
                exprs.path(&assignment.path);
                exprs.expr(&assignment.value);
            }
            if let TestExpect::Conditions(conditions, _) = &test.expect {
                for condition in conditions {
                    exprs.condition(condition);
                }
            }
            tests.push(plan::TestCase {
                name: test.name.value.clone(),
                node: target.name.clone(),
                signal,
                input: test.input.assignments.clone(),
                expect: test.expect.clone(),
                span: item.span,
            });
        }
        tests
    }
}

fn describe_context(context: Option<Context>) -> &'static str {
    match context {
        Some(Context::Log) => "log",
        Some(Context::Datapoint) => "metric",
        _ => "any record",
    }
}

fn builtin_default(name: &str, span: Span) -> Node {
    let kind = if name == "batch" {
        NodeKind::Batch(defaults(schema::BATCH_SETTINGS))
    } else {
        NodeKind::MemoryLimit(defaults(schema::MEMORY_LIMIT_SETTINGS))
    };
    Node { name: name.to_string(), kind, span, input: Signals::NONE, output: Signals::NONE }
}

fn defaults(specs: &[schema::SettingSpec]) -> plan::Settings {
    let mut none = Vec::new();
    let never_set = |_: &str| true;
    SettingsChecker { diagnostics: &mut none, env_is_set: &never_set, env_policy: EnvPolicy::Warn }.check("", Span::default(), &[], specs)
}

/// Whether an expression calls NormalizeSQL, RedactPII or RedactLogMessage
/// anywhere in it.
fn calls_sanitizer(expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Call(c) => {
            matches!(c.name.name.as_str(), "NormalizeSQL" | "RedactPII" | "RedactLogMessage")
                || c.args.iter().any(|a| calls_sanitizer(&a.value))
        }
        ExprKind::List(items) => items.iter().any(calls_sanitizer),
        ExprKind::Map(entries) => entries.iter().any(|e| calls_sanitizer(&e.value)),
        ExprKind::Not(e) | ExprKind::Neg(e) | ExprKind::Paren(e) => calls_sanitizer(e),
        ExprKind::Binary { lhs, rhs, .. } => calls_sanitizer(lhs) || calls_sanitizer(rhs),
        _ => false,
    }
}
