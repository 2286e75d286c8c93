//! The `/metrics` endpoint: the [`Telemetry`] in Prometheus' text exposition format
//! (version 0.0.4), served over plain HTTP/1.1 on a local port by a thread of its own.
//!
//! Format (<https://prometheus.io/docs/instrumenting/exposition_formats/>): per metric
//! a `# HELP` and a `# TYPE` line, then `name{label="value"} number` samples. Counters
//! end in `_total`; latencies are in seconds, the base unit, as a `summary` whose
//! quantiles cover the whole run, with `_sum` and `_count`.
//!
//! The server answers `GET /metrics` (and `GET /` with a pointer to it), one request
//! per connection, and closes. Every read and write has a timeout and the request head
//! is bounded ([`MAX_REQUEST`]), so a slow or hostile client costs the thread at most
//! [`IO_TIMEOUT`] twice and never unbounded memory.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::hist::HistCounts;
use super::telemetry::{Sample, Telemetry};
use crate::risk::Reject;

/// Longest request head read; a longer one is answered 431.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Read and write timeout of a connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the accept loop looks at its stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// Writes the exposition text of `s` and the tick-to-quote histogram `t2q` (ns) to
/// `out`. `legs` names the pair's legs (their symbols), y then x.
pub fn render(s: &Sample, t2q: &HistCounts, legs: &[String; 2], dropped_rejects: u64, out: &mut String) {
    let mut m = Metrics { out };
    m.counter("statarb_events_total", "Market events handled by the hot thread.", s.events);
    m.counter("statarb_reports_total", "Execution reports handled by the hot thread.", s.reports);
    m.counter("statarb_commands_total", "Order commands pushed to the gateway.", s.commands);
    m.counter("statarb_fills_total", "Fills (partial or full).", s.fills);
    m.counter("statarb_quotes_total", "Ticks that produced orders.", s.quotes);
    let f = &s.feed;
    m.counter("statarb_feed_messages_total", "Raw feed messages received.", f.messages);
    m.counter("statarb_feed_connects_total", "Feed connections opened.", f.connects);
    m.counter("statarb_feed_disconnects_total", "Feed connections lost or closed.", f.disconnects);
    m.counter("statarb_feed_errors_total", "Feed connection failures.", f.errors);
    m.counter("statarb_feed_parse_errors_total", "Feed messages that failed to parse.", f.parse_errors);
    m.counter("statarb_book_resyncs_total", "Books (re)built from a snapshot.", f.resyncs);
    m.counter("statarb_book_gaps_total", "Sequence gaps and buffer overflows (each a resync).", f.gaps);
    m.counter("statarb_snapshot_errors_total", "Depth snapshots that failed or came back stale.", f.snapshot_errors);
    m.head("statarb_risk_rejects_total", "Orders refused, by reason.", "counter");
    for r in Reject::ALL {
        m.sample("statarb_risk_rejects_total", &[("reason", r.name())], s.rejects(r) as f64);
    }
    m.counter("statarb_reject_notices_dropped_total", "Venue rejects not logged (monitor behind).", dropped_rejects);
    m.gauge("statarb_open_orders", "Orders open: sent and not yet final.", s.open_orders as f64);
    m.gauge("statarb_kill_switch", "1 once the kill switch has tripped.", s.killed as u64 as f64);
    m.gauge("statarb_net_pnl", "Net PnL of the pair at the marks, quote asset.", s.net_pnl);
    let per_leg = |m: &mut Metrics, name: &str, help: &str, v: &dyn Fn(usize) -> f64| {
        m.head(name, help, "gauge");
        for (l, leg) in legs.iter().enumerate() {
            m.sample(name, &[("leg", leg)], v(l));
        }
    };
    per_leg(&mut m, "statarb_book_synced", "1 while the leg's book is in sync.", &|l| f.synced[l] as u64 as f64);
    per_leg(&mut m, "statarb_market_fresh", "1 while the leg's market is two-sided and fresh.", &|l| {
        s.legs[l].fresh as u64 as f64
    });
    per_leg(&mut m, "statarb_position", "Position, base units.", &|l| s.legs[l].position);
    per_leg(&mut m, "statarb_pnl", "PnL net of fees at the mark, quote asset.", &|l| s.legs[l].pnl);
    per_leg(&mut m, "statarb_mark_price", "Mark price.", &|l| s.legs[l].mark);
    let name = "statarb_tick_to_quote_seconds";
    m.head(name, "Tick-to-quote latency: event read to the last order pushed, whole run.", "summary");
    for (q, label) in [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99"), (0.999, "0.999"), (1.0, "1")] {
        let v = t2q.quantile(q).map_or(f64::NAN, |ns| ns as f64 / 1e9);
        m.sample(name, &[("quantile", label)], v);
    }
    m.sample(&format!("{name}_sum"), &[], t2q.sum as f64 / 1e9);
    m.sample(&format!("{name}_count"), &[], t2q.count as f64);
}

struct Metrics<'a> {
    out: &'a mut String,
}

impl Metrics<'_> {
    fn head(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(val));
            }
            self.out.push('}');
        }
        let _ = if v.is_nan() {
            writeln!(self.out, " NaN")
        } else if v.is_infinite() {
            writeln!(self.out, " {}Inf", if v > 0.0 { "+" } else { "-" })
        } else {
            writeln!(self.out, " {v}")
        };
    }

    fn counter(&mut self, name: &str, help: &str, v: u64) {
        self.head(name, help, "counter");
        self.sample(name, &[], v as f64);
    }

    fn gauge(&mut self, name: &str, help: &str, v: f64) {
        self.head(name, help, "gauge");
        self.sample(name, &[], v);
    }
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The running endpoint.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    scrapes: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (port 0: a free one) and serves `telemetry` from a thread of its own.
    pub fn spawn(addr: SocketAddr, telemetry: Arc<Telemetry>, legs: [String; 2]) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let scrapes = Arc::new(AtomicU64::new(0));
        let (flag, count) = (Arc::clone(&stop), Arc::clone(&scrapes));
        let thread = std::thread::Builder::new().name("statarb-metrics".into()).spawn(move || {
            let mut body = String::with_capacity(8 * 1024);
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        if serve(conn, &telemetry, &legs, &mut body).unwrap_or(false) {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
                    // Out of descriptors, a reset before accept: wait and go on.
                    Err(_) => std::thread::sleep(ACCEPT_POLL),
                }
            }
        })?;
        Ok(MetricsServer { addr, stop, scrapes, thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `/metrics` requests answered so far.
    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::Relaxed)
    }

    /// Stops the thread and waits for it; returns the scrapes answered.
    pub fn stop(mut self) -> u64 {
        self.shutdown();
        self.scrapes()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Answers one connection. Returns true if it was a `/metrics` scrape.
fn serve(mut conn: TcpStream, telemetry: &Telemetry, legs: &[String; 2], body: &mut String) -> io::Result<bool> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = [0u8; MAX_REQUEST];
    let mut n = 0;
    while !head[..n].windows(4).any(|w| w == b"\r\n\r\n") {
        if n == head.len() {
            respond(&mut conn, "431 Request Header Fields Too Large", "text/plain", "request head too long\n")?;
            return Ok(false);
        }
        match conn.read(&mut head[n..])? {
            0 => return Ok(false),
            k => n += k,
        }
    }
    let line = head[..n].split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => {
            body.clear();
            render(&telemetry.load(), &telemetry.tick_to_quote.snapshot(), legs, telemetry.rejects_dropped(), body);
            respond(&mut conn, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body)?;
            Ok(true)
        }
        (b"GET", b"/") => {
            respond(&mut conn, "200 OK", "text/plain", "statarb: metrics at /metrics\n")?;
            Ok(false)
        }
        (b"GET", _) => {
            respond(&mut conn, "404 Not Found", "text/plain", "not found; metrics at /metrics\n")?;
            Ok(false)
        }
        _ => {
            respond(&mut conn, "405 Method Not Allowed", "text/plain", "only GET\n")?;
            Ok(false)
        }
    }
}

fn respond(conn: &mut TcpStream, status: &str, content_type: &str, body: &str) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())?;
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::telemetry::LegSample;

    #[test]
    fn the_text_follows_the_exposition_format() {
        let t = Telemetry::new();
        for v in [300, 400, 500, 100_000] {
            t.tick_to_quote.record(v);
        }
        let mut s = Sample { events: 42, open_orders: 3, ..Sample::default() };
        s.legs[0] = LegSample { position: -0.25, pnl: 1.5, mark: 2500.0, fresh: true };
        s.risk_rejects[Reject::Stale as usize] = 7;
        let mut out = String::new();
        render(&s, &t.tick_to_quote.snapshot(), &["ETH\"USDT".into(), "BTCUSDT".into()], 0, &mut out);
        assert!(out.contains("# TYPE statarb_events_total counter\nstatarb_events_total 42\n"), "{out}");
        assert!(out.contains("statarb_risk_rejects_total{reason=\"stale\"} 7\n"), "{out}");
        assert!(out.contains("statarb_position{leg=\"ETH\\\"USDT\"} -0.25\n"), "{out}");
        assert!(out.contains("statarb_tick_to_quote_seconds_count 4\n"), "{out}");
        assert!(out.contains("statarb_tick_to_quote_seconds{quantile=\"0.5\"} 0.000000407\n"), "{out}");
        // Every sample line belongs to a metric declared just above it.
        let mut declared = "";
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared = rest.split(' ').next().unwrap();
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(name.starts_with(declared), "{line} after # TYPE {declared}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value == "NaN" || value.parse::<f64>().is_ok(), "{line}");
            }
        }
    }

    #[test]
    fn the_endpoint_answers_over_loopback_and_refuses_what_it_does_not_serve() {
        let t = Arc::new(Telemetry::new());
        t.store(&Sample { events: 9, ..Sample::default() });
        let server = MetricsServer::spawn("127.0.0.1:0".parse().unwrap(), t, ["A".into(), "B".into()]).unwrap();
        let get = |req: &[u8]| {
            let mut c = TcpStream::connect(server.addr()).unwrap();
            c.write_all(req).unwrap();
            let mut s = String::new();
            c.read_to_string(&mut s).unwrap();
            s
        };
        let ok = get(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.contains("statarb_events_total 9\n"), "{ok}");
        assert!(get(b"GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        // Exactly the bound, all read, no end of head: refused, not read further.
        let mut long = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_REQUEST, b'a');
        assert!(get(&long).starts_with("HTTP/1.1 431"));
        // A client that sends nothing is dropped after the timeout; the next is served.
        let _idle = TcpStream::connect(server.addr()).unwrap();
        assert!(get(b"GET /metrics HTTP/1.1\r\n\r\n").contains("statarb_events_total 9"));
        assert_eq!(server.stop(), 2);
    }
}
