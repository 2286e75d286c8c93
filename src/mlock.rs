//! Memory locking at start (config `live.mlock`).
//!
//! What: `mlockall(MCL_CURRENT | MCL_FUTURE)` locks every page mapped now and every
//! mapping made later (heap growth, thread stacks, rings) into RAM, then the calling
//! thread's stack is touched down to [`STACK_PREFAULT`] bytes.
//!
//! Why: a page fault or swap-in on the hot thread costs microseconds to milliseconds.
//! Per mlockall(2) (Linux man-pages), without `MCL_ONFAULT` locked mappings are populated
//! when locked: `MCL_CURRENT` faults in what is mapped now, `MCL_FUTURE` populates each
//! new mapping as it is created, so this also prefaults. The stack below the current
//! frame is mapped lazily by growth, hence the touch.
//!
//! Through `rustix`'s safe wrapper: this crate forbids unsafe code.

use std::hint::black_box;

/// Bytes of the calling thread's stack touched after locking.
pub const STACK_PREFAULT: usize = 256 * 1024;

/// Why memory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum MlockError {
    /// `mlockall` failed: usually `RLIMIT_MEMLOCK` too low (EPERM/ENOMEM).
    #[error("mlockall(MCL_CURRENT|MCL_FUTURE) failed: {0} (raise RLIMIT_MEMLOCK, e.g. LimitMEMLOCK=infinity in the systemd unit, or grant CAP_IPC_LOCK)")]
    Lock(#[from] std::io::Error),
}

/// Locks all current and future memory of the process and prefaults the calling
/// thread's stack. Call once at start, before the hot threads are spawned.
pub fn lock_all() -> Result<(), MlockError> {
    use rustix::mm::{mlockall, MlockAllFlags};
    mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE).map_err(std::io::Error::from)?;
    prefault_stack();
    Ok(())
}

/// Touches [`STACK_PREFAULT`] bytes of stack below the caller's frame.
#[inline(never)]
fn prefault_stack() {
    let mut page = [0u8; STACK_PREFAULT];
    for b in page.iter_mut().step_by(4096) {
        *b = 1;
    }
    black_box(&mut page);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Either locks (root or a high RLIMIT_MEMLOCK) or fails with the clear error; never
    /// panics. Unlocks again so the rest of the test process is unaffected.
    #[test]
    fn lock_all_locks_or_explains() {
        match lock_all() {
            Ok(()) => rustix::mm::munlockall().unwrap(),
            Err(e) => assert!(e.to_string().contains("RLIMIT_MEMLOCK"), "{e}"),
        }
    }
}
