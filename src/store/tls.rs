//! TLS for Ferry's own outbound HTTPS (S3 and hook receivers): rustls with
//! ring, chosen here once for the whole process.

use std::sync::Once;

/// Makes ring the process's TLS crypto provider, once; every outbound HTTPS
/// client must be built after this. (reqwest is built without a provider of
/// its own, so that the C library of aws-lc-rs is not compiled.)
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only when another provider is already installed, which
        // serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
