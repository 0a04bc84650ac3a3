//! Regular expressions as the language uses them: Rust `regex` syntax, plus
//! look-around and backreferences through fancy-regex when a pattern needs
//! them.

use regex_syntax::hir::{Hir, HirKind};

/// Patterns whose rough compiled size stays under this are accepted after a
/// syntax check alone; larger ones are compiled to be sure they fit.
const CHEAP_SIZE: u64 = 10_000;

/// Whether `pattern` is a valid regex, without paying for compiling it when
/// a parse proves it. `Err` holds a one-line reason.
///
/// ```
/// use dbintel_stdlib::pattern::check;
/// assert!(check(r"\b\d{3}-\d{2}-\d{4}\b").is_ok());
/// assert!(check(r"(?<=user=)\w+").is_ok()); // look-behind: fancy-regex
/// assert!(check(r"(unclosed").is_err());
/// ```
pub fn check(pattern: &str) -> Result<(), String> {
    if let Ok(hir) = regex_syntax::ParserBuilder::new().nest_limit(100).build().parse(pattern) {
        if rough_size(&hir) <= CHEAP_SIZE {
            return Ok(());
        }
    }
    fancy_regex::Regex::new(pattern).map(|_| ()).map_err(|err| err.to_string().lines().next().unwrap_or("invalid").to_string())
}

/// An over-estimate of how large a pattern compiles, in states.
fn rough_size(hir: &Hir) -> u64 {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => 1,
        HirKind::Literal(lit) => lit.0.len() as u64,
        HirKind::Class(regex_syntax::hir::Class::Unicode(c)) => c.ranges().len() as u64 * 4,
        HirKind::Class(regex_syntax::hir::Class::Bytes(c)) => c.ranges().len() as u64,
        HirKind::Repetition(rep) => {
            let times = u64::from(rep.max.unwrap_or(rep.min).max(rep.min).max(1));
            rough_size(&rep.sub).saturating_mul(times)
        }
        HirKind::Capture(cap) => rough_size(&cap.sub),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => subs.iter().map(rough_size).fold(0u64, u64::saturating_add),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_repetitions_are_compiled_and_refused() {
        assert!(check(r"\w{1000}{1000}").is_err());
    }

    #[test]
    fn backreferences_need_and_get_fancy_regex() {
        assert!(check(r"(\w+) \1").is_ok());
        assert!(check(r"(\w+) \2").is_err());
    }
}
