//! The `dbintel` binary as users run it: real process, real files, asserting
//! exit codes and output.

mod common;

use std::path::Path;

use common::{code, dbintel, root, scratch, text, ALL_ENV};

#[test]
fn validate_accepts_the_shipped_pipelines() {
    let out = dbintel(&["validate", "--deny-warnings", "pipelines/"], ALL_ENV);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("valid: 6 file(s), 0 errors, 0 warnings"), "{}", text(&out.stderr));
}

#[test]
fn unset_env_vars_warn_and_deny_warnings_fails() {
    let out = dbintel(&["validate", "pipelines/postgres.pipe"], &[]);
    assert_eq!(code(&out), 0, "{}", common::seen(&out));
    assert!(text(&out.stderr).contains("W312"), "{}", common::seen(&out));
    let out = dbintel(&["validate", "--deny-warnings", "pipelines/postgres.pipe"], &[]);
    assert_eq!(code(&out), 1, "{}", common::seen(&out));
}

#[test]
fn validate_reports_every_error_with_position_code_and_help() {
    let out = dbintel(&["validate", "tests/lang/invalid/syntax_missing_brace.pipe"], ALL_ENV);
    assert_eq!(code(&out), 1, "{}", common::seen(&out));
    let err = text(&out.stderr);
    // the syntax error and the error in the next item, both
    assert!(err.contains("E102") && err.contains("E200"), "{err}");
    assert!(err.contains("syntax_missing_brace.pipe:8:1"), "{err}");
    assert!(err.contains("invalid: 1 file(s), 2 errors, 1 warning"), "{err}");
}

#[test]
fn validate_json_gives_machines_the_same_facts() {
    let out = dbintel(&["validate", "--format", "json", "tests/lang/invalid/unknown_function.pipe"], ALL_ENV);
    assert_eq!(code(&out), 1, "{}", common::seen(&out));
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    let first = &parsed[0];
    assert_eq!(first["code"], "E200", "{parsed:#}");
    assert_eq!(first["severity"], "error", "{parsed:#}");
    assert_eq!(first["line"], 9, "{parsed:#}");
    assert_eq!(first["column"], 3, "{parsed:#}");
    assert_eq!(first["help"], "did you mean `replace_pattern`?", "{parsed:#}");
    assert!(first["file"].as_str().unwrap_or("").ends_with("unknown_function.pipe"), "{parsed:#}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [&["validate"][..], &["validate", "--frobnicate", "x.pipe"], &["nonsense"]] {
        let out = dbintel(args, &[]);
        assert_eq!(code(&out), 2, "dbintel {args:?}: {}", common::seen(&out));
    }
    let empty = scratch("empty-dir");
    let out = dbintel(&["validate", empty.to_str().unwrap()], &[]);
    assert_eq!(code(&out), 2, "{}", common::seen(&out));
    assert!(text(&out.stderr).contains("no .pipe files"), "{}", common::seen(&out));
}

#[test]
fn a_missing_file_is_invalid_with_a_clear_message() {
    let out = dbintel(&["validate", "does/not/exist.pipe"], &[]);
    assert_eq!(code(&out), 1, "{}", common::seen(&out));
    assert!(text(&out.stderr).contains("cannot read `does/not/exist.pipe`"), "{}", text(&out.stderr));
}

#[test]
fn inline_secrets_are_refused_without_being_echoed() {
    let out = dbintel(&["validate", "--format", "human", "tests/lang/invalid/inline_secret.pipe"], ALL_ENV);
    assert_eq!(code(&out), 1, "{}", common::seen(&out));
    let all = text(&out.stderr) + &text(&out.stdout);
    assert!(all.contains("E307"), "{all}");
    assert!(!all.contains("hunter2"), "the password leaked: {all}");
    let json = dbintel(&["validate", "--format", "json", "tests/lang/invalid/inline_secret.pipe"], ALL_ENV);
    assert!(!text(&json.stdout).contains("hunter2"), "{}", common::seen(&json));
}

#[test]
fn graph_prints_dot_and_mermaid() {
    let dot = dbintel(&["graph", "pipelines/postgres.pipe"], ALL_ENV);
    assert_eq!(code(&dot), 0, "{}", text(&dot.stderr));
    let dot = text(&dot.stdout);
    assert!(dot.starts_with("digraph dbintel {"), "{dot}");
    assert!(dot.contains("\"postgres\" -> \"memory_limit\" [label=\"statements: metrics and logs\"]"), "{dot}");
    assert!(dot.contains("\"batch\" -> \"newrelic\""), "{dot}");
    let mermaid = dbintel(&["graph", "--format", "mermaid", "pipelines/"], ALL_ENV);
    assert_eq!(code(&mermaid), 0, "{}", common::seen(&mermaid));
    let mermaid = text(&mermaid.stdout);
    assert!(mermaid.starts_with("flowchart LR"), "{mermaid}");
    assert!(mermaid.contains("-->|\"activity: metrics and logs\"|"), "{mermaid}");
    // fan-in: the mysql and postgres pipelines share sanitize_pii
    assert_eq!(mermaid.matches("sanitize_pii<br/>").count(), 1, "one sanitize_pii node:\n{mermaid}");
}

#[test]
fn graph_of_an_invalid_file_fails() {
    let out = dbintel(&["graph", "tests/lang/invalid/cycle.pipe"], ALL_ENV);
    assert_eq!(code(&out), 1, "{}", common::seen(&out));
    assert!(text(&out.stdout).is_empty(), "{}", common::seen(&out));
    assert!(text(&out.stderr).contains("E402"), "{}", common::seen(&out));
}

#[test]
fn fmt_rewrites_to_canonical_form_and_keeps_comments() {
    let dir = scratch("fmt");
    let file = dir.join("messy.pipe");
    let messy = "# header\nsource   pg=postgres{dsn=env(\"PG_DSN\")   # the dsn\ncollect statements{top=5,}}\n\n\n\nsink out=stdout{}\npipeline p=pg.statements->out # wire\n";
    std::fs::write(&file, messy).unwrap();
    let check = dbintel(&["fmt", "--check", file.to_str().unwrap()], &[]);
    assert_eq!(code(&check), 1, "{}", common::seen(&check));
    assert!(text(&check.stderr).contains("would reformat"), "{}", common::seen(&check));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), messy, "--check must not write");

    let write = dbintel(&["fmt", file.to_str().unwrap()], &[]);
    assert_eq!(code(&write), 0, "{}", text(&write.stderr));
    let formatted = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        formatted,
        "# header\nsource pg = postgres {\n  dsn = env(\"PG_DSN\")  # the dsn\n  collect statements { top = 5 }\n}\n\nsink out = stdout {}\n\npipeline p = pg.statements -> out  # wire\n",
        "the canonical form"
    );
    let check = dbintel(&["fmt", "--check", file.to_str().unwrap()], &[]);
    assert_eq!(code(&check), 0, "the formatted file passes --check: {}", common::seen(&check));
}

#[test]
fn fmt_refuses_a_file_that_does_not_parse() {
    let dir = scratch("fmt-broken");
    let file = dir.join("broken.pipe");
    std::fs::write(&file, "transform t {\n").unwrap();
    let out = dbintel(&["fmt", file.to_str().unwrap()], &[]);
    assert_eq!(code(&out), 1, "{}", common::seen(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "transform t {\n", "a file that does not parse is left alone");
}

#[test]
fn completions_and_help() {
    let out = dbintel(&["completions", "bash"], &[]);
    assert_eq!(code(&out), 0, "{}", common::seen(&out));
    assert!(text(&out.stdout).contains("validate"), "{}", common::seen(&out));
    let help = dbintel(&["validate", "--help"], &[]);
    assert_eq!(code(&help), 0, "{}", common::seen(&help));
    assert!(text(&help.stdout).contains("Examples:"), "{}", common::seen(&help));
}

#[test]
fn functions_lists_the_registry() {
    let out = dbintel(&["functions"], &[]);
    assert_eq!(code(&out), 0, "{}", common::seen(&out));
    let listing = text(&out.stdout);
    assert!(listing.contains("replace_all_patterns(target, mode, regex, replacement, [function], [replacementFormat])"), "{listing}");
    assert!(listing.contains("NormalizeSQL(text, [dialect])"), "{listing}");
}

/// Writes `bytes` to a file, validates it, and checks the result is a
/// diagnostic with exit 1: no panic, no stack overflow, no hang.
fn rejects(name: &str, bytes: &[u8], code_expected: &str) {
    let dir = scratch(name);
    let file = dir.join(format!("{name}.pipe"));
    std::fs::write(&file, bytes).unwrap();
    let out = dbintel(&["validate", "--format", "json", file.to_str().unwrap()], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{name}: bad json {e}"));
    let codes: Vec<&str> = parsed.as_array().unwrap().iter().filter_map(|d| d["code"].as_str()).collect();
    assert!(codes.contains(&code_expected), "{name}: expected {code_expected}, got {codes:?}");
    // the human renderer must survive it too
    let human = dbintel(&["validate", file.to_str().unwrap()], &[]);
    assert_eq!(human.status.code(), Some(1), "{name} (human): {}", text(&human.stderr));
}

#[test]
fn bad_input_gets_a_diagnostic_never_a_crash() {
    rejects("empty", b"", "E105");
    rejects("garbage", b"}}}{{{ -> -> ;;; @@@ \"unterminated", "E102");
    rejects("binary", &[0x00, 0x01, 0x02, 0xfe, 0x7f, 0x00, b's', b'o', b'u', b'r', b'c', b'e'], "E101");
    rejects("nul_bytes", b"source\0 pg = postgres {}", "E102");
    rejects("invalid_utf8", b"transform t {\n  set(attributes[\"a\"], \"\xff\xfe\")\n}\n", "E101");
    let mut long_line = b"transform t { set(attributes[\"a\"], \"".to_vec();
    long_line.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    long_line.extend(b"\") }\n");
    rejects("ten_mb_line", &long_line, "E104");
    let parens = format!("transform t {{ set(attributes[\"a\"], {}1{}) }}\n", "(".repeat(100_000), ")".repeat(100_000));
    rejects("nested_parens", parens.as_bytes(), "E103");
    let nots = format!("transform t {{ set(attributes[\"a\"], 1) where {}true }}\n", "not ".repeat(100_000));
    rejects("many_nots", nots.as_bytes(), "E103");
    let chain = format!("transform t {{ set(attributes[\"a\"], 1) where {}true }}\n", "true or ".repeat(100_000));
    rejects("long_chain", chain.as_bytes(), "E103");
    let minus = format!("transform t {{ set(attributes[\"a\"], {}1) }}\n", "-".repeat(100_000));
    rejects("many_minus", minus.as_bytes(), "E103");
}

#[test]
fn a_file_that_uses_itself_is_a_cycle() {
    let dir = scratch("self-use");
    let file = dir.join("self.pipe");
    std::fs::write(&file, "use \"self.pipe\"\nsink out = stdout {}\n").unwrap();
    let out = dbintel(&["validate", "--format", "json", file.to_str().unwrap()], &[]);
    assert_eq!(code(&out), 1, "{}", common::seen(&out));
    assert!(text(&out.stdout).contains("E106"), "{}", common::seen(&out));
}

#[test]
fn a_mounted_configmap_directory_is_read_once() {
    // The kubelet's layout: real files in a timestamped dir, `..data` linking
    // to it, and top-level links through `..data`.
    let dir = scratch("configmap");
    let real = dir.join("..2026_11_28_00_00_00.000000001");
    std::fs::create_dir_all(&real).unwrap();
    for name in ["postgres.pipe", "sanitize_pii.pipe", "newrelic.pipe"] {
        std::fs::copy(root().join("pipelines").join(name), real.join(name)).unwrap();
    }
    std::os::unix::fs::symlink(real.file_name().unwrap(), dir.join("..data")).unwrap();
    for name in ["postgres.pipe", "sanitize_pii.pipe", "newrelic.pipe"] {
        std::os::unix::fs::symlink(Path::new("..data").join(name), dir.join(name)).unwrap();
    }
    let out = dbintel(&["validate", "--deny-warnings", dir.to_str().unwrap()], ALL_ENV);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("valid: 3 file(s)"), "{}", text(&out.stderr));
}

/// README: levels come from `DBINTEL_LOG`, "default `info` for `run`,
/// `warn` for the other commands". Without it set, `run` says what it does
/// at info (no debug), and `dry-run` of the same plan says nothing at info.
#[test]
fn without_dbintel_log_run_logs_at_info_and_other_commands_at_warn() {
    let dir = scratch("default-log-level");
    let out_file = dir.join("out.jsonl");
    let pipe = dir.join("p.pipe");
    std::fs::write(
        &pipe,
        format!(
            "source rows = sql {{\n  dsn = env(\"ROWS_DSN\")\n  collect m {{ query = \"select 1\", kind = gauge, metric = \"t.v\", value_column = \"v\" }}\n}}\nsink out = file {{ path = \"{}\" }}\npipeline p = rows.m -> out\n",
            out_file.display()
        ),
    )
    .unwrap();
    let rows = common::otlp::rows(&dir, "rows.ndjson", 3, 1);
    let input = format!("rows.m={}", rows.display());
    // `dbintel run` until ready, a garbage HTTP client (the port logs the
    // connection's error at debug: something for a debug level to show),
    // then SIGTERM; its stderr
    let run_at = |level: Option<&str>| {
        let port = common::otlp::free_port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dbintel"));
        command
            .args(["run", "--listen", &format!("127.0.0.1:{port}"), "--no-watch", "--input", &input, pipe.to_str().unwrap()])
            .env_remove("DBINTEL_LOG")
            .env_remove("DBINTEL_LOG_FORMAT");
        if let Some(level) = level {
            command.env("DBINTEL_LOG", level);
        }
        let child = command
            .env("ROWS_DSN", "unused")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("dbintel run");
        let started = std::time::Instant::now();
        let ready = loop {
            if common::otlp::http(port, "GET", "/readyz").map(|r| r.0) == Some(200) {
                break true;
            }
            if started.elapsed() > std::time::Duration::from_secs(30) {
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        if let Ok(mut garbage) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = garbage.write_all(b"\x00\x01 not http at all\r\n\r\n");
            let _ = garbage.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let _ = garbage.read(&mut [0u8; 256]);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let run = child.wait_with_output().expect("dbintel run exits");
        assert!(ready, "dbintel run was not ready within 30 s: {}", common::seen(&run));
        run
    };
    let level_of = |line: &str| line.split_whitespace().nth(1).unwrap_or_default().to_string();
    // the scene has a debug line to show: at debug, it shows
    let at_debug = text(&run_at(Some("debug")).stderr);
    assert!(
        at_debug.lines().any(|l| level_of(l) == "DEBUG" && l.contains("http connection ended with an error")),
        "a garbage client is logged at debug:\n{at_debug}"
    );
    let run = run_at(None);
    let log = text(&run.stderr);
    assert!(run.status.success(), "{log}");
    let levels: std::collections::BTreeSet<String> = log.lines().filter(|l| l.starts_with("20")).map(level_of).collect();
    assert!(
        log.lines().any(|l| level_of(l) == "INFO" && l.contains("running; /metrics")),
        "run logs at info by default (levels seen: {levels:?}):\n{log}"
    );
    assert!(!levels.contains("DEBUG") && !levels.contains("TRACE"), "run logs below info by default: {levels:?}\n{log}");

    // a live scrape, which logs its target's state changes at info
    let dry_run = |level: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dbintel"));
        command.args(["dry-run", pipe.to_str().unwrap(), "--scrapes", "1"]).env_remove("DBINTEL_LOG").env_remove("DBINTEL_LOG_FORMAT");
        if let Some(level) = level {
            command.env("DBINTEL_LOG", level);
        }
        let out = command.env("ROWS_DSN", common::PG_MONITOR).output().expect("dbintel dry-run");
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let info_lines = |log: &str| log.lines().filter(|l| l.starts_with("20") && level_of(l) == "INFO").count();
    let at_info = dry_run(Some("info"));
    assert!(info_lines(&at_info) > 0, "dry-run has info lines to hide:\n{at_info}");
    let by_default = dry_run(None);
    assert_eq!(info_lines(&by_default), 0, "dry-run logs at info by default:\n{by_default}");
}
