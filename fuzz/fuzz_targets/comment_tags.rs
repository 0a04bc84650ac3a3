//! The comment-tag extractor (`sql::comment_tags`) over arbitrary text,
//! the first byte choosing the allow-list: no panic, no hang, and what it
//! promises of every output — only allowed keys, each once, in allow-list
//! order; every value short, printable ASCII without space, and kept again
//! when it is read back alone (so it passed its key's check); the
//! `nr_service_guid` attribute is that tag's value unquoted; a tag only
//! where a leading comment is; and nothing past the first
//! `MAX_COMMENT_BYTES` bytes is read.
#![no_main]

use dbintel_stdlib::sql::comment_tags::{extract, has_leading_comment, MAX_COMMENT_BYTES, MAX_VALUE_BYTES};
use libfuzzer_sys::fuzz_target;

const ALLOW_LISTS: &[&[&str]] = &[&["nr_service_guid"], &["nr_service_guid", "traceparent", "app", "route"], &["a", "b", "a"], &["", "="], &[]];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let allowed = ALLOW_LISTS[usize::from(selector) % ALLOW_LISTS.len()];
    let tags = extract(text, allowed);
    let mut last_slot = None;
    for pair in tags.tags.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("{text:?}: pair {pair:?}"));
        let slot = allowed.iter().position(|k| *k == key).unwrap_or_else(|| panic!("{text:?}: key {key:?} not allowed"));
        assert!(last_slot.is_none_or(|last| slot > last), "{text:?}: {:?} out of order or twice", tags.tags);
        last_slot = Some(slot);
        assert!(value.len() <= MAX_VALUE_BYTES + 2 && value.bytes().all(|b| b.is_ascii_graphic()), "{text:?}: value {value:?}");
        let again = extract(&format!("/*{pair}*/"), allowed);
        assert_eq!(again.tags, pair, "{text:?}: {pair:?} is not kept on its own");
        if key == "nr_service_guid" {
            assert_eq!(again.nr_service_guid, tags.nr_service_guid);
        }
    }
    assert!(tags.nr_service_guid.is_empty() || tags.tags.contains(&tags.nr_service_guid));
    assert!(tags.tags.is_empty() || has_leading_comment(text), "{text:?}: a tag without a leading comment");
    let mut cut = MAX_COMMENT_BYTES.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    assert_eq!(extract(&text[..cut], allowed), tags, "{text:?}: read past the first {MAX_COMMENT_BYTES} bytes");
});
