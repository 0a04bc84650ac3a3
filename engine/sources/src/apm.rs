//! What joins a database's statement to the APM trace that ran it
//! (Database 360's APM correlation; DESIGN §11): the statement's
//! `db.query.text.normalized.hash`, the tags APM agents write into its
//! leading comment, and the W3C trace context a session names.
//!
//! - The hash is New Relic's (its normalizer and MD5) of the statement as
//!   the shipped rules sanitize it (NormalizeSQL of the server's dialect):
//!   the text that leaves as `db.query.text`, as New Relic's collector
//!   hashes its own obfuscated text. Never of the raw text: New Relic's
//!   normalizer does not know every literal form (`$$…$$`, `"…"` on
//!   MySQL), and a secret inside one would change the hash, where a
//!   dictionary could find it. Literals, placeholders and comments never
//!   count in the hash, so an APM agent's hash of the statement it sent
//!   is the same.
//! - Comment tags are read from the raw text's leading comments before
//!   anything removes comments, for the keys the source allows
//!   (`allowed_comment_keys`, default `nr_service_guid`), each value
//!   checked against what its key says (see
//!   [`dbintel_stdlib::sql::comment_tags`]): a comment is user input.
//! - A `traceparent` in PostgreSQL's `application_name` or MySQL's
//!   `@traceparent` becomes the sample's trace and span id.

use dbintel_stdlib::sql::{apm_hash, comment_tags, normalize, Dialect};
use dbintel_stdlib::{Map, Value};

use crate::target::Engine;

/// The dialect a statement of `engine` is read in.
pub fn dialect(engine: Engine) -> Dialect {
    match engine {
        Engine::Postgres => Dialect::Postgres,
        Engine::MySql => Dialect::MySql,
    }
}

/// `db.query.text.normalized.hash` of a statement: New Relic's hash of the
/// text as sanitized; empty when the text cannot be sanitized (too long)
/// or is empty.
pub fn query_hash(engine: Engine, raw: &str) -> String {
    match normalize(raw, dialect(engine)) {
        Ok(sanitized) => apm_hash::normalize_and_hash(&sanitized).1,
        Err(_) => String::new(),
    }
}

/// Adds the APM attributes of a statement to an event: its hash (from
/// `text`, the statement that leaves as `db.query.text`) and the comment
/// tags of `raw` (the text as the client sent it, comments and all; for
/// MySQL's digests that is the sample text, when the server keeps one).
pub fn insert(attributes: &mut Map, engine: Engine, text: Option<&str>, raw: Option<&str>, allowed: &[String]) {
    insert_hash(attributes, engine, text);
    insert_tags(attributes, raw.map(|r| tags(r, allowed)).unwrap_or_default());
}

/// `db.query.text.normalized.hash` of `text` (empty without one).
pub fn insert_hash(attributes: &mut Map, engine: Engine, text: Option<&str>) {
    let hash = text.map(|t| query_hash(engine, t)).unwrap_or_default();
    attributes.insert("db.query.text.normalized.hash", Value::Str(hash));
}

/// The allowed, checked tags of `raw`'s leading comments.
pub fn tags(raw: &str, allowed: &[String]) -> comment_tags::CommentTags {
    comment_tags::extract(raw, allowed)
}

/// `db.query.comment_tags` and its `nr_service_guid`.
pub fn insert_tags(attributes: &mut Map, tags: comment_tags::CommentTags) {
    attributes.insert("db.query.comment_tags", Value::Str(tags.tags));
    attributes.insert("db.query.comment_tags.nr_service_guid", Value::Str(tags.nr_service_guid));
}

/// The trace context a session names, as OTLP's trace and span id.
pub fn trace_context(value: Option<&str>) -> Option<([u8; 16], [u8; 8])> {
    let tc = dbintel_stdlib::trace_context::parse(value?)?;
    Some((tc.trace_id, tc.span_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_new_relics_of_the_sanitized_text_and_literals_never_count() {
        // New Relic's published vector
        assert_eq!(
            query_hash(Engine::Postgres, "SELECT * FROM users WHERE id = 123 AND name = 'John'"),
            "887ae2820726539177ebad8acac8df79"
        );
        // pg_stat_statements' placeholders and a literal give the same hash
        let stored = query_hash(Engine::Postgres, "select * from pg_stat_activity where id = $1");
        assert_eq!(stored, "5176bcd7486f72459fb24cf3a5f263da");
        assert_eq!(query_hash(Engine::Postgres, "select * from pg_stat_activity where id = 42"), stored);
        // a literal New Relic's normalizer does not know changes nothing
        let a = query_hash(Engine::Postgres, "select $$secret-one$$ from t");
        assert_eq!(a, query_hash(Engine::Postgres, "select $$other$$ from t"));
        let b = query_hash(Engine::MySql, r#"select "secret" from t"#);
        assert_eq!(b, query_hash(Engine::MySql, r#"select "other" from t"#));
        assert_eq!(query_hash(Engine::Postgres, ""), "");
    }

    #[test]
    fn tags_come_from_the_raw_comment_and_are_checked() {
        let mut attributes = Map::new();
        let raw = r#"/* nr_service_guid="MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw" */ SELECT * FROM orders WHERE id = 7"#;
        insert(&mut attributes, Engine::Postgres, Some(raw), Some(raw), &["nr_service_guid".to_string()]);
        assert_eq!(
            attributes.get("db.query.comment_tags.nr_service_guid"),
            Some(&Value::Str("MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw".into()))
        );
        let mut attributes = Map::new();
        insert(
            &mut attributes,
            Engine::Postgres,
            None,
            Some("/* nr_service_guid=ann@example.com */ SELECT 1"),
            &["nr_service_guid".into()],
        );
        assert_eq!(attributes.get("db.query.comment_tags"), Some(&Value::Str(String::new())), "a comment cannot smuggle PII out");
        assert_eq!(attributes.get("db.query.text.normalized.hash"), Some(&Value::Str(String::new())));
    }
}
