//! An echo server: one greenlet per connection, written as plain blocking
//! code. Used by benchmark W4 (`benches/net.rs`), with `echo_load` as the
//! load generator.
//!
//! ```sh
//! cargo run --release --example echo_server -- 127.0.0.1:7000
//! cargo run --release --example echo_load -- 127.0.0.1:7000 --conns 50 --secs 5
//! ```
//!
//! Ctrl-C stops it gracefully: the listener closes, connections get a
//! second to finish, then their greenlets are killed.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use sylvan::net::{StreamServer, TcpStream};

/// The buffer size of both W4 servers (this one and the mio baseline).
pub const BUF: usize = 4096;

/// Echoes everything the peer sends until it closes the connection.
pub fn echo(mut conn: TcpStream, _peer: SocketAddr) {
    let _ = conn.set_nodelay(true);
    let mut buf = [0u8; BUF];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Binds the echo server (not started).
pub fn server(addr: &str) -> io::Result<StreamServer> {
    StreamServer::bind(addr, echo)
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".to_owned());
    let server = server(&addr)?;
    println!("listening on {}", server.local_addr()?);
    let s = server.clone();
    let _ctrl_c = sylvan::signal(libc::SIGINT, move || {
        eprintln!("stopping: {} connections served", s.accepted());
        s.stop(Some(Duration::from_secs(1)));
    })?;
    server.serve_forever()
}
