//! What the parsers make of a log: entries in the servers' own terms,
//! before any mapping to records. Text here is raw (it is the server's);
//! the pipeline's sanitize rules see it before anything leaves.

/// One PostgreSQL log entry with its DETAIL/HINT/CONTEXT/STATEMENT parts
/// joined, from any of the three formats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PgEntry {
    /// When the server wrote it; `None` when its time could not be read
    /// (a zone abbreviation): the mapping uses the time it was read.
    pub time: Option<u64>,
    /// `ERROR`, `LOG`, `WARNING`, … as the server writes them (lc_messages
    /// = 'C').
    pub severity: String,
    pub sqlstate: Option<String>,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub context: Option<String>,
    /// The statement the entry is about (`STATEMENT:` / `statement`).
    pub statement: Option<String>,
    /// pg_stat_statements' queryid (`compute_query_id`); never 0.
    pub query_id: Option<String>,
    pub pid: Option<i64>,
    pub user: Option<String>,
    pub database: Option<String>,
    pub application: Option<String>,
    pub backend_type: Option<String>,
}

/// One entry of MySQL's / MariaDB's slow query log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlowEntry {
    pub time: Option<u64>,
    pub user: Option<String>,
    pub thread_id: Option<i64>,
    /// `# Schema:` (MariaDB) or the last `use db;`.
    pub database: Option<String>,
    pub query_time: f64,
    pub lock_time: f64,
    pub rows_sent: i64,
    pub rows_examined: i64,
    pub rows_affected: Option<i64>,
    pub statement: String,
}

/// One entry of MySQL's / MariaDB's error log. Only its first line is
/// kept: what follows (InnoDB monitor dumps, deadlock reports, stack
/// traces) carries statements and data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MyErrorEntry {
    pub time: Option<u64>,
    pub thread: Option<i64>,
    /// `ERROR`, `Warning`, `Note`, `System`.
    pub severity: String,
    /// MySQL 8's `MY-010068`.
    pub code: Option<String>,
    /// MySQL 8's `Server`, `InnoDB`, …
    pub subsystem: Option<String>,
    pub message: String,
    /// Lines after the first (dropped).
    pub continuation_lines: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Pg(PgEntry),
    Slow(SlowEntry),
    MyError(MyErrorEntry),
}

/// Why a line did not become (part of) an entry; counted per cause and
/// reported once per cause, never with the line's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Problem {
    /// Longer than `max_line`: cut there (an entry still comes out where
    /// the format allows).
    TooLong,
    /// Binary content (NUL bytes, not text).
    Garbage,
    /// Text that is not the declared format (a stderr line in a jsonlog
    /// file, a prefix that does not match `log_line_prefix`).
    Mismatch,
}

impl Problem {
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::TooLong => "line_too_long",
            Problem::Garbage => "binary_garbage",
            Problem::Mismatch => "format_mismatch",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Problem::TooLong => "a line longer than max_line was cut",
            Problem::Garbage => "binary content that is not a log line was skipped",
            Problem::Mismatch => "lines that are not in the declared format were skipped",
        }
    }
}

/// What parsing some lines produced.
#[derive(Debug, Default)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
}

/// Whether a line is binary rather than text: NUL bytes, or mostly
/// control characters.
pub fn is_garbage(line: &[u8]) -> bool {
    if memchr::memchr(0, line).is_some() {
        return true;
    }
    let control = line.iter().filter(|b| **b < 0x20 && **b != b'\t' && **b != b'\r').count();
    control * 10 > line.len().max(1)
}
