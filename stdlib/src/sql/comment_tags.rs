//! `db.query.comment_tags` and `db.query.comment_tags.nr_service_guid`:
//! the `key=value` tags an APM agent puts in a comment before a statement
//! (`/* nr_service_guid="MTE2MDAzMTl8QVBNfEFQUExJ…" */ SELECT …`).
//!
//! They are read from the *raw* text, before NormalizeSQL removes comments,
//! the way New Relic's collector reads them (its fork's
//! `internal/nrcommon/sqlcomments`): only the block comments at the very
//! start (any number, whitespace around them; an unclosed one ends the
//! run), their content split on `,`, each pair split at its first `=`,
//! key and value trimmed, the first occurrence of a key winning; only keys
//! the user allows come out, in the order of the allow-list, as
//! `k=v,k=v`; the `nr_service_guid` attribute is that key's value with one
//! pair of surrounding quotes removed.
//!
//! Unlike New Relic, a value is not trusted: the comment is written by
//! whoever sends the statement, it is read before the sanitizer runs, and
//! the sanitizer never sees the tags. So every value must look like what its
//! key says, or it is dropped (and counted in [`CommentTags::rejected`]):
//! - `nr_service_guid`: an entity GUID, base64 of
//!   `account|DOMAIN|TYPE|id` (characters `[A-Za-z0-9+/=_-]`) that decodes
//!   to exactly that shape, its id an integer that is no card number;
//! - `traceparent`: a valid W3C traceparent ([`crate::trace_context`]) of
//!   exactly its four fields (a later version's extra fields could carry
//!   anything);
//! - any other key: at most [`MAX_VALUE_BYTES`] of `[A-Za-z0-9_.:/+=-]`,
//!   no run of more than six digits (cards, phones, account numbers,
//!   dates), nothing RedactPII would mask (emails, IPs, JWTs, API keys,
//!   high-entropy tokens).
//!
//! Work is bounded: only the first [`MAX_COMMENT_BYTES`] of the text are
//! read (a comment that ends later is treated as unclosed), one pass.

use crate::trace_context;

/// The keys read when the user names none.
pub const DEFAULT_ALLOWED_KEYS: &[&str] = &["nr_service_guid"];

/// How much of a text's start is read for leading comments. Agents write
/// a few hundred bytes; this bounds the work on a hostile one.
pub const MAX_COMMENT_BYTES: usize = 16 * 1024;

/// The longest value (without its quotes) that is kept.
pub const MAX_VALUE_BYTES: usize = 128;

const GUID_KEY: &str = "nr_service_guid";
const TRACEPARENT_KEY: &str = "traceparent";

/// The tags of one statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommentTags {
    /// `db.query.comment_tags`: `key=value,…` in allow-list order, values
    /// as written (quotes kept); empty when there is none.
    pub tags: String,
    /// `db.query.comment_tags.nr_service_guid`: that tag's value without
    /// its quotes; empty when there is none (or it was dropped).
    pub nr_service_guid: String,
    /// Allowed keys whose value was dropped for not looking like what the
    /// key says.
    pub rejected: usize,
}

/// The allowed tags of `raw`'s leading comments, each value checked.
///
/// ```
/// use dbintel_stdlib::sql::comment_tags::{extract, DEFAULT_ALLOWED_KEYS};
/// let sql = r#"/* nr_service_guid="MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw" */ SELECT * FROM orders"#;
/// let tags = extract(sql, DEFAULT_ALLOWED_KEYS);
/// assert_eq!(tags.tags, r#"nr_service_guid="MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw""#);
/// assert_eq!(tags.nr_service_guid, "MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw");
/// // a value that does not look like what its key says is dropped
/// let tags = extract("/* app=checkout, user=bob@example.com */ SELECT 1", &["app", "user"]);
/// assert_eq!((tags.tags.as_str(), tags.rejected), ("app=checkout", 1));
/// // only leading comments count
/// assert_eq!(extract("SELECT 1 /* app=checkout */", &["app"]).tags, "");
/// ```
pub fn extract<S: AsRef<str>>(raw: &str, allowed: &[S]) -> CommentTags {
    let mut out = CommentTags::default();
    if allowed.is_empty() {
        return out;
    }
    // the first value of each allowed key (a key listed twice counts once)
    let mut values: Vec<Option<&str>> = vec![None; allowed.len()];
    for content in LeadingComments::new(raw, MAX_COMMENT_BYTES) {
        for pair in content.split(',') {
            let Some((key, value)) = pair.split_once('=') else { continue };
            let key = key.trim();
            if let Some(slot) = allowed.iter().position(|a| a.as_ref() == key) {
                values[slot].get_or_insert(value.trim());
            }
        }
    }
    for (key, value) in allowed.iter().map(AsRef::as_ref).zip(values) {
        let Some(value) = value else { continue };
        let unquoted = without_quotes(value);
        if !value_fits_key(key, unquoted) {
            out.rejected += 1;
            continue;
        }
        if !out.tags.is_empty() {
            out.tags.push(',');
        }
        out.tags.push_str(key);
        out.tags.push('=');
        out.tags.push_str(value);
        if key == GUID_KEY {
            out.nr_service_guid = unquoted.to_string();
        }
    }
    out
}

/// Whether `key` can name a tag: 1 to 64 of `[A-Za-z0-9_.-]`. A key with
/// `,`, `=`, space or `*/` in it could never match; the collectors refuse
/// such an `allowed_comment_keys` entry as a configuration error.
///
/// ```
/// use dbintel_stdlib::sql::comment_tags::is_valid_key;
/// assert!(is_valid_key("nr_service_guid") && is_valid_key("db.driver"));
/// assert!(!is_valid_key("") && !is_valid_key("a=b") && !is_valid_key("a b"));
/// ```
pub fn is_valid_key(key: &str) -> bool {
    (1..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `raw` starts (whitespace aside) with a closed `/* … */`
/// comment: New Relic's `HasLeadingComment`, which its MySQL collector
/// uses to mark a digest text that lost the comment its sample had.
///
/// ```
/// use dbintel_stdlib::sql::comment_tags::has_leading_comment;
/// assert!(has_leading_comment("  /* x */ SELECT 1"));
/// assert!(!has_leading_comment("SELECT 1 /* x */"));
/// assert!(!has_leading_comment("/* unclosed SELECT 1"));
/// ```
pub fn has_leading_comment(raw: &str) -> bool {
    LeadingComments::new(raw, raw.len()).next().is_some()
}

/// The contents of the leading `/* … */` comments within the first `limit`
/// bytes: what New Relic's `(?s)^\s*(/\*.*?\*/\s*)+` covers, comment by
/// comment (RE2's `\s` is `[\t\n\f\r ]`; a comment ends at the first `*/`,
/// so they do not nest).
struct LeadingComments<'a> {
    text: &'a str,
    limit: usize,
    at: usize,
}

impl<'a> LeadingComments<'a> {
    fn new(text: &'a str, limit: usize) -> Self {
        LeadingComments { text, limit: limit.min(text.len()), at: 0 }
    }
}

impl<'a> Iterator for LeadingComments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = &self.text.as_bytes()[..self.limit];
        let mut i = self.at;
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\x0c' | b'\r') {
            i += 1;
        }
        if !bytes[i.min(bytes.len())..].starts_with(b"/*") {
            self.at = bytes.len();
            return None;
        }
        let Some(close) = bytes[i + 2..].windows(2).position(|w| w == b"*/") else {
            self.at = bytes.len();
            return None;
        };
        let (start, end) = (i + 2, i + 2 + close);
        self.at = end + 2;
        // both ends sit next to ASCII `/*` and `*/`: character boundaries
        self.text.get(start..end)
    }
}

/// One matching pair of surrounding `"` or `'` removed (New Relic's
/// `trimSurroundingQuotes`).
fn without_quotes(value: &str) -> &str {
    let b = value.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        &value[1..value.len() - 1]
    } else {
        value
    }
}

fn value_fits_key(key: &str, value: &str) -> bool {
    match key {
        GUID_KEY => is_entity_guid(value),
        // exactly the four fields: a future version's extra fields could
        // carry anything, and `parse` would forgive surrounding space
        TRACEPARENT_KEY => value.len() == 55 && trace_context::parse(value).is_some(),
        _ => is_plain_token(value),
    }
}

/// A New Relic entity GUID: base64 (either alphabet, padding optional) of
/// `account|DOMAIN|TYPE|id`, e.g. `MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw`
/// = `11600319|APM|APPLICATION|292334407`. Nearly every string of the
/// base64 alphabet decodes to *some* bytes, so a value is a GUID only when
/// those bytes are one: New Relic's own tests use `abc-123`, which is not,
/// and base64 of an email is not either.
fn is_entity_guid(value: &str) -> bool {
    let b = value.as_bytes();
    if b.is_empty()
        || b.len() > MAX_VALUE_BYTES
        || !b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'_' | b'-'))
    {
        return false;
    }
    let data = value.trim_end_matches('=');
    if data.contains('=') || value.len() - data.len() > 2 {
        return false;
    }
    base64_decode(data.as_bytes()).is_some_and(|decoded| is_guid_text(&decoded))
}

/// `account|DOMAIN|TYPE|id`: an account number, an upper-case domain
/// (`APM`, `EXT`, `NR1`), an upper-case type (`APPLICATION`, `SERVICE`)
/// and an entity id.
fn is_guid_text(text: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(text) else { return false };
    let mut parts = text.splitn(4, '|');
    let (Some(account), Some(domain), Some(kind), Some(id)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let upper = |s: &str, max: usize| {
        s.len() <= max
            && s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
    };
    // accounts are up to eight digits today; ten would be a phone number
    (1..=9).contains(&account.len())
        && account.bytes().all(|c| c.is_ascii_digit())
        && upper(domain, 16)
        && upper(kind, 48)
        && is_entity_id(id)
}

/// An entity id: an integer, as every entity that can be a service has
/// (APM application ids; OpenTelemetry services' signed 64-bit hashes),
/// never a card number (a Luhn-valid 13 to 19 digits). A token there
/// (synthetics monitors have UUIDs) is no service, and could be anything.
/// A bare 10-digit id looks like a phone number and is still let through:
/// APM application ids have that many digits, and it is only read under the
/// GUID key, inside base64.
fn is_entity_id(id: &str) -> bool {
    let digits = id.strip_prefix('-').unwrap_or(id);
    (1..=20).contains(&digits.len())
        && digits.bytes().all(|c| c.is_ascii_digit())
        && !((13..=19).contains(&digits.len()) && crate::pii::is_valid_luhn(digits))
}

/// Base64 in either alphabet without padding; `None` when it is not.
fn base64_decode(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() % 4 == 1 {
        return None;
    }
    let sextet = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    for chunk in data.chunks(4) {
        let mut bits = 0u32;
        for (k, &c) in chunk.iter().enumerate() {
            bits |= sextet(c)? << (18 - 6 * k);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// A value of a key that says nothing about its form: short, from a
/// conservative alphabet (no space, `@`, quote, `%`-escape or non-ASCII),
/// no long digit run, nothing a PII detector would mask.
fn is_plain_token(value: &str) -> bool {
    let b = value.as_bytes();
    if b.is_empty()
        || b.len() > MAX_VALUE_BYTES
        || !b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'/' | b'+' | b'=' | b'-'))
    {
        return false;
    }
    // digits between letters: `v1.2`, `abc-123` pass; a card, a phone
    // number, `2024-01-15` or `555.123.4567` does not
    let longest_digit_run =
        b.split(|c| c.is_ascii_alphabetic()).map(|run| run.iter().filter(|c| c.is_ascii_digit()).count()).max().unwrap_or(0);
    longest_digit_run <= 6 && crate::pii::redact(value) == value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(sql: &str, allowed: &[&str]) -> String {
        extract(sql, allowed).tags
    }

    /// `ExtractAndFilterComments` vectors of New Relic's `extractor_test.go`
    /// (fork commit 237fe7a), verbatim; where a value does not pass our
    /// checks the difference is spelt out.
    #[test]
    fn new_relic_extractor_vectors() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("/* application=abc-123 */ SELECT * FROM t", &["application"], "application=abc-123"),
            ("/* application=abc,app_id=xyz */ SELECT * FROM t", &["application", "app_id"], "application=abc,app_id=xyz"),
            ("/* other=val */ SELECT * FROM t", &["application"], ""),
            ("/* application=abc */ SELECT * FROM t", &[], ""),
            ("/* a=1 */ /* b=2 */ SELECT * FROM t", &["a", "b"], "a=1,b=2"),
            ("SELECT * FROM t /* a=1 */", &["a"], ""),
            ("   /* application=abc */ SELECT * FROM t", &["application"], "application=abc"),
            ("/* key1 = value1 , key2 = value2 */ SELECT * FROM t", &["key1", "key2"], "key1=value1,key2=value2"),
            (
                "/* allowed=yes,notallowed=no,also_allowed=maybe */ SELECT * FROM t",
                &["allowed", "also_allowed"],
                "allowed=yes,also_allowed=maybe",
            ),
            ("/* valid=1,invalid,another=2 */ SELECT * FROM t", &["valid", "invalid", "another"], "valid=1,another=2"),
            ("/**/ SELECT * FROM t", &["any"], ""),
            ("SELECT * FROM t", &["any"], ""),
            ("/* unclosed SELECT * FROM t", &["any"], ""),
            ("/* guid=abc-123-def,path=/api/v1/users */ SELECT * FROM t", &["guid", "path"], "guid=abc-123-def,path=/api/v1/users"),
            ("/* key=first,key=second */ SELECT * FROM t", &["key"], "key=first"),
            ("/* key=first */ /* key=second */ SELECT * FROM t", &["key"], "key=first"),
            ("/* a=1 */ SELECT /* b=2 */ FROM t", &["a", "b"], "a=1"),
            // New Relic: "nr_service_guid=abc-123,traceparent=xyz"; neither
            // value is what its key says (see the GUID vectors below)
            ("/*\n nr_service_guid=abc-123,\n traceparent=xyz \n*/ SELECT * FROM t", &["nr_service_guid", "traceparent"], ""),
        ];
        for (sql, allowed, expected) in cases {
            assert_eq!(tags(sql, allowed), *expected, "{sql:?} {allowed:?}");
        }
    }

    /// `ExtractValueForKey` vectors, through [`extract`]. New Relic's tests
    /// use `abc-123`, which is no GUID and is dropped here; with a real
    /// GUID in its place each gives New Relic's value, and the malformed
    /// ones are dropped.
    #[test]
    fn new_relic_guid_value_vectors() {
        const GUID: &str = "MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw";
        const OTHER: &str = "MXxOUjF8V09SS0xPQUR8MTIzNDU";
        let guid = |comment: &str| extract(&format!("/* {comment} */ SELECT 1"), DEFAULT_ALLOWED_KEYS);
        let t = guid("nr_service_guid=abc-123");
        assert_eq!((t.tags.as_str(), t.nr_service_guid.as_str(), t.rejected), ("", "", 1));
        for comment in [
            "nr_service_guid=abc-123",
            "app_id=xyz,nr_service_guid=abc-123,other=1",
            " nr_service_guid = abc-123 ",
            "invalid,nr_service_guid=abc-123",
            "nr_service_guid=\"abc-123\"",
            "nr_service_guid='abc-123'",
            "app_id=xyz,nr_service_guid=\"abc-123\"",
        ] {
            assert_eq!(guid(&comment.replace("abc-123", GUID)).nr_service_guid, GUID, "{comment}");
        }
        assert_eq!(guid(&format!("nr_service_guid={GUID},nr_service_guid={OTHER}")).nr_service_guid, GUID);
        assert_eq!(guid("app_id=xyz"), CommentTags::default());
        // New Relic gives `"abc-123'`, `ab"c-123` and `"`: quotes are no GUID
        for comment in ["nr_service_guid=\"abc-123'", "nr_service_guid=\"ab\"c-123\"", "nr_service_guid=\""] {
            let t = guid(&comment.replace("abc-123", GUID));
            assert_eq!((t.tags.as_str(), t.nr_service_guid.as_str(), t.rejected), ("", "", 1), "{comment}");
        }
    }

    #[test]
    fn new_relic_has_leading_comment_vectors() {
        assert!(has_leading_comment("/*nr_service_guid=\"abc\"*/ SELECT 1"));
        assert!(has_leading_comment("  \n/* x */ SELECT 1"));
        assert!(has_leading_comment("/* other=1 */ SELECT 1"));
        assert!(!has_leading_comment("SELECT 1"));
        assert!(!has_leading_comment("SELECT 1 /* x */"));
        assert!(has_leading_comment("/*\n a=1,\n b=2\n*/ SELECT 1"));
        assert!(!has_leading_comment("/* unclosed SELECT 1"));
        assert!(!has_leading_comment(""));
    }

    #[test]
    fn a_real_guid_is_kept_with_its_quotes_in_the_tags() {
        // the Java agent's form, and the same GUID with padding and url-safe
        let t =
            extract("/* nr_service_guid=\"MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw\" */ SELECT * FROM orders", DEFAULT_ALLOWED_KEYS);
        assert_eq!(t.nr_service_guid, "MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw");
        assert_eq!(t.tags, "nr_service_guid=\"MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw\"");
        // 1|INFRA|NA|-5377436278385766000 and 1|NR1|WORKLOAD|12345, padded
        for guid in ["MXxJTkZSQXxOQXwtNTM3NzQzNjI3ODM4NTc2NjAwMA", "MXxOUjF8V09SS0xPQUR8MTIzNDU=", "MXxOUjF8V09SS0xPQUR8MTIzNDU"] {
            assert_eq!(extract(&format!("/*nr_service_guid={guid}*/SELECT 1"), DEFAULT_ALLOWED_KEYS).nr_service_guid, guid);
        }
    }

    #[test]
    fn a_guid_that_decodes_to_anything_else_is_dropped() {
        for bad in [
            "am9obkBleGFtcGxlLmNvbQ",                         // john@example.com
            "NDExMTExMTExMTExMTExMQ",                         // 4111111111111111
            "MXxhcG18YXBwbGljYXRpb258MQ",                     // 1|apm|application|1
            "eDF8QVBNfEFQUExJQ0FUSU9OfDE",                    // x1|APM|APPLICATION|1
            "MXxBUE18QVBQTElDQVRJT058",                       // 1|APM|APPLICATION|
            "MXxBUE18QVBQTElDQVRJT058Ym9iQGV4YW1wbGUuY29t",   // id bob@example.com
            "abc-123",                                        // New Relic's test value
            "cHcxN0FiQ2RFZjIzNDU2Nw",                         // base64 of a password
            "pw17AbCdEf234567",                               // decodes to 12 bytes of noise
            "MXxBUE18QVBQTElDQVRJT058NDExMTExMTExMTExMTExMQ", // id 4111111111111111 (Luhn)
            "MXxBUE18QVBQTElDQVRJT058MTIzLTQ1LTY3ODk",        // id 123-45-6789
            "NTU1MTIzNDU2N3xBUE18QVBQTElDQVRJT058MQ",         // account 5551234567
            "abc==x",
            "abc===",
            "ab c",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            &"A".repeat(MAX_VALUE_BYTES + 1),
        ] {
            let t = extract(&format!("/* nr_service_guid=\"{bad}\" */ SELECT 1"), DEFAULT_ALLOWED_KEYS);
            assert_eq!((t.tags.as_str(), t.rejected), ("", 1), "{bad}");
        }
    }

    #[test]
    fn a_traceparent_tag_must_be_valid() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(tags(&format!("/* traceparent='{tp}' */ SELECT 1"), &["traceparent"]), format!("traceparent='{tp}'"));
        assert_eq!(tags(&format!("/* traceparent='{}' */ SELECT 1", tp.to_uppercase()), &["traceparent"]), "");
        // found by the comment_tags fuzzer: space inside the quotes
        assert_eq!(tags(&format!("/* traceparent='{tp} ' */ SELECT 1"), &["traceparent"]), "");
        // a later version's extra fields could carry anything
        let later = tp.replacen("00", "cc", 1);
        assert_eq!(tags(&format!("/* traceparent='{later}' */ SELECT 1"), &["traceparent"]), format!("traceparent='{later}'"));
        assert_eq!(tags(&format!("/* traceparent='{later}-bob@example.com' */ SELECT 1"), &["traceparent"]), "");
    }

    #[test]
    fn other_values_are_plain_short_tokens() {
        let keep = ["checkout", "abc-123", "v1.2.3", "/api/v1/users", "spring:web", "'django'", "x=y", "123456"];
        let drop = [
            "bob@example.com",
            "4111-1111-1111-1111",
            "4111111111111111",
            "555.123.4567",
            "+15551234567",
            "123-45-6789",
            "2024-01-15",
            "10.1.2.3",
            "a b",
            "%2Fpolls%201000",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
            "Zx8Qw2Lk9Pv4Rt7Ym3Nb6Hc1Jd5Fg0",
            "héllo",
            "\"",
            "",
            "''",
        ];
        for v in keep {
            assert_eq!(tags(&format!("/* k={v} */ SELECT 1"), &["k"]), format!("k={v}"), "{v}");
        }
        for v in drop {
            let t = extract(&format!("/* k={v} */ SELECT 1"), &["k"]);
            assert_eq!((t.tags.as_str(), t.rejected), ("", 1), "{v}");
        }
        assert_eq!(tags(&format!("/* k={} */", "a".repeat(MAX_VALUE_BYTES)), &["k"]).len(), MAX_VALUE_BYTES + 2);
        assert_eq!(tags(&format!("/* k={} */", "a".repeat(MAX_VALUE_BYTES + 1)), &["k"]), "");
    }

    #[test]
    fn the_first_value_of_a_key_wins_even_when_it_is_dropped() {
        let t = extract("/* k=bob@example.com */ /* k=fine */ SELECT 1", &["k"]);
        assert_eq!((t.tags.as_str(), t.rejected), ("", 1));
    }

    #[test]
    fn a_key_allowed_twice_comes_out_once() {
        assert_eq!(tags("/* a=1, b=2 */ SELECT 1", &["b", "a", "b"]), "b=2,a=1");
    }

    #[test]
    fn comments_end_at_the_first_close_and_only_the_first_bytes_are_read() {
        // `/* a /* b */` is one comment; what follows is not a comment
        assert_eq!(tags("/* x=1 /* y=2 */ z=3 */ SELECT 1", &["x", "y", "z"]), "");
        assert_eq!(tags("/* x=1, /* y=2 */ /* z=3 */ SELECT 1", &["x", "y", "z"]), "x=1,z=3");
        // \v is not RE2's \s
        assert_eq!(tags("\u{0B}/* x=1 */ SELECT 1", &["x"]), "");
        assert_eq!(tags("\u{0C}/* x=1 */\r\n\t/* y=2 */", &["x", "y"]), "x=1,y=2");
        let long = format!("/* x=1 */ /* {} */ /* y=2 */", "p".repeat(MAX_COMMENT_BYTES));
        assert_eq!(tags(&long, &["x", "y"]), "x=1");
        let filler = format!("/* x=1 {} */ SELECT 1", ",".repeat(MAX_COMMENT_BYTES));
        assert_eq!(tags(&filler, &["x"]), "");
        // non-ASCII anywhere is fine to walk over
        assert_eq!(tags("/* é=ü, x=1 */ /* 日本 */ SELECT 'ü'", &["x", "é"]), "x=1");
    }

    #[test]
    fn hostile_texts_take_bounded_work_and_do_not_panic() {
        let many = "/* a=1 */".repeat(200_000);
        assert_eq!(tags(&many, &["a"]), "a=1");
        let unclosed = format!("/*{}", "*".repeat(2_000_000));
        assert_eq!(extract(&unclosed, &["a"]), CommentTags::default());
        let pairs = format!("/* {} */", "a=1,".repeat(4_000));
        assert_eq!(tags(&pairs, &["a"]), "a=1");
        for text in ["/", "/*", "/*/", "*/", "/**", "/* = */", "/* ,,, */", "/*=*/", "/* a= */", "/* é */", "\u{0}/*a=1*/"] {
            let _ = extract(text, &["a", "", "nr_service_guid", "traceparent"]);
            let _ = has_leading_comment(text);
        }
    }

    #[test]
    fn base64_in_either_alphabet_with_or_without_padding() {
        assert_eq!(base64_decode(b"aGk"), Some(b"hi".to_vec()));
        assert_eq!(base64_decode(b"aGk-"), Some(vec![0x68, 0x69, 0x3e]));
        assert_eq!(base64_decode(b"aGk+"), base64_decode(b"aGk-"));
        assert_eq!(base64_decode(b"a"), None);
        assert_eq!(base64_decode(b"a!bc"), None);
        assert_eq!(base64_decode(b""), Some(vec![]));
    }
}
