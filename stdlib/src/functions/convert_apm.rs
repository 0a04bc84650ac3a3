//! APM correlation converters: New Relic's query hash and the tags of a
//! leading comment (see [`crate::sql::apm_hash`] and
//! [`crate::sql::comment_tags`]). The collectors set both attributes on
//! their own; these are for texts arriving some other way (a log, a replayed
//! file).

use crate::signature::{Compiled, Example, FnError, FunctionKind::Converter, FunctionSig, Param, ParamType::*, ReturnType};
use crate::sql::{apm_hash, comment_tags};
use crate::value::{Map, Value};

pub const SIGNATURES: &[FunctionSig] = &[
    FunctionSig {
        name: "NormalizedQueryHash",
        kind: Converter,
        params: &[Param::required("text", String)],
        returns: ReturnType::String,
        examples: &[Example {
            input: "{\"q\": \"select * from pg_stat_activity where id = ?\"}",
            statement: "set(attributes[\"db.query.text.normalized.hash\"], NormalizedQueryHash(attributes[\"q\"]))",
            output: "{\"q\": \"select * from pg_stat_activity where id = ?\", \"db.query.text.normalized.hash\": \"5176bcd7486f72459fb24cf3a5f263da\"}",
        }],
        summary: "New Relic's db.query.text.normalized.hash of a (sanitized) SQL text: its APM normalizer, then MD5 without the ? marks; \"\" for an empty text.",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| match args[0] {
                Value::Nil => Ok(Value::Nil),
                Value::Str(text) => Ok(Value::Str(apm_hash::normalize_and_hash(text).1)),
                other => Err(FnError::Type { function: "NormalizedQueryHash", param: "text", expected: "a string", found: other.type_name() }),
            })))
        },
    },
    FunctionSig {
        name: "CommentTags",
        kind: Converter,
        params: &[Param::required("text", String), Param::optional("keys", List)],
        returns: ReturnType::Map,
        examples: &[Example {
            input: "{\"q\": \"/* nr_service_guid='MXxBUE18QVBQTElDQVRJT058MQ', user=bob@example.com */ select 1\"}",
            statement: "merge_maps(attributes, CommentTags(attributes[\"q\"], [\"nr_service_guid\", \"user\"]), \"upsert\")",
            output: "{\"q\": \"/* nr_service_guid='MXxBUE18QVBQTElDQVRJT058MQ', user=bob@example.com */ select 1\", \"db.query.comment_tags\": \"nr_service_guid='MXxBUE18QVBQTElDQVRJT058MQ'\", \"db.query.comment_tags.nr_service_guid\": \"MXxBUE18QVBQTElDQVRJT058MQ\"}",
        }],
        summary: "The allowed key=value tags of a raw SQL text's leading /* */ comments (keys default [\"nr_service_guid\"]) as db.query.comment_tags and db.query.comment_tags.nr_service_guid; a value that does not look like what its key says is dropped.",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| {
                let text = match args[0] {
                    Value::Nil => return Ok(Value::Nil),
                    Value::Str(text) => text,
                    other => return Err(FnError::Type { function: "CommentTags", param: "text", expected: "a string", found: other.type_name() }),
                };
                let keys: Vec<&str> = match args.get(1).copied() {
                    None | Some(Value::Nil) => comment_tags::DEFAULT_ALLOWED_KEYS.to_vec(),
                    Some(Value::List(keys)) => keys
                        .iter()
                        .map(|k| match k {
                            Value::Str(k) => Ok(k.as_str()),
                            other => Err(FnError::Type { function: "CommentTags", param: "keys", expected: "a list of strings", found: other.type_name() }),
                        })
                        .collect::<Result<_, _>>()?,
                    Some(other) => return Err(FnError::Type { function: "CommentTags", param: "keys", expected: "a list of strings", found: other.type_name() }),
                };
                let tags = comment_tags::extract(text, &keys);
                let mut out = Map::new();
                out.insert("db.query.comment_tags", Value::Str(tags.tags));
                out.insert("db.query.comment_tags.nr_service_guid", Value::Str(tags.nr_service_guid));
                Ok(Value::Map(out))
            })))
        },
    },
];
