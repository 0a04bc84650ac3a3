//! New Relic's query normalizer and hash (`sql::apm_hash`) over arbitrary
//! text: no panic, no hang (its back-scans are quadratic in New Relic's
//! code; libFuzzer's timeout holds ours to linear), and what its rules
//! promise of every output: an empty hash exactly for an empty text,
//! otherwise 32 lower-case hex digits; no ASCII lower-case letter, no
//! space, tab, CR or LF left; a `;` after a text that ends in a letter or
//! digit never changes the hash.
#![no_main]

use dbintel_stdlib::sql::apm_hash::normalize_and_hash;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (normalized, hash) = normalize_and_hash(text);
    if normalized.is_empty() {
        assert!(hash.is_empty(), "{text:?}: a hash for an empty text");
    } else {
        assert!(hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{text:?}: {hash:?}");
    }
    assert!(!normalized.bytes().any(|b| b.is_ascii_lowercase() || matches!(b, b' ' | b'\t' | b'\r' | b'\n')), "{text:?}: {normalized:?}");
    // (a text ending in, say, `\u{b}` has it trimmed, but not before a `;`)
    if !normalized.is_empty() && text.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        let (_, with_semicolon) = normalize_and_hash(&format!("{text};"));
        assert_eq!(hash, with_semicolon, "{text:?}: a trailing ; changed the hash");
    }
});
