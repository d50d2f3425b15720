//! gevent's classic examples (echoserver, portforwarder, udp_server /
//! udp_client, concurrent_download, a sendfile-like transfer) and the
//! behaviours of its socket and server tests (test__socket.py,
//! test__server.py, test__socket_close.py, test__socket_timeout.py,
//! test__hub_join.py, test__example_*.py), ported to sylvan and run against
//! independent peers: std sockets on OS threads, python3 subprocesses and
//! curl. Every blocking step is bounded.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sylvan::net::{StreamServer, TcpListener, TcpStream, UdpSocket};

use crate::net_peers::set_linger_zero;
use crate::util::{bounded, is_child, quiet, run_child, yield_until};

/// How long an OS-thread peer waits on any one socket call.
const PEER_TIMEOUT: Duration = Duration::from_secs(4);

/// Open descriptors of this process (only meaningful in a child process
/// started by `run_child`, where no other test runs).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A std client socket with bounded reads and writes.
fn std_connect(addr: SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(PEER_TIMEOUT)).unwrap();
    s
}

/// Joins an OS thread from a greenlet without blocking the hub.
fn join_thread<T: Send + 'static>(h: thread::JoinHandle<T>) -> T {
    sylvan::spawn_blocking(move || h.join()).unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Runs a python3 script (net_peers' runner: bounded, on the blocking
/// pool); panics with its output unless it exits 0.
fn python(script: &str, args: Vec<String>) -> String {
    let out: Output = crate::net_peers::python(script, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed: {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Most bytes a pattern stream carries.
const MAX_STREAM: usize = 1 << 20;

/// Random bytes (xorshift), twice the longest stream: stream `id` is the
/// slice starting at a per-id shift, so a byte from the wrong connection or
/// offset shows, and checking is a `memcmp` (cheap in debug builds).
fn base() -> &'static [u8] {
    static BASE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..2 * MAX_STREAM)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    })
}

/// The first `len` bytes of stream `id`.
fn pattern(id: usize, len: usize) -> &'static [u8] {
    assert!(len <= MAX_STREAM);
    let shift = (id * 4093) % MAX_STREAM;
    &base()[shift..shift + len]
}

/// Copies `from` to `to` until end of stream or an error, then passes the
/// half-close on (gevent portforwarder's `forward`). Returns the bytes
/// moved.
fn forward(from: &TcpStream, to: &TcpStream) -> io::Result<u64> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = match (&*from).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                // like gevent's `finally: source.close(); dest.close()`
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
                return Err(e);
            }
        };
        if let Err(e) = (&*to).write_all(&buf[..n]) {
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
            return Err(e);
        }
        total += n as u64;
    }
    let _ = to.shutdown(Shutdown::Write);
    Ok(total)
}

/// Kills a greenlet (without waiting) when dropped: a handler that is
/// killed takes its helper greenlet with it.
struct KillOnDrop(Option<sylvan::Greenlet<io::Result<u64>>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(g) = self.0.take() {
            g.kill_nowait();
        }
    }
}

/// gevent examples/portforwarder.py: a StreamServer whose handler dials
/// `target` and pipes both ways, one direction in a helper greenlet.
fn port_forwarder(target: SocketAddr) -> StreamServer {
    StreamServer::bind("127.0.0.1:0", move |client: TcpStream, _| {
        let up = match TcpStream::connect(target) {
            Ok(up) => up,
            // gevent: log and close the client socket
            Err(_) => return,
        };
        let (c2, u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
        let mut helper = KillOnDrop(Some(sylvan::spawn(move || forward(&c2, &u2))));
        let _ = forward(&up, &client);
        let _ = helper.0.take().unwrap().join();
    })
    .unwrap()
    .start()
    .unwrap()
}

// ------------------------------------------------------------ echoserver

/// gevent examples/echoserver.py: greets, echoes lines through a
/// makefile-style reader, and closes on `quit`.
fn echo_line_server() -> StreamServer {
    StreamServer::bind("127.0.0.1:0", |sock: TcpStream, _| {
        let mut out = sock.try_clone().unwrap();
        let mut rfile = BufReader::new(sock);
        if out
            .write_all(b"Welcome to the echo server! Type quit to exit.\r\n")
            .is_err()
        {
            return;
        }
        let mut line = String::new();
        loop {
            line.clear();
            match rfile.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if line.trim().eq_ignore_ascii_case("quit") {
                break;
            }
            if out.write_all(line.as_bytes()).is_err() {
                break;
            }
        }
    })
    .unwrap()
    .start()
    .unwrap()
}

/// gevent src/gevent/tests/test__example_echoserver.py: a Python client
/// reads the greeting, gets its line back, sends `quit` and sees the
/// server close.
#[test]
fn echoserver_example_with_a_python_client() {
    bounded(|| {
        let server = echo_line_server();
        let port = server.local_addr().unwrap().port().to_string();
        let out = python(
            r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=4)
f = s.makefile("rb")
assert f.readline() == b"Welcome to the echo server! Type quit to exit.\r\n"
s.sendall(b"hello\r\n")
assert f.readline() == b"hello\r\n"
# a line sent in pieces comes back whole
for part in (b"par", b"tial ", b"line\r", b"\n"):
    s.sendall(part)
assert f.readline() == b"partial line\r\n"
s.sendall(b"quit\r\n")
assert f.read() == b""   # the server closed
print("ok")
"#,
            vec![port],
        );
        assert_eq!(out.trim(), "ok");
        yield_until("the handler ends", || server.handlers() == 0);
        server.stop(Some(Duration::from_secs(1)));
    });
}

/// gevent examples/echoserver.py under load: 64 std clients on OS threads
/// at once, each 200 lines, every byte checked.
#[test]
fn echoserver_many_std_clients_at_once() {
    bounded(|| {
        let server = echo_line_server();
        let addr = server.local_addr().unwrap();
        let peers: Vec<_> = (0..64)
            .map(|id| {
                thread::spawn(move || {
                    let s = std_connect(addr);
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut w = BufWriter::new(s);
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    assert!(line.starts_with("Welcome"), "{line:?}");
                    // pipelined: write everything, then read everything
                    // (5.6 KB per client fits the socket buffers)
                    for i in 0..200 {
                        writeln!(w, "client {id} line {i}").unwrap();
                    }
                    w.flush().unwrap();
                    for i in 0..200 {
                        line.clear();
                        r.read_line(&mut line).unwrap();
                        assert_eq!(line, format!("client {id} line {i}\n"));
                    }
                    w.write_all(b"quit\n").unwrap();
                    w.flush().unwrap();
                    line.clear();
                    assert_eq!(r.read_line(&mut line).unwrap(), 0, "closed after quit");
                })
            })
            .collect();
        for p in peers {
            join_thread(p);
        }
        assert_eq!(server.accepted(), 64);
        yield_until("handlers end", || server.handlers() == 0);
        server.stop(Some(Duration::from_secs(1)));
    });
}

// --------------------------------------------------------- portforwarder

/// A std backend on OS threads: for each connection, reads to end of
/// stream while checking every byte against the pattern of the stream id
/// sent first (8 bytes), then replies `ok <id> <len>\n` and closes.
fn checking_backend(conns: usize) -> (SocketAddr, thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let workers: Vec<_> = (0..conns)
            .map(|_| {
                let (mut s, _) = l.accept().unwrap();
                thread::spawn(move || {
                    s.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
                    let mut id = [0u8; 8];
                    s.read_exact(&mut id).unwrap();
                    let id = u64::from_le_bytes(id) as usize;
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut off = 0usize;
                    loop {
                        let n = s.read(&mut buf).unwrap();
                        if n == 0 {
                            break;
                        }
                        assert!(off + n <= MAX_STREAM, "stream {id}: too long");
                        let expect = &pattern(id, off + n)[off..];
                        assert!(buf[..n] == *expect, "stream {id}: corrupt at {off}");
                        off += n;
                    }
                    s.write_all(format!("ok {id} {off}\n").as_bytes()).unwrap();
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    });
    (addr, h)
}

/// gevent examples/portforwarder.py at scale: 200 std clients at once send
/// 1 MiB each through a sylvan forwarder to a std backend that checks
/// every byte; the reply comes back through the forwarder after the
/// half-close.
#[test]
fn portforwarder_200_clients_1mib_each_byte_exact() {
    const N: usize = 200;
    const LEN: usize = 1 << 20;
    crate::net::raise_fd_limit();
    bounded(|| {
        let (target, backend) = checking_backend(N);
        let fwd = port_forwarder(target);
        let addr = fwd.local_addr().unwrap();
        let t0 = Instant::now();
        let clients: Vec<_> = (0..N)
            .map(|id| {
                thread::spawn(move || {
                    let mut s = std_connect(addr);
                    s.write_all(&(id as u64).to_le_bytes()).unwrap();
                    let data = pattern(id, LEN);
                    for chunk in data.chunks(100_000) {
                        s.write_all(chunk).unwrap();
                    }
                    s.shutdown(Shutdown::Write).unwrap();
                    let mut reply = String::new();
                    s.read_to_string(&mut reply).unwrap();
                    assert_eq!(reply, format!("ok {id} {LEN}\n"));
                })
            })
            .collect();
        for c in clients {
            join_thread(c);
        }
        join_thread(backend);
        eprintln!("200 x 1 MiB forwarded in {:?}", t0.elapsed());
        yield_until("forwarder handlers end", || fwd.handlers() == 0);
        assert_eq!(fwd.accepted(), N as u64);
        fwd.stop(Some(Duration::from_secs(1)));
    });
}

/// A std echo backend on OS threads (one per connection) for `conns`
/// connections.
fn std_echo_backend(conns: usize) -> (SocketAddr, thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let workers: Vec<_> = (0..conns)
            .map(|_| {
                let (s, _) = l.accept().unwrap();
                thread::spawn(move || {
                    s.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
                    let _ = io::copy(&mut &s, &mut &s);
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    });
    (addr, h)
}

/// gevent examples/portforwarder.py, both directions at once: 40 std
/// clients stream 512 KiB each to an echo backend through the forwarder
/// while reading the echo back (the forwarder must pump both ways
/// concurrently or everything stalls).
#[test]
fn portforwarder_full_duplex_echo_many_clients() {
    const N: usize = 40;
    const LEN: usize = 512 << 10;
    bounded(|| {
        let (target, backend) = std_echo_backend(N);
        let fwd = port_forwarder(target);
        let addr = fwd.local_addr().unwrap();
        let clients: Vec<_> = (0..N)
            .map(|id| {
                thread::spawn(move || {
                    let s = std_connect(addr);
                    let mut w = s.try_clone().unwrap();
                    let writer = thread::spawn(move || {
                        w.write_all(pattern(id, LEN)).unwrap();
                        w.shutdown(Shutdown::Write).unwrap();
                    });
                    let mut back = Vec::with_capacity(LEN);
                    (&s).read_to_end(&mut back).unwrap();
                    writer.join().unwrap();
                    assert_eq!(back.len(), LEN, "client {id}");
                    assert!(back == pattern(id, LEN), "client {id}: corrupt echo");
                })
            })
            .collect();
        for c in clients {
            join_thread(c);
        }
        join_thread(backend);
        yield_until("forwarder handlers end", || fwd.handlers() == 0);
        fwd.stop(Some(Duration::from_secs(1)));
    });
}

/// gevent examples/portforwarder.py when the target resets the connection
/// mid-stream: the client sees the connection end (EOF or reset) instead
/// of hanging, and the forwarder's greenlets all finish.
#[test]
fn portforwarder_target_reset_ends_the_client_connection() {
    bounded(|| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = l.local_addr().unwrap();
        let backend = thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
            let mut got = [0u8; 5];
            s.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"hello");
            s.write_all(b"partial").unwrap();
            set_linger_zero(s.as_raw_fd());
            drop(s); // RST
        });
        let fwd = port_forwarder(target);
        let addr = fwd.local_addr().unwrap();
        let client = thread::spawn(move || {
            let mut s = std_connect(addr);
            s.write_all(b"hello").unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            let end = loop {
                match s.read(&mut buf) {
                    Ok(0) => break "eof",
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break "reset",
                    Err(e) => panic!("client: {e}"),
                }
            };
            (got, end)
        });
        let (got, end) = join_thread(client);
        join_thread(backend);
        // the bytes before the reset may or may not make it; nothing else
        assert!(b"partial".starts_with(&got), "{got:?}");
        eprintln!("client saw {end} after {got:?}");
        yield_until("forwarder handlers end", || fwd.handlers() == 0);
        fwd.stop(Some(Duration::from_secs(1)));
    });
}

/// gevent examples/portforwarder.py when the client resets mid-upload:
/// the target sees the connection end and the forwarder's greenlets (one
/// of them parked reading the idle target) all finish.
#[test]
fn portforwarder_client_reset_ends_the_target_connection() {
    bounded(|| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = l.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        let backend = thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
            let mut n = 0usize;
            let mut buf = [0u8; 4096];
            tx.send(()).unwrap();
            let end = loop {
                match s.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(k) => n += k,
                    Err(e) => break Err(e.kind()),
                }
            };
            (n, end)
        });
        let fwd = port_forwarder(target);
        let addr = fwd.local_addr().unwrap();
        let client = thread::spawn(move || {
            let mut s = std_connect(addr);
            s.write_all(&[7u8; 100_000]).unwrap();
            rx.recv().unwrap();
            set_linger_zero(s.as_raw_fd());
            drop(s);
        });
        join_thread(client);
        let (n, end) = join_thread(backend);
        assert!(n <= 100_000);
        assert!(
            end.is_ok() || end == Err(io::ErrorKind::ConnectionReset),
            "target saw {end:?} (a timeout means the forwarder kept it open)"
        );
        yield_until("forwarder handlers end", || fwd.handlers() == 0);
        fwd.stop(Some(Duration::from_secs(1)));
    });
}

/// gevent examples/portforwarder.py when the target refuses: the handler
/// returns and the client's connection is closed at once.
#[test]
fn portforwarder_target_refused_closes_the_client() {
    bounded(|| {
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let fwd = port_forwarder(dead);
        let addr = fwd.local_addr().unwrap();
        let client = thread::spawn(move || {
            let mut s = std_connect(addr);
            let mut buf = [0u8; 8];
            match s.read(&mut buf) {
                Ok(0) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                r => panic!("expected the connection closed, got {r:?}"),
            }
        });
        join_thread(client);
        yield_until("handler ends", || fwd.handlers() == 0);
        fwd.stop(Some(Duration::from_secs(1)));
    });
}

/// gevent src/gevent/tests/test__example_portforwarder.py: the forwarder
/// is stopped while a connection is relaying; its handler is killed, the
/// helper greenlet goes with it, and both the client and the target see
/// their connections end.
#[test]
fn portforwarder_stopped_mid_stream_closes_both_sides() {
    bounded(|| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = l.local_addr().unwrap();
        let backend = thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
            s.write_all(b"hi").unwrap();
            let mut buf = [0u8; 64];
            let mut got = Vec::new();
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return Ok(got),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => return Err(e.kind()),
                }
            }
        });
        let fwd = port_forwarder(target);
        let addr = fwd.local_addr().unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
        c.write_all(b"data").unwrap();
        let mut hi = [0u8; 2];
        c.read_exact(&mut hi).unwrap();
        assert_eq!(&hi, b"hi");
        // both directions are now parked in the forwarder
        let t0 = Instant::now();
        fwd.stop(Some(Duration::from_millis(50)));
        assert_eq!(fwd.handlers(), 0);
        let mut rest = Vec::new();
        let r = c.read_to_end(&mut rest);
        assert!(
            matches!(&r, Ok(0))
                || r.as_ref()
                    .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
            "client: {r:?}"
        );
        let seen = join_thread(backend);
        assert_eq!(
            seen,
            Ok(b"data".to_vec()),
            "the target saw its connection end"
        );
        assert!(t0.elapsed() < Duration::from_secs(2));
        // new connections are refused
        assert!(TcpStream::connect(addr).is_err());
    });
}

// ------------------------------------------------- udp_server / udp_client

/// gevent examples/udp_server.py: a DatagramServer-style loop answering
/// each datagram with `Received N bytes`.
fn udp_echo_server() -> (SocketAddr, sylvan::Greenlet<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let g = sylvan::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            let (n, peer) = sock.recv_from(&mut buf).unwrap();
            let reply = format!("Received {n} bytes");
            sock.send_to(reply.as_bytes(), peer).unwrap();
        }
    });
    (addr, g)
}

/// gevent src/gevent/tests/test__example_udp_server.py with
/// examples/udp_client.py as the peer (Python, connected socket), plus
/// std clients on OS threads at the same time.
#[test]
fn udp_server_example_with_python_and_std_clients() {
    bounded(|| {
        let (addr, server) = udp_echo_server();
        let port = addr.port().to_string();
        let threads: Vec<_> = (0..8usize)
            .map(|id| {
                thread::spawn(move || {
                    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                    s.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
                    s.connect(addr).unwrap();
                    for k in 0..20 {
                        let msg = vec![b'x'; 1 + id * 20 + k];
                        s.send(&msg).unwrap();
                        let mut buf = [0u8; 64];
                        let n = s.recv(&mut buf).unwrap();
                        assert_eq!(
                            &buf[..n],
                            format!("Received {} bytes", msg.len()).as_bytes()
                        );
                    }
                })
            })
            .collect();
        let out = python(
            r#"
import socket, sys
sock = socket.socket(type=socket.SOCK_DGRAM)
sock.settimeout(4)
sock.connect(("127.0.0.1", int(sys.argv[1])))
sock.send(b"Hello")
data, address = sock.recvfrom(8192)
print(data.decode())
"#,
            vec![port],
        );
        assert_eq!(out.trim(), "Received 5 bytes");
        for t in threads {
            join_thread(t);
        }
        server.kill();
        assert!(server.join().unwrap_err().is_killed());
    });
}

/// gevent examples/udp_client.py with a receive timeout (test__socket
/// timeout behaviour on datagrams): a std server drops the first datagram;
/// the sylvan client times out, resends, and gets the answer; the hub
/// keeps running other greenlets while it waits.
#[test]
fn udp_client_times_out_resends_and_gets_the_answer() {
    bounded(|| {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
        let saddr = server.local_addr().unwrap();
        let peer = thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, _) = server.recv_from(&mut buf).unwrap(); // dropped
            assert_eq!(&buf[..n], b"try 0");
            let (n, from) = server.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"try 1");
            server.send_to(b"answer", from).unwrap();
        });
        let ticks = Rc::new(Cell::new(0u32));
        let t = ticks.clone();
        let ticker = sylvan::spawn(move || {
            loop {
                sylvan::sleep(Duration::from_millis(5));
                t.set(t.get() + 1);
            }
        });
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(saddr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 64];
        let mut answer = None;
        for k in 0..2 {
            sock.send(format!("try {k}").as_bytes()).unwrap();
            let t0 = Instant::now();
            match sock.recv(&mut buf) {
                Ok(n) => {
                    answer = Some(buf[..n].to_vec());
                    break;
                }
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
                    assert!(t0.elapsed() >= Duration::from_millis(90));
                }
            }
        }
        assert_eq!(answer.as_deref(), Some(&b"answer"[..]));
        assert!(ticks.get() >= 5, "the hub ran the ticker while recv waited");
        ticker.kill();
        join_thread(peer);
    });
}

// ------------------------------------------------------ concurrent_download

/// A std HTTP/1.1 server on OS threads for `conns` connections: `/page/N`
/// answers a body naming N (Connection: close); `/slow` never answers and
/// reports (on the channel) how its connection ended.
fn std_http_server(conns: usize) -> (SocketAddr, mpsc::Receiver<String>, thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        let workers: Vec<_> = (0..conns)
            .map(|_| {
                let (s, _) = l.accept().unwrap();
                let tx = tx.clone();
                thread::spawn(move || {
                    s.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
                    let mut r = BufReader::new(&s);
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    let path = line.split_whitespace().nth(1).unwrap().to_owned();
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).unwrap();
                        if h == "\r\n" || h.is_empty() {
                            break;
                        }
                    }
                    if path == "/slow" {
                        let mut rest = Vec::new();
                        let end = match r.read_to_end(&mut rest) {
                            Ok(_) => "eof".to_owned(),
                            Err(e) => format!("{:?}", e.kind()),
                        };
                        tx.send(end).unwrap();
                        return;
                    }
                    let body = format!("<html>{path}</html>\n").repeat(100);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    (&s).write_all(head.as_bytes()).unwrap();
                    (&s).write_all(body.as_bytes()).unwrap();
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    });
    (addr, rx, h)
}

/// gevent examples/concurrent_download.py: spawn a fetcher per URL (ureq
/// over sylvan sockets), wait for them all with a timeout; the one stuck on
/// a server that never answers is killed, and the server sees its
/// connection closed.
#[test]
fn concurrent_download_joinall_with_timeout_then_killall() {
    bounded(|| {
        let (addr, slow_end, server) = std_http_server(9);
        let agent = sylvan::ureq::agent(ureq::Agent::config_builder().build());
        let mut urls: Vec<String> = (0..8).map(|i| format!("http://{addr}/page/{i}")).collect();
        urls.push(format!("http://{addr}/slow"));
        let jobs: Vec<sylvan::Greenlet<Result<String, String>>> = urls
            .iter()
            .map(|url| {
                let (agent, url) = (agent.clone(), url.clone());
                sylvan::spawn(move || {
                    let mut res = agent.get(&url).call().map_err(|e| e.to_string())?;
                    res.body_mut().read_to_string().map_err(|e| e.to_string())
                })
            })
            .collect();
        let t0 = Instant::now();
        assert!(!sylvan::joinall(&jobs, Some(Duration::from_millis(300))));
        assert!(t0.elapsed() >= Duration::from_millis(250));
        let done = jobs.iter().filter(|g| g.is_dead()).count();
        assert_eq!(done, 8, "every fetch but the slow one finished");
        assert!(sylvan::killall(&jobs, Some(Duration::from_secs(1))).is_ok());
        for (i, g) in jobs.into_iter().enumerate() {
            match g.join() {
                Ok(body) => {
                    assert!(i < 8);
                    assert_eq!(
                        body.unwrap(),
                        format!("<html>/page/{i}</html>\n").repeat(100)
                    );
                }
                Err(e) => {
                    assert_eq!(i, 8);
                    assert!(e.is_killed(), "{e}");
                }
            }
        }
        let end = sylvan::spawn_blocking(move || slow_end.recv_timeout(PEER_TIMEOUT));
        assert_eq!(
            end.as_deref(),
            Ok("eof"),
            "the killed fetcher's socket was closed"
        );
        join_thread(server);
    });
}

// -------------------------------------------------------- geventsendfile

/// A tiny HTTP server sending the file at `path` (read in chunks, as
/// examples/geventsendfile.py streams a file).
fn file_server(path: std::path::PathBuf) -> StreamServer {
    StreamServer::bind("127.0.0.1:0", move |sock: TcpStream, _| {
        let mut r = BufReader::new(sock.try_clone().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let mut f = std::fs::File::open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        let mut w = &sock;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
        if w.write_all(head.as_bytes()).is_err() {
            return;
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 || w.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    })
    .unwrap()
    .start()
    .unwrap()
}

/// examples/geventsendfile.py-like: a 4 MiB file served to three parallel
/// curl downloads arrives byte-exact each time.
#[test]
fn sendfile_like_large_file_to_parallel_curl() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl not installed: skipped");
        return;
    }
    bounded(|| {
        let dir = std::env::temp_dir().join(format!("sylvan-sendfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("src.bin");
        let mut data = pattern(3, MAX_STREAM).to_vec();
        data.extend_from_slice(base());
        data.extend_from_slice(pattern(9, MAX_STREAM));
        assert_eq!(data.len(), 4 * MAX_STREAM);
        std::fs::write(&src, &data).unwrap();
        let server = file_server(src);
        let url = format!("http://{}/file", server.local_addr().unwrap());
        let outs: Vec<_> = (0..3).map(|i| dir.join(format!("out{i}.bin"))).collect();
        let mut args = vec![
            "-sS".to_owned(),
            "--max-time".to_owned(),
            "4".to_owned(),
            "--parallel".to_owned(),
        ];
        for o in &outs {
            args.extend([url.clone(), "-o".to_owned(), o.display().to_string()]);
        }
        let out = sylvan::spawn_blocking(move || Command::new("curl").args(args).output().unwrap());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for o in &outs {
            let got = std::fs::read(o).unwrap();
            assert_eq!(got.len(), data.len());
            assert!(got == data, "{} differs", o.display());
        }
        assert_eq!(server.accepted(), 3);
        server.stop(Some(Duration::from_secs(1)));
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

// ------------------------------------------------------------ test__socket

/// A std peer for one connection on an OS thread: accepts, then runs `f`.
fn std_peer<T: Send + 'static>(
    f: impl FnOnce(std::net::TcpStream) -> T + Send + 'static,
) -> (SocketAddr, thread::JoinHandle<T>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(PEER_TIMEOUT)).unwrap();
        f(s)
    });
    (addr, h)
}

/// How a std peer saw its connection end.
fn read_until_end(s: &mut std::net::TcpStream) -> (usize, Result<(), io::ErrorKind>) {
    let mut buf = [0u8; 8192];
    let mut n = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (n, Ok(())),
            Ok(k) => n += k,
            Err(e) => return (n, Err(e.kind())),
        }
    }
}

fn crc(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

/// gevent test__socket.py TestTCP.test_sendall (large buffers) against a
/// slow Python reader: 8 MiB in one `write_all` arrives intact, and other
/// greenlets keep running while the writer is parked on a full buffer.
#[test]
fn sendall_large_buffer_to_a_slow_python_reader() {
    bounded(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port().to_string();
        let mut data = base().to_vec();
        data.extend_from_slice(base());
        data.extend_from_slice(pattern(5, MAX_STREAM));
        data.extend_from_slice(base());
        data.truncate(7 * MAX_STREAM + 12345);
        let expect = format!("{} {}", data.len(), crc(&data));
        let py = sylvan::spawn(move || {
            python(
                r#"
import socket, sys, time, zlib
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=4)
n, c = 0, 0
while True:
    b = s.recv(65536 if n < 3000000 else 1 << 20)
    if not b:
        break
    if n < 3000000:
        time.sleep(0.002)   # slow at first, so the writer parks many times
    n += len(b)
    c = zlib.crc32(b, c)
print(n, c)
"#,
                vec![port],
            )
        });
        let (c, _) = l.accept().unwrap();
        let ticks = Rc::new(Cell::new(0u32));
        let t = ticks.clone();
        let ticker = sylvan::spawn(move || {
            loop {
                sylvan::sleep(Duration::from_millis(2));
                t.set(t.get() + 1);
            }
        });
        (&c).write_all(&data).unwrap();
        drop(c);
        assert_eq!(py.join().unwrap().trim(), expect);
        assert!(ticks.get() >= 10, "ticker ran {} times", ticks.get());
        ticker.kill();
    });
}

/// gevent test__socket.py test_recv_into / makefile: a Python peer sends
/// in small pieces with pauses; reads into the middle of one buffer, a
/// vectored read, and BufReader lines all see the bytes in order.
#[test]
fn recv_into_vectored_and_buffered_lines_from_a_python_sender() {
    bounded(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port().to_string();
        let py = sylvan::spawn(move || {
            python(
                r#"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=4)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for part in (b"0123", b"456789", b"abcdefghij"):   # 20 bytes for recv_into
    s.sendall(part); time.sleep(0.01)
s.sendall(b"ABCDEFGHIJKLMNOP")                    # 16 for the vectored read
time.sleep(0.01)
for ch in b"line one\nline two\r\n":              # byte by byte
    s.sendall(bytes([ch])); time.sleep(0.001)
s.sendall(b"last line without newline")
s.shutdown(socket.SHUT_WR)
assert s.recv(100) == b"thanks"
print("ok")
"#,
                vec![port],
            )
        });
        let (mut c, _) = l.accept().unwrap();
        let mut buf = [b'.'; 30];
        let mut off = 5;
        while off < 25 {
            let n = c.read(&mut buf[off..25]).unwrap();
            assert!(n > 0);
            off += n;
        }
        assert_eq!(&buf, b".....0123456789abcdefghij.....");
        let (mut a, mut b) = ([0u8; 6], [0u8; 10]);
        let mut got = 0;
        while got < 16 {
            let n = if got < 6 {
                let mut v = [
                    io::IoSliceMut::new(&mut a[got..]),
                    io::IoSliceMut::new(&mut b),
                ];
                c.read_vectored(&mut v).unwrap()
            } else {
                c.read(&mut b[got - 6..]).unwrap()
            };
            assert!(n > 0);
            got += n;
        }
        assert_eq!((&a[..], &b[..]), (&b"ABCDEF"[..], &b"GHIJKLMNOP"[..]));
        let mut r = BufReader::new(c.try_clone().unwrap());
        let lines: Vec<String> = (&mut r).lines().map(Result::unwrap).collect();
        assert_eq!(lines, ["line one", "line two", "last line without newline"]);
        c.write_all(b"thanks").unwrap();
        assert_eq!(py.join().unwrap().trim(), "ok");
    });
}

/// A Python server started as a child process: its script prints the
/// port it listens on as the first line of stdout.
struct PyServer {
    child: Option<std::process::Child>,
    port: u16,
}

impl PyServer {
    fn start(script: &str) -> PyServer {
        let script = script.to_owned();
        let (child, line) = sylvan::spawn_blocking(move || {
            let mut child = Command::new("timeout")
                .arg("10")
                .arg("python3")
                .arg("-c")
                .arg(script)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("run python3");
            let mut line = String::new();
            BufReader::new(child.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
            (child, line)
        });
        let port = line
            .trim()
            .parse()
            .expect("the python server printed its port");
        PyServer {
            child: Some(child),
            port,
        }
    }

    /// Waits for the script to exit 0; returns the rest of its stdout.
    fn finish(mut self) -> String {
        let child = self.child.take().unwrap();
        let out = sylvan::spawn_blocking(move || child.wait_with_output().unwrap());
        assert!(
            out.status.success(),
            "python server failed: {:?}",
            out.status
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// gevent test__socket.py test_shutdown-style request/reply: the client
/// sends a request, shuts down its write half, then reads the long reply
/// of a Python server that read until end of stream.
#[test]
fn shutdown_write_then_read_the_reply_of_a_python_server() {
    bounded(|| {
        let server = PyServer::start(
            r#"
import socket, zlib
l = socket.socket()
l.bind(("127.0.0.1", 0)); l.listen(1)
print(l.getsockname()[1], flush=True)
c, _ = l.accept()
c.settimeout(4)
data = b""
while True:
    b = c.recv(65536)
    if not b: break
    data += b
c.sendall(("%d %d\n" % (len(data), zlib.crc32(data))).encode() * 20000)
c.close()
print("done")
"#,
        );
        let req = pattern(11, 300_000);
        let mut c = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        c.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
        c.write_all(req).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        let line = format!("{} {}\n", req.len(), crc(req));
        assert_eq!(reply.len(), line.len() * 20000);
        assert!(reply == line.repeat(20000));
        // writing after our own shutdown(Write) fails, without SIGPIPE
        assert_eq!(c.write(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(server.finish().trim(), "done");
    });
}

// ------------------------------------- kills, timeouts and closed sockets

/// gevent test__socket_close.py / greenlet kill semantics: a greenlet
/// killed while parked in a read drops its socket; the std peer sees end
/// of stream promptly.
#[test]
fn killed_reader_closes_its_socket_and_the_peer_sees_eof() {
    bounded(|| {
        let (addr, peer) = std_peer(|mut s| {
            s.write_all(b"hello").unwrap();
            let t0 = Instant::now();
            let end = read_until_end(&mut s);
            (end, t0.elapsed())
        });
        let c = TcpStream::connect(addr).unwrap();
        let g = sylvan::spawn(move || {
            let mut c = c;
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hello");
            let _ = c.read(&mut buf); // parks: the peer sends nothing more
            unreachable!("the peer never writes again");
        });
        yield_until("the reader parks", || g.is_started());
        sylvan::sleep(Duration::from_millis(20));
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        let ((n, end), waited) = join_thread(peer);
        assert_eq!((n, end), (0, Ok(())));
        assert!(waited < Duration::from_secs(2), "EOF took {waited:?}");
    });
}

/// gevent test__socket_close.py: a killed greenlet that leaves unread
/// data behind closes with a reset:
/// the peer's next read fails with ConnectionReset (the kernel's close
/// semantics, as with gevent's `sock.close()`).
#[test]
fn killed_greenlet_with_unread_data_resets_the_peer() {
    bounded(|| {
        let (tx, rx) = mpsc::channel::<()>();
        let (addr, peer) = std_peer(move |mut s| {
            s.write_all(&[1u8; 1000]).unwrap();
            rx.recv().unwrap(); // the sylvan side is dead
            let mut buf = [0u8; 16];
            s.read(&mut buf).map_err(|e| e.kind())
        });
        let c = TcpStream::connect(addr).unwrap();
        let g = sylvan::spawn(move || {
            let _c = c;
            sylvan::sleep(Duration::from_secs(10));
        });
        // the data has arrived and is never read
        sylvan::sleep(Duration::from_millis(50));
        g.kill();
        tx.send(()).unwrap();
        let r = join_thread(peer);
        assert_eq!(r, Err(io::ErrorKind::ConnectionReset));
    });
}

/// gevent test__socket_timeout.py / Timeout semantics on sockets: a greenlet whose read is cut off
/// by `with_timeout` goes on and drops the socket; the peer sees end of
/// stream, and the hub has nothing left registered for it.
#[test]
fn timed_out_greenlet_drops_its_socket_and_the_peer_sees_eof() {
    bounded(|| {
        let (addr, peer) = std_peer(|mut s| read_until_end(&mut s));
        let g = sylvan::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"request").unwrap();
            let mut buf = [0u8; 16];
            let t0 = Instant::now();
            let r = sylvan::with_timeout(Duration::from_millis(50), || c.read(&mut buf));
            assert!(r.is_err(), "the read was cut off");
            t0.elapsed()
        });
        let took = g.join().unwrap();
        assert!(
            took >= Duration::from_millis(45) && took < Duration::from_secs(1),
            "{took:?}"
        );
        assert_eq!(join_thread(peer), (7, Ok(())));
    });
}

/// gevent test__greenlet.py (kill before start): the greenlet never runs and the
/// socket its closure owns is closed at once (the peer sees EOF without
/// waiting for anything else), for `spawn` and `spawn_later` alike.
#[test]
fn killing_an_unstarted_greenlet_closes_the_socket_it_owns() {
    bounded(|| {
        for later in [false, true] {
            let (addr, peer) = std_peer(|mut s| read_until_end(&mut s));
            let c = TcpStream::connect(addr).unwrap();
            let ran = Rc::new(Cell::new(false));
            let r = ran.clone();
            let body = move || {
                r.set(true);
                let _ = (&c).write_all(b"never");
            };
            let g = if later {
                sylvan::spawn_later(Duration::from_secs(30), body)
            } else {
                sylvan::spawn(body)
            };
            g.kill();
            assert!(g.is_dead());
            assert_eq!(join_thread(peer), (0, Ok(())), "later={later}");
            assert!(!ran.get());
        }
    });
}

/// gevent test__pool.py (Pool.kill) on handlers parked on sockets: every socket is
/// closed and every peer sees end of stream.
#[test]
fn pool_kill_closes_every_member_socket() {
    bounded(|| {
        let pool = sylvan::pool::Pool::new(4);
        let mut peers = Vec::new();
        for _ in 0..4 {
            let (addr, peer) = std_peer(|mut s| read_until_end(&mut s));
            peers.push(peer);
            let c = TcpStream::connect(addr).unwrap();
            pool.spawn(move || {
                let mut c = c;
                let _ = c.read(&mut [0u8; 8]);
            });
        }
        yield_until("members park", || pool.len() == 4);
        sylvan::sleep(Duration::from_millis(10));
        pool.kill();
        assert!(pool.is_empty());
        for p in peers {
            assert_eq!(join_thread(p), (0, Ok(())));
        }
    });
}

/// gevent test__socket_close.py (closing a socket another greenlet is
/// blocked on): one greenlet parks reading, another shuts the socket down
/// both ways and drops its handle; the reader wakes with end of stream,
/// and the Python peer sees the connection end.
#[test]
fn shutdown_from_another_greenlet_wakes_the_reader_and_the_python_peer_sees_eof() {
    bounded(|| {
        let server = PyServer::start(
            r#"
import socket
l = socket.socket()
l.bind(("127.0.0.1", 0)); l.listen(1)
print(l.getsockname()[1], flush=True)
c, _ = l.accept()
c.settimeout(4)
assert c.recv(10) == b""
print("eof")
"#,
        );
        let c = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        let c2 = c.try_clone().unwrap();
        let reader = sylvan::spawn(move || (&c2).read(&mut [0u8; 8]).map_err(|e| e.kind()));
        yield_until("the reader parks", || reader.is_started());
        sylvan::sleep(Duration::from_millis(10));
        c.shutdown(Shutdown::Both).unwrap();
        drop(c);
        assert_eq!(reader.join().unwrap(), Ok(0));
        assert_eq!(server.finish().trim(), "eof");
    });
}

/// test__socket_timeout.py: a write timeout bounds each wait, not the
/// whole `write_all` (std's per-call semantics): a reader that is slow but
/// keeps reading more often than the timeout lets a long write_all finish.
#[test]
fn write_timeout_bounds_each_wait_not_the_whole_write_all() {
    bounded(|| {
        let (addr, peer) = std_peer(|mut s| {
            let mut buf = vec![0u8; 256 * 1024];
            let mut n = 0;
            loop {
                thread::sleep(Duration::from_millis(30));
                match s.read(&mut buf).unwrap() {
                    0 => return n,
                    k => n += k,
                }
            }
        });
        let c = TcpStream::connect(addr).unwrap();
        // Each wait is about 30 ms, far below the timeout however loaded
        // the machine; the whole write takes longer than the timeout.
        let timeout = Duration::from_millis(600);
        c.set_write_timeout(Some(timeout)).unwrap();
        let data = vec![7u8; 12 << 20];
        let t0 = Instant::now();
        (&c).write_all(&data).unwrap();
        let took = t0.elapsed();
        drop(c);
        assert_eq!(join_thread(peer), data.len());
        eprintln!("write_all of 12 MiB took {took:?}");
    });
}

// ----------------------------------------------- test__server / hub exit

/// Waits (on an OS thread, no hub involved) for `h` to finish, at most
/// `limit`.
fn join_os_thread_bounded<T>(h: thread::JoinHandle<T>, limit: Duration) -> thread::Result<T> {
    let t0 = Instant::now();
    while !h.is_finished() {
        assert!(
            t0.elapsed() < limit,
            "thread did not finish within {limit:?}"
        );
        thread::sleep(Duration::from_millis(2));
    }
    h.join()
}

/// gevent test__hub_join.py / thread exit: a hub thread returns while its
/// greenlets are parked on sockets (a server's handlers reading, a
/// greenlet writing to a full peer, one in accept, one in a UDP recv).
/// The hub is torn down at thread exit without panicking, every socket is
/// closed, and the std peers see their connections end.
#[test]
fn thread_exit_with_greenlets_parked_on_sockets_closes_them_all() {
    let (tx, rx) = mpsc::channel::<(SocketAddr, SocketAddr)>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let hub_thread = thread::spawn(move || {
        let server = StreamServer::bind("127.0.0.1:0", |mut c: TcpStream, _| {
            let _ = c.write_all(b"welcome");
            let _ = c.read(&mut [0u8; 8]);
        })
        .unwrap()
        .start()
        .unwrap();
        // a writer parked on a peer that never reads
        let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sink_addr = sink.local_addr().unwrap();
        tx.send((server.local_addr().unwrap(), sink_addr)).unwrap();
        let w = TcpStream::connect(sink_addr).unwrap();
        let writer = sylvan::spawn(move || (&w).write_all(&vec![1u8; 16 << 20]));
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let acceptor = sylvan::spawn(move || l.accept().map(drop));
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let receiver = sylvan::spawn(move || u.recv(&mut [0u8; 8]));
        // wait (without blocking the hub) until the clients are connected
        sylvan::spawn_blocking(move || go_rx.recv_timeout(PEER_TIMEOUT).unwrap());
        yield_until("handlers and writer park", || server.handlers() == 3);
        sylvan::sleep(Duration::from_millis(20));
        assert!(!writer.is_dead() && !acceptor.is_dead() && !receiver.is_dead());
        drop((writer, acceptor, receiver));
        // the server handle goes too: dropped at the end of this closure
        sink
    });
    let (addr, _sink_addr) = rx.recv_timeout(PEER_TIMEOUT).unwrap();
    let clients: Vec<_> = (0..3).map(|_| std_connect(addr)).collect();
    let mut clients: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let mut w = [0u8; 7];
            c.read_exact(&mut w).unwrap();
            assert_eq!(&w, b"welcome");
            c
        })
        .collect();
    go_tx.send(()).unwrap();
    let sink = join_os_thread_bounded(hub_thread, Duration::from_secs(3))
        .expect("the hub thread exited without a panic");
    for c in &mut clients {
        assert_eq!(
            read_until_end(c),
            (0, Ok(())),
            "the handler's socket was closed"
        );
    }
    // the parked writer's connection ended too: its peer reads the bytes
    // that made it, then end of stream (or a reset)
    let (mut s, _) = sink.accept().unwrap();
    s.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
    let (n, end) = read_until_end(&mut s);
    assert!(n > 0);
    assert!(
        end.is_ok() || end == Err(io::ErrorKind::ConnectionReset),
        "{end:?}"
    );
}

/// gevent test__server.py TestPoolSpawn (pool full, backlog) and stop with
/// connections open: one slot, held by a handler parked on its client;
/// two more clients wait in the backlog. `stop` kills the handler and
/// closes the listener: the served client sees end of stream, the queued
/// ones see their connections reset or closed, and nobody hangs.
#[test]
fn stop_with_a_full_pool_and_a_backlog_ends_every_connection() {
    bounded(|| {
        let served = Rc::new(Cell::new(0));
        let s2 = served.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |mut c: TcpStream, _| {
            s2.set(s2.get() + 1);
            let _ = c.write_all(b"served");
            let _ = c.read(&mut [0u8; 8]);
        })
        .unwrap()
        .with_pool(sylvan::pool::Pool::new(1))
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        let clients: Vec<_> = (0..3)
            .map(|i| {
                let tx = tx.clone();
                thread::spawn(move || {
                    let mut c = std_connect(addr);
                    tx.send(()).unwrap();
                    let mut got = Vec::new();
                    let mut buf = [0u8; 16];
                    loop {
                        match c.read(&mut buf) {
                            Ok(0) => return (i, got, Ok(())),
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                            Err(e) => return (i, got, Err(e.kind())),
                        }
                    }
                })
            })
            .collect();
        sylvan::spawn_blocking(move || {
            for _ in 0..3 {
                rx.recv_timeout(PEER_TIMEOUT).unwrap();
            }
        });
        yield_until("one served", || served.get() == 1);
        sylvan::sleep(Duration::from_millis(30));
        assert_eq!(server.accepted(), 1, "the pool is full: the others wait");
        let t0 = Instant::now();
        server.stop(Some(Duration::from_millis(50)));
        let mut ends = Vec::new();
        for c in clients {
            ends.push(join_thread(c));
        }
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert_eq!(served.get(), 1);
        for (i, got, end) in ends {
            if got.is_empty() {
                assert!(
                    end.is_ok() || end == Err(io::ErrorKind::ConnectionReset),
                    "queued client {i}: {end:?}"
                );
            } else {
                assert_eq!((&got[..], end), (&b"served"[..], Ok(())), "client {i}");
            }
        }
    });
}

/// gevent examples/concurrent_download.py with keep-alive and a gevent
/// Timeout around each fetch: against a Python HTTP/1.1 server, fetches
/// cut off mid-body by `with_timeout` must not leave a half-read
/// connection in the agent's pool; the fetches after them on the same
/// agent all get their own, complete bodies.
#[test]
fn concurrent_download_timeouts_mid_body_do_not_desync_keep_alive() {
    bounded(|| {
        let server = PyServer::start(
            r#"
import http.server, socketserver, time, threading
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        body = (self.path + "\n").encode() * 2000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path.startswith("/slow"):
            self.wfile.write(body[:1000]); self.wfile.flush()
            time.sleep(0.4)
        self.wfile.write(body)
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
threading.Timer(6, s.shutdown).start()
s.serve_forever()
"#,
        );
        let port = server.port;
        let agent = sylvan::ureq::agent(ureq::Agent::config_builder().build());
        let fetch = move |agent: ureq::Agent, path: String| {
            sylvan::with_timeout(Duration::from_millis(150), move || {
                let mut res = agent
                    .get(format!("http://127.0.0.1:{port}{path}"))
                    .call()
                    .map_err(|e| e.to_string())?;
                res.body_mut().read_to_string().map_err(|e| e.to_string())
            })
        };
        for round in 0..3 {
            let jobs: Vec<_> = (0..6)
                .map(|i| {
                    let path = if i % 3 == 0 {
                        format!("/slow/{round}/{i}")
                    } else {
                        format!("/page/{round}/{i}")
                    };
                    let (agent, fetch) = (agent.clone(), fetch);
                    sylvan::spawn(move || (path.clone(), fetch(agent, path)))
                })
                .collect();
            for g in jobs {
                let (path, r) = g.join().unwrap();
                match r {
                    Err(_elapsed) => assert!(path.starts_with("/slow"), "{path} timed out"),
                    Ok(Ok(body)) => {
                        assert!(path.starts_with("/page"), "{path} was not cut off");
                        assert_eq!(body, format!("{path}\n").repeat(2000), "{path}");
                    }
                    Ok(Err(e)) => panic!("{path}: {e}"),
                }
            }
        }
        drop(server);
    });
}

/// gevent test__socket.py / test__server.py descriptor hygiene: forwarder
/// traffic, resets, refused targets, a stop mid-stream, kills and
/// timeouts leave no descriptor behind, and nothing registered that could
/// keep the hub waiting (run alone in a child process, where the
/// descriptor count is this test's only).
#[test]
fn no_descriptor_leak_after_forwarder_kills_and_timeouts() {
    const NAME: &str = "examples-gevent-fd-leak";
    if !is_child(NAME) {
        let out = run_child(
            "examples_gevent::no_descriptor_leak_after_forwarder_kills_and_timeouts",
            NAME,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    quiet();
    // warm up: the hub, its poller, the blocking pool
    join_thread(thread::spawn(|| ()));
    drop(TcpListener::bind("127.0.0.1:0").unwrap());
    let before = open_fds();
    bounded(|| {
        for _ in 0..2 {
            // traffic through the forwarder
            let (target, backend) = std_echo_backend(10);
            let fwd = port_forwarder(target);
            let addr = fwd.local_addr().unwrap();
            let clients: Vec<_> = (0..10)
                .map(|id| {
                    sylvan::spawn(move || {
                        let c = TcpStream::connect(addr).unwrap();
                        (&c).write_all(pattern(id, 50_000)).unwrap();
                        c.shutdown(Shutdown::Write).unwrap();
                        let mut back = Vec::new();
                        (&c).read_to_end(&mut back).unwrap();
                        assert!(back == pattern(id, 50_000));
                    })
                })
                .collect();
            assert!(sylvan::joinall(&clients, None));
            join_thread(backend);
            // a refused target, and a stop with a connection mid-stream
            let refused = port_forwarder(
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap(),
            );
            let mut c = TcpStream::connect(refused.local_addr().unwrap()).unwrap();
            assert_eq!(c.read(&mut [0u8; 4]).unwrap_or(0), 0);
            drop(c);
            let (target, backend) = std_echo_backend(1);
            let fwd2 = port_forwarder(target);
            let mut c = TcpStream::connect(fwd2.local_addr().unwrap()).unwrap();
            c.write_all(b"ping").unwrap();
            c.read_exact(&mut [0u8; 4]).unwrap();
            fwd2.stop(Some(Duration::from_millis(10)));
            let _ = c.read(&mut [0u8; 4]);
            drop(c);
            join_thread(backend);
            // a killed reader and a timed-out one
            let (addr, peer) = std_peer(|mut s| read_until_end(&mut s));
            let s = TcpStream::connect(addr).unwrap();
            let g = sylvan::spawn(move || {
                let _ = (&s).read(&mut [0u8; 1]);
            });
            yield_until("parked", || g.is_started());
            g.kill();
            assert_eq!(join_thread(peer), (0, Ok(())));
            let (addr, peer) = std_peer(|mut s| read_until_end(&mut s));
            let s = TcpStream::connect(addr).unwrap();
            let r = sylvan::with_timeout(Duration::from_millis(10), || (&s).read(&mut [0u8; 1]));
            assert!(r.is_err());
            drop(s);
            assert_eq!(join_thread(peer), (0, Ok(())));
            fwd.stop(Some(Duration::from_millis(100)));
            refused.stop(Some(Duration::from_millis(100)));
        }
    });
    // helper greenlets killed by the handlers' guards finish unwinding
    sylvan::sleep(Duration::from_millis(20));
    assert_eq!(open_fds(), before, "descriptors leaked");
    let ev = sylvan::sync::Event::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ev.wait()));
    let msg = sylvan::runtime::payload_message(&*r.unwrap_err());
    assert!(
        msg.contains("would block forever"),
        "a stale wake source: {msg}"
    );
}

/// The project's own examples/echo_server.rs (its `echo` handler and
/// `server`), as test__example_echoserver.py runs gevent's.
#[path = "../../examples/echo_server.rs"]
#[allow(dead_code)]
mod echo_server_example;

/// gevent src/gevent/tests/test__example_portforwarder.py /
/// test__example_echoserver.py: the example server runs `serve_forever`
/// with a SIGINT handler that stops it with a one-second grace, as
/// examples/echo_server.rs's `main` does; a Python client echoes on three
/// connections, leaves one idle, and sends SIGINT. `serve_forever` returns
/// Ok, the idle connection is closed after the grace, new connections are
/// refused (run in a child process: the signal is process-wide).
#[test]
fn echo_server_example_stops_gracefully_on_sigint() {
    const NAME: &str = "examples-gevent-sigint";
    if !is_child(NAME) {
        let out = run_child(
            "examples_gevent::echo_server_example_stops_gracefully_on_sigint",
            NAME,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    bounded(|| {
        let server = echo_server_example::server("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let s = server.clone();
        let _ctrl_c = sylvan::signal(libc::SIGINT, move || {
            s.stop(Some(Duration::from_secs(1)));
        })
        .unwrap();
        let client = sylvan::spawn(move || {
            python(
                r#"
import os, signal, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
socks = [socket.create_connection(("127.0.0.1", port), timeout=4) for _ in range(3)]
for i, s in enumerate(socks):
    msg = b"hello %d " % i * 1000
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        got += s.recv(65536)
    assert got == msg
socks[0].close()                 # its handler ends on its own
socks[1].shutdown(socket.SHUT_WR)
assert socks[1].recv(10) == b""  # the echo handler closes after EOF
t0 = time.time()
os.kill(pid, signal.SIGINT)
assert socks[2].recv(10) == b""  # idle: killed after the grace
waited = time.time() - t0
try:
    socket.create_connection(("127.0.0.1", port), timeout=1)
    print("connected after stop")
except ConnectionRefusedError:
    print("refused %.1f" % waited)
"#,
                vec![port.to_string(), std::process::id().to_string()],
            )
        });
        let t0 = Instant::now();
        server.serve_forever().unwrap();
        let took = t0.elapsed();
        let out = client.join().unwrap();
        assert!(out.starts_with("refused"), "{out}");
        let waited: f64 = out.trim()[8..].parse().unwrap();
        assert!((0.8..2.0).contains(&waited), "grace of {waited} s");
        assert!(took < Duration::from_secs(4), "{took:?}");
        assert_eq!(server.accepted(), 3);
        assert_eq!(server.handlers(), 0);
    });
}
