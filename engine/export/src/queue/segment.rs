//! The disk queue's record format, and the decoder that reads a segment
//! back whatever state a crash, a full disk or a flipped bit left it in.
//!
//! A record is
//!
//! ```text
//! magic "DBQ\x02" | payload length u32 | items u32 | signal u8 | encoding u8 | oldest u64
//!                | header crc u32 | payload crc u32 | payload
//! ```
//!
//! (integers little-endian; `encoding` is how the payload is compressed,
//! `oldest` the oldest data time inside, unix ns). The header checksum
//! covers everything before it, so a damaged length is caught before it is
//! followed; the magic lets [`scan`] find the next record after damage
//! instead of giving up on the rest of the segment. Records of the first
//! format (`DBQ\x01`: no encoding, no time; uncompressed) left by an
//! older dbintel are still read.

use super::super::compression;
use super::super::config::Compression;
use super::super::encode::Signal;

pub const MAGIC: [u8; 4] = *b"DBQ\x02";
pub const MAGIC_V1: [u8; 4] = *b"DBQ\x01";
/// Bytes before the payload.
pub const HEADER: usize = 30;
pub const HEADER_V1: usize = 21;
/// The largest payload a record may claim (a request is at most a few
/// MB; anything larger is a damaged length).
pub const MAX_PAYLOAD: u32 = 256 << 20;

/// A record's header, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub items: u32,
    pub signal: Signal,
    pub encoding: Compression,
    pub oldest: u64,
    /// The header's own length ([`HEADER`], or [`HEADER_V1`]).
    pub size: usize,
}

/// A good record found by [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub offset: u64,
    /// Including the header.
    pub len: u64,
    pub items: u32,
    pub signal: Signal,
}

/// Bytes that are not a good record: a damaged payload (its header, and so
/// its item count, still known) or bytes without a valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    pub offset: u64,
    pub len: u64,
    /// Known when only the payload is damaged.
    pub items: Option<u32>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<Found>,
    pub damage: Vec<Damage>,
    /// Where a record that was being written when the process stopped
    /// starts (it is incomplete; nothing after it).
    pub torn_at: Option<u64>,
}

impl Scan {
    /// Items known lost to damage (payloads whose header survived).
    pub fn lost_items(&self) -> u64 {
        self.damage.iter().filter_map(|d| d.items).map(u64::from).sum()
    }
    pub fn damaged_bytes(&self) -> u64 {
        self.damage.iter().map(|d| d.len).sum()
    }
}

fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&data[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The bytes of one record.
pub fn encode(signal: Signal, items: u32, encoding: Compression, oldest: u64, payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(HEADER + payload.len());
    record.extend_from_slice(&MAGIC);
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&items.to_le_bytes());
    record.push(signal.as_u8());
    record.push(compression::code(encoding));
    record.extend_from_slice(&oldest.to_le_bytes());
    let header_crc = crc(&[&record[..22]]);
    record.extend_from_slice(&header_crc.to_le_bytes());
    record.extend_from_slice(&crc(&[payload]).to_le_bytes());
    record.extend_from_slice(payload);
    record
}

/// The bytes of one record in the first format (what older dbintel
/// wrote; for tests of reading it back).
pub fn encode_v1(signal: Signal, items: u32, payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(HEADER_V1 + payload.len());
    record.extend_from_slice(&MAGIC_V1);
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&items.to_le_bytes());
    record.push(signal.as_u8());
    let header_crc = crc(&[&record[..13]]);
    record.extend_from_slice(&header_crc.to_le_bytes());
    record.extend_from_slice(&crc(&[payload]).to_le_bytes());
    record.extend_from_slice(payload);
    record
}

/// Encodes `payload` under `header` again, in the header's own format.
pub fn reencode(header: &Header, payload: &[u8]) -> Vec<u8> {
    if header.size == HEADER_V1 {
        encode_v1(header.signal, header.items, payload)
    } else {
        encode(header.signal, header.items, header.encoding, header.oldest, payload)
    }
}

/// Whether `bytes` may begin a record (of either format), as far as they go.
fn begins_like_a_record(bytes: &[u8]) -> bool {
    let n = bytes.len().min(3);
    bytes[..n] == MAGIC[..n] && bytes.get(3).is_none_or(|v| *v == MAGIC[3] || *v == MAGIC_V1[3])
}

/// Checks the header at the start of `bytes`.
pub fn header(bytes: &[u8]) -> Option<Header> {
    let (size, crc_at) = match bytes.get(..4)? {
        m if m == MAGIC => (HEADER, 22),
        m if m == MAGIC_V1 => (HEADER_V1, 13),
        _ => return None,
    };
    if bytes.len() < size || crc(&[&bytes[..crc_at]]) != u32_at(bytes, crc_at) {
        return None;
    }
    let len = u32_at(bytes, 4);
    let signal = Signal::from_u8(bytes[12])?;
    let (encoding, oldest) = if size == HEADER { (compression::from_code(bytes[13])?, u64_at(bytes, 14)) } else { (Compression::None, 0) };
    (len <= MAX_PAYLOAD).then_some(Header { len, items: u32_at(bytes, 8), signal, encoding, oldest, size })
}

/// Whether `payload` is the one the record starting `record` describes
/// (`record` holds at least the checked header).
pub fn payload_matches(record: &[u8], payload: &[u8]) -> bool {
    match header(record) {
        Some(h) => crc(&[payload]) == u32_at(record, h.size - 4),
        None => false,
    }
}

/// Every good record in a segment, the damage between them, and a torn
/// tail. Never panics, whatever the bytes.
pub fn scan(data: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut at = 0usize;
    while at < data.len() {
        let rest = &data[at..];
        let size = if rest.get(..4) == Some(&MAGIC_V1[..]) { HEADER_V1 } else { HEADER };
        if rest.len() < size {
            // a header cut short: torn if it begins as a record does
            if begins_like_a_record(rest) {
                out.torn_at = Some(at as u64);
            } else {
                out.damage.push(Damage { offset: at as u64, len: rest.len() as u64, items: None });
            }
            break;
        }
        match header(rest) {
            Some(h) => {
                let end = h.size + h.len as usize;
                if end > rest.len() {
                    // a checked header whose payload is cut short: the
                    // write the process was in when it stopped
                    out.torn_at = Some(at as u64);
                    break;
                }
                if payload_matches(rest, &rest[h.size..end]) {
                    out.records.push(Found { offset: at as u64, len: end as u64, items: h.items, signal: h.signal });
                } else {
                    out.damage.push(Damage { offset: at as u64, len: end as u64, items: Some(h.items) });
                }
                at += end;
            }
            None => {
                // no record here: look for the next header that checks
                let next = next_header(&rest[1..]).map(|i| i + 1);
                let len = next.unwrap_or(rest.len());
                out.damage.push(Damage { offset: at as u64, len: len as u64, items: None });
                at += len;
            }
        }
    }
    out
}

/// The offset of the next checked header in `data`.
fn next_header(data: &[u8]) -> Option<usize> {
    let finder = memchr::memmem::Finder::new(&MAGIC[..3]);
    let mut from = 0;
    while let Some(i) = finder.find(&data[from..]) {
        let at = from + i;
        if header(&data[at..]).is_some() {
            return Some(at);
        }
        // a header cut short at the very end still counts as a start
        if data.len() - at < HEADER && begins_like_a_record(&data[at..]) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[(u32, usize)]) -> (Vec<u8>, Vec<u64>) {
        let mut data = Vec::new();
        let mut offsets = Vec::new();
        for &(items, size) in records {
            offsets.push(data.len() as u64);
            data.extend(encode(Signal::Metrics, items, Compression::Zstd, 7, &vec![items as u8; size]));
        }
        (data, offsets)
    }

    #[test]
    fn good_records_read_back_exactly() {
        let (data, offsets) = segment(&[(1, 10), (2, 0), (3, 1000)]);
        let s = scan(&data);
        assert_eq!(s.records.iter().map(|r| (r.offset, r.items)).collect::<Vec<_>>(), [(offsets[0], 1), (offsets[1], 2), (offsets[2], 3)]);
        assert!(s.damage.is_empty() && s.torn_at.is_none());
    }

    #[test]
    fn records_of_the_first_format_still_read_back() {
        let mut data = encode_v1(Signal::Logs, 3, b"old");
        let at = data.len();
        data.extend(encode(Signal::Metrics, 4, Compression::Gzip, 9, b"new"));
        let s = scan(&data);
        assert_eq!(s.records.iter().map(|r| (r.offset, r.items)).collect::<Vec<_>>(), [(0, 3), (at as u64, 4)]);
        let h = header(&data).unwrap();
        assert_eq!((h.size, h.encoding, h.oldest), (HEADER_V1, Compression::None, 0));
        assert_eq!(reencode(&h, b"old"), data[..at]);
        let h = header(&data[at..]).unwrap();
        assert_eq!((h.size, h.encoding, h.oldest), (HEADER, Compression::Gzip, 9));
        assert_eq!(reencode(&h, b"new"), data[at..]);
    }

    #[test]
    fn a_flipped_payload_byte_loses_that_record_only() {
        let (mut data, offsets) = segment(&[(1, 100), (2, 100), (3, 100)]);
        data[offsets[1] as usize + HEADER + 50] ^= 0x40;
        let s = scan(&data);
        assert_eq!(s.records.iter().map(|r| r.items).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(s.damage, [Damage { offset: offsets[1], len: (HEADER + 100) as u64, items: Some(2) }]);
        assert_eq!(s.lost_items(), 2);
    }

    #[test]
    fn a_damaged_length_is_not_followed_and_the_next_record_is_found() {
        let (mut data, offsets) = segment(&[(1, 100), (2, 100), (3, 100)]);
        // a length that would swallow the third record
        data[offsets[1] as usize + 5] ^= 0x01;
        let s = scan(&data);
        assert_eq!(s.records.iter().map(|r| r.items).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(s.damage, [Damage { offset: offsets[1], len: offsets[2] - offsets[1], items: None }]);
    }

    #[test]
    fn a_cut_record_at_the_end_is_torn_not_damage() {
        let (data, offsets) = segment(&[(1, 100), (2, 100)]);
        for cut in [3, HEADER - 1, HEADER + 10] {
            let s = scan(&data[..offsets[1] as usize + cut]);
            assert_eq!(s.records.len(), 1, "cut at {cut}");
            assert_eq!(s.torn_at, Some(offsets[1]), "cut at {cut}");
            assert!(s.damage.is_empty(), "cut at {cut}");
        }
    }

    #[test]
    fn zeros_after_a_crash_are_damage_and_nothing_panics() {
        let (mut data, _) = segment(&[(1, 100)]);
        data.extend(vec![0u8; 4096]);
        let s = scan(&data);
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.damaged_bytes(), 4096);
        for n in 0..64 {
            let _ = scan(&vec![n as u8; n * 7]);
        }
    }
}
