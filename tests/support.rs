//! Shared pieces of the end-to-end and golden suites.

use std::path::{Path, PathBuf};

use dbintel_dsl::Host;

/// Reads real files; sees a fixed environment so golden results do not
/// depend on the machine: only the variables in `set` exist.
pub struct GoldenHost {
    pub set: &'static [&'static str],
}

/// The variables the golden files may rely on.
pub const GOLDEN_ENV: &[&str] = &["PG_DSN", "MYSQL_DSN", "NEW_RELIC_LICENSE_KEY", "PG_LOG_DIR", "MYSQL_SLOW_LOG", "MYSQL_ERROR_LOG"];

impl Host for GoldenHost {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn canonicalize(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }
    fn env_is_set(&self, name: &str) -> bool {
        self.set.contains(&name)
    }
}

/// One `# expect: CODE LINE:COL [text]` line of a golden file's header.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    pub code: String,
    pub line: usize,
    pub column: usize,
    /// Words the message must contain, if given.
    pub text: Option<String>,
}

/// Reads the `# expect:` lines at the top of a golden file.
pub fn expectations(text: &str) -> Result<Vec<Expected>, String> {
    let mut out = Vec::new();
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        let Some(rest) = line.strip_prefix("# expect:") else { continue };
        let mut parts = rest.trim().splitn(3, ' ');
        let code = parts.next().ok_or("missing code")?.to_string();
        let position = parts.next().ok_or_else(|| format!("missing LINE:COL in `{line}`"))?;
        let (l, c) = position.split_once(':').ok_or_else(|| format!("bad LINE:COL in `{line}`"))?;
        let line_no = l.parse().map_err(|_| format!("bad line in `{line}`"))?;
        let column = c.parse().map_err(|_| format!("bad column in `{line}`"))?;
        let text = parts.next().map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        out.push(Expected { code, line: line_no, column, text });
    }
    Ok(out)
}

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}
