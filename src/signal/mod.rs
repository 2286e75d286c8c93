//! The trading signal: a Kalman-filtered hedge ratio, its z-score, and the pair targets
//! derived from it.

pub mod csv;
pub mod fit;
pub mod kalman;
pub mod pairs;
