//! REST depth snapshots, fetched off the hot thread.
//!
//! Binance's local-book procedure needs a REST snapshot whenever a book (re)syncs. An
//! HTTP request blocks for milliseconds, so it runs on its own thread: the hot thread
//! pushes a request (an instrument id) into an SPSC ring, keeps buffering diffs, and
//! later pops the response body from a second ring. Nothing on the hot thread waits.
//!
//! `GET {rest_url}/api/v3/depth?symbol={SYMBOL}&limit={limit}` (Binance Spot, request
//! weight 5 to 250 by limit). Failures come back as responses carrying the error text;
//! the caller decides when to ask again.

use std::thread::JoinHandle;
use std::time::Duration;

use crate::ring::{ring, Consumer, Full, Producer};
use crate::types::{InstId, Ts};

/// A snapshot response for one instrument.
#[derive(Debug)]
pub struct Snapshot {
    /// The instrument asked for.
    pub inst: InstId,
    /// The response body, or why there is none.
    pub body: Result<Vec<u8>, String>,
    /// Wall-clock time the response arrived (ns since the epoch).
    pub local_ts: Ts,
}

/// The fetcher thread and its two rings.
#[derive(Debug)]
pub struct SnapshotFetcher {
    requests: Producer<Option<InstId>>,
    responses: Consumer<Snapshot>,
    thread: Option<JoinHandle<()>>,
}

impl SnapshotFetcher {
    /// Starts the fetcher for `symbols` (indexed by instrument id) against `rest_url`.
    pub fn spawn(rest_url: &str, symbols: Vec<String>, limit: u32, timeout: Duration) -> std::io::Result<Self> {
        let (requests, mut rx) = ring::<Option<InstId>>(64);
        let (mut tx, responses) = ring::<Snapshot>(64);
        let base = rest_url.trim_end_matches('/').to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(timeout)).build().into();
        let thread = std::thread::Builder::new().name("snapshots".into()).spawn(move || loop {
            let Some(req) = rx.pop() else {
                if rx.is_abandoned() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            let Some(inst) = req else { return };
            let body = match symbols.get(inst as usize) {
                Some(sym) => fetch(&agent, &format!("{base}/api/v3/depth?symbol={sym}&limit={limit}")),
                None => Err(format!("no symbol for instrument {inst}")),
            };
            let mut snap = Snapshot { inst, body, local_ts: wall_ns() };
            while let Err(Full(back)) = tx.push(snap) {
                snap = back;
                std::thread::sleep(Duration::from_millis(1));
            }
        })?;
        Ok(SnapshotFetcher { requests, responses, thread: Some(thread) })
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
        let _ = self.requests.push(None);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn fetch(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>, String> {
    let mut resp = agent.get(url).call().map_err(|e| format!("GET {url}: {e}"))?;
    let body = resp.body_mut().read_to_vec().map_err(|e| format!("GET {url}: reading body: {e}"))?;
    Ok(body)
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
        let mut f =
            SnapshotFetcher::spawn(&format!("http://{addr}"), vec!["BTCUSDT".into()], 100, Duration::from_secs(5))
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
