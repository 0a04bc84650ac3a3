//! The file watch of `dbintel run` (README: "polled every
//! `--watch-interval`; a change must be seen twice in a row"): a file
//! rewritten in two steps within one poll interval is applied once, in its
//! final form — the half-written state in between is never compiled.

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
