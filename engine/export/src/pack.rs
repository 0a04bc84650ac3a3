//! Packing: the parts every pipeline feeding a sink produces (one per
//! resource and scope) joined into requests of up to the size limit *as
//! sent*, i.e. compressed — so a scrape of a server with hundreds of
//! tables leaves in a handful of requests, not one per table.
//!
//! A request stays open until it is full or has waited `linger` (the
//! batch's time bound): data from one batch flush, and from pipelines
//! flushing at about the same time, shares a request. How much raw
//! protobuf fills a request is learned from the requests sealed so far
//! (raw bytes per byte sent, per signal); a request that still comes out
//! too large once compressed is split ([`fit`]), never sent to be
//! refused.

use std::time::{Duration, Instant};

use crate::compression::compress;
use crate::config::Compression;
use crate::encode::{Encoded, Part, Signal};
use crate::reshape;

/// Sealed requests aim this far below the limit: compressed sizes vary
/// from one request to the next.
const MARGIN: f64 = 0.85;
/// The most raw protobuf one request holds, whatever the ratio says (what
/// an open request costs in memory, per signal).
const MAX_RAW: usize = 4 << 20;

/// What [`fit`] made of one request.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Fit {
    /// Requests of at most the limit as sent, in order.
    pub requests: Vec<Encoded>,
    /// Single records shrunk to fit.
    pub shrunk: u64,
    pub json_removed: u64,
    /// Items that could not fit however shrunk (dropped).
    pub too_large: u64,
    /// Raw bytes and bytes as sent of what came out, for the ratio.
    pub raw_bytes: u64,
    pub sent_bytes: u64,
}

/// Compresses a request and, while it is over `limit` as sent, splits it
/// in halves (resources first, down to single points); a single record
/// still too large is shrunk ([`reshape::shrink`]) or dropped.
pub fn fit(signal: Signal, raw: Vec<u8>, items: u32, oldest: u64, compression: Compression, limit: usize) -> std::io::Result<Fit> {
    let mut out = Fit::default();
    // a stack, right half pushed first, so the order is kept
    let mut work = vec![(raw, items)];
    while let Some((raw, items)) = work.pop() {
        let sent = compress(compression, &raw)?;
        if sent.len() <= limit {
            out.raw_bytes += raw.len() as u64;
            out.sent_bytes += sent.len() as u64;
            out.requests.push(Encoded { signal, items, encoding: compression, oldest, payload: sent.into() });
            continue;
        }
        if let Some((a, b)) = reshape::split(signal, &raw) {
            work.push((b.raw, b.items));
            work.push((a.raw, a.items));
            continue;
        }
        let mut fits = |r: &[u8]| compress(compression, r).is_ok_and(|c| c.len() <= limit);
        match reshape::shrink(signal, &raw, &mut fits) {
            Some((small, how)) => {
                out.shrunk += 1;
                out.json_removed += u64::from(how.json_removed);
                work.push((small, items));
            }
            None => out.too_large += u64::from(items),
        }
    }
    Ok(out)
}

struct Open {
    raw: Vec<u8>,
    items: u32,
    oldest: u64,
    since: Instant,
}

/// The open requests of one sink, one per signal.
pub struct Packer {
    limit: usize,
    linger: Duration,
    open: [Option<Open>; 2],
    /// Raw bytes per byte as sent, per signal.
    ratio: [f64; 2],
}

fn slot(signal: Signal) -> usize {
    match signal {
        Signal::Metrics => 0,
        Signal::Logs => 1,
    }
}

impl Packer {
    pub fn new(limit: usize, linger: Duration) -> Packer {
        Packer { limit, linger, open: [None, None], ratio: [1.0, 1.0] }
    }

    /// Requests as sent are held to `limit` from now on (a receiver that
    /// refused a smaller request than the configured limit).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The raw bytes a request of `signal` is sealed at.
    fn target(&self, signal: Signal, compression: Compression) -> usize {
        let ratio = if compression == Compression::None { 1.0 } else { self.ratio[slot(signal)] };
        ((self.limit as f64 * ratio * MARGIN) as usize).clamp(1, MAX_RAW)
    }

    /// Adds a part; returns the requests it completed (to queue).
    pub fn add(&mut self, part: Part, compression: Compression, now: Instant) -> std::io::Result<Vec<Fit>> {
        let mut sealed = Vec::new();
        let target = self.target(part.signal, compression);
        let i = slot(part.signal);
        if self.open[i].as_ref().is_some_and(|o| o.raw.len() + part.raw.len() > target) {
            sealed.push(self.seal(part.signal, compression)?);
        }
        // sized once: a growing Vec would double past the target
        let open = self.open[i].get_or_insert_with(|| Open {
            raw: Vec::with_capacity(target.max(part.raw.len())),
            items: 0,
            oldest: 0,
            since: now,
        });
        open.raw.extend_from_slice(&part.raw);
        open.items = open.items.saturating_add(part.items);
        if part.oldest != 0 && (open.oldest == 0 || part.oldest < open.oldest) {
            open.oldest = part.oldest;
        }
        if open.raw.len() >= target {
            sealed.push(self.seal(part.signal, compression)?);
        }
        sealed.retain(|f| !f.requests.is_empty() || f.too_large > 0);
        Ok(sealed)
    }

    fn seal(&mut self, signal: Signal, compression: Compression) -> std::io::Result<Fit> {
        let Some(open) = self.open[slot(signal)].take() else { return Ok(Fit::default()) };
        let fit = fit(signal, open.raw, open.items, open.oldest, compression, self.limit)?;
        if fit.sent_bytes > 0 && compression != Compression::None {
            let seen = (fit.raw_bytes as f64 / fit.sent_bytes as f64).clamp(1.0, 20.0);
            let r = &mut self.ratio[slot(signal)];
            *r = if *r == 1.0 { seen } else { 0.5 * *r + 0.5 * seen };
        }
        Ok(fit)
    }

    /// Seals what has waited `linger` (or everything, with `all`). When
    /// one signal's request is due, the other's leaves with it: a scrape's
    /// events and its metric points stay next to each other in the queue.
    pub fn due(&mut self, now: Instant, compression: Compression, all: bool) -> std::io::Result<Vec<Fit>> {
        let waited = |o: &Open| now.saturating_duration_since(o.since) >= self.linger;
        let any = all || self.open.iter().flatten().any(waited);
        let mut sealed = Vec::new();
        if any {
            for signal in [Signal::Logs, Signal::Metrics] {
                sealed.push(self.seal(signal, compression)?);
            }
        }
        sealed.retain(|f| !f.requests.is_empty() || f.too_large > 0);
        Ok(sealed)
    }

    /// When the oldest open request falls due.
    pub fn next_due(&self) -> Option<Instant> {
        self.open.iter().flatten().map(|o| o.since + self.linger).min()
    }

    /// Items and raw bytes waiting in open requests.
    pub fn pending(&self) -> (u64, u64) {
        self.open.iter().flatten().fold((0, 0), |(i, b), o| (i + u64::from(o.items), b + o.raw.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{parts, scope};
    use dbintel_core::record::{MetricKind, MetricPoint, Number, Record};
    use dbintel_stdlib::{Map, Value};

    /// One table's worth of points under its own resource.
    fn table_part(i: usize) -> Part {
        let mut resource = Map::new();
        resource.insert("postgresql.table.name", Value::Str(format!("table_{i}")));
        resource.insert("postgresql.database.name", Value::Str(format!("db_{}", i % 100)));
        let records: Vec<Record> = (0..12)
            .map(|m| {
                Record::Metric(MetricPoint::new(
                    format!("postgresql.table.metric_{m}"),
                    "1",
                    MetricKind::Gauge,
                    Number::Int((i * m) as i64),
                    1,
                    Map::new(),
                ))
            })
            .collect();
        parts(&records, &resource, &scope("otlp", &Map::new()), 1_000_000).0.remove(0)
    }

    #[test]
    fn a_thousand_resources_leave_in_a_few_requests_each_under_the_limit_as_sent() {
        for compression in [Compression::Zstd, Compression::Gzip, Compression::None] {
            let mut packer = Packer::new(100_000, Duration::from_secs(60));
            let now = Instant::now();
            let mut sealed = Vec::new();
            for i in 0..1000 {
                sealed.extend(packer.add(table_part(i), compression, now).unwrap());
            }
            sealed.extend(packer.due(now, compression, true).unwrap());
            let requests: Vec<&Encoded> = sealed.iter().flat_map(|f| &f.requests).collect();
            let items: u32 = requests.iter().map(|r| r.items).sum();
            assert_eq!(items, 12_000, "{compression:?}: every point");
            assert!(requests.iter().all(|r| r.payload.len() <= 100_000), "{compression:?}: as sent, under the limit");
            let raw: usize = requests.iter().map(|r| r.raw().unwrap().len()).sum();
            let least = raw.div_ceil(100_000);
            // uncompressed, ~1 MB of parts needs at least 11 requests of 100 kB
            assert!(
                requests.len() <= least + 3 || (compression != Compression::None && requests.len() <= 6),
                "{compression:?}: {} requests for {raw} raw bytes",
                requests.len()
            );
            let resources: usize = requests
                .iter()
                .map(|r| {
                    use prost::Message;
                    opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::decode(r.raw().unwrap().as_slice())
                        .unwrap()
                        .resource_metrics
                        .len()
                })
                .sum();
            assert_eq!(resources, 1000, "{compression:?}: one ResourceMetrics per table, several per request");
        }
    }

    #[test]
    fn a_request_waits_at_most_the_linger() {
        let mut packer = Packer::new(1_000_000, Duration::from_millis(200));
        let t0 = Instant::now();
        assert!(packer.add(table_part(1), Compression::Zstd, t0).unwrap().is_empty());
        assert_eq!(packer.next_due(), Some(t0 + Duration::from_millis(200)));
        assert!(packer.due(t0 + Duration::from_millis(100), Compression::Zstd, false).unwrap().is_empty());
        let sealed = packer.due(t0 + Duration::from_millis(200), Compression::Zstd, false).unwrap();
        assert_eq!(sealed.iter().map(|f| f.requests.len()).sum::<usize>(), 1);
        assert_eq!(packer.pending(), (0, 0));
    }

    #[test]
    fn when_one_signal_is_due_the_other_leaves_with_it() {
        let mut packer = Packer::new(1_000_000, Duration::from_millis(200));
        let t0 = Instant::now();
        packer.add(table_part(1), Compression::Zstd, t0).unwrap();
        let log = Part { signal: Signal::Logs, items: 1, oldest: 1, raw: Vec::new() };
        packer.add(log, Compression::Zstd, t0 + Duration::from_millis(150)).unwrap();
        let sealed = packer.due(t0 + Duration::from_millis(200), Compression::Zstd, false).unwrap();
        let signals: Vec<Signal> = sealed.iter().flat_map(|f| &f.requests).map(|r| r.signal).collect();
        assert_eq!(signals, [Signal::Logs, Signal::Metrics], "a scrape's events and points stay together");
        assert_eq!(packer.next_due(), None);
    }

    #[test]
    fn fit_splits_what_is_too_large_once_compressed_and_keeps_the_order() {
        let mut raw = Vec::new();
        let mut items = 0;
        for i in 0..50 {
            let p = table_part(i);
            raw.extend_from_slice(&p.raw);
            items += p.items;
        }
        let whole = fit(Signal::Metrics, raw.clone(), items, 0, Compression::None, 2_000).unwrap();
        assert!(whole.requests.len() > 1);
        assert!(whole.requests.iter().all(|r| r.payload.len() <= 2_000));
        assert_eq!(whole.requests.iter().map(|r| r.items).sum::<u32>(), items);
        let joined: Vec<u8> = whole.requests.iter().flat_map(|r| r.payload.to_vec()).collect();
        assert_eq!(joined, raw, "the halves, in order, are the request");
    }
}
