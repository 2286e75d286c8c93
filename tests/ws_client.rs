//! `feed::ws::WsClient` against real servers on 127.0.0.1 (port 0, no internet):
//! tungstenite servers on blocking std sockets in helper threads, plain and TLS (a
//! self-signed CA made with rcgen). Every wait is bounded by a timeout.
//!
//! The counting global allocator measures allocations per message inside
//! `WsClient::poll` after warm-up (printed; run with `--nocapture` to see the numbers).

use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use statarb::feed::ws::{tls_config, WsClient, WsConfig, WsError, WsState};
use statarb::types::Ts;
use tungstenite::{Message, WebSocket};

// ---------------------------------------------------------------- counting allocator

mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

// ---------------------------------------------------------------- client harness

fn now() -> Ts {
    static BASE: OnceLock<Instant> = OnceLock::new();
    // Offset so that times look like epoch nanoseconds (any monotonic clock works).
    1_700_000_000_000_000_000 + BASE.get_or_init(Instant::now).elapsed().as_nanos() as Ts
}

const TOKEN: Token = Token(3);

struct Harness {
    poll: Poll,
    events: Events,
    client: WsClient,
    msgs: Vec<Vec<u8>>,
    /// Generations seen with `connected_since_last_poll()`.
    connected_flags: u64,
    count_allocs: bool,
    allocs: u64,
    counted_msgs: u64,
}

impl Harness {
    fn new(cfg: WsConfig, tls: Arc<rustls::ClientConfig>) -> Self {
        Harness {
            poll: Poll::new().unwrap(),
            events: Events::with_capacity(64),
            client: WsClient::new(cfg, tls, TOKEN).unwrap(),
            msgs: Vec::new(),
            connected_flags: 0,
            count_allocs: false,
            allocs: 0,
            counted_msgs: 0,
        }
    }

    fn spin(&mut self) {
        self.poll.poll(&mut self.events, Some(Duration::from_millis(1))).unwrap();
        for ev in self.events.iter() {
            self.client.on_event(ev);
        }
        let msgs = &mut self.msgs;
        let t = now();
        if self.count_allocs {
            let mut n = 0u64;
            let (got, allocs) = common::counted(|| self.client.poll(self.poll.registry(), t, |_m| n += 1));
            self.allocs += allocs;
            self.counted_msgs += n;
            assert_eq!(got as u64, n);
        } else {
            self.client.poll(self.poll.registry(), t, |m| msgs.push(m.to_vec()));
        }
        if self.client.connected_since_last_poll() {
            self.connected_flags += 1;
        }
    }

    fn run_until(&mut self, timeout: Duration, mut cond: impl FnMut(&Harness) -> bool) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            self.spin();
            if cond(self) {
                return true;
            }
        }
        false
    }
}

fn fast_cfg(url: String) -> WsConfig {
    let mut cfg = WsConfig::new(url);
    cfg.backoff_min_ms = 10;
    cfg.backoff_max_ms = 50;
    cfg.jitter = 0.5;
    cfg.connect_timeout_ms = 1000;
    cfg
}

fn no_extra_roots() -> Arc<rustls::ClientConfig> {
    tls_config(&[]).unwrap()
}

// ---------------------------------------------------------------- servers

/// What a scripted server connection observed.
#[derive(Debug)]
enum Seen {
    Subscribe(usize, String),
    Pong(usize),
    Closed(usize),
}

fn bind() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn accept_tcp(l: &TcpListener) -> TcpStream {
    let (s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// One scripted session on an accepted WebSocket: read `subs` messages, send `n` text
/// messages `"{conn}-{i}"`, ping, wait for the pong, close and finish the handshake.
fn script<S: std::io::Read + std::io::Write>(
    ws: &mut WebSocket<S>,
    conn: usize,
    subs: usize,
    n: usize,
    tx: &Sender<Seen>,
) {
    for _ in 0..subs {
        match ws.read() {
            Ok(Message::Text(t)) => {
                let _ = tx.send(Seen::Subscribe(conn, t.as_str().to_owned()));
            }
            other => panic!("expected subscribe, got {other:?}"),
        }
    }
    for i in 0..n {
        ws.write(Message::text(format!("{conn}-{i}"))).unwrap();
    }
    ws.send(Message::Ping(b"hb".to_vec().into())).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Pong(p)) => {
                assert_eq!(&p[..], b"hb");
                let _ = tx.send(Seen::Pong(conn));
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("server {conn}: waiting for pong: {e}"),
        }
    }
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("server {conn}: closing: {e}"),
        }
    }
    let _ = tx.send(Seen::Closed(conn));
}

fn plain_script_server(conns: usize, subs: usize, n: usize) -> (u16, Receiver<Seen>) {
    let (l, port) = bind();
    let (tx, rx) = channel();
    thread::spawn(move || {
        for c in 0..conns {
            let s = accept_tcp(&l);
            let mut ws = tungstenite::accept(s).unwrap();
            script(&mut ws, c, subs, n, &tx);
        }
    });
    (port, rx)
}

fn collect(rx: &Receiver<Seen>, want: usize) -> Vec<Seen> {
    let mut v = Vec::new();
    let end = Instant::now() + Duration::from_secs(5);
    while v.len() < want {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(s) => v.push(s),
            Err(_) => break,
        }
    }
    v
}

// ---------------------------------------------------------------- tests

#[test]
fn messages_in_order_ping_pong_close_reconnect_resubscribe() {
    const N: usize = 200;
    let (port, rx) = plain_script_server(2, 2, N);
    let mut cfg = fast_cfg(format!("ws://127.0.0.1:{port}/ws?streams=a"));
    cfg.subscribe = vec!["sub-a".into(), "sub-b".into()];
    let mut h = Harness::new(cfg, no_extra_roots());
    let ok = h.run_until(Duration::from_secs(5), |h| h.msgs.len() == 2 * N && h.client.stats().disconnects >= 2);
    let st = h.client.stats();
    assert!(ok, "timed out: {} msgs, {st:?}, last {:?}", h.msgs.len(), h.client.last_error());

    for c in 0..2 {
        for i in 0..N {
            assert_eq!(h.msgs[c * N + i], format!("{c}-{i}").into_bytes());
        }
    }
    assert_eq!(st.messages, 2 * N as u64);
    assert_eq!(st.pings, 2);
    assert_eq!(st.connects, 2);
    assert_eq!(st.reconnects, 1);
    assert!(st.disconnects >= 2);
    assert_eq!(h.client.generation(), 2);
    assert_eq!(h.connected_flags, 2);
    assert_eq!(st.planned_reconnects, 0);
    let total: u64 = h.msgs.iter().map(|m| m.len() as u64).sum();
    assert_eq!(st.bytes, total);

    let seen = collect(&rx, 8);
    let subs: Vec<(usize, &str)> =
        seen.iter().filter_map(|s| if let Seen::Subscribe(c, t) = s { Some((*c, t.as_str())) } else { None }).collect();
    assert_eq!(subs, vec![(0, "sub-a"), (0, "sub-b"), (1, "sub-a"), (1, "sub-b")]);
    let pongs: Vec<usize> = seen.iter().filter_map(|s| if let Seen::Pong(c) = s { Some(*c) } else { None }).collect();
    assert_eq!(pongs, vec![0, 1], "{seen:?}");
    let closed: Vec<usize> =
        seen.iter().filter_map(|s| if let Seen::Closed(c) = s { Some(*c) } else { None }).collect();
    assert_eq!(closed, vec![0, 1], "{seen:?}");

    // The server is gone: the client keeps backing off without panicking.
    h.run_until(Duration::from_millis(100), |_| false);
    assert!(!h.client.is_open());
    assert!(h.client.stats().errors >= 2);
}

#[test]
fn abrupt_tcp_drop_reconnects() {
    let (l, port) = bind();
    let (tx, rx) = channel::<()>();
    thread::spawn(move || {
        // First connection: 5 messages, then the TCP connection vanishes.
        let s = accept_tcp(&l);
        let mut ws = tungstenite::accept(s).unwrap();
        for i in 0..5 {
            ws.send(Message::text(format!("a{i}"))).unwrap();
        }
        let s = ws.into_inner();
        let _ = s.shutdown(std::net::Shutdown::Both);
        drop(s);
        // Second connection: one message, then hold until the test ends.
        let s = accept_tcp(&l);
        let mut ws = tungstenite::accept(s).unwrap();
        ws.send(Message::text("b0")).unwrap();
        let _ = rx.recv_timeout(Duration::from_secs(5));
    });
    let mut h = Harness::new(fast_cfg(format!("ws://127.0.0.1:{port}/")), no_extra_roots());
    let ok = h.run_until(Duration::from_secs(5), |h| h.msgs.len() == 6);
    let st = h.client.stats();
    assert!(ok, "{st:?} {:?}", h.client.last_error());
    assert_eq!(h.msgs.last().unwrap(), b"b0");
    assert_eq!(st.connects, 2);
    assert_eq!(st.reconnects, 1);
    assert_eq!(st.disconnects, 1);
    assert!(st.errors >= 1);
    assert!(h.client.is_open());
    assert_eq!(h.client.state(), WsState::Open);
    let _ = tx.send(());
}

#[test]
fn closed_port_backs_off_without_panic() {
    let (l, port) = bind();
    drop(l);
    let mut cfg = fast_cfg(format!("ws://127.0.0.1:{port}/"));
    cfg.backoff_min_ms = 20;
    cfg.backoff_max_ms = 80;
    let mut h = Harness::new(cfg, no_extra_roots());
    let t0 = Instant::now();
    h.run_until(Duration::from_millis(400), |_| false);
    let st = h.client.stats();
    assert_eq!(st.connects, 0);
    assert!(st.attempts >= 2, "{st:?}");
    // 400 ms with delays of >= 10, 20, 40, 40, ... ms: a handful, not a busy loop.
    assert!(st.attempts <= 20, "{st:?}");
    assert_eq!(st.errors, st.attempts - matches!(h.client.state(), WsState::Connecting) as u64);
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(matches!(h.client.last_error(), Some(WsError::Io(_))), "{:?}", h.client.last_error());
    assert!(h.client.send_text("x").is_err());
}

#[test]
fn handshake_timeout_when_server_is_silent() {
    let (l, port) = bind();
    let (tx, rx) = channel::<()>();
    thread::spawn(move || {
        let mut held = Vec::new();
        l.set_nonblocking(true).unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && rx.try_recv().is_err() {
            if let Ok((s, _)) = l.accept() {
                held.push(s); // accept TCP, never answer the upgrade
            }
            thread::sleep(Duration::from_millis(2));
        }
    });
    let mut cfg = fast_cfg(format!("ws://127.0.0.1:{port}/"));
    cfg.connect_timeout_ms = 100;
    let mut h = Harness::new(cfg, no_extra_roots());
    let ok = h.run_until(Duration::from_secs(3), |h| h.client.stats().errors >= 2);
    assert!(ok, "{:?}", h.client.stats());
    assert!(matches!(h.client.last_error(), Some(WsError::Timeout(_))), "{:?}", h.client.last_error());
    assert_eq!(h.client.stats().connects, 0);
    let _ = tx.send(());
}

// ---------------------------------------------------------------- TLS

struct TestPki {
    ca: CertificateDer<'static>,
    server: Arc<rustls::ServerConfig>,
}

fn pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "statarb test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca_cert.der().clone()], key)
        .unwrap();
    TestPki { ca: ca_cert.der().clone(), server: Arc::new(server) }
}

type TlsServerStream = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

fn tls_accept(l: &TcpListener, cfg: &Arc<rustls::ServerConfig>) -> Option<WebSocket<TlsServerStream>> {
    let s = accept_tcp(l);
    let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
    tungstenite::accept(rustls::StreamOwned::new(conn, s)).ok()
}

#[test]
fn wss_with_test_ca() {
    const N: usize = 100;
    let pki = pki();
    let (l, port) = bind();
    let (tx, rx) = channel();
    let server_cfg = pki.server.clone();
    thread::spawn(move || {
        for c in 0..2 {
            let mut ws = tls_accept(&l, &server_cfg).expect("tls+ws accept");
            script(&mut ws, c, 1, N, &tx);
        }
    });
    let mut cfg = fast_cfg(format!("wss://127.0.0.1:{port}/stream"));
    cfg.subscribe = vec!["{\"method\":\"SUBSCRIBE\"}".into()];
    let mut h = Harness::new(cfg, tls_config(std::slice::from_ref(&pki.ca)).unwrap());
    let ok = h.run_until(Duration::from_secs(5), |h| h.msgs.len() == 2 * N && h.client.stats().disconnects >= 2);
    let st = h.client.stats();
    assert!(ok, "{} msgs {st:?} {:?}", h.msgs.len(), h.client.last_error());
    for c in 0..2 {
        for i in 0..N {
            assert_eq!(h.msgs[c * N + i], format!("{c}-{i}").into_bytes());
        }
    }
    assert_eq!(st.pings, 2);
    assert_eq!(st.connects, 2);
    assert_eq!(st.reconnects, 1);
    let seen = collect(&rx, 6);
    assert_eq!(seen.iter().filter(|s| matches!(s, Seen::Subscribe(..))).count(), 2, "{seen:?}");
    assert_eq!(seen.iter().filter(|s| matches!(s, Seen::Pong(_))).count(), 2, "{seen:?}");
}

#[test]
fn wss_rejects_unknown_ca() {
    let pki = pki();
    let (l, port) = bind();
    let server_cfg = pki.server.clone();
    thread::spawn(move || {
        // The handshake fails on the client side; the server just sees an error.
        let _ = tls_accept(&l, &server_cfg);
    });
    let mut cfg = fast_cfg(format!("wss://127.0.0.1:{port}/"));
    cfg.backoff_min_ms = 1000; // one attempt within the test
    let mut h = Harness::new(cfg, no_extra_roots());
    let ok = h.run_until(Duration::from_secs(3), |h| h.client.stats().errors >= 1);
    assert!(ok, "{:?}", h.client.stats());
    assert_eq!(h.client.stats().connects, 0);
    let err = format!("{:?}", h.client.last_error());
    assert!(err.contains("UnknownIssuer") || err.contains("certificate"), "{err}");
}

// ---------------------------------------------------------------- planned lifetime

#[test]
fn planned_lifetime_reconnect() {
    let (l, port) = bind();
    let (tx, rx) = channel();
    thread::spawn(move || {
        for c in 0..2usize {
            let s = accept_tcp(&l);
            let mut ws = tungstenite::accept(s).unwrap();
            ws.send(Message::text(format!("hello{c}"))).unwrap();
            // Wait for the client's close; tungstenite answers it.
            loop {
                match ws.read() {
                    Ok(Message::Close(_)) => {
                        let _ = tx.send(c);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
    });
    let mut cfg = fast_cfg(format!("ws://127.0.0.1:{port}/"));
    cfg.max_lifetime_ms = 100;
    cfg.backoff_min_ms = 2000; // a failure would be visible as a long gap
    let mut h = Harness::new(cfg, no_extra_roots());
    let t0 = Instant::now();
    let ok = h.run_until(Duration::from_secs(3), |h| h.client.stats().connects >= 2 && h.msgs.len() >= 2);
    let st = h.client.stats();
    assert!(ok, "{st:?} {:?}", h.client.last_error());
    assert!(t0.elapsed() < Duration::from_millis(1500), "reconnect was not immediate");
    assert_eq!(st.planned_reconnects, 1);
    assert_eq!(st.reconnects, 1);
    assert_eq!(st.disconnects, 1);
    assert_eq!(st.errors, 0, "{:?}", h.client.last_error());
    assert_eq!(h.msgs, vec![b"hello0".to_vec(), b"hello1".to_vec()]);
    assert_eq!(rx.recv_timeout(Duration::from_secs(2)).unwrap(), 0);
}

// ---------------------------------------------------------------- allocations

/// Streams `n` bookTicker-sized text messages, paced in bursts so that reads see
/// several messages at once as in production; returns allocations per message counted
/// inside `WsClient::poll` after a warm-up.
fn allocs_per_message(tls: bool) -> f64 {
    const WARM: usize = 2_000;
    const N: usize = 20_000;
    let payload =
        r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;
    let (l, port) = bind();
    let pki = pki();
    let server_cfg = pki.server.clone();
    let (done_tx, done_rx) = channel::<()>();
    thread::spawn(move || {
        let send_all = |ws: &mut dyn FnMut(&str) -> bool| {
            for i in 0..WARM + N {
                if !ws(payload) {
                    return;
                }
                if i % 64 == 63 {
                    thread::sleep(Duration::from_micros(200));
                }
            }
        };
        if tls {
            let Some(mut ws) = tls_accept(&l, &server_cfg) else { return };
            send_all(&mut |p| ws.send(Message::text(p)).is_ok());
        } else {
            let s = accept_tcp(&l);
            let mut ws = tungstenite::accept(s).unwrap();
            send_all(&mut |p| ws.send(Message::text(p)).is_ok());
        }
        let _ = done_rx.recv_timeout(Duration::from_secs(10));
    });
    let scheme = if tls { "wss" } else { "ws" };
    let mut h = Harness::new(fast_cfg(format!("{scheme}://127.0.0.1:{port}/")), tls_config(&[pki.ca]).unwrap());
    assert!(h.run_until(Duration::from_secs(5), |h| h.msgs.len() >= WARM), "warm-up: {:?}", h.client.stats());
    h.count_allocs = true;
    let ok = h.run_until(Duration::from_secs(10), |h| h.client.stats().messages as usize >= WARM + N);
    assert!(ok, "{:?} {:?}", h.client.stats(), h.client.last_error());
    let _ = done_tx.send(());
    let per = h.allocs as f64 / h.counted_msgs as f64;
    eprintln!(
        "{scheme}: {} allocations for {} messages after warm-up = {per:.3} per message (read_buffer_size {})",
        h.allocs,
        h.counted_msgs,
        h.client.config().read_buffer_size
    );
    per
}

#[test]
fn allocations_per_message_plain() {
    let per = allocs_per_message(false);
    // Measured 0: tungstenite 0.29 splits payloads out of its reused BytesMut.
    assert!(per <= 0.1, "{per}");
}

#[test]
fn allocations_per_message_tls() {
    let per = allocs_per_message(true);
    // Measured ~1.0: rustls' buffered API allocates per received TLS record.
    assert!(per <= 1.5, "{per}");
}

// ---------------------------------------------------------------- DNS off the polling thread

static GATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static GATED_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
static RESOLVE_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static RESOLVER_THREAD: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// A resolver that hangs until the test opens the gate, as a slow DNS server would.
fn gated_resolve(host: &str, port: u16) -> std::io::Result<Vec<std::net::SocketAddr>> {
    use std::sync::atomic::Ordering;
    *RESOLVER_THREAD.lock().unwrap() = thread::current().name().map(str::to_owned);
    RESOLVE_CALLS.fetch_add(1, Ordering::AcqRel);
    while !GATE.load(Ordering::Acquire) {
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!((host, port), ("venue.statarb.invalid", GATED_PORT.load(Ordering::Acquire)));
    Ok(vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))])
}

fn failing_resolve(_: &str, _: u16) -> std::io::Result<Vec<std::net::SocketAddr>> {
    Err(std::io::Error::other("no such host"))
}

/// Issue 10: `to_socket_addrs` ran on every reconnect on the hot thread. Now a host name
/// is resolved on the client's resolver thread: while the resolver hangs, every poll
/// returns at once and no attempt starts; once it answers, the client connects.
#[test]
fn host_names_resolve_off_the_polling_thread() {
    use std::sync::atomic::Ordering;
    let (l, port) = bind();
    GATED_PORT.store(port, Ordering::Release);
    let (tx, rx) = channel::<()>();
    thread::spawn(move || {
        let s = accept_tcp(&l);
        let mut ws = tungstenite::accept(s).unwrap();
        ws.send(Message::text("hello")).unwrap();
        let _ = rx.recv_timeout(Duration::from_secs(5));
    });
    let mut cfg = fast_cfg(format!("ws://venue.statarb.invalid:{port}/"));
    cfg.resolve = gated_resolve;
    let mut h = Harness::new(cfg, no_extra_roots());
    assert!(h.run_until(Duration::from_secs(2), |_| RESOLVE_CALLS.load(Ordering::Acquire) == 1));
    for _ in 0..100 {
        h.spin();
    }
    assert_eq!(h.client.stats().attempts, 0);
    assert!(matches!(h.client.state(), WsState::Disconnected { .. }));
    assert!(h.client.addrs().is_empty());
    GATE.store(true, Ordering::Release);
    let ok = h.run_until(Duration::from_secs(5), |h| h.msgs.len() == 1);
    assert!(ok, "{:?} {:?}", h.client.stats(), h.client.last_error());
    assert_eq!(RESOLVER_THREAD.lock().unwrap().as_deref(), Some("ws-resolve"));
    assert_ne!(thread::current().name(), Some("ws-resolve"));
    assert_eq!(h.client.addrs(), [std::net::SocketAddr::from(([127, 0, 0, 1], port))]);
    assert_eq!(RESOLVE_CALLS.load(Ordering::Acquire), 1, "resolved once, not per poll");
    let _ = tx.send(());
}

/// A host that does not resolve: a typed error, back-off, no panic.
#[test]
fn unresolvable_host_is_a_resolve_error() {
    let mut cfg = fast_cfg("ws://nowhere.statarb.invalid:9/".to_string());
    cfg.resolve = failing_resolve;
    let mut h = Harness::new(cfg, no_extra_roots());
    let ok = h.run_until(Duration::from_secs(2), |h| h.client.stats().errors >= 2);
    assert!(ok, "{:?}", h.client.stats());
    assert!(matches!(h.client.last_error(), Some(WsError::Resolve { .. })), "{:?}", h.client.last_error());
    assert_eq!(h.client.stats().connects, 0);
}
