//! Sockets: TCP, UDP, Unix, the stream server, kills and timeouts on
//! sockets, and descriptor leaks.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::{StreamServer, TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};

use crate::util::{DropFlag, is_child, run_child, yield_until};

/// Raises the open-file soft limit to the hard one (as DESIGN.md says for
/// tests with many connections).
pub fn raise_fd_limit() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// An echo server greenlet on a fresh loopback port: echoes each
/// connection until end of stream.
fn echo_server() -> (SocketAddr, StreamServer) {
    let server = StreamServer::bind("127.0.0.1:0", |mut c: TcpStream, _| {
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
    })
    .unwrap()
    .start()
    .unwrap();
    (server.local_addr().unwrap(), server)
}

/// A listener whose accept queue is full, so further connects hang in
/// SYN-SENT (the kernel drops their SYNs): for connect timeouts and kills.
/// Returns it with the connections that filled it.
pub fn full_backlog_listener() -> (TcpListener, SocketAddr, Vec<TcpStream>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen() on an open listening socket only changes its backlog.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    let addr = l.local_addr().unwrap();
    let mut fill = Vec::new();
    // With backlog 0 one connection fills the queue; a few more make sure.
    for _ in 0..4 {
        match TcpStream::connect_timeout(addr, Duration::from_millis(50)) {
            Ok(s) => fill.push(s),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => break,
            Err(e) => panic!("{e}"),
        }
    }
    (l, addr, fill)
}

#[test]
fn echo_round_trips() {
    let (addr, server) = echo_server();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    assert_eq!(c.peer_addr().unwrap(), addr);
    for i in 0..200u32 {
        let msg = [i as u8; 64];
        c.write_all(&msg).unwrap();
        let mut back = [0u8; 64];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    drop(c);
    server.stop(Some(Duration::from_secs(1)));
    assert_eq!(server.accepted(), 1);
}

#[test]
fn a_thousand_concurrent_connections_on_one_hub() {
    let limit = raise_fd_limit();
    assert!(
        limit >= 2_200,
        "open-file hard limit {limit} too low for 1,000 connections"
    );
    let (addr, server) = echo_server();
    let open = Rc::new(Cell::new(0usize));
    let peak = Rc::new(Cell::new(0usize));
    let clients: Vec<_> = (0..1_000u32)
        .map(|i| {
            let (open, peak) = (open.clone(), peak.clone());
            sylvan::spawn(move || -> io::Result<()> {
                let mut c = TcpStream::connect(addr)?;
                open.set(open.get() + 1);
                peak.set(peak.get().max(open.get()));
                // Everyone connects before anyone talks.
                while open.get() < 1_000 && peak.get() < 1_000 {
                    sylvan::sleep(Duration::from_millis(1));
                }
                let msg = [(i % 251) as u8; 64];
                for _ in 0..3 {
                    c.write_all(&msg)?;
                    let mut back = [0u8; 64];
                    c.read_exact(&mut back)?;
                    assert_eq!(back, msg);
                }
                Ok(())
            })
        })
        .collect();
    for g in clients {
        g.join().unwrap().unwrap();
    }
    assert_eq!(peak.get(), 1_000, "all 1,000 connections were open at once");
    assert_eq!(server.accepted(), 1_000);
    server.stop(Some(Duration::from_secs(5)));
}

/// xorshift bytes, and an FNV-1a checksum.
fn fill(seed: &mut u64, buf: &mut [u8]) {
    for b in buf {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *b = *seed as u8;
    }
}

fn fnv(h: &mut u64, buf: &[u8]) {
    for &b in buf {
        *h ^= b as u64;
        *h = h.wrapping_mul(0x100000001b3);
    }
}

#[test]
fn large_writes_against_a_slow_reader_lose_nothing() {
    const TOTAL: usize = 8 << 20;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let writer_parked = Rc::new(Cell::new(0u32));
    let wp = writer_parked.clone();
    let writer = sylvan::spawn(move || -> io::Result<u64> {
        let (mut c, _) = l.accept()?;
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut sum = 0xcbf29ce484222325u64;
        let mut chunk = vec![0u8; 256 << 10];
        let mut sent = 0;
        while sent < TOTAL {
            fill(&mut seed, &mut chunk);
            fnv(&mut sum, &chunk);
            let before = sylvan::stats().switches;
            c.write_all(&chunk)?;
            if sylvan::stats().switches != before {
                wp.set(wp.get() + 1); // the write parked: back-pressure
            }
            sent += chunk.len();
        }
        Ok(sum)
    });
    let mut c = TcpStream::connect(addr).unwrap();
    let mut sum = 0xcbf29ce484222325u64;
    let mut got = 0;
    let mut buf = [0u8; 1500];
    let mut reads = 0u32;
    loop {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        fnv(&mut sum, &buf[..n]);
        got += n;
        reads += 1;
        if reads.is_multiple_of(64) {
            // A slow reader: let the writer fill the socket buffers.
            sylvan::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(got, TOTAL);
    assert_eq!(writer.join().unwrap().unwrap(), sum, "checksums match");
    assert!(
        writer_parked.get() > 0,
        "the writer was held back by the slow reader"
    );
}

#[test]
fn half_close_is_end_of_stream_and_the_other_half_still_works() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = sylvan::spawn(move || -> io::Result<Vec<u8>> {
        let (mut c, _) = l.accept()?;
        let mut all = Vec::new();
        c.read_to_end(&mut all)?; // ends at the client's half-close
        c.write_all(b"bye")?;
        Ok(all)
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"hello").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "bye");
    assert_eq!(server.join().unwrap().unwrap(), b"hello");
    // Writing after our own half-close is an error, not a panic.
    assert_eq!(c.write(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn data_and_end_of_stream_polled_before_the_reads_are_both_seen() {
    // The hub learns of the data and the FIN in one poll, before anyone
    // reads. The first read is short, which marks a socket drained; the FIN
    // raises no further edge, so the second read must still see it.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = sylvan::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.write_all(b"hello").unwrap();
    });
    let mut c = TcpStream::connect(addr).unwrap();
    server.join().unwrap();
    // A sleep parks main with nothing ready: the hub polls and records
    // the readiness.
    sylvan::sleep(Duration::from_millis(20));
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(c.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    let mut bufs = [io::IoSliceMut::new(&mut a), io::IoSliceMut::new(&mut b)];
    assert_eq!(c.read_vectored(&mut bufs).unwrap(), 0, "end of stream");
    assert_eq!(c.read(&mut buf).unwrap(), 0, "end of stream again");
}

#[test]
fn a_read_after_a_short_read_parks_until_more_arrives() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let go = Rc::new(sylvan::sync::Event::new());
    let server = {
        let go = go.clone();
        sylvan::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            c.write_all(b"ab").unwrap();
            go.wait();
            c.write_all(b"cd").unwrap();
            // Keeps the connection open until the client has read.
            let mut end = [0u8; 1];
            c.read(&mut end).unwrap()
        })
    };
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(c.read(&mut buf).unwrap(), 2, "a short read");
    assert_eq!(&buf[..2], b"ab");
    let reader = sylvan::spawn(move || {
        let mut buf = [0u8; 16];
        let n = c.read(&mut buf).unwrap();
        (buf[..n].to_vec(), c)
    });
    yield_until("the reader parked", || reader.is_started());
    assert!(!reader.is_dead(), "nothing to read yet: the reader parks");
    go.set();
    let (got, c) = reader.join().unwrap();
    assert_eq!(got, b"cd");
    drop(c);
    assert_eq!(server.join().unwrap(), 0);
}

#[test]
fn is_reusable_sees_pending_bytes_end_of_stream_and_resets() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (mut s, _) = l.accept().unwrap();
    assert!(c.is_reusable(), "a fresh connection");
    assert!(c.is_reusable(), "asked twice (known drained)");

    let mut buf = [0u8; 16];
    s.write_all(b"hello").unwrap();
    assert!(c.peek(&mut buf).unwrap() > 0); // parks until the bytes are there
    assert!(!c.is_reusable(), "unread bytes are pending");
    assert!(!c.is_reusable(), "still pending: a probe does not consume");
    let mut n = 0;
    while n < 5 {
        n += (&c).read(&mut buf[n..]).unwrap();
    }
    assert_eq!(&buf[..5], b"hello");
    assert!(c.is_reusable(), "all read");

    s.write_all(b"x").unwrap();
    assert_eq!(c.peek(&mut buf).unwrap(), 1);
    assert!(!c.is_reusable(), "bytes after a drained read");
    assert_eq!((&c).read(&mut buf).unwrap(), 1);

    drop(s);
    assert_eq!(c.peek(&mut buf).unwrap(), 0, "end of stream");
    assert!(!c.is_reusable(), "the peer closed");
    assert!(!c.is_reusable(), "end of stream stays seen");

    let c2 = TcpStream::connect(addr).unwrap();
    c2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (s2, _) = l.accept().unwrap();
    assert!(c2.is_reusable());
    set_linger_zero(&s2);
    drop(s2);
    let err = c2.peek(&mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    assert!(!c2.is_reusable(), "the peer reset it");
}

/// Makes dropping `s` send a reset (SO_LINGER with a zero timeout).
fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt with a valid linger struct of the right size on an
    // open socket.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

#[test]
fn peer_reset_is_reported_as_an_error() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let reader = sylvan::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut buf = [0u8; 16];
        c.read(&mut buf) // parks until the reset arrives
    });
    let c = TcpStream::connect(addr).unwrap();
    yield_until("the reader parked", || reader.is_started());
    sylvan::yield_now();
    set_linger_zero(&c);
    drop(c);
    let err = reader.join().unwrap().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
}

#[test]
fn read_timeout_gives_timed_out() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (_server_side, _) = l.accept().unwrap();
    c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
    assert_eq!(c.read_timeout().unwrap(), Some(Duration::from_millis(30)));
    let t = Instant::now();
    let err = (&c).read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert_eq!(
        c.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn write_timeout_gives_timed_out() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (_server_side, _) = l.accept().unwrap(); // never reads
    c.set_write_timeout(Some(Duration::from_millis(30)))
        .unwrap();
    let chunk = vec![0u8; 1 << 20];
    let err = loop {
        if let Err(e) = c.write(&chunk) {
            break e;
        }
    };
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
}

#[test]
fn connect_timeout_gives_timed_out() {
    let (_l, addr, _fill) = full_backlog_listener();
    let t = Instant::now();
    let err = TcpStream::connect_timeout(addr, Duration::from_millis(40)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(t.elapsed() >= Duration::from_millis(40));
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[test]
fn connection_refused_is_a_clear_error() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // the listener is closed: nothing listens there now
    let err = crate::util::first_error(|| TcpStream::connect(addr));
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    // The kernel's error as std gives it: its errno kept.
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED), "{err}");
}

#[test]
fn an_unresolvable_host_is_a_clear_error() {
    if crate::util::bad_host_fails_fast() {
        let err = TcpStream::connect("no-such-host.invalid:80").unwrap_err();
        assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
        let err = sylvan::net::lookup_host(("no-such-host.invalid", 80)).unwrap_err();
        assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
    }
    let err = TcpStream::connect("not an address").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
}

#[test]
fn host_names_resolve_and_connect() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let addrs = sylvan::net::lookup_host(("localhost", port)).unwrap();
    assert!(addrs.iter().any(|a| a.ip().is_loopback()), "{addrs:?}");
    let acc = sylvan::spawn(move || l.accept().map(drop));
    let c = TcpStream::connect(format!("localhost:{port}"));
    // localhost may resolve to ::1 first; the IPv4 address then answers.
    c.unwrap();
    acc.join().unwrap().unwrap();
}

/// Kills a greenlet parked in some socket call and checks it unwound.
fn kill_parked(what: &'static str, body: impl FnOnce() + 'static) {
    let dropped = Rc::new(Cell::new(0));
    let flag = DropFlag(dropped.clone());
    let g = sylvan::spawn(move || {
        let _flag = flag;
        body();
        panic!("the {what} returned");
    });
    yield_until("it started", || g.is_started());
    // let it reach its park
    sylvan::yield_now();
    assert!(!g.is_dead(), "{what}: it should be parked");
    g.kill();
    assert!(g.join().unwrap_err().is_killed(), "{what}");
    assert_eq!(dropped.get(), 1, "{what}: destructors ran");
}

/// Kills greenlets parked in accept, read, write and connect.
fn kill_in_each_socket_call() {
    let l = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = l.local_addr().unwrap();
    let l2 = l.clone();
    kill_parked("accept", move || {
        let _ = l2.accept();
    });

    // read: the socket stays usable by the next reader
    let c = Rc::new(TcpStream::connect(addr).unwrap());
    let (mut server_side, _) = l.accept().unwrap();
    let c2 = c.clone();
    kill_parked("read", move || {
        let _ = (&*c2).read(&mut [0u8; 8]);
    });
    server_side.write_all(b"after").unwrap();
    let mut got = [0u8; 5];
    (&*c).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"after");

    // write: fill the buffers of a connection nobody reads
    let c3 = c.clone();
    kill_parked("write", move || {
        let chunk = vec![0u8; 1 << 20];
        loop {
            if (&*c3).write(&chunk).is_err() {
                return;
            }
        }
    });

    // connect: to a listener whose backlog is full
    let (_full, full_addr, _fill) = full_backlog_listener();
    kill_parked("connect", move || {
        let _ = TcpStream::connect(full_addr);
    });
}

#[test]
fn kill_while_parked_in_accept_read_write_and_connect() {
    kill_in_each_socket_call();
}

#[test]
fn two_readers_on_one_socket_are_served_in_order() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = Rc::new(TcpStream::connect(l.local_addr().unwrap()).unwrap());
    let (mut w, _) = l.accept().unwrap();
    let order = Rc::new(std::cell::RefCell::new(Vec::new()));
    let readers: Vec<_> = ["first", "second"]
        .into_iter()
        .map(|name| {
            let (c, order) = (c.clone(), order.clone());
            sylvan::spawn(move || {
                let mut b = [0u8; 1];
                (&*c).read_exact(&mut b).unwrap();
                order.borrow_mut().push((name, b[0]));
            })
        })
        .collect();
    sylvan::yield_now(); // both park, "first" first
    w.write_all(b"1").unwrap();
    yield_until("one byte read", || order.borrow().len() == 1);
    w.write_all(b"2").unwrap();
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(*order.borrow(), [("first", b'1'), ("second", b'2')]);
}

#[test]
fn a_reader_and_a_writer_share_one_socket() {
    let (addr, server) = echo_server();
    let c = Rc::new(TcpStream::connect(addr).unwrap());
    let c2 = c.clone();
    const N: usize = 1 << 20;
    let writer = sylvan::spawn(move || {
        let chunk = [7u8; 4096];
        for _ in 0..N / chunk.len() {
            (&*c2).write_all(&chunk).unwrap();
        }
    });
    let mut got = 0;
    let mut buf = [0u8; 8192];
    while got < N {
        let n = (&*c).read(&mut buf).unwrap();
        assert!(buf[..n].iter().all(|&b| b == 7));
        got += n;
    }
    writer.join().unwrap();
    server.stop(Some(Duration::from_secs(1)));
}

#[test]
fn shutdown_wakes_a_parked_reader() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (_peer, _) = l.accept().unwrap();
    let other = c.try_clone().unwrap();
    let reader = sylvan::spawn(move || (&other).read(&mut [0u8; 8]));
    sylvan::yield_now();
    assert!(!reader.is_dead(), "the reader is parked");
    c.shutdown(Shutdown::Both).unwrap();
    let r = reader.join().unwrap();
    assert_eq!(r.unwrap(), 0, "end of stream after our own shutdown");
}

#[test]
fn udp_round_trip() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let saddr = server.local_addr().unwrap();
    let echo = sylvan::spawn(move || {
        let mut buf = [0u8; 1500];
        for _ in 0..3 {
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server.send_to(&buf[..n], from).unwrap();
        }
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(saddr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for msg in [&b"one"[..], b"two", b"three"] {
        client.send(msg).unwrap();
        let mut buf = [0u8; 1500];
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], msg);
    }
    echo.join().unwrap();
    let lonely = UdpSocket::bind("127.0.0.1:0").unwrap();
    lonely
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    assert_eq!(
        lonely.recv(&mut [0u8; 4]).unwrap_err().kind(),
        io::ErrorKind::TimedOut
    );
}

pub fn unix_path(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("sylvan-test-{}-{tag}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn unix_connect_to_a_full_backlog_waits_in_the_greenlet_and_can_be_killed() {
    let path = unix_path("full");
    let l = UnixListener::bind(&path).unwrap();
    // SAFETY: listen() on an open listening socket only changes its backlog.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    // Fill the backlog: connects that complete at once.
    let mut fill = Vec::new();
    while fill.len() < 8 {
        match sylvan::with_timeout(Duration::from_millis(50), || UnixStream::connect(&path)) {
            Ok(s) => fill.push(s.unwrap()),
            Err(_) => break,
        }
    }
    assert!(fill.len() < 8, "the backlog never filled");
    let path2 = path.clone();
    let waiting = sylvan::spawn(move || UnixStream::connect(&path2).map(|_| ()));
    let doomed = {
        let path = path.clone();
        sylvan::spawn(move || UnixStream::connect(&path).map(|_| ()))
    };
    sylvan::sleep(Duration::from_millis(20));
    assert!(
        !waiting.is_dead() && !doomed.is_dead(),
        "both wait for room"
    );
    // A kill ends a wait at once; no thread is left blocked in connect.
    doomed.kill();
    assert!(doomed.join().unwrap_err().is_killed());
    assert_eq!(sylvan::stats().thread_pool_queue, 0);
    // Room in the backlog lets the other one through.
    let accepted: Vec<_> = (0..=fill.len()).map(|_| l.accept().unwrap()).collect();
    assert_eq!(accepted.len(), fill.len() + 1);
    sylvan::with_timeout(Duration::from_secs(5), || waiting.join())
        .expect("the waiting connect went through")
        .unwrap()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn unix_round_trip() {
    let path = unix_path("rt");
    let l = UnixListener::bind(&path).unwrap();
    let server = sylvan::spawn(move || {
        for conn in l.incoming().take(2) {
            let mut conn = conn.unwrap();
            let mut buf = [0u8; 64];
            let n = conn.read(&mut buf).unwrap();
            conn.write_all(&buf[..n]).unwrap();
        }
    });
    for msg in [&b"over a path"[..], b"again"] {
        let mut c = UnixStream::connect(&path).unwrap();
        c.write_all(msg).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    server.join().unwrap();
    std::fs::remove_file(&path).unwrap();
    let err = UnixStream::connect(&path).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");

    let (a, b) = UnixStream::pair().unwrap();
    b.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    assert_eq!(
        (&b).read(&mut [0u8; 4]).unwrap_err().kind(),
        io::ErrorKind::TimedOut
    );
    (&a).write_all(b"pair").unwrap();
    let mut got = [0u8; 4];
    (&b).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"pair");
}

#[test]
fn into_std_hands_a_socket_to_another_thread() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let clone = s.try_clone().unwrap();
    assert!(
        clone.into_std().is_err(),
        "a shared socket stays on the hub"
    );
    let std_s = s.into_std().unwrap();
    assert_eq!(std_s.read_timeout().unwrap(), Some(Duration::from_secs(5)));
    let t = std::thread::spawn(move || {
        let mut std_s = std_s;
        let mut b = [0u8; 4];
        std_s.read_exact(&mut b).unwrap(); // a blocking std read
        std_s.write_all(&b).unwrap();
        std_s
    });
    c.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    // and back onto a hub
    let again = TcpStream::from_std(t.join().unwrap()).unwrap();
    drop(c);
    assert_eq!((&again).read(&mut [0u8; 4]).unwrap(), 0);
}

#[test]
fn stream_server_stops_gracefully() {
    let finished = Rc::new(Cell::new(0));
    let killed = Rc::new(Cell::new(0));
    let (f, k) = (finished.clone(), killed.clone());
    let server = StreamServer::bind("127.0.0.1:0", move |mut c: TcpStream, _| {
        let _flag = DropFlag(k.clone());
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        if b[0] == b'q' {
            c.write_all(b"done").unwrap();
            f.set(f.get() + 1);
        } else {
            sylvan::sleep(Duration::from_secs(3600)); // a stuck handler
        }
    })
    .unwrap()
    .start()
    .unwrap();
    let addr = server.local_addr().unwrap();
    let mut quick = TcpStream::connect(addr).unwrap();
    let mut stuck = TcpStream::connect(addr).unwrap();
    stuck.write_all(b"s").unwrap();
    yield_until("two handlers", || server.handlers() == 2);
    quick.write_all(b"q").unwrap();
    let t = Instant::now();
    server.stop(Some(Duration::from_millis(100)));
    assert!(
        t.elapsed() >= Duration::from_millis(100),
        "stop waited for the stuck handler"
    );
    assert_eq!(finished.get(), 1, "the quick handler finished");
    assert_eq!(
        killed.get(),
        2,
        "both handlers' destructors ran (one by kill)"
    );
    assert_eq!(server.handlers(), 0);
    let mut done = [0u8; 4];
    quick.read_exact(&mut done).unwrap();
    let err = crate::util::first_error(|| TcpStream::connect(addr));
    assert_eq!(
        err.kind(),
        io::ErrorKind::ConnectionRefused,
        "the listener is closed"
    );
    assert_eq!(
        (&stuck).read(&mut [0u8; 1]).unwrap(),
        0,
        "killed handler closed its socket"
    );
}

#[test]
fn serve_forever_returns_when_a_handler_stops_the_server() {
    let slot: Rc<std::cell::RefCell<Option<StreamServer>>> = Rc::default();
    let s2 = slot.clone();
    let server = StreamServer::bind("127.0.0.1:0", move |_c: TcpStream, _| {
        let s = s2.borrow().clone().unwrap();
        s.stop(None);
    })
    .unwrap();
    *slot.borrow_mut() = Some(server.clone());
    let addr = server.local_addr().unwrap();
    let client = sylvan::spawn(move || TcpStream::connect(addr).map(drop));
    server.serve_forever().unwrap();
    assert!(server.is_stopped());
    client.join().unwrap().unwrap();
    slot.borrow_mut().take();
}

#[test]
fn stream_server_with_a_pool_caps_concurrent_handlers() {
    let now = Rc::new(Cell::new(0));
    let most = Rc::new(Cell::new(0));
    let (n, m) = (now.clone(), most.clone());
    let server = StreamServer::bind("127.0.0.1:0", move |mut c: TcpStream, _| {
        n.set(n.get() + 1);
        m.set(m.get().max(n.get()));
        sylvan::sleep(Duration::from_millis(5));
        n.set(n.get() - 1);
        c.write_all(b"k").unwrap();
    })
    .unwrap()
    .with_pool(sylvan::pool::Pool::new(2))
    .start()
    .unwrap();
    let addr = server.local_addr().unwrap();
    let clients: Vec<_> = (0..6)
        .map(|_| {
            sylvan::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                let mut b = [0u8; 1];
                c.read_exact(&mut b).unwrap();
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(most.get(), 2, "never more handlers than the pool's size");
    server.stop(None);
}

/// Everything above once more in a child process, counting descriptors
/// before and after: nothing leaks, and the hub's wake-source count is back
/// to zero (main blocked on nothing gets the "would block forever" panic).
#[test]
fn no_descriptor_leak_and_no_stale_wake_source() {
    const NAME: &str = "net-leak";
    if !is_child(NAME) {
        let out = run_child("net::no_descriptor_leak_and_no_stale_wake_source", NAME);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "{stdout}");
        return;
    }
    // warm up: the hub, its poller, the thread pool
    let _ = sylvan::net::lookup_host("localhost:1").unwrap();
    drop(TcpListener::bind("127.0.0.1:0").unwrap());
    let before = open_fds();
    for _ in 0..2 {
        let (addr, server) = echo_server();
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"x").unwrap();
        c.read_exact(&mut [0u8; 1]).unwrap();
        drop(c);
        server.stop(Some(Duration::from_millis(100)));
        kill_in_each_socket_call();
        let dead = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(TcpStream::connect(dead).is_err());
        if crate::util::bad_host_fails_fast() {
            assert!(TcpStream::connect("no-such-host.invalid:1").is_err());
        }
        let (_l, a, _f) = full_backlog_listener();
        assert!(TcpStream::connect_timeout(a, Duration::from_millis(10)).is_err());
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        assert!(u.recv(&mut [0u8; 1]).is_err());
        let (a, b) = UnixStream::pair().unwrap();
        (&a).write_all(b"u").unwrap();
        (&b).read_exact(&mut [0u8; 1]).unwrap();
    }
    assert_eq!(open_fds(), before, "descriptors leaked");
    let ev = sylvan::sync::Event::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ev.wait()));
    let msg = sylvan::runtime::payload_message(&*r.unwrap_err());
    assert!(msg.contains("would block forever"), "{msg}");
}

#[test]
fn with_timeout_unwinds_a_parked_read_and_the_socket_still_works() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut peer, _) = l.accept().unwrap();
    let r = sylvan::with_timeout(Duration::from_millis(10), || {
        (&c).read(&mut [0u8; 4]).map(drop)
    });
    assert!(r.is_err(), "the read was cut off by the timeout");
    peer.write_all(b"late").unwrap();
    let mut got = [0u8; 4];
    (&c).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"late");
}

#[test]
fn a_read_in_a_destructor_while_unwinding_takes_bytes_already_there() {
    // A short read leaves the socket marked drained until the next poll;
    // bytes that come meanwhile must still be read by a destructor, which
    // cannot wait but can take what is there.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut peer, _) = l.accept().unwrap();
    peer.write_all(b"abc").unwrap();
    let mut buf = [0u8; 64];
    assert_eq!((&c).read(&mut buf).unwrap(), 3);
    peer.write_all(b"def").unwrap();
    // Seen by the kernel, without a poll of the hub in between.
    let start = Instant::now();
    loop {
        let mut b = 0u8;
        // SAFETY: a non-blocking peek of one byte into a local.
        let n = unsafe {
            libc::recv(
                c.as_raw_fd(),
                (&raw mut b).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the bytes never came"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    struct ReadOnDrop<'a>(&'a TcpStream, Rc<Cell<Option<io::Result<usize>>>>);
    impl Drop for ReadOnDrop<'_> {
        fn drop(&mut self) {
            let mut buf = [0u8; 64];
            let r = (&*self.0).read(&mut buf);
            if let Ok(n) = r {
                assert_eq!(&buf[..n], b"def");
            }
            self.1.set(Some(r));
        }
    }
    let got = Rc::new(Cell::new(None));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _guard = ReadOnDrop(&c, got.clone());
        std::panic::resume_unwind(Box::new("unwinding on purpose"));
    }));
    assert!(r.is_err());
    assert_eq!(got.take().expect("the destructor ran").unwrap(), 3);
}

#[test]
fn stream_server_stop_from_a_destructor_during_a_kill_does_not_wait() {
    let (addr, server) = echo_server();
    let c = TcpStream::connect(addr).unwrap();
    yield_until("the handler runs", || server.handlers() == 1);
    struct StopOnDrop(StreamServer);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.stop(Some(Duration::from_secs(60)));
        }
    }
    let guard = StopOnDrop(server.clone());
    let g = sylvan::spawn(move || {
        let _guard = guard;
        sylvan::sleep(Duration::from_secs(3600));
    });
    sylvan::yield_now();
    let t = Instant::now();
    g.kill();
    assert!(t.elapsed() < Duration::from_secs(30), "stop did not wait");
    assert!(server.is_stopped());
    // the handler was killed without waiting; it is dead once it ran
    yield_until("the handler died", || server.handlers() == 0);
    assert_eq!((&c).read(&mut [0u8; 1]).unwrap(), 0);
}

/// A handler may return `io::Result<()>` and use `?`: an error it returns
/// is reported once with the peer's address (on stderr without a logger),
/// and the server goes on serving.
#[test]
fn a_handler_returning_an_error_is_reported_and_the_server_goes_on() {
    if is_child("handler-err") {
        let server = StreamServer::bind("127.0.0.1:0", |mut c: TcpStream, _| -> io::Result<()> {
            let mut word = [0u8; 2];
            c.read_exact(&mut word)?;
            if &word == b"no" {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "refusing 'no'"));
            }
            c.write_all(b"ok")?;
            Ok(())
        })
        .unwrap()
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();
        let mut bad = TcpStream::connect(addr).unwrap();
        bad.write_all(b"no").unwrap();
        let mut got = Vec::new();
        bad.read_to_end(&mut got).unwrap();
        assert!(got.is_empty(), "the failed handler closed the connection");
        let mut good = TcpStream::connect(addr).unwrap();
        good.write_all(b"hi").unwrap();
        let mut got = [0u8; 2];
        good.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ok", "the server went on");
        println!("bad client was {}", bad.local_addr().unwrap());
        server.stop(None);
        return;
    }
    let out = run_child(
        "net::a_handler_returning_an_error_is_reported_and_the_server_goes_on",
        "handler-err",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let bad = stdout
        .lines()
        .find_map(|l| l.split_once("bad client was ").map(|(_, a)| a))
        .expect("the child names its bad client");
    let line = format!("sylvan: StreamServer handler for {bad} failed: refusing 'no'");
    assert_eq!(stderr.matches(&line).count(), 1, "{stderr}");
    assert_eq!(stderr.matches("failed").count(), 1, "{stderr}");
}

/// One write that carries a byte for each of two parked readers serves
/// both: the event wakes the first, and the first, leaving with the socket
/// still readable, wakes the second (no second event is coming).
#[test]
fn one_write_serves_two_parked_readers() {
    crate::util::bounded(|| {
        let (a, mut b) = crate::util::tcp_pair();
        let a = Rc::new(a);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let a = a.clone();
                sylvan::spawn(move || {
                    let mut byte = [0u8; 1];
                    (&*a).read_exact(&mut byte).unwrap();
                    byte[0]
                })
            })
            .collect();
        sylvan::yield_now(); // both park
        b.write_all(b"12").unwrap();
        let got: Vec<u8> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        assert_eq!(got, b"12");
    });
}

/// A reader killed after the event chose it, before it ran, loses nothing:
/// the datagram goes to the reader behind it, and only to it.
#[test]
fn a_reader_killed_after_being_woken_passes_the_datagram_on() {
    crate::util::bounded(|| {
        let sock = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let got = Rc::new(std::cell::RefCell::new(Vec::new()));
        let readers: Vec<_> = ["first", "second", "third"]
            .into_iter()
            .map(|name| {
                let (sock, got) = (sock.clone(), got.clone());
                Rc::new(sylvan::spawn(move || {
                    let mut buf = [0u8; 16];
                    let n = sock.recv(&mut buf).unwrap();
                    got.borrow_mut().push((name, buf[..n].to_vec()));
                }))
            })
            .collect();
        sylvan::yield_now(); // all three park, "first" first
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"hello", sock.local_addr().unwrap()).unwrap();
        let first = readers[0].clone();
        // Yields until the hub's look at the socket has chosen "first"
        // (scheduled it, behind this greenlet), then kills it.
        let killer = sylvan::spawn(move || {
            for _ in 0..10_000 {
                if format!("{first:?}").contains("Scheduled") {
                    break;
                }
                sylvan::yield_now();
            }
            let chosen = format!("{first:?}").contains("Scheduled");
            first.kill();
            chosen
        });
        assert!(killer.join().unwrap(), "the event never chose \"first\"");
        yield_until("the datagram read", || !got.borrow().is_empty());
        sylvan::sleep(Duration::from_millis(5)); // room for a wrong second read
        assert_eq!(*got.borrow(), [("second", b"hello".to_vec())]);
        for r in &readers[1..] {
            r.kill();
        }
    });
}
