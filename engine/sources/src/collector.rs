//! The [`Collector`] trait and the registry of collectors per engine.
//!
//! A collector says three things: what it queries (chosen per server
//! version and flavour, at scrape time), how rows become records, and its
//! cadence. The same collector object serves a live target
//! ([`Collector::scrape`]) and recorded rows ([`Collector::replay`]), so
//! `dry-run --input` builds exactly the records production sends.

use std::time::Duration;

use dbintel_core::record::Record;
use dbintel_core::BoxFuture;
use dbintel_dsl::plan::{Collector as CollectorSpec, SourceNode};
use dbintel_dsl::schema::{
    ActivitySettings, DbSettings, InstanceSettings, MyTablesSettings, PgInstanceSettings, PgTablesSettings, PlansSettings,
    SqlQuerySettings, StatementsSettings,
};

use super::collectors::{activity, my_instance, my_statements, my_tables, pg_instance, pg_statements, pg_tables, plans, sql_query};
use super::rows::Row;
use super::target::{Engine, Target};
use super::SourceError;

/// What a collector's views cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole server (pg_stat_statements, pg_stat_activity,
    /// pg_stat_database, MySQL's global status…): read once per server,
    /// however many of its databases are targets.
    Server,
    /// The database connected to (tables, indexes, plans, a `sql` query):
    /// read once per database target.
    Database,
}

pub trait Collector: Send {
    /// How often [`Collector::scrape`] runs.
    fn interval(&self) -> Duration;

    /// What its views cover; server-wide collectors run on one target per
    /// server only.
    fn scope(&self) -> Scope {
        Scope::Database
    }

    /// How many scrapes make one emission (an activity window is many
    /// samples); `dry-run --scrapes N` runs N of these rounds.
    fn scrapes_per_round(&self) -> u64 {
        1
    }

    /// One scrape of a live target: its queries (per server version),
    /// mapped to records.
    fn scrape<'a>(&'a mut self, target: &'a Target, now: u64) -> BoxFuture<'a, Result<Vec<Record>, SourceError>>;

    /// One recorded scrape: the rows the collector's main query returned
    /// (the columns of its live query), through the same mapping.
    fn replay(&mut self, rows: Vec<Row>, now: u64) -> Result<Vec<Record>, Unreplayable>;

    /// The source stops: what is held (a partial activity window) comes
    /// out instead of being dropped.
    fn flush(&mut self, _now: u64) -> Vec<Record> {
        Vec::new()
    }

    /// Failures inside a scrape that did not fail it (a plan that could not
    /// be obtained): taken after each scrape, and counted.
    fn take_soft_errors(&mut self) -> Vec<SourceError> {
        Vec::new()
    }
}

/// This collector reads more than one query's rows, or none: it cannot be
/// fed from one recorded file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("collector `{0}` cannot be replayed from recorded rows")]
pub struct Unreplayable(pub String);

/// What building a collector needs.
pub struct Build<'a> {
    pub source: &'a SourceNode,
    pub engine: Engine,
    pub name: &'a str,
    pub spec: &'a CollectorSpec,
    /// The source's own interval (a collector without one uses it).
    pub source_interval: Duration,
    /// `dry-run --interval`: replaces every interval (and activity's window).
    pub interval_override: Option<Duration>,
    /// On the target that reads a server for several targets of a fleet:
    /// the databases those targets name. `tables` reads these (not every
    /// database of the server) unless its `databases` says otherwise.
    pub fleet_databases: &'a [String],
}

impl Build<'_> {
    fn interval(&self, own: Option<Duration>) -> Duration {
        self.interval_override.or(own).unwrap_or(self.source_interval)
    }

    /// The comment tag keys the source allows; keys that could never
    /// match (a `,`, `=`, space…) are left out, and said so.
    fn comment_keys(&self) -> Vec<String> {
        let keys = DbSettings::from_settings(&self.source.settings).comment_keys();
        let (good, bad): (Vec<String>, Vec<String>) = keys.into_iter().partition(|k| dbintel_stdlib::sql::comment_tags::is_valid_key(k));
        if !bad.is_empty() {
            tracing::warn!(collector = self.name, keys = ?bad, "allowed_comment_keys: these can never name a tag (1 to 64 of A-Z a-z 0-9 _ . -); left out");
        }
        good
    }

    /// How long a part that failed for a reason of configuration rests.
    fn config_retry(&self) -> Duration {
        DbSettings::from_settings(&self.source.settings).config_retry
    }
}

/// One entry of the registry: a collector name, the engines it runs on,
/// and how to build it.
pub struct Entry {
    pub name: &'static str,
    pub engines: &'static [Engine],
    pub build: fn(&Build<'_>) -> Box<dyn Collector>,
}

const BOTH: &[Engine] = &[Engine::Postgres, Engine::MySql];

/// Every named collector of the `postgres` and `mysql` sources. A `sql`
/// source's collectors are its queries ([`sql_query`]).
pub const REGISTRY: &[Entry] = &[
    Entry {
        name: "statements",
        engines: &[Engine::Postgres],
        build: |b| {
            let s = StatementsSettings::from_settings(&b.spec.settings);
            Box::new(pg_statements::PgStatements::new(&s, b.interval(s.interval), b.comment_keys()))
        },
    },
    Entry {
        name: "statements",
        engines: &[Engine::MySql],
        build: |b| {
            let s = StatementsSettings::from_settings(&b.spec.settings);
            Box::new(my_statements::MyStatements::new(&s, b.interval(s.interval), b.comment_keys()))
        },
    },
    Entry {
        name: "activity",
        engines: BOTH,
        build: |b| {
            let mut s = ActivitySettings::from_settings(&b.spec.settings);
            if let Some(window) = b.interval_override {
                s.window = window;
            }
            Box::new(activity::Activity::new(b.engine, &s, b.comment_keys()))
        },
    },
    Entry {
        name: "instance",
        engines: &[Engine::Postgres],
        build: |b| {
            let s = PgInstanceSettings::from_settings(&b.spec.settings);
            let sizes_every = b.interval_override.unwrap_or(s.sizes_every);
            Box::new(pg_instance::PgInstance::new(b.interval(s.interval), sizes_every, b.config_retry()))
        },
    },
    Entry {
        name: "instance",
        engines: &[Engine::MySql],
        build: |b| {
            let s = InstanceSettings::from_settings(&b.spec.settings);
            Box::new(my_instance::MyInstance::new(b.interval(s.interval), b.config_retry()))
        },
    },
    Entry {
        name: "tables",
        engines: &[Engine::Postgres],
        build: |b| {
            let mut s = PgTablesSettings::from_settings(&b.spec.settings);
            if s.databases.is_empty() {
                s.databases = b.fleet_databases.to_vec();
            }
            Box::new(pg_tables::PgTables::new(&s, b.interval(s.interval), b.config_retry()))
        },
    },
    Entry {
        name: "tables",
        engines: &[Engine::MySql],
        build: |b| {
            let mut s = MyTablesSettings::from_settings(&b.spec.settings);
            if s.databases.is_empty() {
                s.databases = b.fleet_databases.to_vec();
            }
            Box::new(my_tables::MyTables::new(&s, b.interval(s.interval), b.config_retry()))
        },
    },
    Entry {
        name: "plans",
        engines: BOTH,
        build: |b| {
            let s = PlansSettings::from_settings(&b.spec.settings);
            Box::new(plans::PlansCollector::new(&s, b.interval(s.interval)))
        },
    },
];

/// Why a collector cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("source `{source_name}`: there is no collector `{collector}` for {engine}")]
pub struct NoSuchCollector {
    pub source_name: String,
    pub collector: String,
    pub engine: &'static str,
}

/// The collector `b.name` of its source, for its engine.
pub fn build(source_name: &str, b: &Build<'_>) -> Result<Box<dyn Collector>, NoSuchCollector> {
    if b.source.kind == "sql" {
        let s = SqlQuerySettings::from_settings(&b.spec.settings);
        let interval = b.interval(s.interval);
        return Ok(Box::new(sql_query::SqlQuery::new(b.name, &s, interval)));
    }
    REGISTRY.iter().find(|e| e.name == b.name && e.engines.contains(&b.engine)).map(|e| (e.build)(b)).ok_or_else(|| NoSuchCollector {
        source_name: source_name.to_string(),
        collector: b.name.to_string(),
        engine: b.engine.system(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_collector_the_language_accepts_has_a_builder_for_each_engine() {
        for (kind, engine) in [("postgres", Engine::Postgres), ("mysql", Engine::MySql)] {
            let spec = dbintel_dsl::schema::source_kind(kind).expect("a source kind");
            for collector in spec.collectors {
                assert!(
                    REGISTRY.iter().any(|e| e.name == collector.name && e.engines.contains(&engine)),
                    "`{kind}` accepts `collect {}` but nothing builds it",
                    collector.name
                );
            }
            for entry in REGISTRY.iter().filter(|e| e.engines.contains(&engine)) {
                assert!(spec.collector(entry.name).is_some(), "`{}` is built for {kind} but the language refuses it", entry.name);
            }
        }
    }
}
