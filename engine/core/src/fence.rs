//! Fencing: whether this replica may query a target right now. The cluster
//! crate implements [`Gate`] over Kubernetes Leases; sources only ask.

use std::sync::Arc;

/// Answers "is the lease still held?" at the moment of asking.
pub trait Gate: Send + Sync {
    fn holds(&self) -> bool;
}

/// A shared gate, checked before every scrape and again before emitting.
#[derive(Clone)]
pub struct Fence(Arc<dyn Gate>);

impl Fence {
    pub fn new(gate: Arc<dyn Gate>) -> Fence {
        Fence(gate)
    }
    pub fn holds(&self) -> bool {
        self.0.holds()
    }
}

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fence {{ holds: {} }}", self.holds())
    }
}
