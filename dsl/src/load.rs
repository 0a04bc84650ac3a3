//! Reading a set of `.pipe` files and the files they `use`.

use std::path::{Path, PathBuf};

use crate::ast::ItemKind;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::parse::{self, Parsed};
use crate::source::{FileId, SourceFile, SourceMap, Span};

/// What the compiler needs from the outside world. The CLI implements it over
/// the real file system and environment; tests can implement it in memory.
pub trait Host {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    /// An absolute, normalised form of `path`, to recognise a file reached
    /// twice. Best effort: return `path` itself if it cannot be resolved.
    fn canonicalize(&self, path: &Path) -> PathBuf;
    fn env_is_set(&self, name: &str) -> bool;
}

pub struct LoadedFile {
    pub id: FileId,
    pub parsed: Parsed,
}

pub struct Loaded {
    pub sources: SourceMap,
    pub files: Vec<LoadedFile>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads each path, then each file it `use`s, once each. A `use` that leads
/// back to a file still being loaded is a cycle.
pub fn load(paths: &[PathBuf], host: &dyn Host) -> Loaded {
    let mut loader =
        Loader { host, loaded: Loaded { sources: SourceMap::default(), files: Vec::new(), diagnostics: Vec::new() }, seen: Vec::new() };
    for path in paths {
        loader.file(path, path.display().to_string(), None, &mut Vec::new());
    }
    loader.loaded
}

struct Loader<'h> {
    host: &'h dyn Host,
    loaded: Loaded,
    /// Canonical paths already loaded.
    seen: Vec<PathBuf>,
}

impl Loader<'_> {
    /// `via` is the `use` that asked for this file, for error positions.
    fn file(&mut self, path: &Path, name: String, via: Option<Span>, stack: &mut Vec<PathBuf>) {
        let canonical = self.host.canonicalize(path);
        if let Some(pos) = stack.iter().position(|p| *p == canonical) {
            let chain: Vec<String> = stack[pos..].iter().chain(std::iter::once(&canonical)).map(|p| file_name(p)).collect();
            let span = via.unwrap_or_default();
            self.loaded.diagnostics.push(
                Diagnostic::new(codes::USE_CYCLE, span, format!("`use` cycle: {}", chain.join(" -> ")))
                    .label("leads back to a file being loaded")
                    .help("move the shared nodes into a file that uses nothing, and `use` it from both"),
            );
            return;
        }
        if self.seen.contains(&canonical) {
            return;
        }
        self.seen.push(canonical.clone());
        let bytes = match self.host.read(path) {
            Ok(bytes) => bytes,
            Err(err) => {
                let (span, message) = match via {
                    Some(span) => (span, format!("cannot read `{name}`: {err}")),
                    None => {
                        let id = self.loaded.sources.add(SourceFile::new(name.clone(), canonical, String::new()));
                        (Span::new(id, 0, 0), format!("cannot read `{name}`: {err}"))
                    }
                };
                self.loaded.diagnostics.push(Diagnostic::new(codes::UNREADABLE_FILE, span, message).label("unreadable"));
                return;
            }
        };
        let (text, utf8_error) = match String::from_utf8(bytes) {
            Ok(text) => (text, None),
            Err(err) => {
                let at = err.utf8_error().valid_up_to();
                (String::from_utf8_lossy(err.as_bytes()).into_owned(), Some(at))
            }
        };
        let id = self.loaded.sources.add(SourceFile::new(name, canonical.clone(), text));
        if let Some(at) = utf8_error {
            self.loaded.diagnostics.push(
                Diagnostic::new(codes::INVALID_UTF8, Span::new(id, at, at), "file is not valid UTF-8")
                    .label("first invalid byte")
                    .help("save the file as UTF-8"),
            );
            return;
        }
        let parsed = parse::parse(id, &self.loaded.sources.get(id).text);
        self.loaded.diagnostics.extend(parsed.diagnostics.iter().cloned());
        if parsed.module.items.is_empty() && parsed.diagnostics.is_empty() {
            self.loaded.diagnostics.push(
                Diagnostic::new(codes::EMPTY_FILE, Span::new(id, 0, 0), "file defines nothing")
                    .help("a .pipe file holds sources, transforms, samples, sinks, pipelines or tests"),
            );
        }
        let uses: Vec<(String, Span)> = parsed
            .module
            .items
            .iter()
            .filter_map(|item| match &item.kind {
                ItemKind::Use(lit) => Some((lit.value.clone(), lit.span)),
                _ => None,
            })
            .collect();
        self.loaded.files.push(LoadedFile { id, parsed });
        stack.push(canonical.clone());
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for (target, span) in uses {
            let target_path = dir.join(&target);
            self.file(&target_path, target_path.display().to_string(), Some(span), stack);
        }
        stack.pop();
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}
