//! `dbintel run`: the long-running service.
//!
//! One control loop owns the running plan. It starts the plan, and
//! reloads it on SIGHUP, on `POST /reload` and when a file the plan was
//! compiled from changes ([`watch`]: the `.pipe` files, those they `use`,
//! targets files). A reload compiles
//! first: a file with errors leaves the running plan as it is and the
//! diagnostics go back to whoever asked. A good plan replaces the old one
//! with nothing lost: the old plan's sources stop, everything in flight
//! drains through its operators into the sinks, and the export queues
//! (kept across the reload when the sink is unchanged) carry on.
//!
//! SIGTERM or SIGINT: stop the sources, drain, flush the export queues
//! until the shutdown deadline; a disk queue keeps what is left.

pub mod http;
pub mod metrics;
pub mod status;
pub mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dbintel_core::fence::Fences;
use dbintel_core::routing::{SharedOutput, SourceOutput};
use dbintel_dsl::plan::{NodeKind, Plan, SinkNode, SourceNode};
use dbintel_dsl::schema::{FileSinkSettings, StdoutFormat, StdoutSinkSettings};
use dbintel_dsl::EnvPolicy;
use tokio::sync::{mpsc, oneshot};

use dbintel_core::counters::Registry;
use dbintel_core::sink::Sink;
use dbintel_core::status::StatusBoard;
use dbintel_export::config::{ExportConfig, ProcessEnv, QueueKind};
use dbintel_export::stdout::{shared_stdout, Format, StdoutSink};
use dbintel_export::Exporter;
use dbintel_runtime::{Finished, RunError, Setup};
use dbintel_sources::supervisor::LiveOptions;

pub struct Options {
    pub paths: Vec<PathBuf>,
    pub listen: std::net::SocketAddr,
    /// Where `/status` and `POST /reload` are served instead of `listen`.
    pub admin_listen: Option<std::net::SocketAddr>,
    pub shutdown_timeout: Duration,
    /// Poll the files this often for changes; `None`: do not watch.
    pub watch: Option<Duration>,
    /// Recorded rows instead of databases, per source (as in dry-run).
    pub replays: HashMap<String, Vec<(String, PathBuf)>>,
    /// What the HTTP port accepts, and who may POST /reload.
    pub http: http::Limits,
}

pub enum ReloadReply {
    Applied(String),
    Unchanged,
    Refused(String),
    ShuttingDown,
}

/// What the HTTP side and the control loop share.
pub struct Shared {
    pub registry: Mutex<Registry>,
    pub exporters: Mutex<std::collections::BTreeMap<String, Arc<Exporter>>>,
    pub ready: AtomicBool,
    /// What every target and collector is doing (kept across reloads).
    pub status: Arc<StatusBoard>,
    pub reloads_applied: AtomicU64,
    pub reloads_refused: AtomicU64,
    /// The election this replica takes part in (mode, identity, status).
    pub cluster: Mutex<Option<(dbintel_cluster::Mode, String, Arc<dbintel_cluster::Status>)>>,
    /// The latest setup checks of each connected target (`dbintel
    /// doctor`'s, run on the target's own session when it connects and
    /// every `checks_every`): `/status` shows them under `checks`.
    pub checks: Arc<dbintel_doctor::ChecksBoard>,
    heartbeat: AtomicU64,
    started: Instant,
    reload_tx: mpsc::Sender<oneshot::Sender<ReloadReply>>,
}

impl Shared {
    fn beat(&self) {
        self.heartbeat.store(self.started.elapsed().as_secs(), Relaxed);
    }
    /// A plan runs, the replica knows its role, and every source it runs
    /// has connected at least once since the plan started (a later outage
    /// shows in /status and /metrics, not here: it must not flap the pod).
    pub fn is_ready(&self) -> bool {
        self.not_ready().is_empty()
    }

    /// Why the replica is not ready, one reason per line; empty when it is.
    pub fn not_ready(&self) -> Vec<String> {
        if !self.ready.load(Relaxed) {
            return vec!["no plan is running".into()];
        }
        let known = self.cluster.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_none_or(|(_, _, s)| s.known.load(Relaxed));
        if !known {
            return vec!["the cluster role is not known yet".into()];
        }
        let mut reasons = self.status.unsettled();
        let exporters: Vec<_> = self.exporters.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        reasons.extend(exporters.iter().filter_map(|e| e.status().stalled));
        reasons
    }

    /// The control loop has ticked in the last 30 seconds.
    pub fn healthy(&self) -> bool {
        self.started.elapsed().as_secs().saturating_sub(self.heartbeat.load(Relaxed)) < 30
    }
}

/// Asks the control loop to reload and waits for the result.
pub async fn request_reload(shared: &Shared) -> ReloadReply {
    let (tx, rx) = oneshot::channel();
    if shared.reload_tx.send(tx).await.is_err() {
        return ReloadReply::ShuttingDown;
    }
    rx.await.unwrap_or(ReloadReply::ShuttingDown)
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: std::net::SocketAddr, error: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot start: {0}")]
    Start(String),
}

/// A plan's graph (operators, sinks), running until its inputs close and
/// it has drained.
struct Running {
    plan: Plan,
    graph: tokio::task::JoinHandle<Result<Finished, RunError>>,
}

/// A live source. It outlives plans: a reload that keeps its definition
/// (and the election) keeps it running — connection, delta baselines,
/// activity window — and only points its output at the new graph.
struct LiveSource {
    node: SourceNode,
    output: SharedOutput,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// A reload's new definition of the source (its targets).
    update: tokio::sync::watch::Sender<SourceNode>,
}

impl LiveSource {
    /// Tells it to stop (it flushes what it holds) and waits for it.
    async fn stop(self, name: &str, deadline: Instant) {
        self.stop.send_replace(true);
        let wait = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        if tokio::time::timeout(wait, self.task).await.is_err() {
            tracing::warn!(source = name, "the source did not stop by the deadline");
        }
    }
}

/// Compiles for running: every `env(...)` must be set. The error is the
/// rendered diagnostics. Either way, what the compile read (to watch).
fn compile(paths: &[PathBuf]) -> (Result<Plan, String>, crate::fs_host::Reads) {
    let files = match crate::fs_host::expand(paths) {
        Ok(files) => files,
        Err(e) => return (Err(format!("error: {e}\n")), Default::default()),
    };
    let host = crate::fs_host::RecordingHost::default();
    let compilation = dbintel_dsl::compile(&files, &host, EnvPolicy::Require);
    let warnings: Vec<_> = compilation.diagnostics.iter().filter(|d| !d.is_error()).collect();
    for w in &warnings {
        tracing::warn!(code = w.code.id, message = %w.message, "pipeline warning");
    }
    let result = match compilation.plan {
        Some(plan) => Ok(plan),
        None => Err(format!(
            "{}invalid: {}\n",
            crate::report::plain(&compilation.sources, &compilation.diagnostics),
            crate::report::summary(&compilation.diagnostics)
        )),
    };
    (result, host.reads())
}

fn export_sink(node: &NodeKind) -> Option<&SinkNode> {
    match node {
        NodeKind::Sink(s) if s.kind == "otlp" || s.kind == "newrelic" => Some(s),
        _ => None,
    }
}

struct Daemon {
    options: Options,
    shared: Arc<Shared>,
    stdout: dbintel_export::stdout::SharedWriter,
    running: Option<Running>,
    sources: HashMap<String, LiveSource>,
    coordinator: Option<dbintel_cluster::Coordinator>,
    /// Every file the plan was compiled from, polled for changes.
    watch: watch::Watch,
    /// Prunes per-target series when their targets go.
    janitor: metrics::SeriesJanitor,
}

impl Daemon {
    /// Checks what compiling cannot: every exporter's configuration
    /// resolves (environment, files), file sinks can be opened.
    fn preflight(&self, plan: &Plan) -> Result<(), String> {
        let exporters = self.shared.exporters.lock().unwrap_or_else(|p| p.into_inner());
        for (name, node) in &plan.nodes {
            if let Some(sink) = export_sink(&node.kind) {
                if exporters.get(name).is_some_and(|e| &e.declared == sink) {
                    continue;
                }
                let config = ExportConfig::resolve(sink, &ProcessEnv).map_err(|e| format!("sink `{name}`: {e}"))?;
                dbintel_export::transport::Transport::new(&config).map_err(|e| format!("sink `{name}`: {e}"))?;
                if let QueueKind::Disk(dir) = &config.queue {
                    std::fs::create_dir_all(dir).map_err(|e| format!("sink `{name}`: queue directory `{}`: {e}", dir.display()))?;
                }
            }
            if let NodeKind::Sink(s) = &node.kind {
                if s.kind == "file" {
                    let path = FileSinkSettings::from_settings(&s.settings).path;
                    let path = path.as_str();
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|e| format!("sink `{name}`: cannot open `{path}`: {e}"))?;
                }
            }
        }
        Ok(())
    }

    /// Exporters the new plan does not keep, taken out of the shared map
    /// (the new plan's sinks get new ones).
    fn take_retired_exporters(&self, plan: &Plan) -> Vec<Arc<Exporter>> {
        let mut exporters = self.shared.exporters.lock().unwrap_or_else(|p| p.into_inner());
        let names: Vec<String> = exporters
            .iter()
            .filter(|(name, e)| plan.node(name).and_then(|n| export_sink(&n.kind)) != Some(&e.declared))
            .map(|(name, _)| name.clone())
            .collect();
        names.iter().filter_map(|n| exporters.remove(n)).collect()
    }

    /// Retired exporters: a disk queue is closed now (its records stay on
    /// disk, for a sink that opens the directory again); a memory queue
    /// keeps delivering in the background until its give-up time.
    async fn retire(exporters: Vec<Arc<Exporter>>) {
        for exporter in exporters {
            if exporter.queue.is_disk() {
                exporter.shutdown(Instant::now()).await;
            } else {
                let deadline = Instant::now() + exporter.config.retry.elapsed;
                tokio::spawn(async move { exporter.shutdown(deadline).await });
            }
        }
    }

    fn sinks(&self, plan: &Plan) -> Result<HashMap<String, Box<dyn Sink>>, String> {
        let mut sinks: HashMap<String, Box<dyn Sink>> = HashMap::new();
        let mut exporters = self.shared.exporters.lock().unwrap_or_else(|p| p.into_inner());
        for (name, node) in &plan.nodes {
            let NodeKind::Sink(sink) = &node.kind else { continue };
            let made: Box<dyn Sink> = match sink.kind.as_str() {
                "otlp" | "newrelic" => {
                    let exporter = match exporters.get(name) {
                        Some(e) if &e.declared == sink => e.clone(),
                        _ => {
                            let e = Exporter::start(name, sink).map_err(|e| e.to_string())?;
                            exporters.insert(name.clone(), e.clone());
                            e
                        }
                    };
                    exporter.sink()
                }
                "file" => {
                    let path = FileSinkSettings::from_settings(&sink.settings).path;
                    let path = path.as_str();
                    Box::new(StdoutSink::file(std::path::Path::new(path)).map_err(|e| format!("sink `{name}`: `{path}`: {e}"))?)
                }
                _ => {
                    let format = match StdoutSinkSettings::from_settings(&sink.settings).format {
                        StdoutFormat::OtlpJson => Format::OtlpJson,
                        StdoutFormat::Pretty => Format::Pretty,
                        StdoutFormat::Table => Format::Table,
                    };
                    Box::new(StdoutSink::new(format, self.stdout.clone()).flushing())
                }
            };
            sinks.insert(name.clone(), made);
        }
        Ok(sinks)
    }

    /// Keeps the election if the plan's `cluster` block and sources are
    /// unchanged; otherwise leaves the old one (releasing its leases) and
    /// joins anew.
    async fn elect(&mut self, plan: &Plan) -> Result<(), String> {
        let key = dbintel_cluster::Key::of(plan);
        if let Some(c) = self.coordinator.as_mut().filter(|c| c.key.keeps(&key)) {
            c.update(key);
            return Ok(());
        }
        if let Some(old) = self.coordinator.take() {
            old.shutdown().await;
        }
        let coordinator = dbintel_cluster::Coordinator::for_plan(plan).await?;
        *self.shared.cluster.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((coordinator.key.mode, coordinator.identity.clone(), coordinator.status.clone()));
        self.coordinator = Some(coordinator);
        Ok(())
    }

    /// Starts `plan` next to the running one (if any) and moves the live
    /// sources over: a source whose definition and election are unchanged
    /// keeps running and is pointed at the new graph; the others stop
    /// (flushing into the old graph) and start anew. Returns the old
    /// running graph, which drains once nothing feeds it.
    async fn start(&mut self, plan: Plan, previous: Option<&Plan>) -> Result<Option<Running>, String> {
        let key = dbintel_cluster::Key::of(&plan);
        let election_kept = self.coordinator.as_ref().is_some_and(|c| c.key.keeps(&key));
        if !election_kept {
            // fences change with the election: every source restarts, and
            // must stop acting before the old leases are released
            self.stop_sources(|_, _| true, Instant::now() + self.options.shutdown_timeout).await;
        }
        self.elect(&plan).await?;
        let fences = self.coordinator.as_ref().filter(|c| c.key.mode != dbintel_cluster::Mode::None).map(|c| c.fences());
        let sinks = self.sinks(&plan)?;
        let registry = {
            let mut registry = self.shared.registry.lock().unwrap_or_else(|p| p.into_inner());
            for (name, node) in &plan.nodes {
                registry.register(name, node.kind.label());
                // the graph gets a copy: a sampler's counters must exist
                // here first, or /metrics would never see them
                if let NodeKind::Sample(sample) = &node.kind {
                    if dbintel_dsl::schema::SampleSettings::from_settings(&sample.settings).state.is_some() {
                        registry.sampler(name);
                    }
                }
            }
            registry.clone()
        };
        // targets that left the plan leave the board; sources whose
        // definition changed must connect again before the replica is ready
        let sources: HashMap<&String, &SourceNode> = plan
            .nodes
            .iter()
            .filter_map(|(k, n)| match &n.kind {
                NodeKind::Source(s) => Some((k, s)),
                _ => None,
            })
            .collect();
        // (a discovered database `parent/db` stays with its parent)
        let in_plan = |source: &str, target: &str| {
            sources.get(&source.to_string()).is_some_and(|node| {
                node.targets
                    .iter()
                    .any(|t| t.name == target || target.strip_prefix(t.name.as_str()).is_some_and(|rest| rest.starts_with('/')))
            })
        };
        self.shared.status.retain(in_plan);
        self.shared.checks.retain(in_plan);
        // the servers whose logs a log source reads get their log settings checked
        self.shared
            .checks
            .set_options(dbintel_doctor::Options { logged_sources: dbintel_doctor::logged_sources(&plan), ..Default::default() });
        for (name, node) in &sources {
            let before = previous.and_then(|p| p.node(name)).and_then(|n| match &n.kind {
                NodeKind::Source(s) => Some(s),
                _ => None,
            });
            for target in &node.targets {
                let unchanged = before.is_some_and(|old| {
                    old.kind == node.kind && old.collectors == node.collectors && old.targets.iter().any(|t| t == target)
                });
                if !unchanged {
                    self.shared.status.target(name, &target.name).restart();
                }
            }
        }
        let setup = Setup {
            replays: self.options.replays.clone(),
            sinks,
            tap: None,
            live: None,
            registry: Some(registry),
            status: Some(self.shared.status.clone()),
        };
        let mut graph = dbintel_runtime::start(&plan, setup).map_err(|e| e.to_string())?;

        // sources the new plan drops (or turns into recorded rows) stop
        // first: they flush into the old graph, which is still running
        let live_in_new: Vec<String> = graph.outputs.keys().cloned().collect();
        self.stop_sources(|name, _| !live_in_new.iter().any(|n| n == name), Instant::now() + self.options.shutdown_timeout).await;
        for (name, source) in &sources {
            let Some(output) = graph.outputs.remove(*name) else { continue };
            match self.sources.get_mut(*name) {
                Some(live) if !live.task.is_finished() => {
                    // kept: from now on it sends to the new graph (what it
                    // sent before drains through the old one); its targets
                    // whose definition is unchanged keep running
                    drop(live.output.replace(output));
                    if live.node != **source {
                        live.node = (*source).clone();
                        live.update.send_replace((*source).clone());
                    }
                }
                _ => {
                    let live = self.spawn_source(name, source, output, fences.clone());
                    self.sources.insert((*name).clone(), live);
                }
            }
        }
        let graph = tokio::spawn(async move {
            let result = graph.finish().await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "the plan ended with an error");
            }
            result
        });
        let old = self.running.replace(Running { plan, graph });
        self.shared.ready.store(true, Relaxed);
        Ok(old)
    }

    fn spawn_source(&self, name: &str, node: &SourceNode, output: SourceOutput, fences: Option<Arc<dyn Fences>>) -> LiveSource {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let output = SharedOutput::new(output);
        let counters = self.shared.registry.lock().unwrap_or_else(|p| p.into_inner()).register(name, "source");
        let options = LiveOptions {
            stop: Some(stop_rx),
            fences,
            status: self.shared.status.clone(),
            checks: Some(self.shared.checks.clone()),
            ..LiveOptions::default()
        };
        let (update, updates) = tokio::sync::watch::channel(node.clone());
        let (source_name, source, out) = (name.to_string(), node.clone(), output.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = dbintel_runtime::run_live_source(source_name.clone(), source, out, counters, options, Some(updates)).await {
                // only fail-fast sources return errors; the daemon's never do
                tracing::error!(source = %source_name, error = %e, "the source ended");
            }
        });
        LiveSource { node: node.clone(), output, stop, task, update }
    }

    /// Stops the live sources `which` picks, and waits for them.
    async fn stop_sources(&mut self, which: impl Fn(&str, &SourceNode) -> bool, deadline: Instant) {
        let names: Vec<String> = self.sources.iter().filter(|(n, s)| which(n, &s.node)).map(|(n, _)| n.clone()).collect();
        let mut stopping = tokio::task::JoinSet::new();
        for name in names {
            if let Some(live) = self.sources.remove(&name) {
                stopping.spawn(async move { live.stop(&name, deadline).await });
            }
        }
        while stopping.join_next().await.is_some() {}
    }

    /// Waits, until `deadline`, for a graph nothing feeds any more to drain
    /// into its sinks. Past the deadline it is left to finish in the
    /// background: its sinks' queues are shared with the new plan, never
    /// closed, so nothing it holds is lost.
    async fn drain(old: Running, deadline: Instant) {
        let wait = deadline.saturating_duration_since(Instant::now());
        let mut graph = old.graph;
        match tokio::time::timeout(wait, &mut graph).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the previous plan's task failed"),
            Err(_) => tracing::warn!(
                "the previous plan has not drained by the deadline (an export queue is full and its endpoint down?); it keeps draining into the export queues in the background"
            ),
        }
    }

    async fn reload(&mut self, why: &str) -> ReloadReply {
        let (compiled, reads) = compile(&self.options.paths);
        let plan = match compiled.and_then(|plan| self.preflight(&plan).map(|()| plan)) {
            Ok(plan) => plan,
            Err(diagnostics) => {
                self.watch.refused(reads);
                self.shared.reloads_refused.fetch_add(1, Relaxed);
                tracing::error!(trigger = why, "reload refused; the running plan is unchanged:\n{diagnostics}");
                return ReloadReply::Refused(diagnostics);
            }
        };
        if self.running.as_ref().is_some_and(|r| r.plan == plan) {
            self.watch.applied(reads);
            tracing::info!(trigger = why, "reload: the plan is unchanged");
            return ReloadReply::Unchanged;
        }
        // from here the new plan runs, or the old one goes on after a
        // failed start (reported below): either way these files made it
        self.watch.applied(reads);
        let summary = format!("{} nodes, {} pipelines", plan.nodes.len(), plan.pipelines.len());
        let previous = self.running.as_ref().map(|r| r.plan.clone());
        let retired = self.take_retired_exporters(&plan);
        // a changed sink with a disk queue may reopen the same directory: the
        // old graph must have drained and its exporter closed first
        let sequential = retired.iter().any(|e| e.queue.is_disk());
        let deadline = Instant::now() + self.options.shutdown_timeout;
        if sequential {
            self.stop_sources(|_, _| true, deadline).await;
            if let Some(old) = self.running.take() {
                Self::drain(old, deadline).await;
            }
        }
        let retiring = if sequential {
            Self::retire(retired).await;
            Vec::new()
        } else {
            retired
        };
        match self.start(plan, previous.as_ref()).await {
            Ok(old) => {
                if let Some(old) = old {
                    Self::drain(old, deadline).await;
                }
                Self::retire(retiring).await;
                // nodes that left the plan leave /metrics
                if let Some(running) = &self.running {
                    self.shared.registry.lock().unwrap_or_else(|p| p.into_inner()).retain(|n| running.plan.node(n).is_some());
                }
                self.shared.reloads_applied.fetch_add(1, Relaxed);
                tracing::info!(trigger = why, %summary, "reloaded");
                ReloadReply::Applied(summary)
            }
            Err(e) => {
                // the old plan was not touched (unless it had to stop for a
                // disk queue): put the retired exporters back
                {
                    let mut exporters = self.shared.exporters.lock().unwrap_or_else(|p| p.into_inner());
                    for e in retiring {
                        exporters.entry(e.name.clone()).or_insert(e);
                    }
                }
                self.shared.reloads_refused.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "the new plan could not start; the previous one carries on");
                // it had to stop for a disk queue or a new election: start
                // it again in full
                let had_sources = previous.as_ref().is_some_and(|p| p.nodes.values().any(|n| matches!(n.kind, NodeKind::Source(_))));
                if self.running.is_none() || (self.sources.is_empty() && had_sources) {
                    if let Some(old) = previous {
                        match self.start(old, None).await {
                            Ok(Some(stale)) => Self::drain(stale, deadline).await,
                            Ok(None) => {}
                            Err(again) => {
                                tracing::error!(error = %again, "the previous plan could not start either; running nothing");
                                self.shared.ready.store(false, Relaxed);
                            }
                        }
                    }
                }
                ReloadReply::Refused(e)
            }
        }
    }

    async fn shutdown(&mut self) {
        let deadline = Instant::now() + self.options.shutdown_timeout;
        self.shared.ready.store(false, Relaxed);
        tracing::info!(deadline = ?self.options.shutdown_timeout, "shutting down: stopping sources, flushing");
        // sources stop first (flushing what they hold), then what is in
        // flight drains, then the leases go
        self.stop_sources(|_, _| true, deadline).await;
        if let Some(old) = self.running.take() {
            Self::drain(old, deadline).await;
        }
        if let Some(coordinator) = self.coordinator.take() {
            coordinator.shutdown().await;
        }
        let exporters: Vec<_> = self.shared.exporters.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let mut flushing = tokio::task::JoinSet::new();
        for e in exporters {
            flushing.spawn(async move { e.shutdown(deadline).await });
        }
        while flushing.join_next().await.is_some() {}
        let registry = self.shared.registry.lock().unwrap_or_else(|p| p.into_inner()).clone();
        eprint!("{}", registry.summary());
    }
}

/// Runs until SIGTERM/SIGINT. Errors only when it cannot start.
pub async fn run(options: Options) -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let listener =
        tokio::net::TcpListener::bind(options.listen).await.map_err(|error| DaemonError::Listen { addr: options.listen, error })?;
    let listen = listener.local_addr().unwrap_or(options.listen);
    let admin = match options.admin_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|error| DaemonError::Listen { addr, error })?),
        None => None,
    };
    let (reload_tx, mut reload_rx) = mpsc::channel(8);
    let shared = Arc::new(Shared {
        registry: Mutex::default(),
        exporters: Mutex::default(),
        ready: AtomicBool::new(false),
        status: StatusBoard::new(),
        reloads_applied: AtomicU64::new(0),
        reloads_refused: AtomicU64::new(0),
        cluster: Mutex::new(None),
        checks: dbintel_doctor::ChecksBoard::new(dbintel_doctor::Options::default()),
        heartbeat: AtomicU64::new(0),
        started: Instant::now(),
        reload_tx,
    });
    let signals = |kind| signal(kind).map_err(|e| DaemonError::Start(format!("signal handler: {e}")));
    let (mut term, mut int, mut hup) =
        (signals(SignalKind::terminate())?, signals(SignalKind::interrupt())?, signals(SignalKind::hangup())?);

    let (compiled, reads) = compile(&options.paths);
    let plan = compiled.map_err(DaemonError::Invalid)?;
    let watch = watch::Watch::new(options.paths.clone(), reads);
    let mut daemon = Daemon {
        options,
        shared: shared.clone(),
        stdout: shared_stdout(),
        running: None,
        sources: HashMap::new(),
        coordinator: None,
        watch,
        janitor: metrics::SeriesJanitor::default(),
    };
    daemon.preflight(&plan).map_err(DaemonError::Start)?;
    daemon.start(plan, None).await.map_err(DaemonError::Start)?;
    match admin {
        Some(admin) => {
            let admin_listen = admin.local_addr().ok();
            tokio::spawn(http::serve(listener, shared.clone(), daemon.options.http.clone(), http::Exposure::Public));
            tokio::spawn(http::serve(admin, shared.clone(), daemon.options.http.clone(), http::Exposure::All));
            tracing::info!(%listen, admin = ?admin_listen, "running; /metrics, /healthz and /readyz on the first address, /status and POST /reload on the admin one");
        }
        None => {
            tokio::spawn(http::serve(listener, shared.clone(), daemon.options.http.clone(), http::Exposure::All));
            tracing::info!(%listen, "running; /metrics, /healthz, /readyz, /status and POST /reload on this address");
        }
    }

    let poll = daemon.options.watch.unwrap_or(Duration::from_secs(1));
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        shared.beat();
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                daemon.reload("SIGHUP").await;
            }
            Some(reply) = reload_rx.recv() => {
                let result = daemon.reload("POST /reload").await;
                let _ = reply.send(result);
            }
            _ = ticker.tick() => {
                if daemon.options.watch.is_some() && daemon.watch.poll() {
                    daemon.reload("file change").await;
                }
                daemon.janitor.sweep(&shared.status, &shared.checks);
            }
        }
    }
    daemon.shutdown().await;
    Ok(())
}
