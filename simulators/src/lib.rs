//! The library side of the `simulators` package: the load generator's modules ([`loadgen`]), so
//! that integration tests (and other tools) can generate cards, start an in-process stack and run
//! a load against it without going through a command line.
//!
//! The binaries live in `src/bin/`: `issuer-sim`, `acquirer-sim` (whose modules it includes by
//! path) and `loadgen` (a command line over [`loadgen`]).

pub mod loadgen;
