//! Bounded pass over the committed fuzz corpora: every file under `fuzz/corpus/<target>/`
//! and every fixed crash reproducer under `fuzz/crashes/<target>/` goes through the same
//! harness the AFL target runs (`fuzz/src/lib.rs`, included here by path), and none may
//! panic. Reproducers of crashes still open in code the fuzzing item does not own sit
//! in `fuzz/crashes/<target>/open/`: the ignored test below replays them
//! (`cargo test --release --test fuzz_corpora -- --ignored`), and a reproducer moves up
//! one folder when its fix lands.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The regular files directly in `dir`, sorted (none if it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect();
    v.retain(|p| p.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.') && n != "README.md"));
    v.sort();
    v
}

/// Runs every file of `dirs(target)` through its harness; returns the files run and the
/// ones that panicked.
fn replay(dirs: impl Fn(&str) -> Vec<PathBuf>) -> (usize, Vec<String>) {
    let mut run = 0;
    let mut failed = Vec::new();
    for &(name, harness) in harness::TARGETS {
        for dir in dirs(name) {
            for f in files(&dir) {
                let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                run += 1;
                if catch_unwind(AssertUnwindSafe(|| harness(&data))).is_err() {
                    failed.push(format!("{name}: {}", f.display()));
                }
            }
        }
    }
    (run, failed)
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

#[test]
fn corpora_and_fixed_crashes_do_not_panic() {
    let root = fuzz_dir();
    for &(name, _) in harness::TARGETS {
        assert!(!files(&root.join("corpus").join(name)).is_empty(), "fuzz/corpus/{name} is empty");
    }
    let (run, failed) = replay(|name| vec![root.join("corpus").join(name), root.join("crashes").join(name)]);
    assert!(failed.is_empty(), "{} of {run} inputs panicked:\n{}", failed.len(), failed.join("\n"));
}

#[test]
#[ignore = "known crashes not fixed yet (fuzz/crashes/<target>/open/, empty today): run by hand so that CI does not fail on a reported open crash"]
fn open_crashes_do_not_panic() {
    let root = fuzz_dir();
    let (run, failed) = replay(|name| vec![root.join("crashes").join(name).join("open")]);
    assert!(failed.is_empty(), "{} of {run} open reproducers panicked:\n{}", failed.len(), failed.join("\n"));
}
