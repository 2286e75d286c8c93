//! alpaca (in progress)
