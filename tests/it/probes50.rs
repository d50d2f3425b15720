//! Probe round 50: a hostile review of the six most recent library changes.
//!
//! * `mpsc` (`m..`): a chosen receiver outrun by `try_recv` re-parks in its
//!   old place. Kills and timeouts of re-parked receivers, ticket order over
//!   many rounds, remote (other thread) senders, several hubs each with a
//!   receiver shared by greenlets, senders dropped while receivers park.
//! * `iwait`/`wait` (`i..`): zero and expired timeouts, objects ready
//!   already, duplicates, dropping the iterator midway, kills while
//!   iterating, one object in two concurrent `iwait`s; registrations are
//!   counted by a `Waitable` that counts them.
//! * The blocking detector's greenlet names (`b..`): named, unnamed, killed
//!   and respawned greenlets; names forgotten at reap (memory does not grow
//!   with many named greenlets, measured in a child process).
//! * Sockets held to `std` (`n..`): UDP and Unix datagram receives after a
//!   read shutdown (blocking, with timeouts, non-blocking), empty TCP and
//!   Unix stream reads at a read timeout, zero-length datagram receives,
//!   and the `WouldBlock` of every entry point in non-blocking mode (kind
//!   and `raw_os_error`). The one deliberate difference is normalised: a
//!   timeout is `WouldBlock` (EAGAIN) in `std` on Linux, `TimedOut` in
//!   sylvan.
//!
//! Three tests found bugs, fixed with this round: non-blocking UDP and
//! Unix datagram receives after a read shutdown (`n02`, `n04`), and an
//! `iwait` used again after a `watch` panicked in it (`i08`).

use std::cell::{Cell, RefCell};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::mpsc::{RecvError, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use sylvan::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use sylvan::sync::{Event, Semaphore};
use sylvan::{Waitable, Waiter};

use crate::util::{bounded, yield_until};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What a call gave, comparable across std and sylvan: a sylvan timeout
/// (`TimedOut`, no OS error) reads as std's (`WouldBlock`, EAGAIN).
type Got = Result<usize, (io::ErrorKind, Option<i32>)>;

fn got<T>(r: io::Result<T>, n: impl FnOnce(T) -> usize) -> Got {
    match r {
        Ok(v) => Ok(n(v)),
        Err(e) if e.kind() == io::ErrorKind::TimedOut && e.raw_os_error().is_none() => {
            Err((io::ErrorKind::WouldBlock, Some(libc::EAGAIN)))
        }
        Err(e) => Err((e.kind(), e.raw_os_error())),
    }
}

fn n(r: io::Result<usize>) -> Got {
    got(r, |n| n)
}

const EAGAIN: Got = Err((io::ErrorKind::WouldBlock, Some(libc::EAGAIN)));

/// Runs `f` on a plain thread of the blocking pool; this greenlet parks.
fn on_std<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    sylvan::spawn_blocking(f)
}

/// `shutdown(fd, SHUT_RD)` (UDP sockets have no `shutdown` method).
fn shut_rd(fd: i32) -> Got {
    // SAFETY: shutdown on an open socket descriptor.
    let r = unsafe { libc::shutdown(fd, libc::SHUT_RD) };
    if r == 0 {
        Ok(0)
    } else {
        n(Err(io::Error::last_os_error()))
    }
}

/// Waits with `poll(2)` (up to 2 s) until `fd` is readable.
fn wait_readable(fd: i32) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd on an open descriptor.
    let r = unsafe { libc::poll(&mut p, 1, 2000) };
    assert_eq!(r, 1, "fd {fd} never became readable");
}

// ---------------------------------------------------------------- sockets: UDP after a read shutdown

/// The UDP script: a datagram queued, the read half shut down, then every
/// receive; a datagram sent after the shutdown; receives again.
fn udp_shut_script(
    fd: i32,
    send_self: &dyn Fn(&[u8]) -> io::Result<usize>,
    recv: &dyn Fn(&mut [u8]) -> io::Result<usize>,
    peek: &dyn Fn(&mut [u8]) -> io::Result<usize>,
    recv_from: &dyn Fn(&mut [u8]) -> io::Result<usize>,
    peek_from: &dyn Fn(&mut [u8]) -> io::Result<usize>,
) -> Vec<Got> {
    let mut buf = [0u8; 8];
    let mut v = Vec::new();
    v.push(n(send_self(b"one")));
    wait_readable(fd);
    v.push(shut_rd(fd));
    v.push(n(peek(&mut buf)));
    v.push(n(recv(&mut buf)));
    v.push(n(recv(&mut buf)));
    v.push(n(peek(&mut buf)));
    v.push(n(recv_from(&mut buf)));
    v.push(n(peek_from(&mut buf)));
    v.push(n(recv(&mut [])));
    v.push(n(send_self(b"two!")));
    wait_readable(fd);
    v.push(n(peek_from(&mut buf)));
    v.push(n(recv_from(&mut buf)));
    v.push(n(recv(&mut buf)));
    v
}

fn std_udp_shut(connect: bool, timeout: Option<Duration>, nonblocking: bool) -> Vec<Got> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = s.local_addr().unwrap();
    if connect {
        s.connect(me).unwrap();
    }
    s.set_read_timeout(timeout).unwrap();
    s.set_nonblocking(nonblocking).unwrap();
    udp_shut_script(
        s.as_raw_fd(),
        &|b| s.send_to(b, me),
        &|b| s.recv(b),
        &|b| s.peek(b),
        &|b| kernel_recv_from(s.as_raw_fd(), b, 0),
        &|b| kernel_recv_from(s.as_raw_fd(), b, libc::MSG_PEEK),
    )
}

/// `recvfrom(2)` as std's `recv_from`/`peek_from` mean it, without their
/// parse of the address: after a read shutdown with nothing queued the
/// kernel returns 0 and writes no address, and std then reads a
/// `sockaddr_storage` it never initialised (an `InvalidInput` for most
/// stack garbage; a failed assertion when the garbage is an `AF_INET`
/// family left by an earlier call). The kernel's answer, with no address
/// read as std's intended `InvalidInput`, is the reference here.
fn kernel_recv_from(fd: i32, buf: &mut [u8], flags: i32) -> io::Result<usize> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: a valid buffer and address storage with their lengths.
    let r = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            flags,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else if len == 0 {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "no address"))
    } else {
        Ok(r as usize)
    }
}

fn sylvan_udp_shut(connect: bool, timeout: Option<Duration>, nonblocking: bool) -> Vec<Got> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = s.local_addr().unwrap();
    if connect {
        s.connect(me).unwrap();
    }
    s.set_read_timeout(timeout).unwrap();
    s.set_nonblocking(nonblocking).unwrap();
    udp_shut_script(
        s.as_raw_fd(),
        &|b| s.send_to(b, me),
        &|b| s.recv(b),
        &|b| s.peek(b),
        &|b| s.recv_from(b).map(|(n, _)| n),
        &|b| s.peek_from(b).map(|(n, _)| n),
    )
}

/// Blocking mode, with and without a read timeout, connected or not (an
/// unconnected socket's shutdown fails with ENOTCONN yet shuts the read
/// half): the receives return at once as std's do.
#[test]
fn n01_udp_receives_after_a_read_shutdown_match_std_blocking() {
    bounded(|| {
        for connect in [true, false] {
            for timeout in [None, Some(ms(20))] {
                let std = on_std(move || std_udp_shut(connect, timeout, false));
                let t = Instant::now();
                let ours = sylvan_udp_shut(connect, timeout, false);
                assert_eq!(ours, std, "connect {connect}, timeout {timeout:?}");
                assert!(t.elapsed() < ms(500), "nothing waited");
                let shut = if connect {
                    Ok(0)
                } else {
                    Err((io::ErrorKind::NotConnected, Some(libc::ENOTCONN)))
                };
                let inval = Err((io::ErrorKind::InvalidInput, None));
                assert_eq!(
                    std,
                    [
                        Ok(3),
                        shut,
                        Ok(3),
                        Ok(3),
                        Ok(0),
                        Ok(0),
                        inval,
                        inval,
                        Ok(0),
                        Ok(4),
                        Ok(4),
                        Ok(4),
                        Ok(0)
                    ],
                    "connect {connect}, timeout {timeout:?}"
                );
            }
        }
    });
}

/// Non-blocking mode: std's non-blocking receive on a shut read half fails
/// with EAGAIN (the kernel returns 0 only to a receive that would wait).
#[test]
fn n02_udp_receives_after_a_read_shutdown_in_nonblocking_mode_match_std() {
    bounded(|| {
        for connect in [true, false] {
            let std = on_std(move || std_udp_shut(connect, None, true));
            let ours = sylvan_udp_shut(connect, None, true);
            assert_eq!(std[4..8], [EAGAIN, EAGAIN, EAGAIN, EAGAIN]);
            assert_eq!(ours, std, "connect {connect}");
        }
    });
}

/// A Unix datagram `recv_from` giving the count and whether the source
/// address is unnamed.
type RecvFromUnnamed<'a> = dyn Fn(&mut [u8]) -> io::Result<(usize, bool)> + 'a;

/// A receive of some kind into a buffer.
type RecvFn<'a> = dyn Fn(&mut [u8]) -> io::Result<usize> + 'a;

fn unix_dgram_shut_script(
    fd: i32,
    send: &dyn Fn(&[u8]) -> io::Result<usize>,
    recv: &dyn Fn(&mut [u8]) -> io::Result<usize>,
    recv_from: &RecvFromUnnamed<'_>,
) -> Vec<Got> {
    let mut buf = [0u8; 8];
    let mut v = Vec::new();
    v.push(n(send(b"one")));
    wait_readable(fd);
    v.push(shut_rd(fd));
    v.push(n(recv(&mut buf)));
    v.push(n(recv(&mut buf)));
    // The address's unnamedness as 1000 + n, to compare it too.
    let from =
        |r: io::Result<(usize, bool)>| got(r, |(n, unnamed)| n + 1000 * usize::from(unnamed));
    v.push(from(recv_from(&mut buf)));
    v.push(n(recv(&mut [])));
    v
}

fn std_unix_dgram_shut(nonblocking: bool, timeout: Option<Duration>) -> Vec<Got> {
    let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
    b.set_nonblocking(nonblocking).unwrap();
    b.set_read_timeout(timeout).unwrap();
    unix_dgram_shut_script(b.as_raw_fd(), &|m| a.send(m), &|m| b.recv(m), &|m| {
        b.recv_from(m).map(|(n, a)| (n, a.is_unnamed()))
    })
}

fn sylvan_unix_dgram_shut(nonblocking: bool, timeout: Option<Duration>) -> Vec<Got> {
    let (a, b) = UnixDatagram::pair().unwrap();
    b.set_nonblocking(nonblocking).unwrap();
    b.set_read_timeout(timeout).unwrap();
    unix_dgram_shut_script(b.as_raw_fd(), &|m| a.send(m), &|m| b.recv(m), &|m| {
        b.recv_from(m).map(|(n, a)| (n, a.is_unnamed()))
    })
}

#[test]
fn n03_unix_datagram_receives_after_a_read_shutdown_match_std_blocking() {
    bounded(|| {
        for timeout in [None, Some(ms(20))] {
            let std = on_std(move || std_unix_dgram_shut(false, timeout));
            let ours = sylvan_unix_dgram_shut(false, timeout);
            assert_eq!(std, [Ok(3), Ok(0), Ok(3), Ok(0), Ok(1000), Ok(0)]);
            assert_eq!(ours, std, "timeout {timeout:?}");
        }
    });
}

#[test]
fn n04_unix_datagram_receives_after_a_read_shutdown_in_nonblocking_mode_match_std() {
    bounded(|| {
        let std = on_std(|| std_unix_dgram_shut(true, None));
        let ours = sylvan_unix_dgram_shut(true, None);
        assert_eq!(std[3..5], [EAGAIN, EAGAIN]);
        assert_eq!(ours, std);
    });
}

// ---------------------------------------------------------------- sockets: empty reads at a read timeout

/// An idle stream with a read timeout: empty read, peek and vectored read;
/// then a byte arrives (empty ones return at once and leave it), then the
/// peer's end of stream.
fn empty_read_script(
    r: &mut dyn Read,
    peek: &dyn Fn(&mut [u8]) -> io::Result<usize>,
    peer: &mut dyn Write,
    fd: i32,
    shut_peer: &dyn Fn(),
) -> Vec<Got> {
    let mut v = Vec::new();
    v.push(n(r.read(&mut [])));
    v.push(n(peek(&mut [])));
    v.push(n(r.read_vectored(&mut [IoSliceMut::new(&mut [])])));
    peer.write_all(b"x").unwrap();
    wait_readable(fd);
    v.push(n(r.read(&mut [])));
    v.push(n(peek(&mut [])));
    let mut one = [0u8; 1];
    v.push(n(r.read(&mut one)));
    shut_peer();
    wait_readable(fd);
    v.push(n(r.read(&mut [])));
    v.push(n(peek(&mut [])));
    v.push(n(r.read(&mut one)));
    v
}

fn std_tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// TCP on Linux: an empty read or peek waits for data or the timeout and
/// returns 0 either way (std's blocking one too).
#[test]
fn n05_empty_tcp_reads_at_a_read_timeout_match_std() {
    bounded(|| {
        let std = on_std(|| {
            let (mut a, mut b) = std_tcp_pair();
            a.set_read_timeout(Some(ms(20))).unwrap();
            let fd = a.as_raw_fd();
            let a2 = a.try_clone().unwrap();
            let b2 = b.try_clone().unwrap();
            empty_read_script(&mut a, &|buf| a2.peek(buf), &mut b, fd, &|| {
                b2.shutdown(std::net::Shutdown::Write).unwrap()
            })
        });
        let (mut a, mut b) = crate::net_peers::pair();
        a.set_read_timeout(Some(ms(20))).unwrap();
        let fd = a.as_raw_fd();
        let a2 = a.try_clone().unwrap();
        let b2 = b.try_clone().unwrap();
        let ours = empty_read_script(&mut a, &|buf| a2.peek(buf), &mut b, fd, &|| {
            b2.shutdown(std::net::Shutdown::Write).unwrap()
        });
        assert_eq!(
            std,
            [
                Ok(0),
                Ok(0),
                Ok(0),
                Ok(0),
                Ok(0),
                Ok(1),
                Ok(0),
                Ok(0),
                Ok(0)
            ]
        );
        assert_eq!(ours, std);
    });
}

/// A Unix stream's empty read at its timeout is std's WouldBlock (sylvan's
/// TimedOut): the TCP rule must not leak to it.
#[test]
fn n06_empty_unix_stream_reads_at_a_read_timeout_match_std() {
    bounded(|| {
        let no_peek = |_: &mut [u8]| -> io::Result<usize> { Ok(99) };
        let std = on_std(move || {
            let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
            a.set_read_timeout(Some(ms(20))).unwrap();
            let fd = a.as_raw_fd();
            let b2 = b.try_clone().unwrap();
            empty_read_script(&mut a, &no_peek, &mut b, fd, &|| {
                b2.shutdown(std::net::Shutdown::Write).unwrap()
            })
        });
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(ms(20))).unwrap();
        let fd = a.as_raw_fd();
        let b2 = b.try_clone().unwrap();
        let ours = empty_read_script(&mut a, &no_peek, &mut b, fd, &|| {
            b2.shutdown(std::net::Shutdown::Write).unwrap()
        });
        assert_eq!(std[0], EAGAIN, "{std:?}");
        assert_eq!(ours, std);
    });
}

/// `with_timeout` around an empty TCP read still unwinds (only the
/// socket's own read timeout reads as `Ok(0)`).
#[test]
fn n07_an_empty_tcp_read_under_with_timeout_still_times_out() {
    bounded(|| {
        let (mut a, _b) = crate::net_peers::pair();
        let r = sylvan::with_timeout(ms(20), || a.read(&mut []));
        assert!(r.is_err(), "{r:?}");
        let (a, _b) = crate::net_peers::pair();
        let r = sylvan::with_timeout(ms(20), || a.peek(&mut []));
        assert!(r.is_err(), "{r:?}");
    });
}

/// Zero-length datagram receives with a read timeout: idle they time out
/// (datagram sockets wait for a datagram even to read none of it); with a
/// datagram queued `recv` consumes it and `peek` does not.
#[test]
fn n08_zero_length_datagram_receives_match_std() {
    bounded(|| {
        fn script(
            fd: i32,
            send: &dyn Fn(&[u8]) -> io::Result<usize>,
            recv: &dyn Fn(&mut [u8]) -> io::Result<usize>,
            peek: Option<&RecvFn<'_>>,
        ) -> Vec<Got> {
            let mut v = vec![n(recv(&mut []))];
            v.push(n(send(b"abc")));
            v.push(n(send(b"de")));
            wait_readable(fd);
            if let Some(peek) = peek {
                v.push(n(peek(&mut [])));
            }
            v.push(n(recv(&mut [])));
            let mut buf = [0u8; 8];
            v.push(n(recv(&mut buf)));
            v.push(n(recv(&mut buf)));
            v
        }
        let std_udp = on_std(|| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.connect(s.local_addr().unwrap()).unwrap();
            s.set_read_timeout(Some(ms(20))).unwrap();
            script(
                s.as_raw_fd(),
                &|b| s.send(b),
                &|b| s.recv(b),
                Some(&|b| s.peek(b)),
            )
        });
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.connect(s.local_addr().unwrap()).unwrap();
        s.set_read_timeout(Some(ms(20))).unwrap();
        let ours = script(
            s.as_raw_fd(),
            &|b| s.send(b),
            &|b| s.recv(b),
            Some(&|b| s.peek(b)),
        );
        assert_eq!(std_udp, [EAGAIN, Ok(3), Ok(2), Ok(0), Ok(0), Ok(2), EAGAIN]);
        assert_eq!(ours, std_udp);

        let std_unix = on_std(|| {
            let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
            b.set_read_timeout(Some(ms(20))).unwrap();
            script(b.as_raw_fd(), &|m| a.send(m), &|m| b.recv(m), None)
        });
        let (a, b) = UnixDatagram::pair().unwrap();
        b.set_read_timeout(Some(ms(20))).unwrap();
        let ours = script(b.as_raw_fd(), &|m| a.send(m), &|m| b.recv(m), None);
        assert_eq!(std_unix, [EAGAIN, Ok(3), Ok(2), Ok(0), Ok(2), EAGAIN]);
        assert_eq!(ours, std_unix);
    });
}

// ---------------------------------------------------------------- sockets: non-blocking WouldBlock is EAGAIN

/// Writes until the first error (bounded); returns it.
fn fill(w: &mut dyn FnMut() -> io::Result<usize>) -> Got {
    for _ in 0..100_000 {
        if let Err(e) = w() {
            return n(Err(e));
        }
    }
    panic!("never filled");
}

/// Every read, write, accept, receive, send and peek of every socket type
/// in non-blocking mode, idle or full: std's non-blocking socket answers
/// each with EAGAIN (`raw_os_error` 11).
#[test]
fn n09_every_nonblocking_entry_point_gives_the_raw_eagain_as_std() {
    bounded(|| {
        let std = on_std(|| {
            let mut v = Vec::new();
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            v.push(got(l.accept(), |_| 0));
            let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            c.set_nonblocking(true).unwrap();
            v.push(n((&c).read(&mut [0u8; 8])));
            v.push(n((&c).read(&mut [])));
            v.push(n((&c).read_vectored(&mut [IoSliceMut::new(&mut [0u8; 8])])));
            v.push(n(c.peek(&mut [0u8; 8])));
            let big = vec![0u8; 1 << 16];
            v.push(fill(&mut || (&c).write(&big)));
            v.push(n((&c).write_vectored(&[IoSlice::new(b"x")])));
            let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            u.set_nonblocking(true).unwrap();
            v.push(got(u.recv_from(&mut [0u8; 8]), |p| p.0));
            v.push(got(u.peek_from(&mut [0u8; 8]), |p| p.0));
            u.connect(u.local_addr().unwrap()).unwrap();
            v.push(n(u.recv(&mut [0u8; 8])));
            v.push(n(u.peek(&mut [0u8; 8])));
            let path = crate::net::unix_path("p50-nb-std");
            let ul = std::os::unix::net::UnixListener::bind(&path).unwrap();
            ul.set_nonblocking(true).unwrap();
            v.push(got(ul.accept(), |_| 0));
            let _ = std::fs::remove_file(&path);
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            v.push(n((&a).read(&mut [0u8; 8])));
            v.push(n((&a).read_vectored(&mut [IoSliceMut::new(&mut [0u8; 8])])));
            v.push(fill(&mut || (&a).write(&big)));
            let (d, e) = std::os::unix::net::UnixDatagram::pair().unwrap();
            d.set_nonblocking(true).unwrap();
            v.push(n(d.recv(&mut [0u8; 8])));
            v.push(got(d.recv_from(&mut [0u8; 8]), |p| p.0));
            v.push(fill(&mut || d.send(b"x")));
            drop(e);
            v
        });
        let mut v = Vec::new();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        v.push(got(l.accept(), |_| 0));
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        c.set_nonblocking(true).unwrap();
        v.push(n((&c).read(&mut [0u8; 8])));
        v.push(n((&c).read(&mut [])));
        v.push(n((&c).read_vectored(&mut [IoSliceMut::new(&mut [0u8; 8])])));
        v.push(n(c.peek(&mut [0u8; 8])));
        let big = vec![0u8; 1 << 16];
        v.push(fill(&mut || (&c).write(&big)));
        v.push(n((&c).write_vectored(&[IoSlice::new(b"x")])));
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_nonblocking(true).unwrap();
        v.push(got(u.recv_from(&mut [0u8; 8]), |p| p.0));
        v.push(got(u.peek_from(&mut [0u8; 8]), |p| p.0));
        u.connect(u.local_addr().unwrap()).unwrap();
        v.push(n(u.recv(&mut [0u8; 8])));
        v.push(n(u.peek(&mut [0u8; 8])));
        let path = crate::net::unix_path("p50-nb-ours");
        let ul = UnixListener::bind(&path).unwrap();
        ul.set_nonblocking(true).unwrap();
        v.push(got(ul.accept(), |_| 0));
        let _ = std::fs::remove_file(&path);
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        v.push(n((&a).read(&mut [0u8; 8])));
        v.push(n((&a).read_vectored(&mut [IoSliceMut::new(&mut [0u8; 8])])));
        v.push(fill(&mut || (&a).write(&big)));
        let (d, e) = UnixDatagram::pair().unwrap();
        d.set_nonblocking(true).unwrap();
        v.push(n(d.recv(&mut [0u8; 8])));
        v.push(got(d.recv_from(&mut [0u8; 8]), |p| p.0));
        v.push(fill(&mut || d.send(b"x")));
        drop(e);
        assert_eq!(std, vec![EAGAIN; std.len()]);
        assert_eq!(v, std);
    });
}

/// A TCP read that came back short marks the socket drained (sylvan then
/// parks without trying the syscall): in non-blocking mode the next read
/// still tries it and returns the kernel's own EAGAIN, and a byte that
/// arrived meanwhile is read, as std's would be.
#[test]
fn n10_a_nonblocking_read_after_a_short_read_tries_the_syscall() {
    bounded(|| {
        let (mut a, mut b) = crate::net_peers::pair();
        a.set_nonblocking(true).unwrap();
        b.write_all(b"ab").unwrap();
        wait_readable(a.as_raw_fd());
        let mut buf = [0u8; 8];
        assert_eq!(n(a.read(&mut buf)), Ok(2), "a short read");
        let e = a.read(&mut buf).unwrap_err();
        assert_eq!(
            (e.kind(), e.raw_os_error()),
            (io::ErrorKind::WouldBlock, Some(libc::EAGAIN))
        );
        b.write_all(b"c").unwrap();
        wait_readable(a.as_raw_fd());
        assert_eq!(
            n(a.read(&mut buf)),
            Ok(1),
            "no poll ran, yet the byte is read"
        );
    });
}

/// `sylvan::os::Fd` on a non-blocking socket: the closure's own error
/// comes back, whatever it says.
#[test]
fn n11_fd_read_with_and_write_with_return_the_closures_own_would_block() {
    bounded(|| {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = sylvan::os::Fd::new(a).unwrap();
        fd.set_nonblocking(true);
        let e = fd
            .read_with(|s| {
                let mut s = s;
                s.read(&mut [0u8; 4])
            })
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.raw_os_error()),
            (io::ErrorKind::WouldBlock, Some(libc::EAGAIN))
        );
        let e = fd
            .read_with(|_| Err::<(), _>(io::Error::new(io::ErrorKind::WouldBlock, "mine")))
            .unwrap_err();
        assert_eq!(e.to_string(), "mine");
        let big = vec![0u8; 1 << 16];
        let e = first_write_error(&fd, &big);
        assert_eq!(
            (e.kind(), e.raw_os_error()),
            (io::ErrorKind::WouldBlock, Some(libc::EAGAIN))
        );
    });
}

fn first_write_error(fd: &sylvan::os::Fd<std::os::unix::net::UnixStream>, big: &[u8]) -> io::Error {
    for _ in 0..100_000 {
        if let Err(e) = fd.write_with(|s| {
            let mut s = s;
            s.write(big)
        }) {
            return e;
        }
    }
    panic!("never filled");
}

// ---------------------------------------------------------------- mpsc: outrun receivers keep their place

type Rx = Rc<sylvan::mpsc::Receiver<u32>>;

fn receiver(rx: &Rx) -> sylvan::Greenlet<Result<u32, RecvError>> {
    let rx = rx.clone();
    sylvan::spawn(move || rx.recv())
}

/// The re-parked (outrun) receiver is killed: the next values go to the
/// others in the order they parked; nothing is lost.
#[test]
fn m01_a_killed_reparked_receiver_hands_its_place_to_the_next() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let (first, second, third) = (receiver(&rx), receiver(&rx), receiver(&rx));
        sylvan::yield_now();
        tx.send(1).unwrap(); // chooses `first`
        assert_eq!(rx.try_recv(), Ok(1));
        sylvan::yield_now(); // `first` parks again, still first in line
        first.kill();
        tx.send(2).unwrap();
        sylvan::yield_now();
        assert!(second.is_dead() && !third.is_dead());
        tx.send(3).unwrap();
        assert_eq!(second.join().unwrap(), Ok(2));
        assert_eq!(third.join().unwrap(), Ok(3));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Outrun, then killed before it ran again, while a second value is
/// queued (it counted on the chosen one): the value passes to the next.
#[test]
fn m02_a_chosen_outrun_receiver_killed_before_it_runs_passes_the_next_value_on() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let (first, second) = (receiver(&rx), receiver(&rx));
        sylvan::yield_now();
        tx.send(1).unwrap(); // chooses `first`
        assert_eq!(rx.try_recv(), Ok(1));
        tx.send(2).unwrap(); // `first` is still counted on for it
        first.kill();
        assert_eq!(second.join().unwrap(), Ok(2));
    });
}

/// A re-parked receiver in `recv_timeout` times out in its old place; the
/// next value goes to the one behind it.
#[test]
fn m03_a_reparked_receiver_times_out_and_the_next_in_line_gets_the_value() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let r = rx.clone();
        let timed = sylvan::spawn(move || r.recv_timeout(ms(30)));
        let second = receiver(&rx);
        sylvan::yield_now();
        tx.send(1).unwrap();
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(timed.join().unwrap(), Err(RecvTimeoutError::Timeout));
        assert!(!second.is_dead());
        tx.send(2).unwrap();
        assert_eq!(second.join().unwrap(), Ok(2));
    });
}

/// Over many rounds, with one or two values outrun by `try_recv` each
/// round, receivers are served round-robin in the order they parked.
#[test]
fn m04_ticket_order_holds_over_many_rounds_of_outrunning() {
    bounded(|| {
        const N: u32 = 5;
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let log = Rc::new(RefCell::new(Vec::new()));
        let workers: Vec<_> = (0..N)
            .map(|w| {
                let (rx, log) = (rx.clone(), log.clone());
                sylvan::spawn(move || {
                    while let Ok(v) = rx.recv() {
                        log.borrow_mut().push((w, v));
                    }
                })
            })
            .collect();
        sylvan::yield_now(); // all park, 0 first
        let mut want = Vec::new();
        let mut next_worker = 0;
        for round in 0..60u32 {
            let outrun = 1 + round % 2;
            for k in 0..outrun {
                tx.send(1000 + k).unwrap();
            }
            for k in 0..outrun {
                assert_eq!(rx.try_recv(), Ok(1000 + k));
            }
            sylvan::yield_now(); // the chosen ones find nothing, park again
            // One at a time: a worker that just took a value and loops
            // may take a queued one without parking (as `try_recv` does).
            for k in 0..outrun {
                tx.send(round * 10 + k).unwrap();
                want.push((next_worker, round * 10 + k));
                next_worker = (next_worker + 1) % N;
                yield_until("value taken", || log.borrow().len() == want.len());
            }
        }
        drop(tx);
        sylvan::joinall(&workers, None);
        assert_eq!(*log.borrow(), want);
    });
}

/// A send from another thread chooses a receiver; main outruns it before
/// the hub handles the wake-up; the next value from the thread still goes
/// to that receiver.
#[test]
fn m05_outrun_after_a_remote_send_keeps_the_place_too() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let (first, second) = (receiver(&rx), receiver(&rx));
        sylvan::yield_now();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (sent_tx, sent_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tx.send(1).unwrap();
            sent_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            tx.send(2).unwrap();
            tx
        });
        // Blocks the hub (briefly): the wake-up for `first` waits in the
        // hub's queue while main takes the value.
        sent_rx.recv().unwrap();
        assert_eq!(rx.try_recv(), Ok(1));
        // The hub handles the wake-up and `first` parks again (were it
        // still to run, it would take the next value all the same).
        sylvan::yield_now();
        go_tx.send(()).unwrap();
        yield_until("a receiver done", || first.is_dead() || second.is_dead());
        assert!(first.is_dead() && !second.is_dead());
        assert_eq!(first.join().unwrap(), Ok(2));
        let tx = t.join().unwrap();
        drop(tx); // from this thread: `second` sees the end
        assert_eq!(second.join().unwrap(), Err(RecvError));
    });
}

/// The last sender dropped (on another thread) while receivers park, one
/// of them re-parked after being outrun, one in `recv_timeout`: a value
/// queued before the drop is taken, every other receiver sees the end.
#[test]
fn m06_the_last_sender_dropped_wakes_reparked_and_timed_receivers() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let first = receiver(&rx);
        let r = rx.clone();
        let timed = sylvan::spawn(move || r.recv_timeout(Duration::from_secs(60)));
        let third = receiver(&rx);
        sylvan::yield_now();
        tx.send(1).unwrap();
        assert_eq!(rx.try_recv(), Ok(1));
        sylvan::yield_now(); // `first` re-parked
        std::thread::spawn(move || {
            tx.send(7).unwrap();
            drop(tx);
        })
        .join()
        .unwrap();
        assert_eq!(first.join().unwrap(), Ok(7));
        assert_eq!(timed.join().unwrap(), Err(RecvTimeoutError::Disconnected));
        assert_eq!(third.join().unwrap(), Err(RecvError));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    });
}

/// A chosen receiver in `recv_timeout` whose deadline passes before it
/// runs (main blocks the hub meanwhile) still takes the value it was
/// chosen for; the other keeps waiting.
#[test]
fn m07_a_chosen_receiver_past_its_deadline_still_takes_its_value() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let r = rx.clone();
        let timed = sylvan::spawn(move || r.recv_timeout(ms(10)));
        let other = receiver(&rx);
        sylvan::yield_now();
        tx.send(5).unwrap();
        std::thread::sleep(ms(30)); // time is the behaviour: the deadline passes
        assert_eq!(timed.join().unwrap(), Ok(5));
        assert!(!other.is_dead());
        assert_eq!(
            rx.recv_timeout(Duration::ZERO),
            Err(RecvTimeoutError::Timeout)
        );
        tx.send(6).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::ZERO),
            Ok(6),
            "a zero timeout takes a queued value"
        );
        other.kill();
    });
}

/// Several OS threads, each with its hub and a receiver shared by
/// greenlets through an `Rc` (mixing `recv`, `recv_timeout` and
/// `try_recv`, main stealing with `try_recv` too), fed by sender threads:
/// every value arrives exactly once and everyone sees the end.
#[test]
fn m08_many_hubs_many_receivers_many_senders_lose_and_duplicate_nothing() {
    const HUBS: u32 = 3;
    const SENDERS: u32 = 2;
    const PER: u32 = 400;
    let hubs: Vec<_> = (0..HUBS)
        .map(|h| {
            std::thread::spawn(move || {
                bounded(|| {
                    let (tx, rx) = sylvan::mpsc::channel::<u32>();
                    let senders: Vec<_> = (0..SENDERS)
                        .map(|s| {
                            let tx = tx.clone();
                            std::thread::spawn(move || {
                                for i in 0..PER {
                                    tx.send((h * SENDERS + s) * PER + i).unwrap();
                                    if i % 50 == 0 {
                                        std::thread::yield_now();
                                    }
                                }
                            })
                        })
                        .collect();
                    drop(tx);
                    let rx = Rc::new(rx);
                    let got = Rc::new(RefCell::new(Vec::new()));
                    let workers: Vec<_> = (0..4u32)
                        .map(|w| {
                            let (rx, got) = (rx.clone(), got.clone());
                            sylvan::spawn(move || {
                                loop {
                                    let v = match w % 3 {
                                        0 => rx.recv().ok(),
                                        1 => match rx.recv_timeout(ms(1)) {
                                            Ok(v) => Some(v),
                                            Err(RecvTimeoutError::Timeout) => continue,
                                            Err(RecvTimeoutError::Disconnected) => None,
                                        },
                                        _ => match rx.try_recv() {
                                            Ok(v) => Some(v),
                                            Err(TryRecvError::Empty) => {
                                                sylvan::yield_now();
                                                continue;
                                            }
                                            Err(TryRecvError::Disconnected) => None,
                                        },
                                    };
                                    match v {
                                        Some(v) => got.borrow_mut().push(v),
                                        None => break,
                                    }
                                }
                            })
                        })
                        .collect();
                    for _ in 0..200 {
                        if let Ok(v) = rx.try_recv() {
                            got.borrow_mut().push(v);
                        }
                        sylvan::yield_now();
                    }
                    for w in workers {
                        w.join().unwrap();
                    }
                    for s in senders {
                        s.join().unwrap();
                    }
                    let mut got = got.take();
                    got.sort_unstable();
                    let base = h * SENDERS * PER;
                    assert_eq!(got, (base..base + SENDERS * PER).collect::<Vec<_>>());
                })
            })
        })
        .collect();
    for h in hubs {
        h.join().expect("a hub thread failed");
    }
}

// ---------------------------------------------------------------- iwait / wait

/// An `Event` that counts its live registrations.
#[derive(Default)]
struct Counted {
    ev: Event,
    live: Cell<i32>,
    watches: Cell<u32>,
}

impl Waitable for Counted {
    fn is_ready(&self) -> bool {
        self.ev.is_ready()
    }
    fn watch(&self, w: Waiter) -> usize {
        self.live.set(self.live.get() + 1);
        self.watches.set(self.watches.get() + 1);
        self.ev.watch(w)
    }
    fn unwatch(&self, w: Waiter, token: usize) {
        self.live.set(self.live.get() - 1);
        self.ev.unwatch(w, token)
    }
    fn fired(&self, w: Waiter, token: usize) -> bool {
        self.ev.fired(w, token)
    }
}

/// A zero timeout: the ready objects are reported (in index order), then
/// the iteration is over for good and registers nothing.
#[test]
fn i01_a_zero_timeout_reports_what_is_ready_and_ends() {
    bounded(|| {
        let (a, b, c) = (Counted::default(), Counted::default(), Counted::default());
        c.ev.set();
        a.ev.set();
        let objs: [&dyn Waitable; 3] = [&a, &b, &c];
        let mut it = sylvan::iwait(&objs, Some(Duration::ZERO));
        assert_eq!(it.next(), Some(0));
        assert_eq!(it.next(), Some(2));
        assert_eq!(it.next(), None);
        b.ev.set();
        assert_eq!(it.next(), None, "over for good");
        assert_eq!(it.size_hint(), (0, Some(0)));
        assert_eq!(b.watches.get(), 0, "nothing was registered");
        drop(it);
        let (d, e) = (Counted::default(), Counted::default());
        let objs: [&dyn Waitable; 2] = [&d, &e];
        assert_eq!(
            sylvan::wait(&objs, Some(Duration::ZERO), None),
            Vec::<usize>::new()
        );
        e.ev.set();
        assert_eq!(sylvan::wait(&objs, Some(Duration::ZERO), None), [1]);
        assert_eq!(
            sylvan::wait(&objs, Some(Duration::ZERO), Some(0)),
            Vec::<usize>::new()
        );
        assert_eq!(d.watches.get() + e.watches.get(), 0);
    });
}

/// The deadline passes while the loop body runs and an object becomes
/// ready meanwhile: the next call reports it (it found something ready);
/// the one after ends the iteration and frees every registration; an
/// object ready later is not reported.
#[test]
fn i02_after_the_deadline_a_notified_object_is_reported_then_the_end() {
    bounded(|| {
        let own: Rc<Vec<Counted>> = Rc::new((0..3).map(|_| Counted::default()).collect());
        let o = own.clone();
        let setter = sylvan::spawn(move || {
            o[0].ev.set();
            sylvan::sleep(ms(5));
            o[1].ev.set();
        });
        let objs: Vec<&dyn Waitable> = own.iter().map(|c| c as &dyn Waitable).collect();
        let mut it = sylvan::iwait(&objs, Some(ms(20)));
        assert_eq!(it.next(), Some(0), "parked, then woken");
        assert_eq!(own[2].live.get(), 1, "registered while parked");
        sylvan::sleep(ms(40)); // the body outlasts the deadline; 1 is set meanwhile
        assert!(setter.is_dead());
        assert_eq!(it.next(), Some(1), "found ready");
        assert_eq!(it.next(), None);
        assert_eq!(own.iter().map(|c| c.live.get()).sum::<i32>(), 0);
        own[2].ev.set();
        assert_eq!(it.next(), None);
        drop(it);

        // Scan path: the deadline passed before anything registered.
        let more: Vec<Counted> = (0..2).map(|_| Counted::default()).collect();
        let objs: Vec<&dyn Waitable> = more.iter().map(|c| c as &dyn Waitable).collect();
        let mut it = sylvan::iwait(&objs, Some(ms(5)));
        more[1].ev.set();
        assert_eq!(it.next(), Some(1));
        sylvan::sleep(ms(10));
        assert_eq!(it.next(), None);
        more[0].ev.set();
        assert_eq!(it.next(), None);
        assert_eq!(more[0].watches.get(), 0);
    });
}

/// The same object twice (and a greenlet twice): both indices are
/// reported, from the scan and from registrations.
#[test]
fn i03_duplicates_are_each_reported() {
    bounded(|| {
        let ev = Counted::default();
        ev.ev.set();
        let g = sylvan::spawn(|| ());
        yield_until("g dead", || g.is_dead());
        let objs: [&dyn Waitable; 4] = [&ev, &g, &ev, &g];
        let got: Vec<usize> = sylvan::iwait(&objs, None).collect();
        assert_eq!(got, [0, 1, 2, 3]);

        let late = Rc::new(Counted::default());
        let l = late.clone();
        let g = sylvan::spawn(move || {
            sylvan::sleep(ms(2));
            l.ev.set();
        });
        let objs: [&dyn Waitable; 4] = [&*late, &g, &*late, &g];
        let got: Vec<usize> = sylvan::iwait(&objs, Some(Duration::from_secs(2))).collect();
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2, 3], "{got:?}");
        assert_eq!(late.live.get(), 0);
        assert_eq!(sylvan::wait(&objs, None, None), [0, 1, 2, 3]);
    });
}

/// Dropping the iterator midway (between items, and while another
/// greenlet is what would have made the rest ready) leaves no
/// registration; a semaphore's count of watchers says so too.
#[test]
fn i04_dropping_the_iterator_midway_leaves_no_registration() {
    bounded(|| {
        let a = Counted::default();
        let b = Counted::default();
        let sem = Semaphore::new(0);
        let objs: [&dyn Waitable; 3] = [&a, &b, &sem];
        let mut it = sylvan::iwait(&objs, None);
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let g = sylvan::spawn(move || e.set());
        // Registers on all three, parks; nothing but `g` runs and it sets
        // an unrelated event: use a with_timeout to come back.
        assert!(sylvan::with_timeout(ms(5), || it.next()).is_err());
        g.join().unwrap();
        assert_eq!(
            (a.live.get(), b.live.get(), sem.watchers()),
            (1, 1, 1),
            "kept until dropped"
        );
        drop(it);
        assert_eq!((a.live.get(), b.live.get(), sem.watchers()), (0, 0, 0));
        let mut it = sylvan::iwait(&objs, None);
        a.ev.set();
        assert_eq!(it.next(), Some(0));
        let waiter = sylvan::spawn(|| ());
        waiter.join().unwrap();
        b.ev.set();
        assert_eq!(it.next(), Some(1));
        assert_eq!(sem.watchers(), 0, "not registered yet (the scan found b)");
        // Now register on the semaphore and drop while registered.
        let parked = sylvan::with_timeout(ms(5), || it.next());
        assert!(parked.is_err());
        drop(it);
        assert_eq!(sem.watchers(), 0);
        assert_eq!((a.live.get(), b.live.get()), (0, 0));
    });
}

/// A greenlet killed while parked in `next`, and one killed in its loop
/// body between items: the registrations go with their iterators.
#[test]
fn i05_a_kill_while_iterating_leaves_no_registration() {
    bounded(|| {
        let objs_own: Rc<Vec<Counted>> = Rc::new((0..4).map(|_| Counted::default()).collect());
        let sem = Rc::new(Semaphore::new(0));
        let started = Rc::new(Cell::new(0u32));
        let spawn_iter = |yield_between: bool| {
            let (o, s, st) = (objs_own.clone(), sem.clone(), started.clone());
            sylvan::spawn(move || {
                let mut objs: Vec<&dyn Waitable> = o.iter().map(|c| c as &dyn Waitable).collect();
                objs.push(&*s);
                let mut seen = Vec::new();
                for i in sylvan::iwait(&objs, None) {
                    seen.push(i);
                    st.set(st.get() + 1);
                    if yield_between {
                        sylvan::sleep(Duration::from_secs(60)); // killed here
                    }
                }
                seen
            })
        };
        let parked = spawn_iter(false);
        let between = spawn_iter(true);
        sylvan::yield_now();
        objs_own[0].ev.set();
        yield_until("both saw object 0", || started.get() == 2);
        assert_eq!(sem.watchers(), 2);
        parked.kill();
        between.kill();
        assert_eq!(sem.watchers(), 0);
        assert_eq!(objs_own.iter().map(|c| c.live.get()).sum::<i32>(), 0);
    });
}

/// One object in two concurrent iwaits (two greenlets), one with a short
/// timeout: the short one ends and lets go of its registration; the other
/// still gets the object; a semaphore release is seen by both.
#[test]
fn i06_one_object_in_two_concurrent_iwaits() {
    bounded(|| {
        let shared = Rc::new(Counted::default());
        let sem = Rc::new(Semaphore::new(0));
        let run = |timeout: Option<Duration>| {
            let (sh, s) = (shared.clone(), sem.clone());
            sylvan::spawn(move || {
                let objs: [&dyn Waitable; 2] = [&*sh, &*s];
                sylvan::iwait(&objs, timeout).collect::<Vec<_>>()
            })
        };
        let short = run(Some(ms(10)));
        let long = run(Some(Duration::from_secs(3)));
        let long2 = run(None);
        sylvan::yield_now();
        assert_eq!(shared.live.get(), 3);
        assert_eq!(short.join().unwrap(), Vec::<usize>::new());
        assert_eq!(shared.live.get(), 2, "the timed-out one let go");
        assert_eq!(sem.watchers(), 2);
        sem.release();
        shared.ev.set();
        assert_eq!(long.join().unwrap(), [0, 1]);
        assert_eq!(long2.join().unwrap(), [0, 1]);
        assert_eq!((shared.live.get(), sem.watchers()), (0, 0));
        assert_eq!(sem.available(), 1, "waiting took no permit");
    });
}

/// A timeout too large for a deadline waits as no timeout does.
#[test]
fn i07_a_huge_timeout_is_no_timeout() {
    bounded(|| {
        let g = sylvan::spawn(|| sylvan::sleep(ms(2)));
        let objs: [&dyn Waitable; 1] = [&g];
        assert_eq!(sylvan::wait(&objs, Some(Duration::MAX), None), [0]);
        let objs2: [&dyn Waitable; 1] = [&g];
        assert_eq!(
            sylvan::iwait(&objs2, Some(Duration::MAX)).collect::<Vec<_>>(),
            [0]
        );
    });
}

/// A `Counted` whose first `watch` panics.
#[derive(Default)]
struct PanicsOnce {
    inner: Counted,
    panicked: Cell<bool>,
}

impl Waitable for PanicsOnce {
    fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }
    fn watch(&self, w: Waiter) -> usize {
        if !self.panicked.replace(true) {
            panic!("PanicsOnce::watch");
        }
        self.inner.watch(w)
    }
    fn unwatch(&self, w: Waiter, token: usize) {
        self.inner.unwatch(w, token)
    }
    fn fired(&self, w: Waiter, token: usize) -> bool {
        self.inner.fired(w, token)
    }
}

/// A `watch` panics part-way; the caller catches it and goes on with the
/// same iterator: the object whose watch panicked (and those after it)
/// must still be reported when they become ready, and nothing leaks.
#[test]
fn i08_an_iterator_used_again_after_a_watch_panicked_still_sees_every_object() {
    bounded(|| {
        let a = Counted::default();
        let flaky = Rc::new(PanicsOnce::default());
        let c = Rc::new(Counted::default());
        let objs: [&dyn Waitable; 3] = [&a, &*flaky, &*c];
        // The timeout only ends the test should the objects never be
        // reported; the panic's backtrace, when `RUST_BACKTRACE` asks, may
        // take a good part of a second to resolve (it runs on the hub).
        let mut it = sylvan::iwait(&objs, Some(ms(3000)));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| it.next()));
        assert!(caught.is_err(), "the watch panicked");
        let (f, c2) = (flaky.clone(), c.clone());
        let setter = sylvan::spawn(move || {
            f.inner.ev.set();
            c2.ev.set();
        });
        // The two set; `a` never is, so the iterator would go on until its
        // timeout.
        let rest: Vec<usize> = it.by_ref().take(2).collect();
        setter.join().unwrap();
        drop(it);
        assert_eq!(rest, [1, 2]);
        assert_eq!(a.live.get() + flaky.inner.live.get() + c.live.get(), 0);
    });
}

// ---------------------------------------------------------------- the blocking detector's names

fn detector() -> (
    std::sync::Arc<std::sync::Mutex<Vec<sylvan::BlockingReport>>>,
    sylvan::BlockingDetector,
) {
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let r = reports.clone();
    let d = sylvan::BlockingDetector::with_callback(ms(100), move |rep| {
        r.lock().unwrap().push(rep.clone())
    });
    (reports, d)
}

/// Blocks the hub for 250 ms from a new greenlet (named or not); returns
/// its id.
fn stall(name: Option<&str>) -> sylvan::GreenletId {
    let body = || std::thread::sleep(ms(250));
    let g = match name {
        Some(n) => sylvan::Builder::new().name(n).spawn(body).unwrap(),
        None => sylvan::spawn(body),
    };
    let id = g.id();
    g.join().unwrap();
    sylvan::sleep(ms(30)); // the hub switches: the stall is over
    id
}

/// Time is the behaviour: each stall is reported once, naming its
/// greenlet: named, unnamed, a name reused after its first holder was
/// killed, a long and an odd name.
#[test]
fn b01_each_stall_names_its_own_greenlet() {
    let (reports, d) = detector();
    let named = stall(Some("alpha"));
    let unnamed = stall(None);
    let victim = sylvan::Builder::new()
        .name("beta")
        .spawn(|| sylvan::sleep(Duration::from_secs(60)))
        .unwrap();
    sylvan::yield_now();
    victim.kill();
    let reused = stall(Some("beta"));
    let long = "é".repeat(100);
    let odd = stall(Some(&long));
    drop(d);
    let reports = reports.lock().unwrap();
    let got: Vec<_> = reports
        .iter()
        .map(|r| (r.greenlet, r.name.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (named, Some("alpha".to_owned())),
            (unnamed, None),
            (reused, Some("beta".to_owned())),
            (odd, Some(long.clone())),
        ]
    );
    let text = reports[3].to_string();
    assert!(text.contains(&format!("{}~'", "é".repeat(63))), "{text}");
}

fn rss_kib() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf only reads a constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    pages * page / 1024
}

/// Many named greenlets, each with a 4 KiB name, that finish, are
/// detached, are killed before they start or never start (`spawn_later`
/// killed): memory stays flat, so their names are forgotten when they are
/// reaped. Measured in a child process (other tests' allocations stay out).
#[test]
fn b02_names_of_reaped_greenlets_are_forgotten() {
    crate::util::in_child(
        "probes50::b02_names_of_reaped_greenlets_are_forgotten",
        "p50-b02",
        || {
            let _d = detector(); // the names are published for it
            let round = |r: usize| {
                for batch in 0..50 {
                    let mut gs = Vec::new();
                    for i in 0..100 {
                        let name = format!("{r}-{batch}-{i}-{}", "n".repeat(4096));
                        let b = sylvan::Builder::new().name(name);
                        match i % 4 {
                            0 => gs.push(b.spawn(|| ()).unwrap()),
                            1 => drop(b.spawn(|| ()).unwrap()),
                            2 => b.spawn(|| ()).unwrap().kill(),
                            _ => b
                                .spawn_later(Duration::from_secs(60), || ())
                                .unwrap()
                                .kill(),
                        }
                    }
                    for g in gs {
                        g.join().unwrap();
                    }
                    sylvan::yield_now();
                }
            };
            round(0);
            let before = rss_kib();
            for r in 1..5 {
                round(r);
            }
            let grown = rss_kib().saturating_sub(before);
            // 20 000 names of 4 KiB kept would be 80 MiB.
            assert!(
                grown < 16 * 1024,
                "RSS grew {grown} KiB over 20 000 named greenlets"
            );
        },
    );
}
