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

/// A batch a sink did not take. With the batch handed back (none of it
/// was taken) the runtime offers it again after a pause; without it, the
/// batch is gone and counted as dropped.
pub struct SinkFailure {
    pub error: SinkError,
    pub batch: Option<Batch>,
}

impl SinkFailure {
    /// Nothing of `batch` was taken: try it again.
    pub fn retry(error: SinkError, batch: Batch) -> SinkFailure {
        SinkFailure { error, batch: Some(batch) }
    }
}

impl From<SinkError> for SinkFailure {
    fn from(error: SinkError) -> SinkFailure {
        SinkFailure { error, batch: None }
    }
}

impl std::fmt::Debug for SinkFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkFailure").field("error", &self.error).field("retryable", &self.batch.is_some()).finish()
    }
}

/// A node that consumes batches. Called from the sink's own task.
pub trait Sink: Send {
    fn consume(&mut self, batch: Batch) -> BoxFuture<'_, Result<(), SinkFailure>>;
    /// Input ended: flush and close.
    fn close(&mut self) -> BoxFuture<'_, Result<(), SinkError>>;
}
