//! The real file system and environment, as the compiler sees them; and
//! a [`RecordingHost`] that notes every file a compile read (what `dbintel
//! run` then watches).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use dbintel_dsl::Host;

pub struct FsHost;

impl Host for FsHost {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        if path.is_dir() {
            return Err(std::io::Error::other("is a directory"));
        }
        std::fs::read(path)
    }

    fn canonicalize(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }

    fn env_is_set(&self, name: &str) -> bool {
        std::env::var_os(name).is_some_and(|v| !v.is_empty())
    }
}

/// Every file a compile asked for — the `.pipe` files named, those they
/// `use`, targets files — with a hash of the contents it got (`None`: it
/// could not be read, which is worth watching too: the file may appear).
pub type Reads = BTreeMap<PathBuf, Option<u64>>;

/// A hash of a file's contents, to notice a change.
pub fn content_hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// [`FsHost`], noting what it reads.
#[derive(Default)]
pub struct RecordingHost {
    reads: Mutex<Reads>,
}

impl RecordingHost {
    pub fn reads(self) -> Reads {
        self.reads.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

impl Host for RecordingHost {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let result = FsHost.read(path);
        let seen = result.as_ref().ok().map(|bytes| content_hash(bytes));
        self.reads.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_path_buf(), seen);
        result
    }

    fn canonicalize(&self, path: &Path) -> PathBuf {
        FsHost.canonicalize(path)
    }

    fn env_is_set(&self, name: &str) -> bool {
        FsHost.env_is_set(name)
    }
}

/// Files named on the command line, with each directory replaced by the
/// `*.pipe` files directly in it, sorted. Entries whose names start with `..`
/// are skipped: a mounted ConfigMap keeps its real files in `..data` and links
/// to them, so each file would otherwise be read twice.
pub fn expand(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot list {}: {e}", path.display())))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                !name.starts_with("..") && p.extension().is_some_and(|e| e == "pipe") && p.is_file()
            })
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("no .pipe files in {}", path.display())));
        }
        out.extend(found);
    }
    Ok(out)
}
