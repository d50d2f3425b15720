//! Sockets checked against what gevent and std's blocking sockets do, and
//! against real peers (Python's socket, http.client and http.server, curl
//! when installed): timeouts, shutdown, resets, large transfers, urgent
//! data, the stream server, UDP and Unix sockets. Every test is bounded
//! (3 s `with_timeout`, socket timeouts, or `timeout 10` around Python).

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Output, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::{StreamServer, TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};

use crate::net::{full_backlog_listener, unix_path};
use crate::util::{first_error, is_child, run_child, write_until_error};

const BOUND: Duration = Duration::from_secs(3);

/// Runs `f` bounded by 3 s; a hang fails the probe with a clear message.
fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match sylvan::with_timeout(BOUND, f) {
        Ok(v) => v,
        Err(_) => panic!("PROBE HUNG (bounded by 3 s): {what}"),
    }
}

/// A connected loopback pair (client, server side).
pub fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// Makes closing `fd` send a reset instead of a FIN.
pub fn set_linger_zero(fd: i32) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt with a valid linger struct on an open socket.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

/// Runs a python3 script (bounded by coreutils `timeout 10`) on the blocking
/// pool, so the hub keeps serving meanwhile.
pub fn python(script: &str, args: Vec<String>) -> Output {
    let script = script.to_owned();
    let out = sylvan::with_timeout(Duration::from_secs(12), move || {
        sylvan::spawn_blocking(move || {
            Command::new("timeout")
                .arg("10")
                .arg("python3")
                .arg("-c")
                .arg(script)
                .args(args)
                .output()
                .expect("run python3")
        })
    })
    .expect("python client hung");
    eprintln!(
        "python stdout:\n{}\npython stderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A child process killed on drop.
struct Kid(Child);
impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------- timeouts

#[test]
fn p01_read_timeout_kind_and_socket_usable_after() {
    let (c, s) = pair();
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 16];
    let t = Instant::now();
    let e = bounded("read timeout", || (&c).read(&mut buf)).unwrap_err();
    let el = t.elapsed();
    eprintln!(
        "sylvan read timeout: kind={:?} msg={e} after {el:?}",
        e.kind()
    );
    // What std does on Linux with SO_RCVTIMEO:
    let std_kind = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sc = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        sc.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let e = (&sc).read(&mut [0u8; 4]).unwrap_err();
        e.kind()
    };
    eprintln!("std read timeout kind on this OS: {std_kind:?}");
    assert!(
        el >= Duration::from_millis(90) && el < Duration::from_secs(1),
        "{el:?}"
    );
    // still usable afterwards
    (&s).write_all(b"late").unwrap();
    let n = bounded("read after timeout", || (&c).read(&mut buf)).unwrap();
    assert_eq!(&buf[..n], b"late");
    // std's own sockets report WouldBlock on Unix (its docs call the kind
    // platform-dependent); sylvan says TimedOut on every platform, as
    // gevent raises socket.timeout.
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "std gives {std_kind:?}");
}

#[test]
fn p02_write_timeout_and_nothing_lost_after() {
    let (c, s) = pair();
    c.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let chunk = vec![7u8; 65536];
    let mut total = 0usize;
    let err = bounded("fill until write timeout", || {
        loop {
            match (&c).write(&chunk) {
                Ok(n) => total += n,
                Err(e) => break e,
            }
        }
    });
    eprintln!(
        "write timeout: kind={:?} msg={err} after {total} bytes",
        err.kind()
    );
    assert!(matches!(
        err.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ));
    let want = total + 4;
    let reader = sylvan::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while got.len() < want {
            let n = (&s).read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    bounded("write after timeout", || (&c).write_all(b"tail")).unwrap();
    let got = bounded("reader", || reader.join()).unwrap();
    assert_eq!(got.len(), want);
    assert_eq!(&got[total..], b"tail");
}

#[test]
fn p03_connect_timeout_filtered_vs_refused() {
    let (_l, addr, _fill) = full_backlog_listener();
    let t = Instant::now();
    let e = bounded("connect_timeout filtered", || {
        TcpStream::connect_timeout(addr, Duration::from_millis(200))
    })
    .unwrap_err();
    eprintln!(
        "filtered: kind={:?} msg={e} after {:?}",
        e.kind(),
        t.elapsed()
    );
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    assert!(t.elapsed() < Duration::from_secs(1));

    let dead = crate::util::spare_port();
    let t = Instant::now();
    let e = bounded("connect refused", || {
        first_error(|| TcpStream::connect(("127.0.0.1", dead)))
    });
    eprintln!(
        "refused: kind={:?} msg={e} after {:?}",
        e.kind(),
        t.elapsed()
    );
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    let e = bounded("connect_timeout refused", || {
        first_error(|| {
            TcpStream::connect_timeout(format!("127.0.0.1:{dead}"), Duration::from_secs(1))
        })
    });
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    // A filtered peer (no answer) is covered on loopback with a listener
    // whose backlog is full (`full_backlog_listener`).
}

#[test]
fn p04_zero_timeouts_rejected() {
    let (c, _s) = pair();
    assert_eq!(
        c.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        c.set_write_timeout(Some(Duration::ZERO))
            .unwrap_err()
            .kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        TcpStream::connect_timeout(c.local_addr().unwrap(), Duration::ZERO)
            .unwrap_err()
            .kind(),
        io::ErrorKind::InvalidInput
    );
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_eq!(
        u.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    c.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    assert_eq!(c.read_timeout().unwrap(), Some(Duration::from_millis(5)));
    c.set_read_timeout(None).unwrap();
    assert_eq!(c.read_timeout().unwrap(), None);
}

// ---------------------------------------------------------------- shutdown / close

#[test]
fn p05_shutdown_read_wakes_parked_reader() {
    let (c, _s) = pair();
    let c2 = c.try_clone().unwrap();
    let reader = sylvan::spawn(move || (&c2).read(&mut [0u8; 16]));
    sylvan::sleep(Duration::from_millis(20));
    assert!(!reader.is_dead());
    c.shutdown(Shutdown::Read).unwrap();
    let r = bounded("reader after shutdown(Read)", || reader.join()).unwrap();
    eprintln!("reader after shutdown(Read): {r:?}");
    assert_eq!(r.unwrap(), 0);
}

/// Writes until the write parks, from a spawned greenlet; returns it.
fn parked_writer(c: &TcpStream) -> sylvan::Greenlet<io::Result<usize>> {
    let c2 = c.try_clone().unwrap();
    let w = sylvan::spawn(move || {
        let chunk = vec![1u8; 65536];
        let mut total = 0;
        loop {
            match (&c2).write(&chunk) {
                Ok(n) => total += n,
                Err(e) => {
                    eprintln!("writer stopped after {total} bytes: {:?} {e}", e.kind());
                    return Err(e);
                }
            }
        }
    });
    sylvan::sleep(Duration::from_millis(50));
    assert!(!w.is_dead(), "the writer should be parked on a full buffer");
    w
}

#[test]
fn p06_shutdown_write_wakes_parked_writer() {
    let (c, s) = pair();
    let w = parked_writer(&c);
    c.shutdown(Shutdown::Write).unwrap();
    let r = bounded("writer after shutdown(Write)", || w.join()).unwrap();
    let e = r.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
    // peer sees the data then EOF
    let mut n = 0;
    bounded("peer drains to EOF", || {
        let mut buf = vec![0u8; 65536];
        loop {
            match (&s).read(&mut buf).unwrap() {
                0 => break,
                k => n += k,
            }
        }
    });
    assert!(n > 0);
}

#[test]
fn p07_shutdown_both_wakes_reader_and_writer() {
    let (c, _s) = pair();
    let c2 = c.try_clone().unwrap();
    let reader = sylvan::spawn(move || (&c2).read(&mut [0u8; 16]));
    let w = parked_writer(&c);
    assert!(!reader.is_dead());
    c.shutdown(Shutdown::Both).unwrap();
    let r = bounded("reader after shutdown(Both)", || reader.join()).unwrap();
    let wr = bounded("writer after shutdown(Both)", || w.join()).unwrap();
    eprintln!(
        "shutdown(Both): reader {r:?}, writer {:?}",
        wr.as_ref().map_err(|e| e.kind())
    );
    assert_eq!(r.unwrap(), 0);
    assert!(wr.is_err());
}

#[test]
fn p10_peer_reset_and_broken_pipe_no_sigpipe() {
    // read side: RST -> ConnectionReset
    let (c, s) = pair();
    set_linger_zero(s.as_raw_fd());
    drop(s);
    let e = bounded("read after RST", || (&c).read(&mut [0u8; 8])).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    // after the error, reads give EOF (as std)
    let r = bounded("read again after RST", || (&c).read(&mut [0u8; 8]));
    eprintln!("second read after RST: {r:?}");

    // write side: peer closed -> eventually BrokenPipe/ConnectionReset
    let (c, s) = pair();
    drop(s);
    sylvan::sleep(Duration::from_millis(20));
    let mut kinds = Vec::new();
    for _ in 0..5 {
        match (&c).write(b"x") {
            Ok(_) => kinds.push(None),
            Err(e) => kinds.push(Some(e.kind())),
        }
        sylvan::sleep(Duration::from_millis(10));
    }
    eprintln!("writes to a closed peer: {kinds:?}");
    assert!(kinds.iter().any(|k| matches!(
        k,
        Some(io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
    )));
}

#[test]
fn p11_sigpipe_default_disposition_unix_and_tcp_write() {
    // A host process (C program, Python extension) may leave SIGPIPE at its
    // default. std's TcpStream uses MSG_NOSIGNAL; a write on a Unix stream
    // whose peer is gone raises SIGPIPE with write(2).
    if is_child("sigpipe") {
        // SAFETY: restoring SIGPIPE's default disposition.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let r = (&a).write(b"x");
        println!("UNIX-WRITE-SURVIVED {r:?}");
        let (c, s) = pair();
        drop(s);
        sylvan::sleep(Duration::from_millis(20));
        let _ = (&c).write(b"x");
        sylvan::sleep(Duration::from_millis(20));
        let r = (&c).write(b"x");
        println!("TCP-WRITE-SURVIVED {r:?}");
        return;
    }
    let out = run_child(
        "net_peers::p11_sigpipe_default_disposition_unix_and_tcp_write",
        "sigpipe",
    );
    let so = String::from_utf8_lossy(&out.stdout);
    eprintln!("child status {:?}\n{so}", out.status);
    assert!(
        so.contains("UNIX-WRITE-SURVIVED"),
        "Unix write killed the process by SIGPIPE"
    );
    assert!(
        so.contains("TCP-WRITE-SURVIVED"),
        "TCP write killed the process by SIGPIPE"
    );
}

// ---------------------------------------------------------------- transfers

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

#[test]
fn p12_ten_mb_both_ways_at_once() {
    const N: usize = 10 * 1024 * 1024;
    let (c, s) = pair();
    let mk_writer = |sock: TcpStream| {
        sylvan::spawn(move || {
            let buf: Vec<u8> = (0..N).map(pattern).collect();
            (&sock).write_all(&buf).unwrap();
        })
    };
    let mk_reader = |sock: TcpStream| {
        sylvan::spawn(move || {
            let mut got = Vec::with_capacity(N);
            let mut buf = vec![0u8; 32768];
            while got.len() < N {
                let n = (&sock).read(&mut buf).unwrap();
                assert!(n > 0, "early EOF");
                got.extend_from_slice(&buf[..n]);
            }
            got.iter().enumerate().all(|(i, b)| *b == pattern(i))
        })
    };
    let w1 = mk_writer(c.try_clone().unwrap());
    let w2 = mk_writer(s.try_clone().unwrap());
    let r1 = mk_reader(c);
    let r2 = mk_reader(s);
    bounded("10 MB both ways", || {
        w1.join().unwrap();
        w2.join().unwrap();
        assert!(r1.join().unwrap());
        assert!(r2.join().unwrap());
    });
}

#[test]
fn p13_read_exact_read_to_end_lines_eof() {
    let (c, s) = pair();
    let w = sylvan::spawn(move || {
        let mut s = s;
        for i in 0..1000 {
            writeln!(s, "line {i}").unwrap();
        }
        s.write_all(b"tail-no-newline").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        // keep s open a little: read_to_end must end on FIN, not close
        sylvan::sleep(Duration::from_millis(50));
    });
    bounded("lines", || {
        let mut r = BufReader::new(&c);
        let mut first = [0u8; 7];
        r.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"line 0\n");
        let mut lines = 1;
        let mut line = String::new();
        loop {
            line.clear();
            let n = r.read_line(&mut line).unwrap();
            if n == 0 {
                break;
            }
            if line.ends_with('\n') {
                lines += 1;
            } else {
                assert_eq!(line, "tail-no-newline");
            }
        }
        assert_eq!(lines, 1000);
        let mut rest = Vec::new();
        assert_eq!((&c).read_to_end(&mut rest).unwrap(), 0);
        let mut x = [0u8; 4];
        assert_eq!(
            (&c).read_exact(&mut x).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    });
    w.join().unwrap();
}

#[test]
fn p14_data_then_fin_with_small_reads_and_delayed_fin() {
    let (c, s) = pair();
    let w = sylvan::spawn(move || {
        (&s).write_all(&[5u8; 100]).unwrap();
        sylvan::sleep(Duration::from_millis(30));
        (&s).write_all(&[6u8; 3]).unwrap();
        sylvan::sleep(Duration::from_millis(30));
        drop(s);
    });
    let got = bounded("small reads to EOF", || {
        let mut got = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            match (&c).read(&mut buf).unwrap() {
                0 => break got,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    assert_eq!(got.len(), 103);
    w.join().unwrap();
}

#[test]
fn p15_urgent_data_does_not_strand_the_rest() {
    // A TCP read stops short at the urgent mark while data follows it
    // (Linux tcp_recvmsg), so "short read => drained" is not always true.
    // std: the next read returns the rest at once.
    let (c, s) = pair();
    (&s).write_all(b"abc").unwrap();
    // SAFETY: send one byte of out-of-band data on an open socket.
    let r = unsafe { libc::send(s.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
    assert_eq!(r, 1);
    (&s).write_all(b"def").unwrap();
    sylvan::sleep(Duration::from_millis(50));
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n1 = (&c).read(&mut buf).unwrap();
    let first = buf[..n1].to_vec();
    let t = Instant::now();
    let r2 = (&c).read(&mut buf);
    let el = t.elapsed();
    eprintln!(
        "first read {:?}; second read {:?} after {el:?}",
        String::from_utf8_lossy(&first),
        r2.as_ref()
            .map(|n| String::from_utf8_lossy(&buf[..*n]).into_owned())
            .map_err(|e| e.kind())
    );
    // std for comparison
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sc = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (ss, _) = l.accept().unwrap();
    (&ss).write_all(b"abc").unwrap();
    // SAFETY: as above.
    unsafe { libc::send(ss.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
    (&ss).write_all(b"def").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    sc.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut b = [0u8; 64];
    let a1 = (&sc).read(&mut b).unwrap();
    let a1s = String::from_utf8_lossy(&b[..a1]).into_owned();
    let a2 = (&sc)
        .read(&mut b)
        .map(|n| String::from_utf8_lossy(&b[..n]).into_owned());
    eprintln!("std: first {a1s:?} second {a2:?}");
    assert!(
        r2.is_ok(),
        "sylvan's second read timed out while std returned {a2:?}"
    );
}

#[test]
fn p16_peek_then_read() {
    let (c, s) = pair();
    let w = sylvan::spawn(move || {
        sylvan::sleep(Duration::from_millis(20));
        (&s).write_all(b"hello").unwrap();
        s
    });
    let mut buf = [0u8; 16];
    let n = bounded("peek parks", || c.peek(&mut buf)).unwrap();
    assert_eq!(&buf[..n], b"hello");
    let n = bounded("read after peek", || (&c).read(&mut buf)).unwrap();
    assert_eq!(&buf[..n], b"hello");
    let _s = w.join().unwrap();
}

// ---------------------------------------------------------------- misc stream API

#[test]
fn p17_options_addresses_clone() {
    let (c, s) = pair();
    assert_eq!(c.local_addr().unwrap(), s.peer_addr().unwrap());
    assert_eq!(c.peer_addr().unwrap(), s.local_addr().unwrap());
    c.set_nodelay(true).unwrap();
    assert!(c.nodelay().unwrap());
    c.set_nodelay(false).unwrap();
    assert!(!c.nodelay().unwrap());
    c.set_ttl(42).unwrap();
    assert_eq!(c.ttl().unwrap(), 42);
    assert!(c.take_error().unwrap().is_none());
    // clone: write via one, read via another, in two greenlets
    let c2 = c.try_clone().unwrap();
    c2.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    assert_eq!(c.read_timeout().unwrap(), Some(Duration::from_millis(700)));
    let g = sylvan::spawn(move || {
        let mut b = [0u8; 4];
        (&c2).read_exact(&mut b).map(|_| b)
    });
    let echo = sylvan::spawn(move || {
        let mut b = [0u8; 4];
        (&s).read_exact(&mut b).unwrap();
        (&s).write_all(&b).unwrap();
        s
    });
    (&c).write_all(b"ping").unwrap();
    assert_eq!(
        &bounded("clone read", || g.join()).unwrap().unwrap(),
        b"ping"
    );
    let _s = echo.join().unwrap();
}

#[test]
fn p18_into_std_from_std_round_trip() {
    let (c, s) = pair();
    c.set_read_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    let clone = c.try_clone().unwrap();
    // with a clone open: error
    let e = c.into_std().unwrap_err();
    eprintln!("into_std with clone open: {e}");
    let c = clone;
    let std_c = c.into_std().unwrap();
    // the kernel rounds SO_RCVTIMEO to jiffies (150 ms may read back as 152 ms)
    let rt = std_c.read_timeout().unwrap().unwrap();
    eprintln!("into_std read_timeout: {rt:?}");
    assert!(rt >= Duration::from_millis(150) && rt < Duration::from_millis(170));
    // blocking std socket on another thread
    let h = std::thread::spawn(move || {
        let t = Instant::now();
        let e = (&std_c).read(&mut [0u8; 4]).unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(100));
        eprintln!("std read on into_std socket: {:?}", e.kind());
        std_c
    });
    let std_c = bounded("std thread", || {
        sylvan::spawn_blocking(move || h.join().unwrap())
    });
    // back to sylvan: std timeouts not carried (documented)
    let c = TcpStream::from_std(std_c).unwrap();
    eprintln!("from_std read_timeout: {:?}", c.read_timeout().unwrap());
    (&s).write_all(b"back").unwrap();
    let mut b = [0u8; 4];
    bounded("read after from_std", || (&c).read_exact(&mut b)).unwrap();
    assert_eq!(&b, b"back");
    // listener and udp round trips
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    let l = TcpListener::from_std(l.into_std().unwrap()).unwrap();
    assert_eq!(l.local_addr().unwrap(), a);
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let u = UdpSocket::from_std(u.into_std().unwrap()).unwrap();
    u.local_addr().unwrap();
}

#[test]
fn p19_incoming_and_two_acceptors_on_one_listener() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let count = Rc::new(Cell::new(0));
    let mut accs = Vec::new();
    for _ in 0..2 {
        let l = l.try_clone().unwrap();
        let count = count.clone();
        accs.push(sylvan::spawn(move || {
            for c in l.incoming() {
                let mut c = c.unwrap();
                let mut b = [0u8; 1];
                c.read_exact(&mut b).unwrap();
                c.write_all(&b).unwrap();
                count.set(count.get() + 1);
            }
        }));
    }
    bounded("20 clients", || {
        for i in 0..20u8 {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(&[i]).unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap();
            assert_eq!(b[0], i);
        }
    });
    assert_eq!(count.get(), 20);
    for a in accs {
        a.kill();
    }
}

// ---------------------------------------------------------------- StreamServer

#[test]
fn p20_stream_server_pool_limit_many_connections() {
    let live = Rc::new(Cell::new(0usize));
    let max = Rc::new(Cell::new(0usize));
    let (l2, m2) = (live.clone(), max.clone());
    let server = StreamServer::bind("127.0.0.1:0", move |c: TcpStream, _| {
        l2.set(l2.get() + 1);
        m2.set(m2.get().max(l2.get()));
        let mut line = String::new();
        BufReader::new(&c).read_line(&mut line).unwrap();
        sylvan::sleep(Duration::from_millis(10));
        (&c).write_all(line.as_bytes()).unwrap();
        l2.set(l2.get() - 1);
    })
    .unwrap()
    .with_pool(sylvan::pool::Pool::new(4))
    .start()
    .unwrap();
    let addr = server.local_addr().unwrap();
    let clients: Vec<_> = (0..60)
        .map(|i| {
            sylvan::spawn(move || -> io::Result<String> {
                let mut c = TcpStream::connect(addr)?;
                c.set_read_timeout(Some(Duration::from_secs(2)))?;
                writeln!(c, "hi {i}")?;
                let mut r = String::new();
                BufReader::new(&c).read_line(&mut r)?;
                Ok(r)
            })
        })
        .collect();
    bounded("60 pooled clients", || {
        for (i, c) in clients.into_iter().enumerate() {
            assert_eq!(c.join().unwrap().unwrap(), format!("hi {i}\n"));
        }
    });
    eprintln!("max concurrent handlers {}", max.get());
    assert!(max.get() <= 4 && max.get() >= 2);
    assert_eq!(server.accepted(), 60);
    server.stop(Some(Duration::from_secs(1)));
}

#[test]
fn p21_stream_server_stop_graceful_then_kill() {
    let server = StreamServer::bind("127.0.0.1:0", |c: TcpStream, _| {
        let mut b = [0u8; 1];
        (&c).read_exact(&mut b).unwrap();
        let d = if b[0] == b's' { 100 } else { 10_000 };
        sylvan::sleep(Duration::from_millis(d));
        let _ = (&c).write_all(b"done");
    })
    .unwrap()
    .start()
    .unwrap();
    let addr = server.local_addr().unwrap();
    let mut short = TcpStream::connect(addr).unwrap();
    short.write_all(b"s").unwrap();
    let mut long = TcpStream::connect(addr).unwrap();
    long.write_all(b"l").unwrap();
    sylvan::sleep(Duration::from_millis(20));
    assert_eq!(server.handlers(), 2);
    let t = Instant::now();
    bounded("stop", || server.stop(Some(Duration::from_millis(300))));
    let el = t.elapsed();
    eprintln!("stop took {el:?}");
    assert!(el >= Duration::from_millis(250) && el < Duration::from_secs(2));
    let mut got = Vec::new();
    bounded("short reply", || short.read_to_end(&mut got)).unwrap();
    assert_eq!(got, b"done");
    let mut got = Vec::new();
    let r = bounded("long killed", || long.read_to_end(&mut got));
    eprintln!("killed handler's client sees {r:?} {got:?}");
    assert_eq!(r.unwrap(), 0);
    assert_eq!(server.handlers(), 0);
    let e = first_error(|| TcpStream::connect(addr));
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    assert!(server.is_stopped());
    assert!(server.clone().start().is_err());
}

#[test]
fn p22_serve_forever_returns_after_stop() {
    let server = StreamServer::bind("127.0.0.1:0", |c: TcpStream, _| {
        let _ = (&c).write_all(b"hi");
    })
    .unwrap();
    let addr = server.local_addr().unwrap();
    let s2 = server.clone();
    let g = sylvan::spawn(move || s2.serve_forever());
    let mut c = bounded("connect", || TcpStream::connect(addr)).unwrap();
    let mut got = Vec::new();
    bounded("read", || c.read_to_end(&mut got)).unwrap();
    assert_eq!(got, b"hi");
    server.stop(None);
    bounded("serve_forever returns", || g.join())
        .unwrap()
        .unwrap();
}

#[test]
fn p23_stream_server_many_python_clients() {
    let server = StreamServer::bind("127.0.0.1:0", |c: TcpStream, _| {
        let mut buf = [0u8; 4096];
        loop {
            match (&c).read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if (&c).write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
    })
    .unwrap()
    .start()
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let script = r#"
import socket, sys, threading, os
port = int(sys.argv[1])
errors = []
def one(i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        data = os.urandom(200000)
        def w():
            s.sendall(data); s.shutdown(socket.SHUT_WR)
        t = threading.Thread(target=w); t.start()
        got = bytearray()
        while True:
            b = s.recv(65536)
            if not b: break
            got += b
        t.join(); s.close()
        if bytes(got) != data: errors.append((i, len(got)))
    except Exception as e:
        errors.append((i, repr(e)))
ts = [threading.Thread(target=one, args=(i,)) for i in range(100)]
[t.start() for t in ts]; [t.join() for t in ts]
print("ERRORS", errors)
"#;
    let out = python(script, vec![port.to_string()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ERRORS []"));
    assert_eq!(server.accepted(), 100);
    server.stop(Some(Duration::from_secs(1)));
}

// ---------------------------------------------------------------- HTTP with real peers

/// A minimal keep-alive HTTP/1.1 server handler.
fn http_handler(c: TcpStream, _peer: SocketAddr) {
    let mut r = BufReader::new(&c);
    let mut n = 0;
    loop {
        let mut req = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            req.push_str(&line);
        }
        n += 1;
        let body = format!("hello {n} {}", req.lines().next().unwrap_or(""));
        let close = req.to_ascii_lowercase().contains("connection: close");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" },
            body
        );
        if (&c).write_all(resp.as_bytes()).is_err() || close {
            return;
        }
    }
}

#[test]
fn p24_python_http_client_keep_alive() {
    let server = StreamServer::bind("127.0.0.1:0", http_handler)
        .unwrap()
        .start()
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let script = r#"
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=3)
for p in ("/a", "/b"):
    c.request("GET", p)
    r = c.getresponse()
    print(r.status, r.read().decode(), c.sock.getsockname()[1])
c.close()
"#;
    let out = python(script, vec![port.to_string()]);
    let so = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = so.lines().collect();
    assert_eq!(lines.len(), 2, "{so}");
    assert!(lines[0].starts_with("200 hello 1 GET /a"));
    assert!(
        lines[1].starts_with("200 hello 2 GET /b"),
        "second request on the same connection"
    );
    assert_eq!(
        lines[0].rsplit(' ').next(),
        lines[1].rsplit(' ').next(),
        "same client port: kept alive"
    );
    assert_eq!(server.accepted(), 1);
    server.stop(Some(Duration::from_secs(1)));
}

#[test]
fn p25_curl_against_stream_server() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("no curl: skipped");
        return;
    }
    let server = StreamServer::bind("127.0.0.1:0", http_handler)
        .unwrap()
        .start()
        .unwrap();
    let addr = server.local_addr().unwrap();
    let out = bounded("curl", || {
        sylvan::spawn_blocking(move || {
            Command::new("curl")
                .args(["-sS", "--max-time", "3"])
                .arg(format!("http://{addr}/x"))
                .arg(format!("http://{addr}/y"))
                .output()
                .unwrap()
        })
    });
    let so = String::from_utf8_lossy(&out.stdout);
    eprintln!("curl: {so} / {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        so.contains("hello 1 GET /x") && so.contains("hello 2 GET /y"),
        "{so}"
    );
    assert_eq!(server.accepted(), 1);
    server.stop(Some(Duration::from_secs(1)));
}

#[test]
fn p26_sylvan_client_against_python_http_server() {
    let port = crate::util::spare_port();
    let dir = std::env::temp_dir().join(format!("sylvan-probe-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.txt"), vec![b'z'; 300_000]).unwrap();
    let _kid = Kid(Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let c = bounded("connect to python http.server", || {
        loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(c) => break c,
                Err(_) => sylvan::sleep(Duration::from_millis(50)),
            }
        }
    });
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    (&c).write_all(b"GET /index.txt HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    bounded("read_to_end", || (&c).read_to_end(&mut got)).unwrap();
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..head_end]);
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert_eq!(got.len() - head_end, 300_000);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn p27_sylvan_client_against_python_socket_server_large() {
    let port = crate::util::spare_port();
    let script = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(5)
print("READY", flush=True)
c, _ = s.accept(); c.settimeout(5)
data = bytearray()
while True:
    b = c.recv(65536)
    if not b: break
    data += b
c.sendall(bytes(data[::-1])); c.close(); s.close()
print("SENT", len(data), flush=True)
"#;
    let mut kid = Kid(Command::new("timeout")
        .args(["10", "python3", "-c", script, &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    let mut out = kid.0.stdout.take().unwrap();
    // wait for READY off the hub
    let out = bounded("python ready", || {
        sylvan::spawn_blocking(move || {
            let mut b = [0u8; 6];
            out.read_exact(&mut b).unwrap();
            out
        })
    });
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let data: Vec<u8> = (0..3_000_000).map(pattern).collect();
    let c2 = c.try_clone().unwrap();
    let d2 = data.clone();
    let w = sylvan::spawn(move || {
        (&c2).write_all(&d2).unwrap();
        c2.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    bounded("read reversed", || (&c).read_to_end(&mut got)).unwrap();
    w.join().unwrap();
    let mut rev = data;
    rev.reverse();
    assert!(got == rev, "got {} bytes", got.len());
    drop(out);
}

// ---------------------------------------------------------------- UDP

#[test]
fn p28_udp_timeouts_peek_truncation_refused() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    a.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let t = Instant::now();
    let e = bounded("udp recv timeout", || a.recv_from(&mut [0u8; 8])).unwrap_err();
    eprintln!("udp timeout {:?} {e} after {:?}", e.kind(), t.elapsed());
    assert!(matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ));
    // a parked recv_from in a greenlet
    let a = Rc::new(a);
    let a2 = a.clone();
    a.set_read_timeout(None).unwrap();
    let g = sylvan::spawn(move || {
        let mut buf = [0u8; 4];
        let (n, from) = a2.peek_from(&mut buf).unwrap();
        let peeked = buf[..n].to_vec();
        let (n2, from2) = a2.recv_from(&mut buf).unwrap(); // truncated
        assert_eq!(from, from2);
        (peeked, buf[..n2].to_vec(), from)
    });
    sylvan::sleep(Duration::from_millis(10));
    b.send_to(b"0123456789", a.local_addr().unwrap()).unwrap();
    let (p, r, from) = bounded("udp recv", || g.join()).unwrap();
    assert_eq!(p, b"0123");
    assert_eq!(r, b"0123", "truncated to the buffer as std");
    assert_eq!(from, b.local_addr().unwrap());
    // the truncated tail is discarded: next datagram is new
    b.send_to(b"", a.local_addr().unwrap()).unwrap();
    let (n, _) = bounded("empty datagram", || a.recv_from(&mut [0u8; 8])).unwrap();
    assert_eq!(n, 0);
    // connected socket to a closed port: ConnectionRefused on recv
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.connect(dead_addr).unwrap();
    assert_eq!(c.peer_addr().unwrap(), dead_addr);
    c.send(b"x").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let e = bounded("udp refused", || c.recv(&mut [0u8; 8])).unwrap_err();
    eprintln!("udp recv after ICMP unreachable: {:?} {e}", e.kind());
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    // peek on connected socket
    let d = UdpSocket::bind("127.0.0.1:0").unwrap();
    let e2 = UdpSocket::bind("127.0.0.1:0").unwrap();
    d.connect(e2.local_addr().unwrap()).unwrap();
    e2.connect(d.local_addr().unwrap()).unwrap();
    e2.send(b"pk").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(bounded("udp peek", || d.peek(&mut buf)).unwrap(), 2);
    assert_eq!(bounded("udp recv", || d.recv(&mut buf)).unwrap(), 2);
    d.set_broadcast(true).unwrap();
    assert!(d.broadcast().unwrap());
}

#[test]
fn p29_udp_many_datagrams_burst() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = a.local_addr().unwrap();
    let g = sylvan::spawn(move || {
        let mut n = 0;
        a.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 64];
        while a.recv_from(&mut buf).is_ok() {
            n += 1;
        }
        n
    });
    for i in 0..200u32 {
        b.send_to(&i.to_le_bytes(), to).unwrap();
        if i % 50 == 0 {
            sylvan::yield_now();
        }
    }
    let n = bounded("udp burst", || g.join()).unwrap();
    eprintln!("udp burst received {n}/200");
    assert_eq!(n, 200);
}

// ---------------------------------------------------------------- Unix

#[test]
fn p30_unix_stream_behaviours() {
    let path = unix_path("u");
    let _ = std::fs::remove_file(&path);
    // connect to nothing
    let e = UnixStream::connect(&path).unwrap_err();
    eprintln!("unix connect missing: {:?} {e}", e.kind());
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    let l = UnixListener::bind(&path).unwrap();
    let e = UnixListener::bind(&path).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    let acc = sylvan::spawn(move || {
        let (s, _) = l.accept().unwrap();
        (s, l)
    });
    let c = bounded("unix connect", || UnixStream::connect(&path)).unwrap();
    let (s, l) = bounded("unix accept", || acc.join()).unwrap();
    // read timeout
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let e = bounded("unix read timeout", || (&c).read(&mut [0u8; 4])).unwrap_err();
    assert!(matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ));
    c.set_read_timeout(None).unwrap();
    // shutdown wakes reader
    let c2 = c.try_clone().unwrap();
    let r = sylvan::spawn(move || (&c2).read(&mut [0u8; 4]));
    sylvan::sleep(Duration::from_millis(10));
    c.shutdown(Shutdown::Read).unwrap();
    assert_eq!(
        bounded("unix shutdown read", || r.join()).unwrap().unwrap(),
        0
    );
    // 8 MB both ways
    const N: usize = 8 << 20;
    let (x, y) = UnixStream::pair().unwrap();
    let x2 = x.try_clone().unwrap();
    let y2 = y.try_clone().unwrap();
    let wx = sylvan::spawn(move || (&x2).write_all(&vec![1u8; N]).unwrap());
    let wy = sylvan::spawn(move || (&y2).write_all(&vec![2u8; N]).unwrap());
    let rx = sylvan::spawn(move || {
        let mut v = vec![0u8; N];
        (&x).read_exact(&mut v).unwrap();
        v.iter().all(|b| *b == 2)
    });
    let ry = sylvan::spawn(move || {
        let mut v = vec![0u8; N];
        (&y).read_exact(&mut v).unwrap();
        v.iter().all(|b| *b == 1)
    });
    bounded("unix both ways", || {
        wx.join().unwrap();
        wy.join().unwrap();
        assert!(rx.join().unwrap());
        assert!(ry.join().unwrap());
    });
    // peer gone: write -> BrokenPipe (see `write_until_error` for why a
    // write may succeed for a moment).
    drop(s);
    let e = write_until_error(&c);
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
    drop(l);
    // a stale socket file with no listener: refused (a forked child may
    // hold the listener for a moment, as above)
    let e = first_error(|| UnixStream::connect(&path));
    eprintln!("unix connect stale: {:?} {e}", e.kind());
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn p31_unix_python_client() {
    let path = unix_path("py");
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).unwrap();
    let srv = sylvan::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        (&s).write_all(line.to_uppercase().as_bytes()).unwrap();
    });
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(3); s.connect(sys.argv[1])
s.sendall(b"hello unix\n"); print(s.recv(100).decode().strip())
"#;
    let out = python(script, vec![path.display().to_string()]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "HELLO UNIX");
    srv.join().unwrap();
    let _ = std::fs::remove_file(&path);
}

// ---------------------------------------------------------------- kill / timeout on sockets

#[test]
fn p32_with_timeout_on_partial_write_all_then_socket_usable() {
    let (c, s) = pair();
    // write_all of 20 MB aborted by with_timeout: how much got in is unknown,
    // but the socket must still work and not be left in a broken state.
    let r = sylvan::with_timeout(Duration::from_millis(100), || {
        (&c).write_all(&vec![3u8; 20 << 20])
    });
    assert!(r.is_err());
    // drain on the peer, then the socket writes again
    let reader = sylvan::spawn(move || {
        let mut total = 0;
        let mut buf = vec![0u8; 65536];
        loop {
            match (&s).read(&mut buf).unwrap() {
                0 => break total,
                n => total += n,
            }
        }
    });
    bounded("write after timeout", || (&c).write_all(b"more")).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let total = bounded("drain", || reader.join()).unwrap();
    eprintln!("peer got {total} bytes");
    assert!(total > 4);
}

#[test]
fn p33_accept_read_timeout_not_applied_to_listener() {
    // std: SO_RCVTIMEO on a listener bounds accept(); sylvan's TcpListener has
    // no set_read_timeout (gevent's listener has settimeout). Bound by
    // with_timeout instead and make sure the listener survives it.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let r = sylvan::with_timeout(Duration::from_millis(50), || l.accept());
    assert!(r.is_err());
    let addr = l.local_addr().unwrap();
    let _c = TcpStream::connect(addr).unwrap();
    bounded("accept after timeout", || l.accept()).unwrap();
}

#[test]
fn p35_unix_connect_full_backlog_bounded() {
    let path = unix_path("bl");
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).unwrap();
    // SAFETY: listen() on an open listening socket only changes its backlog.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    let mut fill = Vec::new();
    let mut outcome = None;
    for i in 0..4 {
        let t = Instant::now();
        let r = sylvan::with_timeout(Duration::from_millis(200), || UnixStream::connect(&path));
        match r {
            Ok(Ok(s)) => fill.push(s),
            Ok(Err(e)) => {
                outcome = Some(format!(
                    "connect {i}: error {:?} {e} after {:?}",
                    e.kind(),
                    t.elapsed()
                ));
                break;
            }
            Err(_) => {
                outcome = Some(format!(
                    "connect {i}: with_timeout elapsed after {:?}",
                    t.elapsed()
                ));
                break;
            }
        }
    }
    eprintln!("filled {}; {outcome:?}", fill.len());
    // the hub still works and the listener still accepts the filled ones
    let (_a, _) = bounded("accept after", || l.accept()).unwrap();
    drop(l);
    let _ = std::fs::remove_file(&path);
    assert!(outcome.is_some());
}

#[test]
fn p36_two_readers_with_timeouts_keep_their_deadlines() {
    let (c, s) = pair();
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let c1 = c.try_clone().unwrap();
    let c2 = c.try_clone().unwrap();
    let t0 = Instant::now();
    let a = sylvan::spawn(move || {
        (
            (&c1).read(&mut [0u8; 1]).map_err(|e| e.kind()),
            t0.elapsed(),
        )
    });
    let b = sylvan::spawn(move || {
        (
            (&c2).read(&mut [0u8; 1]).map_err(|e| e.kind()),
            t0.elapsed(),
        )
    });
    sylvan::sleep(Duration::from_millis(100));
    (&s).write_all(b"x").unwrap();
    let ra = bounded("a", || a.join()).unwrap();
    let rb = bounded("b", || b.join()).unwrap();
    eprintln!("a {ra:?} b {rb:?}");
    let (ok, timed): (Vec<_>, Vec<_>) = [ra, rb].into_iter().partition(|r| r.0.is_ok());
    assert_eq!(ok.len(), 1);
    assert!(
        timed[0].1 < Duration::from_millis(280),
        "the loser's deadline was reset: {:?}",
        timed[0].1
    );
}

#[test]
fn p37_bind_errors_ipv6_hostname_connect() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let e = TcpListener::bind(addr).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
    // "localhost" may resolve to ::1 first: connect must fall through to 127.0.0.1
    let c = bounded("connect localhost", || {
        TcpStream::connect(("localhost", addr.port()))
    });
    eprintln!(
        "localhost connect: {:?}",
        c.as_ref()
            .map(|s| s.peer_addr().unwrap())
            .map_err(|e| e.to_string())
    );
    assert!(c.is_ok());
    match TcpListener::bind("[::1]:0") {
        Ok(l6) => {
            let a6 = l6.local_addr().unwrap();
            let c6 = bounded("v6 connect", || TcpStream::connect(a6)).unwrap();
            let (s6, p) = bounded("v6 accept", || l6.accept()).unwrap();
            assert_eq!(p, c6.local_addr().unwrap());
            drop(s6);
        }
        Err(e) => eprintln!("no ipv6 loopback: {e}"),
    }
    if crate::util::bad_host_fails_fast() {
        let e = TcpStream::connect("no-such-host.invalid:80").unwrap_err();
        eprintln!("bad host: {:?} {e}", e.kind());
    }
    let e = TcpStream::connect("127.0.0.1").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
}

#[test]
fn p38_handler_panic_does_not_stop_server_and_drop_stops_accepting() {
    let server = StreamServer::bind("127.0.0.1:0", |c: TcpStream, _| {
        let mut b = [0u8; 1];
        (&c).read_exact(&mut b).unwrap();
        if b[0] == b'p' {
            panic!("probe handler panic (expected)");
        }
        (&c).write_all(b"ok").unwrap();
    })
    .unwrap()
    .start()
    .unwrap();
    let addr = server.local_addr().unwrap();
    let mut p = TcpStream::connect(addr).unwrap();
    p.write_all(b"p").unwrap();
    let mut v = Vec::new();
    let r = bounded("panicked handler's client", || p.read_to_end(&mut v));
    eprintln!("client of panicking handler: {r:?}");
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"n").unwrap();
    let mut v = Vec::new();
    bounded("after panic", || c.read_to_end(&mut v)).unwrap();
    assert_eq!(v, b"ok");
    drop(server);
    sylvan::sleep(Duration::from_millis(20));
    let e = TcpStream::connect(addr);
    eprintln!(
        "connect after dropping the last server handle: {:?}",
        e.as_ref().map(|_| ()).map_err(|e| e.kind())
    );
    assert!(e.is_err());
}

#[test]
fn p39_parked_writer_woken_by_peer_reset() {
    let (c, s) = pair();
    let w = parked_writer(&c);
    set_linger_zero(s.as_raw_fd());
    drop(s);
    let r = bounded("writer after peer RST", || w.join()).unwrap();
    let e = r.unwrap_err();
    eprintln!("parked writer after peer RST: {:?} {e}", e.kind());
    assert!(matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    ));
}

#[test]
fn p40_urgent_data_rest_does_not_wait_for_the_next_edge() {
    // Follow-up to p15: after the read that stops at the urgent mark, the
    // rest is read at once, not when the peer's next write raises an edge
    // (the poll's urgent report keeps the socket from being marked drained).
    let (c, s) = pair();
    (&s).write_all(b"abc").unwrap();
    // SAFETY: one byte of out-of-band data on an open socket.
    unsafe { libc::send(s.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
    (&s).write_all(b"def").unwrap();
    sylvan::sleep(Duration::from_millis(20));
    let mut buf = [0u8; 64];
    let n = (&c).read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"abc");
    let w = sylvan::spawn(move || {
        sylvan::sleep(Duration::from_millis(300));
        (&s).write_all(b"ghi").unwrap();
        s
    });
    let t = Instant::now();
    let n = bounded("read rest", || (&c).read(&mut buf)).unwrap();
    let waited = t.elapsed();
    assert_eq!(
        &buf[..n],
        b"def",
        "the rest comes before the peer's next write"
    );
    assert!(
        waited < Duration::from_millis(250),
        "the rest waited {waited:?}"
    );
    let _s = w.join().unwrap();
}
