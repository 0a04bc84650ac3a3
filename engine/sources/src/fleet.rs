//! One task per source node: its targets, each under its own supervisor.
//!
//! - The targets come from the plan (a `dsn`, an inline list, a targets
//!   file) and, with `discover = databases`, from each target's server:
//!   every database it can connect to (templates and `exclude_databases`
//!   left out), listed again every `discover_every`. A database that
//!   appears gets a target; one that disappears is stopped and forgotten,
//!   without an error storm.
//! - Server-wide collectors (statements, activity, instance) run on one
//!   target per server — the first by name of those with the same host
//!   and port; discovered databases run only the per-database ones. 100
//!   databases of one server make one copy of every server-wide series.
//! - A reload sends the new source definition: targets whose definition
//!   is unchanged keep running (connection, baselines, windows); the
//!   others stop (flushing) and start anew; removed ones stop.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use dbintel_core::counters::NodeCounters;
use dbintel_core::routing::SharedOutput;
use dbintel_dsl::plan::{SourceNode, TargetSpec};
use dbintel_dsl::schema::{DbSettings, Discover};
use tokio::sync::{mpsc, watch};

use crate::supervisor::{self, stopped, LiveOptions, TargetPlan};
use crate::target::{Engine, Target};
use crate::{ConnectSpec, SourceError};

struct Running {
    plan: TargetPlan,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), SourceError>>,
}

/// The databases a discovery loop found for one parent target.
struct Found {
    parent: String,
    databases: BTreeSet<String>,
}

/// The plans of a source's targets from its definition: which one runs
/// the server-wide collectors of each server.
pub fn target_plans(source_name: &str, node: &SourceNode) -> Vec<TargetPlan> {
    // the server each target points at, as configured
    let server = |t: &TargetSpec| -> String {
        ConnectSpec::resolve(source_name, &node.kind, &t.dsn).map(|s| s.server()).unwrap_or_else(|_| format!("?{}", t.name))
    };
    let mut first: BTreeMap<String, String> = BTreeMap::new();
    // the databases the targets of each server name, for its reader; `None`
    // once one of them discovers databases or names none we can tell (the
    // reader then reads every database, as with one target)
    let mut databases: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    let mut names: Vec<&TargetSpec> = node.targets.iter().collect();
    names.sort_by(|a, b| a.name.cmp(&b.name));
    let mut sharing: BTreeMap<String, usize> = BTreeMap::new();
    for t in names {
        let server = server(t);
        first.entry(server.clone()).or_insert_with(|| t.name.clone());
        *sharing.entry(server.clone()).or_default() += 1;
        let named = match DbSettings::from_settings(&t.settings).discover {
            Discover::Databases => None,
            _ => configured_database(source_name, node, t),
        };
        let known = databases.entry(server).or_insert_with(|| Some(BTreeSet::new()));
        match (known.as_mut(), named) {
            (Some(set), Some(db)) => {
                set.insert(db);
            }
            _ => *known = None,
        }
    }
    let shared = Arc::new(SourceNode {
        kind: node.kind.clone(),
        settings: node.settings.clone(),
        collectors: node.collectors.clone(),
        targets: Vec::new(),
        targets_file: node.targets_file.clone(),
    });
    node.targets
        .iter()
        .map(|t| {
            let server = server(t);
            let owner = first.get(&server);
            let reads = owner == Some(&t.name);
            // one target of its server: it reads every database, as a
            // plain `dsn` does; several: the ones they name
            let fleet_databases = match (reads, sharing.get(&server).copied().unwrap_or(0) > 1) {
                (true, true) => {
                    databases.get(&server).cloned().flatten().map(|d| d.iter().map(|n| literal_glob(n)).collect()).unwrap_or_default()
                }
                _ => Vec::new(),
            };
            TargetPlan {
                source: source_name.to_string(),
                target: t.clone(),
                node: shared.clone(),
                server_scope: reads,
                covered_by: (!reads).then(|| owner.cloned()).flatten(),
                fleet_databases,
                database: None,
                key: TargetPlan::key_of(source_name, &t.name),
                discovered: false,
            }
        })
        .collect()
}

/// The database a target's DSN names, if it names one.
fn configured_database(source_name: &str, node: &SourceNode, t: &TargetSpec) -> Option<String> {
    ConnectSpec::resolve(source_name, &node.kind, &t.dsn).ok()?.database().map(str::to_string)
}

/// A glob that matches exactly `name` (the `databases` setting takes
/// globs; a database name may hold their metacharacters).
fn literal_glob(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | '{' | '}' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Runs a source's targets until told to stop; `updates` brings the
/// source's new definition on a reload. With `fail_fast` (dry-run), the
/// first target that cannot connect ends it with that error.
pub async fn run_source(
    name: String,
    node: SourceNode,
    output: SharedOutput,
    counters: Arc<NodeCounters>,
    options: LiveOptions,
    mut updates: Option<watch::Receiver<SourceNode>>,
) -> Result<(), SourceError> {
    let mut stop = options.stop.clone();
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let (found_tx, mut found_rx) = mpsc::channel::<Found>(16);
    let mut discovery: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut node = node;
    let mut planned = target_plans(&name, &node);
    let start = |plan: TargetPlan, running: &mut BTreeMap<String, Running>| {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut target_options = options.clone();
        target_options.stop = Some(stop_rx);
        let key = plan.target.name.clone();
        let task = tokio::spawn(supervisor::run_target(plan.clone(), output.clone(), counters.clone(), target_options));
        running.insert(key, Running { plan, stop: stop_tx, task });
    };
    for plan in planned.clone() {
        start(plan, &mut running);
    }
    spawn_discovery(&name, &node, &options, &found_tx, &mut discovery);

    loop {
        // a dry run ends when its targets have done their rounds
        if options.scrapes.is_some() && running.values().all(|r| r.task.is_finished()) {
            break;
        }
        tokio::select! {
            _ = stopped(&mut stop) => break,
            _ = tokio::time::sleep(Duration::from_millis(200)), if options.scrapes.is_some() => {}
            changed = async {
                match updates.as_mut() {
                    Some(rx) => rx.changed().await.map(|()| rx.borrow_and_update().clone()),
                    None => std::future::pending().await,
                }
            } => {
                let Ok(new) = changed else { updates = None; continue };
                let new_plans = target_plans(&name, &new);
                let keep: BTreeMap<&String, &TargetPlan> = new_plans.iter().map(|p| (&p.target.name, p)).collect();
                // unchanged targets keep running; changed and removed ones
                // stop (and flush) first
                let mut stale: Vec<String> = running
                    .iter()
                    .filter(|(n, r)| !r.plan.discovered && keep.get(n).is_none_or(|p| !p.runs_like(&r.plan)))
                    .map(|(n, _)| n.clone())
                    .collect();
                // a discovered database goes with its parent
                let orphans: Vec<String> = running
                    .iter()
                    .filter(|(n, r)| r.plan.discovered && n.split_once('/').is_none_or(|(parent, _)| stale.iter().any(|s| s == parent) || !keep.contains_key(&parent.to_string())))
                    .map(|(n, _)| n.clone())
                    .collect();
                stale.extend(orphans);
                for n in &stale {
                    if let Some(r) = running.remove(n) {
                        stop_target(&name, r).await;
                        if !keep.contains_key(n) {
                            options.status.remove(&name, n);
                        }
                    }
                }
                let fresh: Vec<TargetPlan> = new_plans.iter().filter(|p| !running.contains_key(&p.target.name)).cloned().collect();
                for plan in fresh {
                    start(plan, &mut running);
                }
                for d in discovery.drain(..) {
                    d.abort();
                }
                node = new;
                planned = new_plans;
                spawn_discovery(&name, &node, &options, &found_tx, &mut discovery);
            }
            Some(found) = found_rx.recv() => {
                let Some(parent) = planned.iter().find(|p| p.target.name == found.parent).cloned() else { continue };
                let own = parent_database(&parent);
                let prefix = format!("{}/", parent.target.name);
                let wanted: BTreeSet<String> = found.databases.iter().filter(|d| Some(*d) != own.as_ref()).map(|d| format!("{prefix}{d}")).collect();
                let gone: Vec<String> = running.keys().filter(|k| k.starts_with(&prefix) && !wanted.contains(*k)).cloned().collect();
                for n in gone {
                    if let Some(r) = running.remove(&n) {
                        tracing::info!(source = %name, target = %n, "the database is gone; its target stops");
                        stop_target(&name, r).await;
                        options.status.remove(&name, &n);
                    }
                }
                let fresh: Vec<String> = wanted.into_iter().filter(|c| !running.contains_key(c)).collect();
                for child in fresh {
                    let database = child[prefix.len()..].to_string();
                    let mut target = parent.target.clone();
                    target.name = child.clone();
                    tracing::info!(source = %name, target = %child, "found a database; scraping it");
                    let plan = TargetPlan {
                        source: name.clone(),
                        key: TargetPlan::key_of(&name, &parent.target.name),
                        target,
                        node: parent.node.clone(),
                        server_scope: false,
                        covered_by: Some(parent.target.name.clone()),
                        fleet_databases: Vec::new(),
                        database: Some(database),
                        discovered: true,
                    };
                    start(plan, &mut running);
                }
            }
        }
    }
    for d in discovery {
        d.abort();
    }
    let mut first_error = None;
    for (_, r) in running {
        r.stop.send_replace(true);
        match r.task.await {
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Ok(Ok(())) => {}
            Err(e) => tracing::error!(source = %name, error = %e, "a target's task panicked"),
        }
    }
    match first_error {
        Some(e) if options.fail_fast => Err(e),
        _ => Ok(()),
    }
}

async fn stop_target(source: &str, r: Running) {
    r.stop.send_replace(true);
    match tokio::time::timeout(Duration::from_secs(30), r.task).await {
        Ok(_) => {}
        Err(_) => tracing::warn!(source, target = %r.plan.target.name, "the target did not stop within 30 s"),
    }
}

/// The database a parent target's own DSN names (its children skip it).
fn parent_database(plan: &TargetPlan) -> Option<String> {
    plan.connect_spec().ok()?.database().map(str::to_string)
}

/// A discovery loop per target with `discover = databases`.
fn spawn_discovery(
    name: &str,
    node: &SourceNode,
    options: &LiveOptions,
    found: &mpsc::Sender<Found>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) {
    for plan in target_plans(name, node) {
        let settings = DbSettings::from_settings(&plan.target.settings);
        if settings.discover != Discover::Databases || Engine::of(&node.kind, None) != Engine::Postgres {
            continue;
        }
        let (found, options) = (found.clone(), options.clone());
        tasks.push(tokio::spawn(async move { discover(plan, settings, options, found).await }));
    }
}

/// Lists the parent's server's databases every `discover_every`, while the
/// parent's lease (if any) is held. Failures are logged once per cause and
/// the last list stands.
async fn discover(plan: TargetPlan, settings: DbSettings, options: LiveOptions, found: mpsc::Sender<Found>) {
    let mut cause: Option<String> = None;
    let fence = options.fences.as_ref().and_then(|f| f.fence(&plan.key));
    loop {
        if fence.as_ref().is_none_or(|f| f.holds()) {
            match list_databases(&plan, &settings).await {
                Ok(databases) => {
                    cause = None;
                    if found.send(Found { parent: plan.target.name.clone(), databases }).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    if cause.as_deref() != Some(&e.cause()) {
                        tracing::warn!(source = %plan.key, error = %e, "cannot list the server's databases; keeping the last list");
                        cause = Some(e.cause());
                    }
                }
            }
        }
        tokio::time::sleep(settings.discover_every.max(Duration::from_secs(1))).await;
    }
}

async fn list_databases(plan: &TargetPlan, settings: &DbSettings) -> Result<BTreeSet<String>, SourceError> {
    let target = Target::connect(&plan.key, settings, &plan.connect_spec()?, crate::sessions::Sessions::Shared).await?;
    let rows = target
        .query(
            "discover databases",
            "SELECT datname::text AS datname FROM pg_database
              WHERE datallowconn AND NOT datistemplate AND has_database_privilege(datname, 'CONNECT')",
        )
        .await;
    target.close().await;
    Ok(rows?
        .iter()
        .filter_map(|r| r.get("datname").and_then(|v| v.as_str()).map(str::to_string))
        .filter(|d| !settings.exclude_databases.contains(d))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_host_and_port() {
        let server = |kind: &str, url: &str| {
            ConnectSpec::resolve("t", kind, &dbintel_dsl::plan::TargetDsn::Url { url: url.into(), password: None }).unwrap().server()
        };
        assert_eq!(server("postgres", "postgres://u:p@db.internal/x"), "db.internal:5432");
        assert_eq!(server("mysql", "mysql://u@10.0.0.1:3307/x?ssl=1"), "10.0.0.1:3307");
    }

    #[test]
    fn plans_share_one_copy_of_the_source_without_its_target_list() {
        use dbintel_dsl::plan::{Settings, TargetDsn};
        let target = |i: usize| TargetSpec {
            name: format!("db{i:03}"),
            dsn: TargetDsn::Url { url: format!("postgres://u@10.0.0.{}:5432/app{i:03}?sslmode=disable", i % 3), password: None },
            attributes: Default::default(),
            settings: Settings::default(),
        };
        let node = SourceNode {
            kind: "postgres".into(),
            settings: Settings::default(),
            collectors: Default::default(),
            targets: (0..300).map(target).collect(),
            targets_file: None,
        };
        let plans = target_plans("fleet", &node);
        assert_eq!(plans.len(), 300);
        // one copy of the list per target made memory grow with the square
        // of the fleet (158 MiB RSS at 100 targets, 383 MiB at 200)
        assert!(plans.iter().all(|p| p.node.targets.is_empty() && Arc::ptr_eq(&p.node, &plans[0].node)));
        // the server-wide collectors run once per server: the first by name
        let owners: Vec<&str> = plans.iter().filter(|p| p.server_scope).map(|p| p.target.name.as_str()).collect();
        assert_eq!(owners, ["db000", "db001", "db002"]);
        // which reads the databases its server's targets name, not all
        let first = &plans[0].fleet_databases;
        assert_eq!((first.len(), first[0].as_str(), first[1].as_str()), (100, "app000", "app003"), "{first:?}");
        assert!(plans[3].fleet_databases.is_empty() && plans[3].covered_by.as_deref() == Some("db000"));
        // a server with one target reads every database, as a plain dsn does
        let single = SourceNode { targets: vec![target(0)], ..node };
        let plans = target_plans("fleet", &single);
        assert!(plans[0].server_scope && plans[0].fleet_databases.is_empty() && plans[0].covered_by.is_none());
    }

    fn spec(name: &str, url: &str, settings: dbintel_dsl::plan::Settings) -> TargetSpec {
        TargetSpec {
            name: name.into(),
            dsn: dbintel_dsl::plan::TargetDsn::Url { url: url.into(), password: None },
            attributes: Default::default(),
            settings,
        }
    }

    fn node(targets: Vec<TargetSpec>) -> SourceNode {
        SourceNode { kind: "postgres".into(), settings: Default::default(), collectors: Default::default(), targets, targets_file: None }
    }

    /// The reader of a shared server reads only named databases when it
    /// knows every one: a target that discovers databases, or names none
    /// (the server then takes the user's name), makes it read them all.
    #[test]
    fn a_shared_server_is_read_whole_unless_every_target_names_its_database() {
        use dbintel_dsl::plan::{Settings, Value};
        let discovering = Settings(indexmap::IndexMap::from_iter([("discover".to_string(), Value::Word("databases".into()))]));
        for others in [
            spec("b", "postgres://u@h:5432/app_b", discovering),
            spec("b", "postgres://u@h:5432", Settings::default()),
            spec("b", "postgres://u@h:5432/?sslmode=disable", Settings::default()),
        ] {
            let plans = target_plans("fleet", &node(vec![spec("a", "postgres://u@h:5432/app_a", Settings::default()), others.clone()]));
            assert!(plans[0].server_scope, "{others:?}");
            assert!(plans[0].fleet_databases.is_empty(), "{others:?}: {:?}", plans[0].fleet_databases);
        }
    }

    /// Names as the server has them: percent-decoded, and matched as
    /// themselves by the reader's glob filter.
    #[test]
    fn named_databases_are_decoded_and_matched_literally() {
        use dbintel_dsl::plan::Settings;
        let plans = target_plans(
            "fleet",
            &node(vec![
                spec("a", "postgres://u@h:5432/my%20db?sslmode=disable", Settings::default()),
                spec("b", "postgres://u@h:5432/app_*", Settings::default()),
                spec("c", "postgres://u@h:5432/x%7Bz%7D", Settings::default()),
                spec("d", "postgres://u@h:5432/%C3%A9t%C3%A9", Settings::default()),
            ]),
        );
        let filter =
            crate::collectors::name_filter::NameFilter::new("databases", &plans[0].fleet_databases, &[]).expect("literal globs compile");
        for name in ["my db", "app_*", "x{z}", "été"] {
            assert!(filter.admits(name), "{name} in {:?}", plans[0].fleet_databases);
        }
        for name in ["app_other", "my%20db", "x", "z", "ete"] {
            assert!(!filter.admits(name), "{name} in {:?}", plans[0].fleet_databases);
        }
    }
}
