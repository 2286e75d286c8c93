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
//! lock, makes no system call and allocates nothing: it pops a preallocated
//! fixed-capacity buffer from a free list (a crossbeam [`ArrayQueue`]), copies the
//! message into it and pushes it onto the filled queue (one `ArrayQueue` with room for
//! every buffer, so that push cannot fail). Buffers come in two sizes ([`PoolConfig`]):
//! many small ones for the common message (a bookTicker or trade is ~200 bytes, a
//! depth diff up to a few KiB) and fewer large ones for the rare big message (depth
//! diffs of a fast market reach 64 KiB), so that the pool holds tens of thousands of
//! messages in tens of MiB. The default pool, 16 384 x 4 KiB + 256 x 256 KiB (128 MiB
//! reserved, touched only as used), buffers about a tenth of a second of the fastest
//! loopback replay this machine delivers, and the writer drains it faster than that
//! replay fills it: `tests/record.rs` records a max-pace replay with zero drops.
//!
//! A message larger than a large buffer, or one arriving while every buffer of its
//! size is in flight (the writer is behind, or stopped, or memory is exhausted), is
//! dropped and counted: losing a recorded message is better than delaying a trading
//! decision. The loss is not silent in the file either: the next recorded message
//! carries the count of messages dropped before it, and the writer puts a gap marker
//! line ahead of it, `<local ns> {"statarb_gap":{"dropped":N}}` ([`GAP_MARKER_KEY`]),
//! so that a replay of the recording knows its books are broken there.
//!
//! # REST snapshots
//!
//! Every REST depth snapshot the live feed fetches is recorded too, by the snapshot
//! thread that fetched it ([`crate::feed::snapshot::SnapshotFetcher`], through its own
//! [`RecordTap`] from [`RecordTap::producer`]), so that a recording replays with the
//! live book procedure (`import --book sync`, [`crate::serve`]). Its line names the
//! symbol, so that no reader has to guess whose snapshot it is:
//!
//! `<local receive ns> {"statarb_snapshot":"BTCUSDT","data":{"lastUpdateId":..,"bids":..,"asks":..}}`
//!
//! ([`SNAPSHOT_KEY`]; `data` is the response body as received, its CR and LF bytes,
//! which JSON allows only as whitespace, turned into spaces). No venue message starts
//! with that key, so readers tell it from a stream message by its first bytes
//! ([`parse_snapshot_line`]). The receive time is the snapshot thread's wall clock when
//! the response arrived; the line is written in the order it reached the writer, so it
//! may precede by microseconds the messages of a hot-loop turn that began before it.
//! A snapshot is a large message (about 60 KiB at 1000 levels a side) and goes into a
//! large buffer; one larger than a large buffer is dropped and counted like any
//! message. The shared recordings hold older, untagged snapshot lines
//! (`{"lastUpdateId":..}`, the symbol being the previous line's), which the readers
//! still accept.
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
//! The writer drains the filled queue as fast as it can and, when it finds it empty,
//! backs off (spinning, then yielding, then parking for at most [`IDLE_PARK`]) instead
//! of being woken: waking a parked thread is a system call, which the hot thread must
//! not make. The back-off costs at most [`IDLE_PARK`] of latency per idle period,
//! which the pool covers many times over.

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

use crate::types::{Ts, NS_PER_SEC};
use crate::utc::Civil;

/// Longest time unflushed data stays in the writer (the crash-loss bound).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Longest the idle writer parks before it looks at the queue again.
pub const IDLE_PARK: Duration = Duration::from_micros(100);
/// Deflate level of the files: 1, the fastest. The writer must outrun the feed; on
/// the Binance recordings level 1 compresses 2.4 times as fast as the default level 6,
/// for files a third larger (16 % of the raw size instead of 12 %).
pub const GZIP_LEVEL: u32 = 1;
/// The JSON key of a gap marker line: `{"statarb_gap":{"dropped":N}}`.
pub const GAP_MARKER_KEY: &str = "statarb_gap";
/// The JSON key of a tagged REST snapshot line:
/// `{"statarb_snapshot":"BTCUSDT","data":{..}}` (see the module docs).
pub const SNAPSHOT_KEY: &str = "statarb_snapshot";
/// Longest symbol a tagged snapshot line may name, bytes.
pub const MAX_SNAPSHOT_SYMBOL: usize = 32;

/// The first bytes of a tagged snapshot line's message, up to the symbol.
const SNAPSHOT_HEAD: &[u8] = b"{\"statarb_snapshot\":\"";
/// Between the symbol and the body.
const SNAPSHOT_MID: &[u8] = b"\",\"data\":";

/// Why a message that starts as a tagged snapshot line is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SnapshotLineError {
    /// The symbol is not closed by `","data":`, or longer than [`MAX_SNAPSHOT_SYMBOL`].
    #[error("tagged snapshot line: symbol not closed by \",\"data\": within {MAX_SNAPSHOT_SYMBOL} bytes")]
    Symbol,
    /// The symbol is empty or holds a byte other than an ASCII letter or digit.
    #[error("tagged snapshot line: the symbol is empty or not ASCII alphanumeric")]
    SymbolChars,
    /// `data` is not a JSON object closed by the line's final `}`.
    #[error("tagged snapshot line: \"data\" is not an object ending the line")]
    Data,
}

/// A tagged snapshot line's symbol and snapshot body, both borrowed from the line.
pub type SnapshotParts<'a> = (&'a [u8], &'a [u8]);

/// A tagged snapshot line's message (the part after the receive time) split into its
/// symbol and its snapshot body: `None` if the message is not a tagged snapshot line
/// (it does not start with `{"statarb_snapshot":"`), `Some(Err)` if it starts as one
/// but is malformed. Shared by the readers ([`crate::import`], [`crate::serve`]), so
/// that they agree on the format. The body's JSON is not checked here: the caller's
/// snapshot parser does that.
pub fn parse_snapshot_line(msg: &[u8]) -> Option<Result<SnapshotParts<'_>, SnapshotLineError>> {
    let rest = msg.strip_prefix(SNAPSHOT_HEAD)?;
    Some(split_snapshot(rest))
}

fn split_snapshot(rest: &[u8]) -> Result<SnapshotParts<'_>, SnapshotLineError> {
    let end = rest.iter().take(MAX_SNAPSHOT_SYMBOL + 1).position(|&c| c == b'"').ok_or(SnapshotLineError::Symbol)?;
    let (sym, tail) = rest.split_at(end);
    if sym.is_empty() || !sym.iter().all(u8::is_ascii_alphanumeric) {
        return Err(SnapshotLineError::SymbolChars);
    }
    let tail = tail.strip_prefix(SNAPSHOT_MID).ok_or(SnapshotLineError::Symbol)?;
    let data = tail.trim_ascii_end().strip_suffix(b"}").ok_or(SnapshotLineError::Data)?.trim_ascii();
    if data.len() < 2 || data[0] != b'{' || data[data.len() - 1] != b'}' {
        return Err(SnapshotLineError::Data);
    }
    Ok((sym, data))
}

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

/// The preallocated buffer pool between the hot thread and the writer: `buffers`
/// small buffers and `large_buffers` large ones. A message goes into the smallest
/// size it fits; one longer than `large_bytes` (or than `buffer_bytes` when there are
/// no large buffers) is dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Number of small buffers.
    pub buffers: usize,
    /// Capacity of each small buffer, bytes.
    pub buffer_bytes: usize,
    /// Number of large buffers (0 for none).
    pub large_buffers: usize,
    /// Capacity of each large buffer, bytes: the largest message recorded.
    pub large_bytes: usize,
}

impl PoolConfig {
    /// `buffers` buffers of `buffer_bytes` and no large ones.
    pub const fn uniform(buffers: usize, buffer_bytes: usize) -> Self {
        PoolConfig { buffers, buffer_bytes, large_buffers: 0, large_bytes: 0 }
    }

    /// Bytes reserved by the pool (virtual: pages are touched only as buffers fill).
    pub fn reserved_bytes(&self) -> Option<usize> {
        let small = self.buffers.checked_mul(self.buffer_bytes)?;
        small.checked_add(self.large_buffers.checked_mul(self.large_bytes)?)
    }

    /// Checks that there is a small buffer, that large ones are larger, and that the
    /// whole pool stays under [`MAX_POOL_BYTES`].
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.buffers == 0 || self.buffer_bytes == 0 {
            return Err(RecordError::Config("pool needs at least one buffer of at least one byte"));
        }
        if self.large_buffers > 0 && self.large_bytes <= self.buffer_bytes {
            return Err(RecordError::Config("large buffers must be larger than small ones"));
        }
        match self.reserved_bytes() {
            Some(n) if n <= MAX_POOL_BYTES => Ok(()),
            _ => Err(RecordError::Config("pool larger than 16 GiB")),
        }
    }
}

/// Largest pool: 16 GiB.
pub const MAX_POOL_BYTES: usize = 16 << 30;

impl Default for PoolConfig {
    /// 16 384 buffers of 4 KiB and 256 of 256 KiB (128 MiB reserved).
    fn default() -> Self {
        PoolConfig { buffers: 16_384, buffer_bytes: 4 << 10, large_buffers: 256, large_bytes: 256 << 10 }
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
    /// Of those, dropped because every buffer of their size was in flight.
    pub dropped_full: u64,
    /// Of those, dropped because they were larger than a buffer.
    pub dropped_too_big: u64,
    /// Uncompressed line bytes written (time stamp, space, message, newline).
    pub bytes: u64,
    /// Files opened.
    pub files: u64,
    /// Sync flushes made.
    pub flushes: u64,
    /// Gap marker lines written (each stands for one or more dropped messages).
    pub gap_markers: u64,
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
    gap_markers: AtomicU64,
    /// Messages dropped by the tap and not yet attached to a recorded message as its
    /// gap count (written by the producers with atomic read-modify-writes; the writer
    /// takes what is left at stop).
    unmarked: AtomicU64,
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
            gap_markers: self.gap_markers.load(Ordering::Relaxed),
        }
    }
}

/// One message in flight: its local time, a copy of its bytes, and how many messages
/// were dropped just before it (0 almost always).
#[derive(Debug)]
struct Slot {
    ts: Ts,
    data: Vec<u8>,
    dropped_before: u64,
    /// Which free list the buffer goes back to.
    large: bool,
}

/// The hot thread's end of the recorder: see [`RecordTap::record`].
#[derive(Debug)]
pub struct RecordTap {
    free: Arc<ArrayQueue<Box<Slot>>>,
    free_large: Arc<ArrayQueue<Box<Slot>>>,
    filled: Arc<ArrayQueue<Box<Slot>>>,
    counters: Arc<Counters>,
    small_cap: usize,
    large_cap: usize,
}

impl RecordTap {
    /// Queues a message received at `local_ts` (ns since the epoch) for writing.
    /// Never blocks and never allocates; returns false if the message was dropped
    /// (larger than a buffer, or no free buffer), which is counted in the stats. The
    /// message should not contain a newline (venue JSON does not).
    #[inline]
    pub fn record(&self, local_ts: Ts, msg: &[u8]) -> bool {
        self.record_with(local_ts, msg.len(), |data| data.extend_from_slice(msg))
    }

    /// Takes a buffer for `len` bytes, lets `fill` write exactly those bytes into it
    /// (within its capacity: no reallocation) and queues it.
    #[inline]
    fn record_with(&self, local_ts: Ts, len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> bool {
        let free = if len <= self.small_cap {
            &self.free
        } else if len <= self.large_cap {
            &self.free_large
        } else {
            self.counters.dropped_too_big.fetch_add(1, Ordering::Relaxed);
            self.counters.unmarked.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let Some(mut slot) = free.pop() else {
            self.counters.dropped_full.fetch_add(1, Ordering::Relaxed);
            self.counters.unmarked.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        slot.ts = local_ts;
        slot.data.clear();
        fill(&mut slot.data);
        // A plain load first: the read-modify-write only when there were drops.
        slot.dropped_before = if self.counters.unmarked.load(Ordering::Relaxed) == 0 {
            0
        } else {
            self.counters.unmarked.swap(0, Ordering::Relaxed)
        };
        // The filled queue has room for every buffer, so this push cannot fail.
        if let Err(slot) = self.filled.push(slot) {
            self.counters.unmarked.fetch_add(slot.dropped_before + 1, Ordering::Relaxed);
            self.counters.dropped_full.fetch_add(1, Ordering::Relaxed);
            let _ = free.push(slot);
            return false;
        }
        true
    }

    /// Queues a REST depth snapshot of `symbol`, received at `local_ts`, as a tagged
    /// snapshot line (see the module docs). Never blocks and never allocates: the line
    /// is assembled in a pool buffer, CR and LF bytes of `body` turned into spaces.
    /// Returns false if it was dropped (larger than a buffer, no free buffer, or a
    /// symbol that is empty, not ASCII alphanumeric or longer than
    /// [`MAX_SNAPSHOT_SYMBOL`]), counted like a dropped message.
    pub fn record_snapshot(&self, local_ts: Ts, symbol: &str, body: &[u8]) -> bool {
        let sym = symbol.as_bytes();
        if sym.is_empty() || sym.len() > MAX_SNAPSHOT_SYMBOL || !sym.iter().all(u8::is_ascii_alphanumeric) {
            self.counters.dropped_too_big.fetch_add(1, Ordering::Relaxed);
            self.counters.unmarked.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let len = SNAPSHOT_HEAD.len() + sym.len() + SNAPSHOT_MID.len() + body.len() + 1;
        self.record_with(local_ts, len, |data| {
            data.extend_from_slice(SNAPSHOT_HEAD);
            data.extend_from_slice(sym);
            data.extend_from_slice(SNAPSHOT_MID);
            data.extend(body.iter().map(|&c| if c == b'\n' || c == b'\r' { b' ' } else { c }));
            data.push(b'}');
        })
    }

    /// A second producer handle on the same pool and writer, for another thread (the
    /// snapshot thread). The queues are multi-producer; the drop accounting is atomic.
    pub fn producer(&self) -> RecordTap {
        RecordTap {
            free: self.free.clone(),
            free_large: self.free_large.clone(),
            filled: self.filled.clone(),
            counters: self.counters.clone(),
            small_cap: self.small_cap,
            large_cap: self.large_cap,
        }
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
        pool.validate()?;
        if prefix.is_empty() || prefix.contains(['/', '\\']) || prefix == "." || prefix == ".." {
            return Err(RecordError::Config("prefix must be a non-empty file name part"));
        }
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|source| RecordError::Io { path: dir.clone(), source })?;
        let slot = |bytes, large| Box::new(Slot { ts: 0, data: Vec::with_capacity(bytes), dropped_before: 0, large });
        let free = Arc::new(ArrayQueue::new(pool.buffers));
        for _ in 0..pool.buffers {
            let _ = free.push(slot(pool.buffer_bytes, false));
        }
        // ArrayQueue needs a capacity of at least one.
        let free_large = Arc::new(ArrayQueue::new(pool.large_buffers.max(1)));
        for _ in 0..pool.large_buffers {
            let _ = free_large.push(slot(pool.large_bytes, true));
        }
        let filled = Arc::new(ArrayQueue::new(pool.buffers + pool.large_buffers));
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let files = Arc::new(Mutex::new(Vec::new()));
        let mut writer = Writer {
            dir,
            prefix: prefix.to_string(),
            policy,
            free: free.clone(),
            free_large: free_large.clone(),
            filled: filled.clone(),
            counters: counters.clone(),
            error: error.clone(),
            files: files.clone(),
            out: None,
            seq: 0,
            line: Vec::with_capacity(pool.buffer_bytes.max(pool.large_bytes) + 64),
            last_ts: 0,
            compression: Compression::new(GZIP_LEVEL),
        };
        let stop_w = stop.clone();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || writer.run(&stop_w))
            .map_err(|e| RecordError::Thread(e.to_string()))?;
        let large_cap = if pool.large_buffers > 0 { pool.large_bytes } else { pool.buffer_bytes };
        let tap =
            RecordTap { free, free_large, filled, counters: counters.clone(), small_cap: pool.buffer_bytes, large_cap };
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
    free_large: Arc<ArrayQueue<Box<Slot>>>,
    filled: Arc<ArrayQueue<Box<Slot>>>,
    counters: Arc<Counters>,
    error: Arc<Mutex<Option<RecordError>>>,
    files: Arc<Mutex<Vec<PathBuf>>>,
    out: Option<OutFile>,
    seq: u64,
    line: Vec<u8>,
    /// Local time of the last message written (stamps a trailing gap marker).
    last_ts: Ts,
    compression: Compression,
}

impl Writer {
    fn run(&mut self, stop: &AtomicBool) {
        let backoff = crossbeam::utils::Backoff::new();
        loop {
            // Read the flag before draining, so that everything pushed before stop()
            // is written.
            let stopping = stop.load(Ordering::Acquire);
            let mut any = false;
            while let Some(slot) = self.filled.pop() {
                any = true;
                let res = self.write(&slot);
                let free = if slot.large { &self.free_large } else { &self.free };
                let _ = free.push(slot);
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
            if any {
                backoff.reset();
            } else if backoff.is_completed() {
                std::thread::park_timeout(IDLE_PARK);
            } else {
                backoff.snooze();
            }
        }
        // Drops after the last recorded message: mark them at the end of the file.
        let trailing = self.counters.unmarked.swap(0, Ordering::Relaxed);
        if trailing > 0 {
            if let Err(e) = self.write_gap(self.last_ts, trailing) {
                self.fail(e);
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
        if out.dirty_since.is_some_and(|t| t.elapsed() >= FLUSH_INTERVAL.saturating_sub(IDLE_PARK * 5)) {
            out.enc.flush().map_err(|source| RecordError::Io { path: out.path.clone(), source })?;
            out.dirty_since = None;
            self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn write(&mut self, slot: &Slot) -> Result<(), RecordError> {
        if slot.dropped_before > 0 {
            self.write_gap(slot.ts, slot.dropped_before)?;
        }
        self.line.clear();
        write_i64(&mut self.line, slot.ts);
        self.line.push(b' ');
        self.line.extend_from_slice(&slot.data);
        self.line.push(b'\n');
        self.write_line()?;
        self.last_ts = slot.ts;
        self.counters.recorded.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes the gap marker for `dropped` messages lost just before local time `ts`.
    fn write_gap(&mut self, ts: Ts, dropped: u64) -> Result<(), RecordError> {
        self.line.clear();
        write_i64(&mut self.line, ts);
        self.line.extend_from_slice(b" {\"");
        self.line.extend_from_slice(GAP_MARKER_KEY.as_bytes());
        self.line.extend_from_slice(b"\":{\"dropped\":");
        write_i64(&mut self.line, dropped.min(i64::MAX as u64) as i64);
        self.line.extend_from_slice(b"}}\n");
        self.write_line()?;
        self.counters.gap_markers.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes `self.line` into the current file (opening one if needed), rotating by
    /// size after it.
    fn write_line(&mut self) -> Result<(), RecordError> {
        if self.out.is_none() {
            self.out = Some(self.open()?);
        }
        let out = self.out.as_mut().expect("opened above");
        out.enc.write_all(&self.line).map_err(|source| RecordError::Io { path: out.path.clone(), source })?;
        out.bytes += self.line.len() as u64;
        out.dirty_since.get_or_insert_with(Instant::now);
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
            enc: GzEncoder::new(BufWriter::with_capacity(256 << 10, file), self.compression),
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
    let c = Civil::of(secs.saturating_mul(NS_PER_SEC));
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}", c.year, c.month, c.day, c.hour, c.minute, c.second)
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
        for bad in [
            PoolConfig::uniform(0, 1),
            PoolConfig::uniform(1, 0),
            PoolConfig { buffers: 4, buffer_bytes: 64, large_buffers: 1, large_bytes: 64 },
            PoolConfig::uniform(usize::MAX, 2),
            PoolConfig::uniform(1 << 20, 1 << 20),
        ] {
            assert!(Recorder::spawn_with_pool(dir.path(), "x", p, bad).is_err(), "{bad:?}");
        }
        assert!(Recorder::spawn(dir.path(), "a/b", p).is_err());
        assert!(Recorder::spawn(dir.path(), "", p).is_err());
    }

    #[test]
    fn oversize_is_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (tap, h) =
            Recorder::spawn_with_pool(dir.path(), "t", RotatePolicy::default(), PoolConfig::uniform(4, 8)).unwrap();
        assert!(!tap.record(1, b"123456789"));
        assert!(tap.record(2, b"12345678"));
        let s = h.stop().unwrap();
        assert_eq!((s.recorded, s.dropped, s.dropped_too_big), (1, 1, 1));
    }

    #[test]
    fn a_message_goes_into_the_smallest_buffer_it_fits() {
        let dir = tempfile::tempdir().unwrap();
        let pool = PoolConfig { buffers: 1, buffer_bytes: 8, large_buffers: 1, large_bytes: 64 };
        let (tap, h) = Recorder::spawn_with_pool(dir.path(), "t", RotatePolicy::default(), pool).unwrap();
        assert!(tap.record(1, &[b'a'; 40]));
        assert!(!tap.record(2, &[b'a'; 65]));
        let s = h.stop().unwrap();
        assert_eq!((s.recorded, s.dropped_too_big), (1, 1));
    }

    /// Drops are marked in the file: the next recorded message is preceded by a gap
    /// marker with the count, and drops after the last message get a trailing one.
    #[test]
    fn drops_leave_gap_markers_in_the_recording() {
        let dir = tempfile::tempdir().unwrap();
        let (tap, h) =
            Recorder::spawn_with_pool(dir.path(), "g", RotatePolicy::default(), PoolConfig::uniform(4, 8)).unwrap();
        assert!(tap.record(1, b"one"));
        assert!(!tap.record(2, b"far too long"));
        assert!(!tap.record(3, b"also too long"));
        assert!(tap.record(4, b"four"));
        assert!(!tap.record(5, b"long at the end"));
        let s = h.stop().unwrap();
        assert_eq!((s.recorded, s.dropped, s.gap_markers), (2, 3, 2));
        let file = fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        let mut text = String::new();
        use std::io::Read;
        flate2::read::GzDecoder::new(File::open(file).unwrap()).read_to_string(&mut text).unwrap();
        assert_eq!(text, "1 one\n4 {\"statarb_gap\":{\"dropped\":2}}\n4 four\n4 {\"statarb_gap\":{\"dropped\":1}}\n");
    }

    #[test]
    fn tagged_snapshot_lines_parse_and_malformed_ones_are_errors() {
        let ok = br#"{"statarb_snapshot":"BTCUSDT","data":{"lastUpdateId":7,"bids":[],"asks":[]}}"#;
        let (sym, data) = parse_snapshot_line(ok).unwrap().unwrap();
        assert_eq!((sym, data), (&b"BTCUSDT"[..], &br#"{"lastUpdateId":7,"bids":[],"asks":[]}"#[..]));
        // Not tagged: a stream message, an untagged snapshot, a gap marker.
        for other in [
            &br#"{"stream":"btcusdt@trade","data":{}}"#[..],
            br#"{"lastUpdateId":7,"bids":[],"asks":[]}"#,
            br#"{"statarb_gap":{"dropped":1}}"#,
            b"",
        ] {
            assert!(parse_snapshot_line(other).is_none());
        }
        use SnapshotLineError::*;
        for (bad, why) in [
            (&br#"{"statarb_snapshot":"BTCUSDT"#[..], Symbol),
            (br#"{"statarb_snapshot":"BTCUSDT","dat":{}}"#, Symbol),
            (br#"{"statarb_snapshot":"BTCUSDTBTCUSDTBTCUSDTBTCUSDTBTCUSDT","data":{}}"#, Symbol),
            (br#"{"statarb_snapshot":"","data":{}}"#, SymbolChars),
            (br#"{"statarb_snapshot":"BTC USDT","data":{}}"#, SymbolChars),
            (br#"{"statarb_snapshot":"BTCUSDT","data":{"lastUpdateId":7}"#, Data),
            (br#"{"statarb_snapshot":"BTCUSDT","data":[1]}"#, Data),
            (br#"{"statarb_snapshot":"BTCUSDT","data":}"#, Data),
            (br#"{"statarb_snapshot":"BTCUSDT","data":"#, Data),
        ] {
            assert_eq!(parse_snapshot_line(bad), Some(Err(why)), "{}", String::from_utf8_lossy(bad));
        }
    }

    /// A snapshot recorded through a second producer is one tagged line (its newlines
    /// turned into spaces) that parses back to the symbol and the body.
    #[test]
    fn snapshots_are_recorded_as_tagged_lines() {
        let dir = tempfile::tempdir().unwrap();
        let pool = PoolConfig { buffers: 4, buffer_bytes: 64, large_buffers: 1, large_bytes: 256 };
        let (tap, h) = Recorder::spawn_with_pool(dir.path(), "s", RotatePolicy::default(), pool).unwrap();
        let snap = tap.producer();
        assert!(tap.record(1, b"one"));
        let body = b"{\"lastUpdateId\":7,\r\n\"bids\":[[\"1.00\",\"2\"]],\"asks\":[]}";
        assert!(snap.record_snapshot(2, "BTCUSDT", body));
        assert!(!snap.record_snapshot(3, "BTC/USDT", body));
        assert!(!snap.record_snapshot(4, "BTCUSDT", &[b' '; 300]));
        assert!(tap.record(5, b"five"));
        let s = h.stop().unwrap();
        assert_eq!((s.recorded, s.dropped, s.gap_markers), (3, 2, 1));
        let file = fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        let mut text = String::new();
        use std::io::Read;
        flate2::read::GzDecoder::new(File::open(file).unwrap()).read_to_string(&mut text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        let tagged = lines[1].strip_prefix("2 ").unwrap();
        let (sym, data) = parse_snapshot_line(tagged.as_bytes()).unwrap().unwrap();
        assert_eq!(sym, b"BTCUSDT");
        assert_eq!(data, &b"{\"lastUpdateId\":7,  \"bids\":[[\"1.00\",\"2\"]],\"asks\":[]}"[..]);
        assert_eq!(lines[2], "5 {\"statarb_gap\":{\"dropped\":2}}");
    }
}
