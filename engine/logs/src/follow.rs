//! Following log files for real, as a sidecar sees them.
//!
//! A [`Follower`] watches one location: a directory whose file names
//! match globs (PostgreSQL's `log_directory` with its `log_filename`
//! pattern), or one file (MySQL's slow and error logs). Files are known by
//! identity (device, inode) and by a hash of their first bytes, not by
//! name, so:
//!
//! - a new file (the server rotated: `log_rotation_age/size`,
//!   `pg_rotate_logfile()`, `FLUSH LOGS`) is picked up and read from its
//!   start; the old one is read to its end first, through the handle kept
//!   open, even when it was renamed or deleted meanwhile;
//! - a file that got shorter, or whose first bytes changed, was truncated
//!   or rewritten in place (logrotate's `copytruncate`,
//!   `log_truncate_on_rotation`): it is read again from its start;
//! - only complete lines are read: a half-written last line waits for its
//!   newline (a rotated-away file quiet for long enough gives its last
//!   line up as complete); a line longer than `max_line` is cut there and
//!   the rest skipped (counted);
//! - each file has its own parser, so multi-line entries never mix files.
//!
//! Polls are blocking (std::fs) and bounded in bytes; the source runs them
//! on the blocking pool. Offsets come from and go to the [`checkpoint`]:
//! the offset kept for a file is where its first unfinished entry starts.
//!
//! [`checkpoint`]: crate::checkpoint

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::checkpoint::FileState;
use crate::entry::{Entry, Parsed, Problem};
use crate::format::Parser;

/// Bytes of a file's start that identify its content.
const HEAD: u64 = 256;
/// Read size.
const CHUNK: usize = 64 * 1024;
/// Polls a rotated-away file stays quiet before its unterminated last
/// line counts as complete and the file as done.
const QUIET_POLLS_DONE: u32 = 10;
/// Files kept open at once; quiet, fully read older files close first
/// (they are opened again if they grow).
const MAX_OPEN: usize = 32;

/// Where a follower looks.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    Directory { dir: PathBuf, globs: Vec<String> },
    File(PathBuf),
}

impl Location {
    pub fn describe(&self) -> String {
        match self {
            Location::Directory { dir, globs } => format!("{} ({})", dir.display(), globs.join(", ")),
            Location::File(p) => p.display().to_string(),
        }
    }
}

/// Why a location cannot be read now (retried).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowError {
    #[error("log directory {path}: {reason}")]
    Directory { path: String, reason: String },
    #[error("log file {path}: {reason}")]
    File { path: String, reason: String },
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".into(),
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (dbintel's user cannot read it: add it to the server's group, e.g. log_file_mode = 0640)".into()
        }
        _ => e.to_string(),
    }
}

/// Whether `name` matches `glob` (`*` any run, `?` one character).
pub fn glob_match(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    let (mut gi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == n[ni]) {
            gi += 1;
            ni += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some(gi);
            mark = ni;
            gi += 1;
        } else if let Some(s) = star {
            gi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}

fn fnv(bytes: &[u8]) -> u64 {
    dbintel_stdlib::functions::fnv1a(bytes)
}

/// The hash of a file's first `len` bytes (fewer if it is shorter).
fn head_of(file: &mut File, len: u64) -> std::io::Result<(u64, u64)> {
    let mut buf = vec![0u8; len as usize];
    file.seek(SeekFrom::Start(0))?;
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok((fnv(&buf[..got]), got as u64))
}

/// A file being followed.
struct Tracked {
    path: PathBuf,
    name: String,
    dev: u64,
    ino: u64,
    handle: Option<File>,
    /// Bytes read from the file (lines fed, and the partial line held).
    read_to: u64,
    /// The unterminated line read so far, and where it starts.
    partial: Vec<u8>,
    partial_from: u64,
    /// Inside a line past `max_line` whose start was fed: skip to its end.
    cutting: bool,
    parser: Box<dyn Parser>,
    head: u64,
    head_len: u64,
    /// No longer under its name (renamed away or deleted): read to the
    /// end of what the open handle still reaches, then dropped.
    gone: bool,
    quiet_polls: u32,
    mtime: i64,
    /// Its size at the last look (its first bytes are checked when it
    /// changes).
    size: u64,
}

impl Tracked {
    /// Where its first unfinished entry starts: what a restart re-reads.
    fn committed(&self) -> u64 {
        let line = if self.cutting { self.read_to } else { self.partial_from };
        self.parser.pending_from().map_or(line, |p| p.min(line))
    }
}

/// What one poll gave.
#[derive(Debug, Default)]
pub struct Poll {
    /// Entries and the name of the file they came from.
    pub entries: Vec<(String, Entry)>,
    pub problems: Vec<(String, Problem)>,
    /// Lines fed to parsers.
    pub lines: u64,
    pub bytes: u64,
    /// Stopped at the byte budget: poll again at once.
    pub more: bool,
    /// Files that were truncated or rewritten in place, read again.
    pub restarted: Vec<String>,
}

pub struct Follower {
    /// The checkpoint's name for this location.
    pub stream: String,
    pub location: Location,
    max_line: usize,
    make_parser: Box<dyn Fn() -> Box<dyn Parser> + Send>,
    files: Vec<Tracked>,
    /// Offsets from the checkpoint, used as files are found.
    restored: Vec<FileState>,
    /// No checkpoint was found: files found now start at their end (when
    /// `start_at_end`); files found later start at 0.
    first_scan: bool,
    start_at_end: bool,
}

impl Follower {
    pub fn new(
        stream: &str,
        location: Location,
        max_line: usize,
        make_parser: Box<dyn Fn() -> Box<dyn Parser> + Send>,
        restored: Option<Vec<FileState>>,
        start_at_end: bool,
    ) -> Follower {
        let first_scan = restored.is_none();
        Follower {
            stream: stream.to_string(),
            location,
            max_line: max_line.max(1024),
            make_parser,
            files: Vec::new(),
            restored: restored.unwrap_or_default(),
            first_scan,
            start_at_end,
        }
    }

    /// The files of the location now: (path, name, metadata), oldest first.
    fn candidates(&self) -> Result<Vec<(PathBuf, String, std::fs::Metadata)>, FollowError> {
        let mut out = Vec::new();
        match &self.location {
            Location::Directory { dir, globs } => {
                let read = std::fs::read_dir(dir)
                    .map_err(|e| FollowError::Directory { path: dir.display().to_string(), reason: io_reason(&e) })?;
                for item in read.flatten() {
                    let name = item.file_name().to_string_lossy().into_owned();
                    if !globs.iter().any(|g| glob_match(g, &name)) {
                        continue;
                    }
                    let path = item.path();
                    // a file that went between listing and stat is not there
                    if let Ok(meta) = std::fs::metadata(&path) {
                        if meta.is_file() {
                            out.push((path, name, meta));
                        }
                    }
                }
            }
            Location::File(path) => {
                let meta =
                    std::fs::metadata(path).map_err(|e| FollowError::File { path: path.display().to_string(), reason: io_reason(&e) })?;
                if !meta.is_file() {
                    return Err(FollowError::File { path: path.display().to_string(), reason: "is not a regular file".into() });
                }
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                out.push((path.clone(), name, meta));
            }
        }
        out.sort_by(|a, b| (a.2.mtime(), a.2.mtime_nsec(), &a.1).cmp(&(b.2.mtime(), b.2.mtime_nsec(), &b.1)));
        Ok(out)
    }

    /// Where to start in a file found now.
    fn start_offset(&mut self, path: &Path, meta: &std::fs::Metadata) -> (u64, bool, u64, u64) {
        let (dev, ino) = (meta.dev(), meta.ino());
        if let Some(i) = self.restored.iter().position(|s| s.dev == dev && s.ino == ino) {
            let saved = self.restored.swap_remove(i);
            // the same content? (an inode can be reused; a file can be
            // rewritten in place while we were away)
            let same = File::open(path)
                .and_then(|mut f| head_of(&mut f, saved.head_len))
                .is_ok_and(|(h, l)| l == saved.head_len && h == saved.head);
            if same && saved.offset <= meta.len() {
                return (saved.offset, saved.cutting, saved.head, saved.head_len);
            }
            return (0, false, 0, 0);
        }
        if self.first_scan && self.start_at_end {
            // at the end, but never inside a line
            let end = meta.len();
            let aligned = File::open(path).map(|mut f| last_line_start(&mut f, end)).unwrap_or(end);
            return (aligned, false, 0, 0);
        }
        (0, false, 0, 0)
    }

    /// Reads what is new, up to about `budget` bytes.
    pub fn poll(&mut self, budget: u64) -> Result<Poll, FollowError> {
        // an unreadable location changes nothing: every offset is kept for
        // when it is back
        let candidates = self.candidates()?;
        let mut poll = Poll::default();
        // which tracked files are still where they were
        for t in &mut self.files {
            t.gone = !candidates.iter().any(|(_, _, m)| m.dev() == t.dev && m.ino() == t.ino);
        }
        for (path, name, meta) in &candidates {
            let known = self.files.iter().position(|t| t.dev == meta.dev() && t.ino == meta.ino());
            match known {
                Some(i) => {
                    let t = &mut self.files[i];
                    t.path = path.clone();
                    t.name = name.clone();
                    t.mtime = meta.mtime();
                    let changed = meta.len() != t.size;
                    t.size = meta.len();
                    if meta.len() < t.read_to || (changed && !Self::same_head(t)) {
                        // truncated (copytruncate) or rewritten: from the start
                        let mut done = Parsed::default();
                        t.parser.finish(&mut done);
                        poll.entries.extend(done.entries.into_iter().map(|e| (t.name.clone(), e)));
                        poll.problems.extend(done.problems.into_iter().map(|p| (t.name.clone(), p)));
                        t.parser = (self.make_parser)();
                        t.read_to = 0;
                        t.partial.clear();
                        t.partial_from = 0;
                        t.cutting = false;
                        t.head = 0;
                        t.head_len = 0;
                        if let Some(h) = t.handle.as_mut() {
                            let _ = h.seek(SeekFrom::Start(0));
                        }
                        poll.restarted.push(t.name.clone());
                    }
                }
                None => {
                    let (offset, cutting, head, head_len) = self.start_offset(path, meta);
                    self.files.push(Tracked {
                        path: path.clone(),
                        name: name.clone(),
                        dev: meta.dev(),
                        ino: meta.ino(),
                        handle: None,
                        read_to: offset,
                        partial: Vec::new(),
                        partial_from: offset,
                        cutting,
                        parser: (self.make_parser)(),
                        head,
                        head_len,
                        gone: false,
                        quiet_polls: 0,
                        mtime: meta.mtime(),
                        size: meta.len(),
                    });
                }
            }
        }
        self.first_scan = false;
        // a checkpointed file not found now is gone for good
        self.restored.clear();
        self.read_all(budget, &mut poll).map_err(|e| match &self.location {
            Location::Directory { dir, .. } => FollowError::Directory { path: dir.display().to_string(), reason: e },
            Location::File(p) => FollowError::File { path: p.display().to_string(), reason: e },
        })?;
        Ok(poll)
    }

    /// Whether a tracked file still starts with the bytes it started with.
    fn same_head(t: &mut Tracked) -> bool {
        if t.head_len == 0 {
            return true;
        }
        let Some(h) = t.handle.as_mut() else {
            return File::open(&t.path).and_then(|mut f| head_of(&mut f, t.head_len)).is_ok_and(|(h, l)| h == t.head && l == t.head_len);
        };
        let ok = head_of(h, t.head_len).is_ok_and(|(hash, l)| hash == t.head && l == t.head_len);
        let _ = h.seek(SeekFrom::Start(t.read_to));
        ok
    }

    fn read_all(&mut self, budget: u64, poll: &mut Poll) -> Result<(), String> {
        // oldest first: a rotated file's end comes before the new file
        self.files.sort_by(|a, b| (!a.gone, a.mtime, &a.name).cmp(&(!b.gone, b.mtime, &b.name)));
        let newest = self.files.iter().filter(|t| !t.gone).map(|t| t.mtime).max();
        let mut buf = vec![0u8; CHUNK];
        let max_line = self.max_line;
        let mut spent = 0u64;
        for t in &mut self.files {
            if spent >= budget {
                poll.more = true;
                break;
            }
            if t.handle.is_none() {
                if t.gone {
                    continue;
                }
                match File::open(&t.path) {
                    Ok(mut f) => {
                        if f.seek(SeekFrom::Start(t.read_to)).is_err() {
                            continue;
                        }
                        t.handle = Some(f);
                    }
                    // permission or a race with deletion: said by the caller
                    // when every file fails; one file is retried next poll
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(format!("{}: {}", t.name, io_reason(&e))),
                }
            }
            let Some(handle) = t.handle.as_mut() else { continue };
            let mut grew = false;
            let mut parsed = Parsed::default();
            loop {
                if spent >= budget {
                    poll.more = true;
                    break;
                }
                let n = match handle.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("{}: {e}", t.name)),
                };
                grew = true;
                spent += n as u64;
                poll.bytes += n as u64;
                let mut chunk = &buf[..n];
                while !chunk.is_empty() {
                    match memchr::memchr(b'\n', chunk) {
                        Some(i) => {
                            let line_end = t.read_to + i as u64 + 1;
                            if t.cutting {
                                t.cutting = false;
                            } else if t.partial.is_empty() {
                                let line = trim_cr(&chunk[..i]);
                                if line.len() > max_line {
                                    t.parser.line(&line[..max_line], t.partial_from, true, &mut parsed);
                                } else {
                                    t.parser.line(line, t.partial_from, false, &mut parsed);
                                }
                                poll.lines += 1;
                            } else {
                                t.partial.extend_from_slice(&chunk[..i]);
                                let line = std::mem::take(&mut t.partial);
                                let l = trim_cr(&line);
                                let cut = l.len() > max_line;
                                t.parser.line(&l[..l.len().min(max_line)], t.partial_from, cut, &mut parsed);
                                poll.lines += 1;
                            }
                            t.read_to = line_end;
                            t.partial_from = line_end;
                            chunk = &chunk[i + 1..];
                        }
                        None => {
                            t.read_to += chunk.len() as u64;
                            if !t.cutting {
                                if t.partial.len() + chunk.len() > max_line {
                                    // past the bound: its start goes now, the
                                    // rest is skipped to its end
                                    let room = max_line.saturating_sub(t.partial.len());
                                    t.partial.extend_from_slice(&chunk[..room.min(chunk.len())]);
                                    let line = std::mem::take(&mut t.partial);
                                    t.parser.line(&line, t.partial_from, true, &mut parsed);
                                    poll.lines += 1;
                                    t.cutting = true;
                                } else {
                                    t.partial.extend_from_slice(chunk);
                                }
                            }
                            chunk = &[];
                        }
                    }
                }
            }
            if t.head_len < HEAD && t.read_to > t.head_len {
                if let Ok((h, l)) = head_of(handle, HEAD.min(t.read_to)) {
                    t.head = h;
                    t.head_len = l;
                }
                let _ = handle.seek(SeekFrom::Start(t.read_to));
            }
            if poll.more {
                poll.entries.extend(parsed.entries.into_iter().map(|e| (t.name.clone(), e)));
                poll.problems.extend(parsed.problems.into_iter().map(|p| (t.name.clone(), p)));
                break;
            }
            // at the end of what is there
            t.quiet_polls = if grew { 0 } else { t.quiet_polls + 1 };
            t.parser.idle(&mut parsed);
            let older = newest.is_some_and(|n| t.mtime < n) || t.gone;
            if older && t.quiet_polls >= QUIET_POLLS_DONE {
                // rotated away and quiet: its last line is whole, its
                // last entry complete
                if !t.partial.is_empty() && !t.cutting {
                    let line = std::mem::take(&mut t.partial);
                    t.parser.line(&line, t.partial_from, false, &mut parsed);
                    poll.lines += 1;
                    t.partial_from = t.read_to;
                }
                t.parser.finish(&mut parsed);
                // a file no longer there, done, is forgotten; one still
                // there is closed (opened again if it grows)
                t.handle = None;
            }
            poll.entries.extend(parsed.entries.into_iter().map(|e| (t.name.clone(), e)));
            poll.problems.extend(parsed.problems.into_iter().map(|p| (t.name.clone(), p)));
        }
        self.files.retain(|t| !(t.gone && t.handle.is_none() && t.parser.pending_from().is_none()));
        // bound the open handles: close quiet, fully read, older files
        let open = self.files.iter().filter(|t| t.handle.is_some()).count();
        if open > MAX_OPEN {
            let mut closable: Vec<usize> = (0..self.files.len())
                .filter(|&i| {
                    self.files[i].handle.is_some()
                        && !self.files[i].gone
                        && self.files[i].quiet_polls > 0
                        && self.files[i].partial.is_empty()
                })
                .collect();
            closable.sort_by_key(|&i| self.files[i].mtime);
            for i in closable.into_iter().take(open - MAX_OPEN) {
                self.files[i].handle = None;
            }
        }
        Ok(())
    }

    /// The offsets to checkpoint.
    pub fn state(&self) -> Vec<FileState> {
        let mut out: Vec<FileState> = self
            .files
            .iter()
            .map(|t| FileState {
                stream: self.stream.clone(),
                path: t.path.display().to_string(),
                dev: t.dev,
                ino: t.ino,
                offset: t.committed(),
                head: t.head,
                head_len: t.head_len,
                cutting: t.cutting && t.committed() == t.read_to,
            })
            .collect();
        // before the first look, what the checkpoint said is kept
        out.extend(self.restored.iter().cloned());
        out
    }

    /// Files followed now.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Whether the location was looked at once at least.
    pub fn scanned(&self) -> bool {
        !self.first_scan
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The offset after the last newline before `end` (0 if none): where a
/// complete line starts.
fn last_line_start(file: &mut File, end: u64) -> u64 {
    let mut pos = end;
    let mut buf = [0u8; 4096];
    while pos > 0 {
        let from = pos.saturating_sub(buf.len() as u64);
        let len = (pos - from) as usize;
        if file.seek(SeekFrom::Start(from)).is_err() || file.read_exact(&mut buf[..len]).is_err() {
            return end;
        }
        if let Some(i) = memchr::memrchr(b'\n', &buf[..len]) {
            return from + i as u64 + 1;
        }
        pos = from;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::jsonlog::JsonLog;
    use std::io::Write;

    #[test]
    fn globs_match_file_names() {
        assert!(glob_match("postgresql-*.json", "postgresql-2024-05-01_120000.json"));
        assert!(!glob_match("postgresql-*.json", "postgresql-2024-05-01_120000.csv"));
        assert!(glob_match("*.log", "a.log"));
        assert!(glob_match("slow?.log", "slow1.log"));
        assert!(!glob_match("slow?.log", "slow12.log"));
        assert!(glob_match("*", ""));
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dbintel-follow-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn line(i: usize) -> String {
        format!("{{\"error_severity\":\"ERROR\",\"state_code\":\"XX000\",\"message\":\"m{i}\"}}\n")
    }

    fn messages(p: &Poll) -> Vec<String> {
        p.entries
            .iter()
            .map(|(_, e)| match e {
                Entry::Pg(e) => e.message.clone(),
                _ => String::new(),
            })
            .collect()
    }

    fn follower(d: &Path, restored: Option<Vec<FileState>>, at_end: bool) -> Follower {
        let location = Location::Directory { dir: d.to_path_buf(), globs: vec!["*.json".into()] };
        Follower::new("directory", location, 4096, Box::new(|| Box::new(JsonLog) as Box<dyn Parser>), restored, at_end)
    }

    #[test]
    fn a_half_written_line_waits_and_a_restart_resumes_where_it_stopped() {
        let d = dir("resume");
        let f = d.join("a.json");
        std::fs::write(&f, format!("{}{}{{\"error_sev", line(1), line(2))).unwrap();
        let mut a = follower(&d, None, false);
        let p = a.poll(1 << 20).unwrap();
        assert_eq!(messages(&p), vec!["m1", "m2"]);
        let state = a.state();
        assert_eq!(state[0].offset, (line(1).len() + line(2).len()) as u64, "the partial line is not committed");
        let mut w = std::fs::OpenOptions::new().append(true).open(&f).unwrap();
        write!(w, "erity\":\"ERROR\",\"message\":\"m3\"}}\n{}", line(4)).unwrap();
        // a new process from the checkpoint
        let mut b = follower(&d, Some(state), false);
        assert_eq!(messages(&b.poll(1 << 20).unwrap()), vec!["m3", "m4"]);
        assert!(b.poll(1 << 20).unwrap().entries.is_empty(), "nothing twice");
    }

    #[test]
    fn rotation_reads_the_old_file_to_its_end_then_the_new_one() {
        let d = dir("rotate");
        std::fs::write(d.join("a.json"), line(1)).unwrap();
        let mut f = follower(&d, None, false);
        assert_eq!(messages(&f.poll(1 << 20).unwrap()), vec!["m1"]);
        // the old file gets its last line, then is renamed away (not
        // matching the glob), and a new file starts
        std::fs::OpenOptions::new().append(true).open(d.join("a.json")).unwrap().write_all(line(2).as_bytes()).unwrap();
        std::fs::rename(d.join("a.json"), d.join("a.json.1")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(d.join("b.json"), line(3)).unwrap();
        assert_eq!(messages(&f.poll(1 << 20).unwrap()), vec!["m2", "m3"]);
    }

    #[test]
    fn copytruncate_reads_the_file_again_from_its_start() {
        let d = dir("truncate");
        let path = d.join("a.json");
        std::fs::write(&path, format!("{}{}", line(1), line(2))).unwrap();
        let mut f = follower(&d, None, false);
        assert_eq!(f.poll(1 << 20).unwrap().entries.len(), 2);
        // logrotate copytruncate: same inode, emptied, then written again
        std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(line(3).as_bytes()).unwrap();
        let p = f.poll(1 << 20).unwrap();
        assert_eq!(messages(&p), vec!["m3"]);
        assert_eq!(p.restarted, vec!["a.json".to_string()]);
        // truncated and grown past the old offset before we looked: the
        // first bytes differ
        std::fs::write(&path, format!("{}{}{}", line(7), line(8), line(9))).unwrap();
        assert_eq!(messages(&f.poll(1 << 20).unwrap()), vec!["m7", "m8", "m9"]);
    }

    #[test]
    fn a_long_line_is_cut_and_counted_and_the_next_line_is_read() {
        let d = dir("long");
        let long = format!("{{\"message\":\"{}\"}}\n", "x".repeat(20_000));
        std::fs::write(d.join("a.json"), format!("{}{long}{}", line(1), line(2))).unwrap();
        let mut f = follower(&d, None, false);
        let p = f.poll(1 << 20).unwrap();
        assert_eq!(messages(&p), vec!["m1", "m2"]);
        assert_eq!(p.problems.iter().map(|(_, p)| *p).collect::<Vec<_>>(), vec![Problem::TooLong]);
    }

    #[test]
    fn start_at_end_skips_what_is_there_on_the_first_start_only() {
        let d = dir("end");
        std::fs::write(d.join("a.json"), format!("{}{}", line(1), line(2))).unwrap();
        let mut f = follower(&d, None, true);
        assert!(f.poll(1 << 20).unwrap().entries.is_empty());
        std::fs::OpenOptions::new().append(true).open(d.join("a.json")).unwrap().write_all(line(3).as_bytes()).unwrap();
        std::fs::write(d.join("b.json"), line(4)).unwrap();
        assert_eq!(messages(&f.poll(1 << 20).unwrap()), vec!["m3", "m4"]);
    }

    #[test]
    fn a_missing_directory_is_a_precise_error_and_reading_resumes_when_it_appears() {
        let d = dir("missing").join("not-yet");
        let mut f = follower(&d, None, false);
        let e = f.poll(1 << 20).unwrap_err();
        assert_eq!(e.to_string(), format!("log directory {}: does not exist", d.display()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.json"), line(1)).unwrap();
        assert_eq!(messages(&f.poll(1 << 20).unwrap()), vec!["m1"]);
    }

    #[test]
    fn the_budget_bounds_a_poll_and_the_rest_comes_next() {
        let d = dir("budget");
        let text: String = (0..3000).map(line).collect();
        std::fs::write(d.join("a.json"), text).unwrap();
        let mut f = follower(&d, None, false);
        let mut seen = 0;
        let mut polls = 0;
        loop {
            let p = f.poll(CHUNK as u64).unwrap();
            seen += p.entries.len();
            polls += 1;
            if !p.more {
                break;
            }
        }
        assert_eq!(seen, 3000);
        assert!(polls > 1);
    }
}
