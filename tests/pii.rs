//! The PII corpus: over a thousand planted secrets, in every literal form
//! the SQL lexer knows, in comments and in JSON literals, through the
//! shipped `pipelines/sanitize_pii.pipe`. Not one may come out.

use dbintel_core::record::{LogRecord, Record, Resource};
use dbintel_dsl::plan::NodeKind;
use dbintel_dsl::{compile, EnvPolicy};
use dbintel_operators::transform::{RecordOutcome, Transform};
use dbintel_stdlib::Value;
use dbintel_tests::{workspace_root, GoldenHost, GOLDEN_ENV};

/// A deterministic generator, so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b'0' + (self.next() % 10) as u8)).collect()
    }
    fn alnum(&mut self, n: usize) -> String {
        const SET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        (0..n).map(|_| SET[(self.next() % SET.len() as u64) as usize] as char).collect()
    }
}

fn luhn_card(rng: &mut Rng) -> String {
    let mut digits: Vec<u32> = "4".chars().chain(rng.digits(14).chars()).filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    digits.push((10 - sum % 10) % 10);
    digits.iter().map(|d| char::from_digit(*d, 10).unwrap_or('0')).collect()
}

/// One secret of each kind; the second value is what must not appear.
fn secret(kind: usize, i: usize, rng: &mut Rng) -> String {
    match kind % 9 {
        0 => format!("user{i}.{}@corp{i}.example.com", rng.alnum(5).to_lowercase()),
        1 => format!("{}-{}-{}", 100 + (rng.next() % 500), 10 + rng.next() % 89, 1000 + rng.next() % 8999),
        2 => luhn_card(rng),
        3 => format!("+1 ({}) {}-{}", 200 + rng.next() % 700, 200 + rng.next() % 700, rng.digits(4)),
        4 => format!("10.{}.{}.{}", rng.next() % 255, rng.next() % 255, 1 + rng.next() % 254),
        5 => format!("2001:db8:{:x}:{:x}::{:x}", rng.next() % 65535, rng.next() % 65535, 1 + rng.next() % 65534),
        6 => format!("eyJ{}.eyJ{}.{}", rng.alnum(20), rng.alnum(30), rng.alnum(40)),
        7 => format!("sk_live_{}", rng.alnum(24)),
        _ => format!("pw{i}{}", rng.alnum(12)),
    }
}

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
        assert!(!out.contains("10.9.8.7"), "client_addr survived");
    }
    assert!(planted_count >= 1000, "only {planted_count} secrets planted");
    assert!(leaks.is_empty(), "{} of {planted_count} secrets leaked:\n{}", leaks.len(), leaks.join("\n"));
}
