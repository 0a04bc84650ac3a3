//! Running sources against real databases: connect, then scrape on an
//! interval with jitter. Collectors of one source run one after another, so
//! a query still running at the next tick is never started twice; a scrape
//! that fails or times out is counted and the next one goes ahead. When
//! downstream has no room, the scrape is skipped and counted instead of
//! queued.

use std::sync::Arc;
use std::time::Duration;

use dbintel_dsl::plan::{Collector, SourceNode};

use super::postgres::{PgError, PgTarget, StatementsCollector};
use super::rows::{now_nanos, SqlMapping};
use crate::counters::NodeCounters;
use crate::record::Batch;
use crate::runtime::SourceOutput;

/// How many scrapes to run and how often (dry-run's `--scrapes`,
/// `--interval`); `None` means as configured, forever.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveOptions {
    pub scrapes: Option<u64>,
    pub interval: Option<Duration>,
}

enum Live {
    Statements(StatementsCollector),
    Sql { query: String, mapping: SqlMapping },
    Unsupported,
}

fn collector(source: &SourceNode, name: &str, spec: &Collector) -> Live {
    match (source.kind.as_str(), name) {
        ("postgres", "statements") => Live::Statements(StatementsCollector::new(&spec.settings)),
        ("sql", _) => match spec.settings.str("query") {
            Some(query) => Live::Sql { query: query.to_string(), mapping: SqlMapping::new(name, &spec.settings) },
            None => Live::Unsupported,
        },
        _ => Live::Unsupported,
    }
}

/// A small deterministic jitter in [-j, +j] of the interval.
fn jittered(interval: Duration, jitter_percent: f64, round: u64) -> Duration {
    let spread = interval.as_secs_f64() * jitter_percent / 100.0;
    let unit = (dbintel_stdlib::functions::fnv1a(&round.to_le_bytes()) % 2001) as f64 / 1000.0 - 1.0;
    Duration::from_secs_f64((interval.as_secs_f64() + spread * unit).max(0.0))
}

pub async fn run(
    name: String,
    source: SourceNode,
    output: SourceOutput,
    counters: Arc<NodeCounters>,
    options: LiveOptions,
) -> Result<(), PgError> {
    let dsn_is_mysql = source
        .settings
        .secret("dsn")
        .and_then(|r| super::secret::Secret::resolve(r).ok())
        .is_some_and(|s| s.expose().starts_with("mysql:") || s.expose().starts_with("mariadb:"));
    if source.kind == "mysql" || dsn_is_mysql {
        tracing::error!(source = %name, "live MySQL/MariaDB collection is not built yet; this source produces nothing");
        return Ok(());
    }
    let target = PgTarget::connect(&name, &source.settings).await?;
    let mut collectors: Vec<(String, Live)> = source.collectors.iter().map(|(n, spec)| (n.clone(), collector(&source, n, spec))).collect();
    for (collector, live) in &collectors {
        if matches!(live, Live::Unsupported) {
            tracing::warn!(source = %name, %collector, "this collector is not built yet; it produces nothing");
        }
    }
    let interval = options.interval.or(source.settings.duration("interval")).unwrap_or(Duration::from_secs(30));
    let jitter = source.settings.percent("jitter").unwrap_or(10.0);
    let mut round = 0u64;
    loop {
        for (collector, live) in &mut collectors {
            if !output.has_room() {
                NodeCounters::add(&counters.skipped_scrapes, 1);
                tracing::warn!(source = %name, %collector, "downstream is full: scrape skipped");
                continue;
            }
            let now = now_nanos();
            let result = match live {
                Live::Statements(c) => c.scrape(&target, now).await,
                Live::Sql { query, mapping } => target.query(collector, query).await.map(|rows| {
                    rows.into_iter()
                        .filter_map(|row| match mapping.record(row, now) {
                            Ok(r) => Some(r),
                            Err(reason) => {
                                NodeCounters::add(&counters.errors, 1);
                                tracing::warn!(source = %name, %collector, %reason, "row skipped");
                                None
                            }
                        })
                        .collect()
                }),
                Live::Unsupported => continue,
            };
            match result {
                Ok(records) if records.is_empty() => {}
                Ok(records) => {
                    NodeCounters::add(&counters.emitted, records.len());
                    output.send(collector, Batch::new(target.resource.clone(), records)).await;
                }
                Err(e) => {
                    NodeCounters::add(&counters.errors, 1);
                    tracing::warn!(error = %e, "scrape failed");
                }
            }
        }
        round += 1;
        if options.scrapes.is_some_and(|n| round >= n) {
            break;
        }
        tokio::time::sleep(jittered(interval, jitter, round)).await;
    }
    target.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bounds() {
        let base = Duration::from_secs(30);
        for round in 0..1000 {
            let d = jittered(base, 10.0, round);
            assert!(d >= Duration::from_secs(27) && d <= Duration::from_secs(33), "{d:?}");
        }
        assert_ne!(jittered(base, 10.0, 1), jittered(base, 10.0, 2));
    }
}
