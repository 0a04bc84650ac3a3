//! The trait every sink implements (the sinks themselves live in
//! `dbintel-export`).

use crate::record::Batch;
use crate::BoxFuture;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("export: {0}")]
    Export(String),
}

/// A node that consumes batches. Called from the sink's own task.
pub trait Sink: Send {
    fn consume(&mut self, batch: Batch) -> BoxFuture<'_, Result<(), SinkError>>;
    /// Input ended: flush and close.
    fn close(&mut self) -> BoxFuture<'_, Result<(), SinkError>>;
}
