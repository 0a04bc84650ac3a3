//! Canonical formatting (`dbintel fmt`).
//!
//! The AST is printed in one house style; comments, which the AST does not
//! hold, are woven back in by position: a comment is printed before the first
//! element that starts after it, or at the end of the line of the element it
//! followed on the same line. Blank lines between elements survive (at most
//! one). Formatting is idempotent: formatting the output changes nothing.

use crate::ast::*;
use crate::parse::{Comment, Parsed};

const INDENT: &str = "  ";
/// Lines longer than this print blocks over several lines.
const MAX_INLINE: usize = 80;

/// Formats a file that parsed without syntax errors.
pub fn format(text: &str, parsed: &Parsed) -> String {
    let mut printer = Printer { text, out: String::new(), comments: &parsed.comments, next: 0, depth: 0, last_end: 0, block_start: true };
    let items = &parsed.module.items;
    for (i, item) in items.iter().enumerate() {
        let multi_line = |it: &Item| !matches!(it.kind, ItemKind::Use(_) | ItemKind::Pipeline(_));
        let separate = i > 0
            && (multi_line(item)
                || multi_line(&items[i - 1])
                || std::mem::discriminant(&item.kind) != std::mem::discriminant(&items[i - 1].kind));
        printer.item(item, separate);
    }
    printer.rest_of_comments(text.len());
    let mut out = printer.out.trim_end().to_string();
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

struct Printer<'a> {
    text: &'a str,
    out: String,
    comments: &'a [Comment],
    next: usize,
    depth: usize,
    /// Source offset of the end of what was printed last.
    last_end: usize,
    /// Nothing printed yet in the current block: no blank line here.
    block_start: bool,
}

impl Printer<'_> {
    fn had_blank_line(&self, start: usize) -> bool {
        let between = self.text.get(self.last_end..start).unwrap_or("");
        between.matches('\n').count() >= 2
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str(INDENT);
        }
    }

    /// One empty line, unless at the start of a block or after one already.
    fn blank_line(&mut self) {
        if !self.block_start && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    /// Comments that start before `start`, each on its own line.
    fn leading(&mut self, start: usize) {
        while let Some(comment) = self.comments.get(self.next) {
            if comment.span.start >= start {
                break;
            }
            if self.had_blank_line(comment.span.start) {
                self.blank_line();
            }
            self.indent();
            self.out.push_str(comment.text.trim_end());
            self.out.push('\n');
            self.last_end = comment.span.end;
            self.block_start = false;
            self.next += 1;
        }
    }

    /// A comment on the same source line right after `end`.
    fn trailing(&mut self, end: usize) {
        if let Some(comment) = self.comments.get(self.next) {
            let between = self.text.get(end..comment.span.start).unwrap_or("\n");
            if comment.span.start >= end && !between.contains('\n') {
                self.out.push_str("  ");
                self.out.push_str(comment.text.trim_end());
                self.last_end = comment.span.end;
                self.next += 1;
            }
        }
    }

    /// Starts an element at `start`: its leading comments, a kept blank line,
    /// the indentation.
    fn begin(&mut self, start: usize, force_blank: bool) {
        if force_blank {
            self.blank_line();
        }
        self.leading(start);
        if self.had_blank_line(start) {
            self.blank_line();
        }
        self.indent();
        self.block_start = false;
    }

    fn line(&mut self, start: usize, end: usize, content: &str) {
        self.begin(start, false);
        self.out.push_str(content);
        self.last_end = end;
        self.trailing(end);
        self.out.push('\n');
    }

    fn rest_of_comments(&mut self, end: usize) {
        self.leading(end);
    }

    /// `header {` ... `}` with `members` printed one per line inside.
    fn block(&mut self, start: usize, end: usize, header: &str, force_blank: bool, members: &mut dyn FnMut(&mut Self)) {
        self.begin(start, force_blank);
        self.out.push_str(header);
        self.out.push_str(" {");
        self.last_end = start;
        self.out.push('\n');
        self.depth += 1;
        self.block_start = true;
        members(self);
        self.leading(end);
        self.depth -= 1;
        self.indent();
        self.out.push('}');
        self.last_end = end;
        self.trailing(end);
        self.out.push('\n');
        self.block_start = false;
    }

    /// Whether a comment lies inside `start..end` (then a block cannot be
    /// printed on one line without losing it).
    fn has_comment_within(&self, start: usize, end: usize) -> bool {
        self.comments[self.next..].iter().any(|c| c.span.start > start && c.span.start < end)
    }

    fn item(&mut self, item: &Item, separate: bool) {
        let (start, end) = (item.span.start, item.span.end);
        match &item.kind {
            ItemKind::Use(path) => self.line(start, end, &format!("use {}", string(path))),
            ItemKind::Pipeline(p) => {
                let nodes: Vec<String> = p.nodes.iter().map(node_ref).collect();
                self.begin(start, separate);
                self.out.push_str(&format!("pipeline {} = {}", p.name.name, nodes.join(" -> ")));
                self.last_end = end;
                self.trailing(end);
                self.out.push('\n');
            }
            ItemKind::Source(s) => {
                let header = format!("source {} = {}", s.name.name, s.kind.name);
                self.block(start, end, &header, separate, &mut |p| {
                    for member in &s.members {
                        match member {
                            SourceMember::Setting(setting) => p.setting(setting),
                            SourceMember::Collect(c) => p.collect(c),
                        }
                    }
                });
            }
            ItemKind::Transform(t) => {
                let header = format!("transform {}", t.name.name);
                self.block(start, end, &header, separate, &mut |p| {
                    for member in &t.members {
                        match member {
                            TransformMember::Setting(setting) => p.setting(setting),
                            TransformMember::Statement(st) => p.line(st.span.start, st.span.end, &statement(st)),
                        }
                    }
                });
            }
            ItemKind::Sample(s) => {
                let header = format!("sample {}", s.name.name);
                self.block(start, end, &header, separate, &mut |p| {
                    for member in &s.members {
                        match member {
                            SampleMember::Setting(setting) => p.setting(setting),
                            SampleMember::Rule(rule) => p.line(rule.span.start, rule.span.end, &sample_rule(rule)),
                        }
                    }
                });
            }
            ItemKind::Sink(s) => {
                let header = format!("sink {} = {}", s.name.name, s.kind.name);
                self.settings_block(start, end, &header, &s.settings, separate);
            }
            ItemKind::Batch(b) => self.settings_block(start, end, &format!("batch {}", b.name.name), &b.settings, separate),
            ItemKind::MemoryLimit(b) => self.settings_block(start, end, &format!("memory_limit {}", b.name.name), &b.settings, separate),
            ItemKind::Cluster(settings) => self.settings_block(start, end, "cluster", settings, separate),
            ItemKind::Test(t) => {
                let header = format!("test {}", string(&t.name));
                self.block(start, end, &header, separate, &mut |p| {
                    p.test_input(&t.input);
                    p.test_expect(&t.expect);
                });
            }
        }
    }

    fn settings_block(&mut self, start: usize, end: usize, header: &str, settings: &[Setting], separate: bool) {
        if settings.is_empty() && !self.has_comment_within(start, end) {
            return self.line(start, end, &format!("{header} {{}}"));
        }
        self.block(start, end, header, separate, &mut |p| {
            for setting in settings {
                p.setting(setting);
            }
        });
    }

    fn setting(&mut self, setting: &Setting) {
        self.line(setting.span.start, setting.span.end, &format!("{} = {}", setting.key.name, expr(&setting.value)));
    }

    fn collect(&mut self, c: &CollectBlock) {
        let (start, end) = (c.span.start, c.span.end);
        let header = format!("collect {}", c.name.name);
        if c.settings.is_empty() {
            let text = if c.bare { header } else { format!("{header} {{}}") };
            return self.line(start, end, &text);
        }
        let inline: Vec<String> = c.settings.iter().map(|s| format!("{} = {}", s.key.name, expr(&s.value))).collect();
        let one_line = format!("{header} {{ {} }}", inline.join(", "));
        if one_line.len() + self.depth * INDENT.len() <= MAX_INLINE && !self.has_comment_within(start, end) {
            return self.line(start, end, &one_line);
        }
        self.block(start, end, &header, false, &mut |p| {
            for setting in &c.settings {
                p.setting(setting);
            }
        });
    }

    fn test_input(&mut self, input: &TestInput) {
        let (start, end) = (input.span.start, input.span.end);
        let mut header = format!("input {}", input.node.name);
        if let Some(signal) = &input.signal {
            header.push(' ');
            header.push_str(&signal.name);
        }
        let parts: Vec<String> = input.assignments.iter().map(|a| format!("{} = {}", path(&a.path), expr(&a.value))).collect();
        let one_line = if parts.is_empty() { format!("{header} {{}}") } else { format!("{header} {{ {} }}", parts.join(", ")) };
        if (parts.len() <= 1 || one_line.len() <= MAX_INLINE)
            && one_line.len() + self.depth * INDENT.len() <= MAX_INLINE
            && !self.has_comment_within(start, end)
        {
            return self.line(start, end, &one_line);
        }
        self.block(start, end, &header, false, &mut |p| {
            for a in &input.assignments {
                p.line(a.span.start, a.span.end, &format!("{} = {}", path(&a.path), expr(&a.value)));
            }
        });
    }

    fn test_expect(&mut self, expect: &TestExpect) {
        match expect {
            TestExpect::Dropped(span) => self.line(span.start, span.end, "expect dropped"),
            TestExpect::Conditions(conditions, span) => {
                let parts: Vec<String> = conditions.iter().map(expr).collect();
                let one_line = if parts.is_empty() { "expect {}".to_string() } else { format!("expect {{ {} }}", parts.join(" ")) };
                if parts.len() <= 1
                    && one_line.len() + self.depth * INDENT.len() <= MAX_INLINE
                    && !self.has_comment_within(span.start, span.end)
                {
                    return self.line(span.start, span.end, &one_line);
                }
                self.block(span.start, span.end, "expect", false, &mut |p| {
                    for c in conditions {
                        p.line(c.span.start, c.span.end, &expr(c));
                    }
                });
            }
        }
    }
}

fn node_ref(r: &NodeRef) -> String {
    match &r.port {
        Some(port) => format!("{}.{}", r.node.name, port.name),
        None => r.node.name.clone(),
    }
}

/// A statement as `fmt` prints it.
pub fn statement(s: &Statement) -> String {
    let mut out = call(&s.call);
    if let Some(condition) = &s.condition {
        out.push_str(" where ");
        out.push_str(&expr(condition));
    }
    out
}

fn sample_rule(rule: &SampleRule) -> String {
    let by = |b: &Option<Path>| b.as_ref().map(|p| format!(" by {}", path(p))).unwrap_or_default();
    match &rule.kind {
        SampleRuleKind::Probabilistic { rate, by: b } => format!("probabilistic {}{}", expr(rate), by(b)),
        SampleRuleKind::Keep { rate: None, condition, .. } => format!("keep where {}", expr(condition)),
        SampleRuleKind::Keep { rate: Some(rate), by: b, condition } => format!("keep {}{} where {}", expr(rate), by(b), expr(condition)),
        SampleRuleKind::Drop(c) => format!("drop where {}", expr(c)),
        SampleRuleKind::RateLimit { count, per, by: b, condition } => format!(
            "rate_limit {} per {}{}{}",
            expr(count),
            expr(per),
            by(b),
            condition.as_ref().map(|c| format!(" where {}", expr(c))).unwrap_or_default()
        ),
        SampleRuleKind::Dedup { by: b, window } => format!("dedup by {} for {}", path(b), expr(window)),
    }
}

fn call(c: &Call) -> String {
    let args: Vec<String> = c
        .args
        .iter()
        .map(|a| match &a.name {
            Some(name) => format!("{} = {}", name.name, expr(&a.value)),
            None => expr(&a.value),
        })
        .collect();
    format!("{}({})", c.name.name, args.join(", "))
}

fn path(p: &Path) -> String {
    let mut out = p.dotted();
    for index in &p.indexes {
        out.push('[');
        out.push_str(&expr(index));
        out.push(']');
    }
    out
}

/// Prints an expression so that parsing it gives the same tree back.
pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Nil => "nil".into(),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Int(_, text) | ExprKind::Float(_, text) => text.clone(),
        ExprKind::String(s) => string(s),
        ExprKind::Quantity { text, unit, .. } => format!("{text}{unit}"),
        ExprKind::Path(p) => path(p),
        ExprKind::Call(c) => call(c),
        ExprKind::List(items) => {
            let parts: Vec<String> = items.iter().map(expr).collect();
            format!("[{}]", parts.join(", "))
        }
        ExprKind::Map(entries) => {
            if entries.is_empty() {
                return "{}".into();
            }
            let parts: Vec<String> = entries
                .iter()
                .map(|entry| {
                    let key = if entry.bare_key { entry.key.clone() } else { quote(&entry.key) };
                    format!("{key}: {}", expr(&entry.value))
                })
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        ExprKind::Not(inner) => format!("not {}", expr(inner)),
        ExprKind::Neg(inner) => format!("-{}", expr(inner)),
        // `verify-full` in a setting parses as a subtraction of two names;
        // keep it written as the one word it is.
        ExprKind::Binary { op: BinaryOp::Sub, lhs, rhs } if is_bare_name(lhs) && is_bare_name(rhs) => {
            format!("{}-{}", expr(lhs), expr(rhs))
        }
        ExprKind::Binary { op, lhs, rhs } => format!("{} {} {}", expr(lhs), op.symbol(), expr(rhs)),
        ExprKind::Paren(inner) => format!("({})", expr(inner)),
    }
}

fn is_bare_name(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Path(p) => p.segments.len() == 1 && p.indexes.is_empty(),
        ExprKind::Binary { op: BinaryOp::Sub, lhs, rhs } => is_bare_name(lhs) && is_bare_name(rhs),
        _ => false,
    }
}

fn string(s: &StringLit) -> String {
    match s.raw_hashes {
        Some(n) => {
            let hashes = "#".repeat(n);
            format!("r{hashes}\"{}\"{hashes}", s.value)
        }
        None => quote(&s.value),
    }
}

fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
