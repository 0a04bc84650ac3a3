//! Text to [`ast::Module`].
//!
//! Parsing happens in three steps:
//! 1. [`scan`] walks the raw text once, knowing only strings and comments: it
//!    records comments (for the formatter) and refuses nesting deeper than
//!    [`MAX_NESTING`], so no input can overflow the stack further on.
//! 2. pest parses one top-level item at a time; after a syntax error the
//!    parser skips to the next line that starts an item, so one mistake does
//!    not hide the others.
//! 3. The pest pairs become the AST; literal errors (bad escapes, integer
//!    overflow) are reported here.

use pest::iterators::Pair;
use pest::Parser as _;

use crate::ast::*;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Span};

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct PipeParser;

/// Deepest nesting of ( [ { accepted. Real pipelines use a handful.
pub const MAX_NESTING: usize = 64;

/// Longest chain of binary operators in one expression (`a or b or ...`),
/// and most `not`/`-` in a row: chains build deep trees without brackets.
pub const MAX_CHAIN: usize = 128;
pub const MAX_UNARY: usize = 16;
/// Deepest expression tree accepted; keeps every later recursive pass
/// (checker, formatter, engine) far from the stack limit.
pub const MAX_EXPR_DEPTH: usize = 256;

/// Largest file accepted. A Kubernetes ConfigMap holds at most 1 MiB.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// A comment as written, `#` included.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    pub span: Span,
    pub text: String,
}

#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub module: Module,
    pub comments: Vec<Comment>,
    pub diagnostics: Vec<Diagnostic>,
}

pub fn parse(file: FileId, text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let whole = Span::new(file, 0, 0);
    if text.len() > MAX_FILE_BYTES {
        parsed.diagnostics.push(
            Diagnostic::new(codes::FILE_TOO_LARGE, whole, format!("file is {} bytes; the limit is {} bytes", text.len(), MAX_FILE_BYTES))
                .help("split the pipeline into several files joined with `use`"),
        );
        return parsed;
    }
    let scan = scan(text);
    parsed.comments = scan.comments.iter().map(|&(s, e)| Comment { span: Span::new(file, s, e), text: text[s..e].to_string() }).collect();
    if let Some(at) = scan.too_deep_at {
        parsed.diagnostics.push(
            Diagnostic::new(codes::TOO_DEEP, Span::new(file, at, at + 1), format!("brackets nest more than {MAX_NESTING} deep"))
                .label("this bracket is too deep")
                .help("split the expression into several statements"),
        );
        return parsed;
    }

    let mut builder = Builder { file, expr_nesting: 0, text, comments: &scan.comments, diagnostics: Vec::new() };
    let mut pos = 0;
    while pos < text.len() {
        match PipeParser::parse(Rule::item_or_end, &text[pos..]) {
            Ok(mut pairs) => {
                let Some(top) = pairs.next() else { break };
                let Some(item) = top.into_inner().find(|p| p.as_rule() != Rule::EOI) else { break };
                let end = pos + item.as_span().end();
                if let Some(item) = builder.item(item, pos) {
                    parsed.module.items.push(item);
                }
                pos = end;
            }
            Err(err) => {
                let at = pos + error_offset(&err);
                builder.diagnostics.push(syntax_diagnostic(file, text, at, &err));
                if let Some(name) = declared_name(file, text, pos) {
                    parsed.module.broken.push(name);
                }
                let item_start = pos + (text[pos..].len() - text[pos..].trim_start().len());
                match next_item_start(text, item_start.max(pos)) {
                    Some(next) => pos = next,
                    None => break,
                }
            }
        }
    }
    parsed.diagnostics.append(&mut builder.diagnostics);
    parsed
}

// ---- step 1: scan -----------------------------------------------------------

pub(crate) struct Scan {
    /// (start, end) byte offsets of each comment.
    pub comments: Vec<(usize, usize)>,
    pub too_deep_at: Option<usize>,
}

pub(crate) fn scan(text: &str) -> Scan {
    let bytes = text.as_bytes();
    let mut comments = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                let end = memchr_newline(bytes, i);
                let trimmed = i + text[i..end].trim_end().len();
                comments.push((i, trimmed));
                i = end;
            }
            b'"' => i = skip_string(bytes, i + 1),
            b'r' if (i == 0 || !is_ident_byte(bytes[i - 1])) && raw_string_opening(bytes, i).is_some() => {
                let hashes = raw_string_opening(bytes, i).unwrap_or(0);
                i = skip_raw_string(bytes, i + 2 + hashes, hashes);
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Scan { comments, too_deep_at: Some(i) };
                }
                i += 1;
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    Scan { comments, too_deep_at: None }
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn memchr_newline(bytes: &[u8], from: usize) -> usize {
    bytes[from..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| from + p)
}

/// Number of `#` in `r##"` at `i`, if a raw string opens there.
fn raw_string_opening(bytes: &[u8], i: usize) -> Option<usize> {
    let hashes = bytes[i + 1..].iter().take_while(|&&b| b == b'#').count();
    (bytes.get(i + 1 + hashes) == Some(&b'"')).then_some(hashes)
}

/// Past the closing quote of a plain string (strings end at a newline).
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            b'\n' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn skip_raw_string(bytes: &[u8], mut i: usize, hashes: usize) -> usize {
    while i < bytes.len() {
        if bytes[i] == b'"' && bytes[i + 1..].iter().take(hashes).filter(|&&b| b == b'#').count() == hashes {
            return i + 1 + hashes;
        }
        i += 1;
    }
    bytes.len()
}

// ---- step 2: syntax errors and recovery -----------------------------------

/// Every keyword that starts an item, and whether the item declares a
/// named node: the one list that recovery, name reading and suggestions
/// use (the grammar's `kw_*` rules spell the same words).
const ITEMS: &[(&str, bool)] = &[
    ("use", false),
    ("source", true),
    ("transform", true),
    ("sample", true),
    ("sink", true),
    ("batch", true),
    ("memory_limit", true),
    ("pipeline", false),
    ("test", false),
    ("cluster", false),
];

const ITEM_KEYWORDS: &[&str] = &{
    let mut words = [""; ITEMS.len()];
    let mut i = 0;
    while i < ITEMS.len() {
        words[i] = ITEMS[i].0;
        i += 1;
    }
    words
};

fn error_offset(err: &pest::error::Error<Rule>) -> usize {
    match err.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    }
}

/// The start of the first line after `at` that begins with an item keyword.
fn next_item_start(text: &str, at: usize) -> Option<usize> {
    let mut line_start = text[at..].find('\n').map(|p| at + p + 1)?;
    loop {
        let line = &text[line_start..];
        let trimmed = line.trim_start_matches([' ', '\t']);
        let starts_item = ITEM_KEYWORDS
            .iter()
            .any(|kw| trimmed.starts_with(kw) && !trimmed[kw.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'));
        if starts_item {
            return Some(line_start);
        }
        line_start += line.find('\n')? + 1;
    }
}

/// The name an item starting at `pos` declares, read without the grammar
/// (the grammar just failed on it).
fn declared_name(file: FileId, text: &str, mut pos: usize) -> Option<Ident> {
    loop {
        let rest = &text[pos..];
        let trimmed = rest.trim_start();
        pos += rest.len() - trimmed.len();
        if trimmed.starts_with('#') {
            pos += trimmed.find('\n')?;
        } else {
            break;
        }
    }
    let rest = &text[pos..];
    let keyword = ITEMS.iter().filter(|(_, declares)| *declares).map(|(kw, _)| *kw).find(|kw| rest.starts_with(kw))?;
    let after = &rest[keyword.len()..];
    let name_rest = after.trim_start();
    if name_rest.len() == after.len() {
        return None;
    }
    let len = name_rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(name_rest.len());
    let start = pos + keyword.len() + (after.len() - name_rest.len());
    (len > 0).then(|| Ident { name: name_rest[..len].to_string(), span: Span::new(file, start, start + len) })
}

fn syntax_diagnostic(file: FileId, text: &str, at: usize, err: &pest::error::Error<Rule>) -> Diagnostic {
    let mut expected: Vec<&'static str> = Vec::new();
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &err.variant {
        for rule in positives {
            let name = describe_rule(*rule);
            if !expected.contains(&name) {
                expected.push(name);
            }
        }
    }
    // After a complete value, "or an operator" is always possible; it only
    // helps when nothing else is.
    let continuation = ["an operator", "`and`", "`or`"];
    if expected.iter().any(|e| !continuation.contains(e)) {
        expected.retain(|e| !continuation.contains(e));
    }
    let found = found_token(text, at);
    let message = match expected.len() {
        0 => format!("unexpected {found}"),
        1 => format!("expected {}, found {found}", expected[0]),
        n => format!("expected {} or {}, found {found}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    let end = (at + found_len(text, at)).min(text.len());
    let mut diagnostic = Diagnostic::new(codes::SYNTAX, Span::new(file, at, end.max(at)), message).label("here");
    if let Some(help) = syntax_help(text, at, &expected) {
        diagnostic = diagnostic.help(help);
    }
    diagnostic
}

fn syntax_help(text: &str, at: usize, expected: &[&str]) -> Option<String> {
    let rest = &text[at..];
    if rest.starts_with('\'') {
        return Some("strings use double quotes: \"text\" (or r\"...\" for regexes)".into());
    }
    if rest.starts_with('$') {
        return Some("environment variables are written env(\"NAME\")".into());
    }
    if rest.starts_with(':') && expected.contains(&"`=`") {
        return Some("settings are written `key = value`".into());
    }
    let word_len = found_len(text, at);
    let word = &rest[..word_len];
    let keywords = expected.iter().filter_map(|e| e.strip_prefix('`').and_then(|e| e.strip_suffix('`')));
    let mut candidates: Vec<&str> = keywords.collect();
    if expected.iter().any(|e| e.starts_with("an item")) {
        candidates.extend(ITEM_KEYWORDS);
    }
    if word_len > 1 && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        if let Some(s) = crate::diagnostic::did_you_mean(word, candidates) {
            return Some(format!("did you mean `{s}`?"));
        }
    }
    if expected.iter().any(|e| e.starts_with("an item")) {
        return Some(format!("a file holds items: {}", ITEM_KEYWORDS.join(", ")));
    }
    None
}

fn found_len(text: &str, at: usize) -> usize {
    let rest = &text[at..];
    match rest.chars().next() {
        None => 0,
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
            rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len())
        }
        Some(c) => c.len_utf8(),
    }
}

fn found_token(text: &str, at: usize) -> String {
    let len = found_len(text, at);
    if len == 0 {
        return "end of file".into();
    }
    let token = &text[at..at + len];
    match token {
        "\n" => "end of line".into(),
        t if t.chars().all(|c| c.is_control()) => format!("control character {:?}", t),
        t => format!("`{}`", t.chars().take(40).collect::<String>()),
    }
}

fn describe_rule(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::ident | Rule::node_ref => "a name",
        Rule::string | Rule::raw_string => "a string",
        Rule::expr => "an expression",
        Rule::number | Rule::quantity => "a number",
        Rule::unit => "a unit",
        Rule::setting => "a setting (key = value)",
        Rule::statement | Rule::call => "a statement like set(...)",
        Rule::collect_block | Rule::kw_collect => "`collect`",
        Rule::cmp_op | Rule::add_op | Rule::mul_op => "an operator",
        Rule::neg | Rule::literal_word | Rule::kw_not | Rule::list | Rule::map | Rule::arg | Rule::index => "an expression",
        Rule::kw_use
        | Rule::kw_source
        | Rule::kw_transform
        | Rule::kw_sample
        | Rule::kw_sink
        | Rule::kw_batch
        | Rule::kw_memory_limit
        | Rule::kw_pipeline
        | Rule::kw_cluster
        | Rule::kw_test
        | Rule::use_decl
        | Rule::source_decl
        | Rule::transform_decl
        | Rule::sample_decl
        | Rule::sink_decl
        | Rule::batch_decl
        | Rule::memory_limit_decl
        | Rule::cluster_decl
        | Rule::pipeline_decl
        | Rule::test_decl => "an item (source, transform, sample, sink, batch, memory_limit, cluster, pipeline, test, use)",
        Rule::probabilistic_rule | Rule::keep_rule | Rule::drop_rule | Rule::rate_limit_rule | Rule::dedup_rule => "a sampling rule",
        Rule::kw_where => "`where`",
        Rule::kw_per => "`per`",
        Rule::kw_by => "`by`",
        Rule::kw_input => "`input`",
        Rule::kw_expect => "`expect`",
        Rule::test_input => "`input NODE { ... }`",
        Rule::test_expect => "`expect { ... }`",
        Rule::assignment => "an assignment (path = value)",
        Rule::path => "a path like attributes[\"key\"]",
        Rule::map_entry => "a map entry (\"key\": value)",
        Rule::kw_and => "`and`",
        Rule::kw_or => "`or`",
        _ => "a token",
    }
}

// ---- step 3: pairs to AST ---------------------------------------------------

struct Builder<'t> {
    file: FileId,
    /// How many `expr` calls are active: 1 means a top-level expression.
    expr_nesting: usize,
    text: &'t str,
    comments: &'t [(usize, usize)],
    diagnostics: Vec<Diagnostic>,
}

type P<'i> = Pair<'i, Rule>;

impl Builder<'_> {
    /// The pair's span without the whitespace and comments pest may leave at
    /// its end (a rule ending in a repetition keeps the trivia it skipped).
    fn span(&self, pair: &P, base: usize) -> Span {
        let s = pair.as_span();
        let start = base + s.start();
        let mut end = base + s.end();
        loop {
            end = start + self.text[start..end].trim_end().len();
            match self.comments.binary_search_by(|c| c.1.cmp(&end)) {
                Ok(i) if self.comments[i].0 >= start => end = self.comments[i].0,
                _ => break,
            }
        }
        Span::new(self.file, start, end)
    }

    fn ident(&self, pair: P, base: usize) -> Ident {
        Ident { name: pair.as_str().to_string(), span: self.span(&pair, base) }
    }

    fn item(&mut self, pair: P, base: usize) -> Option<Item> {
        let span = self.span(&pair, base);
        let rule = pair.as_rule();
        let mut inner = pair.into_inner().filter(|p| !is_keyword(p.as_rule()));
        let kind = match rule {
            Rule::use_decl => ItemKind::Use(self.string(inner.next()?, base)),
            Rule::source_decl => {
                let name = self.ident(inner.next()?, base);
                let kind = self.ident(inner.next()?, base);
                let members = inner
                    .map(|p| match p.as_rule() {
                        Rule::collect_block => SourceMember::Collect(self.collect(p, base)),
                        _ => SourceMember::Setting(self.setting(p, base)),
                    })
                    .collect();
                ItemKind::Source(SourceDecl { name, kind, members })
            }
            Rule::transform_decl => {
                let name = self.ident(inner.next()?, base);
                let members = inner
                    .map(|p| match p.as_rule() {
                        Rule::statement => TransformMember::Statement(self.statement(p, base)),
                        _ => TransformMember::Setting(self.setting(p, base)),
                    })
                    .collect();
                ItemKind::Transform(TransformDecl { name, members })
            }
            Rule::sample_decl => {
                let name = self.ident(inner.next()?, base);
                let members = inner
                    .map(|p| match p.as_rule() {
                        Rule::setting => SampleMember::Setting(self.setting(p, base)),
                        _ => SampleMember::Rule(Box::new(self.sample_rule(p, base))),
                    })
                    .collect();
                ItemKind::Sample(SampleDecl { name, members })
            }
            Rule::sink_decl => {
                let name = self.ident(inner.next()?, base);
                let kind = self.ident(inner.next()?, base);
                let settings = inner.map(|p| self.setting(p, base)).collect();
                ItemKind::Sink(SinkDecl { name, kind, settings })
            }
            Rule::batch_decl | Rule::memory_limit_decl => {
                let name = self.ident(inner.next()?, base);
                let settings = inner.map(|p| self.setting(p, base)).collect();
                let decl = BuiltinDecl { name, settings };
                if rule == Rule::batch_decl {
                    ItemKind::Batch(decl)
                } else {
                    ItemKind::MemoryLimit(decl)
                }
            }
            Rule::cluster_decl => ItemKind::Cluster(inner.map(|p| self.setting(p, base)).collect()),
            Rule::pipeline_decl => {
                let name = self.ident(inner.next()?, base);
                let nodes = inner
                    .map(|p| {
                        let span = self.span(&p, base);
                        let mut parts = p.into_inner();
                        let node = parts.next().map(|n| self.ident(n, base)).unwrap_or(Ident { name: String::new(), span });
                        let port = parts.next().map(|n| self.ident(n, base));
                        NodeRef { node, port, span }
                    })
                    .collect();
                ItemKind::Pipeline(PipelineDecl { name, nodes })
            }
            Rule::test_decl => {
                let name = self.string(inner.next()?, base);
                let input = self.test_input(inner.next()?, base);
                let expect = self.test_expect(inner.next()?, base);
                ItemKind::Test(TestDecl { name, input, expect })
            }
            _ => return None,
        };
        Some(Item { kind, span })
    }

    fn collect(&mut self, pair: P, base: usize) -> CollectBlock {
        let span = self.span(&pair, base);
        let bare = !pair.as_str().trim_end().ends_with('}');
        let mut inner = pair.into_inner().filter(|p| !is_keyword(p.as_rule()));
        let name = inner.next().map(|p| self.ident(p, base)).unwrap_or(Ident { name: String::new(), span });
        let settings = inner.map(|p| self.setting(p, base)).collect();
        CollectBlock { name, settings, bare, span }
    }

    fn setting(&mut self, pair: P, base: usize) -> Setting {
        let span = self.span(&pair, base);
        let mut inner = pair.into_inner();
        let key = inner.next().map(|p| self.ident(p, base)).unwrap_or(Ident { name: String::new(), span });
        let value = inner.next().map(|p| self.expr(p, base)).unwrap_or(Expr { kind: ExprKind::Nil, span });
        Setting { key, value, span }
    }

    fn statement(&mut self, pair: P, base: usize) -> Statement {
        let span = self.span(&pair, base);
        let mut call = None;
        let mut condition = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::call => call = Some(self.call(p, base)),
                Rule::expr => condition = Some(self.expr(p, base)),
                _ => {}
            }
        }
        let call = call.unwrap_or(Call { name: Ident { name: String::new(), span }, args: Vec::new(), span });
        Statement { call, condition, span }
    }

    fn sample_rule(&mut self, pair: P, base: usize) -> SampleRule {
        let span = self.span(&pair, base);
        let rule = pair.as_rule();
        let mut exprs = Vec::new();
        let mut by = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::path => by = Some(self.path(p, base)),
                Rule::expr | Rule::quantity | Rule::number => exprs.push(self.expr(p, base)),
                _ => {}
            }
        }
        let n = exprs.len();
        let mut exprs = exprs.into_iter();
        let mut next = || exprs.next().unwrap_or(Expr { kind: ExprKind::Nil, span });
        let kind = match rule {
            Rule::probabilistic_rule => SampleRuleKind::Probabilistic { rate: next(), by },
            Rule::keep_rule if n >= 2 => SampleRuleKind::Keep { rate: Some(next()), by, condition: next() },
            Rule::keep_rule => SampleRuleKind::Keep { rate: None, by, condition: next() },
            Rule::drop_rule => SampleRuleKind::Drop(next()),
            Rule::dedup_rule => {
                SampleRuleKind::Dedup { by: by.unwrap_or_else(|| Path { segments: Vec::new(), indexes: Vec::new(), span }), window: next() }
            }
            _ => {
                let (count, per) = (next(), next());
                let condition = (n >= 3).then(&mut next);
                SampleRuleKind::RateLimit { count, per, by, condition }
            }
        };
        SampleRule { kind, span }
    }

    fn test_input(&mut self, pair: P, base: usize) -> TestInput {
        let span = self.span(&pair, base);
        let mut node = None;
        let mut signal = None;
        let mut assignments = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident if node.is_none() => node = Some(self.ident(p, base)),
                Rule::ident => signal = Some(self.ident(p, base)),
                Rule::assignment => {
                    let aspan = self.span(&p, base);
                    let mut parts = p.into_inner();
                    let path = parts.next().map(|p| self.path(p, base));
                    let value = parts.next().map(|p| self.expr(p, base));
                    if let (Some(path), Some(value)) = (path, value) {
                        assignments.push(Assignment { path, value, span: aspan });
                    }
                }
                _ => {}
            }
        }
        let node = node.unwrap_or(Ident { name: String::new(), span });
        TestInput { node, signal, assignments, span }
    }

    fn test_expect(&mut self, pair: P, base: usize) -> TestExpect {
        let span = self.span(&pair, base);
        let mut conditions = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::kw_dropped => return TestExpect::Dropped(span),
                Rule::expr => conditions.push(self.expr(p, base)),
                _ => {}
            }
        }
        TestExpect::Conditions(conditions, span)
    }

    fn call(&mut self, pair: P, base: usize) -> Call {
        let span = self.span(&pair, base);
        let mut inner = pair.into_inner();
        let name = inner.next().map(|p| self.ident(p, base)).unwrap_or(Ident { name: String::new(), span });
        let args = inner
            .map(|arg| {
                let parts: Vec<P> = arg.into_inner().collect();
                match parts.len() {
                    2 => {
                        let mut it = parts.into_iter();
                        let name = it.next().map(|p| self.ident(p, base));
                        let value = self.expr(it.next().expect("two parts"), base);
                        Arg { name, value }
                    }
                    _ => {
                        let value = match parts.into_iter().next() {
                            Some(p) => self.expr(p, base),
                            None => Expr { kind: ExprKind::Nil, span },
                        };
                        Arg { name: None, value }
                    }
                }
            })
            .collect();
        Call { name, args, span }
    }

    fn path(&mut self, pair: P, base: usize) -> Path {
        let span = self.span(&pair, base);
        let mut segments = Vec::new();
        let mut indexes = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => segments.push(self.ident(p, base)),
                Rule::index => {
                    if let Some(e) = p.into_inner().next() {
                        indexes.push(self.expr(e, base));
                    }
                }
                _ => {}
            }
        }
        Path { segments, indexes, span }
    }

    fn string(&mut self, pair: P, base: usize) -> StringLit {
        let span = self.span(&pair, base);
        let rule = pair.as_rule();
        let text = pair.into_inner().last().map(|p| p.as_str()).unwrap_or("");
        match rule {
            Rule::raw_string => {
                let hashes = self.span_text_hashes(span, text);
                StringLit { value: text.to_string(), raw_hashes: Some(hashes), span }
            }
            _ => {
                let value = self.unescape(text, span.start + 1);
                StringLit { value, raw_hashes: None, span }
            }
        }
    }

    /// Number of `#` around a raw string, from its total length.
    fn span_text_hashes(&self, span: Span, inner: &str) -> usize {
        // r + hashes + " + inner + " + hashes
        (span.len().saturating_sub(inner.len() + 3)) / 2
    }

    fn unescape(&mut self, text: &str, offset: usize) -> String {
        if !text.contains('\\') {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some((_, e)) = chars.next() else { break };
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                'u' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                    let rest = &text[i + 2..];
                    let close = rest.find('}');
                    let code = close.and_then(|c| u32::from_str_radix(&rest[1..c], 16).ok()).and_then(char::from_u32);
                    match (close, code) {
                        (Some(close), Some(ch)) => {
                            out.push(ch);
                            // past `{`, the hex digits and `}`
                            for _ in 0..=close {
                                chars.next();
                            }
                        }
                        _ => {
                            let span = Span::new(self.file, offset + i, offset + i + 2);
                            self.diagnostics.push(
                                Diagnostic::new(codes::BAD_ESCAPE, span, "invalid unicode escape")
                                    .help("write \\u{1F600}: hex digits in braces"),
                            );
                        }
                    }
                }
                other => {
                    let span = Span::new(self.file, offset + i, offset + i + 1 + other.len_utf8());
                    self.diagnostics.push(
                        Diagnostic::new(codes::BAD_ESCAPE, span, format!("unknown escape `\\{other}` in a string"))
                            .label("unknown escape")
                            .help(format!("for a regex write a raw string r\"...\\{other}...\", or escape the backslash: \\\\{other}")),
                    );
                    out.push(other);
                }
            }
        }
        out
    }

    fn expr(&mut self, pair: P, base: usize) -> Expr {
        self.expr_nesting += 1;
        let mut expr = self.expr_inner(pair, base);
        self.expr_nesting -= 1;
        if self.expr_nesting == 0 && expr_depth(&expr) > MAX_EXPR_DEPTH {
            self.diagnostics.push(
                Diagnostic::new(codes::TOO_DEEP, expr.span, format!("expression nests more than {MAX_EXPR_DEPTH} levels deep"))
                    .label("too deep")
                    .help("split it into several statements"),
            );
            expr = ExprKind::Nil.at(expr.span);
        }
        expr
    }

    fn too_long(&mut self, span: Span, what: &str) {
        self.diagnostics.push(
            Diagnostic::new(codes::TOO_DEEP, span, format!("too many {what} in a row"))
                .label("too long")
                .help("split it into several statements"),
        );
    }

    fn expr_inner(&mut self, pair: P, base: usize) -> Expr {
        let span = self.span(&pair, base);
        match pair.as_rule() {
            Rule::expr => self.operators(pair, base),
            Rule::number => self.number(pair.as_str(), span),
            Rule::quantity => {
                let mut inner = pair.into_inner();
                let number_text = inner.next().map(|p| p.as_str().to_string()).unwrap_or_default();
                let unit = inner.next().map(|p| p.as_str().to_string()).unwrap_or_default();
                let number = match self.number(&number_text, span).kind {
                    ExprKind::Int(i, _) => i as f64,
                    ExprKind::Float(f, _) => f,
                    _ => 0.0,
                };
                ExprKind::Quantity { number, text: number_text, unit }.at(span)
            }
            Rule::string | Rule::raw_string => ExprKind::String(self.string(pair, base)).at(span),
            Rule::literal_word => match pair.as_str() {
                "true" => ExprKind::Bool(true).at(span),
                "false" => ExprKind::Bool(false).at(span),
                _ => ExprKind::Nil.at(span),
            },
            Rule::call => ExprKind::Call(self.call(pair, base)).at(span),
            Rule::path => ExprKind::Path(self.path(pair, base)).at(span),
            Rule::list => {
                let items = pair.into_inner().map(|p| self.expr(p, base)).collect();
                ExprKind::List(items).at(span)
            }
            Rule::map => {
                let entries = pair
                    .into_inner()
                    .filter_map(|entry| {
                        let mut parts = entry.into_inner();
                        let key_pair = parts.next()?;
                        let key_span = self.span(&key_pair, base);
                        let bare_key = key_pair.as_rule() == Rule::ident;
                        let key = if bare_key { key_pair.as_str().to_string() } else { self.string(key_pair, base).value };
                        let value = self.expr(parts.next()?, base);
                        Some(MapEntry { key, bare_key, key_span, value })
                    })
                    .collect();
                ExprKind::Map(entries).at(span)
            }
            _ => {
                // A parenthesised expression: primary's "(" expr ")" leaves
                // the inner expr as the only pair, so we see it as Rule::expr
                // above; anything else here is a grammar/builder mismatch.
                ExprKind::Nil.at(span)
            }
        }
    }

    /// A flat run of operands, prefix and infix operators, arranged into a
    /// tree by precedence climbing. Recursion depth is bounded by the number
    /// of precedence levels plus the (limited) prefixes in a row.
    fn operators(&mut self, pair: P, base: usize) -> Expr {
        let span = self.span(&pair, base);
        let mut tokens = Vec::new();
        let mut infix = 0;
        let mut prefixes_in_a_row = 0;
        for p in pair.into_inner() {
            let token = match p.as_rule() {
                Rule::kw_not => Token::Not(self.span(&p, base).start),
                Rule::neg => Token::Neg(self.span(&p, base).start),
                Rule::kw_or => Token::Infix(BinaryOp::Or),
                Rule::kw_and => Token::Infix(BinaryOp::And),
                Rule::cmp_op | Rule::add_op | Rule::mul_op => Token::Infix(op_from(p.as_str())),
                _ => Token::Operand(p),
            };
            match token {
                Token::Not(_) | Token::Neg(_) => prefixes_in_a_row += 1,
                Token::Infix(_) => infix += 1,
                Token::Operand(_) => prefixes_in_a_row = 0,
            }
            if prefixes_in_a_row > MAX_UNARY {
                self.too_long(span, "`not`s or `-`s");
                return ExprKind::Nil.at(span);
            }
            tokens.push(token);
        }
        if infix >= MAX_CHAIN {
            self.too_long(span, "operators");
            return ExprKind::Nil.at(span);
        }
        let mut tokens = tokens.into_iter().peekable();
        self.climb(&mut tokens, 0, base, span)
    }

    fn climb<'i>(&mut self, tokens: &mut std::iter::Peekable<std::vec::IntoIter<Token<'i>>>, min: u8, base: usize, whole: Span) -> Expr {
        let mut lhs = match tokens.next() {
            Some(Token::Not(start)) => {
                let operand = self.climb(tokens, PREC_NOT, base, whole);
                let span = Span::new(self.file, start, operand.span.end);
                ExprKind::Not(Box::new(operand)).at(span)
            }
            Some(Token::Neg(start)) => {
                let operand = self.climb(tokens, PREC_NEG, base, whole);
                let span = Span::new(self.file, start, operand.span.end);
                ExprKind::Neg(Box::new(operand)).at(span)
            }
            Some(Token::Operand(p)) => self.operand(p, base),
            // the grammar puts an operand after every operator
            Some(Token::Infix(_)) | None => ExprKind::Nil.at(whole),
        };
        while let Some(Token::Infix(op)) = tokens.peek() {
            let op = *op;
            let prec = precedence(op);
            if prec < min {
                break;
            }
            tokens.next();
            let rhs = self.climb(tokens, prec + 1, base, whole);
            let span = lhs.span.to(rhs.span);
            lhs = ExprKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) }.at(span);
        }
        lhs
    }

    fn operand(&mut self, pair: P, base: usize) -> Expr {
        if pair.as_rule() == Rule::expr {
            let span = self.span(&pair, base);
            let inner = self.expr(pair, base);
            return ExprKind::Paren(Box::new(inner)).at(span);
        }
        self.expr(pair, base)
    }

    fn number(&mut self, text: &str, span: Span) -> Expr {
        let lower = text.to_ascii_lowercase();
        if let Some(hex) = lower.strip_prefix("0x") {
            return match i64::from_str_radix(hex, 16) {
                Ok(v) => ExprKind::Int(v, text.to_string()).at(span),
                Err(_) => self.bad_number(text, span),
            };
        }
        if lower.contains(['.', 'e']) {
            return match text.parse::<f64>() {
                Ok(v) if v.is_finite() => ExprKind::Float(v, text.to_string()).at(span),
                _ => self.bad_number(text, span),
            };
        }
        match text.parse::<i64>() {
            Ok(v) => ExprKind::Int(v, text.to_string()).at(span),
            Err(_) => self.bad_number(text, span),
        }
    }

    fn bad_number(&mut self, text: &str, span: Span) -> Expr {
        let shown: String = text.chars().take(30).collect();
        self.diagnostics.push(
            Diagnostic::new(codes::BAD_NUMBER, span, format!("number `{shown}` does not fit"))
                .label("out of range")
                .help("integers are 64-bit signed; floats must be finite"),
        );
        ExprKind::Int(0, text.to_string()).at(span)
    }
}

/// Depth of an expression tree, without recursion (the tree may be deep).
fn expr_depth(root: &Expr) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Expr, usize)> = vec![(root, 1)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        match &e.kind {
            ExprKind::Path(p) => stack.extend(p.indexes.iter().map(|i| (i, d + 1))),
            ExprKind::Call(c) => stack.extend(c.args.iter().map(|a| (&a.value, d + 1))),
            ExprKind::List(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            ExprKind::Map(entries) => stack.extend(entries.iter().map(|en| (&en.value, d + 1))),
            ExprKind::Not(inner) | ExprKind::Neg(inner) | ExprKind::Paren(inner) => stack.push((inner, d + 1)),
            ExprKind::Binary { lhs, rhs, .. } => {
                stack.push((lhs, d + 1));
                stack.push((rhs, d + 1));
            }
            _ => {}
        }
    }
    deepest
}

enum Token<'i> {
    /// `not`, at this offset.
    Not(usize),
    /// unary `-`, at this offset.
    Neg(usize),
    Infix(BinaryOp),
    Operand(P<'i>),
}

const PREC_NOT: u8 = 3;
const PREC_NEG: u8 = 7;

fn precedence(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Or => 1,
        BinaryOp::And => 2,
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => 4,
        BinaryOp::Add | BinaryOp::Sub => 5,
        BinaryOp::Mul | BinaryOp::Div => 6,
    }
}

fn op_from(symbol: &str) -> BinaryOp {
    match symbol {
        "==" => BinaryOp::Eq,
        "!=" => BinaryOp::Ne,
        "<=" => BinaryOp::Le,
        ">=" => BinaryOp::Ge,
        "<" => BinaryOp::Lt,
        ">" => BinaryOp::Gt,
        "+" => BinaryOp::Add,
        "-" => BinaryOp::Sub,
        "*" => BinaryOp::Mul,
        _ => BinaryOp::Div,
    }
}

fn is_keyword(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_use
            | Rule::kw_source
            | Rule::kw_transform
            | Rule::kw_sample
            | Rule::kw_sink
            | Rule::kw_batch
            | Rule::kw_cluster
            | Rule::kw_memory_limit
            | Rule::kw_pipeline
            | Rule::kw_test
            | Rule::kw_collect
            | Rule::kw_input
            | Rule::kw_expect
    )
}

impl ExprKind {
    fn at(self, span: Span) -> Expr {
        Expr { kind: self, span }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fully parenthesised form, to see the tree precedence built.
    fn shape(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Binary { op, lhs, rhs } => format!("({} {} {})", shape(lhs), op.symbol(), shape(rhs)),
            ExprKind::Not(inner) => format!("(not {})", shape(inner)),
            ExprKind::Neg(inner) => format!("(-{})", shape(inner)),
            ExprKind::Paren(inner) => shape(inner),
            ExprKind::Path(p) => p.dotted(),
            ExprKind::Int(_, t) => t.clone(),
            ExprKind::Bool(b) => b.to_string(),
            other => format!("{other:?}"),
        }
    }

    fn condition(text: &str) -> String {
        let source = format!("transform t {{ set(attributes, 1) where {text} }}");
        let parsed = parse(0, &source);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let ItemKind::Transform(t) = &parsed.module.items[0].kind else { panic!("not a transform") };
        let TransformMember::Statement(s) = &t.members[0] else { panic!("not a statement") };
        shape(s.condition.as_ref().expect("a condition"))
    }

    #[test]
    fn precedence_follows_ottl() {
        assert_eq!(condition("a or b and c"), "(a or (b and c))");
        assert_eq!(condition("not a == 1 and b"), "((not (a == 1)) and b)");
        assert_eq!(condition("a + b * -c > 2 - 1 - 1"), "((a + (b * (-c))) > ((2 - 1) - 1))");
        assert_eq!(condition("not not a or (b or c) and d"), "((not (not a)) or ((b or c) and d))");
        assert_eq!(condition("a / b / c == 1"), "(((a / b) / c) == 1)");
    }

    #[test]
    fn spans_leave_out_trailing_comments() {
        let source = "sink out = stdout {\n  format = pretty  # why\n}\n";
        let parsed = parse(0, source);
        let ItemKind::Sink(sink) = &parsed.module.items[0].kind else { panic!("not a sink") };
        let span = sink.settings[0].span;
        assert_eq!(&source[span.start..span.end], "format = pretty");
        assert_eq!(parsed.comments[0].text, "# why");
    }

    #[test]
    fn recovery_reports_errors_in_several_items() {
        let source = "transform a {\n  set(\n}\ntransform b {\n  set(x y)\n}\nsink ok = stdout {}\n";
        let parsed = parse(0, source);
        assert_eq!(parsed.diagnostics.len(), 2, "{:?}", parsed.diagnostics);
        assert_eq!(parsed.module.items.len(), 1);
        let broken: Vec<&str> = parsed.module.broken.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(broken, ["a", "b"]);
    }
}
