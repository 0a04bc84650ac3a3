//! Time converters.

use crate::signature::{Compiled, Example, FunctionKind::Converter, FunctionSig, ReturnType};
use crate::value::Value;

pub const SIGNATURES: &[FunctionSig] = &[FunctionSig {
    name: "Now",
    kind: Converter,
    params: &[],
    returns: ReturnType::Time,
    examples: &[Example { input: "{}", statement: "set(attributes[\"out\"], Now() > 1700000000000000000)", output: "{\"out\": true}" }],
    summary: "The current time, as nanoseconds since the Unix epoch.",
    build: |_| {
        Ok(Compiled::Converter(Box::new(|_| {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            Ok(Value::Int(i64::try_from(nanos).unwrap_or(i64::MAX)))
        })))
    },
}];
