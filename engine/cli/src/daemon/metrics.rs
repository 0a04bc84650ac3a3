//! `/metrics`: the Prometheus text format, written by hand (a handful of
//! families; no client library needed).

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use super::Shared;
use dbintel_core::counters::NodeCounters;
use dbintel_core::status::TargetState;
use dbintel_export::LATENCY_BUCKETS;

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Resident set size from /proc (Linux), in bytes.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

pub fn render(shared: &Shared) -> String {
    let mut out = String::with_capacity(8192);
    let registry = shared.registry.lock().unwrap_or_else(|p| p.into_inner()).clone();

    type Pick = fn(&NodeCounters) -> u64;
    let node_families: [(&str, &str, Pick); 4] = [
        ("dbintel_node_received_records_total", "Records that entered a node.", |c| NodeCounters::get(&c.received)),
        ("dbintel_node_emitted_records_total", "Records a node passed on (for a sink: delivered to it).", |c| {
            NodeCounters::get(&c.emitted)
        }),
        ("dbintel_node_dropped_records_total", "Records a node dropped (sampled out, limited, refused).", |c| {
            NodeCounters::get(&c.dropped)
        }),
        ("dbintel_node_errors_total", "Errors in a node (failed scrapes, statement errors).", |c| NodeCounters::get(&c.errors)),
    ];
    for (name, help, pick) in node_families {
        family(&mut out, name, "counter", help);
        for (node, kind, c) in &registry.nodes {
            let _ = writeln!(out, "{name}{{node=\"{}\",kind=\"{kind}\"}} {}", escape(node), pick(c));
        }
    }
    let sources: Vec<_> = registry.nodes.iter().filter(|(_, kind, _)| *kind == "source").collect();
    family(&mut out, "dbintel_source_skipped_scrapes_total", "counter", "Scrapes skipped because downstream was full.");
    for (node, _, c) in &sources {
        let _ =
            writeln!(out, "dbintel_source_skipped_scrapes_total{{node=\"{}\"}} {}", escape(node), NodeCounters::get(&c.skipped_scrapes));
    }
    family(&mut out, "dbintel_source_scrape_seconds", "summary", "Time spent in scrapes (all collectors of a source).");
    for (node, _, c) in &sources {
        let node = escape(node);
        let secs = NodeCounters::get(&c.scrape_micros) as f64 / 1e6;
        let _ = writeln!(out, "dbintel_source_scrape_seconds_sum{{node=\"{node}\"}} {secs}");
        let _ = writeln!(out, "dbintel_source_scrape_seconds_count{{node=\"{node}\"}} {}", NodeCounters::get(&c.scrapes));
    }
    family(&mut out, "dbintel_query_seconds", "summary", "Time spent in each kind of database query, client side.");
    for ((source, what), (count, micros)) in dbintel_core::counters::query_times() {
        let (source, what) = (escape(&source), escape(&what));
        let _ = writeln!(out, "dbintel_query_seconds_sum{{source=\"{source}\",query=\"{what}\"}} {}", micros as f64 / 1e6);
        let _ = writeln!(out, "dbintel_query_seconds_count{{source=\"{source}\",query=\"{what}\"}} {count}");
    }

    let targets = shared.status.snapshot();
    family(&mut out, "dbintel_source_up", "gauge", "1 while a source is connected to its database (whatever its collectors do).");
    for t in &targets {
        let up = matches!(t.state, TargetState::Up | TargetState::Degraded | TargetState::BreakerOpen);
        let _ = writeln!(out, "dbintel_source_up{{node=\"{}\"}} {}", escape(&t.source), u8::from(up));
    }
    family(&mut out, "dbintel_target_state", "gauge", "1 for the state each target is in.");
    for t in &targets {
        for state in [
            TargetState::Connecting,
            TargetState::Up,
            TargetState::Degraded,
            TargetState::BreakerOpen,
            TargetState::Down,
            TargetState::Standby,
        ] {
            let _ = writeln!(
                out,
                "dbintel_target_state{{node=\"{}\",target=\"{}\",state=\"{}\"}} {}",
                escape(&t.source),
                escape(&t.target),
                state.as_str(),
                u8::from(t.state == state)
            );
        }
    }
    family(
        &mut out,
        "dbintel_collector_errors_total",
        "counter",
        "Failed scrapes per collector, by class (distress, configuration, connection, other).",
    );
    for t in &targets {
        for (collector, c) in &t.collectors {
            for (class, n) in &c.errors {
                let _ = writeln!(
                    out,
                    "dbintel_collector_errors_total{{node=\"{}\",collector=\"{}\",class=\"{class}\"}} {n}",
                    escape(&t.source),
                    escape(collector)
                );
            }
        }
    }
    family(&mut out, "dbintel_collector_failing", "gauge", "1 while a collector fails for a reason of configuration.");
    for t in &targets {
        for (collector, c) in &t.collectors {
            let failing = c.state == dbintel_core::status::CollectorState::Failing;
            let _ = writeln!(
                out,
                "dbintel_collector_failing{{node=\"{}\",collector=\"{}\"}} {}",
                escape(&t.source),
                escape(collector),
                u8::from(failing)
            );
        }
    }

    let breakers = dbintel_sources::breaker::breakers();
    family(&mut out, "dbintel_breaker_state", "gauge", "Circuit breaker per source: 0 closed, 1 half-open, 2 open.");
    for (source, b) in &breakers {
        let _ = writeln!(out, "dbintel_breaker_state{{source=\"{}\"}} {}", escape(source), b.state.load(Relaxed));
    }
    family(&mut out, "dbintel_breaker_transitions_total", "counter", "Circuit breaker transitions.");
    for (source, b) in &breakers {
        for (to, v) in [("open", &b.opened), ("closed", &b.closed)] {
            let _ = writeln!(out, "dbintel_breaker_transitions_total{{source=\"{}\",to=\"{to}\"}} {}", escape(source), v.load(Relaxed));
        }
    }
    family(&mut out, "dbintel_breaker_refused_queries_total", "counter", "Queries not sent because the breaker was open.");
    for (source, b) in &breakers {
        let _ = writeln!(out, "dbintel_breaker_refused_queries_total{{source=\"{}\"}} {}", escape(source), b.refused.load(Relaxed));
    }

    let exporters: Vec<_> = shared.exporters.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
    family(&mut out, "dbintel_export_queue_bytes", "gauge", "Bytes waiting in a sink's export queue (including the request being sent).");
    for e in &exporters {
        let _ = writeln!(out, "dbintel_export_queue_bytes{{sink=\"{}\"}} {}", escape(&e.name), e.queue.stats.bytes.load(Relaxed));
    }
    family(&mut out, "dbintel_export_queue_limit_bytes", "gauge", "The export queue's bound.");
    for e in &exporters {
        let _ = writeln!(out, "dbintel_export_queue_limit_bytes{{sink=\"{}\"}} {}", escape(&e.name), e.config.queue_bytes);
    }
    family(&mut out, "dbintel_export_queue_requests", "gauge", "Requests waiting in a sink's export queue.");
    for e in &exporters {
        let _ = writeln!(out, "dbintel_export_queue_requests{{sink=\"{}\"}} {}", escape(&e.name), e.queue.stats.requests.load(Relaxed));
    }
    family(&mut out, "dbintel_export_requests_total", "counter", "Export attempts by outcome.");
    for e in &exporters {
        let s = &e.stats;
        for (outcome, v) in
            [("sent", &s.requests_sent), ("retried", &s.requests_retried), ("failed", &s.requests_failed), ("expired", &s.requests_expired)]
        {
            let _ =
                writeln!(out, "dbintel_export_requests_total{{sink=\"{}\",outcome=\"{outcome}\"}} {}", escape(&e.name), v.load(Relaxed));
        }
    }
    family(&mut out, "dbintel_export_items_total", "counter", "Data points and log records by export outcome.");
    for e in &exporters {
        let s = &e.stats;
        for (outcome, v) in [
            ("sent", &s.items_sent),
            ("failed", &s.items_failed),
            ("rejected", &s.items_rejected),
            ("dropped_queue_full", &e.queue.stats.dropped_items),
        ] {
            let _ = writeln!(out, "dbintel_export_items_total{{sink=\"{}\",outcome=\"{outcome}\"}} {}", escape(&e.name), v.load(Relaxed));
        }
    }
    family(&mut out, "dbintel_export_shaped_total", "counter", "Changes made to fit the backend's limits.");
    for e in &exporters {
        let s = &e.stats;
        for (what, v) in
            [("value_truncated", &s.values_truncated), ("name_truncated", &s.names_truncated), ("attribute_dropped", &s.attributes_dropped)]
        {
            let _ = writeln!(out, "dbintel_export_shaped_total{{sink=\"{}\",change=\"{what}\"}} {}", escape(&e.name), v.load(Relaxed));
        }
    }
    family(&mut out, "dbintel_export_latency_seconds", "histogram", "Time of each export attempt.");
    for e in &exporters {
        let s = &e.stats;
        let sink = escape(&e.name);
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&s.latency_buckets) {
            let _ = writeln!(out, "dbintel_export_latency_seconds_bucket{{sink=\"{sink}\",le=\"{bound}\"}} {}", bucket.load(Relaxed));
        }
        let count = s.latency_count.load(Relaxed);
        let _ = writeln!(out, "dbintel_export_latency_seconds_bucket{{sink=\"{sink}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "dbintel_export_latency_seconds_sum{{sink=\"{sink}\"}} {}", s.latency_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "dbintel_export_latency_seconds_count{{sink=\"{sink}\"}} {count}");
    }

    family(&mut out, "dbintel_sampler_redis_errors_total", "counter", "Failed calls to the samplers' shared Redis.");
    let _ = writeln!(out, "dbintel_sampler_redis_errors_total {}", dbintel_operators::sample::REDIS_ERRORS.load(Relaxed));
    family(
        &mut out,
        "dbintel_sampler_local_fallback_decisions_total",
        "counter",
        "Sampling decisions made from local state while Redis was unavailable.",
    );
    let _ = writeln!(
        out,
        "dbintel_sampler_local_fallback_decisions_total {}",
        dbintel_operators::sample::REDIS_FALLBACK_DECISIONS.load(Relaxed)
    );
    family(&mut out, "dbintel_reloads_total", "counter", "Reloads by result.");
    let _ = writeln!(out, "dbintel_reloads_total{{result=\"applied\"}} {}", shared.reloads_applied.load(Relaxed));
    let _ = writeln!(out, "dbintel_reloads_total{{result=\"refused\"}} {}", shared.reloads_refused.load(Relaxed));
    family(&mut out, "dbintel_ready", "gauge", "1 when a plan is running and the replica knows its role.");
    let _ = writeln!(out, "dbintel_ready {}", u8::from(shared.is_ready()));
    if let Some((mode, identity, status)) = shared.cluster.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        let owned = status.owned.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let targets = status.targets.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let role = mode.role(!owned.is_empty());
        let mode = mode.as_str();
        family(&mut out, "dbintel_cluster_role", "gauge", "This replica's role (the label), 1.");
        let _ = writeln!(out, "dbintel_cluster_role{{mode=\"{mode}\",role=\"{role}\",identity=\"{}\"}} 1", escape(&identity));
        family(&mut out, "dbintel_cluster_owned_targets", "gauge", "Sources this replica may scrape now.");
        let all = mode == "none";
        let _ = writeln!(out, "dbintel_cluster_owned_targets {}", if all { targets.len() } else { owned.len() });
        family(&mut out, "dbintel_cluster_target_owned", "gauge", "1 for each source this replica scrapes.");
        for t in &targets {
            let _ = writeln!(out, "dbintel_cluster_target_owned{{target=\"{}\"}} {}", escape(t), u8::from(all || owned.contains(t)));
        }
        if mode == "sharded" {
            family(&mut out, "dbintel_cluster_members", "gauge", "Live replicas sharing the targets.");
            let _ = writeln!(out, "dbintel_cluster_members {}", status.members.load(Relaxed));
        }
    }
    if let Some(rss) = rss_bytes() {
        family(&mut out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    }
    out
}
