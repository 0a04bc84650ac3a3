//! Golden tests of what `dbintel dry-run` prints for a person. Each file in
//! `tests/golden/dry_run/*.txt` is a transcript: a first line
//! `$ dbintel ARGS…` (run from the workspace root), then exactly the stdout
//! expected. The runner runs every file and shows a diff for each mismatch;
//! `DBINTEL_BLESS=1` rewrites the files from what the binary prints.
//!
//! Output is compared block by block (a block is one batch: a `resource`
//! line and what follows up to the next). Blocks from different
//! pipelines reach stdout in whichever order their tasks run, so their order
//! is not compared; what each block says is, byte for byte.

mod common;

use std::path::{Path, PathBuf};

use common::{code, dbintel, root, text, ALL_ENV};

fn transcripts() -> Vec<PathBuf> {
    let dir = root().join("engine/cli/tests/golden/dry_run");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
}

/// The blocks of an output (each from a `resource` line to the next),
/// sorted: the unit the comparison holds fixed.
fn blocks(output: &str) -> Vec<String> {
    let mut blocks: Vec<String> = Vec::new();
    for line in output.lines() {
        match blocks.last_mut() {
            Some(block) if !line.starts_with("resource ") => {
                block.push('\n');
                block.push_str(line);
            }
            _ => blocks.push(line.to_string()),
        }
    }
    let mut blocks: Vec<String> = blocks.iter().map(|b| b.trim_end().to_string()).collect();
    blocks.sort();
    blocks
}

/// A line diff (longest common subsequence): `-` expected, `+` actual.
fn diff(expected: &str, actual: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] > lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}

/// Runs one transcript; a description of the mismatch, if any.
fn check(path: &Path, bless: bool) -> Result<(), String> {
    let file = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let (command, expected) = file.split_once('\n').unwrap_or((&file, ""));
    let args: Vec<&str> =
        command.strip_prefix("$ dbintel ").ok_or("the first line must be `$ dbintel ARGS…`")?.split_whitespace().collect();
    let out = dbintel(&args, ALL_ENV);
    if code(&out) != 0 {
        return Err(format!("exit {}: {}", code(&out), text(&out.stderr)));
    }
    let actual = text(&out.stdout);
    if bless {
        let sorted = blocks(&actual).join("\n\n");
        // blocks are written back sorted, one blank line apart, as the
        // binary separates them
        std::fs::write(path, format!("{command}\n{sorted}\n")).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let (want, got) = (blocks(expected).join("\n\n"), blocks(&actual).join("\n\n"));
    if want == got {
        Ok(())
    } else {
        Err(format!("differs (- expected, + actual; DBINTEL_BLESS=1 rewrites):\n{}", diff(&want, &got)))
    }
}

#[test]
fn dry_run_readable_outputs_match_their_transcripts() {
    let bless = std::env::var_os("DBINTEL_BLESS").is_some();
    let files = transcripts();
    assert!(files.len() >= 4, "transcripts in tests/golden/dry_run: {files:?}");
    let failures: Vec<String> = files.iter().filter_map(|f| check(f, bless).err().map(|e| format!("{}: {e}", f.display()))).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_diff_shows_what_changed() {
    assert_eq!(diff("a\nb\nc", "a\nx\nc"), "  a\n- b\n+ x\n  c\n", "a changed line");
    assert_eq!(diff("a", "a\nb"), "  a\n+ b\n", "an added line");
}
