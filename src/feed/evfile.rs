//! evfile
