//! `db.query.text.normalized.hash` against a second, independent
//! implementation of New Relic's rules (`apm_hash_oracle/nr_normalizer.py`,
//! written from New Relic's Go code): byte for byte the same normalized
//! text and hash over generated SQL-ish text, over a corpus of real and
//! hostile statements (raw and as NormalizeSQL leaves them), and, for
//! phase 0, over every code point the oracle's Unicode tables assign.
//!
//! The oracle is one `python3` process per test binary, asked a line at a
//! time. No python3 is a failure, not a skip.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

use dbintel_stdlib::sql::apm_hash::{normalize_and_hash, phase0_character};
use dbintel_stdlib::sql::{normalize, Dialect};
use proptest::prelude::*;

fn oracle_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apm_hash_oracle/nr_normalizer.py")
}

struct Oracle {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Oracle {
    fn start() -> Oracle {
        let mut child = Command::new("python3")
            .arg(oracle_script())
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 on PATH runs the oracle (tests/run.sh needs it too)");
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else { panic!("the oracle's pipes") };
        let mut oracle = Oracle { _child: child, stdin, stdout: BufReader::new(stdout) };
        let hello: serde_json::Value = serde_json::from_str(&oracle.line()).expect("the oracle's greeting");
        assert!(hello["unicode"].is_string(), "{hello}");
        oracle
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from the oracle");
        assert!(!line.is_empty(), "the oracle exited");
        line
    }

    fn ask(&mut self, text: &str) -> (String, String) {
        let request = serde_json::to_string(text).expect("a string encodes");
        writeln!(self.stdin, "{request}").and_then(|()| self.stdin.flush()).expect("write to the oracle");
        let answer = self.line();
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("oracle answered {answer:?}: {e}"))
    }
}

fn oracle() -> MutexGuard<'static, Oracle> {
    static ORACLE: OnceLock<Mutex<Oracle>> = OnceLock::new();
    ORACLE.get_or_init(|| Mutex::new(Oracle::start())).lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn disagreement(text: &str) -> Option<String> {
    let ours = normalize_and_hash(text);
    let theirs = oracle().ask(text);
    (ours != theirs).then(|| format!("{text:?}\n  ours:   {ours:?}\n  oracle: {theirs:?}"))
}

/// Pieces of SQL that New Relic's rules treat specially, and characters
/// whose case or category is the same in every Unicode version from 13.0
/// on (so any python3 will do).
const PIECES: &[&str] = &[
    "SELECT",
    "select",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\u{0B}",
    "\u{0C}",
    "\u{1C}",
    "IN",
    "in",
    "In",
    "WITHIN",
    "EXTRACT",
    "extract",
    "(",
    ")",
    ",",
    ";",
    "'",
    "''",
    "\\",
    "\\'",
    "/*",
    "*/",
    "/",
    "*",
    "--",
    "-",
    "+",
    ".",
    "#",
    "obj#",
    "?",
    "$1",
    "$",
    ":name",
    ":1",
    ":",
    "@p",
    "@@global.x",
    "@",
    "%(n)s",
    "%(",
    "%",
    "NULL",
    "null",
    "TRUE",
    "false",
    "NULLABLE",
    "year",
    "epoch",
    "timezone_hour",
    "timezone",
    "bogus",
    "0",
    "42",
    "-7",
    "+3",
    ".5",
    "1.5e-3",
    "2E+5",
    "1E",
    "e",
    "x'1F'",
    "0x1F",
    "`t`",
    "_a",
    "a1",
    "t.c",
    "=",
    "<>",
    "é",
    "ß",
    "ı",
    "ſ",
    "ǅ",
    "ǆ",
    "ᾳ",
    "ᾀ",
    "ᾈ",
    "ΐ",
    "ﬁ",
    "ŉ",
    "\u{212A}",
    "µ",
    "ÿ",
    "\u{345}",
    "ⅻ",
    "ⓐ",
    "İ",
    "ǰ",
    "ᲀ",
    "日本",
    "😀",
    "\u{200B}",
    "\u{FEFF}",
    "\u{AD}",
    "\u{2028}",
    "\u{3000}",
    "\u{A0}",
    "\u{85}",
    "\u{180E}",
    "\u{600}",
    "\u{E0041}",
    "\u{1D173}",
    "\u{2060}",
    "\u{202E}",
    // the contexts that need several pieces in a row
    "EXTRACT(",
    "xextract(",
    "_EXTRACT (",
    "extract (epoch",
    "EXTRACT(\tYEAR ",
    "IN (",
    "xin (",
    "_IN(",
    "in(1, 2)",
    "IN (1,'a',$1, ?)",
    "in ( 1 , :p )",
    "in ('a''b', %(x)s)",
    "@@x",
    "x@y",
    "1e-",
    "--1",
    " #",
    "\n#",
];

fn sqlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(PIECES).prop_map(str::to_string),
        1 => "[a-z_][a-z0-9_]{0,5}",
        1 => "[0-9]{1,4}",
        1 => "[\\x00-\\x7f]",
    ];
    prop::collection::vec(piece, 0..48).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn agrees_with_the_oracle_on_generated_text(text in sqlish()) {
        if let Some(d) = disagreement(&text) {
            return Err(TestCaseError::fail(d));
        }
    }
}

/// Real statements and hostile ones: New Relic's own vectors and golden
/// texts, pg_stat_statements and MySQL digest texts, agent comments, and
/// every seed and finding of the normalize_sql fuzzer.
fn corpus() -> Vec<String> {
    let mut texts: Vec<String> = [
        "SELECT * FROM users WHERE id = 123 AND name = 'John'",
        "select * from pg_stat_activity where id = ?",
        "/* nr_service_guid=\"MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw\" */ SELECT * FROM orders WHERE id = $1",
        "SELECT soh.SalesOrderID, soh.OrderDate FROM salesorderheader soh JOIN salesorderdetail sod ON soh.SalesOrderID = sod.SalesOrderID ORDER BY soh.OrderDate DESC",
        "SELECT COALESCE ( schema_name, ? ), COALESCE ( digest, ? ) FROM performance_schema.events_statements_summary_by_digest WHERE last_seen >= NOW ( ) - INTERVAL ? SECOND LIMIT ?",
        "INSERT INTO `orders` ( `id` , `customer_id` , `total` ) VALUES (...)",
        "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT (a) DO UPDATE SET b = EXCLUDED.b",
        "UPDATE accounts SET balance = balance - $1 WHERE id = $2 RETURNING balance",
        "SELECT extract(epoch FROM now() - query_start) AS secs, pid FROM pg_stat_activity WHERE state <> 'idle'",
        "SELECT EXTRACT ( YEAR FROM `o` . `created_at` ) , COUNT ( * ) FROM `orders` `o` GROUP BY EXTRACT ( YEAR FROM `o` . `created_at` )",
        "SELECT * FROM t WHERE a IN (1, 2, 3) AND b IN ('x') AND c IN ($1, $2) AND d NOT IN (SELECT 1)",
        "SELECT @@version, @@session.sql_mode, @rowid := @rowid + 1",
        "CALL proc(:p1, :p2); -- done\n# mysql comment\nSELECT 1;",
        "select obj#, type#, flags from RecycleBin$ where ts#=:1",
        "SELECT $$dollar 'quoted' text$$, E'esc\\'aped', U&'\\0041', B'0101', X'1F', N'nat'",
        "SELECT \"Quoted Identifier\", 'it''s', 'back\\\\slash' FROM \"public\".\"T\"",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT sum(n) FROM r;;",
        "   \t\n",
        "",
        ";",
        "?",
        "SELECT 1 /* unclosed",
        "SELECT 'unclosed",
        "SELECT * FROM t WHERE x = -1.5E-10 AND y = +.5 AND z = 1.e5",
        "SELECT ſelect, ınterval, ﬁle, straße FROM täble WHERE naïve = 'café'",
        "SELECT\u{200B}*\u{FEFF}FROM t WHERE id = 1\u{2028}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for dir in ["sql_seeds", "regressions/normalize_sql"] {
        let entries = std::fs::read_dir(fuzz.join(dir)).unwrap_or_else(|e| panic!("fuzz/{dir}: {e}"));
        for entry in entries.flatten() {
            let bytes = std::fs::read(entry.path()).expect("a seed");
            // the first byte picks the fuzzer's dialect
            if let Some(Ok(text)) = bytes.split_first().map(|(_, rest)| std::str::from_utf8(rest)) {
                texts.push(text.to_string());
            }
        }
    }
    // and as the collectors hash them: after NormalizeSQL
    let sanitized: Vec<String> =
        texts.iter().flat_map(|t| [Dialect::Postgres, Dialect::MySql].map(|d| normalize(t, d).unwrap_or_default())).collect();
    texts.extend(sanitized);
    texts
}

#[test]
fn agrees_with_the_oracle_on_the_corpus() {
    let texts = corpus();
    assert!(texts.len() >= 80, "only {} texts", texts.len());
    let disagreements: Vec<String> = texts.iter().filter_map(|t| disagreement(t)).collect();
    assert!(disagreements.is_empty(), "{} of {} texts:\n{}", disagreements.len(), texts.len(), disagreements.join("\n"));
}

/// Phase 0 (Cf removed, Go's simple upper case) for every code point the
/// oracle's Unicode tables assign, but for the letters given an upper case
/// after Unicode 15.0 (Go's version), which both leave alone differently
/// depending on the interpreter's tables (the unit tests pin them).
#[test]
fn phase0_agrees_with_the_oracle_on_every_assigned_code_point() {
    let out = Command::new("python3").arg(oracle_script()).arg("--phase0").output().expect("python3 runs the oracle");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("ASCII");
    let mut lines = text.lines();
    let version = lines.next().unwrap_or_default().to_string();
    let newer_case = |cp: u32| matches!(cp, 0x019B | 0x0264 | 0x1C8A | 0xA7CD | 0xA7CF | 0xA7D3 | 0xA7D5 | 0xA7DB | 0x10D70..=0x10D85 | 0x16EBB..=0x16ED3);
    let mut checked = 0usize;
    let mut wrong = Vec::new();
    for line in lines {
        let Some((cp, fate)) = line.split_once(':') else { panic!("oracle line {line:?}") };
        let cp = u32::from_str_radix(cp, 16).expect("hex");
        let Some(c) = char::from_u32(cp) else { panic!("U+{cp:X}") };
        if newer_case(cp) {
            continue;
        }
        let theirs = if fate == "-" { None } else { char::from_u32(u32::from_str_radix(fate, 16).expect("hex")) };
        checked += 1;
        if phase0_character(c) != theirs {
            wrong.push(format!("U+{cp:04X}: ours {:?}, oracle {theirs:?}", phase0_character(c)));
        }
    }
    assert!(checked > 200_000, "only {checked} code points from Unicode {version}");
    assert!(wrong.is_empty(), "Unicode {version}: {} code points differ:\n{}", wrong.len(), wrong.join("\n"));
}
