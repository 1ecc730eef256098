//! The least an HTTP server can do with an upload, to measure what a
//! browser can send at all: it answers `GET /` with a page holding one file
//! input, and any other request by reading its `Content-Length` bytes into
//! a buffer, dropping them, and answering 204. No disk, no protocol.
//!
//!   sink <addr>

use ferry_bench::read_head;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

const PAGE: &str = "<!doctype html><title>sink</title><input type=file id=f>";

fn serve(stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::with_capacity(1 << 20, stream);
    let mut buf = vec![0u8; 1 << 20];
    while let Some(head) = read_head(&mut r)? {
        let mut length = head.content_length();
        while length > 0 {
            let n = r.read(&mut buf[..(length.min(1 << 20)) as usize])?;
            if n == 0 {
                return Ok(());
            }
            length -= n as u64;
        }
        if head.start.starts_with("GET ") {
            write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{PAGE}",
                PAGE.len()
            )?;
        } else {
            w.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")?;
        }
    }
    Ok(())
}

fn main() {
    let addr = std::env::args().nth(1).expect("addr");
    let listener = TcpListener::bind(&addr).expect("bind");
    println!("listening on {}", listener.local_addr().unwrap());
    for stream in listener.incoming() {
        let stream = stream.expect("accept");
        std::thread::spawn(move || {
            let _ = serve(stream);
        });
    }
}
