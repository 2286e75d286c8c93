//! The command-line driver's parts: argument parsing and dispatch are in `main.rs`,
//! each command's session logic in the library, and what every command shares here.

pub mod signals;
