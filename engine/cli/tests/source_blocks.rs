//! One server, many source blocks (issue 21, finding 9): a generated
//! config of one block per database used to re-read every server-wide
//! view once per block, and New Relic received each server-wide series
//! once per block over the same entity. Against a private PostgreSQL, five
//! blocks (two spellings of the server's address) with the same collectors
//! and pipelines: the server-wide views are read once, by one of them, the
//! others say who reads for them, each block's own database is still read,
//! and when the reading block goes (a reload removes it) another takes
//! over. A block whose settings differ reads too, and says so once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::otlp::Run;
use common::private_pg::PrivatePg;
use common::scratch;

/// Points of `metric` in an OTLP/JSON file, with their resource's
/// `postgresql.database.name` (or `db.namespace`) when they have one.
fn points(file: &Path, metric: &str) -> Vec<(u64, Option<String>)> {
    let mut found = Vec::new();
    for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("OTLP/JSON");
        for rm in v["resourceMetrics"].as_array().into_iter().flatten() {
            let attrs = rm["resource"]["attributes"].as_array().cloned().unwrap_or_default();
            let db = attrs
                .iter()
                .find(|kv| kv["key"] == "postgresql.database.name")
                .and_then(|kv| kv["value"]["stringValue"].as_str())
                .map(str::to_string);
            for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                for m in sm["metrics"].as_array().into_iter().flatten().filter(|m| m["name"] == metric) {
                    let data = m["gauge"]["dataPoints"].as_array().or_else(|| m["sum"]["dataPoints"].as_array());
                    for p in data.into_iter().flatten() {
                        let t = p["timeUnixNano"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
                        let pdb = p["attributes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .find(|kv| kv["key"] == "postgresql.database.name" || kv["key"] == "db.namespace")
                            .and_then(|kv| kv["value"]["stringValue"].as_str())
                            .map(str::to_string);
                        found.push((t, pdb.or_else(|| db.clone())));
                    }
                }
            }
        }
    }
    found
}

fn blocks(pg: &PrivatePg, names: &[&str], out: &Path, odd: Option<&str>) -> String {
    let mut text = String::new();
    for (i, name) in names.iter().enumerate() {
        // two spellings of one server
        let host = if i % 2 == 0 { "127.0.0.1" } else { "localhost" };
        let instance = if Some(*name) == odd { "collect instance { sizes_every = 7s }" } else { "collect instance" };
        text.push_str(&format!(
            "source {name} = postgres {{\n  dsn = env(\"DSN_{name}\")\n  interval = 1s\n  jitter = 0%\n  {instance}\n  collect tables {{ interval = 1s }}\n}}\n"
        ));
        let _ = (pg, host);
    }
    text.push_str(&format!("sink out = file {{ path = \"{}\" }}\n", out.display()));
    for name in names {
        text.push_str(&format!("pipeline i_{name} = {name}.instance -> out\npipeline t_{name} = {name}.tables -> out\n"));
    }
    text
}

#[test]
fn regression_server_wide_views_are_read_once_however_many_source_blocks_name_the_server() {
    let pg = PrivatePg::primary("source-blocks");
    let names = ["b0", "b1", "b2", "b3", "b4"];
    for name in &names {
        pg.sql(&format!("CREATE DATABASE db_{name}"));
        pg.sql(&format!("GRANT CONNECT ON DATABASE db_{name} TO proofs_mon"));
        let out = std::process::Command::new("psql")
            .args(["-X", "-q", "-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "postgres", "-d", &format!("db_{name}")])
            .args(["-c", "CREATE TABLE orders (id int)"])
            .output()
            .expect("psql");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let dir = scratch("source-blocks");
    let out = dir.join("out.jsonl");
    let pipe = dir.join("p.pipe");
    std::fs::write(&pipe, blocks(&pg, &names, &out, None)).unwrap();
    let env: Vec<(String, String)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let host = if i % 2 == 0 { "127.0.0.1" } else { "localhost" };
            (format!("DSN_{name}"), format!("postgres://proofs_mon@{host}:{}/db_{name}?sslmode=disable", pg.port))
        })
        .collect();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let run = Run::start(&[pipe.to_str().unwrap(), "--watch-interval", "200ms"], &env_refs);

    // every block's database is read (by the reader of the server's
    // databases: a plain DSN's `tables` reads every database it may)
    run.wait_for("each block's tables", Duration::from_secs(30), || {
        let dbs: BTreeSet<String> = points(&out, "postgresql.table.count").into_iter().filter_map(|(_, d)| d).collect();
        names.iter().all(|n| dbs.contains(&format!("db_{n}"))).then_some(())
    });
    // the server-wide views are read by one block: over 6 s at 1 s, about
    // 6 scrapes of max_connections, not 5 × 6
    let before = points(&out, "postgresql.connection.max").len();
    std::thread::sleep(Duration::from_secs(6));
    let read = points(&out, "postgresql.connection.max").len() - before;
    assert!((4..=8).contains(&read), "{read} scrapes of a server-wide view in 6 s at 1 s by 5 blocks");
    let status = run.status();
    let roles: BTreeMap<String, (String, Option<String>)> = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let c = &t["collectors"]["instance"];
            (
                t["source"].as_str().unwrap().to_string(),
                (c["state"].as_str().unwrap().to_string(), c["read_by"].as_str().map(str::to_string)),
            )
        })
        .collect();
    let readers: Vec<&String> = roles.iter().filter(|(_, (state, _))| state != "read_elsewhere").map(|(n, _)| n).collect();
    assert_eq!(readers.len(), 1, "one block reads the server's views: {roles:?}");
    let reader = readers[0].clone();
    for (name, (state, by)) in &roles {
        if *name != reader {
            assert_eq!((state.as_str(), by.as_deref()), ("read_elsewhere", Some(reader.as_str())), "{name}: {roles:?}");
        }
    }

    // the reading block goes: another takes over, without a restart
    let rest: Vec<&str> = names.iter().copied().filter(|n| *n != reader).collect();
    std::fs::write(&pipe, blocks(&pg, &rest, &out, None)).unwrap();
    let reload_seen = Instant::now();
    run.wait_for("the reload", Duration::from_secs(20), || {
        let status = run.status();
        (!status["targets"].as_array().unwrap().iter().any(|t| t["source"] == reader.as_str())).then_some(())
    });
    let before = points(&out, "postgresql.connection.max").len();
    run.wait_for("another block reads", Duration::from_secs(20), || {
        (points(&out, "postgresql.connection.max").len() > before + 2).then_some(())
    });
    let status = run.status();
    let reading: Vec<&serde_json::Value> =
        status["targets"].as_array().unwrap().iter().filter(|t| t["collectors"]["instance"]["state"] != "read_elsewhere").collect();
    assert_eq!(reading.len(), 1, "{status:#}");
    let _ = reload_seen;

    // a block whose instance settings differ reads too, and says so once
    let odd = rest[0];
    std::fs::write(&pipe, blocks(&pg, &rest, &out, Some(odd))).unwrap();
    run.wait_for("the odd block's warning", Duration::from_secs(20), || {
        run.stderr().contains("another source reads this server's view with other settings or paths").then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let log = run.stderr();
    assert_eq!(log.matches("another source reads this server's view with other settings or paths").count(), 1, "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

/// Who reads the server's `instance` view, by the blocks' status.
fn instance_reader(run: &Run) -> Option<String> {
    let status = run.status();
    let reading: Vec<String> = status["targets"]
        .as_array()?
        .iter()
        .filter(|t| t["state"] == "up" && t["collectors"]["instance"]["state"] != "read_elsewhere")
        .filter_map(|t| t["source"].as_str().map(str::to_string))
        .collect();
    (reading.len() == 1).then(|| reading[0].clone())
}

/// The reading block's connection is cut and its host vanishes (a proxy
/// resets and then blackholes it): the covered block reads within seconds,
/// without a restart, and the server's series keep arriving once per
/// round, not twice; when the network comes back the first block finds
/// the view read and stays covered.
#[test]
fn a_reader_cut_off_hands_the_view_to_a_covered_block() {
    let pg = PrivatePg::primary("source-blocks-cut");
    let names = ["c0", "c1"];
    for name in &names {
        pg.sql(&format!("CREATE DATABASE db_{name}"));
        pg.sql(&format!("GRANT CONNECT ON DATABASE db_{name} TO proofs_mon"));
    }
    let proxies = [common::proxy::Proxy::start(pg.port), common::proxy::Proxy::start(pg.port)];
    let dir = scratch("source-blocks-cut");
    let out = dir.join("out.jsonl");
    let pipe = dir.join("p.pipe");
    let mut text = String::new();
    for name in &names {
        text.push_str(&format!(
            "source {name} = postgres {{\n  dsn = env(\"DSN_{name}\")\n  interval = 1s\n  jitter = 0%\n  timeout = 1s\n  connect_timeout = 1s\n  reconnect_max = 2s\n  collect instance\n}}\npipeline i_{name} = {name}.instance -> out\n"
        ));
    }
    text.push_str(&format!("sink out = file {{ path = \"{}\" }}\n", out.display()));
    std::fs::write(&pipe, text).unwrap();
    let env: Vec<(String, String)> = names
        .iter()
        .zip(&proxies)
        .map(|(name, proxy)| (format!("DSN_{name}"), format!("postgres://proofs_mon@127.0.0.1:{}/db_{name}?sslmode=disable", proxy.port)))
        .collect();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let run = Run::start(&[pipe.to_str().unwrap(), "--no-watch"], &env_refs);
    let reader = run.wait_for("one block reading the server's view", Duration::from_secs(30), || instance_reader(&run));
    let other = names.iter().find(|n| **n != reader).unwrap().to_string();
    let cut = &proxies[names.iter().position(|n| *n == reader).unwrap()];

    cut.set(common::proxy::Mode::Blackhole);
    cut.reset();
    let started = Instant::now();
    run.wait_for("the covered block to read", Duration::from_secs(20), || {
        (instance_reader(&run).as_deref() == Some(other.as_str())).then_some(())
    });
    let took = started.elapsed();
    // once per round from the one reader: over 5 s at 1 s, not twice that
    let before = points(&out, "postgresql.connection.max").len();
    std::thread::sleep(Duration::from_secs(5));
    let read = points(&out, "postgresql.connection.max").len() - before;
    assert!((3..=7).contains(&read), "{read} reads of a server-wide view in 5 s at 1 s after the takeover");

    // the network comes back: the first block reconnects and is covered
    cut.set(common::proxy::Mode::Forward);
    run.wait_for("the cut block back and covered", Duration::from_secs(30), || {
        let status = run.status();
        status["targets"]
            .as_array()?
            .iter()
            .find(|t| t["source"] == reader.as_str())
            .and_then(|t| (t["state"] == "up" && t["collectors"]["instance"]["read_by"] == other.as_str()).then_some(()))
    });
    let before = points(&out, "postgresql.connection.max").len();
    std::thread::sleep(Duration::from_secs(5));
    let read = points(&out, "postgresql.connection.max").len() - before;
    assert!((3..=7).contains(&read), "{read} reads in 5 s at 1 s with both blocks up again");
    let log = run.stderr();
    assert!(log.contains("connection lost") || log.contains("cannot connect"), "{log}");
    // released when the connection went, not after the reader went stale (10 s)
    assert!(took < Duration::from_secs(8), "the view went unread for {took:?}");
    assert!(!log.contains("ERROR"), "{log}");
}
