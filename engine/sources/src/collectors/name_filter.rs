//! Which databases, schemas or tables a collector reports: include and
//! exclude globs (`*`, `?`, `[abc]`, `{a,b}`), anchored; a name without
//! wildcards matches itself only. No include globs: everything is
//! included; an exclude wins over an include.

use dbintel_stdlib::pattern::{glob, Pattern};

#[derive(Debug)]
pub struct NameFilter {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl NameFilter {
    /// `what` names the setting pair in an error (`databases`, `tables`).
    pub fn new(what: &str, include: &[String], exclude: &[String]) -> Result<NameFilter, String> {
        let compile = |setting: String, globs: &[String]| {
            globs
                .iter()
                .map(|g| glob(g).map_err(|e| format!("`{setting}`: the glob {g:?} is not valid: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(NameFilter { include: compile(what.to_string(), include)?, exclude: compile(format!("exclude_{what}"), exclude)? })
    }

    pub fn admits(&self, name: &str) -> bool {
        let hit = |p: &Pattern| p.is_match(name).unwrap_or(false);
        (self.include.is_empty() || self.include.iter().any(hit)) && !self.exclude.iter().any(hit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_then_excludes_by_glob() {
        let f = NameFilter::new("tables", &["public.*".into(), "audit.log".into()], &["public.tmp_*".into()]).expect("valid");
        assert!(f.admits("public.orders") && f.admits("audit.log"));
        assert!(!f.admits("public.tmp_x") && !f.admits("audit.other") && !f.admits("xpublic.orders"));
        assert!(NameFilter::new("tables", &[], &[]).expect("valid").admits("anything"));
        let e = NameFilter::new("databases", &[], &["{a".into()]).expect_err("unclosed brace");
        assert!(e.contains("exclude_databases"), "{e}");
    }
}
