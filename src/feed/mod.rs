//! Market data: the seeded generator of the built-in data set, the binary event file,
//! venue parsers, the local-book synchroniser, the WebSocket client, the recorder and
//! the live feed's settings ([`config`]).

pub mod alpaca;
pub mod binance;
pub mod clock;
pub mod config;
pub mod evfile;
pub mod evmap;
pub mod gen;
pub mod record;
pub mod snapshot;
pub mod source;
pub mod sync;
pub mod ws;
