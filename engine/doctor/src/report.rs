//! What a doctor run found, for people (one line per check; the meaning
//! and the exact fix under each problem) and for machines (JSON, the same
//! shape `/status` shows under `checks`), and the exit status.

use std::time::SystemTime;

use serde_json::{json, Value};

use crate::check::{Finding, Fix, Status};

/// The server a target turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSummary {
    /// `PostgreSQL 15.4`, `MariaDB 10.11`.
    pub description: String,
    pub version_text: String,
    pub role: String,
}

/// Everything found on one target.
#[derive(Debug, Clone)]
pub struct TargetReport {
    pub source: String,
    pub target: String,
    /// The source's kind: `postgres`, `mysql`, `sql`.
    pub kind: String,
    /// `host:port` as configured (`None`: the DSN could not be read).
    pub server: Option<String>,
    pub database: Option<String>,
    /// Another target of the same server runs the server-wide collectors
    /// (and their checks).
    pub covered_by: Option<String>,
    /// `None`: not reached.
    pub summary: Option<ServerSummary>,
    pub findings: Vec<Finding>,
    pub checked_at: SystemTime,
}

/// How many findings of each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub ok: usize,
    pub skip: usize,
    pub warn: usize,
    pub fail: usize,
}

impl Counts {
    fn add(&mut self, status: Status) {
        match status {
            Status::Ok => self.ok += 1,
            Status::Skip => self.skip += 1,
            Status::Warn => self.warn += 1,
            Status::Fail => self.fail += 1,
        }
    }

    fn json(self) -> Value {
        json!({ "ok": self.ok, "warn": self.warn, "fail": self.fail, "skip": self.skip })
    }

    fn words(self) -> String {
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = vec![format!("{} ok", self.ok), plural(self.warn, "warning", "warnings"), plural(self.fail, "failure", "failures")];
        if self.skip > 0 {
            parts.push(format!("{} skipped", self.skip));
        }
        parts.join(", ")
    }
}

impl TargetReport {
    /// `source` or `source/target`, as `/status` and the logs name it.
    pub fn name(&self) -> String {
        dbintel_dsl::plan::target_key(&self.source, &self.target)
    }

    pub fn worst(&self) -> Status {
        self.findings.iter().map(|f| f.status).filter(|s| *s != Status::Skip).max().unwrap_or(Status::Ok)
    }

    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for f in &self.findings {
            counts.add(f.status);
        }
        counts
    }

    /// The target as JSON (without times: `/status` adds its own).
    pub fn json(&self) -> Value {
        json!({
            "source": self.source,
            "target": self.target,
            "kind": self.kind,
            "server": self.server,
            "database": self.database,
            "server_checks_on": self.covered_by,
            "reached": self.summary.is_some(),
            "version": self.summary.as_ref().map(|s| s.version_text.clone()),
            "flavour": self.summary.as_ref().map(|s| s.description.clone()),
            "role": self.summary.as_ref().map(|s| s.role.clone()),
            "status": self.worst().as_str(),
            "summary": self.counts().json(),
            "checks": self.findings.iter().map(finding_json).collect::<Vec<_>>(),
        })
    }
}

pub fn fix_json(fix: &Fix) -> Value {
    json!({
        "sql": fix.sql,
        "database": fix.database,
        "config": fix.config.as_ref().map(|c| json!({ "file": c.file, "lines": c.lines, "also": c.also })),
        "restart": fix.restart,
        "note": fix.note,
    })
}

pub fn finding_json(f: &Finding) -> Value {
    json!({
        "id": f.check.id,
        "family": f.check.family.as_str(),
        "status": f.status.as_str(),
        "what": f.check.what,
        "observed": f.observed,
        "means": f.check.means,
        "fix": f.fix.as_ref().map(fix_json),
    })
}

/// Every target's report, in plan order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub targets: Vec<TargetReport>,
}

/// `0` all ok, `3` warnings only, `4` at least one failure (`1` invalid
/// files and `2` usage errors are the command line's).
pub const EXIT_OK: u8 = 0;
pub const EXIT_WARNINGS: u8 = 3;
pub const EXIT_FAILURES: u8 = 4;

impl Report {
    pub fn worst(&self) -> Status {
        self.targets.iter().map(TargetReport::worst).max().unwrap_or(Status::Ok)
    }

    pub fn exit_code(&self) -> u8 {
        match self.worst() {
            Status::Fail => EXIT_FAILURES,
            Status::Warn => EXIT_WARNINGS,
            Status::Ok | Status::Skip => EXIT_OK,
        }
    }

    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for f in self.targets.iter().flat_map(|t| &t.findings) {
            counts.add(f.status);
        }
        counts
    }

    pub fn json(&self) -> Value {
        json!({
            "targets": self.targets.iter().map(TargetReport::json).collect::<Vec<_>>(),
            "status": self.worst().as_str(),
            "summary": self.counts().json(),
            "exit": self.exit_code(),
        })
    }

    /// For a person: per target a heading, one line per check, and under
    /// each problem what it means and how to fix it.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let width = self.targets.iter().flat_map(|t| &t.findings).map(|f| f.check.id.len()).max().unwrap_or(10);
        let mut server_settings = false;
        for t in &self.targets {
            out.push_str(&heading(t));
            if let Some(reader) = &t.covered_by {
                out.push_str(&format!("  (its server's server-wide collectors, and their checks, run on target {reader})\n"));
            }
            for f in &t.findings {
                let label = match f.status {
                    Status::Ok => "ok  ",
                    Status::Skip => "skip",
                    Status::Warn => "warn",
                    Status::Fail => "FAIL",
                };
                out.push_str(&format!("  {label}  {:<width$}  {}\n", f.check.id, f.observed));
                if matches!(f.status, Status::Warn | Status::Fail) {
                    out.push_str(&format!("        means: {}\n", f.check.means));
                    if let Some(fix) = &f.fix {
                        server_settings |= fix.config.is_some();
                        out.push_str(&render_fix(fix, &t.kind));
                    }
                }
            }
            out.push_str(&format!("  {}\n\n", t.counts().words()));
        }
        if server_settings {
            out.push_str("On a managed service (RDS, Cloud SQL, Azure…) set server parameters in its parameter group or flags instead of ALTER SYSTEM or the config file.\n");
        }
        let n = self.targets.len();
        out.push_str(&format!("{} {}: {}\n", n, if n == 1 { "target" } else { "targets" }, self.counts().words()));
        out
    }
}

fn heading(t: &TargetReport) -> String {
    let server = t.server.clone().unwrap_or_else(|| "?".into());
    let database = t.database.as_ref().map(|d| format!(", database {d}")).unwrap_or_default();
    match &t.summary {
        Some(s) => format!("{}: {} at {server}{database}, as {}\n", t.name(), s.description, s.role),
        None => format!("{}: {} at {server}{database}, not reached\n", t.name(), t.kind),
    }
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

fn render_fix(fix: &Fix, kind: &str) -> String {
    let mut out = String::new();
    let admin = if kind == "mysql" { "an administrator (root)" } else { "a superuser" };
    if let Some(sql) = &fix.sql {
        let place = fix.database.as_ref().map(|d| format!(", in database {d}")).unwrap_or_default();
        out.push_str(&format!("        fix, as {admin}{place}:\n"));
        out.push_str(&indent(sql, "          "));
    }
    if let Some(config) = &fix.config {
        let lead = match (fix.sql.is_some(), config.also) {
            (false, _) => format!("        fix, in {}:\n", config.file),
            (true, true) => format!("        and in {}, so it lasts past a restart:\n", config.file),
            (true, false) => format!("        or in {}:\n", config.file),
        };
        out.push_str(&lead);
        out.push_str(&indent(&config.lines, "          "));
    }
    if fix.restart {
        out.push_str("        then restart the server\n");
    }
    if let Some(note) = &fix.note {
        let lead = if fix.sql.is_none() && fix.config.is_none() { "fix" } else { "note" };
        out.push_str(&format!("        {lead}: {note}\n"));
    }
    out
}
