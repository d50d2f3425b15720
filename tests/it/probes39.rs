//! Probe round 39: the changes of `91ea7b8..HEAD` (rounds 37 and 38
//! fixed), attacked for correctness and soundness.
//!
//! * Descriptors (`f..`): `IntoRawFd`/`FromRawFd` and `TryFrom<OwnedFd>`
//!   both ways for all six socket types, counting `/proc/self/fd` on every
//!   success and failure path (in a child, alone); handing a descriptor out
//!   while a clone is parked reading it (refused; the reader still wakes;
//!   the descriptor is deregistered once out, so re-adopting it works); a
//!   `dup` of a registered socket adopted as a second socket (two
//!   registrations, independent); the wrong kind of descriptor (listener,
//!   UDP socket, pipe as a `TcpStream`, a stream as a listener, `/dev/null`)
//!   fails at once, never parks for ever, and the hub goes on; the blocking
//!   mode and timeouts a descriptor carries out, and what comes back in.
//! * Errors (`e..`): `Error`/`Panic` equality corners; `io::Error` from a
//!   `sylvan::Error` (`get_ref`, `get_mut`, `into_inner` downcasts, the
//!   payload taken through them once, the kind); a `Panic` whose payload
//!   destructor panics dropped normally, during an unwind and on another
//!   thread (child: an abort would kill the process).
//! * Channels (`r..`): `for v in &rx` when the last sender drops on another
//!   thread mid-iteration; the iterating greenlet killed or timed out while
//!   parked (no wake-source left counted: main then gets "would block
//!   forever"; a new iteration works); `TryIter` never parks.
//! * Queues (`q..`): `FromIterator`/`From<Vec>` with no items, 200,000
//!   items (bounded time, order kept), `JoinableQueue` counting, peekers and
//!   getters afterwards, an iterator that panics half way (items dropped).
//! * Inspection (`d..`): `dump()` with tabs, `\r`, ANSI escapes, C1
//!   controls, zero-width and bidi characters in names: one row each,
//!   columns aligned.
//! * Stacks (`s..`): `MAX_STACK_SIZE` and one past it, `usize::MAX`,
//!   `set_stack_pool_limit(usize::MAX)`; stacks exhausting `RLIMIT_AS`
//!   (child): the error blames the memory limits, not the sysctl, and the
//!   hub recovers.
//! * Reports (`l..`): the greenlet-local leak warning now reaches stderr
//!   without a logger (child). The logger side of `report()` is not tested:
//!   the `log` crate is not a dependency of the test crate (only of
//!   `sylvan-hub`), so a test cannot install a logger without a
//!   `Cargo.toml` change.
//!
//! Noted, not tested: a `dup` of a sylvan socket adopted as a second
//! socket (f03) shares its file description, so handing that second one
//! out (`into_std`, `OwnedFd::try_from`) clears `O_NONBLOCK` for both, and
//! a read on the first with nothing to read then blocks the hub's thread
//! (as `std`'s `set_nonblocking` on a `try_clone`; the user's `dup`).
//! Panics with non-string payloads from one site compare equal (both
//! "Box<dyn Any>"), as documented (e01).
//!
//! Found, and fixed since (each failed before the fix):
//! * `f05_non_socket_descriptor_error_is_clear`: `TryFrom<OwnedFd>` of a
//!   regular file (`/dev/null`) into a socket failed with
//!   `PermissionDenied`, "Operation not permitted (os error 1)" (epoll's
//!   EPERM, raw). Now `InvalidInput`, "descriptor N is not a socket", as
//!   for a pipe (ENOTSOCK; `f04`).
//! * `f07_timeouts_survive_an_owned_fd_round_trip`: into an `OwnedFd` a
//!   socket carried its timeouts, but `TryFrom<OwnedFd>` (and `from_std`)
//!   dropped them, so a round trip lost them. `from_std` reads them from
//!   the descriptor now, for every socket type.
//! * `d02_dump_escapes_invisible_and_bidi_characters`: `dump()`'s table
//!   escaped only `char::is_control`; zero-width and bidi-override
//!   characters (U+200B, U+202E, U+2066, U+FEFF) in a name were printed
//!   raw. It escapes what `{:?}` escapes now (quotes and backslashes kept).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use sylvan::sync::{JoinableQueue, LifoQueue, PriorityQueue, Queue};
use sylvan::{Builder, Error};

use crate::util::{
    DropFlag, bounded, child_texts, in_child, is_child, quiet, run_child_limited, set_soft_limit,
    tcp_pair, texts, yield_until,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Open descriptors of this process (the directory's own included, the
/// same in every count).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Whether `fd` is in non-blocking mode at the OS level.
fn os_nonblocking(fd: RawFd) -> bool {
    // SAFETY: F_GETFL on a descriptor number reads flags only.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(fl >= 0, "fd {fd} is not open");
    fl & libc::O_NONBLOCK != 0
}

/// Whether the descriptor number `fd` is open.
fn fd_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on a descriptor number reads flags only.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

fn panic_text(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// A pipe, as two owned descriptors (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 just opened both; nobody else owns them.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn dev_null() -> OwnedFd {
    OwnedFd::from(std::fs::File::open("/dev/null").unwrap())
}

fn sock_path(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("sylvan-p39-{}-{tag}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

// ------------------------------------------------------------ descriptors

/// Runs every conversion path of one socket type and checks the open
/// descriptors after each: the raw and owned round trips, refusals with a
/// clone open (error, or panic for `into_raw_fd`), a non-socket refused by
/// `TryFrom<OwnedFd>` and by `from_raw_fd` (panic): nothing leaks, nothing
/// is closed twice.
macro_rules! fd_cycle {
    ($ty:ty, $make:expr) => {{
        let name = stringify!($ty);
        let before = open_fds();
        let s: $ty = $make;
        let with = open_fds();
        assert_eq!(with, before + 1, "{name}: one descriptor");
        let fd = s.into_raw_fd();
        assert!(
            fd_open(fd) && !os_nonblocking(fd),
            "{name}: handed out blocking"
        );
        // SAFETY: `fd` was just handed out by `into_raw_fd`; owned here.
        let s = unsafe { <$ty>::from_raw_fd(fd) };
        assert!(os_nonblocking(fd), "{name}: adopted non-blocking");
        let s = <$ty>::try_from(OwnedFd::try_from(s).unwrap()).unwrap();
        assert_eq!(open_fds(), with, "{name}: round trips");
        let c = s.try_clone().unwrap();
        let e = OwnedFd::try_from(s).unwrap_err();
        assert!(e.to_string().contains("try_clone"), "{name}: {e}");
        assert_eq!(open_fds(), with, "{name}: refused with a clone open");
        let c2 = c.try_clone().unwrap();
        let p = catch_unwind(AssertUnwindSafe(|| c2.into_raw_fd())).unwrap_err();
        let msg = panic_text(&*p);
        assert!(
            msg.contains("::into_raw_fd") && msg.contains("try_clone"),
            "{msg}"
        );
        assert_eq!(open_fds(), with, "{name}: into_raw_fd panicked");
        let o = OwnedFd::try_from(c).unwrap();
        assert_eq!(open_fds(), with, "{name}: last handle out");
        drop(o);
        assert_eq!(open_fds(), before, "{name}: closed once");
        // Refusals of a descriptor that cannot be registered.
        let e = <$ty>::try_from(dev_null()).unwrap_err();
        assert!(!e.to_string().is_empty());
        assert_eq!(open_fds(), before, "{name}: refused descriptor closed");
        let fd = dev_null().into_raw_fd();
        // SAFETY: `fd` is owned here and handed over (not a socket: the
        // registration fails, which is the path probed).
        let p = catch_unwind(AssertUnwindSafe(|| unsafe { <$ty>::from_raw_fd(fd) })).unwrap_err();
        assert!(
            panic_text(&*p).contains("::from_raw_fd"),
            "{}",
            panic_text(&*p)
        );
        assert_eq!(open_fds(), before, "{name}: from_raw_fd panicked");
    }};
}

/// f01: every conversion path of every socket type, success and failure,
/// leaves the open descriptors as they were (child: no other test opens
/// descriptors meanwhile).
#[test]
fn f01_fd_conversions_leak_and_double_close_nothing() {
    in_child(
        "probes39::f01_fd_conversions_leak_and_double_close_nothing",
        "p39f01",
        || {
            // The hub's own descriptors exist before the first count.
            sylvan::yield_now();
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let upath = sock_path("f01");
            fd_cycle!(TcpListener, TcpListener::bind("127.0.0.1:0").unwrap());
            fd_cycle!(TcpStream, TcpStream::connect(addr).unwrap());
            fd_cycle!(UdpSocket, UdpSocket::bind("127.0.0.1:0").unwrap());
            fd_cycle!(UnixListener, {
                let _ = std::fs::remove_file(&upath);
                UnixListener::bind(&upath).unwrap()
            });
            fd_cycle!(UnixDatagram, UnixDatagram::unbound().unwrap());
            let ul = std::os::unix::net::UnixListener::bind(sock_path("f01s")).unwrap();
            let spath = ul.local_addr().unwrap();
            fd_cycle!(
                UnixStream,
                UnixStream::connect(spath.as_pathname().unwrap()).unwrap()
            );
            let _ = std::fs::remove_file(&upath);
            let _ = std::fs::remove_file(spath.as_pathname().unwrap());
        },
    );
}

/// f02: a descriptor cannot leave while a clone is parked reading it: the
/// conversion is refused, the parked reader still wakes with the data, and
/// once it is the last handle the descriptor leaves deregistered (adopting
/// it again works: no registration was left behind).
#[test]
fn f02_descriptor_out_while_a_clone_is_parked_reading() {
    bounded(|| {
        let (a, b) = tcp_pair();
        let mine = b.try_clone().unwrap();
        let reader = sylvan::spawn(move || {
            let mut buf = [0u8; 4];
            let r = (&mine).read_exact(&mut buf).map(|()| buf);
            (r, mine)
        });
        sylvan::yield_now(); // the reader parks on the socket
        let e = OwnedFd::try_from(b).unwrap_err();
        assert!(e.to_string().contains("try_clone"), "{e}");
        (&a).write_all(b"ping").unwrap();
        let (r, mine) = reader.join().unwrap();
        assert_eq!(&r.unwrap(), b"ping");

        mine.set_read_timeout(Some(ms(300))).unwrap();
        let fd = OwnedFd::try_from(mine).unwrap();
        let raw = fd.as_raw_fd();
        assert!(!os_nonblocking(raw));
        let mut s = std::net::TcpStream::from(fd);
        assert_eq!(s.read_timeout().unwrap(), Some(ms(300)));
        (&a).write_all(b"pong").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");

        let mut back = TcpStream::try_from(OwnedFd::from(s)).expect("no registration left");
        assert_eq!(back.as_raw_fd(), raw);
        let writer = sylvan::spawn(move || {
            (&a).write_all(b"again").unwrap();
            a
        });
        let mut buf = [0u8; 5];
        back.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"again");
        drop(writer.join().unwrap());
    });
}

/// f03: a `dup` of a registered socket, adopted through `TryFrom<OwnedFd>`,
/// is a second registration of the same connection: greenlets parked on
/// each wake, and dropping one leaves the other registered and working.
#[test]
fn f03_a_dup_of_a_registered_socket_is_a_second_registration() {
    bounded(|| {
        let (a, b) = tcp_pair();
        let b2 = TcpStream::try_from(b.as_fd().try_clone_to_owned().unwrap()).unwrap();
        assert_ne!(b.as_raw_fd(), b2.as_raw_fd());
        let read1 = |s: TcpStream| {
            sylvan::spawn(move || {
                let mut c = [0u8; 1];
                (&s).read_exact(&mut c).unwrap();
                (c[0], s)
            })
        };
        let (g1, g2) = (read1(b), read1(b2));
        sylvan::yield_now();
        (&a).write_all(b"12").unwrap();
        let ((x, b), (y, b2)) = (g1.join().unwrap(), g2.join().unwrap());
        let mut got = [x, y];
        got.sort_unstable();
        assert_eq!(&got, b"12");
        drop(b2);
        assert!(os_nonblocking(b.as_raw_fd()));
        let g = read1(b);
        sylvan::yield_now();
        (&a).write_all(b"3").unwrap();
        assert_eq!(g.join().unwrap().0, b'3');
    });
}

/// f04: the wrong kind of socket, adopted through `TryFrom<OwnedFd>` (std
/// does not check the kind either), fails at the first operation instead
/// of parking for ever; the descriptors close and the hub goes on.
#[test]
fn f04_wrong_kinds_of_descriptor_fail_at_once() {
    bounded(|| {
        let quick = |what: &str, f: &mut dyn FnMut() -> io::Result<usize>| {
            let r = sylvan::with_timeout(ms(500), f).unwrap_or_else(|_| panic!("{what} parked"));
            assert!(r.is_err(), "{what}: {r:?}");
        };
        // A listening socket as a stream.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = TcpStream::try_from(OwnedFd::from(l)).unwrap();
        quick("listener read", &mut || s.read(&mut [0; 4]));
        quick("listener write", &mut || s.write(b"x"));
        // An unconnected UDP socket as a stream: sends fail.
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut s = TcpStream::try_from(OwnedFd::from(u)).unwrap();
        quick("udp write", &mut || s.write(b"x"));
        // A pipe as a stream: not a socket, refused at once (reading its
        // timeouts fails with ENOTSOCK).
        let (r, w) = pipe();
        let e = TcpStream::try_from(r).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("not a socket"), "{e}");
        drop(w);
        // A connected stream as a listener: accept fails.
        let (c, _peer) = tcp_pair();
        let l = TcpListener::try_from(OwnedFd::try_from(c).unwrap()).unwrap();
        quick("stream accept", &mut || l.accept().map(|_| 0));
        // A TCP stream as a Unix listener.
        let (c, _peer2) = tcp_pair();
        let l = UnixListener::try_from(OwnedFd::try_from(c).unwrap()).unwrap();
        quick("tcp as unix accept", &mut || l.accept().map(|_| 0));
        // The hub is fine.
        let (mut x, mut y) = tcp_pair();
        x.write_all(b"ok").unwrap();
        let mut buf = [0u8; 2];
        y.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ok");
    });
}

/// f05: a descriptor that is no socket at all (a regular file) refused by
/// `TryFrom<OwnedFd>` should say so, as `sylvan::os::Fd` does
/// (`InvalidInput`, "cannot be polled"): epoll's raw EPERM reads
/// "Operation not permitted", kind `PermissionDenied`, which sends the
/// reader after file permissions.
#[test]
fn f05_non_socket_descriptor_error_is_clear() {
    bounded(|| {
        let os = sylvan::os::Fd::new(dev_null()).unwrap_err();
        assert_eq!(os.kind(), ErrorKind::InvalidInput, "{os}");
        let e = TcpStream::try_from(dev_null()).unwrap_err();
        let u = UnixStream::try_from(dev_null()).unwrap_err();
        for e in [e, u] {
            let msg = e.to_string();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{msg}");
            assert!(msg.contains("poll") || msg.contains("socket"), "{msg}");
        }
    });
}

/// f06: into an `OwnedFd` each socket carries its blocking mode (and the
/// streams and datagram sockets their timeouts) as `std` reads them; back
/// through `TryFrom<OwnedFd>`, a blocking descriptor becomes non-blocking at
/// the OS level and parks only the reading greenlet.
#[test]
fn f06_blocking_mode_and_timeouts_carried_out() {
    bounded(|| {
        let check = |fd: &OwnedFd, nb: bool, what: &str| {
            assert_eq!(os_nonblocking(fd.as_raw_fd()), nb, "{what}");
        };
        for nb in [false, true] {
            let (a, _b) = tcp_pair();
            a.set_nonblocking(nb).unwrap();
            a.set_read_timeout(Some(ms(100))).unwrap();
            a.set_write_timeout(Some(ms(200))).unwrap();
            let fd = OwnedFd::try_from(a).unwrap();
            check(&fd, nb, "tcp stream");
            let s = std::net::TcpStream::from(fd);
            assert_eq!(s.read_timeout().unwrap(), Some(ms(100)));
            assert_eq!(s.write_timeout().unwrap(), Some(ms(200)));

            let u = UdpSocket::bind("127.0.0.1:0").unwrap();
            u.set_nonblocking(nb).unwrap();
            u.set_read_timeout(Some(ms(100))).unwrap();
            let fd = OwnedFd::try_from(u).unwrap();
            check(&fd, nb, "udp");
            let s = std::net::UdpSocket::from(fd);
            assert_eq!(s.read_timeout().unwrap(), Some(ms(100)));
            assert_eq!(s.write_timeout().unwrap(), None);

            let (x, _y) = UnixStream::pair().unwrap();
            x.set_nonblocking(nb).unwrap();
            x.set_write_timeout(Some(ms(200))).unwrap();
            let fd = OwnedFd::try_from(x).unwrap();
            check(&fd, nb, "unix stream");
            let s = std::os::unix::net::UnixStream::from(fd);
            assert_eq!(s.write_timeout().unwrap(), Some(ms(200)));

            let (d, _e) = UnixDatagram::pair().unwrap();
            d.set_nonblocking(nb).unwrap();
            d.set_read_timeout(Some(ms(100))).unwrap();
            let fd = OwnedFd::try_from(d).unwrap();
            check(&fd, nb, "unix datagram");
            let s = std::os::unix::net::UnixDatagram::from(fd);
            assert_eq!(s.read_timeout().unwrap(), Some(ms(100)));

            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(nb).unwrap();
            check(&OwnedFd::try_from(l).unwrap(), nb, "tcp listener");
            let p = sock_path(&format!("f06{nb}"));
            let l = UnixListener::bind(&p).unwrap();
            l.set_nonblocking(nb).unwrap();
            check(&OwnedFd::try_from(l).unwrap(), nb, "unix listener");
            let _ = std::fs::remove_file(&p);
        }
        // In: a blocking std stream adopted through its descriptor parks
        // only the reader; another greenlet runs meanwhile.
        let (x, y) = std::os::unix::net::UnixStream::pair().unwrap();
        let x = UnixStream::try_from(OwnedFd::from(x)).unwrap();
        assert!(os_nonblocking(x.as_raw_fd()));
        assert_eq!(x.read_timeout().unwrap(), None);
        let reader = sylvan::spawn(move || {
            let mut b = [0u8; 3];
            (&x).read_exact(&mut b).unwrap();
            b
        });
        let y = UnixStream::try_from(OwnedFd::from(y)).unwrap();
        sylvan::yield_now();
        (&y).write_all(b"abc").unwrap();
        assert_eq!(&reader.join().unwrap(), b"abc");
    });
}

/// f07: a socket's timeouts go out with its descriptor (f06) but do not
/// come back in: `TryFrom<OwnedFd>` and `from_std` of `UdpSocket`,
/// `UnixStream` and `UnixDatagram` drop `SO_RCVTIMEO`/`SO_SNDTIMEO`, which
/// their docs do not say (only `TcpStream::from_std` does: "its std
/// timeouts are not carried over"), and `TryFrom<OwnedFd>` says "as for
/// std's From<OwnedFd>", whose round trip keeps them. A read that timed out
/// before the round trip parks without limit after it.
#[test]
fn f07_timeouts_survive_an_owned_fd_round_trip() {
    bounded(|| {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(Some(ms(40))).unwrap();
        let u = UdpSocket::try_from(OwnedFd::try_from(u).unwrap()).unwrap();
        let (x, _y) = UnixStream::pair().unwrap();
        x.set_read_timeout(Some(ms(40))).unwrap();
        let x = UnixStream::try_from(OwnedFd::try_from(x).unwrap()).unwrap();
        let (d, _e) = UnixDatagram::pair().unwrap();
        d.set_write_timeout(Some(ms(40))).unwrap();
        let d = UnixDatagram::try_from(OwnedFd::try_from(d).unwrap()).unwrap();
        assert_eq!(
            (
                u.read_timeout().unwrap(),
                x.read_timeout().unwrap(),
                d.write_timeout().unwrap()
            ),
            (Some(ms(40)), Some(ms(40)), Some(ms(40)))
        );
    });
}

// ----------------------------------------------------------------- errors

/// e01: equality corners. Variants compare by variant; panics by message
/// and location: the same message at two sites differs, the same site with
/// two non-string payloads is equal (both "Box<dyn Any>", as documented),
/// a taken payload changes nothing, and a `resume_unwind` panic (no hook
/// ran, no location) compares by message alone.
#[test]
fn e01_error_equality_corners() {
    bounded(|| {
        quiet();
        assert_eq!(Error::Killed, Error::Killed);
        assert_ne!(Error::Killed, Error::TimedOut);
        assert_ne!(Error::TimedOut, Error::Unwinding);
        let a = sylvan::spawn(|| -> u8 { panic!("same words") })
            .join()
            .unwrap_err();
        let b = sylvan::spawn(|| -> u8 { panic!("same words") })
            .join()
            .unwrap_err();
        assert_ne!(a, b, "two sites");
        assert_ne!(a, Error::Killed);
        let any = |v: u32| {
            sylvan::spawn(move || -> u8 { std::panic::panic_any(v) })
                .join()
                .unwrap_err()
        };
        let (mut x, y) = (any(1), any(2));
        assert_eq!(x, y, "same site, message Box<dyn Any>");
        if let Error::Panicked(p) = &mut x {
            assert_eq!(
                *p.take_payload().unwrap().downcast::<u32>().unwrap(),
                1,
                "payload kept apart"
            );
        }
        assert_eq!(x, y, "taking the payload changes nothing");
        let resumed = |s: &'static str| {
            sylvan::spawn(move || -> u8 { std::panic::resume_unwind(Box::new(s)) })
                .join()
                .unwrap_err()
        };
        let (r1, r2) = (resumed("r"), resumed("r"));
        assert_eq!(r1.panic().unwrap().message(), "r");
        assert_eq!(r1.panic().unwrap().location(), None);
        assert_eq!(r1, r2);
        assert_ne!(r1, resumed("s"));
    });
}

/// e02: a `sylvan::Error` inside an `io::Error`: kind, text, the error
/// reached through `get_ref`, `get_mut` (the payload taken there, once)
/// and `into_inner`; the `io::Error` crosses threads (`Send + Sync`).
#[test]
fn e02_io_error_wrapping() {
    bounded(|| {
        quiet();
        let mut e: io::Error =
            sylvan::spawn(|| -> u8 { std::panic::panic_any(String::from("io boom")) })
                .join()
                .unwrap_err()
                .into();
        assert_eq!(e.kind(), ErrorKind::Other);
        assert!(e.to_string().contains("io boom"), "{e}");
        let inner = e.get_ref().unwrap().downcast_ref::<Error>().unwrap();
        assert!(inner.is_panic());
        let inner = e.get_mut().unwrap().downcast_mut::<Error>().unwrap();
        let Error::Panicked(p) = inner else {
            panic!("{inner:?}")
        };
        let payload = p.take_payload().unwrap();
        assert_eq!(*payload.downcast::<String>().unwrap(), "io boom");
        assert!(p.take_payload().is_none());
        let boxed = e.into_inner().unwrap();
        let back = boxed.downcast::<Error>().unwrap();
        assert!(back.is_panic());
        assert_eq!(back.panic().unwrap().message(), "io boom");

        let t: io::Error = Error::TimedOut.into();
        assert_eq!(t.kind(), ErrorKind::TimedOut);
        let u: io::Error = Error::Unwinding.into();
        assert_eq!(u.kind(), ErrorKind::Other);
        let k: io::Error = Error::Killed.into();
        let text = std::thread::spawn(move || {
            let inner = k.get_ref().and_then(|i| i.downcast_ref::<Error>());
            (inner == Some(&Error::Killed), k.to_string())
        })
        .join()
        .unwrap();
        assert!(text.0, "{}", text.1);
    });
}

/// A panic payload whose destructor panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("payload destructor");
        }
        // Even while unwinding: caught inside `drop_payload`.
        std::panic::panic_any("payload destructor while unwinding");
    }
}

/// e03: dropping a `Panic` whose payload's destructor panics neither
/// unwinds into the dropper nor aborts: dropped plainly, during an unwind
/// (inside a `catch_unwind`), inside an `io::Error`, and on another thread
/// (child: an abort would end the process).
#[test]
fn e03_panicking_payload_destructor_never_aborts() {
    in_child(
        "probes39::e03_panicking_payload_destructor_never_aborts",
        "p39e03",
        || {
            quiet();
            let bomb = || {
                sylvan::spawn(|| -> u8 { std::panic::panic_any(Bomb) })
                    .join()
                    .unwrap_err()
            };
            drop(bomb());
            let held = bomb();
            let r = catch_unwind(AssertUnwindSafe(move || {
                let _held = held;
                panic!("outer");
            }));
            assert_eq!(panic_text(&*r.unwrap_err()), "outer");
            let e: io::Error = bomb().into();
            drop(e);
            let e = bomb();
            std::thread::spawn(move || drop(e)).join().unwrap();
            // Re-raised: the payload comes back, then is dropped by the
            // catcher (its destructor panics there: caught by us).
            let r: Result<(), _> = catch_unwind(AssertUnwindSafe(|| bomb().resume()));
            let payload = r.unwrap_err();
            assert!(payload.is::<Bomb>());
            let d = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            assert!(d.is_err());
            assert_eq!(sylvan::spawn(|| 5).join().unwrap(), 5);
        },
    );
}

// --------------------------------------------------------------- channels

/// r01: `for v in &rx` ends when the last sender is dropped on another
/// thread while the loop is parked between values.
#[test]
fn r01_iteration_ends_when_senders_drop_mid_iteration() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let tx2 = tx.clone();
            for i in 0..3 {
                tx.send(i).unwrap();
            }
            go_rx.recv().unwrap();
            drop(tx);
            drop(tx2);
        });
        let seen = Rc::new(Cell::new(0));
        let s = seen.clone();
        // Runs while main is parked in the loop after the third value.
        let helper = sylvan::spawn(move || {
            yield_until("three values seen", || s.get() == 3);
            go_tx.send(()).unwrap();
        });
        let mut got = Vec::new();
        for v in &rx {
            got.push(v);
            seen.set(got.len());
        }
        assert_eq!(got, [0, 1, 2]);
        helper.join().unwrap();
        t.join().unwrap();
        assert!(rx.try_iter().next().is_none());
        assert_eq!(rx.iter().next(), None);
    });
}

/// Asserts that main has nothing that can wake it: an empty queue's `get`
/// fails with "would block forever" at once. (Outside any `with_timeout`:
/// a pending timer is a wake source. A leaked count makes `get` park for
/// ever, and the parent kills the child.)
fn assert_nothing_counted() {
    let q: Queue<u8> = Queue::unbounded();
    let r = catch_unwind(AssertUnwindSafe(|| q.get()));
    let msg = panic_text(&*r.expect_err("an empty queue gave a value"));
    assert!(msg.contains("would block forever"), "{msg}");
}

/// r02: the greenlet iterating a receiver killed, or timed out, while
/// parked: it leaves no wake source counted and no stale park entry; a
/// new iteration gets every later value (child, unbounded there: the
/// parent's time limit catches a hang).
#[test]
fn r02_iterating_greenlet_killed_or_timed_out_while_parked() {
    const NAME: &str = "p39r02";
    if is_child(NAME) {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let got = Rc::new(RefCell::new(Vec::new()));
        let (r, gt) = (rx.clone(), got.clone());
        let g = sylvan::spawn(move || {
            for v in &*r {
                gt.borrow_mut().push(v);
            }
        });
        tx.send(1).unwrap();
        yield_until("one value", || got.borrow().len() == 1);
        g.kill();
        assert_eq!(g.join(), Err(Error::Killed));
        assert_nothing_counted();

        let timed = sylvan::with_timeout(ms(10), || rx.iter().count());
        assert!(timed.is_err(), "{timed:?}");
        assert_nothing_counted();

        let feeder = std::thread::spawn(move || {
            for i in 2..5 {
                tx.send(i).unwrap();
            }
        });
        let rest: Vec<u32> = Rc::try_unwrap(rx).unwrap().into_iter().collect();
        feeder.join().unwrap();
        assert_eq!(rest, [2, 3, 4]);
        assert_eq!(*got.borrow(), [1]);
        println!("PROBE ok");
        return;
    }
    let out = run_child_limited(
        "probes39::r02_iterating_greenlet_killed_or_timed_out_while_parked",
        NAME,
        &[],
        Duration::from_secs(10),
    )
    .expect("child hung: a wake source stayed counted");
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success() && stdout.contains("PROBE ok"),
        "{stdout}\n{stderr}"
    );
}

/// r03: `try_iter` never parks, even on main with senders alive and
/// nothing else to run (no "would block forever"); it yields what is
/// queued now and stops.
#[test]
fn r03_try_iter_never_parks() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let t = Instant::now();
        assert_eq!(rx.try_iter().count(), 0);
        for i in 0..3 {
            tx.send(i).unwrap();
        }
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(rx.try_iter().next(), None);
        tx.send(9).unwrap();
        drop(tx);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [9]);
        assert!(t.elapsed() < ms(500));
    });
}

// ----------------------------------------------------------------- queues

/// q01: queues made from no items: empty, unbounded, a getter parks and
/// the first put wakes it; a `JoinableQueue` of nothing is joined already.
#[test]
fn q01_queues_from_no_items() {
    bounded(|| {
        let q: Queue<u8> = Vec::new().into();
        assert!(q.is_empty() && q.capacity().is_none());
        let l: LifoQueue<u8> = std::iter::empty().collect();
        let p: PriorityQueue<u8> = std::iter::empty().collect();
        assert!(l.is_empty() && p.is_empty());
        let j: JoinableQueue<u8> = Vec::new().into();
        assert_eq!(j.unfinished(), 0);
        assert!(j.join_timeout(Duration::ZERO));
        let q = Rc::new(q);
        let qq = q.clone();
        let getter = sylvan::spawn(move || qq.get());
        sylvan::yield_now();
        assert_eq!(q.getters(), 1);
        q.put(4).unwrap();
        assert_eq!(getter.join().unwrap(), Some(4));
    });
}

/// q02: 200,000 items collected into each queue kind in bounded time, in
/// the order each gives them out; the `JoinableQueue` counts each as
/// unfinished until its `task_done`; peeks see the head.
#[test]
fn q02_queues_from_many_items() {
    bounded(|| {
        const N: u32 = 200_000;
        let t = Instant::now();
        let q: Queue<u32> = (0..N).collect();
        let l: LifoQueue<u32> = (0..N).collect();
        let p: PriorityQueue<u32> = (0..N).rev().collect();
        let j: JoinableQueue<u32> = (0..N).collect::<Vec<_>>().into();
        assert_eq!(
            (q.len(), l.len(), p.len(), j.len()),
            (N as usize, N as usize, N as usize, N as usize)
        );
        assert_eq!(j.unfinished(), u64::from(N));
        assert_eq!(
            (q.peek(), l.peek(), p.peek()),
            (Some(0), Some(N - 1), Some(0))
        );
        for i in 0..N {
            assert_eq!(q.try_get(), Ok(i));
            assert_eq!(l.try_get(), Ok(N - 1 - i));
            assert_eq!(p.try_get(), Ok(i));
            assert_eq!(j.try_get(), Ok(i));
            j.task_done();
        }
        assert!(j.join_timeout(Duration::ZERO));
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    });
}

/// q03: an iterator that panics half way through `collect` drops the
/// items already queued (no leak), and the hub goes on.
#[test]
fn q03_collect_from_a_panicking_iterator_drops_the_items() {
    bounded(|| {
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let r = catch_unwind(AssertUnwindSafe(move || {
            let items = (0..10).map(|i| {
                assert!(i < 5, "iterator fails");
                DropFlag(d.clone())
            });
            let _: JoinableQueue<DropFlag> = items.collect();
        }));
        assert!(r.is_err());
        assert_eq!(drops.get(), 5);
        assert_eq!(sylvan::spawn(|| 1).join().unwrap(), 1);
    });
}

// ------------------------------------------------------------- inspection

/// The dump rows of the greenlets whose names start with `tag`.
fn rows_named(text: &str, tag: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains(tag))
        .map(str::to_owned)
        .collect()
}

/// Spawns one parked greenlet per name, runs `f` on the dump's text, kills
/// them.
fn with_named(names: &[String], f: impl FnOnce(&str)) {
    let gs: Vec<_> = names
        .iter()
        .map(|n| {
            Builder::new()
                .name(n.clone())
                .spawn(|| sylvan::sleep(Duration::from_secs(60)))
                .unwrap()
        })
        .collect();
    sylvan::yield_now();
    let text = sylvan::dump().to_string();
    f(&text);
    sylvan::killall(&gs, None).unwrap();
}

/// d01: names with a tab, a carriage return, an ANSI escape, DEL and a C1
/// control (NEL) each keep one row, the raw characters never reach the
/// table, and the state column starts at the same character offset in
/// every row.
#[test]
fn d01_dump_escapes_controls_and_keeps_columns() {
    bounded(|| {
        let names: Vec<String> = [
            "p39\ttab",
            "p39\rcr",
            "p39\u{1b}[31mred",
            "p39\u{7f}del",
            "p39\u{85}nel",
            "p39 plain",
            "p39\u{1b}[2J\u{1b}[H\u{1b}[31mlong long long",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        with_named(&names, |text| {
            for c in ['\t', '\r', '\u{1b}', '\u{7f}', '\u{85}'] {
                assert!(!text.contains(c), "raw {c:?} in\n{text}");
            }
            let rows = rows_named(text, "p39");
            assert_eq!(rows.len(), names.len(), "one row each:\n{text}");
            let cols: Vec<usize> = rows
                .iter()
                .map(|r| {
                    let at = r.find("suspended").unwrap_or_else(|| panic!("{r}"));
                    r[..at].chars().count()
                })
                .collect();
            assert!(cols.windows(2).all(|w| w[0] == w[1]), "{cols:?}\n{text}");
        });
    });
}

/// d02: characters that are not `char::is_control` but still invisible or
/// reordering are printed raw: zero-width space, BOM (width 0: the
/// columns after the name shift left by one per character) and the bidi
/// override and isolate (a terminal reorders the rest of the row). `{:?}`
/// (`char::escape_debug`) escapes all four.
#[test]
fn d02_dump_escapes_invisible_and_bidi_characters() {
    bounded(|| {
        let names: Vec<String> = [
            "p39z\u{200b}zw",
            "p39z\u{feff}bom",
            "p39z\u{202e}rlo",
            "p39z\u{2066}lri",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        with_named(&names, |text| {
            let raw: Vec<char> = ['\u{200b}', '\u{feff}', '\u{202e}', '\u{2066}']
                .into_iter()
                .filter(|c| text.contains(*c))
                .collect();
            assert!(raw.is_empty(), "raw {raw:?} in\n{text:?}");
        });
    });
}

// ----------------------------------------------------------------- stacks

/// s01: `MAX_STACK_SIZE` is the largest size accepted: one past it, and
/// `usize::MAX`, are `InvalidInput` "too large" naming the bound; the
/// bound itself (and one below, rounded up to it) is tried for real, so it
/// either runs or fails as something other than `InvalidInput`.
#[test]
fn s01_max_stack_size_edges() {
    bounded(|| {
        for size in [sylvan::MAX_STACK_SIZE + 1, usize::MAX] {
            let e = Builder::new().stack_size(size).spawn(|| ()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert!(
                e.to_string().contains("too large") && e.to_string().contains("1 TiB"),
                "{e}"
            );
        }
        for size in [sylvan::MAX_STACK_SIZE, sylvan::MAX_STACK_SIZE - 1] {
            match Builder::new().stack_size(size).spawn(|| 7) {
                Ok(g) => assert_eq!(g.join().unwrap(), 7),
                Err(e) => {
                    assert_ne!(e.kind(), ErrorKind::InvalidInput, "{e}");
                    assert!(!e.to_string().contains("sysctl"), "{e}");
                }
            }
        }
        assert_eq!(sylvan::spawn(|| 2).join().unwrap(), 2);
    });
}

/// s02: `set_stack_pool_limit(usize::MAX)` saturates: greenlets spawn and
/// die through the pool, and the limit can be set back.
#[test]
fn s02_stack_pool_limit_saturates() {
    bounded(|| {
        sylvan::set_stack_pool_limit(usize::MAX);
        let gs: Vec<_> = (0..64).map(|i| sylvan::spawn(move || i)).collect();
        let sum: u32 = gs.into_iter().map(|g| g.join().unwrap()).sum();
        assert_eq!(sum, (0..64u32).sum::<u32>());
        sylvan::set_stack_pool_limit(usize::MAX / 2 + 1);
        sylvan::set_stack_pool_limit(0);
        assert_eq!(sylvan::spawn(|| 3).join().unwrap(), 3);
        sylvan::set_stack_pool_limit(sylvan::DEFAULT_POOL_LIMIT);
    });
}

/// s03: default-size stacks that exhaust `RLIMIT_AS` (far below
/// `vm.max_map_count`): the error blames the memory limits, not the
/// sysctl, and once the greenlets are gone spawning works again (child).
#[test]
fn s03_stacks_exhausting_rlimit_as() {
    const NAME: &str = "p39s03";
    if is_child(NAME) {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let vm_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        // Room for the test's own allocations, and for about 100 stacks.
        set_soft_limit(libc::RLIMIT_AS, (vm_kib + 96 * 1024) * 1024);
        let mut gs = Vec::new();
        let err = loop {
            match Builder::new()
                .stack_size(1 << 20)
                .spawn(|| sylvan::sleep(Duration::from_secs(60)))
            {
                Ok(g) => gs.push(g),
                Err(e) => break e,
            }
            assert!(gs.len() < 10_000, "no limit reached");
        };
        let n = gs.len();
        sylvan::killall(&gs, None).unwrap();
        drop(gs);
        sylvan::set_stack_pool_limit(0);
        let ok = Builder::new()
            .stack_size(1 << 20)
            .spawn(|| 11)
            .map(|g| g.join().unwrap());
        println!("CHILD n={n} ok={ok:?} kind={:?} err={err}", err.kind());
        return;
    }
    let out = run_child_limited(
        "probes39::s03_stacks_exhausting_rlimit_as",
        NAME,
        &[],
        Duration::from_secs(10),
    )
    .expect("child hung");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    let line = stdout
        .find("CHILD ")
        .map(|i| &stdout[i..])
        .unwrap_or_else(|| panic!("{stdout}\n{stderr}"));
    assert!(line.contains("ok=Ok(11)"), "{line}");
    assert!(line.contains("RLIMIT_AS"), "{line}");
    assert!(!line.contains("sysctl"), "{line}");
}

// ---------------------------------------------------------------- reports

struct Again;

sylvan::greenlet_local! {
    static AGAIN: Again = Again;
}

impl Drop for Again {
    fn drop(&mut self) {
        // Touching the local in its own destructor makes a new value.
        AGAIN.with(|_| ());
    }
}

/// l01: a greenlet-local re-created by its destructor every round is
/// leaked after eight rounds, and (without a logger) the warning now
/// reaches stderr; before `report()` it went to `log` alone and was lost.
#[test]
fn l01_local_leak_warning_reaches_stderr_without_logger() {
    let texts = child_texts(
        "probes39::l01_local_leak_warning_reaches_stderr_without_logger",
        "p39l01",
        || {
            let g = sylvan::spawn(|| AGAIN.with(|_| 5));
            assert_eq!(g.join().unwrap(), 5);
        },
    );
    if let Some((_out, err)) = texts {
        assert!(
            err.contains("greenlet-local value(s) re-created by destructors 8 times; leaked"),
            "{err}"
        );
    }
}
