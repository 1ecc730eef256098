//! The other tus header parsers: offsets and lengths, `Upload-Checksum`,
//! `Upload-Concat`, upload IDs. None may panic; accepted numbers must be
//! exactly the digits given.
#![no_main]
use ferry::http::tus::{parse_concat, parse_u64};
use ferry::upload::{ChunkChecksum, UploadId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(n) = parse_u64("Upload-Offset", s) {
            assert_eq!(s.parse::<u64>().ok(), Some(n));
        }
        let _ = ChunkChecksum::parse(s);
        let _ = parse_concat(s);
        if let Some(id) = UploadId::parse(s) {
            assert_eq!(id.as_str(), s);
        }
    }
});
