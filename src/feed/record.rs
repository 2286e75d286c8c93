//! The recorder: raw venue messages to gzip files, fed from the hot thread without
//! blocking it.
//!
//! # Why
//!
//! A recording of what the venue really sent (with our local receive time) is the only
//! way to replay a bad session exactly, and the format is the one of
//! `/work/shared/data/binance-spot/*.gz`, so that [`crate::serve`] can replay our own
//! recordings as it replays those: gzip text, one line per message,
//! `<local receive ns> <raw message>\n`.
//!
//! # Design
//!
//! The hot thread holds a [`RecordTap`]; [`RecordTap::record`] never blocks, takes no
//! lock and allocates nothing: it pops a preallocated fixed-capacity buffer from a free
//! list (a crossbeam [`ArrayQueue`]), copies the message into it and pushes it onto the
//! filled queue (a second `ArrayQueue` of the same capacity, so that push cannot fail).
//! A message larger than a buffer, or one arriving while every buffer is in flight
//! (the writer is behind, or stopped), is dropped and counted: losing a recorded
//! message is better than delaying a trading decision.
//!
//! The writer thread pops filled buffers, writes the lines into a
//! [`flate2::write::GzEncoder`], returns the buffers to the free list, and
//! sync-flushes the encoder (a deflate sync flush, then a write to the file) whenever
//! unflushed data is older than [`FLUSH_INTERVAL`] (1 s): a crash of the process loses
//! at most the last second, and a file being written decompresses up to its last
//! flush (the reader sees an unexpected end of stream after that, as with any
//! truncated gzip). It rotates to a new file `prefix-YYYYmmddTHHMMSS-N.gz` (UTC time
//! of opening, `N` a sequence number from 0 in this recorder) when the current one
//! holds [`RotatePolicy::max_bytes`] uncompressed bytes or is
//! [`RotatePolicy::max_age_secs`] old, finishing the gzip member (trailer with CRC
//! and length) of the old one. [`RecorderHandle::stop`] drains the queue, finishes the
//! file and returns the final [`RecordStats`].
//!
//! The writer polls the filled queue (sleeping [`IDLE_SLEEP`] when it is empty)
//! instead of being woken, so that the hot thread makes no system call.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam::queue::ArrayQueue;
use flate2::write::GzEncoder;
use flate2::Compression;
use thiserror::Error;

use crate::types::Ts;

/// Longest time unflushed data stays in the writer (the crash-loss bound).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How long the writer sleeps when it finds nothing to write.
pub const IDLE_SLEEP: Duration = Duration::from_millis(2);

/// Errors of the recorder.
#[derive(Debug, Error)]
pub enum RecordError {
    /// The output directory could not be created, or a file not opened or written.
    #[error("recorder I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A pool of zero buffers, buffers of zero bytes, or an empty or path-like prefix.
    #[error("invalid recorder configuration: {0}")]
    Config(&'static str),
    /// The writer thread could not be started, or ended abnormally.
    #[error("recorder writer thread: {0}")]
    Thread(String),
}

/// When the writer starts a new file. `0` disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotatePolicy {
    /// Uncompressed bytes of lines per file (the file on disk is smaller); the line
    /// that reaches the limit is the last one of its file.
    pub max_bytes: u64,
    /// Seconds after which a file is closed and the next one started.
    pub max_age_secs: u64,
}

impl Default for RotatePolicy {
    /// 256 MiB of lines or one hour, whichever comes first.
    fn default() -> Self {
        RotatePolicy { max_bytes: 256 << 20, max_age_secs: 3600 }
    }
}

/// The preallocated buffer pool between the hot thread and the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Number of buffers (messages in flight at most).
    pub buffers: usize,
    /// Capacity of each buffer: the largest message recorded.
    pub buffer_bytes: usize,
}

impl Default for PoolConfig {
    /// 64 buffers of 64 KiB (4 MiB).
    fn default() -> Self {
        PoolConfig { buffers: 64, buffer_bytes: 64 << 10 }
    }
}

/// Counters of a recorder, as a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordStats {
    /// Messages written to a file.
    pub recorded: u64,
    /// Messages dropped, for any reason (`dropped_full + dropped_too_big`, plus those
    /// lost to a write error).
    pub dropped: u64,
    /// Of those, dropped because every buffer was in flight.
    pub dropped_full: u64,
    /// Of those, dropped because they were larger than a buffer.
    pub dropped_too_big: u64,
    /// Uncompressed line bytes written (time stamp, space, message, newline).
    pub bytes: u64,
    /// Files opened.
    pub files: u64,
    /// Sync flushes made.
    pub flushes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    recorded: AtomicU64,
    dropped_full: AtomicU64,
    dropped_too_big: AtomicU64,
    dropped_io: AtomicU64,
    bytes: AtomicU64,
    files: AtomicU64,
    flushes: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> RecordStats {
        let full = self.dropped_full.load(Ordering::Relaxed);
        let big = self.dropped_too_big.load(Ordering::Relaxed);
        let io = self.dropped_io.load(Ordering::Relaxed);
        RecordStats {
            recorded: self.recorded.load(Ordering::Relaxed),
            dropped: full + big + io,
            dropped_full: full,
            dropped_too_big: big,
            bytes: self.bytes.load(Ordering::Relaxed),
            files: self.files.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
        }
    }
}

/// One message in flight: its local time and a copy of its bytes.
#[derive(Debug)]
struct Slot {
    ts: Ts,
    data: Vec<u8>,
}

/// The hot thread's end of the recorder: see [`RecordTap::record`].
#[derive(Debug)]
pub struct RecordTap {
    free: Arc<ArrayQueue<Box<Slot>>>,
    filled: Arc<ArrayQueue<Box<Slot>>>,
    counters: Arc<Counters>,
    cap: usize,
}

impl RecordTap {
    /// Queues a message received at `local_ts` (ns since the epoch) for writing.
    /// Never blocks and never allocates; returns false if the message was dropped
    /// (larger than a buffer, or no free buffer), which is counted in the stats. The
    /// message should not contain a newline (venue JSON does not).
    #[inline]
    pub fn record(&self, local_ts: Ts, msg: &[u8]) -> bool {
        if msg.len() > self.cap {
            self.counters.dropped_too_big.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let Some(mut slot) = self.free.pop() else {
            self.counters.dropped_full.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        slot.ts = local_ts;
        slot.data.clear();
        slot.data.extend_from_slice(msg); // within capacity: no reallocation
                                          // Both queues hold every buffer, so the filled queue always has room.
        if let Err(slot) = self.filled.push(slot) {
            let _ = self.free.push(slot);
            self.counters.dropped_full.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Counters so far (the same as [`RecorderHandle::stats`]).
    pub fn stats(&self) -> RecordStats {
        self.counters.snapshot()
    }
}

/// The owner's end of the recorder: stats, and [`RecorderHandle::stop`]. Dropping it
/// stops the writer too (draining and finishing the file), discarding any error.
#[derive(Debug)]
pub struct RecorderHandle {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    error: Arc<Mutex<Option<RecordError>>>,
    files: Arc<Mutex<Vec<PathBuf>>>,
    thread: Option<JoinHandle<()>>,
}

impl RecorderHandle {
    /// Counters so far.
    pub fn stats(&self) -> RecordStats {
        self.counters.snapshot()
    }

    /// The files opened so far, oldest first.
    pub fn files(&self) -> Vec<PathBuf> {
        self.files.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Stops the writer after it has written every queued message, finishes the
    /// current file and returns the final counters, or the first write error (the
    /// writer keeps draining after an error, dropping and counting messages, so that
    /// the hot thread never stalls).
    pub fn stop(mut self) -> Result<RecordStats, RecordError> {
        self.finish()?;
        if let Some(e) = self.error.lock().ok().and_then(|mut e| e.take()) {
            return Err(e);
        }
        Ok(self.counters.snapshot())
    }

    fn finish(&mut self) -> Result<(), RecordError> {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().map_err(|_| RecordError::Thread("writer panicked".into()))?;
        }
        Ok(())
    }
}

impl Drop for RecorderHandle {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Constructor of a recorder (see the module docs).
#[derive(Debug)]
pub struct Recorder;

impl Recorder {
    /// Starts a recorder writing `dir/prefix-YYYYmmddTHHMMSS-N.gz` files with the
    /// default [`PoolConfig`]. Creates `dir` if needed.
    pub fn spawn(
        dir: impl AsRef<Path>,
        prefix: &str,
        policy: RotatePolicy,
    ) -> Result<(RecordTap, RecorderHandle), RecordError> {
        Self::spawn_with_pool(dir, prefix, policy, PoolConfig::default())
    }

    /// [`Recorder::spawn`] with an explicit buffer pool.
    pub fn spawn_with_pool(
        dir: impl AsRef<Path>,
        prefix: &str,
        policy: RotatePolicy,
        pool: PoolConfig,
    ) -> Result<(RecordTap, RecorderHandle), RecordError> {
        if pool.buffers == 0 || pool.buffer_bytes == 0 {
            return Err(RecordError::Config("pool needs at least one buffer of at least one byte"));
        }
        if prefix.is_empty() || prefix.contains(['/', '\\']) || prefix == "." || prefix == ".." {
            return Err(RecordError::Config("prefix must be a non-empty file name part"));
        }
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|source| RecordError::Io { path: dir.clone(), source })?;
        let free = Arc::new(ArrayQueue::new(pool.buffers));
        let filled = Arc::new(ArrayQueue::new(pool.buffers));
        for _ in 0..pool.buffers {
            let _ = free.push(Box::new(Slot { ts: 0, data: Vec::with_capacity(pool.buffer_bytes) }));
        }
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let files = Arc::new(Mutex::new(Vec::new()));
        let mut writer = Writer {
            dir,
            prefix: prefix.to_string(),
            policy,
            free: free.clone(),
            filled: filled.clone(),
            counters: counters.clone(),
            error: error.clone(),
            files: files.clone(),
            out: None,
            seq: 0,
            line: Vec::with_capacity(pool.buffer_bytes + 32),
        };
        let stop_w = stop.clone();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || writer.run(&stop_w))
            .map_err(|e| RecordError::Thread(e.to_string()))?;
        let tap = RecordTap { free, filled, counters: counters.clone(), cap: pool.buffer_bytes };
        Ok((tap, RecorderHandle { stop, counters, error, files, thread: Some(thread) }))
    }
}

/// The file being written.
struct OutFile {
    path: PathBuf,
    enc: GzEncoder<BufWriter<File>>,
    opened: Instant,
    bytes: u64,
    /// When data was first written after the last flush.
    dirty_since: Option<Instant>,
}

struct Writer {
    dir: PathBuf,
    prefix: String,
    policy: RotatePolicy,
    free: Arc<ArrayQueue<Box<Slot>>>,
    filled: Arc<ArrayQueue<Box<Slot>>>,
    counters: Arc<Counters>,
    error: Arc<Mutex<Option<RecordError>>>,
    files: Arc<Mutex<Vec<PathBuf>>>,
    out: Option<OutFile>,
    seq: u64,
    line: Vec<u8>,
}

impl Writer {
    fn run(&mut self, stop: &AtomicBool) {
        loop {
            // Read the flag before draining, so that everything pushed before stop()
            // is written.
            let stopping = stop.load(Ordering::Acquire);
            let mut any = false;
            while let Some(slot) = self.filled.pop() {
                any = true;
                let res = self.write(&slot);
                let _ = self.free.push(slot);
                if let Err(e) = res {
                    self.counters.dropped_io.fetch_add(1, Ordering::Relaxed);
                    self.fail(e);
                }
            }
            if let Err(e) = self.housekeeping() {
                self.fail(e);
            }
            if stopping {
                break;
            }
            if !any {
                std::thread::sleep(IDLE_SLEEP);
            }
        }
        if let Some(out) = self.out.take() {
            if let Err(e) = close(out) {
                self.fail(e);
            }
        }
    }

    fn fail(&mut self, e: RecordError) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
        // Drop the broken file; the next message tries a new one.
        self.out = None;
    }

    /// Periodic flush and age rotation.
    fn housekeeping(&mut self) -> Result<(), RecordError> {
        let Some(out) = self.out.as_mut() else { return Ok(()) };
        if self.policy.max_age_secs > 0 && out.opened.elapsed() >= Duration::from_secs(self.policy.max_age_secs) {
            let out = self.out.take().expect("checked above");
            return close(out);
        }
        if out.dirty_since.is_some_and(|t| t.elapsed() >= FLUSH_INTERVAL.saturating_sub(IDLE_SLEEP * 5)) {
            out.enc.flush().map_err(|source| RecordError::Io { path: out.path.clone(), source })?;
            out.dirty_since = None;
            self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn write(&mut self, slot: &Slot) -> Result<(), RecordError> {
        if self.out.is_none() {
            self.out = Some(self.open()?);
        }
        self.line.clear();
        write_i64(&mut self.line, slot.ts);
        self.line.push(b' ');
        self.line.extend_from_slice(&slot.data);
        self.line.push(b'\n');
        let out = self.out.as_mut().expect("opened above");
        out.enc.write_all(&self.line).map_err(|source| RecordError::Io { path: out.path.clone(), source })?;
        out.bytes += self.line.len() as u64;
        out.dirty_since.get_or_insert_with(Instant::now);
        self.counters.recorded.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(self.line.len() as u64, Ordering::Relaxed);
        if self.policy.max_bytes > 0 && out.bytes >= self.policy.max_bytes {
            let out = self.out.take().expect("present");
            close(out)?;
        }
        Ok(())
    }

    fn open(&mut self) -> Result<OutFile, RecordError> {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let name = format!("{}-{}-{}.gz", self.prefix, utc_stamp(secs), self.seq);
        self.seq += 1;
        let path = self.dir.join(name);
        let file = File::create(&path).map_err(|source| RecordError::Io { path: path.clone(), source })?;
        self.counters.files.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.files.lock() {
            f.push(path.clone());
        }
        Ok(OutFile {
            path,
            enc: GzEncoder::new(BufWriter::with_capacity(64 << 10, file), Compression::default()),
            opened: Instant::now(),
            bytes: 0,
            dirty_since: None,
        })
    }
}

/// Finishes the gzip member (trailer) and flushes the file.
fn close(out: OutFile) -> Result<(), RecordError> {
    let path = out.path;
    let io = |source| RecordError::Io { path: path.clone(), source };
    let mut inner = out.enc.finish().map_err(io)?;
    inner.flush().map_err(io)?;
    Ok(())
}

/// Appends the decimal digits of `v` without allocating beyond `out`'s capacity.
fn write_i64(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let neg = v < 0;
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if neg {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// `YYYYmmddTHHMMSS` (UTC) of Unix seconds.
pub fn utc_stamp(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Proleptic Gregorian date of days since 1970-01-01 (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_digits() {
        assert_eq!(utc_stamp(0), "19700101T000000");
        assert_eq!(utc_stamp(1_723_161_253), "20240808T235413");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000");
        let mut v = Vec::new();
        for n in [0i64, 7, -12, 1_723_161_253_937_085_768, i64::MIN, i64::MAX] {
            v.clear();
            write_i64(&mut v, n);
            assert_eq!(std::str::from_utf8(&v).unwrap(), n.to_string());
        }
    }

    #[test]
    fn bad_config_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = RotatePolicy::default();
        assert!(Recorder::spawn_with_pool(dir.path(), "x", p, PoolConfig { buffers: 0, buffer_bytes: 1 }).is_err());
        assert!(Recorder::spawn(dir.path(), "a/b", p).is_err());
        assert!(Recorder::spawn(dir.path(), "", p).is_err());
    }

    #[test]
    fn oversize_is_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (tap, h) = Recorder::spawn_with_pool(
            dir.path(),
            "t",
            RotatePolicy::default(),
            PoolConfig { buffers: 4, buffer_bytes: 8 },
        )
        .unwrap();
        assert!(!tap.record(1, b"123456789"));
        assert!(tap.record(2, b"12345678"));
        let s = h.stop().unwrap();
        assert_eq!((s.recorded, s.dropped, s.dropped_too_big), (1, 1, 1));
    }
}
