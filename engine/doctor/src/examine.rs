//! One target, examined: connect (or take `run`'s session), read the
//! facts, run every family that applies, close.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use dbintel_dsl::schema::{DbSettings, Discover};
use dbintel_sources::rows::Row;
use dbintel_sources::supervisor::TargetPlan;
use dbintel_sources::target::{Engine, Target};
use dbintel_sources::SourceError;

use crate::check::{Finding, Fix};
use crate::facts::{opt_text, Collectors, Facts};
use crate::report::{ServerSummary, TargetReport};
use crate::{clock, connection, extensions, log_settings, plans_helper, privileges, settings, statement_fill, tls, version};

/// What a doctor run is told besides the plan.
#[derive(Debug, Clone)]
pub struct Options {
    /// The role that is to own the EXPLAIN helper (`--explain-owner`).
    pub explain_owner: String,
    /// The database sources a log source reads the logs of: their
    /// servers' log settings are checked too ([`log_settings`]). A log
    /// source names the database source it belongs to; whoever builds
    /// the options from a plan puts that name here.
    pub logged_sources: BTreeSet<String>,
    /// At most this many databases are looked into per target (`discover
    /// = databases` with `collect plans`).
    pub max_databases: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options { explain_owner: plans_helper::DEFAULT_OWNER.to_string(), logged_sources: BTreeSet::new(), max_databases: 50 }
    }
}

/// What the families share for one target.
use dbintel_sources::sessions::SessionPool;

pub struct Ctx<'a> {
    pub target: &'a Target,
    pub facts: &'a Facts,
    pub plan: &'a TargetPlan,
    pub collectors: &'a Collectors,
    /// Where per-database collectors read (PostgreSQL): the target's own
    /// database, or every database discovery finds.
    pub databases: &'a [String],
    pub options: &'a Options,
    pools: std::sync::Mutex<BTreeMap<String, std::sync::Arc<SessionPool<sqlx::Postgres>>>>,
}

impl Ctx<'_> {
    /// Runs `sql` in `database`: on the target's session when it is its
    /// own, else on one connection to that database with the same role
    /// and the same safe session settings.
    pub async fn query_in(&self, database: &str, what: &str, sql: &str) -> Result<Vec<Row>, SourceError> {
        match self.target {
            Target::Pg(pg) if self.facts.database.as_deref() != Some(database) => {
                let pool = {
                    let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
                    pools.entry(database.to_string()).or_insert_with(|| std::sync::Arc::new(pg.database_pool(database))).clone()
                };
                pg.query_on(&pool, what, sql).await
            }
            _ => self.target.query(what, sql).await,
        }
    }

    async fn close(&self) {
        let pools: Vec<std::sync::Arc<SessionPool<sqlx::Postgres>>> =
            std::mem::take(&mut *self.pools.lock().unwrap_or_else(|p| p.into_inner())).into_values().collect();
        for pool in pools {
            pool.close().await;
        }
    }
}

/// The report's frame before anything is known but the plan.
fn frame(plan: &TargetPlan) -> TargetReport {
    let spec = plan.connect_spec().ok();
    TargetReport {
        source: plan.source.clone(),
        target: plan.target.name.clone(),
        kind: plan.node.kind.clone(),
        server: spec.as_ref().map(|s| s.server()),
        database: spec.as_ref().and_then(|s| s.database().map(str::to_string)),
        covered_by: if plan.server_scope { None } else { plan.covered_by.clone() },
        summary: None,
        findings: Vec::new(),
        checked_at: SystemTime::now(),
    }
}

/// Examines one target as `dbintel doctor` does: connects with the
/// pipeline's own DSN and settings, checks, closes. Never fails: what
/// goes wrong is a finding.
pub async fn check_target(plan: &TargetPlan, options: &Options) -> TargetReport {
    let mut report = frame(plan);
    let settings = DbSettings::from_settings(&plan.target.settings);
    // every query is bounded by the session's limits; this bounds the sum
    let limit = settings.connect_timeout * 3 + settings.timeout * 40;
    let work = async {
        let connected = match connection::connect(plan, &settings).await {
            Ok(connected) => connected,
            Err(findings) => return (None, findings),
        };
        let mut findings = connected.findings;
        let summary = examine(plan, &connected.target, options, &settings, &mut findings, true).await;
        connected.target.close().await;
        (summary, findings)
    };
    match tokio::time::timeout(limit, work).await {
        Ok((summary, findings)) => {
            report.summary = summary;
            report.findings = findings;
        }
        Err(_) => report.findings.push(Finding::fail(
            &connection::CONNECTION,
            format!("the checks did not finish within {limit:?}"),
            Fix::note("The server answers too slowly (each query is bounded by the source's `timeout`): look at its load."),
        )),
    }
    report.checked_at = SystemTime::now();
    report
}

/// Examines a target `run` has connected (and whose role it accepted),
/// on `run`'s own session: what `/status` shows under `checks`.
pub async fn check_connected(plan: &TargetPlan, target: &Target, options: &Options) -> TargetReport {
    let mut report = frame(plan);
    let settings = DbSettings::from_settings(&plan.target.settings);
    let mut findings = vec![Finding::ok(&connection::CONNECTION, "connected (run's session)")];
    report.summary = examine(plan, target, options, &settings, &mut findings, false).await;
    report.findings = findings;
    report.checked_at = SystemTime::now();
    report
}

/// Every family that applies, in order. `discover`: look into the
/// databases discovery would find (doctor does; `run` checks each
/// discovered database on its own target).
async fn examine(
    plan: &TargetPlan,
    target: &Target,
    options: &Options,
    settings: &DbSettings,
    findings: &mut Vec<Finding>,
    discover: bool,
) -> Option<ServerSummary> {
    let facts = match Facts::read(target).await {
        Ok(facts) => facts,
        // this process's own session budget was full: nothing is known
        // of the server yet, and nothing is wrong with it
        Err(e @ dbintel_sources::SourceError::NoSession { .. }) => {
            findings.push(Finding::skip(&version::VERSION, format!("not checked this round: {e}")));
            return None;
        }
        Err(e) => {
            findings.push(Finding::fail(
                &version::VERSION,
                format!("cannot read the server's version and settings ({}: {})", e.code(), e.class().as_str()),
                Fix::note("The role may not be able to read pg_settings / SHOW VARIABLES; see the error code."),
            ));
            return None;
        }
    };
    let summary = ServerSummary { description: facts.describe(), version_text: facts.version_text.clone(), role: facts.role.clone() };
    findings.extend(version::check(&facts));
    let collectors = Collectors::of(plan);
    connection::refine_role_fix(findings, &facts, &collectors);
    let databases = databases(target, &facts, plan, &collectors, options, settings, discover).await;
    let ctx = Ctx { target, facts: &facts, plan, collectors: &collectors, databases: &databases, options, pools: Default::default() };
    match target.engine() {
        Engine::Postgres => {
            findings.extend(extensions::pgss_loaded(&ctx));
            findings.extend(extensions::pgss_created(&ctx).await);
            findings.extend(settings::postgres(&ctx));
            findings.extend(privileges::postgres(&ctx).await);
            findings.extend(statement_fill::postgres(&ctx).await);
            findings.extend(plans_helper::check(&ctx).await);
        }
        Engine::MySql => {
            findings.extend(extensions::performance_schema(&ctx));
            findings.extend(settings::mysql(&ctx).await);
            findings.extend(privileges::mysql(&ctx).await);
            findings.extend(statement_fill::mysql(&ctx).await);
        }
    }
    findings.extend(clock::check(&ctx).await);
    let spec = plan.connect_spec().ok();
    let host = spec.as_ref().map(|s| s.host()).unwrap_or_default();
    let sslmode = spec.as_ref().map_or(dbintel_dsl::schema::SslMode::Prefer, |s| s.sslmode(settings));
    findings.extend(tls::check(&ctx, &host, sslmode).await);
    if options.logged_sources.contains(&plan.source) {
        findings.extend(log_settings::check(target, &facts, log_settings::for_flavour(facts.flavour)).await);
    }
    ctx.close().await;
    Some(summary)
}

/// The databases per-database checks look into.
async fn databases(
    target: &Target,
    facts: &Facts,
    plan: &TargetPlan,
    collectors: &Collectors,
    options: &Options,
    settings: &DbSettings,
    discover: bool,
) -> Vec<String> {
    let own: Vec<String> = facts.database.iter().cloned().collect();
    let discovering = discover && settings.discover == Discover::Databases && plan.database.is_none();
    if !discovering || !collectors.runs("plans") || !matches!(target, Target::Pg(_)) {
        return own;
    }
    let Ok(filter) = dbintel_sources::collectors::name_filter::NameFilter::new("databases", &[], &settings.exclude_databases) else {
        return own;
    };
    // as discovery lists them (fleet.rs)
    let rows = target
        .query(
            crate::WHAT,
            "SELECT datname::text AS datname FROM pg_database
              WHERE datallowconn AND NOT datistemplate AND has_database_privilege(datname, 'CONNECT') ORDER BY datname",
        )
        .await
        .unwrap_or_default();
    let mut found: Vec<String> = rows.iter().filter_map(|r| opt_text(r, "datname")).filter(|d| filter.admits(d)).collect();
    // the target's own first, then the others up to the bound
    found.retain(|d| !own.contains(d));
    let mut out = own;
    out.extend(found.into_iter().take(options.max_databases.saturating_sub(1)));
    out
}

/// How long `run` waits between checks of a target (`checks_every`).
pub fn every(plan: &TargetPlan) -> Option<Duration> {
    let every = DbSettings::from_settings(&plan.target.settings).checks_every;
    (!every.is_zero()).then_some(every)
}
