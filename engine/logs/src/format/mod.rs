//! One parser per log format. A parser is fed a file's complete lines in
//! order and hands back entries; an entry that may still grow (the
//! DETAIL and STATEMENT lines of a stderr entry, the statement of a slow
//! log entry, a quoted CSV field with newlines) stays pending until the
//! next entry starts or nothing has been appended for one whole poll
//! (servers write an entry at once, so a quiet poll means it is whole).
//! [`Parser::pending_from`] tells the follower where the first unfinished
//! entry starts: the offset it checkpoints, so a restart reads that entry
//! again instead of losing or repeating it.

pub mod csvlog;
pub mod jsonlog;
pub mod mysql_error;
pub mod mysql_slow;
pub mod stderr;

use crate::entry::{Entry, Parsed};

pub trait Parser: Send {
    /// One complete line (no newline) that starts at byte `at` of the
    /// file; `cut`: it was longer than `max_line` and this is its start.
    fn line(&mut self, line: &[u8], at: u64, cut: bool, out: &mut Parsed);

    /// The file has no more complete lines for now. A pending entry that
    /// got nothing since the previous call is complete.
    fn idle(&mut self, out: &mut Parsed);

    /// The file is done (rotated away and quiet, or the source stops for
    /// good): whatever is pending is complete.
    fn finish(&mut self, out: &mut Parsed);

    /// Where the oldest entry not yet handed out starts.
    fn pending_from(&self) -> Option<u64>;
}

/// An entry being assembled from several lines, and whether a whole
/// poll has passed without it growing.
pub struct Pending<T> {
    pub entry: T,
    pub from: u64,
    pub quiet: bool,
    /// Bytes held, bounded so one endless entry cannot take the memory.
    pub bytes: usize,
}

impl<T> Pending<T> {
    pub fn new(entry: T, from: u64, bytes: usize) -> Pending<T> {
        Pending { entry, from, quiet: false, bytes }
    }
}

/// `idle` for a parser holding one `Option<Pending<T>>`.
pub fn idle_pending<T>(pending: &mut Option<Pending<T>>, emit: impl FnOnce(T) -> Option<Entry>, out: &mut Parsed) {
    match pending {
        Some(p) if p.quiet => {
            if let Some(p) = pending.take() {
                if let Some(e) = emit(p.entry) {
                    out.entries.push(e);
                }
            }
        }
        Some(p) => p.quiet = true,
        None => {}
    }
}

/// Text of a line: UTF-8 as is, anything else (a LATIN1 database's
/// message) with replacement characters.
pub fn text(line: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(line)
}
