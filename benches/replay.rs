//! Replay throughput: events per second through the Core and the matching engine.
//! (Filled in by the backtester work, issue 4.)

fn main() {}
