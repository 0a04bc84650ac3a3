//! The function registry: every function the language knows, by family.

mod argument;
mod convert_apm;
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
    convert_apm::SIGNATURES,
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
    use crate::signature::{Compiled, FnError, FunctionKind};
    use crate::Value;

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

    /// Runs an editor the way the engine does when every argument is only
    /// known at run time (nothing prepared from literals).
    fn edit(name: &str, target: Value, args: &[Value]) -> Result<Value, FnError> {
        let sig = lookup(name).expect("a function");
        let Ok(Compiled::Editor(editor)) = (sig.build)(&vec![None; sig.params.len()]) else { panic!("{name} builds") };
        let nil = Value::Nil;
        let mut all: Vec<&Value> = vec![&nil];
        all.extend(args.iter());
        all.resize(sig.params.len(), &nil);
        let mut target = target;
        editor(&mut target, &all).map(|()| target)
    }

    fn map(entries: &[(&str, Value)]) -> Value {
        let mut m = crate::Map::new();
        for (k, v) in entries {
            m.insert(*k, v.clone());
        }
        Value::Map(m)
    }

    fn message(result: Result<Value, FnError>) -> std::string::String {
        result.expect_err("an error").to_string()
    }

    #[test]
    fn run_time_arguments_get_the_same_checks_as_literals() {
        let text = map(&[("a", Value::from("abcdef"))]);
        assert!(message(edit("truncate_all", text.clone(), &[Value::Int(-1)])).contains("cannot be negative"));
        assert!(
            message(edit("truncate_all", text.clone(), &[Value::Int(2), Value::Nil, Value::from("...")])).contains("longer than the limit")
        );
        assert!(message(edit("truncate_all", text.clone(), &[Value::Int(2), Value::from("yes")])).contains("utf8_safe"));
        assert_eq!(
            edit("truncate_all", text.clone(), &[Value::Int(5), Value::Bool(false), Value::from("~")]),
            Ok(map(&[("a", Value::from("abcd~"))]))
        );
        let three = map(&[("a", Value::Int(1)), ("b", Value::Int(2)), ("c", Value::Int(3))]);
        assert!(
            message(edit("limit", three.clone(), &[Value::Int(1), Value::List(vec!["a".into(), "b".into()])])).contains("priority keys")
        );
        assert!(message(edit("merge_maps", three.clone(), &[Value::Nil, Value::from("upsert")])).contains("must be a map"));
        assert!(message(edit("merge_maps", three, &[map(&[]), Value::from("replace")])).contains("insert, update or upsert"));
    }

    #[test]
    fn a_replace_function_that_fails_or_gives_no_string_fails_the_statement() {
        let q = Value::from("user=bob");
        // FNV gives an integer (the checker refuses it when written literally)
        let sig = lookup("replace_pattern").expect("replace_pattern");
        let literals = [None, Some(Value::from("user=(\\w+)")), None, Some(Value::from("FNV")), None];
        let Ok(Compiled::Editor(editor)) = (sig.build)(&literals) else { panic!("builds") };
        let (nil, re, rep, f) = (Value::Nil, Value::from("user=(\\w+)"), Value::from("$1"), Value::from("FNV"));
        let mut target = q.clone();
        let err = editor(&mut target, &[&nil, &re, &rep, &f, &nil]).expect_err("FNV is not a string");
        assert!(err.to_string().contains("must be a string"), "{err}");
        assert_eq!(target, q, "nothing written on failure");
        // a format only known at run time is checked at run time
        let literals = [None, Some(re.clone()), None, Some(Value::from("ToUpperCase")), None];
        let Ok(Compiled::Editor(editor)) = (sig.build)(&literals) else { panic!("builds") };
        let (f, bad, good) = (Value::from("ToUpperCase"), Value::from("%d"), Value::from("<%s>"));
        let mut target = q.clone();
        assert!(editor(&mut target, &[&nil, &re, &rep, &f, &bad]).expect_err("bad format").to_string().contains("exactly one %s"));
        editor(&mut target, &[&nil, &re, &rep, &f, &good]).expect("good format");
        assert_eq!(target, Value::from("<BOB>"));
    }

    #[test]
    fn named_arguments_match_snake_or_camel_case() {
        let sig = lookup("replace_pattern").expect("replace_pattern");
        assert_eq!(sig.param_index("replacement_format"), Some(4));
        assert_eq!(sig.param_index("replacementFormat"), Some(4));
        assert_eq!(lookup("truncate_all").and_then(|s| s.param_index("utf8Safe")), Some(2));
        assert_eq!(sig.param_index("format"), None);
    }

    #[test]
    fn lookup_is_case_sensitive() {
        assert!(lookup("set").is_some());
        assert!(lookup("Set").is_none());
        assert!(lookup("NormalizeSQL").is_some());
    }
}
