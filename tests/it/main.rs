//! Every integration test, in one test binary: one crate to compile and
//! link instead of one per file, so the helpers in `common` and the generic
//! code of axum, tokio and reqwest that the files share are compiled once.
//! Each file is a module, and names its tests: `cargo nextest run -E
//! 'test(/^attack::/)'` runs the tests of `attack.rs`. What each file tries
//! is said at its top.

#[cfg(feature = "ssr")]
mod common;

mod app;
mod attack;
mod attack_socket;
mod chaos;
mod cli;
mod conformance;
mod crash;
mod events;
mod form;
mod full_disk;
mod hooks;
mod hostile;
mod ietf;
mod interop;
mod layers;
mod metrics;
mod properties;
mod races;
mod rules;
mod scaleout;
mod security;
mod socket;
mod tus;
mod ws;
