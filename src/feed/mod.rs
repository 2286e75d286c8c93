//! Market data sources: the seeded generator of the built-in data set and the binary
//! event file.

pub mod evfile;
pub mod gen;
