//! The registry of diagnostic codes.
//!
//! A code names one kind of mistake forever: never reuse or renumber a code
//! that has appeared in a release. Retire a code by leaving its line here with
//! a `// retired` comment. Hundreds group the codes: E1xx reading and syntax,
//! E2xx functions and expressions, E3xx settings, E4xx the pipeline graph,
//! E5xx tests; W-codes are warnings.

use crate::diagnostic::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code {
    pub id: &'static str,
    pub severity: Severity,
}

const fn error(id: &'static str) -> Code {
    Code { id, severity: Severity::Error }
}
const fn warning(id: &'static str) -> Code {
    Code { id, severity: Severity::Warning }
}

// reading and syntax
pub const UNREADABLE_FILE: Code = error("E100");
pub const INVALID_UTF8: Code = error("E101");
pub const SYNTAX: Code = error("E102");
pub const TOO_DEEP: Code = error("E103");
pub const FILE_TOO_LARGE: Code = error("E104");
pub const EMPTY_FILE: Code = error("E105");
pub const USE_CYCLE: Code = error("E106");
pub const BAD_NUMBER: Code = error("E107");
pub const BAD_ESCAPE: Code = error("E108");

// functions and expressions
pub const UNKNOWN_FUNCTION: Code = error("E200");
pub const ARITY: Code = error("E201");
pub const ARG_TYPE: Code = error("E202");
pub const BAD_REGEX: Code = error("E203");
pub const UNKNOWN_PATH: Code = error("E204");
pub const PATH_CONTEXT: Code = error("E205");
pub const CONVERTER_AS_STATEMENT: Code = error("E206");
pub const EDITOR_AS_VALUE: Code = error("E207");
pub const NOT_A_CONDITION: Code = error("E208");
pub const UNKNOWN_NAMED_ARG: Code = error("E209");
pub const UNIT_IN_EXPRESSION: Code = error("E210");
pub const MIXED_CONTEXTS: Code = error("E211");
pub const OPERAND_TYPE: Code = error("E212");
/// A literal argument the function refuses (a negative limit, a bad format).
pub const ARG_VALUE: Code = error("E213");

// settings
pub const UNKNOWN_SETTING: Code = error("E300");
pub const DUPLICATE_SETTING: Code = error("E301");
pub const MISSING_SETTING: Code = error("E302");
pub const SETTING_TYPE: Code = error("E303");
pub const BAD_DURATION: Code = error("E304");
pub const BAD_PERCENTAGE: Code = error("E305");
pub const BAD_SIZE: Code = error("E306");
pub const INLINE_SECRET: Code = error("E307");
pub const UNKNOWN_KIND: Code = error("E308");
pub const UNKNOWN_COLLECTOR: Code = error("E309");
pub const DUPLICATE_COLLECTOR: Code = error("E310");
pub const OUT_OF_RANGE: Code = error("E311");
pub const ENV_NOT_SET: Code = error("E312");
pub const CLUSTER_TIMING: Code = error("E313");
/// Two sinks naming one disk queue directory.
pub const SHARED_QUEUE_DIR: Code = error("E320");
/// An endpoint URL with `user:password@` in it.
pub const ENDPOINT_CREDENTIALS: Code = error("E321");

// the pipeline graph
pub const DUPLICATE_NODE: Code = error("E400");
pub const UNDEFINED_NODE: Code = error("E401");
pub const CYCLE: Code = error("E402");
pub const SIGNAL_MISMATCH: Code = error("E403");
pub const BAD_PIPELINE_SHAPE: Code = error("E404");
pub const DUPLICATE_PIPELINE: Code = error("E405");
pub const PORT_ON_NON_SOURCE: Code = error("E406");
pub const RESERVED_NAME: Code = error("E407");

// tests
pub const TEST_TARGET: Code = error("E500");
pub const DUPLICATE_TEST: Code = error("E501");

// deployment
pub const DUPLICATE_CLUSTER: Code = error("E600");

// 7xx: targets as data
/// A targets file that cannot be read, is not YAML, or lists nothing.
pub const TARGETS_FILE: Code = error("E700");
pub const DUPLICATE_TARGET: Code = error("E701");
pub const UNKNOWN_TARGET_KEY: Code = error("E702");
/// A source with both `dsn` and `targets`, or neither.
pub const TARGETS_OR_DSN: Code = error("E703");

// warnings
pub const UNUSED_NODE: Code = warning("W400");
pub const UNSANITIZED_TEXT: Code = warning("W402");
pub const ENV_NOT_SET_WARNING: Code = warning("W312");
// W401 was never used; do not reuse it.

// log sources (appended; see dsl/src/check.rs `log_sources`)
/// A log source's `server` names no database source of the kind whose
/// logs it reads.
pub const LOG_SERVER: Code = error("E314");
/// A log source's `target` is missing (its server source has several) or
/// names none of them.
pub const LOG_TARGET: Code = error("E315");
/// A `log_line_prefix` dbintel cannot read lines by (an unknown escape).
pub const LOG_LINE_PREFIX: Code = error("E316");
/// A `files` glob of a log source that is not a plain file-name pattern.
pub const LOG_FILES: Code = error("E317");
