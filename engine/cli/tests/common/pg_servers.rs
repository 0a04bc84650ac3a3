//! The PostgreSQL servers tests/pg-versions.sh runs: "name port" lines.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// The majors the suite has besides the shared :5432 (15).
pub const MAJORS: [u32; 6] = [12, 13, 14, 16, 17, 18];
/// The streaming replica of :5432.
pub const REPLICA: &str = "15-replica";

/// `DBINTEL_PG_SERVERS` when set, else where tests/pg-versions.sh says
/// it writes them. Fails (never skips) when the file is missing.
pub fn servers() -> BTreeMap<String, u16> {
    let path = match std::env::var("DBINTEL_PG_SERVERS") {
        Ok(path) => path,
        Err(_) => {
            let script = super::root().join("tests/pg-versions.sh");
            let out = std::process::Command::new(&script).arg("servers-file").output().expect("run tests/pg-versions.sh servers-file");
            assert!(out.status.success(), "tests/pg-versions.sh servers-file: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
    };
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no servers file at {path} ({e}): run tests/pg-versions.sh start 12 13 14 16 17 18 replica"));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (name, port) = line.split_once(' ').unwrap_or_else(|| panic!("servers file line {line:?} is not \"name port\""));
            (name.to_string(), port.trim().parse().unwrap_or_else(|_| panic!("servers file line {line:?}: bad port")))
        })
        .collect()
}

/// The port of server `name` (`12` … `18`, `15-replica`; `15` is :5432).
pub fn port_of(servers: &BTreeMap<String, u16>, name: &str) -> u16 {
    if name == "15" {
        return 5432;
    }
    *servers.get(name).unwrap_or_else(|| {
        panic!("PostgreSQL {name} is not running (servers file: {servers:?}); run tests/pg-versions.sh start 12 13 14 16 17 18 replica")
    })
}
