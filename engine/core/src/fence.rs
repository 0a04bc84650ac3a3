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

/// Which fence guards a target: the cluster crate's answer for each
/// target key (`source` or `source/target`).
pub trait Fences: Send + Sync {
    /// The fence for `key`; `None` when nothing gates it (no cluster).
    fn fence(&self, key: &str) -> Option<Fence>;
}

/// A gate that never holds: a target the election does not know yet
/// waits, rather than running unfenced.
pub struct Never;

impl Gate for Never {
    fn holds(&self) -> bool {
        false
    }
}
