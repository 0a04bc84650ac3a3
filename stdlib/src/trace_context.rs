//! W3C Trace Context: a `traceparent` an application left where the
//! collector can read it, so a query sample carries the trace and span id
//! of the request that ran the query.
//!
//! Applications put it in PostgreSQL's `application_name`
//! (`SET application_name = '00-4bf9…-00f0…-01'`) or in a MySQL user
//! variable (`SET @traceparent = '00-…'`, read from
//! `performance_schema.user_variables_by_thread`), or in a leading SQL
//! comment (`traceparent='00-…'`, see [`crate::sql::comment_tags`]).
//!
//! The rules are the W3C's (`version-traceid-parentid-flags`, lower-case hex
//! only; version `ff` invalid; all-zero trace or span id invalid; version
//! `00` exactly four fields; a higher version may carry more fields after a
//! `-`), read the way OpenTelemetry Go's propagator reads them, which is
//! what New Relic's collector calls: so both give a sample the same ids.
//! One place where that propagator is stricter than the W3C text: version
//! `00` with flags above `02` (a bit neither Level 1 nor Level 2 defines)
//! is refused, and so it is here; the other way round, that propagator
//! accepts a bare `-` after version `00`'s flags, which the W3C (and this)
//! does not.

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The OTLP `trace_id` (never all zeros).
    pub trace_id: [u8; 16],
    /// The OTLP `span_id` (never all zeros): the caller's span.
    pub span_id: [u8; 8],
    /// The `sampled` flag (bit 0 of trace-flags).
    pub sampled: bool,
}

impl TraceContext {
    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lower-case hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

/// The trace context in `value`, or `None` when it is not a valid
/// `traceparent`. Surrounding ASCII whitespace is ignored (an
/// `application_name` or a user variable is taken whole); anything else
/// around it makes it invalid.
///
/// ```
/// use dbintel_stdlib::trace_context::parse;
/// let tc = parse(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ").expect("valid");
/// assert_eq!(tc.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(tc.span_id_hex(), "00f067aa0ba902b7");
/// assert!(tc.sampled);
/// // a future version may add fields; version 00 may not
/// assert!(parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next").is_some());
/// assert!(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next").is_none());
/// assert!(parse("psql").is_none());
/// ```
pub fn parse(value: &str) -> Option<TraceContext> {
    let value = value.trim_matches([' ', '\t', '\r', '\n']).as_bytes();
    // each part ends at the next `-` (or the end), as Go's strings.Cut
    let mut parts = value.splitn(5, |&b| b == b'-');
    let [version] = decode::<1>(parts.next()?)?;
    if version == 0xff {
        return None;
    }
    let trace_id = decode::<16>(parts.next()?)?;
    let span_id = decode::<8>(parts.next()?)?;
    let [flags] = decode::<1>(parts.next()?)?;
    if version == 0 && (parts.next().is_some() || flags > 0x02) {
        return None;
    }
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(TraceContext { trace_id, span_id, sampled: flags & 0x01 == 1 })
}

/// Exactly `2 * N` lower-case hex digits.
fn decode<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn tp(version: &str, trace: &str, span: &str, flags: &str) -> String {
        format!("{version}-{trace}-{span}-{flags}")
    }

    #[test]
    fn a_valid_traceparent_gives_its_ids_and_sampled_flag() {
        let tc = parse(&tp("00", TRACE, SPAN, "01")).expect("valid");
        assert_eq!(tc.trace_id, [0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36]);
        assert_eq!(tc.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert!(tc.sampled);
        assert!(!parse(&tp("00", TRACE, SPAN, "00")).expect("valid").sampled);
        // the random-trace-id flag of Level 2 is allowed
        assert!(!parse(&tp("00", TRACE, SPAN, "02")).expect("valid").sampled);
    }

    #[test]
    fn surrounding_whitespace_is_ignored_as_application_name_may_carry_it() {
        assert!(parse(&format!("\t {} \r\n", tp("00", TRACE, SPAN, "01"))).is_some());
        assert!(parse(&format!("x{}", tp("00", TRACE, SPAN, "01"))).is_none());
        assert!(parse(&format!("{};", tp("00", TRACE, SPAN, "01"))).is_none());
    }

    #[test]
    fn version_ff_and_all_zero_ids_are_invalid() {
        assert!(parse(&tp("ff", TRACE, SPAN, "01")).is_none());
        assert!(parse(&tp("00", &"0".repeat(32), SPAN, "01")).is_none());
        assert!(parse(&tp("00", TRACE, &"0".repeat(16), "01")).is_none());
        assert!(parse(&tp("fe", TRACE, SPAN, "01")).is_some());
    }

    #[test]
    fn only_lower_case_hex_of_the_exact_length() {
        assert!(parse(&tp("00", &TRACE.to_uppercase(), SPAN, "01")).is_none());
        assert!(parse(&tp("00", TRACE, &SPAN.to_uppercase(), "01")).is_none());
        assert!(parse(&tp("0A", TRACE, SPAN, "01")).is_none());
        assert!(parse(&tp("00", &TRACE[1..], SPAN, "01")).is_none());
        assert!(parse(&tp("00", &format!("{TRACE}0"), SPAN, "01")).is_none());
        assert!(parse(&tp("00", TRACE, SPAN, "1")).is_none());
        assert!(parse(&tp("00", TRACE, SPAN, "0g")).is_none());
        assert!(parse(&tp("00", &TRACE.replace('4', "+"), SPAN, "01")).is_none());
        assert!(parse("").is_none());
        assert!(parse("00").is_none());
        assert!(parse(&format!("00-{TRACE}-{SPAN}")).is_none());
        assert!(parse(&format!("00-{TRACE}-{SPAN}-")).is_none());
        // non-ASCII where a digit should be
        assert!(parse(&tp("00", &TRACE.replacen('4', "é", 1), SPAN, "01")).is_none());
    }

    #[test]
    fn version_00_has_exactly_four_fields_and_known_flags() {
        assert!(parse(&format!("{}-", tp("00", TRACE, SPAN, "01"))).is_none());
        assert!(parse(&format!("{}-x", tp("00", TRACE, SPAN, "01"))).is_none());
        assert!(parse(&tp("00", TRACE, SPAN, "03")).is_none());
        assert!(parse(&tp("00", TRACE, SPAN, "ff")).is_none());
    }

    #[test]
    fn a_future_version_may_carry_more_fields_and_flags() {
        assert!(parse(&tp("01", TRACE, SPAN, "ff")).is_some_and(|tc| tc.sampled));
        assert!(parse(&format!("{}-", tp("cc", TRACE, SPAN, "00"))).is_some());
        assert!(parse(&format!("{}-anything-at-all", tp("cc", TRACE, SPAN, "00"))).is_some());
        // but its first four fields follow version 00's rules
        assert!(parse(&format!("{}x", tp("cc", TRACE, SPAN, "00"))).is_none());
        assert!(parse(&tp("cc", &TRACE[..31], SPAN, "00")).is_none());
    }
}
