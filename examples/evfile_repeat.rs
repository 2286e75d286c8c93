//! Writes an event file of any length for the memory and throughput measurements of
//! issue 12: the built-in data set (seed 1, 2M events by default) repeated end to end,
//! each copy shifted in time by the data's span plus one second, streamed through
//! [`evfile::Writer`] (memory: one copy of the built-in set, whatever the length).
//!
//! `cargo run --release --example evfile_repeat -- OUT.evt EVENTS`

use std::fs::File;
use std::process::ExitCode;

use statarb::feed::{evfile, gen};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(out), Some(n)) = (args.get(1), args.get(2).and_then(|s| s.replace('_', "").parse::<u64>().ok())) else {
        eprintln!("usage: evfile_repeat OUT.evt EVENTS");
        return ExitCode::from(2);
    };
    let ds = gen::generate(&gen::GenParams::default());
    let (Some(first), Some(last)) = (ds.events.first(), ds.events.last()) else {
        eprintln!("the built-in data set is empty");
        return ExitCode::FAILURE;
    };
    let shift = last.local_ts.max(last.exch_ts) - first.exch_ts.min(first.local_ts) + 1_000_000_000;
    let run = || -> Result<u64, evfile::EvFileError> {
        let mut w = evfile::Writer::new(File::create(out)?, &ds.instruments)?;
        let mut copy = 0i64;
        'outer: loop {
            for ev in &ds.events {
                if w.len() == n {
                    break 'outer;
                }
                let d = copy * shift;
                w.push(&statarb::event::MarketEvent { exch_ts: ev.exch_ts + d, local_ts: ev.local_ts + d, ..*ev })?;
            }
            copy += 1;
        }
        let count = w.len();
        w.finish()?;
        Ok(count)
    };
    match run() {
        Ok(count) => {
            eprintln!("wrote {count} events to {out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{out}: {e}");
            ExitCode::FAILURE
        }
    }
}
