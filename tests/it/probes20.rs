//! Probe round 20: the socket corners earlier rounds reached least, held to
//! `std`'s blocking sockets (Linux), gevent, and sylvan's own docs: a
//! connected `UdpSocket`'s filtering of peeks and `recv_from`, the ICMP port
//! unreachable seen by a parked receive and by `take_error`, peek timeouts
//! and non-blocking peeks, broadcast sends; `UnixDatagram` in the abstract
//! namespace, unnamed addresses, `EPERM` from a connected receiver, a sender
//! parked on a full peer woken by `shutdown(Write)`; `UnixListener`
//! `incoming()` killed and a listener handle dropped under a clone's accept;
//! `TcpStream` peeks around end of stream, `shutdown(Both)`, `take_error`
//! after a reset, `read_vectored` past `IOV_MAX`; `StreamServer` on an adopted listener, `stop(Some(0))` vs
//! `stop(None)`, two servers on one listener;
//! `dump()` rows for socket waits, name truncation, `waiting_for`;
//! `stats().timers` for a socket timeout; `BlockingDetector::start`'s report
//! of a spinning greenlet. Each test cites what it checks (file:line). Tests
//! marked `#[ignore = "BUG: ..."]` show a sylvan bug; `#[ignore = "DOC:
//! ..."]` a doc whose wording is wrong.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::{
    StreamServer, TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream,
};
use sylvan::sync::Event;
use sylvan::{BlockingDetector, BlockingReport, Builder, GreenletId, WaitKind, spawn, yield_now};

use crate::util::{DropFlag, bounded, first_error, is_child, run_child, yield_until};

const MS: Duration = Duration::from_millis(1);

/// What greenlet `id` waits on now (None once it is dead).
fn wait_of(id: GreenletId) -> Option<WaitKind> {
    sylvan::dump()
        .greenlets
        .into_iter()
        .find(|g| g.id == id)
        .map(|g| g.wait)
}

/// Lets greenlet `id` run until it parks in socket operation `op`.
fn park_in(id: GreenletId, op: &'static str) {
    yield_until(
        op,
        || matches!(wait_of(id), Some(WaitKind::Io { op: o, .. }) if o == op),
    );
}

/// A loopback UDP address nobody listens on (bound, then closed).
fn dead_udp_addr() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

/// A Unix socket path under the temp dir, unique to this process and `tag`.
fn unix_path(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("sylvan-p20-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

fn set_linger_zero(fd: RawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid linger of the size given, on an open socket.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_LINGER");
}

/// A result reduced to something comparable across std and sylvan.
fn outcome<T: std::fmt::Debug>(r: io::Result<T>) -> String {
    match r {
        Ok(v) => format!("Ok({v:?})"),
        Err(e) => format!("Err({:?})", e.kind()),
    }
}

// ---------------------------------------------------------------- UDP

/// hub/src/net/udp.rs:69 "Receives a datagram from the connected peer,
/// parking until one arrives. ... As `recv(2)`": on Linux a blocking
/// `recv` on a connected UDP socket whose datagram drew an ICMP port
/// unreachable returns `ECONNREFUSED` (std: `ConnectionRefused`), even when
/// it was already parked when the error came.
#[test]
fn udp_parked_recv_on_a_connected_socket_fails_when_port_unreachable_arrives() {
    bounded(|| {
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.connect(dead_udp_addr()).unwrap();
        let r = c.try_clone().unwrap();
        let g = spawn(move || r.recv(&mut [0u8; 8]));
        park_in(g.id(), "read");
        c.send(b"x").unwrap();
        let e = g.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        // The error was taken by the receive: the socket is clean again.
        assert!(c.take_error().unwrap().is_none());
    });
}

/// hub/src/net/udp.rs:283 "Takes the pending `SO_ERROR`": the ICMP error
/// of a connected UDP socket is pending until taken, once (std/Linux); a
/// receive after it was taken just waits (here: times out).
#[test]
fn udp_take_error_after_port_unreachable_is_connection_refused_once() {
    bounded(|| {
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.connect(dead_udp_addr()).unwrap();
        c.send(b"x").unwrap();
        let got: RefCell<Option<io::Error>> = RefCell::new(None);
        yield_until("the ICMP error is pending", || {
            if got.borrow().is_none() {
                *got.borrow_mut() = c.take_error().unwrap();
            }
            got.borrow().is_some()
        });
        let e = got.into_inner().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        assert!(c.take_error().unwrap().is_none(), "taken once");
        c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        assert_eq!(
            c.recv(&mut [0u8; 8]).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
    });
}

/// hub/src/net/udp.rs:50 "Sets the default peer for `send` and filters
/// `recv` to it"; as std/POSIX the filter is the kernel's, so `recv_from`,
/// `peek` and `peek_from` see only the peer too; udp.rs:103/112 "leaving
/// the datagram queued"; a datagram longer than the buffer is cut and its
/// tail discarded (std `recv`: "excess bytes may be discarded"); `send` on
/// an unconnected socket fails as std's does.
#[test]
fn udp_connected_socket_filters_peeks_and_recv_from_and_truncates() {
    bounded(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, peer_addr) = (a.local_addr().unwrap(), peer.local_addr().unwrap());
        a.connect(peer_addr).unwrap();
        other.send_to(b"noise", a_addr).unwrap();
        peer.send_to(b"0123456789", a_addr).unwrap();
        let mut small = [0u8; 4];
        let (n, from) = a.peek_from(&mut small).unwrap();
        assert_eq!((n, from, &small), (4, peer_addr, b"0123"));
        assert_eq!(a.peek(&mut small).unwrap(), 4, "still queued");
        let mut big = [0u8; 32];
        let (n, from) = a.recv_from(&mut big).unwrap();
        assert_eq!((&big[..n], from), (&b"0123456789"[..], peer_addr));
        // Truncation by recv: the rest of the datagram is gone.
        peer.send_to(b"abcdef", a_addr).unwrap();
        peer.send_to(b"gh", a_addr).unwrap();
        assert_eq!(a.recv(&mut small).unwrap(), 4);
        assert_eq!(&small, b"abcd");
        assert_eq!(a.recv(&mut big).unwrap(), 2);
        assert_eq!(&big[..2], b"gh");
        // The noise never arrives.
        a.set_nonblocking(true).unwrap();
        assert_eq!(
            a.recv_from(&mut big).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        // send without a peer: as std.
        let std_u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let want = std_u.send(b"x").unwrap_err().raw_os_error();
        assert_eq!(other.send(b"x").unwrap_err().raw_os_error(), want);
        assert_eq!(
            other.peer_addr().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
    });
}

/// README.md:252 "socket timeouts give `io::ErrorKind::TimedOut`" and
/// README.md:246 "`set_nonblocking(true)` makes them return `WouldBlock`":
/// for `peek` and `peek_from` as for `recv`; back in blocking mode a parked
/// `peek_from` wakes on the datagram and leaves it for `recv_from`.
#[test]
fn udp_peeks_time_out_and_would_block_and_a_parked_peek_leaves_the_datagram() {
    bounded(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_read_timeout(Some(Duration::from_millis(40))).unwrap();
        let t = Instant::now();
        assert_eq!(
            a.peek(&mut [0u8; 4]).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert_eq!(
            a.peek_from(&mut [0u8; 4]).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert!(
            t.elapsed() >= Duration::from_millis(75),
            "{:?}",
            t.elapsed()
        );
        a.set_read_timeout(None).unwrap();
        a.set_nonblocking(true).unwrap();
        let t = Instant::now();
        assert_eq!(
            a.peek(&mut [0u8; 4]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert_eq!(
            a.peek_from(&mut [0u8; 4]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert!(t.elapsed() < Duration::from_secs(1));
        a.set_nonblocking(false).unwrap();
        let r = a.try_clone().unwrap();
        let g = spawn(move || {
            let mut b = [0u8; 8];
            r.peek_from(&mut b).map(|(n, from)| (b[..n].to_vec(), from))
        });
        park_in(g.id(), "read");
        tx.send_to(b"pk", a.local_addr().unwrap()).unwrap();
        let (got, from) = g.join().unwrap().unwrap();
        assert_eq!(
            (got.as_slice(), from),
            (&b"pk"[..], tx.local_addr().unwrap())
        );
        let mut b = [0u8; 8];
        assert_eq!(a.recv_from(&mut b).unwrap(), (2, tx.local_addr().unwrap()));
    });
}

/// hub/src/net/udp.rs:139 "Sets `SO_BROADCAST`": round-trips, and a send
/// to loopback's broadcast address fails or succeeds exactly as std's
/// (Linux: `EACCES` without `SO_BROADCAST`). Loopback only: nothing
/// leaves the machine.
#[test]
fn udp_broadcast_option_round_trips_and_gates_broadcast_sends_as_std() {
    bounded(|| {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        let to = SocketAddr::from(([127, 255, 255, 255], port));
        assert!(!u.broadcast().unwrap());
        let off = (outcome(u.send_to(b"b", to)), outcome(s.send_to(b"b", to)));
        assert_eq!(off.0, off.1, "without SO_BROADCAST");
        assert_ne!(off.0, "Ok(1)", "a broadcast needs SO_BROADCAST");
        u.set_broadcast(true).unwrap();
        s.set_broadcast(true).unwrap();
        assert!(u.broadcast().unwrap());
        let on = (outcome(u.send_to(b"b", to)), outcome(s.send_to(b"b", to)));
        assert_eq!(on.0, on.1, "with SO_BROADCAST");
        u.set_broadcast(false).unwrap();
        assert!(!u.broadcast().unwrap());
        u.set_ttl(7).unwrap();
        assert_eq!(u.ttl().unwrap(), 7);
    });
}

// ---------------------------------------------------------------- UnixDatagram

/// hub/src/net/unix_datagram.rs:252 "Adopts a `std` socket": one bound in
/// the abstract namespace (std's `bind_addr`) keeps its address, receives
/// from a peer connected by name, and names an unbound sender as unnamed
/// (`recvfrom(2)`).
#[test]
fn unix_datagram_in_the_abstract_namespace() {
    bounded(|| {
        let name = format!("sylvan-p20-{}-abstract", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let srv =
            UnixDatagram::from_std(std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap())
                .unwrap();
        assert_eq!(
            srv.local_addr().unwrap().as_abstract_name(),
            Some(name.as_bytes())
        );
        let c = std::os::unix::net::UnixDatagram::unbound().unwrap();
        c.connect_addr(&addr).unwrap();
        let c = UnixDatagram::from_std(c).unwrap();
        assert_eq!(
            c.peer_addr().unwrap().as_abstract_name(),
            Some(name.as_bytes())
        );
        let r = srv.try_clone().unwrap();
        let g = spawn(move || {
            let mut b = [0u8; 8];
            r.recv_from(&mut b)
                .map(|(n, from)| (b[..n].to_vec(), from.is_unnamed()))
        });
        park_in(g.id(), "read");
        assert_eq!(c.send(b"abs").unwrap(), 3);
        assert_eq!(g.join().unwrap().unwrap(), (b"abs".to_vec(), true));
    });
}

/// std: the sockets of `pair()` and `unbound()` have unnamed local
/// addresses; a pair's peer is unnamed; an unconnected socket's
/// `peer_addr` is `NotConnected` (unix_datagram.rs:164 "`NotConnected`
/// when not connected"); a stream accepted from an unbound client has an
/// unnamed peer, the client's peer is the listener's path.
#[test]
fn unix_unnamed_addresses_as_std() {
    bounded(|| {
        let (a, b) = UnixDatagram::pair().unwrap();
        assert!(a.local_addr().unwrap().is_unnamed());
        assert!(b.peer_addr().unwrap().is_unnamed());
        let u = UnixDatagram::unbound().unwrap();
        assert!(u.local_addr().unwrap().is_unnamed());
        assert_eq!(
            u.peer_addr().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        let (x, y) = UnixStream::pair().unwrap();
        assert!(x.local_addr().unwrap().is_unnamed());
        assert!(y.peer_addr().unwrap().is_unnamed());
        let path = unix_path("unnamed");
        let l = UnixListener::bind(&path).unwrap();
        assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()));
        let c = UnixStream::connect(&path).unwrap();
        let (s, from) = l.accept().unwrap();
        assert!(from.is_unnamed());
        assert!(s.peer_addr().unwrap().is_unnamed());
        assert_eq!(s.local_addr().unwrap().as_pathname(), Some(path.as_path()));
        assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
        assert!(c.local_addr().unwrap().is_unnamed());
        std::fs::remove_file(&path).unwrap();
    });
}

/// unix_datagram.rs:108 "Sends a datagram to the socket at `path` ... as
/// `sendto(2)` otherwise": Linux refuses a datagram to a socket connected
/// to someone else with `EPERM`, as std reports it.
#[test]
fn unix_datagram_send_to_a_receiver_connected_elsewhere_is_refused_as_std() {
    bounded(|| {
        let (pr, pp) = (unix_path("eperm-r"), unix_path("eperm-p"));
        let r = UnixDatagram::bind(&pr).unwrap();
        let _p = UnixDatagram::bind(&pp).unwrap();
        r.connect(&pp).unwrap();
        let third = UnixDatagram::unbound().unwrap();
        let e = third.send_to(b"x", &pr).unwrap_err();
        let std_third = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let want = std_third.send_to(b"x", &pr).unwrap_err();
        assert_eq!(
            (e.kind(), e.raw_os_error()),
            (want.kind(), want.raw_os_error())
        );
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        std::fs::remove_file(&pr).unwrap();
        std::fs::remove_file(&pp).unwrap();
    });
}

/// unix_datagram.rs:169 "Shuts down one or both halves, waking greenlets
/// parked in those directions": a sender parked on a full peer is woken by
/// `shutdown(Write)` and fails with `EPIPE`, as a blocking std send does
/// (Linux `sock_alloc_send_pskb` checks `SEND_SHUTDOWN` when woken).
#[test]
fn unix_datagram_sender_parked_on_a_full_peer_is_woken_by_shutdown_write() {
    bounded(|| {
        let (a, _b) = UnixDatagram::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut sent = 0;
        for _ in 0..100_000 {
            match a.send(&[0u8; 512]) {
                Ok(_) => sent += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(sent > 0 && sent < 100_000, "{sent}");
        a.set_nonblocking(false).unwrap();
        let w = a.try_clone().unwrap();
        let g = spawn(move || w.send(b"late"));
        park_in(g.id(), "write");
        a.shutdown(Shutdown::Write).unwrap();
        let e = g.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
    });
}

// ---------------------------------------------------------------- Unix streams

/// README.md:314-316 "As with `std`, `try_clone` handles share one socket,
/// closed when the last is dropped: dropping one does not wake a greenlet
/// reading another": a greenlet iterating `incoming()` is killed (its
/// destructors run); another accepting on a clone keeps waiting when the
/// original handle is dropped, and gets the next connection.
#[test]
fn unix_incoming_killed_and_the_listener_dropped_under_a_clones_accept() {
    bounded(|| {
        let path = unix_path("incoming");
        let l = UnixListener::bind(&path).unwrap();
        let drops = Rc::new(Cell::new(0));
        let f = DropFlag(drops.clone());
        let l1 = l.try_clone().unwrap();
        let g1 = spawn(move || {
            let _f = f;
            l1.incoming().take(1).count()
        });
        park_in(g1.id(), "accept");
        g1.kill();
        assert!(g1.join().unwrap_err().is_killed());
        assert_eq!(drops.get(), 1);
        let l2 = l.try_clone().unwrap();
        let g2 = spawn(move || {
            let s = l2.incoming().next().unwrap()?;
            let mut b = [0u8; 2];
            (&s).read_exact(&mut b)?;
            Ok::<_, io::Error>(b)
        });
        park_in(g2.id(), "accept");
        drop(l);
        for _ in 0..20 {
            yield_now();
        }
        assert!(
            matches!(wait_of(g2.id()), Some(WaitKind::Io { op: "accept", .. })),
            "still accepting"
        );
        let c = UnixStream::connect(&path).unwrap();
        (&c).write_all(b"hi").unwrap();
        assert_eq!(&g2.join().unwrap().unwrap(), b"hi");
        std::fs::remove_file(&path).unwrap();
    });
}

// ---------------------------------------------------------------- TCP

/// std `TcpStream::peek`: data queued before the peer's close is peeked
/// and left; after it, a peek (like a read) returns 0 at end of stream,
/// repeatedly; a peek parked on an empty stream wakes with 0 when the peer
/// shuts down its write half.
#[test]
fn tcp_peek_before_and_after_end_of_stream() {
    bounded(|| {
        let (c, s) = tcp_pair();
        let c2 = c.try_clone().unwrap();
        let g = spawn(move || c2.peek(&mut [0u8; 4]));
        park_in(g.id(), "read");
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(g.join().unwrap().unwrap(), 0);
        let (c, s) = tcp_pair();
        (&s).write_all(b"ab").unwrap();
        drop(s);
        let mut b = [0u8; 8];
        yield_until("both bytes queued", || c.peek(&mut [0u8; 8]).unwrap() == 2);
        assert_eq!(c.peek(&mut b).unwrap(), 2);
        assert_eq!(&b[..2], b"ab");
        assert_eq!((&c).read(&mut b).unwrap(), 2);
        assert_eq!(c.peek(&mut b).unwrap(), 0);
        assert_eq!(c.peek(&mut b).unwrap(), 0);
        assert_eq!((&c).read(&mut b).unwrap(), 0);
    });
}

/// hub/src/net/tcp.rs:319-321 "Greenlets parked on this socket in a
/// direction shut down are woken and see what the kernel reports (end of
/// stream for reads, an error for writes)"; std: after `shutdown(Both)` a read returns 0 and a write
/// fails with `BrokenPipe`.
#[test]
fn tcp_shutdown_both_then_read_and_write_as_std() {
    bounded(|| {
        let (c, _s) = tcp_pair();
        let r = c.try_clone().unwrap();
        let g = spawn(move || (&r).read(&mut [0u8; 4]));
        park_in(g.id(), "read");
        c.shutdown(Shutdown::Both).unwrap();
        assert_eq!(g.join().unwrap().unwrap(), 0);
        let sylvan_side = (outcome((&c).read(&mut [0u8; 4])), outcome((&c).write(b"x")));
        let sl = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sc = std::net::TcpStream::connect(sl.local_addr().unwrap()).unwrap();
        let _ss = sl.accept().unwrap();
        sc.shutdown(Shutdown::Both).unwrap();
        let std_side = (
            outcome((&sc).read(&mut [0u8; 4])),
            outcome((&sc).write(b"x")),
        );
        assert_eq!(sylvan_side, std_side);
        assert_eq!(sylvan_side, ("Ok(0)".into(), "Err(BrokenPipe)".into()));
    });
}

/// hub/src/net/tcp.rs:385 "Takes the pending `SO_ERROR`": after the peer
/// resets the connection the error is pending (`ConnectionReset`) and taken
/// once, and what a read then returns matches std.
#[test]
fn tcp_take_error_after_a_reset_then_read_as_std() {
    fn take_first(mut take: impl FnMut() -> Option<io::Error>) -> io::Error {
        for _ in 0..200 {
            if let Some(e) = take() {
                return e;
            }
            sylvan::sleep(10 * MS);
        }
        panic!("no error 2 s after the reset");
    }
    bounded(|| {
        let sl = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sc = std::net::TcpStream::connect(sl.local_addr().unwrap()).unwrap();
        let (ss, _) = sl.accept().unwrap();
        set_linger_zero(ss.as_raw_fd());
        drop(ss);
        let std_err = take_first(|| sc.take_error().unwrap());
        let std_side = (
            std_err.kind(),
            outcome(sc.take_error().map(|e| e.is_some())),
            outcome((&sc).read(&mut [0u8; 4])),
        );

        let (c, s) = tcp_pair();
        set_linger_zero(s.as_raw_fd());
        drop(s);
        let err = take_first(|| c.take_error().unwrap());
        let sylvan_side = (
            err.kind(),
            outcome(c.take_error().map(|e| e.is_some())),
            outcome((&c).read(&mut [0u8; 4])),
        );
        assert_eq!(sylvan_side, std_side);
        assert_eq!(sylvan_side.0, io::ErrorKind::ConnectionReset);
    });
}

// ---------------------------------------------------------------- StreamServer

/// hub/src/net/server.rs:341 `stop` "kills the accept loop (closing the
/// listener, so new connections are refused), waits up to `timeout` ...
/// then kills those still running": with `Some(0)` the parked handlers are
/// killed at once (destructors run); server.rs:440/445 `handlers()` and
/// `accepted()` count them; the listener came from `TcpListener::from_std`.
#[test]
fn stream_server_on_an_adopted_listener_stop_some_zero_kills_at_once() {
    bounded(|| {
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let never = Rc::new(Event::new());
        let nv = never.clone();
        let server = StreamServer::new(
            TcpListener::from_std(std_l).unwrap(),
            move |_c: TcpStream, _peer| {
                let _f = DropFlag(d.clone());
                nv.wait();
            },
        )
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();
        let clients: Vec<_> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        yield_until("three handlers parked", || {
            server.accepted() == 3
                && server.handlers() == 3
                && sylvan::dump()
                    .greenlets
                    .iter()
                    .filter(|g| g.wait == WaitKind::Sync("an event"))
                    .count()
                    == 3
        });
        let t = Instant::now();
        server.stop(Some(Duration::ZERO));
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(drops.get(), 3, "each handler was killed and unwound");
        assert_eq!(server.handlers(), 0);
        assert_eq!(server.accepted(), 3);
        assert_eq!(
            first_error(|| TcpStream::connect(addr)).kind(),
            io::ErrorKind::ConnectionRefused
        );
        drop(clients);
    });
}

/// server.rs:343 "(`None`: as long as they take)": `stop(None)` lets a
/// running handler finish on its own, however long, and kills nothing.
#[test]
fn stream_server_stop_none_waits_for_a_handler_to_finish() {
    bounded(|| {
        let finished = Rc::new(Cell::new(false));
        let f = finished.clone();
        let go = Rc::new(Event::new());
        let g2 = go.clone();
        let server = StreamServer::bind("127.0.0.1:0", move |mut c: TcpStream, _| {
            g2.wait();
            sylvan::sleep(30 * MS);
            c.write_all(b"done").unwrap();
            f.set(true);
        })
        .unwrap()
        .start()
        .unwrap();
        let mut c = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        yield_until("handler running", || server.handlers() == 1);
        let srv = server.clone();
        let stopper = spawn(move || srv.stop(None));
        yield_until("stopping", || server.is_stopped());
        go.set();
        stopper.join().unwrap();
        assert!(finished.get(), "the handler ran to its end");
        assert_eq!(server.handlers(), 0);
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"done");
    });
}

/// README.md:315 (`try_clone` handles share one socket, closed when the
/// last is dropped) against server.rs:80 ("`stop` closes the listener at
/// once"): two servers on clones of one listener share it; stopping one
/// leaves the other accepting, on the same address.
#[test]
fn two_stream_servers_on_one_listener_stopping_one_leaves_the_other() {
    bounded(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let echo = |tag: u8| {
            move |mut c: TcpStream, _: SocketAddr| {
                let _ = c.write_all(&[tag]);
            }
        };
        let a = StreamServer::new(l.try_clone().unwrap(), echo(b'a'))
            .start()
            .unwrap();
        let b = StreamServer::new(l, echo(b'b')).start().unwrap();
        a.stop(Some(Duration::ZERO));
        for _ in 0..3 {
            let mut c = TcpStream::connect(addr).unwrap();
            let mut t = [0u8; 1];
            c.read_exact(&mut t).unwrap();
            assert_eq!(&t, b"b");
        }
        assert_eq!(b.accepted(), 3);
        b.stop(Some(Duration::ZERO));
        assert_eq!(
            first_error(|| TcpStream::connect(addr)).kind(),
            io::ErrorKind::ConnectionRefused
        );
    });
}

// ---------------------------------------------------------------- dump / stats

/// README.md:369 "`sylvan::dump()` lists ... what each waits on (socket
/// waits with their descriptor and peer) and for how long":
/// inspect.rs:225 "For a socket wait, the peer's address when it has one"
/// (a connected UDP socket has one, a Unix datagram socket none); accept
/// waits read "socket accept on fd N"; the table cuts names to 16 columns
/// with `~`; `waiting_for` grows between two dumps.
#[test]
fn dump_rows_for_udp_unix_and_accept_waits() {
    bounded(|| {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let upeer = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.connect(upeer.local_addr().unwrap()).unwrap();
        let ufd = u.as_raw_fd();
        let gu = Builder::new()
            .name("a-rather-long-udp-receiver-name")
            .spawn(move || u.recv(&mut [0u8; 4]))
            .unwrap();
        let (d, _d2) = UnixDatagram::pair().unwrap();
        let dfd = d.as_raw_fd();
        let gd = spawn(move || d.recv(&mut [0u8; 4]));
        let tl = TcpListener::bind("127.0.0.1:0").unwrap();
        let tfd = tl.as_raw_fd();
        let gt = spawn(move || tl.accept().map(|_| ()));
        let path = unix_path("dump");
        let ul = UnixListener::bind(&path).unwrap();
        let ulfd = ul.as_raw_fd();
        let gul = spawn(move || ul.accept().map(|_| ()));
        park_in(gu.id(), "read");
        park_in(gd.id(), "read");
        park_in(gt.id(), "accept");
        park_in(gul.id(), "accept");
        let first = sylvan::dump();
        sylvan::sleep(20 * MS);
        let second = sylvan::dump();
        let info = |dump: &sylvan::Dump, id: GreenletId| {
            dump.greenlets.iter().find(|g| g.id == id).unwrap().clone()
        };
        let iu = info(&second, gu.id());
        assert_eq!(
            iu.wait,
            WaitKind::Io {
                op: "read",
                fd: ufd
            }
        );
        assert_eq!(iu.peer, Some(upeer.local_addr().unwrap()));
        assert_eq!(iu.name.as_deref(), Some("a-rather-long-udp-receiver-name"));
        assert_eq!(iu.state, "suspended");
        let id = info(&second, gd.id());
        assert_eq!(
            (id.wait, id.peer),
            (
                WaitKind::Io {
                    op: "read",
                    fd: dfd
                },
                None
            )
        );
        assert_eq!(
            info(&second, gt.id()).wait,
            WaitKind::Io {
                op: "accept",
                fd: tfd
            }
        );
        assert_eq!(info(&second, gt.id()).peer, None, "a listener has no peer");
        assert_eq!(
            info(&second, gul.id()).wait,
            WaitKind::Io {
                op: "accept",
                fd: ulfd
            }
        );
        let text = second.to_string();
        assert!(text.contains(" a-rather-long-u~ "), "{text}");
        assert!(!text.contains("a-rather-long-ud"), "{text}");
        assert!(
            text.contains(&format!("socket accept on fd {tfd} ")),
            "{text}"
        );
        for g in [gu.id(), gd.id(), gt.id(), gul.id()] {
            let (a, b) = (info(&first, g).waiting_for, info(&second, g).waiting_for);
            let (a, b) = (a.unwrap(), b.unwrap());
            assert!(b >= a + 10 * MS, "{g}: {a:?} then {b:?}");
        }
        gu.kill();
        gd.kill();
        gt.kill();
        gul.kill();
        std::fs::remove_file(&path).unwrap();
    });
}

/// hub/src/hub.rs:157 "Timers armed now": a receive parked with a read
/// timeout holds one timer, gone once the datagram came; hub.rs:149/151
/// `alive`/`spawned` follow the receiver.
#[test]
fn stats_count_a_socket_timeout_as_a_timer_while_parked() {
    bounded(|| {
        let before = sylvan::stats();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = u.local_addr().unwrap();
        u.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let g = spawn(move || u.recv_from(&mut [0u8; 4]).map(|(n, _)| n));
        park_in(g.id(), "read");
        let mid = sylvan::stats();
        assert_eq!(mid.timers, before.timers + 1, "{before:?} {mid:?}");
        assert_eq!(mid.alive, before.alive + 1);
        assert_eq!(mid.spawned, before.spawned + 1);
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .send_to(b"t", addr)
            .unwrap();
        assert_eq!(g.join().unwrap().unwrap(), 1);
        let after = sylvan::stats();
        assert_eq!(after.timers, before.timers, "{after:?}");
        assert_eq!(after.alive, before.alive);
    });
}

// ---------------------------------------------------------------- BlockingDetector

/// Spins on the CPU for `d` without yielding.
fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// README.md:373 "a watchdog thread that notices when the hub has not
/// switched for longer than a threshold and reports, once per stall, which
/// greenlet is running and where it was spawned; an idle hub waiting in
/// `poll` is never reported"; inspect.rs:128 `start`: "reports go to the
/// `log` crate ... else stderr"; inspect.rs:116 "stops the watchdog" on
/// drop. Run in a child to read its stderr.
#[test]
fn blocking_detector_start_reports_a_spinning_greenlet_on_stderr_once() {
    const NAME: &str = "detector-start";
    const PATH: &str =
        "probes20::blocking_detector_start_reports_a_spinning_greenlet_on_stderr_once";
    if is_child(NAME) {
        bounded(|| {
            let det = BlockingDetector::start(Duration::from_millis(50));
            sylvan::sleep(Duration::from_millis(150)); // idle: never reported
            let line = line!() + 1;
            let g = spawn(|| spin(Duration::from_millis(250)));
            println!("SPINNER {} {line}", g.id());
            g.join().unwrap();
            sylvan::sleep(Duration::from_millis(100)); // the watchdog settles
            drop(det);
            sylvan::sleep(Duration::from_millis(100)); // it notices the drop
            let g2 = spawn(|| spin(Duration::from_millis(200)));
            g2.join().unwrap();
            sylvan::sleep(Duration::from_millis(50));
        });
        println!("PROBE ok");
        return;
    }
    let out = run_child(PATH, NAME);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("PROBE ok"),
        "{stdout}\n{stderr}"
    );
    let spinner = stdout
        .lines()
        .find_map(|l| l.split_once("SPINNER ").map(|(_, rest)| rest))
        .expect("the child names its spinner");
    let (id, line) = spinner.split_once(' ').unwrap();
    let reports: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("has blocked the hub"))
        .collect();
    assert_eq!(
        reports.len(),
        1,
        "one report, for the first spin only:\n{stderr}"
    );
    let want = format!("sylvan: greenlet {id} (spawned at tests/it/probes20.rs:{line}:");
    assert!(reports[0].starts_with(&want), "{} vs {want}", reports[0]);
}

/// inspect.rs:73 "The greenlet that kept the hub from switching (`#0`:
/// main)" and inspect.rs:75 "Where it was spawned (`None` for main)";
/// inspect.rs:77 "`blocked_for` ... at least the threshold".
#[test]
fn blocking_detector_reports_main_spinning_as_greenlet_zero() {
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::<BlockingReport>::new()));
    let r = reports.clone();
    let det = BlockingDetector::with_callback(Duration::from_millis(50), move |rep| {
        r.lock().unwrap().push(rep.clone())
    });
    yield_now();
    // Spins until the watchdog reported it (3 s at most).
    let t = Instant::now();
    while reports.lock().unwrap().is_empty() && t.elapsed() < Duration::from_secs(3) {
        std::hint::spin_loop();
    }
    sylvan::sleep(Duration::from_millis(60));
    drop(det);
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].greenlet.as_u64(), 0);
    assert!(reports[0].spawned_at.is_none());
    assert!(reports[0].blocked_for >= Duration::from_millis(50));
    assert!(reports[0].to_string().contains("(main)"));
}

/// README.md:373 "a watchdog thread that notices when the hub has not
/// switched for longer than a threshold": a greenlet that computes for
/// longer than the threshold in all but yields every few milliseconds keeps
/// the hub switching and is never reported.
#[test]
fn blocking_detector_ignores_a_busy_greenlet_that_yields_often() {
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::<BlockingReport>::new()));
    let r = reports.clone();
    // 400 ms of work in 5 ms slices against a 250 ms threshold: far more
    // than the threshold in all, never near it in one slice, even with the
    // thread preempted for a while on a loaded machine (a 50 ms threshold
    // saw a 55 ms slice under a parallel build).
    let det = BlockingDetector::with_callback(Duration::from_millis(250), move |rep| {
        r.lock().unwrap().push(rep.clone())
    });
    let g = spawn(|| {
        for _ in 0..80 {
            spin(5 * MS);
            yield_now();
        }
    });
    g.join().unwrap();
    sylvan::sleep(Duration::from_millis(260));
    drop(det);
    assert!(
        reports.lock().unwrap().is_empty(),
        "{:?}",
        reports.lock().unwrap()
    );
}

/// hub/src/io.rs:21-22 "A short TCP read drains. On Linux, a TCP read that
/// returns fewer bytes than asked (but some) got all the kernel had" and
/// README.md:311 "so the next read parks until new data arrives instead of
/// making a system call that would fail". Not so for `read_vectored` with
/// more than `IOV_MAX` (1024) buffers: std's `readv` passes only the first
/// 1024, so it returns fewer bytes than the buffers hold with more queued;
/// a blocking std read then returns the rest at once, while sylvan parked
/// until new data (here: timed out). Fixed: only the buffers `readv` is
/// given count towards the size asked for. The reader parks first, so that
/// the data's
/// readable edge is consumed by the poll that wakes it.
#[test]
fn tcp_read_vectored_past_iov_max_is_not_a_short_read() {
    bounded(|| {
        let (c, s) = tcp_pair();
        let r = c.try_clone().unwrap();
        let g = spawn(move || {
            let mut bytes = vec![[0u8; 1]; 2000];
            let mut bufs: Vec<io::IoSliceMut<'_>> =
                bytes.iter_mut().map(|b| io::IoSliceMut::new(b)).collect();
            let n = (&r).read_vectored(&mut bufs).unwrap();
            assert_eq!(n, 1024, "std's readv takes IOV_MAX buffers");
            r.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut rest = [0u8; 4096];
            outcome((&r).read(&mut rest))
        });
        park_in(g.id(), "read");
        (&s).write_all(&[7u8; 2048]).unwrap();
        assert_eq!(
            g.join().unwrap(),
            "Ok(1024)",
            "1024 bytes are queued: a blocking std read returns them at once"
        );
        drop(s);
    });
}
