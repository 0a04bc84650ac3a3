//! `/metrics`, in the OpenMetrics text format, encoded by
//! `prometheus-client` from one snapshot of the process's own counters per
//! scrape: a registry per scrape, no process-wide statics, so two samplers
//! (or two plans) never share a series.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::Shared;
use dbintel_core::counters::NodeCounters;
use dbintel_core::status::{CollectorState, TargetState};
use dbintel_export::LATENCY_BUCKETS;

/// Resident set size from /proc (Linux), in bytes, at the system's page
/// size (what `memory_limit`'s `rss_limit` compares too).
pub fn rss_bytes() -> Option<u64> {
    dbintel_core::budget::resident_bytes()
}

/// Prunes the per-target series kept process-wide — breakers' and query
/// times' — once their target has left the status board (a dropped
/// database, a target removed from the targets file, a source removed by
/// a reload): the board holds the live targets, and what is keyed by a
/// target goes with it. A breaker still counting (its target stopping)
/// is tried again at the next sweep.
#[derive(Default)]
pub struct SeriesJanitor {
    /// Target keys seen on the board at the last sweep.
    known: std::collections::BTreeSet<String>,
    /// Gone, but their breaker was still in use.
    pending: std::collections::BTreeSet<String>,
}

impl SeriesJanitor {
    pub fn sweep(&mut self, board: &dbintel_core::status::StatusBoard, checks: &dbintel_doctor::ChecksBoard) {
        let live = board.target_keys();
        // a discovered database that is gone takes its setup checks along
        checks.retain(|source, target| live.contains(&dbintel_dsl::plan::target_key(source, target)));
        let gone: Vec<String> = self.known.difference(&live).chain(self.pending.iter()).cloned().collect();
        self.pending.clear();
        for key in gone.into_iter().filter(|k| !live.contains(k)) {
            dbintel_core::counters::forget_query_times(&key);
            if !dbintel_sources::breaker::forget_breaker(&key) {
                self.pending.insert(key);
            }
        }
        self.known = live;
    }
}

type Labels = Vec<(String, String)>;

/// (labels, sum, count, buckets as (upper bound, that bucket's count))
type HistogramSample = (Labels, f64, u64, Vec<(f64, u64)>);

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[derive(Debug)]
enum Samples {
    Counter(Vec<(Labels, f64)>),
    Gauge(Vec<(Labels, f64)>),
    Histogram(Vec<HistogramSample>),
}

#[derive(Debug)]
struct Family {
    /// Without `_total`: the encoder adds it to a counter's samples.
    name: &'static str,
    help: &'static str,
    samples: Samples,
}

/// Every family, read once.
#[derive(Debug, Default)]
struct Snapshot {
    families: Vec<Family>,
}

impl Snapshot {
    fn counter(&mut self, name: &'static str, help: &'static str, samples: Vec<(Labels, f64)>) {
        self.families.push(Family { name, help, samples: Samples::Counter(samples) });
    }
    fn gauge(&mut self, name: &'static str, help: &'static str, samples: Vec<(Labels, f64)>) {
        self.families.push(Family { name, help, samples: Samples::Gauge(samples) });
    }
}

/// Whole numbers print as such (`5`, not `5.0`).
fn whole(v: f64) -> Option<i64> {
    (v.fract() == 0.0 && v.abs() < 9.0e15).then_some(v as i64)
}

fn counter(v: f64, encoder: prometheus_client::encoding::MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
    match whole(v) {
        Some(i) if i >= 0 => ConstCounter::new(i as u64).encode(encoder),
        _ => ConstCounter::new(v).encode(encoder),
    }
}

fn gauge(v: f64, encoder: prometheus_client::encoding::MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
    match whole(v) {
        Some(i) => ConstGauge::new(i).encode(encoder),
        None => ConstGauge::new(v).encode(encoder),
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            match &f.samples {
                Samples::Counter(samples) => {
                    let mut family = encoder.encode_descriptor(f.name, f.help, None, MetricType::Counter)?;
                    match samples.as_slice() {
                        // one series without labels: `name 3`, not `name{} 3`
                        [(labels, v)] if labels.is_empty() => counter(*v, family)?,
                        _ => {
                            for (labels, v) in samples {
                                counter(*v, family.encode_family(labels)?)?;
                            }
                        }
                    }
                }
                Samples::Gauge(samples) => {
                    let mut family = encoder.encode_descriptor(f.name, f.help, None, MetricType::Gauge)?;
                    match samples.as_slice() {
                        [(labels, v)] if labels.is_empty() => gauge(*v, family)?,
                        _ => {
                            for (labels, v) in samples {
                                gauge(*v, family.encode_family(labels)?)?;
                            }
                        }
                    }
                }
                Samples::Histogram(samples) => {
                    let mut family = encoder.encode_descriptor(f.name, f.help, None, MetricType::Histogram)?;
                    for (labels, sum, count, buckets) in samples {
                        family.encode_family(labels)?.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn n(a: &AtomicU64) -> f64 {
    a.load(Relaxed) as f64
}

fn snapshot(shared: &Shared) -> Snapshot {
    let mut s = Snapshot::default();
    let registry = shared.registry.lock().unwrap_or_else(|p| p.into_inner()).clone();

    type Pick = fn(&NodeCounters) -> f64;
    let node_families: [(&'static str, &'static str, Pick); 4] = [
        ("dbintel_node_received_records", "Records that entered a node.", |c| n(&c.received)),
        ("dbintel_node_emitted_records", "Records a node passed on (for a sink: delivered to it).", |c| n(&c.emitted)),
        ("dbintel_node_dropped_records", "Records a node dropped (sampled out, limited, refused).", |c| n(&c.dropped)),
        ("dbintel_node_errors", "Errors in a node (failed scrapes, statement errors, sink failures).", |c| n(&c.errors)),
    ];
    for (name, help, pick) in node_families {
        s.counter(name, help, registry.nodes.iter().map(|(node, kind, c)| (labels(&[("node", node), ("kind", kind)]), pick(c))).collect());
    }
    let sources: Vec<_> = registry.nodes.iter().filter(|(_, kind, _)| *kind == "source").collect();
    let per_source = |pick: fn(&NodeCounters) -> f64| sources.iter().map(|(node, _, c)| (labels(&[("node", node)]), pick(c))).collect();
    s.counter(
        "dbintel_source_skipped_scrapes",
        "Scrapes skipped because downstream was full or memory above its soft limit.",
        per_source(|c| n(&c.skipped_scrapes)),
    );
    s.counter(
        "dbintel_source_scrape_seconds",
        "Time spent in scrapes (all collectors of a source).",
        per_source(|c| n(&c.scrape_micros) / 1e6),
    );
    s.counter("dbintel_source_scrapes", "Scrapes run (all collectors of a source).", per_source(|c| n(&c.scrapes)));
    let times = dbintel_core::counters::query_times();
    s.counter(
        "dbintel_query_seconds",
        "Time spent in each kind of database query, client side.",
        times.iter().map(|((source, what), (_, micros))| (labels(&[("source", source), ("query", what)]), *micros as f64 / 1e6)).collect(),
    );
    s.counter(
        "dbintel_queries",
        "Database queries run, by kind.",
        times.iter().map(|((source, what), (count, _))| (labels(&[("source", source), ("query", what)]), *count as f64)).collect(),
    );
    // log sources: lines read, entries, and lines they could not read by cause
    s.counter(
        "dbintel_log_lines",
        "Log sources: lines read (read), entries (entries), lines cut, binary or not in the declared format, files read again (restarted).",
        dbintel_runtime::logs::stats::snapshot()
            .iter()
            .map(|(node, outcome, v)| (labels(&[("node", node), ("outcome", outcome)]), *v as f64))
            .collect(),
    );

    let targets = shared.status.snapshot();
    let connected =
        |t: &dbintel_core::status::TargetSnapshot| matches!(t.state, TargetState::Up | TargetState::Degraded | TargetState::BreakerOpen);
    let mut source_up: std::collections::BTreeMap<&str, bool> = std::collections::BTreeMap::new();
    for t in &targets {
        let all = source_up.entry(&t.source).or_insert(true);
        *all &= connected(t) || t.state == TargetState::Standby;
    }
    s.gauge(
        "dbintel_source_up",
        "1 while every target of a source this replica runs is connected (whatever its collectors do).",
        source_up.iter().map(|(node, up)| (labels(&[("node", node)]), f64::from(u8::from(*up)))).collect(),
    );
    s.gauge(
        "dbintel_target_up",
        "1 while a target is connected.",
        targets.iter().map(|t| (labels(&[("node", &t.source), ("target", &t.target)]), f64::from(u8::from(connected(t))))).collect(),
    );
    let states = [
        TargetState::Connecting,
        TargetState::Up,
        TargetState::Degraded,
        TargetState::BreakerOpen,
        TargetState::Down,
        TargetState::Standby,
    ];
    s.gauge(
        "dbintel_target_state",
        "1 for the state each target is in.",
        targets
            .iter()
            .flat_map(|t| {
                states.iter().map(move |state| {
                    (
                        labels(&[("node", &t.source), ("target", &t.target), ("state", state.as_str())]),
                        f64::from(u8::from(t.state == *state)),
                    )
                })
            })
            .collect(),
    );
    s.counter(
        "dbintel_collector_errors",
        "Failed scrapes per collector, by class (distress, configuration, connection, other).",
        targets
            .iter()
            .flat_map(|t| {
                t.collectors.iter().flat_map(move |(collector, c)| {
                    c.errors.iter().map(move |(class, count)| {
                        (labels(&[("node", &t.source), ("target", &t.target), ("collector", collector), ("class", class)]), *count as f64)
                    })
                })
            })
            .collect(),
    );
    s.gauge(
        "dbintel_collector_failing",
        "1 while a collector fails for a reason of configuration.",
        targets
            .iter()
            .flat_map(|t| {
                t.collectors.iter().map(move |(collector, c)| {
                    (
                        labels(&[("node", &t.source), ("target", &t.target), ("collector", collector)]),
                        f64::from(u8::from(c.state == CollectorState::Failing)),
                    )
                })
            })
            .collect(),
    );

    let breakers = dbintel_sources::breaker::breakers();
    s.gauge(
        "dbintel_breaker_state",
        "Circuit breaker per target: 0 closed, 1 half-open, 2 open.",
        breakers.iter().map(|(source, b)| (labels(&[("source", source)]), f64::from(b.state.load(Relaxed)))).collect(),
    );
    s.counter(
        "dbintel_breaker_transitions",
        "Circuit breaker transitions.",
        breakers
            .iter()
            .flat_map(|(source, b)| {
                [("open", &b.opened), ("closed", &b.closed)].map(|(to, v)| (labels(&[("source", source), ("to", to)]), n(v)))
            })
            .collect(),
    );
    s.counter(
        "dbintel_breaker_refused_queries",
        "Queries not sent because the breaker was open.",
        breakers.iter().map(|(source, b)| (labels(&[("source", source)]), n(&b.refused))).collect(),
    );

    let exporters: Vec<_> = shared.exporters.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
    let per_sink = |pick: &dyn Fn(&dbintel_export::Exporter) -> f64| -> Vec<(Labels, f64)> {
        exporters.iter().map(|e| (labels(&[("sink", &e.name)]), pick(e))).collect()
    };
    s.gauge(
        "dbintel_export_queue_bytes",
        "Bytes waiting in a sink's export queue (including the request being sent).",
        per_sink(&|e| n(&e.queue.stats.bytes)),
    );
    s.gauge("dbintel_export_queue_limit_bytes", "The export queue's bound.", per_sink(&|e| e.config.queue_bytes as f64));
    s.gauge("dbintel_export_queue_requests", "Requests waiting in a sink's export queue.", per_sink(&|e| n(&e.queue.stats.requests)));
    s.gauge(
        "dbintel_export_queue_items",
        "Data points and log records held in a sink's export queue.",
        per_sink(&|e| n(&e.queue.stats.items)),
    );
    s.counter(
        "dbintel_export_requests",
        "Export attempts by outcome.",
        exporters
            .iter()
            .flat_map(|e| {
                let st = &e.stats;
                [
                    ("sent", &st.requests_sent),
                    ("retried", &st.requests_retried),
                    ("throttled", &st.requests_throttled),
                    ("split", &st.requests_split),
                    ("failed", &st.requests_failed),
                    ("expired", &st.requests_expired),
                ]
                .map(|(outcome, v)| (labels(&[("sink", &e.name), ("outcome", outcome)]), n(v)))
            })
            .collect(),
    );
    s.counter(
        "dbintel_export_items",
        "Data points and log records by export outcome.",
        exporters
            .iter()
            .flat_map(|e| {
                let (st, q) = (&e.stats, &e.queue.stats);
                [
                    ("sent", &st.items_sent),
                    ("failed", &st.items_failed),
                    ("rejected", &st.items_rejected),
                    ("dropped_queue_full", &q.dropped_items),
                    ("lost_on_disk", &q.lost_items),
                ]
                .map(|(outcome, v)| (labels(&[("sink", &e.name), ("outcome", outcome)]), n(v)))
            })
            .collect(),
    );
    s.counter(
        "dbintel_export_dropped_items",
        "Data points and log records that will never reach the receiver, by cause.",
        exporters
            .iter()
            .flat_map(|e| e.drops().into_iter().map(|(cause, v)| (labels(&[("sink", &e.name), ("cause", cause)]), v as f64)))
            .collect(),
    );
    s.counter(
        "dbintel_export_packed_parts",
        "Resource parts packed into export requests (divide by requests sent: resources per request).",
        per_sink(&|e| n(&e.stats.parts_packed)),
    );
    s.counter("dbintel_export_sent_bytes", "Bytes as sent (compressed) of the requests taken.", per_sink(&|e| n(&e.stats.bytes_sent)));
    s.counter(
        "dbintel_export_queue_errors",
        "Disk queue failures: damaged records skipped, failed writes (the request refused), reads and ack writes.",
        exporters
            .iter()
            .flat_map(|e| {
                let q = &e.queue.stats;
                [("damaged_record", &q.damaged_records), ("write", &q.write_errors), ("read", &q.read_errors), ("ack", &q.ack_errors)]
                    .map(|(kind, v)| (labels(&[("sink", &e.name), ("error", kind)]), n(v)))
            })
            .collect(),
    );
    s.counter(
        "dbintel_export_sender_events",
        "The sender's own troubles: compression steps down, queue errors retried, restarts after a panic.",
        exporters
            .iter()
            .flat_map(|e| {
                let st = &e.stats;
                [("compression_step", &st.compression_steps), ("queue_error", &st.queue_errors), ("restart", &st.sender_restarts)]
                    .map(|(event, v)| (labels(&[("sink", &e.name), ("event", event)]), n(v)))
            })
            .collect(),
    );
    s.counter(
        "dbintel_export_shaped",
        "Changes made to fit the backend's limits.",
        exporters
            .iter()
            .flat_map(|e| e.stats.shaped.list().map(|(change, v)| (labels(&[("sink", &e.name), ("change", change)]), v as f64)))
            .collect(),
    );
    s.gauge(
        "dbintel_export_stalled",
        "1 when a sink has delivered nothing for longer than its retry_elapsed while data waits.",
        per_sink(&|e| f64::from(u8::from(e.status().stalled.is_some()))),
    );
    s.families.push(Family {
        name: "dbintel_export_latency_seconds",
        help: "Time of each export attempt.",
        samples: Samples::Histogram(
            exporters
                .iter()
                .map(|e| {
                    let st = &e.stats;
                    // the stats count cumulatively; the encoder wants each
                    // bucket's own count, the last one unbounded (+Inf)
                    let (count, mut below, mut buckets) = (st.latency_count.load(Relaxed), 0, Vec::new());
                    for (bound, cumulative) in LATENCY_BUCKETS.iter().zip(&st.latency_buckets) {
                        let cumulative = cumulative.load(Relaxed);
                        buckets.push((*bound, cumulative.saturating_sub(below)));
                        below = cumulative;
                    }
                    buckets.push((f64::MAX, count.saturating_sub(below)));
                    (labels(&[("sink", &e.name)]), n(&st.latency_micros) / 1e6, count, buckets)
                })
                .collect(),
        ),
    });

    s.counter(
        "dbintel_sampler_redis_errors",
        "Failed round trips to a sampler's shared Redis.",
        registry.samplers.iter().map(|(node, st)| (labels(&[("node", node)]), n(&st.redis_errors))).collect(),
    );
    s.counter(
        "dbintel_sampler_local_fallback_decisions",
        "Sampling decisions made from local state while Redis was unavailable.",
        registry.samplers.iter().map(|(node, st)| (labels(&[("node", node)]), n(&st.fallback_decisions))).collect(),
    );
    s.counter(
        "dbintel_sampler_redis_decisions",
        "Sampling decisions made with Redis.",
        registry.samplers.iter().map(|(node, st)| (labels(&[("node", node)]), n(&st.redis_decisions))).collect(),
    );

    s.counter(
        "dbintel_series_overflow",
        "Recordings folded into an `other` series (query times) or left unlisted (breakers) because a process-wide map was at its bound.",
        vec![
            (labels(&[("map", "query_times")]), dbintel_core::counters::query_times_overflow() as f64),
            (labels(&[("map", "breakers")]), dbintel_sources::breaker::breakers_overflow() as f64),
        ],
    );
    s.gauge(
        "dbintel_series_tracked",
        "Entries in each process-wide map (pruned with their targets; bounded).",
        vec![
            (labels(&[("map", "query_times")]), times.len() as f64),
            (labels(&[("map", "breakers")]), breakers.len() as f64),
            (labels(&[("map", "targets")]), targets.len() as f64),
            (labels(&[("map", "nodes")]), registry.nodes.len() as f64),
        ],
    );

    let port = super::http::stats();
    s.gauge("dbintel_http_connections_open", "Connections open on the HTTP port.", vec![(Vec::new(), n(&port.connections_open))]);
    s.counter(
        "dbintel_http_refused",
        "What the HTTP port refused or closed to protect itself.",
        [
            ("connection_shed", &port.connections_shed),
            ("connection_refused", &port.connections_refused),
            ("body_too_large", &port.bodies_refused),
            ("reload_unauthorized", &port.reloads_unauthorized),
        ]
        .map(|(what, v)| (labels(&[("what", what)]), n(v)))
        .to_vec(),
    );
    s.counter(
        "dbintel_reloads",
        "Reloads by result.",
        vec![
            (labels(&[("result", "applied")]), n(&shared.reloads_applied)),
            (labels(&[("result", "refused")]), n(&shared.reloads_refused)),
        ],
    );
    s.gauge("dbintel_ready", "1 when /readyz answers 200.", vec![(Vec::new(), f64::from(u8::from(shared.is_ready())))]);
    if let Some((mode, identity, status)) = shared.cluster.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        let owned = status.owned.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let known = status.targets.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let role = mode.role(!owned.is_empty());
        let all = mode == dbintel_cluster::Mode::None;
        s.gauge(
            "dbintel_cluster_role",
            "This replica's role (the label), 1.",
            vec![(labels(&[("mode", mode.as_str()), ("role", role), ("identity", &identity)]), 1.0)],
        );
        s.gauge(
            "dbintel_cluster_owned_targets",
            "Targets this replica may scrape now.",
            vec![(Vec::new(), (if all { known.len() } else { owned.len() }) as f64)],
        );
        s.gauge(
            "dbintel_cluster_target_owned",
            "1 for each target this replica scrapes.",
            known.iter().map(|t| (labels(&[("target", t)]), f64::from(u8::from(all || owned.contains(t))))).collect(),
        );
        if mode == dbintel_cluster::Mode::Sharded {
            s.gauge(
                "dbintel_cluster_members",
                "Live replicas sharing the targets.",
                vec![(Vec::new(), status.members.load(Relaxed) as f64)],
            );
        }
    }
    let budgets = dbintel_sources::sessions::ServerSessions::snapshot();
    s.gauge(
        "dbintel_server_sessions",
        "Sessions this process holds on each server (host:port as configured), and its cap (server_sessions).",
        budgets
            .iter()
            .flat_map(|b| {
                [("in_use", b.in_use), ("cap", b.cap)].map(|(state, n)| (labels(&[("server", &b.server), ("state", state)]), f64::from(n)))
            })
            .collect(),
    );
    s.counter(
        "dbintel_server_session_evictions",
        "Idle shared sessions closed to make room for another target's, per server.",
        budgets.iter().map(|b| (labels(&[("server", &b.server)]), b.evictions as f64)).collect(),
    );
    s.counter(
        "dbintel_server_sessions_exhausted",
        "Asks for a session that found none within their wait (the server's cap was in use), per server.",
        budgets.iter().map(|b| (labels(&[("server", &b.server)]), b.exhausted as f64)).collect(),
    );
    let checks = shared.checks.snapshot();
    s.gauge(
        "dbintel_target_setup_checks",
        "Setup checks (dbintel doctor's) of each target's latest run, by outcome (ok, warn, fail, skip).",
        checks
            .iter()
            .flat_map(|r| {
                let counts = r.counts();
                [("ok", counts.ok), ("warn", counts.warn), ("fail", counts.fail), ("skip", counts.skip)]
                    .map(|(status, n)| (labels(&[("node", &r.source), ("target", &r.target), ("status", status)]), n as f64))
            })
            .collect(),
    );
    if let Some(rss) = rss_bytes() {
        s.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", vec![(Vec::new(), rss as f64)]);
    }
    s
}

/// The body of `/metrics` (OpenMetrics text).
pub fn render(shared: &Shared) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot(shared)));
    let mut out = String::with_capacity(16 * 1024);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::warn!(error = %e, "encoding /metrics failed");
    }
    out
}

/// The content type of [`render`]'s body.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
