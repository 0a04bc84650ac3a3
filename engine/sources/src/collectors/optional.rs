//! Parts of a scrape that may fail on their own — a view the role may not
//! read, a statement a server refuses — without failing the rest.
//!
//! A failed part is a soft error (counted, logged once per cause by the
//! supervisor); one only a person can fix (a privilege, a missing view) is
//! not tried again for `config_retry`, as the supervisor does for a whole
//! collector, so a missing grant costs one failing query per retry period,
//! not one per scrape.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::{ErrorClass, SourceError};

pub struct OptionalParts {
    retry: Duration,
    resting: HashMap<String, Instant>,
    errors: Vec<SourceError>,
}

impl OptionalParts {
    pub fn new(retry: Duration) -> OptionalParts {
        OptionalParts { retry, resting: HashMap::new(), errors: Vec::new() }
    }

    /// Whether `part` should run now.
    pub fn due(&self, part: &str) -> bool {
        self.resting.get(part).is_none_or(|until| Instant::now() >= *until)
    }

    /// The outcome of `part`: its value, or `None` and a soft error. A
    /// lost connection or an open breaker is the whole scrape's, not the
    /// part's: it is returned.
    pub fn keep<T>(&mut self, part: &str, result: Result<T, SourceError>) -> Result<Option<T>, SourceError> {
        match result {
            Ok(value) => {
                self.resting.remove(part);
                Ok(Some(value))
            }
            Err(e) if e.class() == ErrorClass::Connection || matches!(e, SourceError::BreakerOpen { .. }) => Err(e),
            Err(e) => {
                if e.class() == ErrorClass::Configuration {
                    self.resting.insert(part.to_string(), Instant::now() + self.retry);
                }
                self.errors.push(e);
                Ok(None)
            }
        }
    }

    /// A soft error that is not a part's failure (a cap reached).
    pub fn push(&mut self, e: SourceError) {
        self.errors.push(e);
    }

    pub fn take_errors(&mut self) -> Vec<SourceError> {
        std::mem::take(&mut self.errors)
    }
}
