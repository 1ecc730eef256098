//! The other tus header parsers: offsets and lengths, `Upload-Checksum`,
//! `Upload-Concat`, upload IDs. None may panic; accepted numbers must be
//! exactly the digits given.
#![no_main]
use ferry::http::headers::{parse_concat, parse_u64};
use ferry::core::UploadId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(n) = parse_u64("Upload-Offset", s) {
            assert_eq!(s.parse::<u64>().ok(), Some(n));
        }
        let _ = ferry::http::headers::parse_checksum(s);
        let _ = parse_concat(s);
        if let Some(id) = UploadId::parse(s) {
            assert_eq!(id.as_str(), s);
        }
    }
});
