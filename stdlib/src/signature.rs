//! The shape of a function as the checker sees it.

/// Editors mutate a target and are written in lowercase (`set`); converters
/// are pure, return a value and are Capitalised (`SHA256`). This follows OTTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    Editor,
    Converter,
}

/// What an argument must be. `Target*` parameters must be paths the editor
/// can write to; the rest accept any expression of a compatible type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A settable path of any type (`attributes["k"]`, `body`).
    Target,
    /// A settable path that holds a map (`attributes`, `resource.attributes`).
    TargetMap,
    Any,
    String,
    Int,
    Double,
    Bool,
    Map,
    /// A list of strings (or any list when built at run time).
    List,
    /// A regular expression; a literal is compiled at check time.
    Regex,
    /// One of a fixed set of string literals, e.g. `"key"` | `"value"`.
    OneOf(&'static [&'static str]),
    /// The bare name of a converter that takes one argument, e.g. `SHA256`.
    Function,
}

impl ParamType {
    pub fn describe(self) -> String {
        match self {
            ParamType::Target => "a path to write to".into(),
            ParamType::TargetMap => "a path to a map (attributes, resource.attributes)".into(),
            ParamType::Any => "any value".into(),
            ParamType::String => "a string".into(),
            ParamType::Int => "an integer".into(),
            ParamType::Double => "a number".into(),
            ParamType::Bool => "a boolean".into(),
            ParamType::Map => "a map".into(),
            ParamType::List => "a list".into(),
            ParamType::Regex => "a regular expression string".into(),
            ParamType::OneOf(words) => {
                let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
                format!("one of {}", quoted.join(", "))
            }
            ParamType::Function => "the name of a one-argument converter (e.g. SHA256)".into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub ty: ParamType,
    pub optional: bool,
}

impl Param {
    pub const fn required(name: &'static str, ty: ParamType) -> Param {
        Param { name, ty, optional: false }
    }
    pub const fn optional(name: &'static str, ty: ParamType) -> Param {
        Param { name, ty, optional: true }
    }
}

/// Static result type of a converter, used to type-check nested calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnType {
    Nothing,
    Any,
    String,
    Int,
    Double,
    Bool,
    Map,
    List,
    Time,
}

#[derive(Debug, Clone, Copy)]
pub struct FunctionSig {
    pub name: &'static str,
    pub kind: FunctionKind,
    pub params: &'static [Param],
    pub returns: ReturnType,
    /// One line, shown in `help` texts.
    pub summary: &'static str,
    /// Worked examples; every one runs as a test (engine/tests/examples.rs),
    /// so the documentation cannot drift from the behaviour.
    pub examples: &'static [Example],
    pub build: Build,
}

/// `statement` applied to a record whose attributes are `input` leaves
/// them equal to `output`. All three are written in the .pipe language.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    pub input: &'static str,
    pub statement: &'static str,
    pub output: &'static str,
}

impl FunctionSig {
    pub fn required_arity(&self) -> usize {
        self.params.iter().filter(|p| !p.optional).count()
    }

    /// The parameter a named argument `name = …` binds to. As in OTTL, the
    /// spellings `replacement_format` and `replacementFormat` name the same
    /// parameter (OTTL matches the CamelCase of the name against its
    /// argument fields).
    pub fn param_index(&self, name: &str) -> Option<usize> {
        let wanted = camel_case(name);
        self.params.iter().position(|p| camel_case(p.name) == wanted)
    }

    /// `name(a, b, [c])`, for diagnostics.
    pub fn usage(&self) -> String {
        let params: Vec<String> =
            self.params.iter().map(|p| if p.optional { format!("[{}]", p.name) } else { p.name.to_string() }).collect();
        format!("{}({})", self.name, params.join(", "))
    }
}

/// `utf8_safe` and `utf8Safe` → `Utf8Safe`: underscores split words, each
/// word's first letter is raised.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for word in name.split('_') {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

use crate::value::Value;

/// Why a call failed at run time. The engine turns it into the transform's
/// `error_mode` outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum FnError {
    /// An argument had the wrong type for this call.
    Type {
        function: &'static str,
        param: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    /// A pattern could not be compiled or ran past its backtracking limit.
    Pattern(String),
    /// Text could not be sanitized. The engine never keeps such a value: it
    /// deletes the statement's target and marks the record, whatever the
    /// error mode.
    Unsanitizable(String),
    Other(String),
}

impl std::fmt::Display for FnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FnError::Type { function, param, expected, found } => write!(f, "{function}: `{param}` must be {expected}, got {found}"),
            FnError::Pattern(m) => write!(f, "regex: {m}"),
            FnError::Unsanitizable(m) => write!(f, "could not sanitize: {m}"),
            FnError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for FnError {}

/// Arguments as the engine evaluated them, one per parameter (absent
/// optional ones are nil). For editors, index 0 is the target's place and
/// holds nil; the target itself is passed separately, mutable.
pub type Args<'a> = [&'a Value];

pub type ConverterFn = Box<dyn Fn(&Args<'_>) -> Result<Value, FnError> + Send + Sync>;
pub type EditorFn = Box<dyn Fn(&mut Value, &Args<'_>) -> Result<(), FnError> + Send + Sync>;

/// A function ready to run, with whatever could be prepared from literal
/// arguments (regexes, modes) prepared once.
pub enum Compiled {
    Editor(EditorFn),
    Converter(ConverterFn),
}

/// Prepares a function from its literal arguments (`Some` where the
/// argument was written as a literal; `None` where it is absent or only
/// known at run time). Errors are for the plan's author: the checker calls
/// `build` too, and reports them at the argument they name.
pub type Build = fn(&[Option<Value>]) -> Result<Compiled, BuildError>;

/// A literal argument a function refuses (`truncate_all(attributes, -1)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    /// The index of the parameter at fault, when one is.
    pub param: Option<usize>,
    pub message: String,
}

impl BuildError {
    pub fn at(param: usize, message: impl Into<String>) -> BuildError {
        BuildError { param: Some(param), message: message.into() }
    }
}

impl From<String> for BuildError {
    fn from(message: String) -> BuildError {
        BuildError { param: None, message }
    }
}

impl From<&str> for BuildError {
    fn from(message: &str) -> BuildError {
        BuildError { param: None, message: message.to_string() }
    }
}

impl From<BuildError> for String {
    fn from(e: BuildError) -> String {
        e.message
    }
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildError {}
