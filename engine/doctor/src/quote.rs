//! Names and values written into the SQL a fix prints, quoted as each
//! server's parser wants them: a role or database name is whatever the
//! DSN says, and must reach the DBA's psql or mysql as that name.

/// A PostgreSQL identifier: bare when it is a plain lower-case name,
/// else double-quoted with `"` doubled.
pub fn pg_ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !PG_RESERVED.contains(&name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// A `[schema.]name` as a setting writes it (`otel.explain_statement`),
/// each part quoted.
pub fn pg_qualified(name: &str) -> String {
    match name.split_once('.') {
        Some((schema, object)) => format!("{}.{}", pg_ident(schema), pg_ident(object)),
        None => pg_ident(name),
    }
}

/// A PostgreSQL string literal.
pub fn pg_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A list setting's value for `ALTER SYSTEM` (`'a', 'b'`: one literal
/// per element; a single `'a, b'` would be one library named "a, b").
pub fn pg_list(list: &str) -> String {
    list.split(',').map(str::trim).filter(|e| !e.is_empty()).map(pg_literal).collect::<Vec<_>>().join(", ")
}

/// A MySQL string literal (also an account's user or host part).
pub fn my_literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// A MySQL account, `'user'@'host'`, from `CURRENT_USER()`'s `user@host`
/// (the host after the last `@`; a user name may hold one).
pub fn my_account(current_user: &str) -> String {
    let (user, host) = current_user.rsplit_once('@').unwrap_or((current_user, "%"));
    format!("{}@{}", my_literal(user), my_literal(host))
}

/// Words PostgreSQL will not take as a bare role or database name.
const PG_RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "public",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "system_user",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reach_the_server_as_written() {
        assert_eq!(pg_ident("dbintel_monitor"), "dbintel_monitor");
        assert_eq!(pg_ident("Reporting"), "\"Reporting\"");
        assert_eq!(pg_ident("we\"ird db"), "\"we\"\"ird db\"");
        assert_eq!(pg_ident("user"), "\"user\"");
        assert_eq!(pg_ident("1st"), "\"1st\"");
        assert_eq!(pg_qualified("otel.explain_statement"), "otel.explain_statement");
        assert_eq!(pg_qualified("Ops.explain"), "\"Ops\".explain");
        assert_eq!(pg_literal("it's"), "'it''s'");
        assert_eq!(pg_list("pg_stat_statements, auto_explain"), "'pg_stat_statements', 'auto_explain'");
        assert_eq!(my_account("mon@%"), "'mon'@'%'");
        assert_eq!(my_account("o'brien@10.0.0.%"), "'o''brien'@'10.0.0.%'");
        assert_eq!(my_account("a@b@localhost"), "'a@b'@'localhost'");
    }
}
