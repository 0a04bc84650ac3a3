//! Golden tests for the language, VRL-style: every file under `tests/lang/`
//! declares what the checker must say about it in `# expect:` header lines
//! (`# expect: E200 7:3 unknown function`), and this runner holds it to that,
//! exactly: no missing and no extra diagnostics. Files in `valid/` declare
//! nothing (or only warnings) and must also format idempotently.

use std::path::{Path, PathBuf};

use dbintel_dsl::source::{SourceFile, SourceMap};
use dbintel_dsl::{compile, format, parse, EnvPolicy};
use dbintel_tests::{expectations, workspace_root, Expected, GoldenHost, GOLDEN_ENV};

fn pipe_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pipe"))
        .collect();
    files.sort();
    files
}

fn actual(path: &Path) -> Vec<(Expected, String)> {
    let host = GoldenHost { set: GOLDEN_ENV };
    let compilation = compile(&[path.to_path_buf()], &host, EnvPolicy::Warn);
    compilation
        .diagnostics
        .iter()
        .map(|d| {
            let r = d.to_record(&compilation.sources);
            (Expected { code: r.code.to_string(), line: r.line, column: r.column, text: None }, r.message)
        })
        .collect()
}

/// Compares one file; returns a description of the mismatch.
fn check_file(path: &Path) -> Result<(), String> {
    let text = String::from_utf8_lossy(&std::fs::read(path).map_err(|e| e.to_string())?).into_owned();
    let expected = expectations(&text)?;
    let found = actual(path);
    let mut problems = Vec::new();
    for exp in &expected {
        let hit = found.iter().find(|(f, message)| {
            f.code == exp.code
                && f.line == exp.line
                && f.column == exp.column
                && exp.text.as_ref().is_none_or(|t| message.contains(t.as_str()))
        });
        if hit.is_none() {
            problems.push(format!("missing: {} {}:{} {}", exp.code, exp.line, exp.column, exp.text.clone().unwrap_or_default()));
        }
    }
    for (f, message) in &found {
        let listed = expected.iter().any(|e| e.code == f.code && e.line == f.line && e.column == f.column);
        if !listed {
            problems.push(format!("unexpected: # expect: {} {}:{} {}", f.code, f.line, f.column, message));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}:\n  {}", path.display(), problems.join("\n  ")))
    }
}

fn run_dir(dir: &str) -> Vec<PathBuf> {
    let root = workspace_root().join("tests/lang").join(dir);
    let files = pipe_files(&root);
    let failures: Vec<String> = files.iter().filter_map(|f| check_file(f).err()).collect();
    assert!(failures.is_empty(), "{} golden file(s) disagree:\n{}", failures.len(), failures.join("\n"));
    files
}

#[test]
fn invalid_files_report_exactly_their_expected_diagnostics() {
    let files = run_dir("invalid");
    assert!(files.len() >= 30, "the invalid corpus shrank to {}", files.len());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let expected = expectations(&text).unwrap_or_default();
        assert!(!expected.is_empty(), "{} declares no expected diagnostic", file.display());
    }
}

#[test]
fn valid_files_check_clean() {
    let files = run_dir("valid");
    assert!(!files.is_empty(), "no golden files under tests/lang/valid");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let expected = expectations(&text).unwrap_or_default();
        assert!(expected.iter().all(|e| e.code.starts_with('W')), "{} expects an error", file.display());
    }
}

#[test]
fn shipped_pipelines_are_valid_and_formatted() {
    let root = workspace_root().join("pipelines");
    let files = pipe_files(&root);
    assert!(files.len() >= 3, "the shipped pipelines are missing: {files:?}");
    let host = GoldenHost { set: GOLDEN_ENV };
    let compilation = compile(&files, &host, EnvPolicy::Require);
    let messages: Vec<String> = compilation.diagnostics.iter().map(|d| d.message.clone()).collect();
    assert!(compilation.diagnostics.is_empty(), "{messages:?}");
    let plan = compilation.plan.unwrap_or_else(|| panic!("the shipped pipelines compile to no plan: {messages:?}"));
    for name in ["postgres", "mysql", "sanitize_pii", "newrelic"] {
        assert!(plan.node(name).is_some(), "missing node {name}; the plan has {:?}", plan.nodes.keys().collect::<Vec<_>>());
    }
    for (collector, source) in [("statements", "postgres"), ("activity", "postgres"), ("statements", "mysql"), ("activity", "mysql")] {
        assert!(
            plan.edges.iter().any(|e| e.from == source && e.port.as_deref() == Some(collector)),
            "{source}.{collector} is not wired; edges: {:?}",
            plan.edges
        );
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert_eq!(format_text(&text), text, "{} is not in canonical format", file.display());
    }
}

fn format_text(text: &str) -> String {
    let mut sources = SourceMap::default();
    let id = sources.add(SourceFile::new("x".into(), "x".into(), text.to_string()));
    let parsed = parse::parse(id, text);
    assert!(parsed.diagnostics.is_empty(), "does not parse: {:?}", parsed.diagnostics);
    format::format(text, &parsed)
}

/// The plan a file compiles to, printed with every span erased (formatting
/// moves text, so offsets change; nothing else may), or its diagnostics
/// (code and message, without positions) when it does not compile.
fn meaning(path: &Path) -> String {
    let compilation = compile(&[path.to_path_buf()], &GoldenHost { set: GOLDEN_ENV }, EnvPolicy::Warn);
    let diagnostics: Vec<String> = compilation.diagnostics.iter().map(|d| format!("{} {}", d.code.id, d.message)).collect();
    match compilation.plan {
        Some(plan) => format!("diagnostics: {diagnostics:#?}\nplan: {}", without_spans(&format!("{plan:#?}"))),
        None => format!("no plan; diagnostics: {diagnostics:#?}"),
    }
}

/// `Span { file: 0, start: 12, end: 20 }` (however it is wrapped) becomes
/// `Span`.
fn without_spans(debug: &str) -> String {
    let mut out = String::with_capacity(debug.len());
    let mut rest = debug;
    while let Some(at) = rest.find("Span {") {
        out.push_str(&rest[..at]);
        out.push_str("Span");
        let after = &rest[at..];
        let close = after.find('}').expect("a Span's Debug ends with a brace");
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A copy of `dirs` (workspace-relative) under `to`, every `.pipe` file in
/// them formatted, so `use "../../../pipelines/x.pipe"` finds the
/// formatted copy of what it names.
fn formatted_mirror(dirs: &[&str], to: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut pairs = Vec::new();
    for dir in dirs {
        let target = to.join(dir);
        std::fs::create_dir_all(&target).unwrap_or_else(|e| panic!("cannot create {}: {e}", target.display()));
        for file in pipe_files(&workspace_root().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            let copy = target.join(file.file_name().expect("a file name"));
            std::fs::write(&copy, format_text(&text)).unwrap_or_else(|e| panic!("cannot write {}: {e}", copy.display()));
            pairs.push((file, copy));
        }
    }
    pairs
}

#[test]
fn formatting_is_idempotent_and_keeps_meaning_and_comments() {
    let mirror = std::env::temp_dir().join(format!("dbintel-fmt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&mirror);
    let pairs = formatted_mirror(&["tests/lang/valid", "pipelines"], &mirror);
    assert!(pairs.iter().any(|(f, _)| f.ends_with("pipelines/postgres.pipe")), "the shipped pipelines are compared too: {pairs:?}");
    let (mut with_use, mut changed) = (0, Vec::new());
    for (file, copy) in &pairs {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let once = std::fs::read_to_string(copy).unwrap_or_default();
        let twice = format_text(&once);
        assert_eq!(once, twice, "{}: formatting twice changed it", file.display());
        let comments = |t: &str| -> Vec<String> {
            let parsed = parse::parse(0, t);
            parsed.comments.iter().map(|c| c.text.trim_end().to_string()).collect()
        };
        assert_eq!(comments(&text), comments(&once), "{}: comments changed", file.display());
        // Same meaning: the formatted copy (and the formatted copies of
        // the files it uses) compiles to the same plan.
        let (before, after) = (meaning(file), meaning(copy));
        assert!(before.contains("plan: Plan"), "{} does not compile:\n{before}", file.display());
        if before != after {
            let first = before.lines().zip(after.lines()).position(|(a, b)| a != b).unwrap_or(0);
            let context = |t: &str| t.lines().skip(first.saturating_sub(6)).take(12).collect::<Vec<_>>().join("\n");
            changed.push(format!(
                "{}: around line {first} of the plan's Debug print\nbefore fmt:\n{}\nafter fmt:\n{}",
                file.display(),
                context(&before),
                context(&after)
            ));
        }
        with_use += usize::from(text.contains("use \""));
    }
    assert!(changed.is_empty(), "formatting changed the compiled plan of {} file(s):\n{}", changed.len(), changed.join("\n\n"));
    assert!(with_use >= 3, "files with `use` are compared, not skipped ({with_use} of them)");
    let _ = std::fs::remove_dir_all(&mirror);
}
