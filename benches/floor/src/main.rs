//! Reads NDJSON rows, applies the eight rules to "db.query.text" with
//! `replace_all`, writes each row back as JSON.

use std::io::{BufRead, BufWriter, Write};

const RULES: [(&str, &str); 8] = [
    (r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b", "[EMAIL]"),
    (r"\b\d{3}-\d{2}-\d{4}\b", "[SSN]"),
    (r"\b(?:\d[ -]?){12,15}\d\b", "[CARD]"),
    (r"(?:\+\d{1,3}[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}", "[PHONE]"),
    (r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "[IP]"),
    (r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", "[JWT]"),
    (r"sk_live_[a-z0-9]{16,}", "[APIKEY]"),
    (r"'(?:[^']|'')*'", "'?'"),
];

fn main() {
    let rules: Vec<(regex::Regex, &str)> = RULES.iter().map(|(p, r)| (regex::Regex::new(p).expect("rule"), *r)).collect();
    let path = std::env::args().nth(1).expect("usage: sanitize-floor FILE");
    let input = std::io::BufReader::new(std::fs::File::open(path).expect("open"));
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for line in input.lines() {
        let line = line.expect("read");
        let mut row: serde_json::Value = serde_json::from_str(&line).expect("json");
        if let Some(serde_json::Value::String(text)) = row.get_mut("db.query.text") {
            for (re, replacement) in &rules {
                if let std::borrow::Cow::Owned(new) = re.replace_all(text, *replacement) {
                    *text = new;
                }
            }
        }
        serde_json::to_writer(&mut out, &row).expect("write");
        out.write_all(b"\n").expect("write");
    }
}
