//! Hashing converters, for pseudonymising values and fingerprinting queries.

use sha1::Digest as _;

use crate::signature::{Compiled, Example, FunctionKind::Converter, FunctionSig, Param, ParamType::Any, ReturnType};
use crate::value::Value;

const VALUE: &[Param] = &[Param::required("value", Any)];

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// 64-bit FNV-1a.
///
/// ```
/// assert_eq!(dbintel_stdlib::functions::fnv1a(b""), 0xcbf29ce484222325);
/// assert_eq!(dbintel_stdlib::functions::fnv1a(b"a"), 0xaf63dc4c8601ec8c);
/// ```
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash
}

/// A stable identifier for a query: FNV-1a of its normalized, lowercased
/// text, as 16 hex digits. Two texts differing only in literals, comments
/// or spacing share a fingerprint.
///
/// ```
/// use dbintel_stdlib::functions::fingerprint;
/// assert_eq!(fingerprint("SELECT * FROM t WHERE id = 1"), fingerprint("select *  from t where id = 42 -- x"));
/// assert_ne!(fingerprint("select a from t"), fingerprint("select b from t"));
/// ```
pub fn fingerprint(text: &str) -> Option<String> {
    let normalized = crate::sql::normalize(text, crate::sql::Dialect::Postgres).ok()?;
    Some(format!("{:016x}", fnv1a(normalized.to_lowercase().as_bytes())))
}

pub const SIGNATURES: &[FunctionSig] = &[
    FunctionSig {
        name: "SHA256",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::String,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], SHA256(\"abc\"))",
            output: "{\"out\": \"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}",
        }],
        summary: "Hex SHA-256 of the value's string form.",
        build: |_| Ok(Compiled::Converter(Box::new(|args| Ok(Value::Str(hex(&sha2::Sha256::digest(args[0].to_string().as_bytes()))))))),
    },
    FunctionSig {
        name: "SHA512",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::String,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], SHA512(\"abc\"))",
            output: "{\"out\": \"ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f\"}",
        }],
        summary: "Hex SHA-512 of the value's string form.",
        build: |_| Ok(Compiled::Converter(Box::new(|args| Ok(Value::Str(hex(&sha2::Sha512::digest(args[0].to_string().as_bytes()))))))),
    },
    FunctionSig {
        name: "SHA1",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::String,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], SHA1(\"abc\"))",
            output: "{\"out\": \"a9993e364706816aba3e25717850c26c9cd0d89d\"}",
        }],
        summary: "Hex SHA-1 of the value's string form.",
        build: |_| Ok(Compiled::Converter(Box::new(|args| Ok(Value::Str(hex(&sha1::Sha1::digest(args[0].to_string().as_bytes()))))))),
    },
    FunctionSig {
        name: "FNV",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Int,
        examples: &[Example { input: "{}", statement: "set(attributes[\"out\"], FNV(\"a\"))", output: "{\"out\": -5808556873153909620}" }],
        summary: "64-bit FNV-1a hash of the value's string form.",
        build: |_| Ok(Compiled::Converter(Box::new(|args| Ok(Value::Int(fnv1a(args[0].to_string().as_bytes()) as i64))))),
    },
    FunctionSig {
        name: "Fingerprint",
        kind: Converter,
        params: &[Param::required("text", crate::ParamType::String)],
        returns: ReturnType::String,
        examples: &[Example {
            input: "{\"q\": \"select * from t where id = 7\"}",
            statement: "set(attributes[\"out\"], Fingerprint(attributes[\"q\"]) == Fingerprint(\"SELECT * FROM t WHERE id = 8\"))",
            output: "{\"q\": \"select * from t where id = 7\", \"out\": true}",
        }],
        summary: "Stable hash of the normalized SQL text.",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| match args[0] {
                Value::Str(s) => Ok(fingerprint(s).map(Value::Str).unwrap_or(Value::Nil)),
                _ => Ok(Value::Nil),
            })))
        },
    },
];
