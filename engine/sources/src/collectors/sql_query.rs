//! A `sql` source's collectors: one per query, any read-only query mapped
//! to gauges, sums or logs (`kind`, `metric`, `value_column`,
//! `attribute_columns`, `body_column`, `unit`, `monotonic`); with a
//! `tracking_column`, each row is sent once.

use std::time::Duration;

use dbintel_core::record::{LogRecord, MetricKind, MetricPoint, Number, Record, Temporality};
use dbintel_core::BoxFuture;
use dbintel_dsl::schema::{SqlKind, SqlQuerySettings};
use dbintel_stdlib::{Map, Value};

use crate::collector::{Collector, Unreplayable};
use crate::rows::{number, Row};
use crate::target::Target;
use crate::SourceError;

pub struct SqlQuery {
    query: String,
    mapping: SqlMapping,
    interval: Duration,
    /// Rows that could not become records, since the last scrape.
    skipped: Vec<SourceError>,
}

impl SqlQuery {
    pub fn new(collector: &str, settings: &SqlQuerySettings, interval: Duration) -> SqlQuery {
        SqlQuery { query: settings.query.clone(), mapping: SqlMapping::new(collector, settings), interval, skipped: Vec::new() }
    }

    fn map(&mut self, rows: Vec<Row>, now: u64) -> Vec<Record> {
        let mut out = Vec::with_capacity(rows.len());
        for row in self.mapping.new_rows(rows) {
            match self.mapping.record(row, now) {
                Ok(r) => out.push(r),
                Err(reason) => self.skipped.push(SourceError::Database {
                    source_name: String::new(),
                    what: format!("row of `{}`", self.mapping.metric),
                    class: crate::ErrorClass::Other,
                    code: "row_skipped".into(),
                    message: reason,
                }),
            }
        }
        out
    }
}

impl Collector for SqlQuery {
    fn interval(&self) -> Duration {
        self.interval
    }

    fn scrape<'a>(&'a mut self, target: &'a Target, now: u64) -> BoxFuture<'a, Result<Vec<Record>, SourceError>> {
        Box::pin(async move {
            let rows = target.query(&self.mapping.metric, &self.query).await?;
            Ok(self.map(rows, now))
        })
    }

    fn replay(&mut self, rows: Vec<Row>, now: u64) -> Result<Vec<Record>, Unreplayable> {
        Ok(self.map(rows, now))
    }

    fn take_soft_errors(&mut self) -> Vec<SourceError> {
        std::mem::take(&mut self.skipped)
    }
}

/// How a generic `sql` collector turns a row into a record, from its
/// settings (`kind`, `metric`, `value_column`, `attribute_columns`,
/// `body_column`, `unit`, `monotonic`).
pub struct SqlMapping {
    kind: SqlKind,
    metric: String,
    value_column: Option<String>,
    attribute_columns: Option<Vec<String>>,
    body_column: Option<String>,
    unit: String,
    monotonic: bool,
    /// For incremental logs: rows whose tracking value is not above the
    /// highest one already seen are skipped, so each row is sent once.
    tracking_column: Option<String>,
    high_water: Option<f64>,
}

impl SqlMapping {
    pub fn new(collector: &str, settings: &SqlQuerySettings) -> SqlMapping {
        SqlMapping {
            kind: settings.kind,
            metric: settings.metric.clone().unwrap_or_else(|| collector.to_string()),
            value_column: settings.value_column.clone(),
            attribute_columns: settings.attribute_columns.clone(),
            body_column: settings.body_column.clone(),
            unit: settings.unit.clone().unwrap_or_default(),
            monotonic: settings.monotonic,
            tracking_column: settings.tracking_column.clone(),
            high_water: None,
        }
    }

    fn attributes(&self, row: &mut Row, skip: Option<&str>) -> Map {
        match &self.attribute_columns {
            Some(columns) => columns.iter().filter_map(|c| row.remove(c).map(|v| (c.clone(), v))).collect(),
            None => {
                let mut map = std::mem::take(row);
                if let Some(skip) = skip {
                    map.remove(skip);
                }
                map
            }
        }
    }

    /// Keeps only rows past the tracking column's high-water mark (all rows
    /// when there is no tracking column), and raises the mark.
    pub fn new_rows(&mut self, rows: Vec<Row>) -> Vec<Row> {
        let Some(column) = self.tracking_column.clone() else { return rows };
        let previous = self.high_water;
        let fresh: Vec<Row> = rows.into_iter().filter(|r| number(r, &column).is_some_and(|v| previous.is_none_or(|p| v > p))).collect();
        for row in &fresh {
            if let Some(v) = number(row, &column) {
                self.high_water = Some(self.high_water.map_or(v, |h| h.max(v)));
            }
        }
        fresh
    }

    /// One record for one row. A metric row whose value column is missing
    /// or not a number yields `Err` with the reason.
    pub fn record(&self, mut row: Row, now: u64) -> Result<Record, String> {
        if self.kind == SqlKind::Log {
            let body = match &self.body_column {
                Some(c) => row.remove(c).unwrap_or(Value::Nil),
                None => Value::Nil,
            };
            let attributes = self.attributes(&mut row, None);
            return Ok(Record::Log(LogRecord {
                time_unix_nano: now,
                observed_time_unix_nano: now,
                body,
                attributes,
                ..LogRecord::default()
            }));
        }
        let column = self.value_column.as_deref().unwrap_or("value");
        let value = match row.get(column) {
            Some(Value::Int(i)) => Number::Int(*i),
            Some(Value::Double(d)) => Number::Double(*d),
            Some(Value::Str(s)) => s.parse::<f64>().map(Number::Double).map_err(|_| format!("column `{column}` is not a number"))?,
            Some(Value::Nil) | None => return Err(format!("column `{column}` is missing or NULL")),
            Some(other) => return Err(format!("column `{column}` is a {}, not a number", other.type_name())),
        };
        let kind = if self.kind == SqlKind::Sum {
            MetricKind::Sum { monotonic: self.monotonic, temporality: Temporality::Cumulative }
        } else {
            MetricKind::Gauge
        };
        let attributes = self.attributes(&mut row, Some(column));
        Ok(Record::Metric(MetricPoint::new(self.metric.clone(), self.unit.clone(), kind, value, now, attributes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbintel_dsl::plan::{Settings, Value as SettingValue};

    #[test]
    fn a_tracking_column_sends_each_row_once() {
        let mut settings = Settings::default();
        settings.0.insert("kind".into(), SettingValue::Word("log".into()));
        settings.0.insert("tracking_column".into(), SettingValue::String("id".into()));
        let mut mapping = SqlMapping::new("audit", &SqlQuerySettings::from_settings(&settings));
        let rows = |ids: &[i64]| ids.iter().map(|i| [("id".to_string(), Value::Int(*i))].into_iter().collect::<Map>()).collect::<Vec<_>>();
        assert_eq!(mapping.new_rows(rows(&[1, 2, 3])).len(), 3);
        assert_eq!(mapping.new_rows(rows(&[2, 3, 4, 5])).len(), 2, "only 4 and 5 are new");
        assert_eq!(mapping.new_rows(rows(&[5])).len(), 0);
    }
}
