//! Every import points down: a source scan of `src/` for the two arrows that once
//! closed circles.
//!
//! 1. Only the drivers read the configuration: no module other than `main.rs`, `cli/`,
//!    `sweep.rs`, `walkforward.rs`, `session.rs` and `config.rs` itself names
//!    `crate::config`. Each
//!    module takes its own parameters; `config` builds them.
//! 2. The deterministic maths live in `detmath.rs`: nothing outside the generator
//!    `feed/gen.rs` takes `det_ln`, `det_exp` or `Rng` from `feed::gen`.
//!
//! A plain text scan, std only. For the first rule a file's text is cut at its first
//! `#[cfg(test)]`: unit tests may build their parameters from a config.

use std::fs;
use std::path::{Path, PathBuf};

/// Files that may import `crate::config`, relative to `src/`.
const DRIVERS: &[&str] = &["main.rs", "sweep.rs", "walkforward.rs", "session.rs", "config.rs"];

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `src/` and its files as (path relative to `src/` with `/` separators, text).
fn sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    rust_files(&src)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).expect("under src").components();
            let rel = rel.map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/");
            let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (rel, text)
        })
        .collect()
}

/// The text before the first `#[cfg(test)]`.
fn non_test(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |i| &text[..i])
}

/// The 1-based number of the line of byte `at` of `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// The 1-based numbers of the lines of `text` that name the config module: a path
/// `crate::config`, or a `use crate::{...}` group with a top-level `config` item.
fn config_lines(text: &str) -> Vec<usize> {
    let mut hits: Vec<usize> =
        text.lines().enumerate().filter(|(_, l)| l.contains("crate::config")).map(|(i, _)| i + 1).collect();
    let mut start = 0;
    while let Some(i) = text[start..].find("crate::{") {
        let at = start + i;
        let group = &text[at + "crate::{".len()..];
        // The top-level items of the group, up to its closing brace.
        let (mut depth, mut item, mut items) = (1, String::new(), Vec::new());
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 1 => break,
                '}' => depth -= 1,
                ',' if depth == 1 => {
                    items.push(std::mem::take(&mut item));
                    continue;
                }
                _ => {}
            }
            item.push(c);
        }
        items.push(item);
        let names_config = items.iter().any(|it| {
            let it = it.trim();
            it == "config" || it.starts_with("config::") || it.starts_with("config ")
        });
        if names_config {
            hits.push(line_of(text, at));
        }
        start = at + "crate::{".len();
    }
    hits.sort();
    hits.dedup();
    hits
}

fn is_driver(rel: &str) -> bool {
    DRIVERS.contains(&rel) || rel.starts_with("cli/")
}

#[test]
fn only_the_drivers_import_config() {
    let files = sources();
    assert!(files.iter().any(|(rel, _)| rel == "core.rs"), "the scan found src/core.rs");
    let offenders: Vec<String> = files
        .iter()
        .filter(|(rel, _)| !is_driver(rel))
        .flat_map(|(rel, text)| config_lines(non_test(text)).into_iter().map(move |n| format!("src/{rel}:{n}")))
        .collect();
    assert!(
        offenders.is_empty(),
        "modules below config import crate::config (take module params instead): {offenders:?}"
    );
}

/// The 1-based numbers of the lines of `text` where a `gen::` path (`feed::gen::`, or
/// `gen::` in a file that imports the module) names `det_ln`, `det_exp` or `Rng`:
/// `gen::Rng`, `gen::det_exp(..)`, or a `gen::{..}` group holding one of them.
fn gen_maths_lines(text: &str) -> Vec<usize> {
    let mut hits = Vec::new();
    let mut start = 0;
    while let Some(i) = text[start..].find("gen::") {
        let at = start + i;
        let path = &text[at + "gen::".len()..];
        let names = match path.strip_prefix('{') {
            Some(group) => &group[..group.find('}').unwrap_or(group.len())],
            None => &path[..path.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(path.len())],
        };
        let names_maths = names
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == "det_ln" || w == "det_exp" || w == "Rng");
        let word_start = at == 0 || !text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        if names_maths && word_start {
            hits.push(line_of(text, at));
        }
        start = at + "gen::".len();
    }
    hits.dedup();
    hits
}

#[test]
fn the_deterministic_maths_come_from_detmath() {
    let files = sources();
    assert!(files.iter().any(|(rel, _)| rel == "detmath.rs"), "src/detmath.rs exists");
    let offenders: Vec<String> = files
        .iter()
        .filter(|(rel, _)| rel != "feed/gen.rs")
        .flat_map(|(rel, text)| gen_maths_lines(text).into_iter().map(move |n| format!("src/{rel}:{n}")))
        .collect();
    assert!(offenders.is_empty(), "import det_ln, det_exp and Rng from crate::detmath: {offenders:?}");
}

#[test]
fn the_scanners_see_what_they_look_for() {
    assert_eq!(config_lines("use crate::types::Ts;\nuse crate::config::Fees;\n"), vec![2]);
    assert_eq!(config_lines("use crate::{\n    book::Book,\n    config::Config,\n};\n"), vec![1]);
    assert!(config_lines("use crate::{book::Book, core::Core};\nuse crate::feed::config::FeedConfig;\n").is_empty());
    assert!(config_lines("use crate::{feed::config::FeedConfig, fees::Fees};\n").is_empty());
    assert_eq!(non_test("a\n#[cfg(test)]\nuse crate::config::Config;\n"), "a\n");
    assert_eq!(gen_maths_lines("use crate::feed::gen::{det_exp, Rng};\n"), vec![1]);
    assert_eq!(gen_maths_lines("x\ngen::det_ln(2.0);\n"), vec![2]);
    assert_eq!(gen_maths_lines("x\nlet r = gen::Rng::new(1);\n"), vec![2]);
    assert_eq!(gen_maths_lines("use crate::feed::gen::{\n    generate,\n    det_ln,\n};\n"), vec![1]);
    assert!(gen_maths_lines("let d = gen::generate(&p);\n// Rng\n").is_empty());
    assert!(gen_maths_lines("use crate::feed::gen::{generate, GenParams};\nuse crate::detmath::Rng;\n").is_empty());
}

/// The layers above the feed: a file under `src/feed/` must name none of them (outside
/// its unit tests). The live loop takes its `MarketSource` trait from the feed, not the
/// other way round.
const ABOVE_FEED: &[&str] = &[
    "crate::live",
    "crate::core",
    "crate::risk",
    "crate::quote",
    "crate::gateway",
    "crate::backtest",
    "crate::journal",
];

#[test]
fn the_feed_imports_nothing_above_it() {
    let files = sources();
    assert!(files.iter().any(|(rel, _)| rel == "feed/source.rs"), "the scan found src/feed/source.rs");
    let offenders: Vec<String> = files
        .iter()
        .filter(|(rel, _)| rel.starts_with("feed/"))
        .flat_map(|(rel, text)| {
            let text = non_test(text);
            ABOVE_FEED.iter().flat_map(move |layer| {
                text.lines()
                    .enumerate()
                    .filter(move |(_, l)| l.contains(layer) && !l.trim_start().starts_with("//"))
                    .map(move |(i, _)| format!("src/{rel}:{} names {layer}", i + 1))
            })
        })
        .collect();
    assert!(offenders.is_empty(), "the feed imports a layer above it: {offenders:?}");
}
