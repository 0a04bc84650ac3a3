//! The checks of a running `run`: the supervisor hands each connected
//! target to the board ([`Checks`]) when it connects and every
//! `checks_every` after; the board keeps the latest report per target
//! for `/status` (under `checks`) and logs each problem once, when it
//! appears, and once more when it is gone — a misconfiguration found
//! later is explained the same way `dbintel doctor` explains it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbintel_core::BoxFuture;
use dbintel_sources::checks::Checks;
use dbintel_sources::supervisor::TargetPlan;
use dbintel_sources::target::Target;

use crate::check::Status;
use crate::examine::{self, Options};
use crate::report::TargetReport;

#[derive(Debug, Default)]
pub struct ChecksBoard {
    options: Mutex<Options>,
    /// The latest report per (source, target).
    reports: Mutex<BTreeMap<(String, String), TargetReport>>,
    /// Per server and check, the targets that have the problem now: it is
    /// logged when the first has it and when the last no longer does, so
    /// a hundred targets of one server make one line, not a hundred.
    open: Mutex<BTreeMap<OpenProblem, BTreeSet<(String, String)>>>,
}

/// A problem of a server: its key, the check and how it came out.
type OpenProblem = (String, &'static str, Status);

impl ChecksBoard {
    pub fn new(options: Options) -> Arc<ChecksBoard> {
        Arc::new(ChecksBoard { options: Mutex::new(options), reports: Mutex::default(), open: Mutex::default() })
    }

    /// What the next checks are told (a reload may change which sources
    /// have a log source).
    pub fn set_options(&self, options: Options) {
        *self.options.lock().unwrap_or_else(|p| p.into_inner()) = options;
    }

    /// The latest report of every target, by source and target.
    pub fn snapshot(&self) -> Vec<TargetReport> {
        self.reports.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Drops the reports of targets no longer in the plan.
    pub fn retain(&self, keep: impl Fn(&str, &str) -> bool) {
        self.reports.lock().unwrap_or_else(|p| p.into_inner()).retain(|(s, t), _| keep(s, t));
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for targets in open.values_mut() {
            targets.retain(|(s, t)| keep(s, t));
        }
        open.retain(|_, targets| !targets.is_empty());
    }

    /// Keeps `report`, logging what changed since the last one.
    pub fn record(&self, report: TargetReport) {
        let key = (report.source.clone(), report.target.clone());
        let mut reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        let problems = |r: &TargetReport| -> Vec<(&'static str, Status, String)> {
            r.findings
                .iter()
                .filter(|f| matches!(f.status, Status::Warn | Status::Fail))
                .map(|f| (f.check.id, f.status, f.observed.clone()))
                .collect()
        };
        let before = reports.get(&key).map(problems).unwrap_or_default();
        let now = problems(&report);
        let target = report.name();
        let server = report.server.clone().unwrap_or_else(|| target.clone());
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for (id, status, observed) in &now {
            if before.iter().any(|(i, s, _)| i == id && s == status) {
                continue;
            }
            let holders = open.entry((server.clone(), id, *status)).or_default();
            let first = holders.is_empty();
            holders.insert(key.clone());
            if !first {
                continue;
            }
            let fix = report.findings.iter().find(|f| f.check.id == *id).and_then(|f| f.fix.as_ref()).map(|fix| {
                fix.sql.clone().or_else(|| fix.config.as_ref().map(|c| c.lines.clone())).or_else(|| fix.note.clone()).unwrap_or_default()
            });
            tracing::warn!(source = %target, %server, check = id, status = status.as_str(), %observed, fix = fix.unwrap_or_default(), "setup check: see /status (checks) or dbintel doctor");
        }
        for (id, status, _) in &before {
            if now.iter().any(|(i, s, _)| i == id && s == status) {
                continue;
            }
            let entry = (server.clone(), *id, *status);
            if let Some(holders) = open.get_mut(&entry) {
                holders.remove(&key);
                if holders.is_empty() {
                    open.remove(&entry);
                    tracing::info!(source = %target, %server, check = id, "setup check passes again");
                }
            }
        }
        reports.insert(key, report);
    }
}

impl Checks for ChecksBoard {
    fn every(&self, plan: &TargetPlan) -> Option<Duration> {
        examine::every(plan)
    }

    fn check<'a>(&'a self, plan: &'a TargetPlan, target: &'a Target) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let options = self.options.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let report = examine::check_connected(plan, target, &options).await;
            self.record(report);
        })
    }
}
