//! The server's configuration and wiring (server only): `config` reads
//! flags and the environment (nothing else does), `bootstrap` builds the
//! stores, locker, event log and service a configuration asks for, and
//! `state` is the one `AppState` handlers receive. `limits` holds what
//! clients may take at once, `values` the kinds of values flags take,
//! `hooks` the hooks' flags and transports.
//!
//! It must not know how requests are routed or answered (`http` does).

pub mod bootstrap;
pub mod config;
pub mod hooks;
pub mod limits;
pub mod metrics;
pub mod state;
pub mod values;

pub use state::AppState;
