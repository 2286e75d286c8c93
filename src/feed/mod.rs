//! Market data: the seeded generator of the built-in data set, the binary event file,
//! venue parsers, the local-book synchroniser, the WebSocket client and the recorder.

pub mod alpaca;
pub mod binance;
pub mod clock;
pub mod evfile;
pub mod gen;
pub mod record;
pub mod snapshot;
pub mod source;
pub mod sync;
pub mod ws;
