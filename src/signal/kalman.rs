//! kalman
