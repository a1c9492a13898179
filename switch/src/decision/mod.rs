//! Decisions: plain synchronous functions that turn a decoded request into what the switch does
//! next. No I/O, no clock reads: the business date and everything else come in as arguments, so
//! tests and benches call them directly.
//!
//! - [`screen`]: the switch's own checks on every acquirer request (format, acquirer, field rules,
//!   Luhn, amount, routing, expiry), ending in a decline or a routed request.
//! - [`response`]: building the acquirer's answer from the request and the outcome.
//! - [`security`]: MAC and PIN rules (which party MACs, how PIN blocks are read, translated
//!   and verified, and what a violation is answered).
//!
//! The card rules themselves are [`crate::issuing`]'s; the sockets are [`crate::net`]'s.

pub mod response;
pub mod screen;
pub mod security;
pub mod stip;

pub use screen::{ScreenCtx, Screened, screen};
