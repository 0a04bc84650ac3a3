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
//! (`postgresqlreceiver`, `mysqlreceiver`): that is what New Relic's entity
//! rules, golden metrics and dashboards query — in the receivers'
//! semantic-conventions resource model, which New Relic requires: one
//! resource per server (see `entity.rs`). The receiver's levels (server,
//! database, table, index, function) say which of its legacy attributes
//! (`postgresql.database.name`, …) a point carries; they stay on the
//! point, where the entity dashboards find them (New Relic flattens
//! resource and point into one row), and [`name_databases`] adds the
//! database as `db.namespace` when the records leave the source.

use dbintel_core::record::{MetricKind, MetricPoint, Number, Record, Temporality};
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
    /// dbintel's own attributes, beside the contract's.
    pub attributes: &'static [&'static str],
    /// New Relic's Database 360 contract for this event, if it is one of
    /// its events (see `db360.rs`): its attributes are declared there.
    pub db360: Option<&'static crate::db360::Contract>,
    pub description: &'static str,
}

impl Event {
    /// Whether the event may carry `attribute`.
    pub fn declares(&self, attribute: &str) -> bool {
        self.attributes.contains(&attribute) || self.db360.is_some_and(|c| c.fields.iter().any(|f| f.name == attribute))
    }
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

/// Names each record's database, as records leave a source: all of a
/// server's records share its resource (the semantic-conventions model New
/// Relic requires), so a point about a database carries it as
/// `db.namespace`, beside the receiver's `postgresql.database.name` that
/// the entity dashboards facet on (New Relic flattens both into one row);
/// records of a collector that reads the database it connects to (a `sql`
/// query) carry that one, `connected`.
pub fn name_databases(records: &mut [Record], connected: Option<&str>) {
    for record in records {
        let attributes = record.attributes_mut();
        if attributes.get("db.namespace").is_some() {
            continue;
        }
        let database = attributes.get(DATABASE_NAME).cloned().or_else(|| connected.map(|d| dbintel_stdlib::Value::Str(d.to_string())));
        if let Some(database) = database {
            attributes.insert("db.namespace", database);
        }
    }
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
                if RESOURCE_KEYS.contains(&key) || key == "db.namespace" {
                    continue;
                }
                match declared.attributes.iter().find(|a| a.name == key) {
                    None => problems.push(format!("{}: attribute {key} is not declared", m.name)),
                    Some(a) if !a.values.is_empty() && !a.values.iter().any(|v| value.as_str() == Some(v)) => {
                        problems.push(format!("{}: {key} = {value} is not one of {:?}", m.name, a.values))
                    }
                    Some(_) => {}
                }
            }
            // one resource per server: a level's attributes are on the
            // point (New Relic flattens point and resource alike)
            for key in RESOURCE_KEYS {
                let wanted = declared.level.resource_attributes().contains(key);
                if resource.get(key).is_some() {
                    problems.push(format!("{}: {key} on the resource (one resource per server)", m.name));
                }
                if m.attributes.get(key).is_some() != wanted {
                    problems.push(format!("{}: attribute {key} present = {}, level {:?}", m.name, !wanted, declared.level));
                }
            }
            if declared.level != Level::Instance && m.attributes.get("db.namespace") != m.attributes.get(DATABASE_NAME) {
                problems.push(format!("{}: db.namespace differs from {DATABASE_NAME}", m.name));
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
                if !declared.iter().any(|d| d.declares(key)) && key != "dbintel.truncated" {
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
    out.push_str("| metric | what | unit | instrument | attributes | about | origin | collector |\n");
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
            let mut attributes = e.attributes.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ");
            if e.db360.is_some() {
                attributes.push_str(if attributes.is_empty() { "" } else { "; " });
                attributes.push_str("and every attribute of New Relic's Database 360 event (below)");
            }
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
    fn points_name_their_database_and_a_connected_database_names_the_rest() {
        let point = |db: Option<&str>| {
            let mut attributes = Map::new();
            if let Some(db) = db {
                attributes.insert(DATABASE_NAME, Value::Str(db.into()));
                attributes.insert(TABLE_NAME, Value::Str("public.t".into()));
            }
            Record::Metric(MetricPoint::new("postgresql.rows", "1", MetricKind::Gauge, Number::Int(1), 1, attributes))
        };
        let mut records = vec![point(Some("app")), point(None)];
        name_databases(&mut records, None);
        assert_eq!(records[0].attributes().get("db.namespace"), Some(&Value::Str("app".into())));
        assert_eq!(records[0].attributes().get(TABLE_NAME), Some(&Value::Str("public.t".into())), "legacy names stay on the point");
        assert_eq!(records[1].attributes().get("db.namespace"), None, "a server-level point names no database");
        let mut records = vec![point(None)];
        name_databases(&mut records, Some("orders"));
        assert_eq!(records[0].attributes().get("db.namespace"), Some(&Value::Str("orders".into())));
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
