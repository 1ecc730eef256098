//! `Upload-Metadata`: parsing never panics, and whatever parses prints
//! back to the same metadata.
#![no_main]
use ferry::protocol::metadata::Metadata;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(m) = Metadata::parse(s) {
            let again = Metadata::parse(&m.encode()).expect("printed metadata parses");
            assert_eq!(again, m);
            let _ = m.filename().map(ferry::core::sanitize_filename);
            let _ = m.sha256();
        }
    }
});
