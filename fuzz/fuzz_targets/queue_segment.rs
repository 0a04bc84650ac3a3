//! The disk queue's segment decoder over arbitrary bytes: whatever a crash,
//! a full disk or a flipped bit leaves in a segment. Beyond "no panic, no
//! overflow, no hang", the scan must account for every byte exactly once
//! (good record, damage, or a torn tail at the end), and every record it
//! calls good must check and encode back to the same bytes.
#![no_main]

use dbintel_export::queue::segment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scan = segment::scan(data);
    let mut spans: Vec<(u64, u64)> = scan.records.iter().map(|r| (r.offset, r.len)).chain(scan.damage.iter().map(|d| (d.offset, d.len))).collect();
    spans.sort_unstable();
    let mut at = 0u64;
    for (offset, len) in spans {
        assert_eq!(offset, at, "a gap or an overlap at {offset}");
        assert!(len > 0, "an empty span at {offset}");
        at = offset + len;
    }
    match scan.torn_at {
        Some(torn) => assert_eq!(torn, at, "the torn tail must start where the last span ends"),
        None => assert_eq!(at, data.len() as u64, "bytes left unaccounted for"),
    }
    assert!(at <= data.len() as u64);
    for r in &scan.records {
        let bytes = &data[r.offset as usize..(r.offset + r.len) as usize];
        let header = segment::header(bytes).expect("a good record has a good header");
        assert_eq!(header.items, r.items);
        assert!(segment::payload_matches(bytes, &bytes[header.size..]));
        assert_eq!(segment::reencode(&header, &bytes[header.size..]), bytes, "a good record encodes back to itself");
    }
});
