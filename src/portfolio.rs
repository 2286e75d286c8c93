//! portfolio
