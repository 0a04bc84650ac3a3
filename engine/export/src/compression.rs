//! Compression negotiated with the receiver, the way gRPC does it.
//!
//! We start with the configured compression and send only what the
//! receiver says it takes: gRPC servers list their encodings in
//! `grpc-accept-encoding` on every response (a 415 may carry
//! `Accept-Encoding`, RFC 7694, for HTTP). A refusal that is about the
//! encoding — gRPC UNIMPLEMENTED or INTERNAL naming it, HTTP 415, or an
//! HTTP 400 before any request with that encoding was accepted — steps
//! down (zstd → gzip → none) and the request is sent again at once; it is
//! never a reason to drop data. Each step is logged once and counted.

use std::sync::Mutex;

use super::config::Compression;

const ALL: [Compression; 3] = [Compression::Zstd, Compression::Gzip, Compression::None];

pub fn name(c: Compression) -> &'static str {
    match c {
        Compression::None => "identity",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

fn index(c: Compression) -> usize {
    match c {
        Compression::Zstd => 0,
        Compression::Gzip => 1,
        Compression::None => 2,
    }
}

#[derive(Debug, Default)]
struct State {
    /// Refused by the receiver (never tried again by this exporter).
    refused: [bool; 3],
    /// What the receiver last said it accepts, if it said.
    advertised: Option<[bool; 3]>,
    /// Accepted at least once: a later 400 is about the data, not this.
    confirmed: [bool; 3],
}

/// One exporter's view of what its receiver decodes.
#[derive(Debug)]
pub struct Negotiated {
    configured: Compression,
    state: Mutex<State>,
}

/// A refusal as the transport saw it, to decide whether it is about the
/// encoding.
#[derive(Debug, Clone, Copy)]
pub enum Refusal<'a> {
    Grpc { code: tonic::Code, message: &'a str },
    Http { status: u16 },
}

impl Negotiated {
    pub fn new(configured: Compression) -> Negotiated {
        Negotiated { configured, state: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The compression to send with now: the configured one or the best
    /// below it that the receiver has not refused and (if it said)
    /// advertises. `identity` is always allowed.
    pub fn current(&self) -> Compression {
        let state = self.lock();
        ALL.into_iter()
            .skip(index(self.configured))
            .find(|&c| c == Compression::None || (!state.refused[index(c)] && state.advertised.is_none_or(|a| a[index(c)])))
            .unwrap_or(Compression::None)
    }

    /// Reads a `grpc-accept-encoding` / `Accept-Encoding` value
    /// (`identity, deflate, gzip`). Logs when it moves us off what we
    /// were sending.
    pub fn advertised(&self, header: &str) {
        let mut accepts = [false, false, true];
        for token in header.split(',') {
            let token = token.split(';').next().unwrap_or_default().trim();
            if let Some(c) = ALL.into_iter().find(|c| name(*c).eq_ignore_ascii_case(token)) {
                accepts[index(c)] = true;
            }
        }
        let before = self.current();
        self.lock().advertised = Some(accepts);
        let now = self.current();
        if now != before {
            tracing::warn!(from = name(before), to = name(now), advertised = %header, "the receiver does not list our compression; sending what it accepts");
        }
    }

    /// A request sent with `c` was accepted.
    pub fn accepted(&self, c: Compression) {
        self.lock().confirmed[index(c)] = true;
    }

    /// Whether a refusal of a request sent with `c` is about its encoding.
    pub fn is_about_encoding(&self, c: Compression, refusal: Refusal<'_>) -> bool {
        if c == Compression::None {
            return false;
        }
        match refusal {
            Refusal::Grpc { code, message } => {
                let m = message.to_ascii_lowercase();
                let names_it = m.contains(name(c)) || m.contains("grpc-encoding") || m.contains("compress") || m.contains("encoding");
                matches!(code, tonic::Code::Unimplemented | tonic::Code::Internal) && names_it
            }
            Refusal::Http { status: 415 } => true,
            Refusal::Http { status: 400 } => !self.lock().confirmed[index(c)],
            Refusal::Http { .. } => false,
        }
    }

    /// The receiver refused `c`: step down. The step to the compression
    /// now in use is logged (once: `c` is never tried again). Returns the
    /// new compression.
    pub fn refused(&self, c: Compression, cause: &str) -> Compression {
        let first = !std::mem::replace(&mut self.lock().refused[index(c)], true);
        let now = self.current();
        if first {
            tracing::warn!(from = name(c), to = name(now), %cause, "the receiver refused our compression; stepping down and sending again");
        }
        now
    }
}

pub fn compress(compression: Compression, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    match compression {
        Compression::None => Ok(payload.to_vec()),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(payload.len() / 4), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, payload)?;
            e.finish()
        }
        Compression::Zstd => zstd::bulk::compress(payload, 3),
    }
}

/// The most a stored request may decompress to (a request is at most a
/// few MB; more is damage, not data).
pub const MAX_RAW_BYTES: u64 = 64 << 20;

pub fn decompress(compression: Compression, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(payload.len() * 4);
    match compression {
        Compression::None => return Ok(payload.to_vec()),
        Compression::Gzip => flate2::read::GzDecoder::new(payload).take(MAX_RAW_BYTES + 1).read_to_end(&mut out)?,
        Compression::Zstd => zstd::stream::read::Decoder::new(payload)?.take(MAX_RAW_BYTES + 1).read_to_end(&mut out)?,
    };
    if out.len() as u64 > MAX_RAW_BYTES {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a request decompresses to more than 64 MiB"));
    }
    Ok(out)
}

/// The byte a compression is stored as (disk queue records).
pub fn code(c: Compression) -> u8 {
    match c {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Zstd => 2,
    }
}

pub fn from_code(b: u8) -> Option<Compression> {
    match b {
        0 => Some(Compression::None),
        1 => Some(Compression::Gzip),
        2 => Some(Compression::Zstd),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compression_reads_back_what_it_wrote() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        for c in ALL {
            let packed = compress(c, &data).unwrap();
            assert_eq!(decompress(c, &packed).unwrap(), data, "{c:?}");
            assert_eq!(from_code(code(c)), Some(c));
        }
        assert!(decompress(Compression::Zstd, b"not zstd").is_err());
    }

    #[test]
    fn steps_down_on_refusal_and_never_below_identity() {
        let n = Negotiated::new(Compression::Zstd);
        assert_eq!(n.current(), Compression::Zstd);
        let tonic_refusal =
            Refusal::Grpc { code: tonic::Code::Unimplemented, message: "Content is compressed with `zstd` which isn't supported" };
        assert!(n.is_about_encoding(Compression::Zstd, tonic_refusal));
        assert_eq!(n.refused(Compression::Zstd, "x"), Compression::Gzip);
        assert_eq!(n.refused(Compression::Gzip, "x"), Compression::None);
        assert!(!n.is_about_encoding(Compression::None, tonic_refusal), "identity cannot be refused for its encoding");
    }

    #[test]
    fn an_unimplemented_method_is_not_about_compression() {
        let n = Negotiated::new(Compression::Gzip);
        let refusal = Refusal::Grpc { code: tonic::Code::Unimplemented, message: "Method not found: LogsService/Export" };
        assert!(!n.is_about_encoding(Compression::Gzip, refusal));
        assert!(!n.is_about_encoding(Compression::Gzip, Refusal::Grpc { code: tonic::Code::InvalidArgument, message: "gzip" }));
    }

    #[test]
    fn the_advertised_list_is_followed() {
        let n = Negotiated::new(Compression::Zstd);
        n.advertised("identity, deflate, gzip");
        assert_eq!(n.current(), Compression::Gzip);
        n.advertised("identity");
        assert_eq!(n.current(), Compression::None);
        n.advertised("gzip,zstd");
        assert_eq!(n.current(), Compression::Zstd);
        let gzip_only = Negotiated::new(Compression::Gzip);
        gzip_only.advertised("zstd, gzip");
        assert_eq!(gzip_only.current(), Compression::Gzip, "never above the configured compression");
    }

    #[test]
    fn an_http_400_steps_down_only_before_the_encoding_was_accepted() {
        let n = Negotiated::new(Compression::Zstd);
        assert!(n.is_about_encoding(Compression::Zstd, Refusal::Http { status: 400 }));
        n.accepted(Compression::Zstd);
        assert!(!n.is_about_encoding(Compression::Zstd, Refusal::Http { status: 400 }), "a 400 after zstd worked is about the data");
        assert!(n.is_about_encoding(Compression::Zstd, Refusal::Http { status: 415 }));
        assert!(!n.is_about_encoding(Compression::Zstd, Refusal::Http { status: 404 }));
    }
}
