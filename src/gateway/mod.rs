//! Exchange APIs behind the gateway thread.

pub mod sim;
