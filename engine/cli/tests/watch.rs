//! The file watch of `dbintel run` (README: "polled every
//! `--watch-interval`; a change must be seen twice in a row"): a file
//! rewritten in two steps within one poll interval is applied once, in its
//! final form — the half-written state in between is never compiled; and
//! every file a plan was compiled from is watched, those it `use`s too.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::otlp::Run;
use common::scratch;

/// Recorded rows through a transform stamping `version` into a file.
fn stamped(version: &str, out: &Path) -> String {
    format!(
        r#"source rows = sql {{
  dsn = env("ROWS_DSN")
  collect m {{ query = "select 1", kind = gauge, metric = "test.value", value_column = "v" }}
}}
transform stamp {{
  set(attributes["version"], "{version}")
}}
sink out = file {{ path = "{}" }}
pipeline p = rows.m -> stamp -> batch -> out
"#,
        out.display()
    )
}

/// The `version` attribute of every point in an OTLP/JSON lines file.
fn versions(file: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
        let request: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not an OTLP/JSON line ({e}): {line}"));
        for rm in request["resourceMetrics"].as_array().into_iter().flatten() {
            for m in rm["scopeMetrics"][0]["metrics"].as_array().into_iter().flatten() {
                for p in m["gauge"]["dataPoints"].as_array().into_iter().flatten() {
                    let v = p["attributes"]
                        .as_array()
                        .and_then(|a| a.iter().find(|kv| kv["key"] == "version"))
                        .and_then(|kv| kv["value"]["stringValue"].as_str())
                        .unwrap_or("?")
                        .to_string();
                    *counts.entry(v).or_default() += 1;
                }
            }
        }
    }
    counts
}

#[test]
fn a_file_rewritten_in_two_steps_within_the_poll_interval_is_applied_once_in_its_final_form() {
    let dir = scratch("watch-debounce");
    let pipe = dir.join("p.pipe");
    let out = dir.join("out.jsonl");
    let rows = common::otlp::rows(&dir, "rows.ndjson", 3, 1);
    std::fs::write(&pipe, stamped("1", &out)).unwrap();
    let input = format!("rows.m={}", rows.display());
    let interval = Duration::from_secs(2);
    let mut run = Run::start(&[pipe.to_str().unwrap(), "--input", &input, "--watch-interval", "2s"], &[("ROWS_DSN", "unused")]);
    run.wait_for("the first plan's rows", Duration::from_secs(20), || (versions(&out).get("1") == Some(&3)).then_some(()));
    let applied = |run: &Run| run.metric_opt(r#"dbintel_reloads_total{result="applied"}"#).unwrap_or(0.0);
    let refused = |run: &Run| run.metric_opt(r#"dbintel_reloads_total{result="refused"}"#).unwrap_or(0.0);
    // Three rewrites, each in two steps: half the file (it does not
    // compile), then 1.2 s later the whole of it — so a poll sees the half
    // file at most once. Polls come every 2 s from the one that applied the
    // last version, and its rows show here within a few hundred ms of that
    // poll; starting 0.9 s after they show puts the next poll inside the
    // half file's 1.2 s. A watcher acting on one sighting would compile it.
    let mut shown = Instant::now();
    for (i, version) in ["2", "3", "4"].into_iter().enumerate() {
        let whole = stamped(version, &out);
        std::thread::sleep(Duration::from_millis(900).saturating_sub(shown.elapsed()));
        let started = Instant::now();
        std::fs::write(&pipe, &whole[..whole.len() / 2]).unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        std::fs::write(&pipe, &whole).unwrap();
        let half_lasted = started.elapsed();
        assert!(half_lasted < interval, "the half file stood {half_lasted:?}, not within one {interval:?} poll: the test machine stalled");
        run.wait_for(&format!("version {version}'s rows"), Duration::from_secs(20), || {
            (versions(&out).get(version) == Some(&3)).then_some(())
        });
        shown = Instant::now();
        assert_eq!(refused(&run), 0.0, "a half-written file was compiled:\n{}", run.stderr());
        assert_eq!(applied(&run), (i + 1) as f64, "each two-step rewrite is one reload:\n{}", run.stderr());
    }
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert!(!log.contains("reload refused"), "a half-written file was compiled:\n{log}");
    let seen = versions(&out);
    assert_eq!(seen, [("1", 3), ("2", 3), ("3", 3), ("4", 3)].map(|(v, n)| (v.to_string(), n)).into(), "the rows of each final form, once");
}

/// The pipeline of [`stamped`] with its transform in a file of its own,
/// `use`d from the main file (as the shipped pipelines use
/// sanitize_pii.pipe).
fn stamped_using(used: &str, out: &Path) -> String {
    format!(
        r#"use "{used}"
source rows = sql {{
  dsn = env("ROWS_DSN")
  collect m {{ query = "select 1", kind = gauge, metric = "test.value", value_column = "v" }}
}}
sink out = file {{ path = "{}" }}
pipeline p = rows.m -> stamp -> batch -> out
"#,
        out.display()
    )
}

fn stamp(version: &str) -> String {
    format!("transform stamp {{\n  set(attributes[\"version\"], \"{version}\")\n}}\n")
}

/// Issue 21, finding 4: an edit to a `use`d file (a tightened PII rule in
/// sanitize_pii.pipe) was not watched — silently not applied until a
/// restart or SIGHUP. Here the main file is untouched; the used file's
/// edit alone reloads.
#[test]
fn an_edit_to_a_used_file_reloads_without_touching_the_main_file() {
    let dir = scratch("watch-use");
    let (main, used, out) = (dir.join("main.pipe"), dir.join("sanitize_pii.pipe"), dir.join("out.jsonl"));
    let rows = common::otlp::rows(&dir, "rows.ndjson", 3, 1);
    std::fs::write(&main, stamped_using("sanitize_pii.pipe", &out)).unwrap();
    std::fs::write(&used, stamp("1")).unwrap();
    let input = format!("rows.m={}", rows.display());
    let run = Run::start(&[main.to_str().unwrap(), "--input", &input, "--watch-interval", "300ms"], &[("ROWS_DSN", "unused")]);
    run.wait_for("the first plan's rows", Duration::from_secs(20), || (versions(&out).get("1") == Some(&3)).then_some(()));
    std::fs::write(&used, stamp("2")).unwrap();
    run.wait_for("the used file's edit to apply", Duration::from_secs(20), || (versions(&out).get("2") == Some(&3)).then_some(()));
    assert_eq!(run.metric(r#"dbintel_reloads_total{result="applied"}"#), 1.0, "{}", run.stderr());
    assert!(run.stderr().contains("trigger=\"file change\"") || run.stderr().contains("file change"), "{}", run.stderr());
}

/// `dbintel run DIR`: the `.pipe` files directly in DIR are the plan; a
/// file they `use` from a folder under DIR is watched like them, and so is
/// a `use`d file that does not exist yet — the refused plan is applied as
/// soon as the file appears, with no other edit.
#[test]
fn files_used_from_under_a_directory_given_as_the_path_are_watched_even_before_they_exist() {
    let dir = scratch("watch-dir");
    let (config, out) = (dir.join("config"), dir.join("out.jsonl"));
    std::fs::create_dir_all(config.join("rules")).unwrap();
    let rows = common::otlp::rows(&dir, "rows.ndjson", 3, 1);
    let (main, used) = (config.join("main.pipe"), config.join("rules/stamp.pipe"));
    std::fs::write(&main, stamped_using("rules/stamp.pipe", &out)).unwrap();
    std::fs::write(&used, stamp("1")).unwrap();
    let input = format!("rows.m={}", rows.display());
    let run = Run::start(&[config.to_str().unwrap(), "--input", &input, "--watch-interval", "300ms"], &[("ROWS_DSN", "unused")]);
    let applied = |run: &Run| run.metric_opt(r#"dbintel_reloads_total{result="applied"}"#).unwrap_or(0.0);
    let refused = |run: &Run| run.metric_opt(r#"dbintel_reloads_total{result="refused"}"#).unwrap_or(0.0);
    run.wait_for("the first plan's rows", Duration::from_secs(20), || (versions(&out).get("1") == Some(&3)).then_some(()));

    std::fs::write(&used, stamp("2")).unwrap();
    run.wait_for("rules/stamp.pipe's edit to apply", Duration::from_secs(20), || (versions(&out).get("2") == Some(&3)).then_some(()));
    assert_eq!(applied(&run), 1.0);

    // the main file now uses a file not written yet: refused, once
    let later = config.join("rules/later.pipe");
    std::fs::write(&main, format!("use \"rules/later.pipe\"\n{}", stamped_using("rules/stamp.pipe", &out))).unwrap();
    run.wait_for("the refusal", Duration::from_secs(20), || (refused(&run) == 1.0).then_some(()));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(refused(&run), 1.0, "a refused file is not compiled again until something changes:\n{}", run.stderr());
    // it appears: applied, though no file the running plan read changed
    std::fs::write(&later, "transform unused_yet {\n  set(attributes[\"x\"], \"y\")\n}\nsink spare = stdout {}\npipeline spare = rows.m -> unused_yet -> spare\n")
        .unwrap();
    run.wait_for("the file that appeared to apply", Duration::from_secs(20), || (applied(&run) == 2.0).then_some(()));
    assert_eq!(refused(&run), 1.0, "{}", run.stderr());
}
