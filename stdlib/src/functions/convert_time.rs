//! Time converters.

use crate::signature::{FunctionKind::Converter, FunctionSig, ReturnType};

pub const SIGNATURES: &[FunctionSig] =
    &[FunctionSig { name: "Now", kind: Converter, params: &[], returns: ReturnType::Time, summary: "The current time." }];
