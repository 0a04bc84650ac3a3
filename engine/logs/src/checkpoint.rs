//! Where a log source is, kept across restarts: per file its identity
//! (device and inode, and a hash of its first bytes, which tells a file
//! rewritten in place from the one we read), the offset of the first byte
//! not yet turned into records that left, and the metric window not yet
//! sent. Written after the records of a poll were handed on: atomically
//! (a temporary file, fsync, rename), so a crash leaves the old state or
//! the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileState {
    /// Which followed location it belongs to (`directory`, or the
    /// collector whose file it is).
    pub stream: String,
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
    /// FNV-1a of the file's first `head_len` bytes.
    pub head: u64,
    pub head_len: u64,
    /// The offset is inside a line longer than `max_line` whose start was
    /// already read: skip to its end.
    #[serde(default)]
    pub cutting: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub files: Vec<FileState>,
    /// The metric window (see `records::Window::to_json`).
    #[serde(default)]
    pub window: serde_json::Value,
    /// The locations looked at once at least: files found there later
    /// are new (read from their start whatever `start_at` says).
    #[serde(default)]
    pub scanned: Vec<String>,
}

pub const VERSION: u32 = 1;

/// The state file of source `source` in `dir`.
pub fn path(dir: &Path, source: &str) -> PathBuf {
    dir.join(format!("{source}.logstate.json"))
}

/// Reads the state; `None` when there is none yet (a first start).
pub fn load(path: &Path) -> Result<Option<State>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<State>(&bytes)
            .map(Some)
            .map_err(|e| format!("the log state {} is not readable ({e}); move it away to start over", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read the log state {}: {e}", path.display())),
    }
}

/// Whether states can be written next to `path` (the directory is made
/// if need be), without writing one.
pub fn probe(path: &Path) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
    let probe = path.with_extension("probe");
    std::fs::write(&probe, b"").map_err(|e| format!("cannot write in the state directory {}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Writes the state atomically.
pub fn save(path: &Path, state: &State) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(state).map_err(|e| e.to_string())?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // the rename itself must reach the disk
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| format!("cannot write the log state {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_and_a_missing_one_is_a_first_start() {
        let dir = std::env::temp_dir().join(format!("dbintel-logstate-{}", std::process::id()));
        let p = path(&dir, "pg_logs");
        assert_eq!(load(&p), Ok(None));
        let state = State {
            version: VERSION,
            files: vec![FileState {
                stream: "directory".into(),
                path: "/x/a.json".into(),
                dev: 1,
                ino: 2,
                offset: 3,
                head: 4,
                head_len: 5,
                cutting: false,
            }],
            window: serde_json::json!({"start": 1}),
            scanned: vec!["directory".into()],
        };
        save(&p, &state).unwrap();
        assert_eq!(load(&p), Ok(Some(state)));
        std::fs::write(&p, b"{broken").unwrap();
        assert!(load(&p).unwrap_err().contains("not readable"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
