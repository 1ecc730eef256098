//! What the benchmark's programs share: the bytes they send, and reading
//! the head of an HTTP/1.1 message (the client reads replies, the sink
//! requests).

use std::io::{self, BufRead};

/// The size of the block of bytes every upload repeats.
pub const BLOCK: usize = 64 << 20;

/// Where the `len` bytes of an upload starting at `from` lie in the
/// repeated block, as ranges of it, in order.
pub fn spans(from: u64, len: u64) -> impl Iterator<Item = std::ops::Range<usize>> {
    let end = from + len;
    let mut at = from;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let o = (at % BLOCK as u64) as usize;
        let n = ((BLOCK - o) as u64).min(end - at) as usize;
        at += n as u64;
        Some(o..o + n)
    })
}

/// A block of pseudo-random bytes (xorshift), the same in every program;
/// with `FERRY_BENCH_DATA=text`, lines of a log instead, which compress
/// about as well as text does.
pub fn block() -> Vec<u8> {
    if std::env::var("FERRY_BENCH_DATA").as_deref() == Ok("text") {
        let mut text = Vec::with_capacity(BLOCK + 200);
        let mut n: u64 = 0;
        while text.len() < BLOCK {
            n += 1;
            text.extend_from_slice(
                format!(
                    "2026-11-27T23:{:02}:{:02}.{:03}Z INFO request id={:016x} path=/files/{n} status=204 bytes={}\n",
                    n / 60 % 60,
                    n % 60,
                    n * 7 % 1000,
                    n.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    n * 4099 % 1_000_000
                )
                .as_bytes(),
            );
        }
        text.truncate(BLOCK);
        return text;
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..BLOCK / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect()
}

/// An HTTP/1.1 message's start line and headers.
pub struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The Content-Length, or 0.
    pub fn content_length(&self) -> u64 {
        self.header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// Reads a message head; `None` when the connection ended before one.
pub fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut start = String::new();
    if r.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some(Head {
        start: start.trim_end().to_string(),
        headers,
    }))
}
