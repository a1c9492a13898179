//! Switchyard: an ISO 8583:1987 card-scheme authorization switch.
//!
//! # The life of one authorization
//!
//! 1. **frame**: bytes arrive on an acquirer's TCP connection and are cut into messages by a length
//!    header ([`net::framing`]).
//! 2. **decode**: the frame's `Bytes` are indexed field by field without copying ([`iso8583::decode`]),
//!    against a dialect that is plain data ([`iso8583::dialect`]).
//! 3. **validate**: the generic message becomes a typed view with domain types
//!    ([`iso8583::views`], [`domain`]); content errors become response code 30. An acquirer with
//!    a MAC key must MAC its requests ([`decision::security`], [`iso8583::mac`]).
//! 4. **route**: the PAN's BIN picks an issuer (routing, issue 3).
//! 5. **card rules or issuer link**: on-us cards go to the issuing engine, others to an issuer host.
//!    A PIN block is verified for the engine inside the security module ([`security`]), or
//!    translated to the issuer's zone PIN key.
//! 6. **decide**: one closed decline enum maps to field 39 ([`domain::ResponseCode`]).
//! 7. **journal**: every step is appended to a durable log before the acquirer is answered
//!    ([`journal`]). A restart recovers from it ([`net::start`]), after the last checkpoint
//!    ([`net::checkpoint`]).
//! 8. **encode**: the response is built in any field order; the codec derives the bitmaps
//!    ([`iso8583::encode`]).
//! 9. **write**: the length header goes back on and the frame is written ([`net::framing`]).
//!
//! Dependencies point one way: [`domain`] ← [`iso8583`] ← decision ← [`net`]. The codec and the
//! decisions are synchronous functions with no I/O and take time as an argument; tokio only drives
//! them.

pub mod alloc;
pub mod clearing;
pub mod client;
pub mod clock;
pub mod config;
pub mod decision;
pub mod demo;
pub mod domain;
pub mod events;
pub mod host;
pub mod iso8583;
pub mod issuing;
pub mod journal;
pub mod metrics;
pub mod net;
pub mod onus;
mod postcard_vec;
pub mod process;
pub mod routing;
pub mod security;
pub mod statements;
pub mod terminal;
