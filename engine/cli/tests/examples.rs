//! Every function's documented examples, run through the real compiler and
//! engine as `.pipe` tests: the docs cannot drift from the behaviour.

use std::path::{Path, PathBuf};

use dbintel_dsl::{compile, EnvPolicy, Host};
use dbintel_operators::pipe_tests::{run_tests, Verdict};

/// Serves one in-memory file.
struct OneFile(String);

impl Host for OneFile {
    fn read(&self, _: &Path) -> std::io::Result<Vec<u8>> {
        Ok(self.0.clone().into_bytes())
    }
    fn canonicalize(&self, path: &Path) -> PathBuf {
        path.to_path_buf()
    }
    fn env_is_set(&self, _: &str) -> bool {
        true
    }
}

#[test]
fn every_function_has_examples_and_they_hold() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for sig in dbintel_stdlib::all() {
        assert!(!sig.examples.is_empty(), "{} has no example", sig.name);
        for (i, example) in sig.examples.iter().enumerate() {
            let source = format!(
                "transform t {{\n  {}\n}}\ntest \"{} #{i}\" {{\n  input t {{ attributes = {} }}\n  expect {{ attributes == {} }}\n}}\n",
                example.statement, sig.name, example.input, example.output
            );
            let compilation = compile(&[PathBuf::from("example.pipe")], &OneFile(source.clone()), EnvPolicy::Warn);
            let Some(plan) = compilation.plan else {
                let messages: Vec<String> = compilation.diagnostics.iter().map(|d| format!("{} {}", d.code.id, d.message)).collect();
                failures.push(format!("{} #{i} does not compile: {messages:?}\n{source}", sig.name));
                continue;
            };
            for result in run_tests(&plan) {
                ran += 1;
                if let Verdict::Failed(reasons) = result.verdict {
                    failures.push(format!("{} #{i}: {}\n{source}", sig.name, reasons.join("\n")));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} example(s) failed:\n{}", failures.len(), failures.join("\n\n"));
    assert!(ran >= dbintel_stdlib::all().count(), "{ran} examples ran for {} functions", dbintel_stdlib::all().count());
}
