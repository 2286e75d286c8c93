//! The one `unsafe` operation statarb needs, kept out of the main crate so that it can
//! stay `#![forbid(unsafe_code)]`: a read-only memory map of a file ([`memmap2`]), and
//! the advice that drops pages already read from the process's resident set.
//!
//! Why a map at all: a replay reads an event file front to back, many times (every
//! point of a sweep), from several threads at once; a map shares one copy of the
//! bytes (the page cache's) between them, with no read buffer and no copy per event.

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::fs::File;
use std::io;

pub use memmap2::Mmap;

/// Maps the whole of `file` read-only.
///
/// The caller must treat the bytes as untrusted (validate before use): the map gives
/// exactly what is on disk.
pub fn map_readonly(file: &File) -> io::Result<Mmap> {
    // SAFETY: memmap2 marks mapping unsafe because the bytes behind the returned slice
    // can change or vanish if the file is modified or truncated while mapped, which
    // Rust's aliasing rules cannot see. Here the mapping is read-only (`PROT_READ`,
    // `MAP_SHARED`): nothing in this process writes through it, and every byte is
    // treated as untrusted input and validated by the reader before use, so contents
    // changed by another writer give wrong numbers or a validation error, never
    // undefined behaviour in our code. The remaining hazard is the one ripgrep and the
    // memmap2 docs document: if another process truncates the file while it is
    // mapped, touching a page past the new end raises SIGBUS and the process dies.
    // Event files are written once (to `.partial`, renamed when whole) and never
    // truncated in place by statarb.
    unsafe { Mmap::map(file) }
}

/// Drops the pages of `map[offset..offset + len]` from this process's resident set
/// (`madvise(MADV_DONTNEED)`); the next read of them faults them back in from the page
/// cache (or the file). The range is widened down to a page boundary (memmap2 does
/// that); a range outside the map is an `InvalidInput` error, never a panic. A no-op on
/// platforms without the advice.
///
/// Used behind a sequential reader, so that a replay's resident memory stays bounded
/// however long the file: mapped pages that were touched count in the resident set
/// until they are unmapped or dropped.
pub fn release(map: &Mmap, offset: usize, len: usize) -> io::Result<()> {
    // memmap2 checks `offset` and `len` each against the length, not their sum.
    if offset > map.len() || len > map.len() - offset {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    #[cfg(unix)]
    {
        // SAFETY: `MADV_DONTNEED` is unsafe in memmap2 because on a private mapping it
        // discards modified pages, so that memory seen through `&[u8]` would change.
        // This map is shared and read-only: it has no modified pages, and a dropped
        // page reads back the same bytes from the file (the caveat of
        // `map_readonly` about other writers is unchanged), so no live reference
        // observes a change. The range was checked against the map's length above.
        unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) }
    }
    #[cfg(not(unix))]
    {
        let _ = (map, offset, len);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn maps_and_releases() {
        let mut f = tempfile_in_target();
        let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        f.flush().unwrap();
        let m = map_readonly(&f).unwrap();
        assert_eq!(&m[..], &data[..]);
        release(&m, 0, 8192).unwrap();
        assert_eq!(&m[..], &data[..], "released pages read back the file");
        release(&m, 1, 10).unwrap();
        assert_eq!(&m[..], &data[..]);
        assert!(release(&m, 4096, 3 * 4096).is_err(), "past the end");
        assert!(release(&m, usize::MAX, 1).is_err());
    }

    fn tempfile_in_target() -> File {
        let dir = std::env::temp_dir().join(format!("mapfile-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        let f = File::options().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
        let _ = std::fs::remove_file(&p);
        f
    }
}
