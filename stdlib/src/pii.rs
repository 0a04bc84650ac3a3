//! PII detectors: defence in depth after NormalizeSQL, for whatever a
//! literal-free text can still carry (comments that slipped through,
//! identifiers, log bodies).

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::{Captures, Regex};

struct Detector {
    pattern: &'static str,
    /// Compiled on first use: the Unicode forms are large automata that
    /// most inputs (ASCII only) never need.
    regex: OnceLock<Regex>,
    /// Bytes of which every match has one: text without them is skipped.
    required: Option<Vec<u8>>,
    replacement: &'static str,
    /// Extra check on a match (Luhn for cards); `None` accepts every match.
    validate: Option<fn(&str) -> bool>,
    /// Only text with a non-ASCII character can match (the Unicode forms
    /// of a detector whose ASCII form runs on everything).
    non_ascii: bool,
}

fn detectors() -> &'static [Detector] {
    static DETECTORS: OnceLock<Vec<Detector>> = OnceLock::new();
    DETECTORS.get_or_init(|| {
        let d = |pattern: &'static str, replacement: &'static str, validate: Option<fn(&str) -> bool>| Detector {
            pattern,
            regex: OnceLock::new(),
            required: regex_syntax::Parser::new().parse(pattern).ok().and_then(|hir| crate::pattern::required_bytes(&hir)),
            replacement,
            validate,
            non_ascii: false,
        };
        vec![
            // tokens first: they contain dots and digits the others would eat
            d(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", "[JWT]", None),
            d(
                r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bxox[abprs]-[A-Za-z0-9-]{10,}\b|\bAIza[0-9A-Za-z_-]{35}\b|\bNRAK-[A-Z0-9]{27}\b",
                "[APIKEY]",
                None,
            ),
            d(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b", "[EMAIL]", None),
            // internationalised addresses (RFC 6531: `josé@exämple.com`)
            Detector { non_ascii: true, ..d(r"(?i)\b[\p{L}\p{N}._%+-]+@[\p{L}\p{N}.-]+\.\p{L}{2,}\b", "[EMAIL]", None) },
            // a compressed form has a group after `::`, or two before it: a
            // lone `1::` is SQL's cast (`$1::text`, `id::int`), not an address
            d(
                r"(?i)\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|(?i)\b(?:[0-9a-f]{1,4}:){1,7}:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6}\b|(?i)\b(?:[0-9a-f]{1,4}:){2,7}:\B",
                "[IP]",
                Some(looks_like_ipv6),
            ),
            d(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b", "[IP]", None),
            d(r"\b(?:\d[ -]?){12,18}\d\b", "[CARD]", Some(card_like)),
            d(r"\b\d{3}-\d{2}-\d{4}\b", "[SSN]", Some(plausible_ssn)),
            d(r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\)|\b\d{3})[ .-]?\d{3}[ .-]?\d{4}\b", "[PHONE]", None),
            d(r"\+\d{1,3}(?:[ .-]?\d{2,4}){3,5}\b", "[PHONE]", None),
            d(r"\b[A-Za-z0-9_+/=-]{24,}\b", "[TOKEN]", Some(is_high_entropy)),
        ]
    })
}

/// Masks emails, US SSNs, Luhn-valid card numbers, phone numbers (US and
/// international), IPv4/IPv6 addresses, JWTs, well-known API keys and other
/// high-entropy tokens.
///
/// ```
/// use dbintel_stdlib::pii::redact;
/// assert_eq!(redact("mail bob@example.com from 10.0.0.12"), "mail [EMAIL] from [IP]");
/// assert_eq!(redact("card 4111 1111 1111 1111, not 4111 1111 1111 1112"), "card [CARD], not 4111 1111 1111 1112");
/// assert_eq!(redact("call +44 20 7946 0958 or (555) 123-4567"), "call [PHONE] or [PHONE]");
/// assert_eq!(redact("select * from pg_stat_statements_info"), "select * from pg_stat_statements_info");
/// // SQL's casts are not addresses; addresses are
/// assert_eq!(redact("select $1::text, id::int, x::date from t"), "select $1::text, id::int, x::date from t");
/// assert_eq!(redact("from fe80::1 and 2001:db8::7334, 2001:db8:: too"), "from [IP] and [IP], [IP] too");
/// ```
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut current: Cow<'_, str> = Cow::Borrowed(text);
    for detector in detectors() {
        if detector.non_ascii && current.is_ascii() {
            continue;
        }
        if let Some(required) = &detector.required {
            if !crate::pattern::contains_any(&current, required) {
                continue;
            }
        }
        let regex = detector.regex.get_or_init(|| Regex::new(detector.pattern).expect("built-in detector pattern"));
        let replaced = match detector.validate {
            None => regex.replace_all(&current, detector.replacement),
            Some(valid) => regex.replace_all(&current, |caps: &Captures<'_>| {
                let m = caps.get(0).map_or("", |m| m.as_str());
                if valid(m) {
                    detector.replacement.to_string()
                } else {
                    m.to_string()
                }
            }),
        };
        if let Cow::Owned(s) = replaced {
            current = Cow::Owned(s);
        }
    }
    current
}

/// The Luhn checksum over the digits of `s` (spaces and dashes ignored).
///
/// ```
/// use dbintel_stdlib::pii::is_valid_luhn;
/// assert!(is_valid_luhn("4111-1111-1111-1111"));
/// assert!(!is_valid_luhn("4111-1111-1111-1112"));
/// assert!(!is_valid_luhn("12"));
/// ```
pub fn is_valid_luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 12 || s.chars().any(|c| !(c.is_ascii_digit() || c == ' ' || c == '-')) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A card number: Luhn-valid, or written in non-ASCII digits (`４１１１…`,
/// which `\d` matches and the checksum cannot read: redacted unchecked).
fn card_like(s: &str) -> bool {
    if s.chars().any(|c| c.is_numeric() && !c.is_ascii_digit()) {
        return true;
    }
    is_valid_luhn(s)
}

/// SSNs never start with 000, 666 or 9xx, and no group is all zeros.
fn plausible_ssn(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    match parts.as_slice() {
        [area, group, serial] => *area != "000" && *area != "666" && !area.starts_with('9') && *group != "00" && *serial != "0000",
        _ => false,
    }
}

fn looks_like_ipv6(s: &str) -> bool {
    s.matches(':').count() >= 2 && s.chars().any(|c| c.is_ascii_hexdigit())
}

/// A long run of mixed letters and digits with high Shannon entropy:
/// secrets look like this, identifiers (`pg_stat_statements_info`) do not.
fn is_high_entropy(s: &str) -> bool {
    let has_digit = s.bytes().any(|b| b.is_ascii_digit());
    let has_upper = s.bytes().any(|b| b.is_ascii_uppercase());
    let has_lower = s.bytes().any(|b| b.is_ascii_lowercase());
    if !(has_digit && (has_upper || has_lower) && (has_upper || s.len() >= 32)) {
        return false;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let len = s.len() as f64;
    let entropy: f64 = counts.iter().filter(|&&c| c > 0).map(|&c| -(f64::from(c) / len) * (f64::from(c) / len).log2()).sum();
    entropy >= 3.5
}

#[cfg(test)]
mod tests {
    use super::*;

    /// They compile on first use: a broken one would only show on the
    /// first text that needs it.
    #[test]
    fn every_detector_pattern_compiles() {
        for detector in detectors() {
            assert!(Regex::new(detector.pattern).is_ok(), "{}", detector.pattern);
        }
    }

    #[test]
    fn each_detector() {
        let cases = [
            ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl end", "token [JWT] end"),
            ("key sk_live_abcdefghijklmnop1234", "key [APIKEY]"),
            ("aws AKIAIOSFODNN7EXAMPLE", "aws [APIKEY]"),
            ("ssn 123-45-6789", "ssn [SSN]"),
            ("not ssn 000-12-3456", "not ssn 000-12-3456"),
            ("v6 2001:db8:85a3::8a2e:370:7334 ok", "v6 [IP] ok"),
            ("secret Zx8Qw2Lk9Pv4Rt7Ym3Nb6Hc1Jd5Fg0", "secret [TOKEN]"),
            ("phone 555-123-4567", "phone [PHONE]"),
            // the same secrets in non-ASCII forms
            ("mail josé.núñez@exämple.com now", "mail [EMAIL] now"),
            ("mail 用户@例子.公司 now", "mail [EMAIL] now"),
            ("card ４１１１ １１１１ １１１１ １１１１", "card [CARD]"),
            ("ssn １２３-４５-６７８９", "ssn [SSN]"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn clean_text_is_borrowed_not_copied() {
        assert!(matches!(redact("select ? from users where id = ?"), Cow::Borrowed(_)));
    }
}
