//! binance (in progress)
