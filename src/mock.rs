//! A mock Binance Spot REST server on loopback for tests.
