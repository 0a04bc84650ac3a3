//! Where a source's batches go: one route per pipeline that starts at the
//! source, picked by collector, plus an optional tap.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::budget::Budget;
use crate::record::Batch;

/// Where a source's batches go: one route per pipeline that starts at it,
/// picked by collector.
#[derive(Clone, Default)]
pub struct SourceOutput {
    pub routes: Vec<(usize, Option<String>, mpsc::Sender<Batch>)>,
    /// Per route: the collector it takes (`None`: all) and the nodes its
    /// batches pass after the source, by name.
    pub paths: Vec<(Option<String>, Vec<String>)>,
    pub tap: Option<mpsc::Sender<Batch>>,
    /// The memory budgets downstream: above their soft limit, sources
    /// hold back (skip a scrape and count it) instead of adding more.
    pub budgets: Vec<Arc<Budget>>,
}

impl SourceOutput {
    /// Where a collector's batches go, as text: two sources whose
    /// collectors have the same signature send their records through the
    /// same nodes (see the sources' `readers.rs`).
    pub fn route_signature(&self, collector: &str) -> String {
        let mut paths: Vec<String> = self
            .paths
            .iter()
            .filter(|(port, _)| port.as_deref().is_none_or(|p| p == collector))
            .map(|(_, nodes)| nodes.join(" -> "))
            .collect();
        paths.sort();
        paths.join(" | ")
    }

    /// The copies to send for a batch of `collector`: one per pipeline that
    /// takes it (the last one the batch itself), each marked with its
    /// pipeline, plus one for the tap.
    fn copies(&self, collector: &str, batch: Batch) -> Vec<(&mpsc::Sender<Batch>, Batch)> {
        let mut out = Vec::new();
        if let Some(tap) = &self.tap {
            out.push((tap, batch.clone()));
        }
        let targets: Vec<_> = self.routes.iter().filter(|(_, port, _)| port.as_deref().is_none_or(|p| p == collector)).collect();
        let last = targets.len().saturating_sub(1);
        let mut batch = Some(batch);
        for (i, (pipeline, _, sender)) in targets.into_iter().enumerate() {
            let item = if i == last { batch.take() } else { batch.clone() };
            if let Some(mut item) = item {
                item.route = *pipeline;
                out.push((sender, item));
            }
        }
        out
    }

    /// Sends from a blocking thread, waiting while downstream is full.
    /// Returns the records that found no receiver (the plan is ending):
    /// the caller counts them as dropped.
    pub fn send_blocking(&self, collector: &str, batch: Batch) -> usize {
        self.copies(collector, batch).into_iter().map(|(sender, item)| sender.blocking_send(item).map_or_else(|e| e.0.len(), |()| 0)).sum()
    }

    /// Sends from a task, waiting while downstream is full. Returns the
    /// records that found no receiver (the plan is ending): the caller
    /// counts them as dropped.
    pub async fn send(&self, collector: &str, batch: Batch) -> usize {
        let mut lost = 0;
        for (sender, item) in self.copies(collector, batch) {
            if let Err(e) = sender.send(item).await {
                lost += e.0.len();
            }
        }
        lost
    }

    /// Whether every route has room for another batch right now and no
    /// budget downstream is above its soft limit (live sources skip a
    /// scrape when not).
    pub fn has_room(&self) -> Result<(), Backpressure> {
        if let Some(budget) = self.budgets.iter().find(|b| b.under_pressure()) {
            return Err(Backpressure::Memory { used: budget.used(), soft: budget.soft });
        }
        if self.routes.iter().any(|(_, _, s)| s.capacity() == 0) {
            return Err(Backpressure::Full);
        }
        Ok(())
    }
}

/// A source's output that can be pointed elsewhere while the source runs:
/// a reload hands a kept source the new plan's routes, and what it sent
/// before still drains through the old plan.
#[derive(Clone, Default)]
pub struct SharedOutput(Arc<std::sync::RwLock<SourceOutput>>);

impl SharedOutput {
    pub fn new(output: SourceOutput) -> SharedOutput {
        SharedOutput(Arc::new(std::sync::RwLock::new(output)))
    }

    /// The routes now (cheap: senders are handles).
    pub fn current(&self) -> SourceOutput {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Points the source at new routes; the old ones are returned (drop
    /// them to let the old plan drain).
    pub fn replace(&self, output: SourceOutput) -> SourceOutput {
        std::mem::replace(&mut *self.0.write().unwrap_or_else(|p| p.into_inner()), output)
    }
}

/// Why a source holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// A channel downstream is full (a slow sink).
    Full,
    /// A memory budget downstream is above its soft limit.
    Memory { used: u64, soft: u64 },
}

impl std::fmt::Display for Backpressure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backpressure::Full => f.write_str("downstream is full"),
            Backpressure::Memory { used, soft } => write!(f, "memory in flight ({used} bytes) is above the soft limit ({soft} bytes)"),
        }
    }
}
