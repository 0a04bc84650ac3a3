//! `batch`: gathers records into fewer, larger batches (by count, bytes, or
//! time) so the sink sends fewer, fuller requests.

use std::time::{Duration, Instant};

use dbintel_dsl::plan::Settings;

use super::Operator;
use crate::counters::NodeCounters;
use crate::record::Batch;

pub struct Batcher {
    size: usize,
    timeout: Duration,
    max_bytes: usize,
    /// One batch per pipeline and distinct resource.
    pending: Vec<Batch>,
    count: usize,
    bytes: usize,
    oldest: Option<Instant>,
}

impl Batcher {
    pub fn new(settings: &Settings) -> Batcher {
        Batcher {
            size: settings.int("size").unwrap_or(8192).max(1) as usize,
            timeout: settings.duration("timeout").unwrap_or(Duration::from_millis(200)),
            max_bytes: settings.bytes("max_bytes").unwrap_or(1 << 20) as usize,
            pending: Vec::new(),
            count: 0,
            bytes: 0,
            oldest: None,
        }
    }

    fn flush(&mut self, out: &mut Vec<Batch>) {
        for mut batch in self.pending.drain(..) {
            while batch.records.len() > self.size {
                let rest = batch.records.split_off(self.size);
                let mut head = Batch::new(batch.resource.clone(), std::mem::replace(&mut batch.records, rest));
                head.route = batch.route;
                out.push(head);
            }
            out.push(batch);
        }
        self.count = 0;
        self.bytes = 0;
        self.oldest = None;
    }
}

impl Operator for Batcher {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>, counters: &NodeCounters) {
        let n = batch.len();
        NodeCounters::add(&counters.received, n);
        NodeCounters::add(&counters.emitted, n);
        self.count += n;
        self.bytes += batch.approx_bytes();
        self.oldest.get_or_insert_with(Instant::now);
        match self.pending.iter_mut().find(|p| p.route == batch.route && p.resource == batch.resource) {
            Some(group) => {
                group.records.append(&mut batch.records);
                group.charges.append(&mut batch.charges);
            }
            None => self.pending.push(batch),
        }
        if self.count >= self.size || self.bytes >= self.max_bytes {
            self.flush(out);
        }
    }

    fn tick_every(&self) -> Option<Duration> {
        Some((self.timeout / 2).max(Duration::from_millis(10)))
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Batch>) {
        if self.oldest.is_some_and(|t| now.duration_since(t) >= self.timeout) {
            self.flush(out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Batch>) {
        self.flush(out);
    }
}
