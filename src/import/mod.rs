//! Importers: data users already have (Tardis.dev CSV, Binance public-data CSV, our own
//! recordings) normalised into [`crate::event::MarketEvent`]s and the binary event file.
