//! Parse, check and format arbitrary bytes. Beyond "no panic, no overflow,
//! no hang", it holds the formatter to its promises: whatever parses formats
//! to text that parses again, identically on a second pass.
#![no_main]

use std::path::{Path, PathBuf};

use dbintel_dsl::{compile, format, parse, EnvPolicy, Host};
use libfuzzer_sys::fuzz_target;

struct OneFile<'a>(&'a [u8]);

impl Host for OneFile<'_> {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        if path == Path::new("fuzz.pipe") {
            Ok(self.0.to_vec())
        } else {
            Err(std::io::Error::new(std::io::ErrorKind::NotFound, "only fuzz.pipe exists"))
        }
    }
    fn canonicalize(&self, path: &Path) -> PathBuf {
        path.to_path_buf()
    }
    fn env_is_set(&self, name: &str) -> bool {
        name.len() % 2 == 0
    }
}

fuzz_target!(|data: &[u8]| {
    let compilation = compile(&[PathBuf::from("fuzz.pipe")], &OneFile(data), EnvPolicy::Warn);
    for d in &compilation.diagnostics {
        let _ = d.to_record(&compilation.sources);
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = parse::parse(0, text);
    if !parsed.diagnostics.is_empty() {
        return;
    }
    let once = format::format(text, &parsed);
    let reparsed = parse::parse(0, &once);
    assert!(reparsed.diagnostics.is_empty(), "formatted text does not parse:\n{once}\n{:?}", reparsed.diagnostics);
    let twice = format::format(&once, &reparsed);
    assert_eq!(once, twice, "formatting is not idempotent");
    let comments = |p: &parse::Parsed| p.comments.iter().map(|c| c.text.trim_end().to_string()).collect::<Vec<_>>();
    assert_eq!(comments(&parsed), comments(&reparsed), "formatting lost or changed a comment");
});
