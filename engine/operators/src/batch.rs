//! `batch`: gathers records into fewer, larger batches (by count, bytes, or
//! time) so the sink sends fewer, fuller requests.

use std::time::{Duration, Instant};

use dbintel_dsl::plan::Settings;
use dbintel_dsl::schema::BatchSettings;

use super::Operator;
use dbintel_core::counters::NodeCounters;
use dbintel_core::record::Batch;
use dbintel_core::BoxFuture;

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
        let s = BatchSettings::from_settings(settings);
        Batcher {
            size: s.size.max(1) as usize,
            timeout: s.timeout,
            max_bytes: s.max_bytes as usize,
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
    fn process<'a>(&'a mut self, mut batch: Batch, out: &'a mut Vec<Batch>, counters: &'a NodeCounters) -> BoxFuture<'a, ()> {
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
        Box::pin(std::future::ready(()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use dbintel_core::record::{LogRecord, Record, Resource};
    use dbintel_dsl::plan::Value as SettingValue;

    fn batcher(size: i64, timeout_ms: u64, max_bytes: u64) -> Batcher {
        let mut settings = Settings::default();
        settings.0.insert("size".into(), SettingValue::Int(size));
        settings.0.insert("timeout".into(), SettingValue::Duration(Duration::from_millis(timeout_ms)));
        settings.0.insert("max_bytes".into(), SettingValue::Bytes(max_bytes));
        Batcher::new(&settings)
    }

    fn batch(n: usize, route: usize) -> Batch {
        let mut b = Batch::new(Resource::default(), (0..n).map(|_| Record::Log(LogRecord::default())).collect());
        b.route = route;
        b
    }

    #[tokio::test]
    async fn flushes_at_size_in_chunks_of_size() {
        let mut b = batcher(4, 60_000, 1 << 30);
        let counters = NodeCounters::default();
        let mut out = Vec::new();
        b.process(batch(3, 0), &mut out, &counters).await;
        assert!(out.is_empty());
        b.process(batch(6, 0), &mut out, &counters).await;
        let sizes: Vec<usize> = out.iter().map(Batch::len).collect();
        assert_eq!(sizes, [4, 4, 1]);
    }

    #[tokio::test]
    async fn flushes_on_timeout_and_at_the_end() {
        let mut b = batcher(1000, 50, 1 << 30);
        let counters = NodeCounters::default();
        let mut out = Vec::new();
        b.process(batch(2, 0), &mut out, &counters).await;
        b.tick(Instant::now(), &mut out);
        assert!(out.is_empty(), "not yet");
        b.tick(Instant::now() + Duration::from_millis(60), &mut out);
        assert_eq!(out.len(), 1);
        b.process(batch(1, 0), &mut out, &counters).await;
        b.finish(&mut out);
        assert_eq!(out.iter().map(Batch::len).sum::<usize>(), 3, "nothing held back at the end");
    }

    #[tokio::test]
    async fn keeps_pipelines_apart_and_respects_max_bytes() {
        let mut b = batcher(1000, 60_000, 1 << 30);
        let counters = NodeCounters::default();
        let mut out = Vec::new();
        b.process(batch(2, 0), &mut out, &counters).await;
        b.process(batch(2, 1), &mut out, &counters).await;
        b.finish(&mut out);
        let routes: Vec<(usize, usize)> = out.iter().map(|b| (b.route, b.len())).collect();
        assert_eq!(routes, [(0, 2), (1, 2)]);
        let mut small = batcher(1000, 60_000, 100);
        out.clear();
        small.process(batch(2, 0), &mut out, &counters).await;
        assert_eq!(out.len(), 1, "over max_bytes flushes at once");
    }
}
