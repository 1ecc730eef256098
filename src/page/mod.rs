//! The upload page's shared ground, compiled into both halves: the state
//! the components show and the browser's client writes (`state`), the
//! words in each language (`i18n`), and the pure rules of the browser's
//! uploads (`tus`, `speed`), kept here so that host tests (`cargo test
//! --features ssr`) run them.
//!
//! Both `ui` and `client` depend on this module; it depends on neither
//! (and knows nothing of web-sys, requests or components), which is what
//! keeps the two free of import cycles.

pub mod embed;
pub mod i18n;
pub mod speed;
pub mod state;
pub mod tus;
