//! What every collector emits, declared next to the collector.
//!
//! Each collector file holds a [`Declaration`]: its metrics (name, unit,
//! instrument, value type, attributes with their values, the resource
//! level they live on, and where the name comes from) and its events. The
//! collectors build their points *from* the declaration
//! ([`Metric::point`]), so a name, unit or instrument cannot differ
//! between code and catalogue; [`conformance`] checks the rest (attribute
//! names and values, resource levels) on real output, and
//! [`markdown`] writes the README's catalogue tables (a test fails when the
//! README and the declarations disagree).
//!
//! The data model is the OpenTelemetry Collector contrib receivers'
//! (`postgresqlreceiver`, `mysqlreceiver`, default mode): that is what New
//! Relic's entity rules, golden metrics and dashboards query. Resource
//! levels follow the PostgreSQL receiver: one resource per server, per
//! database, per table, per index and per function. A collector puts the
//! resource-level attributes (`postgresql.database.name`, …) on its points;
//! [`by_resource`] moves them onto the batch's resource when the records
//! leave the source, grouping the points by resource (and drops the
//! target's `db.namespace` there: it names the database the source
//! connects to, not the one the point is about).

use dbintel_core::record::{MetricKind, MetricPoint, Number, Record, Resource, Temporality};
use dbintel_stdlib::Map;

use crate::target::Engine;

/// How a metric's points are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instrument {
    Gauge,
    /// A monotonic cumulative sum (a counter since some start).
    Counter,
    /// A non-monotonic cumulative sum (the contrib receivers' "sum" for
    /// levels such as backends or sizes).
    UpDownCounter,
    /// A monotonic sum per interval (dbintel's statement deltas).
    DeltaCounter,
}

impl Instrument {
    pub fn kind(self) -> MetricKind {
        match self {
            Instrument::Gauge => MetricKind::Gauge,
            Instrument::Counter => MetricKind::Sum { monotonic: true, temporality: Temporality::Cumulative },
            Instrument::UpDownCounter => MetricKind::Sum { monotonic: false, temporality: Temporality::Cumulative },
            Instrument::DeltaCounter => MetricKind::Sum { monotonic: true, temporality: Temporality::Delta },
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Instrument::Gauge => "gauge",
            Instrument::Counter => "sum, monotonic, cumulative",
            Instrument::UpDownCounter => "sum, cumulative",
            Instrument::DeltaCounter => "sum, monotonic, delta",
        }
    }
}

/// The resource a point lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The server: the target's resource as it is.
    Instance,
    /// `postgresql.database.name`.
    Database,
    /// `postgresql.database.name`, `postgresql.schema.name`,
    /// `postgresql.table.name` (`schema.table`, as the receiver writes it).
    Table,
    /// `postgresql.database.name`, `postgresql.schema.name`,
    /// `postgresql.table.name` (the bare table name, as the receiver
    /// writes it for indexes), `postgresql.index.name`.
    Index,
    /// `postgresql.database.name`, `postgresql.schema.name`.
    Function,
}

/// The resource attributes a point may carry to be moved onto its
/// resource, in the order they are added there.
pub const RESOURCE_KEYS: &[&str] = &[DATABASE_NAME, SCHEMA_NAME, TABLE_NAME, INDEX_NAME];
pub const DATABASE_NAME: &str = "postgresql.database.name";
pub const SCHEMA_NAME: &str = "postgresql.schema.name";
pub const TABLE_NAME: &str = "postgresql.table.name";
pub const INDEX_NAME: &str = "postgresql.index.name";

impl Level {
    /// The resource attributes of this level beyond the server's.
    pub fn resource_attributes(self) -> &'static [&'static str] {
        match self {
            Level::Instance => &[],
            Level::Database => &[DATABASE_NAME],
            Level::Table => &[DATABASE_NAME, SCHEMA_NAME, TABLE_NAME],
            Level::Index => &[DATABASE_NAME, SCHEMA_NAME, TABLE_NAME, INDEX_NAME],
            Level::Function => &[DATABASE_NAME, SCHEMA_NAME],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Level::Instance => "server",
            Level::Database => "database",
            Level::Table => "table",
            Level::Index => "index",
            Level::Function => "function",
        }
    }
}

/// Where a name comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The contrib receiver's, enabled there by default.
    Contrib,
    /// The contrib receiver's, optional there (New Relic's dashboards
    /// query most of these, so dbintel sends them).
    ContribOptional,
    /// dbintel's own.
    Dbintel,
}

impl Origin {
    fn describe(self) -> &'static str {
        match self {
            Origin::Contrib => "contrib",
            Origin::ContribOptional => "contrib (optional there)",
            Origin::Dbintel => "dbintel",
        }
    }
}

/// A point attribute and the values it takes (empty: free text or a
/// number).
#[derive(Debug, Clone, Copy)]
pub struct Attr {
    pub name: &'static str,
    pub values: &'static [&'static str],
}

pub const fn attr(name: &'static str, values: &'static [&'static str]) -> Attr {
    Attr { name, values }
}

/// One metric a collector emits.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    pub instrument: Instrument,
    /// Double values (else integers).
    pub double: bool,
    pub level: Level,
    pub attributes: &'static [Attr],
    pub origin: Origin,
    pub description: &'static str,
}

impl Metric {
    /// A point of this metric. `start` is when counting began (cumulative
    /// sums; 0 for gauges); `attributes` are the point's own plus the
    /// resource-level ones of its [`Level`].
    pub fn point(&self, value: f64, start: u64, now: u64, attributes: Map) -> Record {
        let value = if self.double { Number::Double(value) } else { Number::Int(value.round() as i64) };
        let start = if self.instrument == Instrument::Gauge { 0 } else { start };
        Record::Metric(MetricPoint {
            name: self.name.to_string(),
            unit: self.unit.to_string(),
            description: self.description.to_string(),
            kind: self.instrument.kind(),
            start_time_unix_nano: start,
            time_unix_nano: now,
            value,
            attributes,
        })
    }
}

/// One event (a log record with an event name) a collector emits.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub name: &'static str,
    pub attributes: &'static [&'static str],
    pub description: &'static str,
}

/// What one collector emits.
#[derive(Debug, Clone, Copy)]
pub struct Declaration {
    pub collector: &'static str,
    pub engine: Engine,
    pub metrics: &'static [Metric],
    pub events: &'static [Event],
}

impl Declaration {
    pub fn metric(&self, name: &str) -> Option<&'static Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

/// Every collector's declaration, in the order the README lists them.
pub fn all() -> Vec<&'static Declaration> {
    use crate::collectors::*;
    vec![
        &pg_instance::DECLARATION,
        &pg_tables::DECLARATION,
        &pg_statements::DECLARATION,
        &activity::PG_DECLARATION,
        &plans::PG_DECLARATION,
        &my_instance::DECLARATION,
        &my_tables::DECLARATION,
        &my_statements::DECLARATION,
        &activity::MY_DECLARATION,
        &plans::MY_DECLARATION,
    ]
    .into_iter()
    // the log sources' (dbintel-logs), after the database collectors'
    .chain(crate::log_catalogue::ALL.iter().copied())
    .collect()
}

/// Groups records by resource: each record's resource-level attributes
/// ([`RESOURCE_KEYS`]) leave its attributes and join `base` to make its
/// resource. Order within a resource is kept.
pub fn by_resource(base: &Resource, records: Vec<Record>) -> Vec<(Resource, Vec<Record>)> {
    // `None`: `base` itself, the resource of most records (instance-level
    // ones carry none of the keys); it is cloned once per group, not once
    // per record, and compared for free
    let mut out: Vec<(Option<Resource>, Vec<Record>)> = Vec::new();
    for mut record in records {
        let mut own = None::<Resource>;
        let attributes = record.attributes_mut();
        for key in RESOURCE_KEYS {
            if let Some(value) = attributes.remove(key) {
                let resource = own.get_or_insert_with(|| {
                    // the target's `db.namespace` names the database it
                    // connects to, not this one
                    let mut r = base.clone();
                    r.attributes.remove("db.namespace");
                    r
                });
                resource.attributes.insert(*key, value);
            }
        }
        match out.iter_mut().find(|(r, _)| *r == own) {
            Some((_, group)) => group.push(record),
            None => out.push((own, vec![record])),
        }
    }
    out.into_iter().map(|(resource, group)| (resource.unwrap_or_else(|| base.clone()), group)).collect()
}

/// Problems with `records` (as they arrive at a receiver: resource-level
/// attributes on the resource) against the declarations of `engine`:
/// undeclared names, a wrong unit or instrument, attributes the
/// declaration does not list, values outside a declared set, a resource
/// that lacks its level's attributes. Empty when everything conforms.
pub fn conformance(engine: Engine, resource: &Map, record: &Record) -> Vec<String> {
    let declarations: Vec<&Declaration> = all().into_iter().filter(|d| d.engine == engine).collect();
    let mut problems = Vec::new();
    match record {
        Record::Metric(m) => {
            let Some(declared) = declarations.iter().find_map(|d| d.metric(&m.name)) else {
                return vec![format!("{}: no collector declares it", m.name)];
            };
            if m.unit != declared.unit {
                problems.push(format!("{}: unit {:?}, declared {:?}", m.name, m.unit, declared.unit));
            }
            if m.kind != declared.instrument.kind() {
                problems.push(format!("{}: {:?}, declared {:?}", m.name, m.kind, declared.instrument));
            }
            if matches!(m.value, Number::Double(_)) != declared.double {
                problems.push(format!("{}: value type differs from the declaration", m.name));
            }
            for (key, value) in m.attributes.iter() {
                match declared.attributes.iter().find(|a| a.name == key) {
                    None => problems.push(format!("{}: attribute {key} is not declared", m.name)),
                    Some(a) if !a.values.is_empty() && !a.values.iter().any(|v| value.as_str() == Some(v)) => {
                        problems.push(format!("{}: {key} = {value} is not one of {:?}", m.name, a.values))
                    }
                    Some(_) => {}
                }
            }
            for key in RESOURCE_KEYS {
                let wanted = declared.level.resource_attributes().contains(key);
                if resource.get(key).is_some() != wanted {
                    problems.push(format!("{}: resource attribute {key} present = {}, level {:?}", m.name, !wanted, declared.level));
                }
            }
        }
        Record::Log(l) => {
            // an event several collectors emit (a plan from EXPLAIN or from
            // the server's log) may carry what any of them declares
            let declared: Vec<&Event> = declarations.iter().flat_map(|d| d.events.iter().filter(|e| e.name == l.event_name)).collect();
            if declared.is_empty() {
                return vec![format!("event {}: no collector declares it", l.event_name)];
            }
            for (key, _) in l.attributes.iter() {
                if !declared.iter().any(|d| d.attributes.contains(&key)) && key != "dbintel.truncated" {
                    problems.push(format!("event {}: attribute {key} is not declared", l.event_name));
                }
            }
        }
    }
    problems
}

/// The catalogue of one engine as Markdown tables (metrics, then events):
/// what the README shows between its `catalogue` markers.
pub fn markdown(engine: Engine) -> String {
    let mut out = String::new();
    out.push_str("| metric | what | unit | instrument | attributes | resource | origin | collector |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    let declarations: Vec<&Declaration> = all().into_iter().filter(|d| d.engine == engine).collect();
    for d in &declarations {
        for m in d.metrics {
            let attributes = if m.attributes.is_empty() {
                "—".to_string()
            } else {
                m.attributes
                    .iter()
                    .map(|a| if a.values.is_empty() { format!("`{}`", a.name) } else { format!("`{}` ({})", a.name, a.values.join(", ")) })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let value = if m.double { "double" } else { "int" };
            out.push_str(&format!(
                "| `{}` | {} | `{}` | {}, {value} | {attributes} | {} | {} | `{}` |\n",
                m.name,
                m.description,
                m.unit,
                m.instrument.describe(),
                m.level.describe(),
                m.origin.describe(),
                d.collector
            ));
        }
    }
    out.push_str("\n| event | what | attributes | collector |\n| --- | --- | --- | --- |\n");
    for d in &declarations {
        for e in d.events {
            let attributes = e.attributes.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ");
            out.push_str(&format!("| `{}` | {} | {attributes} | `{}` |\n", e.name, e.description, d.collector));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbintel_stdlib::Value;

    #[test]
    fn resource_level_attributes_move_onto_their_resource_and_group_points() {
        let mut base = Resource::default();
        base.attributes.insert("service.instance.id", Value::Str("db:5432".into()));
        base.attributes.insert("db.namespace", Value::Str("postgres".into()));
        let point = |db: Option<&str>, table: Option<&str>| {
            let mut attributes = Map::new();
            if let Some(db) = db {
                attributes.insert(DATABASE_NAME, Value::Str(db.into()));
            }
            if let Some(table) = table {
                attributes.insert(TABLE_NAME, Value::Str(table.into()));
            }
            attributes.insert("state", Value::Str("live".into()));
            Record::Metric(MetricPoint::new("postgresql.rows", "1", MetricKind::Gauge, Number::Int(1), 1, attributes))
        };
        let groups = by_resource(
            &base,
            vec![point(None, None), point(Some("app"), Some("public.t")), point(Some("app"), None), point(Some("app"), Some("public.t"))],
        );
        assert_eq!(groups.len(), 3, "server, table, database: {groups:?}");
        assert_eq!(groups[1].1.len(), 2, "two points of one table share its resource");
        let table = &groups[1].0.attributes;
        assert_eq!(table.get(DATABASE_NAME), Some(&Value::Str("app".into())));
        assert_eq!(table.get("service.instance.id"), Some(&Value::Str("db:5432".into())), "every resource keeps the server's");
        assert_eq!(table.get("db.namespace"), None, "the connection's database is not this one");
        assert!(groups[1].1.iter().all(|r| r.attributes().get(TABLE_NAME).is_none() && r.attributes().get("state").is_some()));
        assert_eq!(groups[0].0, base);
    }

    #[test]
    fn every_declared_name_is_unique_per_engine_and_prefixed_by_it() {
        for engine in [Engine::Postgres, Engine::MySql] {
            let mut seen = std::collections::BTreeSet::new();
            for d in all().into_iter().filter(|d| d.engine == engine) {
                for m in d.metrics {
                    assert!(seen.insert(m.name), "{} declared twice", m.name);
                    assert!(m.name.starts_with(&format!("{}.", engine.system())), "{}", m.name);
                    if engine == Engine::MySql {
                        assert_eq!(m.level, Level::Instance, "MySQL has one resource per server: {}", m.name);
                    }
                }
            }
        }
    }

    /// README.md's catalogue tables are [`markdown`]'s output: regenerate
    /// them with `DBINTEL_BLESS=1 cargo test -p dbintel-sources --lib readme`.
    #[test]
    fn the_readme_catalogue_follows_the_declarations() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let mut readme = std::fs::read_to_string(&path).expect("README.md");
        let bless = std::env::var_os("DBINTEL_BLESS").is_some();
        for engine in [Engine::Postgres, Engine::MySql] {
            let begin = format!("<!-- catalogue:{}:begin (generated; see engine/sources/src/catalogue.rs) -->\n", engine.system());
            let end = format!("<!-- catalogue:{}:end -->", engine.system());
            let start = readme.find(&begin).unwrap_or_else(|| panic!("{begin} in README.md")) + begin.len();
            let stop = readme[start..].find(&end).unwrap_or_else(|| panic!("{end} in README.md")) + start;
            let table = markdown(engine);
            if bless {
                readme = format!("{}{table}{}", &readme[..start], &readme[stop..]);
                continue;
            }
            assert_eq!(
                &readme[start..stop],
                table,
                "README.md's {} catalogue is stale: DBINTEL_BLESS=1 cargo test -p dbintel-sources --lib readme",
                engine.system()
            );
        }
        if bless {
            std::fs::write(&path, readme).expect("write README.md");
        }
    }
}
