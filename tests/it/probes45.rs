//! Probe round 45: sylvan's sockets held to `std`'s blocking sockets (same
//! return values, same `io::ErrorKind`s) and, where a green thread differs
//! from an OS thread, to gevent.
//!
//! * Differential matrices (`m..`): the same operation on a `std` socket
//!   (on a plain thread, with 10 ms timeouts so it cannot block for long)
//!   and on a sylvan socket, in every state a connection can be in (idle,
//!   data queued, peer half-closed, closed, reset, closed with our data
//!   unread, own shutdowns), for TCP, Unix streams and UDP. Each state is
//!   reached by waiting for its event with `poll(2)` on the descriptor, not
//!   by sleeping. The one deliberate difference is normalised: a timeout is
//!   `WouldBlock` in `std` on Linux and `TimedOut` in sylvan (documented in
//!   `hub/src/net/mod.rs`, "Timeouts").
//! * Single behaviours (`t..`): half-close, end of stream, timeouts and
//!   their options, non-blocking mode (never parks; a greenlet already
//!   parked keeps waiting, as a thread blocked in `recv` does), clones used
//!   from several greenlets, address lists, many pending connections,
//!   `incoming()`, UDP, kills and timeouts while parked, `io::copy`,
//!   `BufReader`, big writes, `std` conversions, Unix sockets, names.
//!
//! Tests marked `#[ignore = "BUG: ..."]` show a deviation from `std` and
//! fail without their `ignore`.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};

use crate::net::unix_path;
use crate::net_peers::{pair as tcp_pair, set_linger_zero};
use crate::util::{bounded, yield_until};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn kind<T: std::fmt::Debug>(r: io::Result<T>) -> io::ErrorKind {
    match r {
        Err(e) => e.kind(),
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
    }
}

/// Waits with `poll(2)` (up to 2 s) until `fd` reports one of `events`;
/// returns the events seen. How the matrices reach a state: by its event.
fn wait_for(fd: i32, events: i16) -> i16 {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        // SAFETY: one valid pollfd on an open descriptor.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis() as i32) };
        if n == 1 && p.revents & events != 0 {
            return p.revents;
        }
        assert!(!left.is_zero(), "fd {fd} never reported {events:#x}");
    }
}

/// Bytes queued for reading on `fd` (`FIONREAD`).
fn unread(fd: i32) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    assert_eq!(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) }, 0);
    n
}

const IN: i16 = libc::POLLIN;
const RDHUP: i16 = libc::POLLRDHUP;
const ERR_HUP: i16 = libc::POLLERR | libc::POLLHUP;

// ---------------------------------------------------------------------------
// Differential matrices
// ---------------------------------------------------------------------------

/// The per-operation timeout of the matrices.
const T: Duration = Duration::from_millis(10);

/// One result, as text: a timeout reads the same for both (`WouldBlock`
/// from `std`, `TimedOut` from sylvan); every other kind as it is.
fn show<V: std::fmt::Debug>(is_std: bool, r: io::Result<V>) -> String {
    match r {
        Ok(v) => format!("Ok({v:?})"),
        Err(e) if is_std && e.kind() == io::ErrorKind::WouldBlock => "timeout".into(),
        Err(e) if !is_std && e.kind() == io::ErrorKind::TimedOut => "timeout".into(),
        Err(e) => format!("Err({:?})", e.kind()),
    }
}

/// What the matrices need of a stream, `std`'s or sylvan's.
trait Probe: Read + Write + AsRawFd + Sized {
    const STD: bool;
    const TCP: bool;
    fn pair() -> (Self, Self);
    /// `None` where the type has no stable `peek` (std's `UnixStream`).
    fn peek_(&self, b: &mut [u8]) -> Option<io::Result<usize>>;
    fn take_error_(&self) -> io::Result<Option<io::Error>>;
    fn peer_(&self) -> io::Result<()>;
    fn shutdown_(&self, how: Shutdown) -> io::Result<()>;
    fn timeouts_(&self, d: Duration);
}

macro_rules! probe_common {
    () => {
        fn take_error_(&self) -> io::Result<Option<io::Error>> {
            self.take_error()
        }
        fn peer_(&self) -> io::Result<()> {
            self.peer_addr().map(drop)
        }
        fn shutdown_(&self, how: Shutdown) -> io::Result<()> {
            self.shutdown(how)
        }
        fn timeouts_(&self, d: Duration) {
            self.set_read_timeout(Some(d)).unwrap();
            self.set_write_timeout(Some(d)).unwrap();
        }
    };
}

impl Probe for std::net::TcpStream {
    const STD: bool = true;
    const TCP: bool = true;
    fn pair() -> (Self, Self) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }
    fn peek_(&self, b: &mut [u8]) -> Option<io::Result<usize>> {
        Some(self.peek(b))
    }
    probe_common!();
}

impl Probe for TcpStream {
    const STD: bool = false;
    const TCP: bool = true;
    fn pair() -> (Self, Self) {
        tcp_pair()
    }
    fn peek_(&self, b: &mut [u8]) -> Option<io::Result<usize>> {
        Some(self.peek(b))
    }
    probe_common!();
}

impl Probe for std::os::unix::net::UnixStream {
    const STD: bool = true;
    const TCP: bool = false;
    fn pair() -> (Self, Self) {
        std::os::unix::net::UnixStream::pair().unwrap()
    }
    fn peek_(&self, _: &mut [u8]) -> Option<io::Result<usize>> {
        None
    }
    probe_common!();
}

impl Probe for UnixStream {
    const STD: bool = false;
    const TCP: bool = false;
    fn pair() -> (Self, Self) {
        UnixStream::pair().unwrap()
    }
    fn peek_(&self, _: &mut [u8]) -> Option<io::Result<usize>> {
        None
    }
    probe_common!();
}

/// The state the socket under test is put in before the operation.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scn {
    Idle,
    Data,
    PeerShutWr,
    DataThenPeerShutWr,
    PeerClosed,
    DataThenPeerClosed,
    /// TCP only: the peer closes with `SO_LINGER` 0.
    PeerReset,
    /// The peer closes with bytes we sent still unread (TCP: a reset; Unix:
    /// `ECONNRESET` too).
    PeerClosedUnread,
    OwnShutRd,
    DataThenOwnShutRd,
    OwnShutWr,
    OwnShutBoth,
}

const SCNS: [Scn; 12] = [
    Scn::Idle,
    Scn::Data,
    Scn::PeerShutWr,
    Scn::DataThenPeerShutWr,
    Scn::PeerClosed,
    Scn::DataThenPeerClosed,
    Scn::PeerReset,
    Scn::PeerClosedUnread,
    Scn::OwnShutRd,
    Scn::DataThenOwnShutRd,
    Scn::OwnShutWr,
    Scn::OwnShutBoth,
];

#[derive(Clone, Copy, Debug)]
enum Op {
    Read,
    ReadZero,
    ReadTwice,
    ReadExact,
    ReadToEnd,
    Peek,
    PeekThenRead,
    Write,
    WriteZero,
    WriteTwice,
    WriteAllBig,
    TakeError,
    PeerAddr,
    ShutWr,
    ShutRd,
    ShutBoth,
}

const READ_OPS: [Op; 7] = [
    Op::Read,
    Op::ReadZero,
    Op::ReadTwice,
    Op::ReadExact,
    Op::ReadToEnd,
    Op::Peek,
    Op::PeekThenRead,
];

const OTHER_OPS: [Op; 9] = [
    Op::Write,
    Op::WriteZero,
    Op::WriteTwice,
    Op::WriteAllBig,
    Op::TakeError,
    Op::PeerAddr,
    Op::ShutWr,
    Op::ShutRd,
    Op::ShutBoth,
];

/// Puts `a` in state `scn` (its peer `b` is dropped or kept), waiting for
/// the event that says the state is reached.
fn setup<S: Probe>(scn: Scn, a: &mut S, mut b: S) -> Option<S> {
    let fa = a.as_raw_fd();
    match scn {
        Scn::Idle => {}
        Scn::Data => {
            b.write_all(b"hello").unwrap();
            wait_for(fa, IN);
        }
        Scn::PeerShutWr | Scn::DataThenPeerShutWr => {
            if scn == Scn::DataThenPeerShutWr {
                b.write_all(b"hello").unwrap();
            }
            b.shutdown_(Shutdown::Write).unwrap();
            wait_for(fa, RDHUP);
        }
        Scn::PeerClosed | Scn::DataThenPeerClosed => {
            if scn == Scn::DataThenPeerClosed {
                b.write_all(b"hello").unwrap();
            }
            drop(b);
            wait_for(fa, RDHUP | ERR_HUP);
            return None;
        }
        Scn::PeerReset => {
            set_linger_zero(b.as_raw_fd());
            drop(b);
            wait_for(fa, ERR_HUP);
            return None;
        }
        Scn::PeerClosedUnread => {
            a.write_all(b"zz").unwrap();
            wait_for(b.as_raw_fd(), IN);
            drop(b);
            wait_for(fa, RDHUP | ERR_HUP);
            return None;
        }
        Scn::OwnShutRd => a.shutdown_(Shutdown::Read).unwrap(),
        Scn::DataThenOwnShutRd => {
            b.write_all(b"hello").unwrap();
            wait_for(fa, IN);
            a.shutdown_(Shutdown::Read).unwrap();
        }
        Scn::OwnShutWr => a.shutdown_(Shutdown::Write).unwrap(),
        Scn::OwnShutBoth => a.shutdown_(Shutdown::Both).unwrap(),
    }
    Some(b)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One 16-byte read, shown.
fn read1<S: Probe>(a: &mut S) -> String {
    let mut buf = [0u8; 16];
    show(S::STD, a.read(&mut buf).map(|n| text(&buf[..n])))
}

fn run_op<S: Probe>(scn: Scn, op: Op, a: &mut S) -> String {
    let std = S::STD;
    let mut buf = [0u8; 16];
    let read = read1::<S>;
    match op {
        Op::Read => read(a),
        // Nothing readable: a zero-length TCP read is d02's business.
        Op::ReadZero if S::TCP && matches!(scn, Scn::Idle | Scn::OwnShutWr) => "see d02".into(),
        Op::ReadZero => show(std, a.read(&mut [])),
        Op::ReadTwice => {
            let first = read(a);
            format!("{first} {}", read(a))
        }
        Op::ReadExact => {
            let mut b = [0u8; 5];
            show(std, a.read_exact(&mut b).map(|()| text(&b)))
        }
        Op::ReadToEnd => {
            let mut v = Vec::new();
            let r = a.read_to_end(&mut v);
            format!("{} got {:?}", show(std, r), text(&v))
        }
        Op::Peek => match a.peek_(&mut buf) {
            None => "n/a".into(),
            Some(r) => show(std, r.map(|n| text(&buf[..n]))),
        },
        Op::PeekThenRead => match a.peek_(&mut buf[..2]) {
            None => "n/a".into(),
            Some(r) => {
                let p = show(std, r.map(|n| text(&buf[..n])));
                format!("{p} {}", read(a))
            }
        },
        Op::Write => show(std, a.write(b"x")),
        Op::WriteZero => show(std, a.write(&[])),
        Op::WriteTwice => {
            let first = a.write(b"x");
            if first.is_ok() && scn == Scn::PeerClosed {
                // The closed peer answers with a reset: wait for it.
                wait_for(a.as_raw_fd(), ERR_HUP);
            }
            let first = show(std, first);
            format!("{first} {}", show(std, a.write(b"x")))
        }
        Op::WriteAllBig => {
            // Bigger than any loopback send buffer: ends in an error or a
            // timeout unless the state makes it fail at once.
            let big = vec![7u8; 16 << 20];
            show(std, a.write_all(&big))
        }
        Op::TakeError => show(std, a.take_error_().map(|e| e.map(|e| e.kind()))),
        Op::PeerAddr => show(std, a.peer_()),
        Op::ShutWr => show(std, a.shutdown_(Shutdown::Write)),
        Op::ShutRd => show(std, a.shutdown_(Shutdown::Read)),
        Op::ShutBoth => show(std, a.shutdown_(Shutdown::Both)),
    }
}

/// Every (state, operation) result for the socket type `S`, one line each.
fn matrix<S: Probe>(ops: &[Op]) -> Vec<String> {
    let mut out = Vec::new();
    for &scn in &SCNS {
        if scn == Scn::PeerReset && !S::TCP {
            continue;
        }
        for &op in ops {
            let (mut a, b) = S::pair();
            a.timeouts_(T);
            let _peer = setup(scn, &mut a, b);
            let r = run_op(scn, op, &mut a);
            out.push(format!("{scn:?}/{op:?}: {r}"));
        }
    }
    out
}

/// Runs the `std` matrix on a plain thread while the sylvan one runs here,
/// and compares them line by line.
fn compare<Std: Probe + 'static, Syl: Probe>(ops: &'static [Op]) {
    let th = std::thread::spawn(move || matrix::<Std>(ops));
    let syl = matrix::<Syl>(ops);
    let std_m = th.join().unwrap();
    assert_eq!(std_m.len(), syl.len());
    let diffs: Vec<String> = std_m
        .iter()
        .zip(&syl)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("std    {a}\nsylvan {b}"))
        .collect();
    assert!(diffs.is_empty(), "differs from std:\n{}", diffs.join("\n"));
}

/// m01: reads, peeks and read helpers on a TCP stream in every state
/// return what `std`'s do.
#[test]
fn m01_tcp_reads_in_every_state_match_std() {
    bounded(|| compare::<std::net::TcpStream, TcpStream>(&READ_OPS));
}

/// m02: writes, `take_error`, `peer_addr` and shutdowns on a TCP stream in
/// every state return what `std`'s do (a write to a reset peer is an
/// error, never a SIGPIPE that kills the process).
#[test]
fn m02_tcp_writes_options_and_shutdowns_in_every_state_match_std() {
    bounded(|| compare::<std::net::TcpStream, TcpStream>(&OTHER_OPS));
}

/// m03: the same two matrices for Unix streams.
#[test]
fn m03_unix_stream_ops_in_every_state_match_std() {
    bounded(|| {
        compare::<std::os::unix::net::UnixStream, UnixStream>(&READ_OPS);
        compare::<std::os::unix::net::UnixStream, UnixStream>(&OTHER_OPS);
    });
}

/// What the UDP matrix needs of a socket, `std`'s or sylvan's.
trait Udp: Sized {
    const STD: bool;
    fn bind() -> Self;
    fn fd(&self) -> i32;
    fn addr(&self) -> SocketAddr;
    fn connect_(&self, a: SocketAddr) -> io::Result<()>;
    fn send_(&self, b: &[u8]) -> io::Result<usize>;
    fn send_to_(&self, b: &[u8], a: SocketAddr) -> io::Result<usize>;
    fn recv_(&self, b: &mut [u8]) -> io::Result<usize>;
    fn recv_from_(&self, b: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    fn peek_(&self, b: &mut [u8]) -> io::Result<usize>;
    fn peek_from_(&self, b: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    fn take_error_(&self) -> io::Result<Option<io::Error>>;
    fn peer_(&self) -> io::Result<SocketAddr>;
    fn timeouts_(&self, d: Duration);
}

macro_rules! udp_impl {
    ($ty:ty, $std:expr, $bind:expr) => {
        impl Udp for $ty {
            const STD: bool = $std;
            fn bind() -> Self {
                $bind
            }
            fn fd(&self) -> i32 {
                self.as_raw_fd()
            }
            fn addr(&self) -> SocketAddr {
                self.local_addr().unwrap()
            }
            fn connect_(&self, a: SocketAddr) -> io::Result<()> {
                self.connect(a)
            }
            fn send_(&self, b: &[u8]) -> io::Result<usize> {
                self.send(b)
            }
            fn send_to_(&self, b: &[u8], a: SocketAddr) -> io::Result<usize> {
                self.send_to(b, a)
            }
            fn recv_(&self, b: &mut [u8]) -> io::Result<usize> {
                self.recv(b)
            }
            fn recv_from_(&self, b: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
                self.recv_from(b)
            }
            fn peek_(&self, b: &mut [u8]) -> io::Result<usize> {
                self.peek(b)
            }
            fn peek_from_(&self, b: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
                self.peek_from(b)
            }
            fn take_error_(&self) -> io::Result<Option<io::Error>> {
                self.take_error()
            }
            fn peer_(&self) -> io::Result<SocketAddr> {
                self.peer_addr()
            }
            fn timeouts_(&self, d: Duration) {
                self.set_read_timeout(Some(d)).unwrap();
                self.set_write_timeout(Some(d)).unwrap();
            }
        }
    };
}

udp_impl!(
    std::net::UdpSocket,
    true,
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap()
);
udp_impl!(UdpSocket, false, UdpSocket::bind("127.0.0.1:0").unwrap());

#[derive(Clone, Copy, Debug, PartialEq)]
enum UScn {
    Idle,
    /// A datagram longer than the 8-byte buffers.
    Long,
    Empty,
    Two,
    /// Connected to `b`; `c` and then `b` sent one each.
    Connected,
    /// Connected to a port nobody listens on, after one send.
    Refused,
}

#[derive(Clone, Copy, Debug)]
enum UOp {
    Recv,
    RecvZero,
    RecvTwice,
    RecvFrom,
    Peek,
    PeekFrom,
    PeekThenRecv,
    Send,
    SendTo,
    TakeError,
    PeerAddr,
}

/// Every (state, operation) result of the UDP matrix for `U`.
fn udp_matrix<U: Udp>() -> Vec<String> {
    let std = U::STD;
    let mut out = Vec::new();
    let scns = [
        UScn::Idle,
        UScn::Long,
        UScn::Empty,
        UScn::Two,
        UScn::Connected,
        UScn::Refused,
    ];
    let ops = [
        UOp::Recv,
        UOp::RecvZero,
        UOp::RecvTwice,
        UOp::RecvFrom,
        UOp::Peek,
        UOp::PeekFrom,
        UOp::PeekThenRecv,
        UOp::Send,
        UOp::SendTo,
        UOp::TakeError,
        UOp::PeerAddr,
    ];
    for scn in scns {
        for op in ops {
            let (a, b, c) = (U::bind(), U::bind(), U::bind());
            a.timeouts_(T);
            let dead = U::bind();
            let dead_addr = dead.addr();
            drop(dead);
            let name = |from: SocketAddr| {
                if from == dead_addr {
                    "dead".to_string()
                } else if from == b.addr() {
                    "b".to_string()
                } else if from == c.addr() {
                    "c".to_string()
                } else {
                    from.to_string()
                }
            };
            match scn {
                UScn::Idle => {}
                UScn::Long => {
                    b.send_to_(b"0123456789abcdef", a.addr()).unwrap();
                    wait_for(a.fd(), IN);
                }
                UScn::Empty => {
                    b.send_to_(b"", a.addr()).unwrap();
                    wait_for(a.fd(), IN);
                }
                UScn::Two => {
                    b.send_to_(b"one", a.addr()).unwrap();
                    b.send_to_(b"two", a.addr()).unwrap();
                    wait_for(a.fd(), IN);
                }
                UScn::Connected => {
                    a.connect_(b.addr()).unwrap();
                    c.send_to_(b"from c", a.addr()).unwrap();
                    b.send_to_(b"from b", a.addr()).unwrap();
                    wait_for(a.fd(), IN);
                }
                UScn::Refused => {
                    a.connect_(dead_addr).unwrap();
                    a.send_(b"x").unwrap();
                    wait_for(a.fd(), libc::POLLERR);
                }
            }
            let mut buf = [0u8; 8];
            let r = match op {
                UOp::Recv => show(std, a.recv_(&mut buf).map(|n| text(&buf[..n]))),
                UOp::RecvZero => show(std, a.recv_(&mut [])),
                UOp::RecvTwice => {
                    let first = show(std, a.recv_(&mut buf).map(|n| text(&buf[..n])));
                    let second = show(std, a.recv_(&mut buf).map(|n| text(&buf[..n])));
                    format!("{first} {second}")
                }
                UOp::RecvFrom => show(
                    std,
                    a.recv_from_(&mut buf)
                        .map(|(n, f)| (text(&buf[..n]), name(f))),
                ),
                UOp::Peek => show(std, a.peek_(&mut buf).map(|n| text(&buf[..n]))),
                UOp::PeekFrom => show(
                    std,
                    a.peek_from_(&mut buf)
                        .map(|(n, f)| (text(&buf[..n]), name(f))),
                ),
                UOp::PeekThenRecv => {
                    let p = show(std, a.peek_(&mut buf[..2]).map(|n| text(&buf[..n])));
                    let r = show(std, a.recv_(&mut buf).map(|n| text(&buf[..n])));
                    format!("{p} {r}")
                }
                UOp::Send => show(std, a.send_(b"x")),
                UOp::SendTo => show(std, a.send_to_(b"x", b.addr())),
                UOp::TakeError => show(std, a.take_error_().map(|e| e.map(|e| e.kind()))),
                UOp::PeerAddr => show(std, a.peer_().map(name)),
            };
            out.push(format!("{scn:?}/{op:?}: {r}"));
        }
    }
    out
}

/// m04: UDP receives, peeks (truncating, not consuming), sends, connected
/// filtering, a refused port's pending error and `peer_addr`, in every
/// state, as `std`.
#[test]
fn m04_udp_ops_in_every_state_match_std() {
    bounded(|| {
        let th = std::thread::spawn(udp_matrix::<std::net::UdpSocket>);
        let syl = udp_matrix::<UdpSocket>();
        let std_m = th.join().unwrap();
        let diffs: Vec<String> = std_m
            .iter()
            .zip(&syl)
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("std    {a}\nsylvan {b}"))
            .collect();
        assert!(diffs.is_empty(), "differs from std:\n{}", diffs.join("\n"));
    });
}

// ---------------------------------------------------------------------------
// Single behaviours
// ---------------------------------------------------------------------------

/// t01: half-close: after `shutdown(Write)` the peer reads everything then
/// 0, and can still write back, which the half-closed side reads whole.
#[test]
fn t01_half_close_then_reply_flows_back() {
    bounded(|| {
        let (mut c, s) = tcp_pair();
        let server = sylvan::spawn(move || {
            let mut s = s;
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            // end of stream stays end of stream
            for _ in 0..3 {
                assert_eq!(s.read(&mut [0u8; 8]).unwrap(), 0);
            }
            s.write_all(&got.iter().rev().copied().collect::<Vec<u8>>())
                .unwrap();
            got.len()
        });
        for chunk in [&b"abc"[..], b"def", b"ghi"] {
            c.write_all(chunk).unwrap();
            sylvan::yield_now();
        }
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = String::new();
        c.read_to_string(&mut back).unwrap();
        assert_eq!(back, "ihgfedcba");
        assert_eq!(server.join().unwrap(), 9);
        assert_eq!(kind(c.write(b"x")), io::ErrorKind::BrokenPipe);
    });
}

/// t02: after the peer closed, every read returns `Ok(0)` at once, with no
/// timeout set and nothing else to run (a park there would be "would block
/// forever" or a hang).
#[test]
fn t02_read_after_peer_close_is_zero_every_time_without_parking() {
    bounded(|| {
        let (c, s) = tcp_pair();
        drop(s);
        wait_for(c.as_raw_fd(), RDHUP);
        let other = sylvan::spawn(|| ());
        for _ in 0..5 {
            assert_eq!((&c).read(&mut [0u8; 64]).unwrap(), 0);
            assert_eq!(c.peek(&mut [0u8; 64]).unwrap(), 0);
        }
        assert!(!other.is_dead(), "a read at end of stream must not park");
        other.join().unwrap();
    });
}

/// t03: read/write timeout options round-trip on every socket type; zero is
/// `InvalidInput` and leaves the old value, as in `std`; clones share them
/// as `std`'s dup'd descriptors share `SO_RCVTIMEO`.
#[test]
fn t03_timeout_options_round_trip_and_zero_is_invalid_like_std() {
    bounded(|| {
        // std first: what the zero case does there.
        // (std reads back the kernel's value, rounded to jiffies: 50 ms may
        // come back as 52 ms; sylvan gives back what was set.)
        let sl = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sl.set_read_timeout(Some(ms(50))).unwrap();
        let before = sl.read_timeout().unwrap();
        let e = sl.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(sl.read_timeout().unwrap(), before);

        let (c, _s) = tcp_pair();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (x, _y) = UnixStream::pair().unwrap();
        macro_rules! check {
            ($s:expr) => {{
                let s = &$s;
                assert_eq!(s.read_timeout().unwrap(), None);
                assert_eq!(s.write_timeout().unwrap(), None);
                s.set_read_timeout(Some(ms(50))).unwrap();
                s.set_write_timeout(Some(ms(70))).unwrap();
                assert_eq!(s.read_timeout().unwrap(), Some(ms(50)));
                assert_eq!(s.write_timeout().unwrap(), Some(ms(70)));
                for r in [
                    s.set_read_timeout(Some(Duration::ZERO)),
                    s.set_write_timeout(Some(Duration::ZERO)),
                ] {
                    assert_eq!(kind(r), io::ErrorKind::InvalidInput);
                }
                assert_eq!(s.read_timeout().unwrap(), Some(ms(50)));
                assert_eq!(s.write_timeout().unwrap(), Some(ms(70)));
                let clone = s.try_clone().unwrap();
                assert_eq!(clone.read_timeout().unwrap(), Some(ms(50)));
                clone.set_read_timeout(None).unwrap();
                assert_eq!(s.read_timeout().unwrap(), None);
                s.set_write_timeout(None).unwrap();
                assert_eq!(clone.write_timeout().unwrap(), None);
            }};
        }
        check!(c);
        check!(u);
        check!(x);
        let e = TcpStream::connect_timeout(c.local_addr().unwrap(), Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    });
}

/// t04: a read timeout: std on Linux says `WouldBlock`, sylvan `TimedOut`
/// (documented); both after at least the timeout, and the bytes sent
/// afterwards are read whole.
#[test]
fn t04_read_timeout_kind_elapsed_and_data_after_it() {
    bounded(|| {
        let sl = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sc = std::net::TcpStream::connect(sl.local_addr().unwrap()).unwrap();
        sc.set_read_timeout(Some(ms(30))).unwrap();
        let t0 = Instant::now();
        assert_eq!(
            kind((&sc).read(&mut [0u8; 4])),
            io::ErrorKind::WouldBlock,
            "std on Linux"
        );
        assert!(t0.elapsed() >= ms(25));

        let (c, mut s) = tcp_pair();
        c.set_read_timeout(Some(ms(30))).unwrap();
        let t0 = Instant::now();
        assert_eq!(kind((&c).read(&mut [0u8; 4])), io::ErrorKind::TimedOut);
        assert!(t0.elapsed() >= ms(30), "{:?}", t0.elapsed());
        assert_eq!(kind(c.peek(&mut [0u8; 4])), io::ErrorKind::TimedOut);
        s.write_all(b"later").unwrap();
        let mut b = [0u8; 5];
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"later");
    });
}

/// t05: in non-blocking mode every call that would park returns
/// `WouldBlock` at once without switching: a ready greenlet does not get
/// to run meanwhile.
#[test]
fn t05_nonblocking_calls_return_would_block_without_switching() {
    bounded(|| {
        let (c, s) = tcp_pair();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (x, _y) = UnixStream::pair().unwrap();
        for r in [
            c.set_nonblocking(true),
            s.set_nonblocking(true),
            l.set_nonblocking(true),
            u.set_nonblocking(true),
            x.set_nonblocking(true),
        ] {
            r.unwrap();
        }
        // even a timeout does not make them park
        c.set_read_timeout(Some(ms(500))).unwrap();
        let ran = Rc::new(Cell::new(false));
        let r2 = ran.clone();
        let g = sylvan::spawn(move || r2.set(true));
        let mut b = [0u8; 8];
        assert_eq!(kind((&c).read(&mut b)), io::ErrorKind::WouldBlock);
        assert_eq!(kind(c.peek(&mut b)), io::ErrorKind::WouldBlock);
        assert_eq!(kind(l.accept()), io::ErrorKind::WouldBlock);
        assert_eq!(kind(u.recv_from(&mut b)), io::ErrorKind::WouldBlock);
        assert_eq!(kind(u.peek_from(&mut b)), io::ErrorKind::WouldBlock);
        assert_eq!(kind((&x).read(&mut b)), io::ErrorKind::WouldBlock);
        // fill the send buffer: some bytes, then WouldBlock, never a park
        let chunk = vec![1u8; 1 << 16];
        let mut total = 0usize;
        let err = loop {
            match (&c).write(&chunk) {
                Ok(n) => total += n,
                Err(e) => break e,
            }
            assert!(total < 1 << 30, "the send buffer never filled");
        };
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(total > 0);
        assert!(
            !ran.get(),
            "a non-blocking call switched to another greenlet"
        );
        g.join().unwrap();
        assert!(ran.get());
    });
}

/// t06: as a thread blocked in `recv` on a socket another thread makes
/// non-blocking: the greenlet already parked keeps waiting and gets the
/// data; a read that starts afterwards gets `WouldBlock`. The same for a
/// read timeout set while a reader is parked: it does not apply to it.
#[test]
fn t06_mode_and_timeout_changes_do_not_reach_a_parked_reader() {
    bounded(|| {
        let (c, mut s) = tcp_pair();
        let c = Rc::new(c);
        let c2 = c.clone();
        let reader = sylvan::spawn(move || {
            let mut b = [0u8; 4];
            (&*c2).read_exact(&mut b).map(|()| b)
        });
        sylvan::yield_now();
        assert!(!reader.is_dead());
        c.set_read_timeout(Some(ms(5))).unwrap();
        c.set_nonblocking(true).unwrap();
        assert_eq!(kind((&*c).read(&mut [0u8; 4])), io::ErrorKind::WouldBlock);
        sylvan::sleep(ms(30)); // well past the 5 ms timeout set above
        assert!(!reader.is_dead(), "the parked reader kept its own terms");
        s.write_all(b"data").unwrap();
        assert_eq!(&reader.join().unwrap().unwrap(), b"data");
    });
}

/// t07: `peek` returns what the next read returns, however often, and a
/// short peek buffer takes a prefix.
#[test]
fn t07_peek_leaves_the_bytes_for_the_read() {
    bounded(|| {
        let (c, mut s) = tcp_pair();
        let peeker = sylvan::spawn(move || {
            let mut b = [0u8; 3];
            let n = c.peek(&mut b).unwrap();
            (c, b[..n].to_vec())
        });
        sylvan::yield_now();
        s.write_all(b"hello").unwrap();
        let (c, first) = peeker.join().unwrap();
        assert!(b"hel".starts_with(&first) && !first.is_empty());
        wait_for(c.as_raw_fd(), IN);
        let mut b = [0u8; 16];
        for _ in 0..3 {
            // the whole of "hello" has arrived by now (one segment)
            assert_eq!(c.peek(&mut b).unwrap(), 5);
        }
        assert_eq!((&c).read(&mut b).unwrap(), 5);
        assert_eq!(&b[..5], b"hello");
    });
}

/// t08: `nodelay` and `ttl` start where `std`'s do and round-trip; on the
/// listener and UDP sockets too.
#[test]
fn t08_nodelay_and_ttl_defaults_and_round_trips_match_std() {
    bounded(|| {
        let sl = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sc = std::net::TcpStream::connect(sl.local_addr().unwrap()).unwrap();
        let su = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (c, _s) = tcp_pair();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(c.nodelay().unwrap(), sc.nodelay().unwrap());
        assert_eq!(c.ttl().unwrap(), sc.ttl().unwrap());
        assert_eq!(l.ttl().unwrap(), sl.ttl().unwrap());
        assert_eq!(u.ttl().unwrap(), su.ttl().unwrap());
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
        c.set_nodelay(false).unwrap();
        assert!(!c.nodelay().unwrap());
        for ttl in [1, 77, 255] {
            c.set_ttl(ttl).unwrap();
            l.set_ttl(ttl).unwrap();
            u.set_ttl(ttl).unwrap();
            assert_eq!(
                (c.ttl().unwrap(), l.ttl().unwrap(), u.ttl().unwrap()),
                (ttl, ttl, ttl)
            );
        }
        // out of range: same kind as std
        assert_eq!(kind(c.set_ttl(256)), kind(sc.set_ttl(256)));
        assert_eq!(kind(u.set_ttl(0)), kind(su.set_ttl(0)));
    });
}

/// t09: one greenlet reads while another writes on clones of one socket, at
/// the same time, both ways against an echoing peer; nothing lost or
/// reordered.
#[test]
fn t09_reader_and_writer_greenlets_on_clones_full_duplex() {
    bounded(|| {
        let (c, s) = tcp_pair();
        let echo = sylvan::spawn(move || {
            let (r, mut w) = (s.try_clone().unwrap(), s);
            let mut r = r;
            io::copy(&mut r, &mut w).unwrap()
        });
        let n = 2000u32;
        let w = c.try_clone().unwrap();
        let writer = sylvan::spawn(move || {
            for i in 0..n {
                (&w).write_all(&i.to_le_bytes()).unwrap();
                if i % 97 == 0 {
                    sylvan::yield_now();
                }
            }
            w.shutdown(Shutdown::Write).unwrap();
        });
        let reader = sylvan::spawn(move || {
            let mut got = Vec::new();
            (&c).read_to_end(&mut got).unwrap();
            got
        });
        writer.join().unwrap();
        let got = reader.join().unwrap();
        assert_eq!(echo.join().unwrap(), u64::from(n) * 4);
        let want: Vec<u8> = (0..n).flat_map(|i| i.to_le_bytes()).collect();
        assert_eq!(got, want);
    });
}

/// t10: two greenlets each `read_exact` fixed-size messages from clones of
/// one socket: every message is read exactly once, whole.
#[test]
fn t10_two_readers_on_clones_split_whole_messages() {
    bounded(|| {
        let (c, mut s) = tcp_pair();
        let reader = |h: TcpStream| {
            sylvan::spawn(move || {
                let mut got = Vec::new();
                let mut b = [0u8; 8];
                loop {
                    match (&h).read_exact(&mut b) {
                        Ok(()) => got.push(u64::from_le_bytes(b)),
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return got,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        };
        let a = reader(c.try_clone().unwrap());
        let b = reader(c);
        sylvan::yield_now();
        for i in 0..500u64 {
            // one message per write: a read_exact of 8 never splits one
            // across readers unless a segment is cut, which loopback
            // writes of 8 bytes are not
            s.write_all(&(i * 3).to_le_bytes()).unwrap();
            sylvan::yield_now();
        }
        drop(s);
        let (ga, gb) = (a.join().unwrap(), b.join().unwrap());
        let all: BTreeSet<u64> = ga.iter().chain(&gb).copied().collect();
        assert_eq!(ga.len() + gb.len(), 500, "a message read twice or lost");
        assert_eq!(all, (0..500u64).map(|i| i * 3).collect());
        assert!(!ga.is_empty() && !gb.is_empty(), "both readers served");
    });
}

/// t11: `connect` over an address list tries each in turn as `std` does:
/// a refused first address falls through to a listening one; all refused
/// is the last `ConnectionRefused`. `connect_timeout` too.
#[test]
fn t11_connect_over_an_address_list_falls_through_like_std() {
    bounded(|| {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let live = l.local_addr().unwrap();
        let list = [dead, live];
        // std, from a thread (a connect to `live` completes in the backlog)
        let sr = std::thread::spawn(move || {
            let ok = std::net::TcpStream::connect(&list[..]).map(|s| s.peer_addr().unwrap());
            let refused = std::net::TcpStream::connect(&[dead, dead][..]).map(drop);
            (ok.unwrap(), refused.unwrap_err().kind())
        })
        .join()
        .unwrap();
        assert_eq!(sr, (live, io::ErrorKind::ConnectionRefused));
        let c = TcpStream::connect(&list[..]).unwrap();
        assert_eq!(c.peer_addr().unwrap(), live);
        let c2 = TcpStream::connect_timeout(list, ms(500)).unwrap();
        assert_eq!(c2.peer_addr().unwrap(), live);
        let e = TcpStream::connect(&[dead, dead][..]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
        let e = TcpStream::connect_timeout(vec![dead], ms(500)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        // the std client and the two sylvan ones are all in the backlog
        for _ in 0..3 {
            l.accept().unwrap();
        }
    });
}

/// t12: 200 clients connect, send their number and close before anything
/// is accepted; `incoming()` then takes each and reads its number and end
/// of stream (data and FIN that came before the accepted socket was
/// registered are not lost).
#[test]
fn t12_many_pending_connections_with_data_and_fin_before_accept() {
    bounded(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let n = 200;
        for i in 0..n {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(s, "{i}").unwrap();
        }
        let mut seen = BTreeSet::new();
        for s in l.incoming().take(n) {
            let mut s = s.unwrap();
            let mut t = String::new();
            s.read_to_string(&mut t).unwrap();
            assert!(seen.insert(t.parse::<usize>().unwrap()), "{t} twice");
            assert_eq!(s.read(&mut [0u8; 1]).unwrap(), 0);
        }
        assert_eq!(seen, (0..n).collect());
    });
}

/// t13: `incoming()` serving clients that arrive one at a time from other
/// greenlets; addresses agree on both ends.
#[test]
fn t13_incoming_serves_greenlet_clients_and_addresses_agree() {
    bounded(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let clients: Vec<_> = (0..10u64)
            .map(|i| {
                sylvan::spawn(move || {
                    sylvan::sleep(ms(i));
                    let mut c = TcpStream::connect(addr).unwrap();
                    assert_eq!(c.peer_addr().unwrap(), addr);
                    c.write_all(&[i as u8]).unwrap();
                    let mut b = [0u8; 1];
                    c.read_exact(&mut b).unwrap();
                    (c.local_addr().unwrap(), b[0])
                })
            })
            .collect();
        let mut served = Vec::new();
        for s in l.incoming() {
            let mut s = s.unwrap();
            assert_eq!(s.local_addr().unwrap(), addr);
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            s.write_all(&[b[0] + 100]).unwrap();
            served.push((s.peer_addr().unwrap(), b[0]));
            if served.len() == 10 {
                break;
            }
        }
        for (i, g) in clients.into_iter().enumerate() {
            let (local, reply) = g.join().unwrap();
            assert_eq!(reply, i as u8 + 100);
            assert!(served.contains(&(local, i as u8)));
        }
    });
}

/// t14: UDP `send_to`/`recv_from` name the sender; after `connect`,
/// `send`/`recv` and `peer_addr` work and datagrams from others are
/// dropped; an unconnected `send` fails as `std`'s does.
#[test]
fn t14_udp_send_to_recv_from_and_connected_send_recv() {
    bounded(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sa = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(kind(a.send(b"x")), kind(sa.send(b"x")));
        assert_eq!(kind(a.peer_addr()), kind(sa.peer_addr()));
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let receiver = sylvan::spawn(move || {
            let mut buf = [0u8; 32];
            let (n, from) = b.recv_from(&mut buf).unwrap();
            (b, buf[..n].to_vec(), from)
        });
        sylvan::yield_now();
        assert_eq!(a.send_to(b"hi b", ba).unwrap(), 4);
        let (b, got, from) = receiver.join().unwrap();
        assert_eq!((got.as_slice(), from), (&b"hi b"[..], aa));
        b.connect(aa).unwrap();
        assert_eq!(b.peer_addr().unwrap(), aa);
        c.send_to(b"not you", ba).unwrap();
        a.send_to(b"you", ba).unwrap();
        let mut buf = [0u8; 32];
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"you");
        assert_eq!(b.send(b"back").unwrap(), 4);
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"back"[..], ba));
    });
}

/// t15: a datagram larger than the buffer is cut to it and the rest is
/// gone; `peek_from` leaves a datagram queued and names its sender; a
/// greenlet parked in `peek_from` wakes and the datagram is still there.
#[test]
fn t15_udp_truncation_and_peek_from() {
    bounded(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let a = Rc::new(a);
        let a2 = a.clone();
        let peeker = sylvan::spawn(move || {
            let mut buf = [0u8; 4];
            let (n, from) = a2.peek_from(&mut buf).unwrap();
            (buf[..n].to_vec(), from)
        });
        sylvan::yield_now();
        b.send_to(&[9u8; 100], aa).unwrap();
        b.send_to(b"next", aa).unwrap();
        let (p, from) = peeker.join().unwrap();
        assert_eq!((p, from), (vec![9u8; 4], ba));
        let mut small = [0u8; 10];
        let (n, from) = a.peek_from(&mut small).unwrap();
        assert_eq!((n, from), (10, ba));
        assert_eq!(a.recv(&mut small).unwrap(), 10, "cut to the buffer");
        let mut buf = [0u8; 200];
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"next"[..], ba),
            "the rest was dropped"
        );
    });
}

/// t16: a greenlet killed in `read_exact` after part of a message arrived
/// took only those bytes; the socket stays usable and the next reader gets
/// exactly what came after (gevent: a killed recv loses what it had read).
#[test]
fn t16_reader_killed_mid_read_exact_leaves_the_rest_for_the_next() {
    bounded(|| {
        let (c, mut s) = tcp_pair();
        let c = Rc::new(c);
        let c2 = c.clone();
        let g = sylvan::spawn(move || {
            let mut b = [0u8; 6];
            (&*c2).read_exact(&mut b).unwrap();
            unreachable!("read_exact got six bytes");
        });
        sylvan::yield_now();
        s.write_all(b"abc").unwrap();
        // until the parked greenlet has taken the three bytes
        yield_until("the partial read", || unread(c.as_raw_fd()) == 0);
        assert!(!g.is_dead());
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        s.write_all(b"defg").unwrap();
        let mut b = [0u8; 16];
        let n = (&*c).read(&mut b).unwrap();
        assert_eq!(&b[..n], b"defg");
    });
}

/// t17: a greenlet killed while parked in `accept` loses no connection: the
/// next `accept` (on a clone) gets the one that arrives afterwards.
#[test]
fn t17_acceptor_killed_then_the_connection_goes_to_the_next_acceptor() {
    bounded(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let l2 = l.try_clone().unwrap();
        let g = sylvan::spawn(move || {
            let _ = l2.accept();
            unreachable!("nobody connected");
        });
        sylvan::yield_now();
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        let c = TcpStream::connect(addr).unwrap();
        let (s, peer) = l.accept().unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        assert_eq!(s.peer_addr().unwrap(), peer);
    });
}

/// t18: dropping a UDP socket while a greenlet is parked in `recv_from` on
/// a clone: the clone keeps the socket open and gets the datagram (a dup'd
/// std descriptor does the same).
#[test]
fn t18_udp_dropped_while_a_clone_is_parked() {
    bounded(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let aa = a.local_addr().unwrap();
        let clone = a.try_clone().unwrap();
        let g = sylvan::spawn(move || {
            let mut b = [0u8; 8];
            let (n, _) = clone.recv_from(&mut b).unwrap();
            b[..n].to_vec()
        });
        sylvan::yield_now();
        drop(a);
        sylvan::yield_now();
        assert!(!g.is_dead());
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .send_to(b"still", aa)
            .unwrap();
        assert_eq!(g.join().unwrap(), b"still");
    });
}

/// t19: `with_timeout` and a `Timeout` guard around parked reads cancel
/// them cleanly: the next read gets all the data, and a reader on the same
/// socket that was parked beside them is not disturbed.
#[test]
fn t19_timeouts_around_reads_cancel_cleanly() {
    bounded(|| {
        let (c, mut s) = tcp_pair();
        let c = Rc::new(c);
        let c2 = c.clone();
        let bystander = sylvan::spawn(move || {
            let mut b = [0u8; 3];
            (&*c2).read_exact(&mut b).map(|()| b)
        });
        sylvan::yield_now();
        let r = sylvan::with_timeout(ms(20), || (&*c).read(&mut [0u8; 8]));
        assert!(r.is_err(), "{r:?}");
        {
            let _t = sylvan::Timeout::start(ms(20));
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                (&*c).read(&mut [0u8; 8])
            }));
            let payload = r.unwrap_err();
            assert!(sylvan::is_unwind_payload(&*payload));
            // swallowed: not re-raised, the guard is spent
        }
        assert!(!bystander.is_dead());
        s.write_all(b"abc").unwrap();
        assert_eq!(&bystander.join().unwrap().unwrap(), b"abc");
        s.write_all(b"defgh").unwrap();
        let mut b = [0u8; 5];
        (&*c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"defgh");
    });
}

/// t20: `std::io::copy` between sylvan streams relays 3 MiB exactly, and
/// returns at the source's end of stream, so the relay can pass the
/// half-close on.
#[test]
fn t20_io_copy_between_sylvan_streams() {
    bounded(|| {
        let (mut src_w, src_r) = tcp_pair();
        let (dst_w, mut dst_r) = tcp_pair();
        let relay = sylvan::spawn(move || {
            let (mut r, mut w) = (src_r, dst_w);
            let n = io::copy(&mut r, &mut w).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
            n
        });
        let len = 3 << 20;
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let d2 = data.clone();
        let writer = sylvan::spawn(move || {
            src_w.write_all(&d2).unwrap();
            src_w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        dst_r.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(relay.join().unwrap(), len as u64);
        assert!(got == data, "relayed bytes differ");
    });
}

/// t21: `BufReader::read_line` over a stream fed one to three bytes per
/// write, with a switch after each: every line arrives whole, then `Ok(0)`.
#[test]
fn t21_buf_reader_lines_across_many_tiny_writes() {
    bounded(|| {
        let (c, mut s) = tcp_pair();
        let lines: Vec<String> = (0..300)
            .map(|i| format!("line {i} {}", "x".repeat(i % 7)))
            .collect();
        let all: Vec<u8> = lines
            .iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect();
        let writer = sylvan::spawn(move || {
            let mut i = 0;
            let mut step = 1;
            while i < all.len() {
                let end = (i + step).min(all.len());
                s.write_all(&all[i..end]).unwrap();
                i = end;
                step = step % 3 + 1;
                sylvan::yield_now();
            }
        });
        let mut r = BufReader::new(&c);
        for want in &lines {
            let mut got = String::new();
            assert_eq!(r.read_line(&mut got).unwrap(), want.len() + 1);
            assert_eq!(got, format!("{want}\n"));
        }
        writer.join().unwrap();
        let mut rest = String::new();
        assert_eq!(r.read_line(&mut rest).unwrap(), 0);
    });
}

/// t22: one `write_all` of 8 MiB, far more than the socket buffers hold,
/// to a peer that reads 16 KiB at a time with a switch after each: the
/// writer parks and resumes many times, every byte arrives in order, and
/// a ticker greenlet keeps running meanwhile.
#[test]
fn t22_write_all_far_past_the_send_buffer_to_a_slow_reader() {
    bounded(|| {
        let (c, s) = tcp_pair();
        let len = 8 << 20;
        let ticks = Rc::new(Cell::new(0u32));
        let t2 = ticks.clone();
        let ticker = sylvan::spawn(move || {
            loop {
                t2.set(t2.get() + 1);
                sylvan::sleep(ms(1));
            }
        });
        let writer = sylvan::spawn(move || {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            (&c).write_all(&data).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
        });
        let mut buf = vec![0u8; 16 << 10];
        let mut pos = 0usize;
        let mut reads = 0u32;
        loop {
            let n = (&s).read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            if reads == 0 {
                assert!(!writer.is_dead(), "the write fitted in the buffers");
            }
            reads += 1;
            assert!(
                buf[..n]
                    .iter()
                    .enumerate()
                    .all(|(k, &b)| b == ((pos + k) % 253) as u8),
                "corrupt bytes after {pos}"
            );
            pos += n;
            sylvan::yield_now();
        }
        assert_eq!(pos, len);
        writer.join().unwrap();
        assert!(reads >= 64, "{reads} reads");
        assert!(ticks.get() > 0, "the ticker never ran");
        ticker.kill();
    });
}

/// t23: `std` conversions: a std listener adopted with `from_std` accepts;
/// a std stream adopted with bytes already queued reads them at once and
/// keeps its timeouts; `into_std` hands a stream with queued bytes to a
/// plain thread, which reads them with std.
#[test]
fn t23_from_std_and_into_std_keep_queued_bytes_and_timeouts() {
    bounded(|| {
        let sl = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = sl.local_addr().unwrap();
        let l = TcpListener::from_std(sl).unwrap();
        let sc = std::net::TcpStream::connect(addr).unwrap();
        sc.set_read_timeout(Some(ms(40))).unwrap();
        let (mut peer, _) = l.accept().unwrap();
        peer.write_all(b"queued").unwrap();
        wait_for(sc.as_raw_fd(), IN);
        let c = TcpStream::from_std(sc).unwrap();
        assert_eq!(c.read_timeout().unwrap(), Some(ms(40)));
        let mut b = [0u8; 6];
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"queued");
        assert_eq!(kind((&c).read(&mut b)), io::ErrorKind::TimedOut);
        peer.write_all(b"for the thread").unwrap();
        wait_for(c.as_raw_fd(), IN);
        let sc = c.into_std().unwrap();
        let got = std::thread::spawn(move || {
            let mut sc = sc;
            let mut b = [0u8; 14];
            sc.read_exact(&mut b).map(|()| b)
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(&got, b"for the thread");
    });
}

/// t24: Unix sockets: a listener's `incoming()`, half-close with the reply
/// flowing back, repeated end of stream, and a connect to a path whose
/// listener is gone or that does not exist failing as `std`'s does.
#[test]
fn t24_unix_listener_half_close_and_connect_errors_like_std() {
    bounded(|| {
        let p = unix_path("p45-t24");
        let l = UnixListener::bind(&p).unwrap();
        let p2 = p.clone();
        let client = sylvan::spawn(move || {
            let mut c = UnixStream::connect(&p2).unwrap();
            c.write_all(b"question").unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let mut a = String::new();
            c.read_to_string(&mut a).unwrap();
            assert_eq!(c.read(&mut [0u8; 4]).unwrap(), 0);
            a
        });
        let mut s = l.incoming().next().unwrap().unwrap();
        let mut q = String::new();
        s.read_to_string(&mut q).unwrap();
        assert_eq!(s.read(&mut [0u8; 4]).unwrap(), 0);
        s.write_all(format!("answer to {q}").as_bytes()).unwrap();
        drop(s);
        assert_eq!(client.join().unwrap(), "answer to question");
        drop(l);
        let stale = UnixStream::connect(&p).unwrap_err();
        let std_stale = std::os::unix::net::UnixStream::connect(&p).unwrap_err();
        assert_eq!(stale.kind(), std_stale.kind());
        assert_eq!(stale.raw_os_error(), std_stale.raw_os_error());
        std::fs::remove_file(&p).unwrap();
        let missing = UnixStream::connect(&p).unwrap_err();
        let std_missing = std::os::unix::net::UnixStream::connect(&p).unwrap_err();
        assert_eq!(missing.kind(), std_missing.kind());
        assert_eq!(missing.raw_os_error(), std_missing.raw_os_error());
    });
}

/// t25: names: `localhost:port` binds and connects as `std` resolves it
/// (the same family first), for TCP and UDP; `lookup_host` agrees with
/// `std`'s `to_socket_addrs` in content and order.
#[test]
fn t25_localhost_names_resolve_like_std() {
    bounded(|| {
        let std_addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs("localhost:4242")
            .unwrap()
            .collect();
        assert_eq!(
            sylvan::net::lookup_host("localhost:4242").unwrap(),
            std_addrs
        );
        let l = TcpListener::bind("localhost:0").unwrap();
        let sl = std::net::TcpListener::bind("localhost:0").unwrap();
        assert_eq!(l.local_addr().unwrap().ip(), sl.local_addr().unwrap().ip());
        let port = l.local_addr().unwrap().port();
        let c = TcpStream::connect(format!("localhost:{port}")).unwrap();
        let c2 = TcpStream::connect(("localhost", port)).unwrap();
        let c3 = TcpStream::connect_timeout("localhost:".to_string() + &port.to_string(), ms(500))
            .unwrap();
        for c in [&c, &c2, &c3] {
            let (s, peer) = l.accept().unwrap();
            assert_eq!(peer, c.local_addr().unwrap());
            drop(s);
        }
        let u = UdpSocket::bind("localhost:0").unwrap();
        let su = std::net::UdpSocket::bind("localhost:0").unwrap();
        assert_eq!(u.local_addr().unwrap().ip(), su.local_addr().unwrap().ip());
        let to = format!("localhost:{}", u.local_addr().unwrap().port());
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .send_to(b"n", to.as_str())
            .unwrap();
        let mut b = [0u8; 1];
        assert_eq!(u.recv(&mut b).unwrap(), 1);
        // malformed: the same kind as std
        for bad in ["localhost", "localhost:99999", "localhost:x"] {
            let se = std::net::ToSocketAddrs::to_socket_addrs(bad).unwrap_err();
            assert_eq!(kind(TcpStream::connect(bad)), se.kind(), "{bad}");
        }
    });
}

/// t26: a write to a peer that was reset fails with `BrokenPipe` or
/// `ConnectionReset` and the process lives (no SIGPIPE): `write_all` of a
/// large buffer and a parked writer alike.
#[test]
fn t26_writes_to_a_reset_peer_fail_without_sigpipe() {
    bounded(|| {
        let (c, s) = tcp_pair();
        let c = Rc::new(c);
        let c2 = c.clone();
        let writer = sylvan::spawn(move || {
            let big = vec![0u8; 32 << 20];
            (&*c2).write_all(&big)
        });
        sylvan::yield_now();
        assert!(!writer.is_dead(), "parked on the full buffer");
        set_linger_zero(s.as_raw_fd());
        drop(s);
        let e = writer.join().unwrap().unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{e:?}"
        );
        let e = (&*c).write_all(b"more").unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{e:?}"
        );
    });
}

/// t27: main parked in a read waits for a peer that only a greenlet on a
/// timer will feed (no "would block forever"), and a read on a Unix stream
/// from a greenlet while main sleeps, both with nothing else to run.
#[test]
fn t27_main_waits_on_a_socket_fed_later() {
    bounded(|| {
        let (c, s) = tcp_pair();
        sylvan::spawn_later(ms(20), move || {
            let mut s = s;
            s.write_all(b"late").unwrap();
        });
        let mut b = [0u8; 4];
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"late");
        let (x, y) = UnixStream::pair().unwrap();
        let g = sylvan::spawn(move || {
            let mut b = [0u8; 2];
            (&x).read_exact(&mut b).map(|()| b)
        });
        sylvan::sleep(ms(10));
        (&y).write_all(b"ok").unwrap();
        assert_eq!(&g.join().unwrap().unwrap(), b"ok");
    });
}

/// t28: a parked reader with a read timeout keeps the deadline it started
/// with when the timeout is changed under it (as `SO_RCVTIMEO` is read once
/// per `recv`), and several parked readers with the shared timeout each
/// time out on their own.
#[test]
fn t28_parked_readers_keep_their_deadlines() {
    bounded(|| {
        let (c, _s) = tcp_pair();
        c.set_read_timeout(Some(ms(40))).unwrap();
        let c = Rc::new(c);
        let spawn_reader = |c: Rc<TcpStream>| {
            sylvan::spawn(move || {
                let t0 = Instant::now();
                let k = kind((&*c).read(&mut [0u8; 1]));
                (k, t0.elapsed())
            })
        };
        let a = spawn_reader(c.clone());
        let b = spawn_reader(c.clone());
        sylvan::yield_now();
        c.set_read_timeout(None).unwrap();
        for g in [a, b] {
            let (k, took) = g.join().unwrap();
            assert_eq!(k, io::ErrorKind::TimedOut);
            assert!(took >= ms(40) && took < ms(2000), "{took:?}");
        }
    });
}

// ---------------------------------------------------------------------------
// Deviations
// ---------------------------------------------------------------------------

/// shut_rd on a descriptor (UDP has no `shutdown` method; `socket2`'s
/// `SockRef` or libc give one).
fn shut_rd(fd: i32) {
    // SAFETY: shutdown(2) on an open socket; an error (ENOTCONN for an
    // unconnected UDP socket, which still marks the read side shut) is
    // ignored as the callers compare with std in the same state.
    unsafe { libc::shutdown(fd, libc::SHUT_RD) };
}

/// d01: a UDP socket whose read half was shut down (through its
/// descriptor): `std`'s blocking `recv` returns `Ok(0)` at once, as it does
/// for a `UnixDatagram` (which sylvan matches, `unix_datagram.rs`
/// `read_shut_down`); `recv_from` fails with `InvalidInput` (no source
/// address). sylvan's UDP receive used to get `EAGAIN` from the kernel,
/// park, be woken by the `EPOLLIN|EPOLLRDHUP` edge, get `EAGAIN` again,
/// and wait until its timeout (for ever without one).
#[test]
fn d01_udp_recv_after_read_shutdown_returns_zero_like_std() {
    bounded(|| {
        let su = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        su.connect(su.local_addr().unwrap()).unwrap();
        su.set_read_timeout(Some(ms(300))).unwrap();
        shut_rd(su.as_raw_fd());
        // A call that waited would time out (`Err(WouldBlock)` / `TimedOut`),
        // which the comparisons by value catch: no clock needed.
        let std_r = show(true, su.recv(&mut [0u8; 8]));
        assert_eq!(std_r, "Ok(0)", "std");
        // No datagram, so no source address: std's recv_from fails.
        let std_from = show(true, su.recv_from(&mut [0u8; 8]).map(|(n, _)| n));
        assert_eq!(std_from, "Err(InvalidInput)", "std");
        let std_peek = show(true, su.peek(&mut [0u8; 8]));
        let std_peek_from = show(true, su.peek_from(&mut [0u8; 8]).map(|(n, _)| n));

        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.connect(u.local_addr().unwrap()).unwrap();
        u.set_read_timeout(Some(ms(300))).unwrap();
        shut_rd(u.as_raw_fd());
        assert_eq!(show(false, u.recv(&mut [0u8; 8])), std_r, "recv");
        assert_eq!(
            show(false, u.recv_from(&mut [0u8; 8]).map(|(n, _)| n)),
            std_from,
            "recv_from"
        );
        assert_eq!(show(false, u.peek(&mut [0u8; 8])), std_peek, "peek");
        assert_eq!(
            show(false, u.peek_from(&mut [0u8; 8]).map(|(n, _)| n)),
            std_peek_from,
            "peek_from"
        );
        // a receiver already parked when the read half is shut down
        let u = Rc::new(u);
        let u2 = u.clone();
        let g = sylvan::spawn(move || show(false, u2.recv(&mut [0u8; 8])));
        sylvan::yield_now();
        shut_rd(u.as_raw_fd());
        assert_eq!(g.join().unwrap(), std_r, "parked recv");
    });
}

/// d02: a zero-length read on an idle TCP stream with a read timeout.
/// Linux's `tcp_recvmsg` waits for data or the timeout and then returns 0
/// (its loop runs while `len > 0`), so `std`'s blocking `read(&mut [])`
/// gives `Ok(0)` after the timeout, as it does once data arrives. sylvan
/// parks (the non-blocking syscall says `EAGAIN`) and used to fail with
/// `TimedOut` then. Without a timeout both wait for data and give `Ok(0)`,
/// leaving the data queued.
#[test]
fn d02_zero_length_tcp_read_timing_out_returns_zero_like_std() {
    bounded(|| {
        let sl = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut sc = std::net::TcpStream::connect(sl.local_addr().unwrap()).unwrap();
        sc.set_read_timeout(Some(ms(20))).unwrap();
        let t0 = Instant::now();
        let std_r = show(true, sc.read(&mut []));
        assert!(t0.elapsed() >= ms(15), "std waited for the timeout");
        let std_peek = show(true, sc.peek(&mut []));

        let (c, mut s) = tcp_pair();
        // without a timeout: parks until data, then 0 and the data stays
        let c = Rc::new(c);
        let c2 = c.clone();
        let g = sylvan::spawn(move || show(false, (&*c2).read(&mut [])));
        sylvan::yield_now();
        assert!(!g.is_dead(), "a zero-length read waits for data, as std's");
        s.write_all(b"x").unwrap();
        assert_eq!(g.join().unwrap(), "Ok(0)");
        assert_eq!((&*c).read(&mut [0u8; 4]).unwrap(), 1);

        c.set_read_timeout(Some(ms(20))).unwrap();
        let t0 = Instant::now();
        let r = show(false, (&*c).read(&mut []));
        assert!(t0.elapsed() >= ms(15));
        assert_eq!(r, std_r, "read");
        assert_eq!(show(false, c.peek(&mut [])), std_peek, "peek");
    });
}
