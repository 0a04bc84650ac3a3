//! `dbintel run`: the long-running service.
//!
//! One control loop owns the running plan. It starts the plan, and
//! reloads it on SIGHUP, on `POST /reload` and when a watched file changes
//! (a ConfigMap mount swapping its `..data` symlink shows up as changed
//! contents; a change must be seen on two polls in a row before it is
//! applied, which debounces editors and partial writes). A reload compiles
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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dbintel_dsl::plan::{NodeKind, Plan, SinkNode};
use dbintel_dsl::EnvPolicy;
use tokio::sync::{mpsc, oneshot, watch};

use dbintel_core::counters::Registry;
use dbintel_core::sink::Sink;
use dbintel_export::config::{ExportConfig, ProcessEnv, QueueKind};
use dbintel_export::stdout::{shared_stdout, Format, StdoutSink};
use dbintel_export::Exporter;
use dbintel_runtime::{Finished, RunError, Setup};
use dbintel_sources::live::LiveOptions;

pub struct Options {
    pub paths: Vec<PathBuf>,
    pub listen: std::net::SocketAddr,
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
    pub reloads_applied: AtomicU64,
    pub reloads_refused: AtomicU64,
    /// The election this replica takes part in (mode, identity, status).
    pub cluster: Mutex<Option<(dbintel_cluster::Mode, String, Arc<dbintel_cluster::Status>)>>,
    heartbeat: AtomicU64,
    started: Instant,
    reload_tx: mpsc::Sender<oneshot::Sender<ReloadReply>>,
}

impl Shared {
    fn beat(&self) {
        self.heartbeat.store(self.started.elapsed().as_secs(), Relaxed);
    }
    /// A plan runs and the replica knows its role.
    pub fn is_ready(&self) -> bool {
        let known = self.cluster.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_none_or(|(_, _, s)| s.known.load(Relaxed));
        self.ready.load(Relaxed) && known
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

struct Running {
    plan: Plan,
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<Result<Finished, RunError>>,
}

/// The `.pipe` files' contents, to notice changes. `None` when they
/// cannot be read (which a reload then reports).
fn fingerprint(paths: &[PathBuf]) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let files = crate::fs_host::expand(paths).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        file.hash(&mut h);
        std::fs::read(&file).ok()?.hash(&mut h);
    }
    Some(h.finish())
}

/// Compiles for running: every `env(...)` must be set. The error is the
/// rendered diagnostics.
fn compile(paths: &[PathBuf]) -> Result<Plan, String> {
    let files = crate::fs_host::expand(paths).map_err(|e| format!("error: {e}\n"))?;
    let compilation = dbintel_dsl::compile(&files, &crate::fs_host::FsHost, EnvPolicy::Require);
    let warnings: Vec<_> = compilation.diagnostics.iter().filter(|d| !d.is_error()).collect();
    for w in &warnings {
        tracing::warn!(code = w.code.id, message = %w.message, "pipeline warning");
    }
    match compilation.plan {
        Some(plan) => Ok(plan),
        None => Err(format!(
            "{}invalid: {}\n",
            crate::report::plain(&compilation.sources, &compilation.diagnostics),
            crate::report::summary(&compilation.diagnostics)
        )),
    }
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
    coordinator: Option<dbintel_cluster::Coordinator>,
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
                    let path = s.settings.str("path").unwrap_or_default();
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

    /// Exporters the new plan does not keep: their queues drain in the
    /// background (memory) or stay on disk for the new one.
    async fn retire_exporters(&self, plan: &Plan) {
        let retired: Vec<Arc<Exporter>> = {
            let mut exporters = self.shared.exporters.lock().unwrap_or_else(|p| p.into_inner());
            let names: Vec<String> = exporters
                .iter()
                .filter(|(name, e)| plan.node(name).and_then(|n| export_sink(&n.kind)) != Some(&e.declared))
                .map(|(name, _)| name.clone())
                .collect();
            names.iter().filter_map(|n| exporters.remove(n)).collect()
        };
        for exporter in retired {
            if exporter.queue.is_disk() {
                // the replacement may open the same directory
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
                    let path = sink.settings.str("path").unwrap_or_default();
                    Box::new(StdoutSink::file(std::path::Path::new(path)).map_err(|e| format!("sink `{name}`: `{path}`: {e}"))?)
                }
                _ => {
                    let format = if sink.settings.str("format") == Some("pretty") { Format::Pretty } else { Format::OtlpJson };
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
        if self.coordinator.as_ref().is_some_and(|c| c.key == key) {
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

    async fn start(&mut self, plan: Plan) -> Result<(), String> {
        self.elect(&plan).await?;
        let fences = self.coordinator.as_ref().filter(|c| c.key.mode != dbintel_cluster::Mode::None).map(|c| c.fences());
        let sinks = self.sinks(&plan)?;
        let registry = {
            let mut registry = self.shared.registry.lock().unwrap_or_else(|p| p.into_inner());
            for (name, node) in &plan.nodes {
                registry.register(name, node.kind.label());
            }
            registry.clone()
        };
        let (stop, stop_rx) = watch::channel(false);
        let stopped = stop_rx.clone();
        let setup = Setup {
            replays: self.options.replays.clone(),
            sinks,
            tap: None,
            live: Some(LiveOptions { scrapes: None, interval: None, stop: Some(stop_rx), fences }),
            registry: Some(registry),
        };
        let to_run = plan.clone();
        let handle = tokio::spawn(async move {
            let result = dbintel_runtime::run(&to_run, setup).await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "the plan ended with an error");
            } else if !*stopped.borrow() {
                // recorded rows only: keep serving and exporting until told
                // to stop
                tracing::info!("all sources finished; waiting for a reload or a signal");
            }
            result
        });
        self.running = Some(Running { plan, stop, handle });
        self.shared.ready.store(true, Relaxed);
        Ok(())
    }

    /// Stops the sources and waits, until `deadline`, for everything in
    /// flight to reach the sinks. Returns the old plan.
    async fn stop(&mut self, deadline: Instant) -> Option<Plan> {
        let running = self.running.take()?;
        let _ = running.stop.send(true);
        let mut handle = running.handle;
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, &mut handle).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(_))) => {} // logged by the task
            Ok(Err(e)) => tracing::error!(error = %e, "the plan task failed"),
            Err(_) => {
                // most likely a full export queue with its endpoint down:
                // closing the queues lets blocked sinks give up
                tracing::warn!("the plan did not drain by the deadline; closing the export queues");
                for e in self.shared.exporters.lock().unwrap_or_else(|p| p.into_inner()).values() {
                    e.queue.close();
                }
                let _ = tokio::time::timeout(Duration::from_secs(2), handle).await;
            }
        }
        Some(running.plan)
    }

    async fn reload(&mut self, why: &str) -> ReloadReply {
        let plan = match compile(&self.options.paths).and_then(|plan| self.preflight(&plan).map(|()| plan)) {
            Ok(plan) => plan,
            Err(diagnostics) => {
                self.shared.reloads_refused.fetch_add(1, Relaxed);
                tracing::error!(trigger = why, "reload refused; the running plan is unchanged:\n{diagnostics}");
                return ReloadReply::Refused(diagnostics);
            }
        };
        if self.running.as_ref().is_some_and(|r| r.plan == plan) {
            tracing::info!(trigger = why, "reload: the plan is unchanged");
            return ReloadReply::Unchanged;
        }
        let old = self.stop(Instant::now() + self.options.shutdown_timeout).await;
        self.retire_exporters(&plan).await;
        let summary = format!("{} nodes, {} pipelines", plan.nodes.len(), plan.pipelines.len());
        match self.start(plan).await {
            Ok(()) => {
                self.shared.reloads_applied.fetch_add(1, Relaxed);
                tracing::info!(trigger = why, %summary, "reloaded");
                ReloadReply::Applied(summary)
            }
            Err(e) => {
                self.shared.reloads_refused.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "the new plan could not start; going back to the previous one");
                if let Some(old) = old {
                    self.retire_exporters(&old).await;
                    if let Err(again) = self.start(old).await {
                        tracing::error!(error = %again, "the previous plan could not start either; running nothing");
                        self.shared.ready.store(false, Relaxed);
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
        self.stop(deadline).await;
        // sources have stopped: hand the leases over now, not at expiry
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
    let (reload_tx, mut reload_rx) = mpsc::channel(8);
    let shared = Arc::new(Shared {
        registry: Mutex::default(),
        exporters: Mutex::default(),
        ready: AtomicBool::new(false),
        reloads_applied: AtomicU64::new(0),
        reloads_refused: AtomicU64::new(0),
        cluster: Mutex::new(None),
        heartbeat: AtomicU64::new(0),
        started: Instant::now(),
        reload_tx,
    });
    let signals = |kind| signal(kind).map_err(|e| DaemonError::Start(format!("signal handler: {e}")));
    let (mut term, mut int, mut hup) =
        (signals(SignalKind::terminate())?, signals(SignalKind::interrupt())?, signals(SignalKind::hangup())?);

    let plan = compile(&options.paths).map_err(DaemonError::Invalid)?;
    let mut daemon = Daemon { options, shared: shared.clone(), stdout: shared_stdout(), running: None, coordinator: None };
    daemon.preflight(&plan).map_err(DaemonError::Start)?;
    daemon.start(plan).await.map_err(DaemonError::Start)?;
    tokio::spawn(http::serve(listener, shared.clone(), daemon.options.http.clone()));
    tracing::info!(%listen, "running; /metrics, /healthz, /readyz and POST /reload on this address");

    let poll = daemon.options.watch.unwrap_or(Duration::from_secs(1));
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = fingerprint(&daemon.options.paths);
    let mut pending: Option<Option<u64>> = None;
    loop {
        shared.beat();
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                seen = fingerprint(&daemon.options.paths);
                daemon.reload("SIGHUP").await;
            }
            Some(reply) = reload_rx.recv() => {
                seen = fingerprint(&daemon.options.paths);
                let result = daemon.reload("POST /reload").await;
                let _ = reply.send(result);
            }
            _ = ticker.tick() => {
                if daemon.options.watch.is_some() {
                    let now = fingerprint(&daemon.options.paths);
                    if now == seen {
                        pending = None;
                    } else if pending == Some(now) {
                        // the same new contents twice in a row: settled
                        seen = now;
                        pending = None;
                        daemon.reload("file change").await;
                    } else {
                        pending = Some(now);
                    }
                }
            }
        }
    }
    daemon.shutdown().await;
    Ok(())
}
