//! Checks of a target's setup that `run` repeats on its own session:
//! when a target connects, and then every so often, the supervisor hands
//! the connected target to a [`Checks`] (dbintel doctor's, in the
//! daemon), which reports what it finds (`/status`, under `checks`). The
//! checks use the collectors' pool: no session of their own, the same
//! limits, the same lease.

use std::time::Duration;

use dbintel_core::BoxFuture;

use crate::supervisor::TargetPlan;
use crate::target::Target;

pub trait Checks: Send + Sync {
    /// How long after one check of `plan`'s target the next is due;
    /// `None`: once per connection.
    fn every(&self, plan: &TargetPlan) -> Option<Duration>;

    /// Checks the connected `target` and reports the result. Bounded by
    /// the session's limits, like every query.
    fn check<'a>(&'a self, plan: &'a TargetPlan, target: &'a Target) -> BoxFuture<'a, ()>;
}
