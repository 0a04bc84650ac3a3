//! Regular expressions as the language uses them: Rust `regex` syntax, plus
//! look-around and backreferences through fancy-regex when a pattern needs
//! them.

use std::borrow::Cow;

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

/// Backtracking steps allowed per match for patterns that need fancy-regex;
/// past it the match fails with an error instead of running away.
pub const BACKTRACK_LIMIT: usize = 100_000;

/// A compiled pattern: the linear-time `regex` engine whenever the pattern
/// allows it, fancy-regex (bounded backtracking) only for look-around and
/// backreferences.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// `required`: bytes of which every match contains at least one; a
    /// text with none of them cannot match, and skips the regex entirely.
    Fast {
        re: regex::Regex,
        required: Option<Vec<u8>>,
    },
    Fancy(fancy_regex::Regex),
}

impl Pattern {
    pub fn new(pattern: &str) -> Result<Pattern, String> {
        match regex::Regex::new(pattern) {
            Ok(re) => {
                let required = regex_syntax::Parser::new().parse(pattern).ok().and_then(|hir| required_bytes(&hir));
                Ok(Pattern::Fast { re, required })
            }
            Err(_) => fancy_regex::RegexBuilder::new(pattern)
                .backtrack_limit(BACKTRACK_LIMIT)
                .build()
                .map(Pattern::Fancy)
                .map_err(|e| e.to_string().lines().next().unwrap_or("invalid regex").to_string()),
        }
    }

    /// False when the text cannot match (a required byte is absent).
    fn may_match(&self, text: &str) -> bool {
        match self {
            Pattern::Fast { required: Some(bytes), .. } => contains_any(text, bytes),
            _ => true,
        }
    }

    pub fn is_match(&self, text: &str) -> Result<bool, String> {
        if !self.may_match(text) {
            return Ok(false);
        }
        match self {
            Pattern::Fast { re, .. } => Ok(re.is_match(text)),
            Pattern::Fancy(re) => re.is_match(text).map_err(|e| e.to_string()),
        }
    }

    /// Replaces every match; `$1`/`${name}` in `replacement` name groups.
    /// `post`, if given, rewrites each expanded replacement (OTTL's optional
    /// function argument). Text without a match comes back borrowed.
    pub fn replace_all<'t>(
        &self,
        text: &'t str,
        replacement: &str,
        post: Option<&dyn Fn(String) -> String>,
    ) -> Result<Cow<'t, str>, String> {
        if !self.may_match(text) {
            return Ok(Cow::Borrowed(text));
        }
        match (self, post) {
            (Pattern::Fast { re, .. }, None) => Ok(re.replace_all(text, replacement)),
            (Pattern::Fast { re, .. }, Some(post)) => Ok(re.replace_all(text, |caps: &regex::Captures<'_>| {
                let mut expanded = String::new();
                caps.expand(replacement, &mut expanded);
                post(expanded)
            })),
            (Pattern::Fancy(re), None) => re.try_replacen(text, 0, replacement).map_err(|e| e.to_string()),
            (Pattern::Fancy(re), Some(post)) => re
                .try_replacen(text, 0, |caps: &fancy_regex::Captures<'_>| {
                    let mut expanded = String::new();
                    caps.expand(replacement, &mut expanded);
                    post(expanded)
                })
                .map_err(|e| e.to_string()),
        }
    }
}

/// Whether `text` holds one of `bytes` (at most three; more always counts
/// as yes).
pub fn contains_any(text: &str, bytes: &[u8]) -> bool {
    let hay = text.as_bytes();
    match bytes {
        [a] => memchr::memchr(*a, hay).is_some(),
        [a, b] => memchr::memchr2(*a, *b, hay).is_some(),
        [a, b, c] => memchr::memchr3(*a, *b, *c, hay).is_some(),
        _ => true,
    }
}

/// At most this many bytes in a required set; more is not worth a scan.
const MAX_REQUIRED: usize = 3;

/// A small set of bytes at least one of which every match contains, if the
/// pattern has one. Chooses the smallest such set, preferring punctuation
/// (rarer in text than letters and digits).
///
/// ```
/// use dbintel_stdlib::pattern::required_bytes;
/// let req = |p: &str| required_bytes(&regex_syntax::Parser::new().parse(p).unwrap());
/// assert_eq!(req(r"\b\d{3}-\d{2}-\d{4}\b"), Some(vec![b'-']));
/// assert_eq!(req(r"[a-z]+@[a-z]+"), Some(vec![b'@']));
/// assert_eq!(req(r"\d+"), None);
/// assert_eq!(req(r"a?b"), Some(vec![b'b']));
/// assert_eq!(req(r"x|y;"), Some(vec![b'x', b';'])); // x, or y then ;
/// ```
pub fn required_bytes(hir: &Hir) -> Option<Vec<u8>> {
    fn score(set: &[u8]) -> (usize, usize) {
        (set.len(), set.iter().filter(|b| b.is_ascii_alphanumeric()).count())
    }
    match hir.kind() {
        HirKind::Literal(lit) => {
            let best = lit.0.iter().copied().min_by_key(|b| (b.is_ascii_alphanumeric(), *b))?;
            best.is_ascii().then(|| vec![best])
        }
        HirKind::Class(regex_syntax::hir::Class::Unicode(c)) => {
            let mut bytes = Vec::new();
            for range in c.ranges() {
                let (start, end) = (range.start() as u32, range.end() as u32);
                if end >= 128 || end - start + 1 > MAX_REQUIRED as u32 {
                    return None;
                }
                bytes.extend((start..=end).map(|b| b as u8));
            }
            (bytes.len() <= MAX_REQUIRED && !bytes.is_empty()).then_some(bytes)
        }
        HirKind::Class(regex_syntax::hir::Class::Bytes(c)) => {
            let mut bytes = Vec::new();
            for range in c.ranges() {
                if usize::from(range.end() - range.start()) + 1 > MAX_REQUIRED {
                    return None;
                }
                bytes.extend(range.start()..=range.end());
            }
            (bytes.len() <= MAX_REQUIRED && !bytes.is_empty()).then_some(bytes)
        }
        HirKind::Repetition(rep) if rep.min >= 1 => required_bytes(&rep.sub),
        HirKind::Capture(cap) => required_bytes(&cap.sub),
        HirKind::Concat(subs) => subs.iter().filter_map(required_bytes).min_by_key(|set| score(set)),
        HirKind::Alternation(subs) => {
            let mut union: Vec<u8> = Vec::new();
            for sub in subs {
                for b in required_bytes(sub)? {
                    if !union.contains(&b) {
                        union.push(b);
                    }
                }
            }
            (union.len() <= MAX_REQUIRED).then_some(union)
        }
        _ => None,
    }
}

/// A glob (`*`, `?`, `[abc]`, `{a,b}`) as an anchored pattern, as OTTL's
/// `replace_match` uses them.
///
/// ```
/// use dbintel_stdlib::pattern::glob;
/// let p = glob("SELECT * FROM {users,accounts}").unwrap();
/// assert!(p.is_match("SELECT id FROM users").unwrap());
/// assert!(!p.is_match("SELECT id FROM orders").unwrap());
/// ```
pub fn glob(glob: &str) -> Result<Pattern, String> {
    let mut out = String::from("^(?s:");
    let mut in_braces = false;
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                out.push('[');
                if chars.peek() == Some(&'!') {
                    chars.next();
                    out.push('^');
                }
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    if c == '\\' || c == '[' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push(']');
            }
            '{' if !in_braces => {
                in_braces = true;
                out.push_str("(?:");
            }
            '}' if in_braces => {
                in_braces = false;
                out.push(')');
            }
            ',' if in_braces => out.push('|'),
            '\\' => {
                if let Some(next) = chars.next() {
                    out.push_str(&regex::escape(&next.to_string()));
                }
            }
            other => out.push_str(&regex::escape(&other.to_string())),
        }
    }
    if in_braces {
        return Err("unclosed `{` in glob".into());
    }
    out.push_str(")$");
    Pattern::new(&out)
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
