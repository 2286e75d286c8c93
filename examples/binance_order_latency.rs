//! Order-entry latency of the Binance Spot gateway, REST against the WebSocket API
//! (`gateway.binance.orders = "rest"` / `"ws"`), on loopback against the mock venue
//! (`statarb::mock`), for the README's Binance gateway section. Not a test: it prints
//! figures, it asserts none.
//!
//! - round trip: a post-only order from the command (`on_order`, as the gateway thread
//!   calls it once popped from the ring) to its `New` report; p50, p99, max;
//! - burst: 16 cancels, from the first send to the 16th `Canceled` report;
//! - reprice: `Replace` (one cancel-replace request) against `Cancel` plus `New` sent
//!   back to back, from the command to both reports.
//!
//! `cargo run --release --example binance_order_latency [-- ROUND_TRIPS]`

use std::process::ExitCode;
use std::time::{Duration, Instant};

use statarb::event::{ExecKind, ExecReport, NewOrder, OrderCmd, OrderId, Tif};
use statarb::fees::Fees;
use statarb::gateway::binance::{BinanceGatewayConfig, BinanceSpot};
use statarb::gateway::limits::RateLimits;
use statarb::gateway::sign::Credentials;
use statarb::gateway::Exchange;
use statarb::mock::{MockBinance, MockConfig, MockHandle};
use statarb::types::{Instrument, Side};

const KEY: &str = "latencyKey";
const SECRET: &str = "latencySecret";
const SESSION: u64 = 1_764_000_000;

fn instruments() -> Result<Vec<Instrument>, String> {
    let d = |s: &str| s.parse().map_err(|e| format!("{s}: {e:?}"));
    Ok(vec![Instrument::new("BTCUSDT", d("0.01")?, d("0.00001")?)])
}

fn mock() -> Result<MockHandle, String> {
    MockBinance::spawn(MockConfig {
        creds: Credentials::new(KEY, SECRET),
        instruments: instruments()?,
        balances: vec![("USDT".into(), 1e12), ("BTC".into(), 1e6)],
        maker_bps: 10.0,
        taker_bps: 10.0,
    })
    .map_err(|e| e.to_string())
}

/// Busy-polls until `pred` holds on the reports so far (at most 5 s).
fn wait(gw: &mut BinanceSpot, out: &mut Vec<ExecReport>, pred: impl Fn(&[ExecReport]) -> bool) -> Result<(), String> {
    let t0 = Instant::now();
    while !pred(out) {
        if t0.elapsed() > Duration::from_secs(5) {
            return Err(format!("no answer in 5 s; reports: {out:?}"));
        }
        gw.poll(0, out);
    }
    Ok(())
}

fn has(out: &[ExecReport], id: OrderId, kind: ExecKind) -> bool {
    out.iter().any(|r| r.id == id && r.kind == kind)
}

/// p50, p99 and max of `v` (µs), formatted.
fn summary(v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    format!("p50 {:8.1} µs  p99 {:8.1} µs  max {:8.1} µs  (n = {})", q(0.5), q(0.99), q(1.0), v.len())
}

struct Run {
    next: u64,
    gw: BinanceSpot,
    _mock: MockHandle,
}

impl Run {
    fn new(orders: &str) -> Result<Self, String> {
        let m = mock()?;
        let cfg = BinanceGatewayConfig {
            rest_url: m.rest_url(),
            ws_url: m.ws_url(),
            orders: orders.into(),
            // Thousands of orders a second: our limiter must not be what is measured.
            limits: RateLimits { orders_per_10s: u32::MAX, orders_per_day: u32::MAX, weight_per_minute: u32::MAX },
            ..BinanceGatewayConfig::default()
        };
        let mut gw = BinanceSpot::with_credentials(cfg, Credentials::new(KEY, SECRET), instruments()?, Fees::default())
            .map_err(|e| e.to_string())?;
        gw.start().map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let mut out = Vec::new();
        while !gw.stream_ready() {
            if t0.elapsed() > Duration::from_secs(5) {
                return Err("WebSocket API not connected".into());
            }
            gw.poll(0, &mut out);
        }
        Ok(Run { next: 1, gw, _mock: m })
    }

    fn order(&mut self) -> NewOrder {
        self.next += 1;
        // Post-only buys far below the (empty) book: they rest.
        let px = 1_000_000 + (self.next % 1_000) as i64;
        NewOrder { id: (SESSION << 32) | self.next, inst: 0, side: Side::Buy, px, qty: 100, tif: Tif::PostOnly }
    }

    /// Places an order and waits for its `New`; returns it and the time taken.
    fn place(&mut self) -> Result<(NewOrder, f64), String> {
        let n = self.order();
        let mut out = Vec::new();
        let t0 = Instant::now();
        self.gw.on_order(&OrderCmd::New(n), 0, &mut out);
        wait(&mut self.gw, &mut out, |o| has(o, n.id, ExecKind::New))?;
        Ok((n, t0.elapsed().as_secs_f64() * 1e6))
    }

    fn cancel(&mut self, n: &NewOrder) -> Result<(), String> {
        let mut out = Vec::new();
        self.gw.on_order(&OrderCmd::Cancel { id: n.id, inst: n.inst }, 0, &mut out);
        wait(&mut self.gw, &mut out, |o| has(o, n.id, ExecKind::Canceled))
    }

    fn round_trips(&mut self, n: usize) -> Result<Vec<f64>, String> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let (o, us) = self.place()?;
            v.push(us);
            self.cancel(&o)?;
        }
        Ok(v)
    }

    fn bursts(&mut self, n: usize) -> Result<Vec<f64>, String> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let mut live = Vec::with_capacity(16);
            for _ in 0..16 {
                live.push(self.place()?.0);
            }
            let mut out = Vec::new();
            let t0 = Instant::now();
            for o in &live {
                self.gw.on_order(&OrderCmd::Cancel { id: o.id, inst: 0 }, 0, &mut out);
            }
            wait(&mut self.gw, &mut out, |o| live.iter().all(|l| has(o, l.id, ExecKind::Canceled)))?;
            v.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        Ok(v)
    }

    /// Reprices `n` times by `Replace` (`replace`) or `Cancel` + `New`.
    fn reprices(&mut self, n: usize, replace: bool) -> Result<Vec<f64>, String> {
        let mut v = Vec::with_capacity(n);
        let mut old = self.place()?.0;
        for _ in 0..n {
            let new = self.order();
            let mut out = Vec::new();
            let t0 = Instant::now();
            if replace {
                self.gw.on_order(&OrderCmd::Replace { old: old.id, new }, 0, &mut out);
            } else {
                self.gw.on_order(&OrderCmd::Cancel { id: old.id, inst: 0 }, 0, &mut out);
                self.gw.on_order(&OrderCmd::New(new), 0, &mut out);
            }
            wait(&mut self.gw, &mut out, |o| has(o, old.id, ExecKind::Canceled) && has(o, new.id, ExecKind::New))?;
            v.push(t0.elapsed().as_secs_f64() * 1e6);
            old = new;
        }
        self.cancel(&old)?;
        Ok(v)
    }
}

fn main() -> ExitCode {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2_000);
    let run = || -> Result<(), String> {
        for orders in ["rest", "ws"] {
            let mut r = Run::new(orders)?;
            // Warm-up: connections, caches.
            r.round_trips(100)?;
            let mut rt = r.round_trips(n)?;
            let mut burst = r.bursts((n / 20).max(10))?;
            let mut cr = r.reprices(n / 2, true)?;
            let mut cn = r.reprices(n / 2, false)?;
            println!("orders = \"{orders}\"");
            println!("  round trip (New -> ack)       {}", summary(&mut rt));
            println!("  16 cancels (first send -> 16th ack) {}", summary(&mut burst));
            println!("  reprice, cancel-replace       {}", summary(&mut cr));
            println!("  reprice, cancel + new         {}", summary(&mut cn));
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("binance_order_latency: {e}");
            ExitCode::FAILURE
        }
    }
}
