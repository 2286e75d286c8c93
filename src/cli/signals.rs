//! How each command ends on SIGINT and SIGTERM: in order, with exit 0.
//!
//! - A command that runs until stopped or can stop part-way (`run`, `record`, `serve`,
//!   `latency`, `replay`, `sweep`) takes a [`stop_flag`]: the handler only sets it, and
//!   the command finishes as at the end of its data (cancels, flushes, reports what it
//!   did) and exits 0.
//! - A command that cannot stop part-way (`import`, `gen`, `kalman`, `fit`, `as-sim`)
//!   writes each output as `<file>.partial` and renames it into place when it is whole
//!   ([`Outputs`]). On a signal a watcher thread removes the partial files and exits 0,
//!   so an interrupted command leaves each output whole or absent, never cut short.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

/// A flag that SIGINT and SIGTERM set.
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
    }
    Ok(stop)
}

/// The outputs of a command that cannot stop part-way, each written under a partial name
/// until it is committed. Dropping an `Outputs` (the command returned, maybe with an
/// error) removes what was not committed; the watcher stays, for the rest of the
/// command.
#[derive(Debug)]
pub struct Outputs {
    /// Partial files not yet committed. The watcher holds the lock while it removes them
    /// and exits, so a commit is either before the signal or never.
    partial: Arc<Mutex<Vec<PathBuf>>>,
}

impl Outputs {
    /// Installs the watcher.
    pub fn watch() -> Result<Outputs> {
        let partial = Arc::new(Mutex::new(Vec::<PathBuf>::new()));
        let mut signals =
            signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
        let held = Arc::clone(&partial);
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    let files = lock(&held);
                    for p in files.iter() {
                        let _ = std::fs::remove_file(p);
                    }
                    let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                    eprintln!("{name}: stopped; {} unfinished outputs removed", files.len());
                    std::process::exit(0);
                }
            })
            .context("starting the signal watcher")?;
        Ok(Outputs { partial })
    }

    /// Creates `path`'s partial file for writing.
    pub fn create(&self, path: &Path) -> Result<File> {
        let part = partial_name(path);
        let mut files = lock(&self.partial);
        let f = File::create(&part).with_context(|| format!("creating {}", part.display()))?;
        files.push(part);
        Ok(f)
    }

    /// Moves `path`'s finished partial file into place.
    pub fn commit(&self, path: &Path) -> Result<()> {
        let part = partial_name(path);
        let mut files = lock(&self.partial);
        std::fs::rename(&part, path).with_context(|| format!("renaming {} to {}", part.display(), path.display()))?;
        files.retain(|p| p != &part);
        Ok(())
    }

    /// Removes the partial files (the command failed).
    pub fn abandon(&self) {
        let mut files = lock(&self.partial);
        for p in files.drain(..) {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// `path` with `.partial` appended to its file name.
fn partial_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}

/// The list, even if a thread panicked while holding it (the list stays valid).
fn lock(m: &Mutex<Vec<PathBuf>>) -> MutexGuard<'_, Vec<PathBuf>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
