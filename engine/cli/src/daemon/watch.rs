//! What `dbintel run` watches: every file a compile read — the `.pipe`
//! files named (a directory's listing too), the files they `use`, targets
//! files — including those it could not read (a `use` of a file not
//! written yet). Files are polled; a change must be seen on two polls in a
//! row before it reloads (editors and partial writes settle first; a
//! ConfigMap mount swapping its `..data` symlink shows as changed
//! contents).
//!
//! After a compile, applied or refused, the watch takes what that compile
//! read, as it read it: a change made while it compiled is still a change,
//! and a refused file is not compiled again until it changes.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use crate::fs_host::{content_hash, expand, Reads};

pub struct Watch {
    /// The paths on the command line (directories are listed each poll).
    paths: Vec<PathBuf>,
    /// What the running plan's compile read.
    running: Reads,
    /// What the last compile read, if it was refused.
    refused: Option<Reads>,
    seen: u64,
    pending: Option<u64>,
}

impl Watch {
    /// Watches what the compile of the running plan read.
    pub fn new(paths: Vec<PathBuf>, reads: Reads) -> Watch {
        let mut watch = Watch { paths, running: reads, refused: None, seen: 0, pending: None };
        watch.seen = watch.fingerprint(Some(&watch.running.clone()));
        watch
    }

    /// After a compile whose plan now runs (or was unchanged).
    pub fn applied(&mut self, reads: Reads) {
        self.running = reads;
        self.refused = None;
        self.seen = self.fingerprint(Some(&self.running.clone()));
        self.pending = None;
    }

    /// After a compile that was refused: the running plan's files stay
    /// watched, and so does what the refused compile read.
    pub fn refused(&mut self, reads: Reads) {
        self.refused = Some(reads.clone());
        self.seen = self.fingerprint(Some(&reads));
        self.pending = None;
    }

    /// The files watched now.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.running.keys().chain(self.refused.iter().flat_map(|r| r.keys())).cloned().collect();
        files.sort();
        files.dedup();
        files
    }

    /// One poll: true when a change has settled and a reload is due.
    pub fn poll(&mut self) -> bool {
        let now = self.fingerprint(None);
        if now == self.seen {
            self.pending = None;
            false
        } else if self.pending == Some(now) {
            // the same new contents twice in a row: settled
            self.pending = None;
            true
        } else {
            self.pending = Some(now);
            false
        }
    }

    /// A hash of the watched files' contents: as `compiled` read them
    /// where it read them, as they are now elsewhere.
    fn fingerprint(&self, compiled: Option<&Reads>) -> u64 {
        let mut files: BTreeMap<PathBuf, Option<u64>> = BTreeMap::new();
        // the listing of a directory on the command line: a new file in it
        // is a change (an unreadable listing is a state of its own)
        let listed = expand(&self.paths).map_err(|e| e.kind());
        for file in self.files().into_iter().chain(listed.iter().flatten().cloned()) {
            let hash = match compiled.and_then(|c| c.get(&file)) {
                Some(as_compiled) => *as_compiled,
                None => std::fs::read(&file).ok().map(|bytes| content_hash(&bytes)),
            };
            files.insert(file, hash);
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        listed.map(|_| ()).map_err(|k| format!("{k:?}")).hash(&mut h);
        files.hash(&mut h);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_reads(files: &[&std::path::Path]) -> Reads {
        files.iter().map(|f| (f.to_path_buf(), std::fs::read(f).ok().map(|b| content_hash(&b)))).collect()
    }

    #[test]
    fn a_change_to_a_used_file_reloads_after_two_polls_and_a_missing_file_is_watched_until_it_appears() {
        let dir = std::env::temp_dir().join(format!("dbintel-watch-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (main, used, later) = (dir.join("main.pipe"), dir.join("rules.pipe"), dir.join("later.pipe"));
        std::fs::write(&main, "use \"rules.pipe\"\n").unwrap();
        std::fs::write(&used, "a").unwrap();
        let mut watch = Watch::new(vec![dir.clone()], compile_reads(&[&main, &used]));
        assert!(!watch.poll() && !watch.poll(), "nothing changed");
        std::fs::write(&used, "b").unwrap();
        assert!(!watch.poll(), "seen once: not yet");
        assert!(watch.poll(), "seen twice: reload");
        watch.applied(compile_reads(&[&main, &used]));
        assert!(!watch.poll() && !watch.poll(), "settled after the reload");

        // a refused compile that wanted a file not written yet
        watch.refused(compile_reads(&[&main, &used, &later]));
        assert!(!watch.poll() && !watch.poll(), "a refused file is not compiled again until it changes");
        std::fs::write(&later, "c").unwrap();
        assert!(!watch.poll() && watch.poll(), "the missing file appeared");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
