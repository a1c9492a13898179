//! (in progress)
pub mod framing;
