//! The network edge: everything between a TCP socket and the synchronous codec and decision code.
//!
//! [`framing`] cuts the byte stream into frames and puts the length header back on replies. Any
//! error while reading frames closes the connection, because after a bad length the stream cannot
//! be trusted. Errors inside a well-formed frame are answered by the layers above, and the
//! connection stays open.
pub mod acquirer;
pub mod admission;
pub mod checkpoint;
pub mod duplicates;
pub mod framing;
pub mod issuer;
pub mod memory;
pub mod saf;
pub mod server;
pub mod start;
pub mod tls;
