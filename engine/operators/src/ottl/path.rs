//! Reading and writing the place a path names in a record.

use std::borrow::Cow;

use dbintel_stdlib::{FnError, Map, Value};

use super::expr::{CExpr, Ctx};
use dbintel_core::record::{Number, Record, Resource};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Attributes,
    ResourceAttributes,
    Body,
    SeverityText,
    SeverityNumber,
    Time,
    Name,
    Unit,
    Description,
    Value,
}

/// A compiled path: a root field and the keys under it.
#[derive(Debug)]
pub struct CPath {
    pub root: Root,
    pub keys: Vec<CExpr>,
}

enum Key {
    Name(String),
    Index(usize),
}

#[derive(Clone, Copy)]
enum KeyRef<'a> {
    Name(&'a str),
    Index(usize),
}

impl Key {
    fn as_ref(&self) -> KeyRef<'_> {
        match self {
            Key::Name(s) => KeyRef::Name(s),
            Key::Index(i) => KeyRef::Index(*i),
        }
    }
}

impl CPath {
    fn keys(&self, ctx: &Ctx<'_>) -> Result<Vec<Key>, FnError> {
        self.keys
            .iter()
            .map(|k| match k.eval(ctx)?.as_ref() {
                Value::Str(s) => Ok(Key::Name(s.clone())),
                Value::Int(i) if *i >= 0 => Ok(Key::Index(*i as usize)),
                other => Err(FnError::Other(format!("a path key must be a string or a non-negative integer, got {}", other.type_name()))),
            })
            .collect()
    }

    /// The value at the path, borrowed from the record where it lives
    /// there; nil when any step is missing.
    pub fn get<'r>(&self, ctx: &Ctx<'r>) -> Result<Cow<'r, Value>, FnError> {
        let (map, keys): (&'r Map, _) = match self.root {
            Root::Attributes => (ctx.record.attributes(), &self.keys),
            Root::ResourceAttributes => (&ctx.resource.attributes, &self.keys),
            _ => return Ok(Cow::Owned(self.field(ctx.record))),
        };
        if keys.is_empty() {
            return Ok(Cow::Owned(Value::Map(map.clone())));
        }
        // the common case, one literal key, without allocating
        if let [CExpr::Literal(Value::Str(key))] = keys.as_slice() {
            return Ok(map.get(key).map_or(Cow::Owned(Value::Nil), Cow::Borrowed));
        }
        let keys = self.keys(ctx)?;
        let mut current: Option<&'r Value> = None;
        for (i, key) in keys.iter().enumerate() {
            let next = match (i, key, current) {
                (0, Key::Name(k), _) => map.get(k),
                (_, Key::Name(k), Some(Value::Map(m))) => m.get(k),
                (_, Key::Index(n), Some(Value::List(l))) => l.get(*n),
                _ => None,
            };
            match next {
                Some(v) => current = Some(v),
                None => return Ok(Cow::Owned(Value::Nil)),
            }
        }
        Ok(current.map_or(Cow::Owned(Value::Nil), Cow::Borrowed))
    }

    fn field(&self, record: &Record) -> Value {
        match (self.root, record) {
            (Root::Body, Record::Log(l)) => l.body.clone(),
            (Root::SeverityText, Record::Log(l)) => Value::Str(l.severity_text.clone()),
            (Root::SeverityNumber, Record::Log(l)) => Value::Int(i64::from(l.severity_number)),
            (Root::Time, Record::Log(l)) => Value::Int(l.time_unix_nano as i64),
            (Root::Time, Record::Metric(m)) => Value::Int(m.time_unix_nano as i64),
            (Root::Name, Record::Metric(m)) => Value::Str(m.name.clone()),
            (Root::Unit, Record::Metric(m)) => Value::Str(m.unit.clone()),
            (Root::Description, Record::Metric(m)) => Value::Str(m.description.clone()),
            (Root::Value, Record::Metric(m)) => match m.value {
                Number::Int(i) => Value::Int(i),
                Number::Double(d) => Value::Double(d),
            },
            _ => Value::Nil,
        }
    }

    /// Runs `edit` on the place the path names, creating it (as nil) if
    /// missing. A place created here that is still nil afterwards is removed
    /// again, so `set(x, nil)` leaves no trace.
    pub fn edit(
        &self,
        resource: &mut Resource,
        record: &mut Record,
        edit: &mut dyn FnMut(&mut Value) -> Result<(), FnError>,
    ) -> Result<(), FnError> {
        let owned: Vec<Key>;
        let single: [KeyRef<'_>; 1];
        let keys: &[KeyRef<'_>] = match self.keys.as_slice() {
            [] => &[],
            [CExpr::Literal(Value::Str(key))] => {
                single = [KeyRef::Name(key)];
                &single
            }
            _ => {
                owned = self.keys(&Ctx { resource, record })?;
                let refs: Vec<KeyRef<'_>> = owned.iter().map(Key::as_ref).collect();
                return self.edit_at(&refs, resource, record, edit);
            }
        };
        self.edit_at(keys, resource, record, edit)
    }

    fn edit_at(
        &self,
        keys: &[KeyRef<'_>],
        resource: &mut Resource,
        record: &mut Record,
        edit: &mut dyn FnMut(&mut Value) -> Result<(), FnError>,
    ) -> Result<(), FnError> {
        let map = match self.root {
            Root::Attributes => record.attributes_mut(),
            Root::ResourceAttributes => &mut resource.attributes,
            _ => return edit_field(self.root, record, edit),
        };
        if keys.is_empty() {
            let mut whole = Value::Map(std::mem::take(map));
            let result = edit(&mut whole);
            *map = match whole {
                Value::Map(m) => m,
                _ => Map::new(),
            };
            return result;
        }
        edit_in_map(map, keys, edit)
    }
}

fn edit_in_map(map: &mut Map, keys: &[KeyRef<'_>], edit: &mut dyn FnMut(&mut Value) -> Result<(), FnError>) -> Result<(), FnError> {
    let KeyRef::Name(first) = keys[0] else {
        return Err(FnError::Other("a map is indexed by string keys".into()));
    };
    // the common case: the key exists and is the end of the path
    if keys.len() == 1 {
        if let Some(slot) = map.get_mut(first) {
            return edit(slot);
        }
    }
    let created = map.get(first).is_none();
    let slot = map.entry(first);
    let result = if keys.len() == 1 {
        edit(slot)
    } else {
        match (slot, keys[1]) {
            (slot @ Value::Nil, KeyRef::Name(_)) => {
                *slot = Value::Map(Map::new());
                match slot {
                    Value::Map(inner) => edit_in_map(inner, &keys[1..], edit),
                    _ => Ok(()),
                }
            }
            (Value::Map(inner), KeyRef::Name(_)) => edit_in_map(inner, &keys[1..], edit),
            (Value::List(items), KeyRef::Index(n)) if keys.len() == 2 => match items.get_mut(n) {
                Some(item) => edit(item),
                None => Err(FnError::Other(format!("index {n} is past the end of a list of {}", items.len()))),
            },
            (other, _) => Err(FnError::Other(format!("cannot index into {}", other.type_name()))),
        }
    };
    let now_empty = match map.get(first) {
        Some(Value::Nil) => true,
        Some(Value::Map(m)) => created && m.is_empty(),
        _ => false,
    };
    if created && now_empty {
        map.remove(first);
    }
    result
}

fn edit_field(root: Root, record: &mut Record, edit: &mut dyn FnMut(&mut Value) -> Result<(), FnError>) -> Result<(), FnError> {
    match (root, record) {
        (Root::Body, Record::Log(l)) => edit(&mut l.body),
        (Root::SeverityText, Record::Log(l)) => edit_string(&mut l.severity_text, edit),
        (Root::SeverityNumber, Record::Log(l)) => {
            let mut v = Value::Int(i64::from(l.severity_number));
            edit(&mut v)?;
            if let Value::Int(n) = v {
                l.severity_number = i32::try_from(n).unwrap_or(0);
            }
            Ok(())
        }
        (Root::Time, Record::Log(l)) => edit_time(&mut l.time_unix_nano, edit),
        (Root::Time, Record::Metric(m)) => edit_time(&mut m.time_unix_nano, edit),
        (Root::Name, Record::Metric(m)) => edit_string(&mut m.name, edit),
        (Root::Unit, Record::Metric(m)) => edit_string(&mut m.unit, edit),
        (Root::Description, Record::Metric(m)) => edit_string(&mut m.description, edit),
        (Root::Value, Record::Metric(m)) => {
            let mut v = match m.value {
                Number::Int(i) => Value::Int(i),
                Number::Double(d) => Value::Double(d),
            };
            edit(&mut v)?;
            m.value = match v {
                Value::Int(i) => Number::Int(i),
                Value::Double(d) => Number::Double(d),
                other => return Err(FnError::Other(format!("a metric value must be a number, got {}", other.type_name()))),
            };
            Ok(())
        }
        // a field the record does not have (body on a metric): nothing to do
        _ => Ok(()),
    }
}

fn edit_string(field: &mut String, edit: &mut dyn FnMut(&mut Value) -> Result<(), FnError>) -> Result<(), FnError> {
    let mut v = Value::Str(std::mem::take(field));
    let result = edit(&mut v);
    *field = match v {
        Value::Str(s) => s,
        Value::Nil => String::new(),
        other => other.to_string(),
    };
    result
}

fn edit_time(field: &mut u64, edit: &mut dyn FnMut(&mut Value) -> Result<(), FnError>) -> Result<(), FnError> {
    let mut v = Value::Int(*field as i64);
    edit(&mut v)?;
    if let Value::Int(n) = v {
        *field = u64::try_from(n).unwrap_or(0);
    }
    Ok(())
}
