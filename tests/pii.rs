//! The PII corpus: over a thousand planted secrets, in every literal form
//! the SQL lexer knows, in comments and in JSON literals, through the
//! shipped `pipelines/sanitize_pii.pipe`. Not one may come out.

use dbintel_core::record::{LogRecord, Record, Resource};
use dbintel_dsl::plan::NodeKind;
use dbintel_dsl::{compile, EnvPolicy};
use dbintel_operators::transform::{RecordOutcome, Transform};
use dbintel_stdlib::Value;
use dbintel_tests::{workspace_root, GoldenHost, GOLDEN_ENV};

mod secrets;
use secrets::{secret, Rng};

/// Where the secret sits in the query: every literal form, comments, JSON.
fn planted(form: usize, s: &str) -> (String, &'static str) {
    let pg = "postgresql";
    let my = "mysql";
    let n = s.chars().filter(char::is_ascii_digit).collect::<String>();
    match form % 13 {
        0 => (format!("SELECT * FROM users WHERE email = '{s}'"), pg),
        1 => (format!("SELECT * FROM users WHERE note = E'x\\'{s}'"), pg),
        2 => (format!("SELECT $${s}$$"), pg),
        3 => (format!("SELECT $q${s}$q$ AS a"), pg),
        4 => (format!("UPDATE t SET v = 1 -- {s}\nWHERE id = 2"), pg),
        5 => (format!("SELECT /* by {s} /* nested */ */ 1"), pg),
        6 => (format!("INSERT INTO t VALUES ('{{\"secret\": \"{s}\"}}'::jsonb)"), pg),
        7 => (format!("SELECT * FROM t WHERE c IN ('a', '{s}', 'b')"), pg),
        8 => (format!("SELECT * FROM t WHERE c = '{s}"), pg), // cut off
        9 => (format!("SELECT * FROM t WHERE c = \"{s}\""), my),
        10 => (format!("SELECT 1 # {s}\n"), my),
        11 => (format!("SELECT * FROM t WHERE c = 'x\\'{s}'"), my),
        _ => (format!("SELECT * FROM t WHERE n = {}", if n.is_empty() { "1".to_string() } else { n }), pg),
    }
}

#[test]
fn no_planted_secret_leaves_sanitize_pii() {
    let host = GoldenHost { set: GOLDEN_ENV };
    let compilation = compile(&[workspace_root().join("pipelines/sanitize_pii.pipe")], &host, EnvPolicy::Warn);
    let plan = compilation.plan.expect("the shipped sanitize rules compile");
    let NodeKind::Transform(node) = &plan.node("sanitize_pii").expect("sanitize_pii exists").kind else { panic!("not a transform") };
    let mut transform = Transform::new("sanitize_pii", node).expect("compiles to executable form");

    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let mut planted_count = 0;
    let mut leaks = Vec::new();
    for i in 0..1300 {
        let secret_text = secret(i, i, &mut rng);
        let (query, system) = planted(i / 9 + i, &secret_text);
        // numeric-only forms only make sense for digit secrets
        let numeric_form = (i / 9 + i) % 13 == 12;
        let must_not_appear: Vec<String> = if numeric_form {
            let digits: String = secret_text.chars().filter(char::is_ascii_digit).collect();
            if digits.len() < 4 {
                continue;
            }
            vec![digits]
        } else {
            vec![secret_text.clone()]
        };
        planted_count += 1;
        let mut resource = Resource::default();
        resource.attributes.insert("db.system.name", Value::Str(system.into()));
        let mut log = LogRecord::default();
        log.attributes.insert("db.query.text", Value::Str(query.clone()));
        log.attributes.insert("client_addr", Value::Str("10.9.8.7".into()));
        let mut record = Record::Log(log);
        let outcome = transform.apply(&mut resource, &mut record, &mut |_, _| {});
        assert!(matches!(outcome, RecordOutcome::Kept { errors: 0 }), "{query}: {outcome:?}");
        let out = format!("{:?}", record.attributes());
        for needle in must_not_appear {
            // any 6-character piece of the secret counts as a leak
            let chars: Vec<char> = needle.chars().collect();
            let piece_len = 6.min(chars.len());
            if let Some(piece) = chars.windows(piece_len).map(|w| w.iter().collect::<String>()).find(|p| out.contains(p.as_str())) {
                leaks.push(format!("{piece:?} of {needle:?}\n  in:  {query}\n  out: {out}"));
            }
        }
        assert!(!out.contains("10.9.8.7"), "client_addr survived: {out}");
    }
    assert!(planted_count >= 1000, "only {planted_count} secrets planted");
    assert!(leaks.is_empty(), "{} of {planted_count} secrets leaked:\n{}", leaks.len(), leaks.join("\n"));
}

/// `db.query.text.normalized.hash` is New Relic's normalizer and MD5 over
/// the sanitized text: the same query with two different secrets of the
/// same kind, in every literal and comment form above, gives the same
/// hash, so the hash tells nothing of the secret (no dictionary can find
/// it), and the normalized text shows none of it.
#[test]
fn the_query_hash_carries_nothing_of_a_planted_secret() {
    use dbintel_stdlib::sql::apm_hash::normalize_and_hash;
    let host = GoldenHost { set: GOLDEN_ENV };
    let compilation = compile(&[workspace_root().join("pipelines/sanitize_pii.pipe")], &host, EnvPolicy::Warn);
    let plan = compilation.plan.expect("the shipped sanitize rules compile");
    let NodeKind::Transform(node) = &plan.node("sanitize_pii").expect("sanitize_pii exists").kind else { panic!("not a transform") };
    let mut transform = Transform::new("sanitize_pii", node).expect("compiles to executable form");
    let mut sanitized = |query: &str, system: &str| {
        let mut resource = Resource::default();
        resource.attributes.insert("db.system.name", Value::Str(system.into()));
        let mut log = LogRecord::default();
        log.attributes.insert("db.query.text", Value::Str(query.to_string()));
        let mut record = Record::Log(log);
        let outcome = transform.apply(&mut resource, &mut record, &mut |_, _| {});
        assert!(matches!(outcome, RecordOutcome::Kept { errors: 0 }), "{query}: {outcome:?}");
        match record.attributes().get("db.query.text") {
            Some(Value::Str(text)) => text.clone(),
            other => panic!("{query}: db.query.text is {other:?}"),
        }
    };

    let (mut rng, mut other_rng) = (Rng(0x4a5b_0c1d_2e3f_4051), Rng(0x9e37_79b9_7f4a_7c15));
    let mut differ = Vec::new();
    for i in 0..1300 {
        let (secret_text, other) = (secret(i, i, &mut rng), secret(i, i + 1, &mut other_rng));
        let form = i / 9 + i;
        if form % 13 == 12 && secret_text.chars().filter(char::is_ascii_digit).count() < 4 {
            continue; // the numeric form needs digits to plant
        }
        let (query, system) = planted(form, &secret_text);
        let (other_query, _) = planted(form, &other);
        let (normalized, hash) = normalize_and_hash(&sanitized(&query, system));
        let (_, other_hash) = normalize_and_hash(&sanitized(&other_query, system));
        assert_eq!(hash.len(), 32, "{query}: {normalized:?}");
        let chars: Vec<char> = secret_text.chars().collect();
        let piece = chars
            .windows(6.min(chars.len()))
            .map(|w| w.iter().collect::<String>().to_uppercase())
            .find(|p| normalized.contains(p.as_str()));
        if hash != other_hash || piece.is_some() {
            differ.push(format!("{query}\n  {other_query}\n  normalized {normalized:?}, hashes {hash} {other_hash}, piece {piece:?}"));
        }
    }
    assert!(differ.is_empty(), "{} queries:\n{}", differ.len(), differ.join("\n"));
}
