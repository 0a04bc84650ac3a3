//! Where a source's batches go: one route per pipeline that starts at the
//! source, picked by collector, plus an optional tap.

use tokio::sync::mpsc;

use crate::record::Batch;

/// Where a source's batches go: one route per pipeline that starts at it,
/// picked by collector.
#[derive(Clone, Default)]
pub struct SourceOutput {
    pub routes: Vec<(usize, Option<String>, mpsc::Sender<Batch>)>,
    pub tap: Option<mpsc::Sender<Batch>>,
}

impl SourceOutput {
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
    pub fn send_blocking(&self, collector: &str, batch: Batch) {
        for (sender, item) in self.copies(collector, batch) {
            let _ = sender.blocking_send(item);
        }
    }

    /// Sends from a task, waiting while downstream is full.
    pub async fn send(&self, collector: &str, batch: Batch) {
        for (sender, item) in self.copies(collector, batch) {
            let _ = sender.send(item).await;
        }
    }

    /// Whether every route has room for another batch right now (live
    /// sources skip a scrape when it does not).
    pub fn has_room(&self) -> bool {
        self.routes.iter().all(|(_, _, s)| s.capacity() > 0)
    }
}
