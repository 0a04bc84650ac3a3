//! May a captured statement text be handed to EXPLAIN?
//!
//! Texts come from `pg_stat_statements` and `performance_schema`: anyone
//! who can connect wrote them. EXPLAIN (never ANALYZE) still plans the
//! statement, and planning evaluates things: PostgreSQL folds immutable
//! and estimates stable function calls, MySQL runs constant subqueries and
//! functions while optimizing, and on PostgreSQL ≤ 15 the collector
//! `PREPARE`s the text with one `NULL` per parameter. So the decision is
//! made from the lexer's tokens (comments stripped, never substrings) and
//! only a plain read passes:
//!
//! - at most [`MAX_EXPLAIN_BYTES`] and [`MAX_EXPLAIN_PARAMETERS`];
//! - read the same under every server setting, not cut off;
//! - no executable comment or optimizer hint;
//! - `SELECT` or `WITH … SELECT`, one statement;
//! - no writing keyword, no `INTO`, no locking clause, no `:=`;
//! - every function call a pure built-in from the allow-list (qualified
//!   only by `pg_catalog`);
//! - MySQL: no subquery (it may evaluate one while optimizing), no server
//!   catalog, no `?` placeholder.
//!
//! What passes is rebuilt from the tokens with every comment replaced by a
//! space, so the server sees exactly what was checked.
//!
//! Left to the server's privileges: a user function overloading a
//! built-in's name for a user type, operators backed by user functions,
//! views that call functions. The collector's read-only, least-privilege
//! session and statement timeout bound what those can do.

use super::keywords::in_sorted;
use super::lexer::{Kind, Token};
use super::reading::redact;
use super::Dialect;

/// Texts longer than this are not explained.
pub const MAX_EXPLAIN_BYTES: usize = 16 * 1024;
/// Texts with more `$N` parameters than this are not explained (PREPARE
/// on PostgreSQL ≤ 15 gets one NULL per parameter).
pub const MAX_EXPLAIN_PARAMETERS: u64 = 1000;

/// A text that may be explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explainable {
    /// The text to explain: the tokens that were checked, comments
    /// replaced by spaces.
    pub text: String,
    /// The highest `$N` (PostgreSQL), counted from tokens.
    pub parameters: usize,
}

/// Why a text is not explained. No variant carries any part of the text
/// but a function's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `"x".repeat(20_000)`
    #[error("the text is {0} bytes, over the {MAX_EXPLAIN_BYTES}-byte limit")]
    TooLong(usize),
    /// `SELECT 'a\' …` (where the string ends depends on a server setting),
    /// or a text whose dialect is not known
    #[error("the text reads differently under different server settings")]
    Ambiguous,
    /// `SELECT * FROM t WHERE a = 'ab` (texts are cut at a size limit)
    #[error("the text was cut off")]
    Truncated,
    /// `SELECT /*!50000 SLEEP(5) */ 1`, `SELECT /*+ SET_VAR(…) */ 1`
    #[error("the text has an executable comment or an optimizer hint")]
    ExecutableComment,
    /// `UPDATE t SET …`, `VACUUM`, `EXPLAIN ANALYZE …`, `TABLE t`
    #[error("not a SELECT or WITH … SELECT")]
    NotARead,
    /// `SELECT 1; DROP TABLE t`
    #[error("more than one statement")]
    SeveralStatements,
    /// `WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d`
    #[error("writes ({0})")]
    Writes(&'static str),
    /// `SELECT * INTO new_t FROM t`, `SELECT … INTO OUTFILE`
    #[error("SELECT … INTO")]
    Into,
    /// `SELECT … FOR UPDATE`, `LOCK IN SHARE MODE`
    #[error("a locking clause")]
    Locks,
    /// `SELECT @a := 1`
    #[error("assigns a variable")]
    Assignment,
    /// `SELECT pg_sleep(10)`, `SELECT SLEEP/**/(5)`
    #[error("calls {0}, which is not on the allow-list of pure built-ins")]
    Function(String),
    /// MySQL: `SELECT * FROM t WHERE id = (SELECT …)`, `FROM (SELECT …) d`
    #[error("a subquery, which MySQL may evaluate while optimizing")]
    Subquery,
    /// MySQL: `SELECT * FROM performance_schema.threads`
    #[error("reads a server catalog")]
    Catalog,
    /// MySQL: `SELECT * FROM t WHERE id = ?`
    #[error("has placeholders, which EXPLAIN cannot plan")]
    Placeholders,
    /// `SELECT $1 /* … */ WHERE a = $99999999`
    #[error("{0} parameters, over the limit of {MAX_EXPLAIN_PARAMETERS}")]
    TooManyParameters(u64),
}

impl Refusal {
    /// A short stable name, for counters.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::TooLong(_) => "too_long",
            Refusal::Ambiguous => "ambiguous",
            Refusal::Truncated => "truncated",
            Refusal::ExecutableComment => "executable_comment",
            Refusal::NotARead => "not_a_read",
            Refusal::SeveralStatements => "several_statements",
            Refusal::Writes(_) => "writes",
            Refusal::Into => "into",
            Refusal::Locks => "locks",
            Refusal::Assignment => "assignment",
            Refusal::Function(_) => "function",
            Refusal::Subquery => "subquery",
            Refusal::Catalog => "catalog",
            Refusal::Placeholders => "placeholders",
            Refusal::TooManyParameters(_) => "too_many_parameters",
        }
    }
}

/// Keywords that write or act, wherever they appear.
/// (`REPLACE` and `TRUNCATE` are also pure functions, and as statements
/// they do not start with SELECT.)
const WRITES: &[&str] =
    &["alter", "call", "copy", "create", "delete", "do", "drop", "grant", "handler", "insert", "merge", "revoke", "update"];

/// Words followed by `(` that are not function calls.
const STRUCTURAL: &[&str] = &[
    "all",
    "and",
    "any",
    "array",
    "as",
    "between",
    "by",
    "case",
    "cross",
    "distinct",
    "else",
    "escape",
    "except",
    "exists",
    "filter",
    "force",
    "from",
    "group",
    "having",
    "ignore",
    "ilike",
    "in",
    "index",
    "inner",
    "intersect",
    "interval",
    "is",
    "join",
    "key",
    "lateral",
    "like",
    "limit",
    "materialized",
    "not",
    "of",
    "offset",
    "on",
    "or",
    "order",
    "outer",
    "over",
    "partition",
    "recursive",
    "regexp",
    "rlike",
    "row",
    "select",
    "similar",
    "some",
    "then",
    "union",
    "use",
    "using",
    "values",
    "when",
    "where",
    "window",
    "with",
    "within",
    "xor",
];

/// Pure built-ins of either dialect: no side effect, nothing slow, no
/// data outside the statement's own tables.
const PURE_FUNCTIONS: &[&str] = &[
    "abs",
    "adddate",
    "age",
    "array_agg",
    "array_length",
    "array_position",
    "array_to_string",
    "ascii",
    "avg",
    "bigint",
    "bit_and",
    "bit_length",
    "bit_or",
    "bit_xor",
    "bool_and",
    "bool_or",
    "btrim",
    "cardinality",
    "cast",
    "ceil",
    "ceiling",
    "char",
    "char_length",
    "character_length",
    "coalesce",
    "concat",
    "concat_ws",
    "convert",
    "count",
    "cume_dist",
    "curdate",
    "current_date",
    "current_time",
    "current_timestamp",
    "curtime",
    "date",
    "date_add",
    "date_format",
    "date_part",
    "date_sub",
    "date_trunc",
    "datediff",
    "datetime",
    "day",
    "dayofmonth",
    "dayofweek",
    "dayofyear",
    "decimal",
    "dense_rank",
    "double",
    "every",
    "exp",
    "extract",
    "first_value",
    "float",
    "floor",
    "from_unixtime",
    "greatest",
    "group_concat",
    "hour",
    "if",
    "ifnull",
    "initcap",
    "instr",
    "int",
    "integer",
    "isnull",
    "json_agg",
    "json_array_length",
    "json_build_object",
    "json_extract",
    "json_extract_path",
    "json_extract_path_text",
    "json_length",
    "json_object_agg",
    "json_unquote",
    "json_value",
    "jsonb_agg",
    "jsonb_array_length",
    "jsonb_build_object",
    "jsonb_extract_path",
    "jsonb_extract_path_text",
    "jsonb_object_agg",
    "lag",
    "last_value",
    "lcase",
    "lead",
    "least",
    "left",
    "length",
    "ln",
    "localtime",
    "localtimestamp",
    "locate",
    "log",
    "log10",
    "log2",
    "lower",
    "lpad",
    "ltrim",
    "max",
    "mid",
    "min",
    "minute",
    "mod",
    "month",
    "now",
    "nth_value",
    "ntile",
    "nullif",
    "numeric",
    "octet_length",
    "percent_rank",
    "percentile_cont",
    "percentile_disc",
    "position",
    "pow",
    "power",
    "quarter",
    "rank",
    "repeat",
    "replace",
    "reverse",
    "right",
    "round",
    "row_number",
    "rpad",
    "rtrim",
    "second",
    "sign",
    "split_part",
    "sqrt",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "str_to_date",
    "string_agg",
    "strpos",
    "substr",
    "substring",
    "sum",
    "time",
    "timestamp",
    "timestampadd",
    "timestampdiff",
    "to_char",
    "to_date",
    "to_number",
    "to_timestamp",
    "translate",
    "trim",
    "trunc",
    "truncate",
    "ucase",
    "unix_timestamp",
    "upper",
    "var_pop",
    "var_samp",
    "varchar",
    "variance",
    "week",
    "year",
];

/// Decides whether `text` may be explained on a `dialect` server.
///
/// ```
/// use dbintel_stdlib::sql::{explainable, Dialect, Refusal};
/// let ok = explainable("SELECT id FROM t /* app */ WHERE a = $1", Dialect::Postgres).unwrap();
/// assert_eq!((ok.text.as_str(), ok.parameters), ("SELECT id FROM t   WHERE a = $1", 1));
/// // a comment's $N counts for nothing
/// assert_eq!(explainable("SELECT 1 /* $99999999999 */", Dialect::Postgres).unwrap().parameters, 0);
/// assert_eq!(explainable("SELECT SLEEP/**/(5)", Dialect::MySql), Err(Refusal::Function("sleep".into())));
/// ```
pub fn explainable(text: &str, dialect: Dialect) -> Result<Explainable, Refusal> {
    check_explainable(text, dialect, Scope::Reads)
}

/// What a statement handed to the server's EXPLAIN helper (a `SECURITY
/// DEFINER` function a DBA installed, `explain_function_name`) may be:
/// what [`explainable`] allows, and also plain DML — `INSERT`, `UPDATE`,
/// `DELETE`, `MERGE`, `SELECT … FOR UPDATE` — which the helper plans
/// without running (PREPARE and a generic EXPLAIN in a read-only
/// transaction). Everything else stays refused: several statements, DDL,
/// `CALL`, `COPY`, `DO`, `SELECT … INTO`, executable comments, functions
/// off the allow-list (planning folds them). PostgreSQL only.
///
/// ```
/// use dbintel_stdlib::sql::{explainable_by_helper, Dialect, Refusal};
/// assert!(explainable_by_helper("UPDATE orders SET total = $1 WHERE id = $2", Dialect::Postgres).is_ok());
/// assert!(explainable_by_helper("SELECT * FROM t WHERE id = $1 FOR UPDATE", Dialect::Postgres).is_ok());
/// assert_eq!(explainable_by_helper("DROP TABLE t", Dialect::Postgres), Err(Refusal::NotARead));
/// assert_eq!(explainable_by_helper("SELECT * INTO t2 FROM t", Dialect::Postgres), Err(Refusal::Into));
/// assert!(explainable_by_helper("DELETE FROM t; DROP TABLE t", Dialect::Postgres).is_err());
/// ```
pub fn explainable_by_helper(text: &str, dialect: Dialect) -> Result<Explainable, Refusal> {
    if dialect != Dialect::Postgres {
        return Err(Refusal::Ambiguous);
    }
    check_explainable(text, dialect, Scope::Dml)
}

/// What a checked text may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// A plain read (the collector's own EXPLAIN).
    Reads,
    /// Plain DML too (the server's SECURITY DEFINER helper).
    Dml,
}

fn check_explainable(text: &str, dialect: Dialect, scope: Scope) -> Result<Explainable, Refusal> {
    if text.len() > MAX_EXPLAIN_BYTES {
        return Err(Refusal::TooLong(text.len()));
    }
    if dialect == Dialect::Unknown {
        return Err(Refusal::Ambiguous);
    }
    let redacted = redact(text, dialect);
    let lexed = &redacted.lexed;
    if !redacted.agreed || lexed.ambiguous {
        return Err(Refusal::Ambiguous);
    }
    if lexed.unterminated || (dialect == Dialect::MySql && text.trim_end().ends_with("...")) {
        return Err(Refusal::Truncated);
    }
    if lexed.executable {
        return Err(Refusal::ExecutableComment);
    }
    let parameters = Checker { text, tokens: &lexed.tokens, mysql: dialect == Dialect::MySql, scope }.check()?;
    Ok(Explainable { text: without_comments(text, &lexed.hidden), parameters })
}

struct Checker<'a> {
    text: &'a str,
    tokens: &'a [Token],
    mysql: bool,
    scope: Scope,
}

/// The DML statements the helper may plan.
const DML: &[&str] = &["delete", "insert", "merge", "update"];

impl Checker<'_> {
    fn word(&self, i: usize) -> Option<String> {
        let t = self.tokens.get(i)?;
        (t.kind == Kind::Word).then(|| t.text(self.text).to_ascii_lowercase())
    }

    fn is_punct(&self, i: usize, p: &str) -> bool {
        self.tokens.get(i).is_some_and(|t| t.kind == Kind::Punct && t.text(self.text) == p)
    }

    /// Two punctuation characters written together (`::`, `:=`).
    fn is_pair(&self, i: usize, a: &str, b: &str) -> bool {
        self.is_punct(i, a) && self.is_punct(i + 1, b) && !self.tokens[i + 1].space_before
    }

    fn starts_query(&self, i: usize) -> bool {
        self.word(i).is_some_and(|w| matches!(w.as_str(), "select" | "with" | "values" | "table"))
    }

    /// The parameter count, or why not.
    fn check(&self) -> Result<usize, Refusal> {
        let first = self.tokens.iter().position(|t| !(t.kind == Kind::Punct && t.text(self.text) == "("));
        let first_word = first.and_then(|i| self.word(i)).unwrap_or_default();
        let dml = self.scope == Scope::Dml && DML.contains(&first_word.as_str());
        if !(first_word == "select" || first_word == "with" || dml) {
            return Err(Refusal::NotARead);
        }
        let mut parameters: u64 = 0;
        for (i, token) in self.tokens.iter().enumerate() {
            match token.kind {
                Kind::Punct if self.is_punct(i, ";") && self.tokens[i + 1..].iter().any(|t| t.text(self.text) != ";") => {
                    return Err(Refusal::SeveralStatements)
                }
                Kind::Punct if self.is_pair(i, ":", "=") => return Err(Refusal::Assignment),
                Kind::Punct if self.mysql && self.is_punct(i, "(") && self.starts_query(i + 1) => return Err(Refusal::Subquery),
                Kind::Param if self.mysql => return Err(Refusal::Placeholders),
                Kind::Param => {
                    let digits: String = token.text(self.text)[1..].chars().filter(char::is_ascii_digit).collect();
                    let n = digits.parse::<u64>().unwrap_or(u64::MAX);
                    parameters = parameters.max(n);
                }
                Kind::Word => self.check_word(i)?,
                Kind::Quoted if self.mysql && is_catalog(unquote(token.text(self.text))) => return Err(Refusal::Catalog),
                Kind::Quoted if self.is_punct(i + 1, "(") => return Err(Refusal::Function(short(token.text(self.text)))),
                _ => {}
            }
        }
        if parameters > MAX_EXPLAIN_PARAMETERS {
            return Err(Refusal::TooManyParameters(parameters));
        }
        Ok(parameters as usize)
    }

    fn check_word(&self, i: usize) -> Result<(), Refusal> {
        let word = self.word(i).unwrap_or_default();
        let helper = self.scope == Scope::Dml;
        if let Some(w) = WRITES.iter().find(|w| **w == word) {
            // `FOR UPDATE` is a lock, not a write; the helper plans DML
            let lock = word == "update" && self.word(i.wrapping_sub(1)).as_deref() == Some("for");
            if !(lock || (helper && DML.contains(&word.as_str()))) {
                return Err(Refusal::Writes(w));
            }
        }
        // INSERT INTO / MERGE INTO name a table that exists; SELECT … INTO
        // would make one
        let dml_into = helper && i > 0 && self.word(i - 1).is_some_and(|w| w == "insert" || w == "merge");
        match word.as_str() {
            "into" if !dml_into => return Err(Refusal::Into),
            "lock" if !helper => return Err(Refusal::Locks),
            "for" if !helper && self.word(i + 1).is_some_and(|w| matches!(w.as_str(), "update" | "share" | "no" | "key")) => {
                return Err(Refusal::Locks)
            }
            _ => {}
        }
        if self.mysql && is_catalog(&word) {
            return Err(Refusal::Catalog);
        }
        if !self.is_punct(i + 1, "(") {
            return Ok(());
        }
        if i > 0 && self.is_punct(i - 1, ".") {
            // `schema.f(…)`: only pg_catalog's own functions are known
            let schema = i.checked_sub(2).and_then(|q| self.word(q)).unwrap_or_default();
            if self.mysql || schema != "pg_catalog" || !in_sorted(PURE_FUNCTIONS, &word) {
                return Err(Refusal::Function(short(&format!("{schema}.{word}"))));
            }
            return Ok(());
        }
        if self.is_call(i, &word) && !in_sorted(PURE_FUNCTIONS, &word) {
            return Err(Refusal::Function(short(&word)));
        }
        Ok(())
    }

    /// Whether the word at `i`, followed by `(`, calls a function.
    fn is_call(&self, i: usize, word: &str) -> bool {
        if in_sorted(STRUCTURAL, word) {
            return false;
        }
        // a type's modifier: `x::numeric(10, 2)`, `CAST(x AS varchar(10))`
        if (i >= 2 && self.is_pair(i - 2, ":", ":")) || (i >= 1 && self.word(i - 1).as_deref() == Some("as")) {
            return false;
        }
        // a CTE's column list: `WITH x (a, b) AS (…)`
        !self.column_list_before_as(i + 1)
    }

    fn column_list_before_as(&self, open: usize) -> bool {
        let mut depth = 0usize;
        for j in open..self.tokens.len() {
            if self.is_punct(j, "(") {
                depth += 1;
            } else if self.is_punct(j, ")") {
                depth -= 1;
                if depth == 0 {
                    // not `FROM f(x) AS (a int)`, a column definition list
                    return self.word(j + 1).as_deref() == Some("as")
                        && ((self.is_punct(j + 2, "(") && self.starts_query(j + 3))
                            || self.word(j + 2).is_some_and(|w| w == "materialized" || w == "not"));
                }
            }
        }
        false
    }
}

/// Whether `name` is one of MySQL's server catalogs.
fn is_catalog(name: &str) -> bool {
    ["information_schema", "performance_schema", "mysql", "sys"].iter().any(|c| c.eq_ignore_ascii_case(name))
}

fn unquote(quoted: &str) -> &str {
    quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default()
}

/// A function's name for a refusal: lowercase, at most 64 characters.
fn short(name: &str) -> String {
    name.chars().take(64).collect::<String>().to_lowercase()
}

/// `text` with every hidden range (comment) replaced by one space.
fn without_comments(text: &str, hidden: &[std::ops::Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for range in hidden {
        out.push_str(&text[at..range.start]);
        out.push(' ');
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(text: &str) -> Result<Explainable, Refusal> {
        explainable(text, Dialect::Postgres)
    }
    fn my(text: &str) -> Result<Explainable, Refusal> {
        explainable(text, Dialect::MySql)
    }

    #[test]
    fn lists_stay_sorted_for_binary_search() {
        for list in [WRITES, STRUCTURAL, PURE_FUNCTIONS] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{:?} is not sorted", list.windows(2).find(|w| w[0] >= w[1]));
        }
    }

    #[test]
    fn plain_reads_pass() {
        for ok in [
            "SELECT * FROM t WHERE id = $1",
            "  /* app */ select a, b from t",
            "-- c\nSELECT 1",
            "(SELECT 1) UNION (SELECT 2)",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "WITH x (a) AS MATERIALIZED (SELECT 1) SELECT * FROM x",
            "SELECT count(*), max(a), coalesce(b, $1) FROM t WHERE updated_at > now() - interval '1 day'",
            "SELECT a::numeric(10, 2), CAST(b AS varchar(10)), pg_catalog.lower(c) FROM t GROUP BY 1 ORDER BY 2 DESC LIMIT 10;",
            "SELECT * FROM t WHERE a IN (SELECT b FROM u) AND EXISTS (SELECT 1 FROM v)",
            "SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t",
            "SELECT * FROM t JOIN u USING (id) WHERE x = ANY ($1)",
        ] {
            assert!(pg(ok).is_ok(), "{ok}: {:?}", pg(ok));
        }
        assert!(my("SELECT id FROM t WHERE email = 'a@b.co' AND d > NOW() - INTERVAL 1 DAY").is_ok());
        assert!(my("SELECT IF(a > 1, 'x', 'y'), IFNULL(b, 0) FROM t FORCE INDEX (idx) WHERE c LIKE 'a%'").is_ok());
    }

    #[test]
    fn everything_else_is_refused_with_its_reason() {
        for (no, reason) in [
            ("UPDATE t SET a = $1", "not_a_read"),
            ("DELETE FROM t", "not_a_read"),
            ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "writes"),
            ("SELECT * INTO new_t FROM t", "into"),
            ("SELECT * FROM t FOR UPDATE", "locks"),
            ("SELECT * FROM t FOR NO KEY UPDATE", "locks"),
            ("SELECT * FROM t FOR KEY SHARE", "locks"),
            ("SELECT 1; DROP TABLE t", "several_statements"),
            ("VACUUM t", "not_a_read"),
            ("EXPLAIN ANALYZE SELECT 1", "not_a_read"),
            ("TABLE t", "not_a_read"),
            ("SELECT pg_sleep($1)", "function"),
            ("SELECT public.lower(a) FROM t", "function"),
            ("SELECT pg_catalog.pg_sleep(1)", "function"),
            ("SELECT * FROM t, evil() AS (a int)", "function"),
            ("SELECT \"pg_sleep\"(1)", "function"),
            ("SELECT nextval($1)", "function"),
            ("SELECT * FROM t WHERE a = 'cut", "truncated"),
            ("SELECT * FROM t WHERE a = 'x\\' OR pg_sleep(1) = ''", "ambiguous"),
        ] {
            let got = pg(no);
            assert_eq!(got.as_ref().map_err(Refusal::label), Err(reason), "{no}: {got:?}");
        }
    }

    #[test]
    fn mysql_reads_that_explain_could_evaluate_are_refused() {
        for (no, reason) in [
            ("SELECT SLEEP(5)", "function"),
            ("SELECT SLEEP/**/(5)", "function"),
            ("SELECT sleep\n(5)", "function"),
            ("SELECT BENCHMARK (1000000, MD5('x'))", "function"),
            ("SELECT /*!50000 SLEEP(5) */ 1", "executable_comment"),
            ("SELECT /*! SLEEP(5) */ 1", "executable_comment"),
            ("SELECT /*+ SET_VAR(sort_buffer_size = 16M) */ 1", "executable_comment"),
            ("SELECT * FROM t WHERE id = (SELECT MAX(id) FROM u)", "subquery"),
            ("SELECT * FROM (SELECT 1) AS d", "subquery"),
            ("SELECT * FROM t JOIN (SELECT 1 AS x) d ON 1", "subquery"),
            ("SELECT * FROM t WHERE a IN ( /* x */ SELECT b FROM u)", "subquery"),
            ("SELECT * FROM performance_schema.threads", "catalog"),
            ("SELECT * FROM `information_schema`.`tables`", "catalog"),
            ("SELECT * FROM t WHERE a = 'cut off...", "truncated"),
            ("SELECT * FROM t WHERE a = 1 ...", "truncated"),
            ("SELECT @a := 1", "assignment"),
            ("SELECT * FROM t WHERE id = ?", "placeholders"),
            ("SELECT * FROM t LOCK IN SHARE MODE", "locks"),
            ("SELECT * FROM t INTO OUTFILE '/tmp/x'", "into"),
            ("SELECT LOAD_FILE('/etc/passwd')", "function"),
            ("UPDATE t SET a = 1", "not_a_read"),
            // an `--` without a space is code on MySQL: no hiding a call behind it
            ("SELECT 1 --1\n, SLEEP(1)", "function"),
        ] {
            let got = my(no);
            assert_eq!(got.as_ref().map_err(Refusal::label), Err(reason), "{no}: {got:?}");
        }
    }

    #[test]
    fn placeholders_are_counted_from_tokens() {
        assert_eq!(pg("SELECT * FROM t WHERE a = $1 AND b IN ($2, $3) AND c = $12").map(|e| e.parameters), Ok(12));
        assert_eq!(pg("SELECT 1").map(|e| e.parameters), Ok(0));
        assert_eq!(pg("SELECT '$5', $$ $7 $$, \"$9\" -- $11\n FROM t").map(|e| e.parameters), Ok(0));
        assert_eq!(pg(&format!("SELECT ${}", MAX_EXPLAIN_PARAMETERS)).map(|e| e.parameters), Ok(1000));
        assert_eq!(pg("SELECT $1001"), Err(Refusal::TooManyParameters(1001)));
        assert_eq!(pg("SELECT $99999999999999999999999"), Err(Refusal::TooManyParameters(u64::MAX)));
    }

    /// Regression: on PostgreSQL ≤ 15 the collector PREPAREs with one NULL
    /// per parameter; `$N` counted anywhere in the text made one comment
    /// with a huge `$N` allocate terabytes and abort the process.
    #[test]
    fn a_comment_with_a_huge_parameter_number_counts_for_nothing() {
        let text = "SELECT a FROM t WHERE b = $1 /* $99999999999999 */ -- $88888888888\n";
        let ok = pg(text).expect("a plain read");
        assert_eq!(ok.parameters, 1);
        assert!(!ok.text.contains("9999") && !ok.text.contains("8888"), "comments are not sent: {}", ok.text);
    }

    #[test]
    fn the_explained_text_has_no_comments_and_oversized_texts_are_refused() {
        assert_eq!(pg("SELECT a /* x */ FROM t -- y\nWHERE b = $1").map(|e| e.text), Ok("SELECT a   FROM t  \nWHERE b = $1".into()));
        let big = format!("SELECT 1 {}", " ".repeat(MAX_EXPLAIN_BYTES));
        assert_eq!(pg(&big), Err(Refusal::TooLong(big.len())));
        assert_eq!(explainable("SELECT 1", Dialect::Unknown), Err(Refusal::Ambiguous));
    }
}
