//! ws (in progress)
