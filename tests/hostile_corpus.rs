//! The hostile corpus: 2,600 planted secrets in every literal and comment
//! form of both dialects — the readings that depend on server settings
//! (`\'`), non-ASCII dollar-quote tags, MySQL's `--` rule, executable
//! comments and hints, texts cut inside a literal — through the shipped
//! `pipelines/sanitize_pii.pipe`, under each `db.system.name` a source
//! sets (`postgresql`, `mysql`, `mariadb`) and one it does not know
//! (`other_sql`). Not one may come out.

use dbintel_core::record::{LogRecord, Record, Resource};
use dbintel_dsl::plan::NodeKind;
use dbintel_dsl::{compile, EnvPolicy};
use dbintel_operators::transform::{RecordOutcome, Transform};
use dbintel_stdlib::Value;
use dbintel_tests::{workspace_root, GoldenHost, GOLDEN_ENV};

mod secrets;
use secrets::{secret, Rng};

/// PostgreSQL forms: the query, and what it plants (the secret itself, or
/// the number or hex the form turns it into).
fn postgres_form(form: usize, s: &str) -> (String, String) {
    let digits: String = s.chars().filter(char::is_ascii_digit).chain("10".chars()).collect();
    let as_is = |q: String| (q, s.to_string());
    match form % 26 {
        0 => as_is(format!("SELECT * FROM users WHERE email = '{s}'")),
        1 => as_is(format!("SELECT * FROM users WHERE note = 'it''s {s}'")),
        2 => as_is(format!("SELECT * FROM users WHERE note = E'x\\'{s}'")),
        3 => as_is(format!("SELECT E'\\\\{s}' AS a")),
        // standard_conforming_strings decides whether the secret is code or string
        4 => as_is(format!("SELECT * FROM t WHERE a = 'x\\' OR b = '{s}' AND c = 1")),
        5 => as_is(format!("SELECT N'{s}'")),
        6 => as_is(format!("SELECT U&'{s}' UESCAPE '!'")),
        7 => as_is(format!("SELECT X'{s}', B'{s}'")),
        8 => as_is(format!("SELECT $${s}$$")),
        9 => as_is(format!("SELECT $q${s}$q$ AS a")),
        10 => as_is(format!("SELECT $é${s}$é$ AS a")),
        11 => as_is(format!("SELECT $тег$ $a$ {s} $a$ $тег$")),
        12 => as_is(format!("SELECT $日本${s}$日本$, $\u{3000}${s}$\u{3000}$")),
        13 => as_is(format!("UPDATE t SET v = 1 -- {s}\nWHERE id = 2")),
        14 => as_is(format!("SELECT /* by {s} /* nested {s} */ */ 1")),
        15 => as_is(format!("SELECT /*+ IndexScan(t) {s} */ 1 FROM t")),
        16 => as_is(format!("INSERT INTO t VALUES ('{{\"secret\": \"{s}\"}}'::jsonb)")),
        17 => as_is(format!("SELECT * FROM t WHERE c IN ('a', '{s}', 'b')")),
        18 => as_is(format!("SELECT * FROM t WHERE c = '{s}")),
        19 => as_is(format!("SELECT $tag${s}")),
        20 => as_is(format!("SELECT 1 /* {s}")),
        21 => as_is(format!("SELECT 'x'\n'{s}'")),
        22 => as_is(format!("SELECT 1 FROM t WHERE a = $1 /* $1 {s} */ AND b = 'x\\\\' -- {s}")),
        23 => (format!("SELECT * FROM t WHERE n = {digits}"), digits.clone()),
        24 => (format!("SELECT * FROM t WHERE n = 0.{digits}e-3 OR m = {}_{}", &digits[..2], &digits[2..]), digits[2..].to_string()),
        _ => (format!("SELECT 1{digits}, 0x{}", digits.replace('9', "f")), digits.replace('9', "f")),
    }
}

/// MySQL / MariaDB forms.
fn mysql_form(form: usize, s: &str) -> (String, String) {
    let digits: String = s.chars().filter(char::is_ascii_digit).chain("10".chars()).collect();
    let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
    let as_is = |q: String| (q, s.to_string());
    match form % 24 {
        0 => as_is(format!("SELECT * FROM users WHERE email = '{s}'")),
        1 => as_is(format!("SELECT * FROM users WHERE email = \"{s}\"")),
        2 => as_is(format!("SELECT * FROM t WHERE c = 'x\\'{s}'")),
        3 => as_is(format!("SELECT * FROM t WHERE c = \"x\\\"{s}\"")),
        4 => as_is(format!("SELECT * FROM t WHERE c = 'x''{s}'")),
        5 => as_is(format!("SELECT _utf8mb4'{s}', _latin1\"{s}\"")),
        6 => as_is(format!("SELECT N'{s}'")),
        7 => (format!("SELECT x'{hex}'"), hex.clone()),
        8 => (format!("SELECT 0x{hex}"), hex.clone()),
        9 => as_is(format!("SELECT 1 # {s}\n")),
        10 => as_is(format!("SELECT 1 -- {s}\nFROM t")),
        11 => as_is(format!("SELECT /* {s} */ 1")),
        12 => as_is(format!("SELECT /*!50000 '{s}' */ 1")),
        13 => as_is(format!("SELECT /*! STRAIGHT_JOIN '{s}' */ a FROM t")),
        14 => as_is(format!("SELECT /*M!100000 '{s}' */ 1")),
        15 => as_is(format!("SELECT /*+ SET_VAR(sql_mode = '{s}') */ 1")),
        // a skipping server ends it at the first */, a running one later
        16 => as_is(format!("SELECT /*!99999 '*/' {s} */ 1")),
        // `--` without a space is two minus signs: the string after it is a literal
        17 => as_is(format!("SELECT 5--'a\n{s}'")),
        18 => as_is(format!("SELECT * FROM t WHERE c = '{s}")),
        19 => as_is(format!("SELECT /*!50000 '{s}")),
        20 => as_is(format!("SELECT * FROM t WHERE c IN ('a', \"{s}\", 'b')")),
        21 => as_is(format!("INSERT INTO t VALUES (1, 'a'), (2, '{s}'), (3, 'c')")),
        22 => (format!("SELECT * FROM t WHERE n = {digits} OR m = {}.{}e5", &digits[..2], &digits[2..]), digits.clone()),
        _ => as_is(format!("SELECT * FROM t WHERE c = '{s}\\\\' AND d = 'x\\'y'")),
    }
}

#[test]
fn no_planted_secret_leaves_sanitize_pii_in_any_hostile_form() {
    let host = GoldenHost { set: GOLDEN_ENV };
    let compilation = compile(&[workspace_root().join("pipelines/sanitize_pii.pipe")], &host, EnvPolicy::Warn);
    let plan = compilation.plan.expect("the shipped sanitize rules compile");
    let NodeKind::Transform(node) = &plan.node("sanitize_pii").expect("sanitize_pii exists").kind else { panic!("not a transform") };
    let mut transform = Transform::new("sanitize_pii", node).expect("compiles to executable form");

    let mut rng = Rng(0x0bad_5eed_7e57_c0de);
    let mut planted_count = 0;
    let mut leaks = Vec::new();
    for i in 0..2600 {
        let secret_text = secret(i, i, &mut rng);
        let mysql = i % 2 == 1;
        let form = i / 2 + i / 9;
        let (query, needle) = if mysql { mysql_form(form, &secret_text) } else { postgres_form(form, &secret_text) };
        if needle.chars().count() < 6 {
            continue; // a number form of a secret with too few digits
        }
        let systems: &[&str] = if mysql { &["mysql", "mariadb", "other_sql"] } else { &["postgresql", "other_sql"] };
        let system = systems[(i / 7) % systems.len()];
        planted_count += 1;
        let mut resource = Resource::default();
        resource.attributes.insert("db.system.name", Value::Str(system.into()));
        let mut log = LogRecord::default();
        log.attributes.insert("db.query.text", Value::Str(query.clone()));
        let mut record = Record::Log(log);
        let outcome = transform.apply(&mut resource, &mut record, &mut |_, _| {});
        assert!(matches!(outcome, RecordOutcome::Kept { errors: 0 }), "{query}: {outcome:?}");
        let out = format!("{:?}", record.attributes());
        // any 6-character piece of what was planted counts as a leak
        let chars: Vec<char> = needle.chars().collect();
        if let Some(piece) = chars.windows(6).map(|w| w.iter().collect::<String>()).find(|p| out.contains(p.as_str())) {
            leaks.push(format!("{piece:?} of {needle:?} ({system})\n  in:  {query}\n  out: {out}"));
        }
    }
    assert!(planted_count >= 2000, "only {planted_count} secrets planted");
    assert!(leaks.is_empty(), "{} of {planted_count} secrets leaked:\n{}", leaks.len(), leaks.join("\n"));
    eprintln!("hostile corpus: {planted_count} secrets planted, 0 leaked");
}

/// Base64 (standard or url-safe alphabet), without padding.
fn base64(bytes: &[u8], url_safe: bool) -> String {
    let alphabet: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (k, &b)| n | u32::from(b) << (16 - 8 * k));
        for k in 0..=chunk.len() {
            out.push(char::from(alphabet[(n >> (18 - 6 * k) & 63) as usize]));
        }
    }
    out
}

/// Comment tags are read from the raw text, before sanitize_pii runs, and
/// never pass through it: a secret in a tag value, in every way a value
/// can carry it — plain, quoted, as an `nr_service_guid`, base64 of it, a
/// GUID wrapped round it, as a `traceparent`, after a good pair, repeated
/// — yields no tag, and is seen and counted as dropped.
#[test]
fn no_planted_secret_becomes_a_comment_tag() {
    use dbintel_stdlib::sql::comment_tags::extract;
    let allowed = ["nr_service_guid", "traceparent", "app", "route"];
    let mut rng = Rng(0x7a95_c0de_0bad_f00d);
    let mut planted_count = 0;
    let mut leaks = Vec::new();
    for i in 0..900 {
        let s = secret(i, i, &mut rng);
        let guid_around = |account: &str| format!("{account}|APM|APPLICATION|{s}");
        let mut forms = vec![
            (format!("/*nr_service_guid=\"{s}\"*/ SELECT 1"), ""),
            (format!("/* nr_service_guid={} */ SELECT 1", base64(s.as_bytes(), false)), ""),
            (format!("/* nr_service_guid={} */ SELECT 1", base64(s.as_bytes(), true)), ""),
            (format!("/* nr_service_guid='{}' */ SELECT 1", base64(guid_around("1").as_bytes(), true)), ""),
            (format!("/* nr_service_guid={}== */ SELECT 1", base64(guid_around("11600319").as_bytes(), false)), ""),
            (format!("/* traceparent='{s}' */ SELECT 1"), ""),
            (format!("/* traceparent='cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-{s}' */ SELECT 1"), ""),
        ];
        // A password-like token ("pw…", kind 8) in a key the user allows
        // with no form of its own cannot be told from a legitimate value
        // (`checkout-v2`): only the user's allow-list keeps those keys out.
        if i % 9 != 8 {
            forms.extend([
                (format!("/* app={s} */ SELECT 1"), ""),
                (format!("/* route='{s}' */ SELECT 1"), ""),
                (format!("  /* other=1 */\n/*\tapp = \"{s}\" , route=checkout */ SELECT 1"), "route=checkout"),
                (format!("/* app={s}, app=fine */ /* app=fine */ SELECT 1"), ""),
            ]);
        }
        for (sql, expected) in forms {
            planted_count += 1;
            let tags = extract(&sql, &allowed);
            if tags.tags != expected || !tags.nr_service_guid.is_empty() || tags.rejected != 1 {
                leaks.push(format!("{s:?}\n  in:  {sql}\n  out: {tags:?}"));
            }
        }
    }
    assert!(planted_count >= 9000, "only {planted_count} secrets planted");
    assert!(leaks.is_empty(), "{} of {planted_count} tags leaked or were not seen:\n{}", leaks.len(), leaks.join("\n"));
    eprintln!("comment tags: {planted_count} secrets planted, 0 leaked");
}
