//! The least work any upload server must do, as the benchmark's limit:
//! accept a connection, read the socket into a 1 MiB buffer, write the file,
//! `fdatasync` it, answer one byte. One connection per upload; the first 8
//! bytes (little-endian) say how many bytes follow, the next 8 how often to
//! acknowledge: 0 only at the end, N after every N bytes (write, then
//! `fdatasync`, then answer one byte, as a server that acknowledges every
//! request durably must do at the least), and the next 8 are flags: bit 0
//! starts the write-back of every piece as soon as it is written
//! (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so that the sync at the end
//! of a chunk waits for less. Acknowledging every chunk with that flag is
//! the careful receiver, the benchmark's headline limit.
//!
//!   receiver <addr> <dir>

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::FileExt;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().expect("addr");
    let dir = std::path::PathBuf::from(args.next().expect("dir"));
    let listener = TcpListener::bind(&addr).expect("bind");
    println!("listening on {}", listener.local_addr().unwrap());
    let mut n = 0u64;
    for stream in listener.incoming() {
        let mut stream = stream.expect("accept");
        n += 1;
        let path = dir.join(format!("upload-{n}"));
        std::thread::spawn(move || {
            let mut len = [0u8; 8];
            stream.read_exact(&mut len).expect("length");
            let len = u64::from_le_bytes(len);
            let mut every = [0u8; 8];
            stream.read_exact(&mut every).expect("ack interval");
            let every = u64::from_le_bytes(every);
            let mut flags = [0u8; 8];
            stream.read_exact(&mut flags).expect("flags");
            let early_writeback = u64::from_le_bytes(flags) & 1 == 1;
            let file = std::fs::File::create(&path).expect("create");
            let mut buf = vec![0u8; 1 << 20];
            let mut at = 0u64;
            let mut next_ack = if every == 0 { len } else { every.min(len) };
            while at < len {
                let want = buf.len().min((next_ack - at) as usize);
                let got = stream.read(&mut buf[..want]).expect("read");
                if got == 0 {
                    break;
                }
                file.write_all_at(&buf[..got], at).expect("write");
                if early_writeback {
                    start_writeback(&file, at, got as u64);
                }
                at += got as u64;
                if at == next_ack && at < len {
                    file.sync_data().expect("fdatasync");
                    stream.write_all(b"K").expect("answer");
                    next_ack = (at + every).min(len);
                }
            }
            file.sync_data().expect("fdatasync");
            stream.write_all(b"K").expect("answer");
            let _ = std::fs::remove_file(&path);
        });
    }
}

/// Starts writing `len` bytes at `at` back to the disk, without waiting.
fn start_writeback(file: &std::fs::File, at: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain system call on an open file descriptor.
    let r = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            at as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
    assert_eq!(r, 0, "sync_file_range: {}", std::io::Error::last_os_error());
}
