//! `dbintel doctor`: checks each target of a pipeline against everything
//! its collectors need and everything that makes their data good, and
//! says exactly what to run to fix what is missing — for the server's
//! version and flavour, with the right role and database names. It only
//! reads (every session is `run`'s: read-only, bounded); the SQL is
//! printed for a DBA to run.
//!
//! # Layout
//! - [`check`]: a [`Check`] is declared once (id, engines, what it looks
//!   at, what a problem means for the data); a run's [`Finding`]s carry
//!   ok / warn / fail / skip, what was seen, and the [`Fix`].
//! - [`examine`]: one target: connect (or take `run`'s session), read the
//!   [`facts`], run the families, close.
//! - One file per family: [`connection`] (reaching it, the role `run`
//!   would refuse), [`version`], [`extensions`] (pg_stat_statements loaded
//!   and created, performance_schema), [`settings`] (track_*,
//!   compute_query_id; consumers and instruments), [`privileges`]
//!   (exercised as the role), [`plans_helper`] (the EXPLAIN helper: its
//!   SQL text lives there), [`statement_fill`] (statement table fill and
//!   evictions), [`clock`] (skew), [`tls`], [`log_settings`] (for a log
//!   source, driven by a declared list).
//! - [`report`]: the run's output for people and machines, and the exit
//!   status; [`setup_sql`]: `--print-setup-sql`.
//! - [`board`]: the same checks inside `run`, on its own sessions, for
//!   `/status`.
//! - [`quote`]: names and values quoted for the SQL a fix prints.

pub mod board;
pub mod check;
pub mod clock;
pub mod connection;
pub mod examine;
pub mod extensions;
pub mod facts;
pub mod log_settings;
pub mod plans_helper;
pub mod privileges;
pub mod quote;
pub mod report;
pub mod settings;
pub mod setup_sql;
pub mod statement_fill;
pub mod tls;
pub mod version;

use std::sync::Arc;

use dbintel_dsl::plan::{NodeKind, Plan};
use dbintel_sources::supervisor::TargetPlan;

pub use board::ChecksBoard;

/// What every query of the checks is counted as (one series per target
/// in `/metrics`, however many queries the checks send).
pub(crate) const WHAT: &str = "setup checks";
pub use check::{Check, Finding, Fix, Status};
pub use examine::{check_connected, check_target, Options};
pub use report::{Report, TargetReport};

/// Every check declared, in the order a run reports them.
pub fn catalogue() -> Vec<&'static Check> {
    let mut checks: Vec<&'static Check> = vec![
        &connection::CONNECTION,
        &connection::ROLE,
        &version::VERSION,
        &extensions::PGSS_LOADED,
        &extensions::PGSS_CREATED,
        &extensions::PERFORMANCE_SCHEMA,
        &settings::PGSS_TRACK,
        &settings::TRACK_IO_TIMING,
        &settings::COMPUTE_QUERY_ID,
        &settings::TRACK_ACTIVITIES,
        &settings::QUERY_SIZE,
        &settings::TRACK_COUNTS,
        &settings::TRACK_FUNCTIONS,
        &settings::CONSUMERS,
        &settings::INSTRUMENTS,
        &privileges::STATISTICS,
        &privileges::REPLICATION,
        &privileges::CONNECT,
        &privileges::PERFORMANCE_SCHEMA,
        &privileges::PROCESS,
        &statement_fill::PGSS_FILL,
        &statement_fill::DIGEST_FILL,
        &plans_helper::HELPER,
        &clock::SKEW,
        &tls::TLS,
    ];
    checks.extend(log_settings::declared());
    checks
}

/// The catalogue as the README's table (generated; a test keeps the
/// README in step).
pub fn catalogue_markdown() -> String {
    let mut out = String::from("| check | engines | what it looks at | a problem means |\n| --- | --- | --- | --- |\n");
    for c in catalogue() {
        let engines = match c.engines {
            [dbintel_sources::target::Engine::Postgres] => "PostgreSQL",
            [dbintel_sources::target::Engine::MySql] => "MySQL, MariaDB",
            _ => "all",
        };
        out.push_str(&format!("| `{}` | {engines} | {} | {} |\n", c.id, c.what, c.means));
    }
    out
}

/// Every target of every database source of `plan`, as `run` plans them
/// (which target reads each server's server-wide views included). Log
/// sources are not targets: their server's log settings are checked
/// through the database source they name ([`logged_sources`]).
pub fn target_plans(plan: &Plan) -> Vec<TargetPlan> {
    plan.nodes
        .iter()
        .filter_map(|(name, node)| match &node.kind {
            NodeKind::Source(source) if !is_log_source(&source.kind) => Some(dbintel_sources::fleet::target_plans(name, source)),
            _ => None,
        })
        .flatten()
        .collect()
}

fn is_log_source(kind: &str) -> bool {
    kind.ends_with("_logs")
}

/// The database sources whose server's logs a log source of `plan` reads:
/// their log settings are checked too (`Options::logged_sources`).
pub fn logged_sources(plan: &Plan) -> std::collections::BTreeSet<String> {
    plan.nodes
        .values()
        .filter_map(|node| match &node.kind {
            NodeKind::Source(source) if is_log_source(&source.kind) => {
                dbintel_dsl::schema::LogSourceSettings::from_settings(&source.settings).server
            }
            _ => None,
        })
        .collect()
}

/// Checks `targets`, a few at a time, each on its own sessions; the
/// reports come back in the order given.
pub async fn check_all(targets: &[TargetPlan], options: &Options) -> Report {
    const AT_ONCE: usize = 4;
    let limit = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    let mut running = tokio::task::JoinSet::new();
    for (i, plan) in targets.iter().enumerate() {
        let (plan, options, limit) = (plan.clone(), options.clone(), limit.clone());
        running.spawn(async move {
            let _permit = limit.acquire_owned().await.ok();
            (i, check_target(&plan, &options).await)
        });
    }
    let mut reports: Vec<Option<TargetReport>> = vec![None; targets.len()];
    while let Some(done) = running.join_next().await {
        match done {
            Ok((i, report)) => reports[i] = Some(report),
            Err(e) => tracing::error!(error = %e, "a target's checks panicked"),
        }
    }
    Report { targets: reports.into_iter().flatten().collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table is [`catalogue_markdown`]'s output: regenerate
    /// it with `DBINTEL_BLESS=1 cargo test -p dbintel-doctor --lib readme`
    /// after declaring a check.
    #[test]
    fn the_readme_checks_table_follows_the_declarations() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(&path).expect("README.md");
        let (begin, end) = ("<!-- doctor-checks:begin (generated; see engine/doctor/src/lib.rs) -->\n", "<!-- doctor-checks:end -->");
        let start = readme.find(begin).expect("the begin marker in README.md") + begin.len();
        let stop = readme[start..].find(end).expect("the end marker in README.md") + start;
        let table = catalogue_markdown();
        if std::env::var_os("DBINTEL_BLESS").is_some() {
            std::fs::write(&path, format!("{}{table}{}", &readme[..start], &readme[stop..])).expect("write README.md");
            return;
        }
        assert_eq!(
            &readme[start..stop],
            table,
            "README.md's table of checks is stale: DBINTEL_BLESS=1 cargo test -p dbintel-doctor --lib readme"
        );
    }

    #[test]
    fn every_check_is_declared_once() {
        let ids: Vec<&str> = catalogue().iter().map(|c| c.id).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(ids.len(), unique.len(), "an id declared twice: {ids:?}");
        assert!(ids.iter().all(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')));
    }
}
