//! REST depth snapshots, fetched off the hot thread.
//!
//! Binance's local-book procedure needs a REST snapshot whenever a book (re)syncs. An
//! HTTP request blocks for milliseconds, so it runs on its own thread: the hot thread
//! pushes a request (an instrument id) into an SPSC ring, keeps buffering diffs, and
//! later pops the response from a second ring. Nothing on the hot thread waits.
//!
//! `GET {rest_url}/api/v3/depth?symbol={SYMBOL}&limit={limit}` (Binance Spot, request
//! weight 5 to 250 by limit, [`depth_weight`]). The weight is drawn from the per-IP
//! [`IpBudget`] the gateway also uses, *before* the request is sent: a request the
//! budget refuses (weight used up, or a server back-off in force) is not sent and comes
//! back as [`SnapshotError::Limited`]. A 429 or 418 answer blocks the whole budget for
//! its `Retry-After` (capped, [`IpBudget::back_off`]) and comes back as
//! [`SnapshotError::Backoff`]. The server's `X-MBX-USED-WEIGHT-1M` is taken into the
//! budget. Failures come back as responses carrying a typed error; the caller decides
//! when to ask again (with back-off: see [`crate::feed::source`]).
//!
//! With a [`RecordTap`], every 2xx body is also recorded, on this thread, as a tagged
//! snapshot line ([`RecordTap::record_snapshot`]) before it goes to the hot thread: the
//! hot thread neither copies nor formats it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use thiserror::Error;

use crate::feed::record::RecordTap;
use crate::ratelimit::{depth_weight, IpBudget, RateLimited};
use crate::ring::{ring, Consumer, Full, Producer};
use crate::types::{InstId, Ts};

/// Largest snapshot body read, bytes: a 5000-level snapshot is about 300 KB.
pub const MAX_SNAPSHOT_BYTES: u64 = 8 << 20;

/// Why a snapshot request produced no body.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// The instrument id has no symbol.
    #[error("no symbol for instrument {0}")]
    UnknownInstrument(InstId),
    /// Not sent: the per-IP budget refused it (weight used up, or a back-off).
    #[error("GET {url}: not sent, rate limited ({:?}) until {} ns", .limited.limit, .limited.retry_at)]
    Limited {
        /// The request URL.
        url: String,
        /// Which limit, and until when.
        limited: RateLimited,
    },
    /// HTTP 429 or 418: every request on the IP waits until `until`.
    #[error("GET {url}: HTTP {status}, backing off until {until} ns")]
    Backoff {
        /// The request URL.
        url: String,
        /// 429 or 418.
        status: u16,
        /// End of the back-off (wall ns), `Retry-After` capped.
        until: Ts,
    },
    /// Another non-2xx answer.
    #[error("GET {url}: HTTP {status}")]
    Status {
        /// The request URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// No answer, or the body could not be read (timeout, connection, body above
    /// [`MAX_SNAPSHOT_BYTES`]).
    #[error("GET {url}: {source}")]
    Http {
        /// The request URL.
        url: String,
        /// The transport error.
        #[source]
        source: ureq::Error,
    },
}

/// A snapshot response for one instrument.
#[derive(Debug)]
pub struct Snapshot {
    /// The instrument asked for.
    pub inst: InstId,
    /// The response body, or why there is none.
    pub body: Result<Vec<u8>, SnapshotError>,
    /// Wall-clock time the response arrived (ns since the epoch).
    pub local_ts: Ts,
}

/// The fetcher thread and its two rings.
#[derive(Debug)]
pub struct SnapshotFetcher {
    requests: Producer<Option<InstId>>,
    responses: Consumer<Snapshot>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SnapshotFetcher {
    /// Starts the fetcher for `symbols` (indexed by instrument id) against `rest_url`,
    /// each request drawing [`depth_weight`]`(limit)` from `budget`; `tap`, if given,
    /// records every snapshot received (see the module docs).
    pub fn spawn(
        rest_url: &str,
        symbols: Vec<String>,
        limit: u32,
        timeout: Duration,
        budget: Arc<IpBudget>,
        tap: Option<RecordTap>,
    ) -> std::io::Result<Self> {
        let (requests, mut rx) = ring::<Option<InstId>>(64);
        let (mut tx, responses) = ring::<Snapshot>(64);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let base = rest_url.trim_end_matches('/').to_string();
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into();
        let weight = depth_weight(limit);
        let thread = std::thread::Builder::new().name("snapshots".into()).spawn(move || loop {
            let Some(req) = rx.pop() else {
                if rx.is_abandoned() || stopped.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            let Some(inst) = req else { return };
            let body = match symbols.get(inst as usize) {
                Some(sym) => {
                    let url = format!("{base}/api/v3/depth?symbol={sym}&limit={limit}");
                    match budget.try_acquire(wall_ns(), weight) {
                        Ok(()) => fetch(&agent, url, &budget),
                        Err(limited) => Err(SnapshotError::Limited { url, limited }),
                    }
                }
                None => Err(SnapshotError::UnknownInstrument(inst)),
            };
            let local_ts = wall_ns();
            if let (Some(tap), Ok(b), Some(sym)) = (&tap, &body, symbols.get(inst as usize)) {
                // Never blocks; a full pool drops and counts.
                tap.record_snapshot(local_ts, sym, b);
            }
            let mut snap = Snapshot { inst, body, local_ts };
            while let Err(Full(back)) = tx.push(snap) {
                if tx.is_abandoned() || stopped.load(Ordering::Acquire) {
                    return;
                }
                snap = back;
                std::thread::sleep(Duration::from_millis(1));
            }
        })?;
        Ok(SnapshotFetcher { requests, responses, stop, thread: Some(thread) })
    }

    /// Asks for a snapshot of `inst`; false if the request ring is full (ask again later).
    #[inline]
    pub fn request(&mut self, inst: InstId) -> bool {
        self.requests.push(Some(inst)).is_ok()
    }

    /// A response, if one has arrived.
    #[inline]
    pub fn poll(&mut self) -> Option<Snapshot> {
        self.responses.pop()
    }
}

impl Drop for SnapshotFetcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.requests.push(None);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request: headers into the budget, 429/418 into a back-off, the body bounded.
fn fetch(agent: &ureq::Agent, url: String, budget: &IpBudget) -> Result<Vec<u8>, SnapshotError> {
    let mut resp = match agent.get(&url).call() {
        Ok(r) => r,
        Err(source) => return Err(SnapshotError::Http { url, source }),
    };
    let now = wall_ns();
    let header = |k: &str| resp.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
    budget.observe(now, header("x-mbx-used-weight-1m").and_then(|s| s.trim().parse().ok()));
    let status = resp.status().as_u16();
    if status == 429 || status == 418 {
        let until = budget.back_off(now, status, header("retry-after").as_deref());
        return Err(SnapshotError::Backoff { url, status, until });
    }
    if !(200..300).contains(&status) {
        return Err(SnapshotError::Status { url, status });
    }
    match resp.body_mut().with_config().limit(MAX_SNAPSHOT_BYTES).read_to_vec() {
        Ok(b) => Ok(b),
        Err(source) => Err(SnapshotError::Http { url, source }),
    }
}

/// Wall-clock ns since the epoch.
#[inline]
pub fn wall_ns() -> Ts {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as Ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn fetches_over_real_http_and_reports_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let body = r#"{"lastUpdateId":7,"bids":[],"asks":[]}"#;
            write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
            req
        });
        let mut f = SnapshotFetcher::spawn(
            &format!("http://{addr}"),
            vec!["BTCUSDT".into()],
            100,
            Duration::from_secs(5),
            Arc::new(IpBudget::new(6000, 300)),
            None,
        )
        .unwrap();
        assert!(f.request(0));
        let snap = loop {
            if let Some(s) = f.poll() {
                break s;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(snap.body.unwrap(), br#"{"lastUpdateId":7,"bids":[],"asks":[]}"#);
        let req = server.join().unwrap();
        assert!(req.starts_with("GET /api/v3/depth?symbol=BTCUSDT&limit=100 "), "{req}");

        // Unknown instrument and a closed port: errors, not panics.
        assert!(f.request(5));
        let snap = loop {
            if let Some(s) = f.poll() {
                break s;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(snap.body.is_err());
    }
}
