//! Runs a [`Plan`]: one tokio task per node, joined by bounded channels.
//!
//! Shutdown follows the drop-to-finish pattern: when a source is done it
//! drops its senders; a node whose every upstream has finished sees its
//! channel close, flushes what it holds (`Operator::finish`), passes it on
//! and drops its own senders, and so on down to the sinks, which flush and
//! close. `run` returns when the last sink has closed, so nothing accepted
//! is lost on the way out.
//!
//! Channels are bounded ([`CHANNEL_BATCHES`]): a slow sink fills them, and
//! the pressure reaches the sources, which skip scrapes (live) or wait
//! (replay) rather than piling batches up in memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use dbintel_dsl::plan::{NodeKind, Plan};
use tokio::sync::mpsc;

use dbintel_core::budget::Budget;
use dbintel_core::counters::{NodeCounters, Registry};
use dbintel_core::record::Batch;
use dbintel_core::routing::{SharedOutput, SourceOutput};
use dbintel_core::sink::Sink;
use dbintel_operators::batch::Batcher;
use dbintel_operators::memory_limit::MemoryLimit;
use dbintel_operators::ottl::CompileError;
use dbintel_operators::sample::Sample;
use dbintel_operators::transform::Transform;
use dbintel_operators::Operator;
use dbintel_sources::replay::{Replay, ReplayError};
use dbintel_sources::supervisor::LiveOptions;

/// The log sources' crate (its counters are read by `/metrics`).
pub use dbintel_logs as logs;

/// Batches a channel holds before its sender waits.
pub const CHANNEL_BATCHES: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("node `{node}`: {error}")]
    Compile { node: String, error: CompileError },
    #[error("no sink given for `{0}`")]
    MissingSink(String),
    #[error("no node named `{0}` to tap")]
    UnknownTap(String),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Source(#[from] dbintel_sources::SourceError),
    #[error(transparent)]
    Logs(#[from] dbintel_logs::source::LogSourceError),
    #[error("a node task panicked: {0}")]
    Panicked(String),
    #[error("sink `{node}`: {error}")]
    Sink { node: String, error: dbintel_core::sink::SinkError },
}

/// Where a node's output goes: the next node of each pipeline through it,
/// and a tap if one is set.
#[derive(Clone, Default)]
struct Routes {
    next: HashMap<usize, mpsc::Sender<Batch>>,
    tap: Option<mpsc::Sender<Batch>>,
}

async fn deliver(routes: &Routes, batches: Vec<Batch>) {
    for batch in batches {
        if let Some(tap) = &routes.tap {
            let _ = tap.send(batch.clone()).await;
        }
        if let Some(next) = routes.next.get(&batch.route) {
            let _ = next.send(batch).await;
        }
    }
}

/// What to run the plan with.
#[derive(Default)]
pub struct Setup {
    /// Recorded rows per source, by collector.
    pub replays: HashMap<String, Vec<(String, std::path::PathBuf)>>,
    /// A sink implementation for every sink node.
    pub sinks: HashMap<String, Box<dyn Sink>>,
    /// Print this node's output to `tap_sink` instead of the real sinks.
    pub tap: Option<(String, Box<dyn Sink>)>,
    /// Sources without a replay connect to their databases when set
    /// ([`run`] only; with [`start`] the caller spawns them).
    pub live: Option<LiveOptions>,
    /// Where recorded-row sources report themselves connected.
    pub status: Option<Arc<dbintel_core::status::StatusBoard>>,
    /// Counters to add to (a reloaded plan keeps counting); new ones when
    /// not given.
    pub registry: Option<Registry>,
}

/// The result of a run.
pub struct Finished {
    pub counters: Registry,
    pub budgets: Vec<Arc<Budget>>,
}

/// The operator for a processing node; memory limits also hand back their
/// budget, which sources watch for pressure.
fn operator(
    name: &str,
    kind: &NodeKind,
    budgets: &mut HashMap<String, Arc<Budget>>,
    registry: &mut Registry,
) -> Result<Option<Box<dyn Operator>>, RunError> {
    let compile = |error| RunError::Compile { node: name.to_string(), error };
    Ok(Some(match kind {
        NodeKind::Transform(t) => Box::new(Transform::new(name, t).map_err(compile)?),
        NodeKind::Sample(s) => Box::new(Sample::named(name, s).map_err(compile)?.with_stats(registry.sampler(name))),
        NodeKind::Batch(settings) => Box::new(Batcher::new(settings)),
        NodeKind::MemoryLimit(settings) => {
            let limit = MemoryLimit::new(settings);
            budgets.insert(name.to_string(), limit.budget());
            Box::new(limit)
        }
        NodeKind::Source(_) | NodeKind::Sink(_) => return Ok(None),
    }))
}

/// A plan's operators and sinks (and recorded-row sources), running; its
/// live sources attach through [`Graph::outputs`]. The graph ends when
/// every output is dropped and what was in flight has drained into the
/// sinks: [`Graph::finish`] waits for that.
pub struct Graph {
    /// Per live source node: where its batches go in this graph.
    pub outputs: HashMap<String, SourceOutput>,
    tasks: tokio::task::JoinSet<Result<(), RunError>>,
    registry: Registry,
    budgets: Vec<Arc<Budget>>,
}

impl Graph {
    /// Spawns a live source of this graph's plan into it (dry-run, tests).
    pub fn spawn_source(&mut self, name: &str, source: &dbintel_dsl::plan::SourceNode, options: LiveOptions) {
        let counters = self.registry.register(name, "source");
        let output = SharedOutput::new(self.outputs.get(name).cloned().unwrap_or_default());
        let (node, source) = (name.to_string(), source.clone());
        self.tasks.spawn(run_live_source(node, source, output, counters, options, None));
    }

    /// The counters this graph adds to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Drops the outputs (live sources hold their own) and waits until
    /// everything has drained into the sinks and they have closed.
    pub async fn finish(mut self) -> Result<Finished, RunError> {
        self.outputs.clear();
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => tracing::error!(error = %e, "a node task panicked"),
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(Finished { counters: self.registry, budgets: self.budgets }),
        }
    }
}

/// Runs one live source until it stops: a database source's targets
/// (`dbintel-sources`), or a log source's files (`dbintel-logs`). `updates`
/// brings the source's new definition on a reload.
pub async fn run_live_source(
    name: String,
    node: dbintel_dsl::plan::SourceNode,
    output: SharedOutput,
    counters: Arc<dbintel_core::counters::NodeCounters>,
    options: LiveOptions,
    updates: Option<tokio::sync::watch::Receiver<dbintel_dsl::plan::SourceNode>>,
) -> Result<(), RunError> {
    if dbintel_logs::is_log_kind(&node.kind) {
        return dbintel_logs::run_log_source(name, node, output, counters, options, updates).await.map_err(RunError::from);
    }
    dbintel_sources::fleet::run_source(name, node, output, counters, options, updates).await.map_err(RunError::from)
}

/// Runs a whole plan, live sources included (with `setup.live`), to its end.
pub async fn run(plan: &Plan, mut setup: Setup) -> Result<Finished, RunError> {
    let live = setup.live.take();
    let mut graph = start(plan, setup)?;
    if let Some(options) = live {
        for (name, node) in &plan.nodes {
            if let NodeKind::Source(source) = &node.kind {
                if graph.outputs.contains_key(name) {
                    graph.spawn_source(name, source, options.clone());
                }
            }
        }
    }
    graph.finish().await
}

/// Starts a plan's graph: operators, sinks, a tap, and the sources that
/// replay recorded rows. Live sources are left to the caller (they may
/// outlive the graph: `dbintel run` keeps them across a reload).
pub fn start(plan: &Plan, mut setup: Setup) -> Result<Graph, RunError> {
    let mut registry = setup.registry.take().unwrap_or_default();
    let mut senders: HashMap<String, mpsc::Sender<Batch>> = HashMap::new();
    let mut receivers: HashMap<String, mpsc::Receiver<Batch>> = HashMap::new();
    for (name, node) in &plan.nodes {
        if !matches!(node.kind, NodeKind::Source(_)) {
            let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
            senders.insert(name.clone(), tx);
            receivers.insert(name.clone(), rx);
        }
    }
    let mut routes: HashMap<String, Routes> = HashMap::new();
    let mut source_outputs: HashMap<String, SourceOutput> = HashMap::new();
    for (index, path) in plan.pipelines.values().enumerate() {
        let Some(first) = path.nodes.first() else { continue };
        if let Some(next) = path.nodes.get(1).and_then(|n| senders.get(n)) {
            let output = source_outputs.entry(first.clone()).or_default();
            output.routes.push((index, path.collector.clone(), next.clone()));
            output.paths.push((path.collector.clone(), path.nodes[1..].to_vec()));
        }
        for pair in path.nodes.windows(2).skip(1) {
            if let Some(next) = senders.get(&pair[1]) {
                routes.entry(pair[0].clone()).or_default().next.insert(index, next.clone());
            }
        }
    }

    // A tap: the node's output goes to the tap sink too, and the real sinks
    // are swapped for ones that discard. A tapped sink's output is what it
    // would send: its input.
    let mut tasks = tokio::task::JoinSet::new();
    if let Some((tapped, tap_sink)) = setup.tap.take() {
        let Some(node) = plan.nodes.get(&tapped) else {
            return Err(RunError::UnknownTap(tapped));
        };
        for (name, node) in &plan.nodes {
            if matches!(node.kind, NodeKind::Sink(_)) {
                setup.sinks.insert(name.clone(), Box::new(Discard));
            }
        }
        match node.kind {
            NodeKind::Sink(_) => {
                setup.sinks.insert(tapped, tap_sink);
            }
            _ => {
                let counters = registry.register("(tap)", "sink");
                let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
                match node.kind {
                    NodeKind::Source(_) => source_outputs.entry(tapped).or_default().tap = Some(tx),
                    _ => routes.entry(tapped).or_default().tap = Some(tx),
                }
                tasks.spawn(sink_task("(tap)".into(), tap_sink, rx, counters));
            }
        }
    }

    // Operators and sinks first: sources need the memory budgets that lie
    // downstream of them.
    let mut budgets: HashMap<String, Arc<Budget>> = HashMap::new();
    for (name, node) in &plan.nodes {
        let counters = registry.register(name, node.kind.label());
        match &node.kind {
            NodeKind::Source(_) => {}
            NodeKind::Sink(_) => {
                let sink = setup.sinks.remove(name).ok_or_else(|| RunError::MissingSink(name.clone()))?;
                let rx = receivers.remove(name).expect("every sink has a channel");
                tasks.spawn(sink_task(name.clone(), sink, rx, counters));
            }
            kind => {
                let Some(op) = operator(name, kind, &mut budgets, &mut registry)? else { continue };
                let rx = receivers.remove(name).expect("every processor has a channel");
                let outputs = routes.remove(name).unwrap_or_default();
                tasks.spawn(processor_task(op, rx, outputs, counters));
            }
        }
    }
    let mut live_outputs = HashMap::new();
    for (name, node) in &plan.nodes {
        let NodeKind::Source(source) = &node.kind else { continue };
        let counters = registry.register(name, node.kind.label());
        let mut output = source_outputs.remove(name).unwrap_or_default();
        output.budgets = plan
            .pipelines
            .values()
            .filter(|p| p.nodes.first() == Some(name))
            .flat_map(|p| p.nodes.iter().filter_map(|n| budgets.get(n).cloned()))
            .collect();
        let replays = setup.replays.remove(name).unwrap_or_default();
        if replays.is_empty() {
            live_outputs.insert(name.clone(), output);
            continue;
        }
        // recorded rows are always "connected"
        if let Some(status) = &setup.status {
            status.target(name, name).connected();
        }
        if dbintel_logs::is_log_kind(&source.kind) {
            // a log file: read once, for the collectors named for it
            let mut by_file: Vec<(std::path::PathBuf, Vec<String>)> = Vec::new();
            for (collector, path) in replays {
                match by_file.iter_mut().find(|(p, _)| *p == path) {
                    Some((_, collectors)) => collectors.push(collector),
                    None => by_file.push((path, vec![collector])),
                }
            }
            for (path, collectors) in by_file {
                let (output, counters, name, node) = (output.clone(), counters.clone(), name.clone(), source.clone());
                tasks.spawn(async move {
                    let read = move || dbintel_logs::replay::replay_file(&name, &node, &collectors, &path, &output, &counters);
                    match tokio::task::spawn_blocking(read).await {
                        Ok(result) => result.map_err(RunError::from),
                        Err(join) => Err(RunError::Panicked(join.to_string())),
                    }
                });
            }
            continue;
        }
        for (collector, path) in replays {
            let Some(spec) = source.collectors.get(&collector) else { continue };
            let replay = Replay::new(name, source, &collector, spec, path)?;
            let output = output.clone();
            let counters = counters.clone();
            tasks.spawn(async move {
                match tokio::task::spawn_blocking(move || replay.run(&output, &counters)).await {
                    Ok(result) => result.map_err(RunError::Replay),
                    Err(join) => Err(RunError::Panicked(join.to_string())),
                }
            });
        }
    }
    // Only the tasks (and the live outputs) hold senders now: channels
    // close as upstreams finish.
    drop(senders);
    drop(routes);
    drop(source_outputs);
    Ok(Graph { outputs: live_outputs, tasks, registry, budgets: budgets.into_values().collect() })
}

async fn processor_task(
    mut op: Box<dyn Operator>,
    mut rx: mpsc::Receiver<Batch>,
    outputs: Routes,
    counters: Arc<NodeCounters>,
) -> Result<(), RunError> {
    let mut ticker = op.tick_every().map(tokio::time::interval);
    let mut out = Vec::new();
    loop {
        let next = match ticker.as_mut() {
            Some(ticker) => tokio::select! {
                batch = rx.recv() => batch.map(Some),
                _ = ticker.tick() => Some(None),
            },
            None => rx.recv().await.map(Some),
        };
        match next {
            Some(Some(batch)) => op.process(batch, &mut out, &counters).await,
            Some(None) => op.tick(Instant::now(), &mut out),
            None => {
                op.finish(&mut out);
                deliver(&outputs, std::mem::take(&mut out)).await;
                return Ok(());
            }
        }
        if !out.is_empty() {
            deliver(&outputs, std::mem::take(&mut out)).await;
        }
    }
}

/// Pauses between offers of a batch a sink did not take.
const SINK_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
const SINK_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Feeds a sink. A batch the sink hands back (it took none of it) is
/// offered again with capped exponential backoff until it is taken: the
/// wait holds the pipeline back (sources skip scrapes and count them)
/// instead of losing what was accepted upstream. A batch the sink lost is
/// counted as dropped. Either way the task goes on; only the end of its
/// input ends it. Every failure is counted; a run of them is logged when
/// it starts and when it ends.
async fn sink_task(
    name: String,
    mut sink: Box<dyn Sink>,
    mut rx: mpsc::Receiver<Batch>,
    counters: Arc<NodeCounters>,
) -> Result<(), RunError> {
    while let Some(batch) = rx.recv().await {
        let n = batch.len();
        NodeCounters::add(&counters.received, n);
        let mut offer = Some(batch);
        let mut delay = SINK_RETRY_FIRST;
        let mut failures = 0u64;
        while let Some(batch) = offer.take() {
            match sink.consume(batch).await {
                Ok(()) => {
                    NodeCounters::add(&counters.emitted, n);
                    if failures > 0 {
                        tracing::info!(sink = %name, attempts = failures + 1, "the sink took the batch after failing");
                    }
                }
                Err(failure) => {
                    NodeCounters::add(&counters.errors, 1);
                    failures += 1;
                    match failure.batch {
                        Some(back) => {
                            if failures == 1 {
                                tracing::error!(sink = %name, error = %failure.error, records = n, "the sink failed; offering the batch again with backoff");
                            }
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(SINK_RETRY_MAX);
                            offer = Some(back);
                        }
                        None => {
                            NodeCounters::add(&counters.dropped, n);
                            tracing::error!(sink = %name, error = %failure.error, records = n, "the sink lost a batch (counted as dropped)");
                        }
                    }
                }
            }
        }
    }
    sink.close().await.map_err(|error| RunError::Sink { node: name, error })
}

/// A sink that accepts and forgets (what real sinks become under `--tap`).
pub struct Discard;

impl Sink for Discard {
    fn consume(&mut self, _batch: Batch) -> dbintel_core::BoxFuture<'_, Result<(), dbintel_core::sink::SinkFailure>> {
        Box::pin(async { Ok(()) })
    }
    fn close(&mut self) -> dbintel_core::BoxFuture<'_, Result<(), dbintel_core::sink::SinkError>> {
        Box::pin(async { Ok(()) })
    }
}
