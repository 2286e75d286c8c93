//! risk
