//! The function registry: every function the language knows, by family.

mod argument;
mod convert_hash;
mod convert_pii;
mod convert_plan;
mod convert_sql;
mod convert_strings;
mod convert_time;
mod convert_types;
mod edit_fields;
mod edit_replace;
pub mod ottl_catalogue;

pub use convert_hash::{fingerprint, fnv1a};
pub use convert_types::{from_json, to_json};
pub use edit_fields::truncate_chars;

use crate::signature::FunctionSig;

const FAMILIES: &[&[FunctionSig]] = &[
    edit_fields::SIGNATURES,
    edit_replace::SIGNATURES,
    convert_types::SIGNATURES,
    convert_strings::SIGNATURES,
    convert_hash::SIGNATURES,
    convert_plan::SIGNATURES,
    convert_sql::SIGNATURES,
    convert_pii::SIGNATURES,
    convert_time::SIGNATURES,
];

/// Every function, family by family.
pub fn all() -> impl Iterator<Item = &'static FunctionSig> {
    FAMILIES.iter().flat_map(|family| family.iter())
}

/// The function called `name` (exact, case-sensitive: `set` is an editor,
/// `Set` would be a converter and does not exist).
pub fn lookup(name: &str) -> Option<&'static FunctionSig> {
    all().find(|sig| sig.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::FunctionKind;

    #[test]
    fn names_are_unique_and_cased_by_kind() {
        let mut seen = std::collections::HashSet::new();
        for sig in all() {
            assert!(seen.insert(sig.name), "duplicate function {}", sig.name);
            let first = sig.name.chars().next().unwrap_or('x');
            match sig.kind {
                FunctionKind::Editor => assert!(first.is_ascii_lowercase(), "{}", sig.name),
                FunctionKind::Converter => assert!(first.is_ascii_uppercase(), "{}", sig.name),
            }
            // optional parameters only at the end, as OTTL requires
            let first_optional = sig.params.iter().position(|p| p.optional);
            if let Some(i) = first_optional {
                assert!(sig.params[i..].iter().all(|p| p.optional), "{}", sig.name);
            }
        }
    }

    #[test]
    fn lookup_is_case_sensitive() {
        assert!(lookup("set").is_some());
        assert!(lookup("Set").is_none());
        assert!(lookup("NormalizeSQL").is_some());
    }
}
