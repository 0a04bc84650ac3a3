//! Rows as sources see them, and the generic mapping of rows to records.

use std::fmt;

use dbintel_dsl::plan::Settings;
use dbintel_stdlib::{Map, Value};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use dbintel_core::record::{LogRecord, MetricKind, MetricPoint, Number, Record, Temporality};

/// One row: column name to value, in column order. NULL is nil.
pub type Row = Map;

/// A row decoded straight from JSON into our map, without an intermediate
/// JSON tree.
pub struct JsonRow(pub Row);

struct JsonValue(Value);

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JsonValue, D::Error> {
        d.deserialize_any(ValueVisitor).map(JsonValue)
    }
}

impl<'de> Deserialize<'de> for JsonRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JsonRow, D::Error> {
        match d.deserialize_map(ValueVisitor)? {
            Value::Map(m) => Ok(JsonRow(m)),
            _ => Err(serde::de::Error::custom("a row must be a JSON object")),
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map(Value::Int).unwrap_or(Value::Double(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Double(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(JsonValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::with_capacity(access.size_hint().unwrap_or(8));
        while let Some((k, JsonValue(v))) = access.next_entry::<String, JsonValue>()? {
            map.insert(k, v);
        }
        Ok(Value::Map(map))
    }
}

pub fn now_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Reads a number column as f64; NULL and non-numbers are None.
pub fn number(row: &Row, column: &str) -> Option<f64> {
    match row.get(column)? {
        Value::Int(i) => Some(*i as f64),
        Value::Double(d) => Some(*d),
        Value::Str(s) => s.parse().ok(),
        _ => None,
    }
}

pub fn integer(row: &Row, column: &str) -> Option<i64> {
    match row.get(column)? {
        Value::Int(i) => Some(*i),
        Value::Double(d) if d.fract() == 0.0 => Some(*d as i64),
        Value::Str(s) => s.parse().ok(),
        _ => None,
    }
}

/// How a generic `sql` collector turns a row into a record, from its
/// settings (`kind`, `metric`, `value_column`, `attribute_columns`,
/// `body_column`, `unit`, `monotonic`).
pub struct SqlMapping {
    kind: String,
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
    pub fn new(collector: &str, settings: &Settings) -> SqlMapping {
        let list = match settings.get("attribute_columns") {
            Some(dbintel_dsl::plan::Value::List(items)) => Some(
                items
                    .iter()
                    .filter_map(|v| match v {
                        dbintel_dsl::plan::Value::String(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        };
        SqlMapping {
            kind: settings.str("kind").unwrap_or("gauge").to_string(),
            metric: settings.str("metric").map(str::to_string).unwrap_or_else(|| collector.to_string()),
            value_column: settings.str("value_column").map(str::to_string),
            attribute_columns: list,
            body_column: settings.str("body_column").map(str::to_string),
            unit: settings.str("unit").unwrap_or("").to_string(),
            monotonic: settings.bool("monotonic").unwrap_or(false),
            tracking_column: settings.str("tracking_column").map(str::to_string),
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
        if self.kind == "log" {
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
        let kind = if self.kind == "sum" {
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
    use dbintel_dsl::plan::Value as SettingValue;

    #[test]
    fn a_tracking_column_sends_each_row_once() {
        let mut settings = Settings::default();
        settings.0.insert("kind".into(), SettingValue::Word("log".into()));
        settings.0.insert("tracking_column".into(), SettingValue::String("id".into()));
        let mut mapping = SqlMapping::new("audit", &settings);
        let rows = |ids: &[i64]| ids.iter().map(|i| [("id".to_string(), Value::Int(*i))].into_iter().collect::<Map>()).collect::<Vec<_>>();
        assert_eq!(mapping.new_rows(rows(&[1, 2, 3])).len(), 3);
        assert_eq!(mapping.new_rows(rows(&[2, 3, 4, 5])).len(), 2, "only 4 and 5 are new");
        assert_eq!(mapping.new_rows(rows(&[5])).len(), 0);
    }
}
