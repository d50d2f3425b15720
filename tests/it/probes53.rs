//! Probe round 53: a hostile review of `a3c21c2..dd8f7bb`.
//!
//! * `i..` (8fc4697): a socket read in a destructor while the greenlet
//!   unwinds makes the syscall when only the hub's cached "drained" flag
//!   said not to try. TCP `read`, `read_exact` and `read_to_end` after a
//!   short read, end of stream, a reset peer, nothing there, a reader of
//!   another greenlet parked on the same socket, non-blocking mode, a read
//!   timeout, peeks, Unix streams, UDP, `os::Fd`, and writes with and
//!   without room, each followed by normal use of the socket.
//! * `l..` (b26dc5e): under `ErrorPolicy::IgnoreObserved`, a
//!   `link`/`link_exception` callback cut by `unlink_all` after the death
//!   reports the failure once. Cut before the death, after it, from inside
//!   another callback, several callbacks, `link_value`, a death observed
//!   by a waiter, the other policies, kills, a thread that exits with
//!   callbacks queued, a policy changed in between.
//! * `s..` (6680e29): `HubStats::stacks_reused` / `stacks_mapped` as a user
//!   reads them: spawn/join cycles, spawns cancelled before they run,
//!   `Builder::stack_size`, `set_stack_pool_limit`, `trim_stack_pool`, and
//!   `spawned == mapped + reused` over a mixed workload.
//! * `h..` (8d2eca2): `Hub::wake` and `iwait` proxies (events, semaphores,
//!   greenlets, async results, stale registrations), and the blocking
//!   detector's names (named greenlets named, forgotten once reaped: no
//!   growth with many named greenlets).
//! * `r..` (0bbdf14): `Core::cancel_unstarted` with no body, an unrun body,
//!   a body suspended mid-way and a finished one; `Stack::guard_lo`.
//! * `d..` (dd8f7bb): the doc claims of the audit, each checked as worded.
//!
//! Three tests show bugs, all three regressions of b26dc5e (they passed
//! with its task.rs change reverted, where `l02` fails): a link callback
//! cut by `unlink_all` now reports the failure under `IgnoreObserved`
//! whether or not something else observed it. `l03`: callback A ran (it
//! saw the failure) and cut callback B from inside: reported. `l05`: a
//! greenlet waited for the death (observed), then a late `link_exception`
//! is cut: reported (kept: see `l05`'s doc). `l10`: reported at the death under `Report`, then a
//! cut under `IgnoreObserved`: reported again. `Hub::report_unobserved`
//! (hub.rs) only knew whether it had reported already, and `Hub::report`
//! marked that only under `IgnoreObserved`. Fixed: a task's failure is
//! "settled" once any policy handled it at death, a waiter was there, or a
//! callback ran with it; only an unsettled one is reported when a cut or
//! unrun callback drops. The three tests pass now.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sylvan::sync::{AsyncResult, Channel, Event, LifoQueue, PriorityQueue, Queue, Semaphore};
use sylvan::{Builder, ErrorPolicy, Greenlet, Outcome, spawn, yield_now};

use crate::util::{
    DropFlag, bounded, child_texts, in_child, is_child, run_child, settle, yield_until,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const LONG: Duration = Duration::from_secs(3600);

/// The payload of the unwinds these probes start on purpose.
struct Unwind53;

/// Runs `f` from a destructor while the caller unwinds (a panic resumed
/// on purpose: no hook output) and returns whether the thread was
/// panicking there, and what `f` gave.
fn while_unwinding<R>(f: impl FnOnce() -> R) -> (bool, R) {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    let mut out = None;
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _g = Guard(Some(|| out = Some((std::thread::panicking(), f()))));
        std::panic::resume_unwind(Box::new(Unwind53));
    }));
    assert!(r.unwrap_err().is::<Unwind53>());
    out.expect("the destructor ran")
}

/// Whether `e` is the error of a socket operation that would have parked
/// while its greenlet unwinds.
fn is_unwinding_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Other && e.to_string().contains("is unwinding")
}

/// Waits, without running the hub (so no poll refreshes its flags), until
/// the kernel has `n` bytes (or a datagram of `n`) readable on `fd`.
fn await_kernel_bytes(fd: RawFd, n: usize) {
    let start = Instant::now();
    let mut b = vec![0u8; n];
    loop {
        // SAFETY: a non-blocking peek into a local buffer of `n` bytes.
        let got = unsafe {
            libc::recv(
                fd,
                b.as_mut_ptr().cast(),
                n,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if got == n as isize {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "the bytes never came"
        );
        std::thread::sleep(ms(1));
    }
}

/// Waits, without running the hub, until `poll` reports one of `events`
/// on `fd`.
fn await_kernel_event(fd: RawFd, events: libc::c_short) {
    let start = Instant::now();
    loop {
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, a zero timeout.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        if n == 1 && p.revents & events != 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "the event never came"
        );
        std::thread::sleep(ms(1));
    }
}

/// A sylvan client connected to a `std` peer on loopback.
fn tcp_to_std() -> (sylvan::net::TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = sylvan::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (peer, _) = l.accept().unwrap();
    (c, peer)
}

/// Makes a short read on `c` (3 bytes of 64): on Linux the hub then marks
/// the socket drained until its next poll.
fn short_read(c: &sylvan::net::TcpStream, peer: &mut std::net::TcpStream) {
    peer.write_all(b"abc").unwrap();
    await_kernel_bytes(c.as_raw_fd(), 3);
    let mut b = [0u8; 64];
    assert_eq!((&*c).read(&mut b).unwrap(), 3);
    assert_eq!(&b[..3], b"abc");
}

// ---------------------------------------------------------------- i: reads while unwinding (8fc4697)

/// 8fc4697: "an operation that can complete at once still does": after a
/// short read (drained), six bytes that came since are read by
/// `read_exact` in a destructor; and the socket works normally afterwards.
#[test]
fn i01_read_exact_in_a_destructor_takes_bytes_that_came_after_a_short_read() {
    bounded(|| {
        let (c, mut peer) = tcp_to_std();
        short_read(&c, &mut peer);
        peer.write_all(b"defghi").unwrap();
        await_kernel_bytes(c.as_raw_fd(), 6);
        let (panicking, r) = while_unwinding(|| {
            let mut b = [0u8; 6];
            (&c).read_exact(&mut b).map(|()| b)
        });
        assert!(panicking);
        assert_eq!(&r.unwrap(), b"defghi");
        // A normal read afterwards: parks, and gets bytes sent later.
        let g = {
            let mut peer = peer.try_clone().unwrap();
            spawn(move || {
                sylvan::sleep(ms(5));
                peer.write_all(b"later").unwrap();
            })
        };
        let mut b = [0u8; 5];
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"later");
        g.join().unwrap();
    });
}

/// 8fc4697, for a read that cannot complete at once: `read_exact` of six
/// bytes with only three there after a short read gets the three, then
/// the unwinding error ("would block"), not a hang or a wrong count.
#[test]
fn i02_read_exact_in_a_destructor_with_too_few_bytes_reports_it() {
    bounded(|| {
        let (c, mut peer) = tcp_to_std();
        short_read(&c, &mut peer);
        peer.write_all(b"def").unwrap();
        await_kernel_bytes(c.as_raw_fd(), 3);
        let (_, r) = while_unwinding(|| {
            let mut b = [0u8; 6];
            (&c).read_exact(&mut b)
        });
        let e = r.unwrap_err();
        assert!(is_unwinding_error(&e), "{e:?}");
        // The three bytes were consumed by read_exact; the socket goes on.
        peer.write_all(b"xyz").unwrap();
        let mut b = [0u8; 3];
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"xyz");
    });
}

/// 8fc4697 with end of stream: after a short read, the peer sends a tail
/// and closes; `read_to_end` in a destructor gets the tail and the end
/// (the syscall sees the FIN the cached flag does not know of).
#[test]
fn i03_read_to_end_in_a_destructor_reaches_end_of_stream() {
    bounded(|| {
        let (c, mut peer) = tcp_to_std();
        short_read(&c, &mut peer);
        peer.write_all(b"tail").unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        await_kernel_event(c.as_raw_fd(), libc::POLLRDHUP);
        let (_, r) = while_unwinding(|| {
            let mut v = Vec::new();
            (&c).read_to_end(&mut v).map(|n| (n, v))
        });
        let (n, v) = r.unwrap();
        assert_eq!((n, v.as_slice()), (4, &b"tail"[..]));
        // End of stream again, from a normal read.
        let mut b = [0u8; 8];
        assert_eq!((&c).read(&mut b).unwrap(), 0);
    });
}

/// 8fc4697 with a reset peer: the destructor's read gives the reset
/// (`ConnectionReset`), not the unwinding error.
#[test]
fn i04_a_read_in_a_destructor_sees_a_reset() {
    bounded(|| {
        let (c, mut peer) = tcp_to_std();
        short_read(&c, &mut peer);
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt with a valid linger struct on an open socket.
        let rc = unsafe {
            libc::setsockopt(
                peer.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        drop(peer); // RST
        await_kernel_event(c.as_raw_fd(), libc::POLLERR | libc::POLLHUP);
        let (_, r) = while_unwinding(|| {
            let mut b = [0u8; 8];
            (&c).read(&mut b)
        });
        let e = r.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e:?}");
    });
}

/// 8fc4697: nothing there after a short read: the destructor's read tries,
/// finds nothing, and reports that it would block (at once); later reads
/// from another greenlet park and are woken by new bytes as usual.
#[test]
fn i05_nothing_there_reports_would_block_and_the_socket_stays_coherent() {
    bounded(|| {
        let (c, mut peer) = tcp_to_std();
        short_read(&c, &mut peer);
        let t = Instant::now();
        let (_, r) = while_unwinding(|| {
            let mut b = [0u8; 8];
            (&c).read(&mut b)
        });
        assert!(t.elapsed() < Duration::from_secs(1));
        let e = r.unwrap_err();
        assert!(is_unwinding_error(&e), "{e:?}");
        let c = Rc::new(c);
        let c2 = c.clone();
        let reader = spawn(move || {
            let mut b = [0u8; 16];
            let n = (&*c2).read(&mut b).unwrap();
            b[..n].to_vec()
        });
        yield_now();
        assert!(reader.is_started() && !reader.is_dead());
        peer.write_all(b"wake").unwrap();
        assert_eq!(reader.join().unwrap(), b"wake");
    });
}

/// 8fc4697 and the hub's waiters: a reader of another greenlet is parked
/// on the socket; bytes come and a destructor on main takes part of them
/// (the syscall); the parked reader still gets the rest, then later bytes.
#[test]
fn i06_a_parked_reader_gets_what_a_destructor_left() {
    bounded(|| {
        let (c, mut peer) = tcp_to_std();
        short_read(&c, &mut peer);
        let c = Rc::new(c);
        let c2 = c.clone();
        let reader = spawn(move || {
            let mut got = Vec::new();
            let mut b = [0u8; 16];
            while got.len() < 5 {
                let n = (&*c2).read(&mut b).unwrap();
                assert!(n > 0, "early end of stream");
                got.extend_from_slice(&b[..n]);
            }
            got
        });
        yield_now();
        assert!(reader.is_started() && !reader.is_dead(), "parked in read");
        peer.write_all(b"xyz").unwrap();
        await_kernel_bytes(c.as_raw_fd(), 3);
        let (_, r) = while_unwinding(|| {
            let mut b = [0u8; 2];
            (&*c).read(&mut b).map(|n| b[..n].to_vec())
        });
        assert_eq!(r.unwrap(), b"xy");
        // The reader gets "z" (already there) without new bytes...
        yield_until("the reader took the byte left", || {
            let mut b = 0u8;
            // SAFETY: a non-blocking one-byte peek into a local.
            let n = unsafe {
                libc::recv(
                    c.as_raw_fd(),
                    (&raw mut b).cast(),
                    1,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            n < 0
        });
        // ... then more.
        peer.write_all(b"more").unwrap();
        assert_eq!(reader.join().unwrap(), b"zmore");
    });
}

/// 8fc4697 with `set_nonblocking(true)`: a destructor's read gives the
/// bytes that are there, else `WouldBlock` (the socket's own EAGAIN), as
/// outside a destructor.
#[test]
fn i07_non_blocking_mode_reads_in_a_destructor() {
    bounded(|| {
        let (c, mut peer) = tcp_to_std();
        short_read(&c, &mut peer);
        c.set_nonblocking(true).unwrap();
        let (_, r) = while_unwinding(|| {
            let mut b = [0u8; 8];
            (&c).read(&mut b)
        });
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        peer.write_all(b"nb").unwrap();
        await_kernel_bytes(c.as_raw_fd(), 2);
        let (_, r) = while_unwinding(|| {
            let mut b = [0u8; 8];
            (&c).read(&mut b).map(|n| b[..n].to_vec())
        });
        assert_eq!(r.unwrap(), b"nb");
    });
}

/// 8fc4697 with a read timeout: bytes that came after a short read are
/// read in a destructor; with nothing there the destructor's read returns
/// at once with the unwinding error, not after the timeout and not as
/// `TimedOut`.
#[test]
fn i08_a_read_timeout_changes_nothing_while_unwinding() {
    bounded(|| {
        let (c, mut peer) = tcp_to_std();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        short_read(&c, &mut peer);
        peer.write_all(b"timed").unwrap();
        await_kernel_bytes(c.as_raw_fd(), 5);
        let (_, r) = while_unwinding(|| {
            let mut b = [0u8; 8];
            (&c).read(&mut b).map(|n| b[..n].to_vec())
        });
        assert_eq!(r.unwrap(), b"timed");
        let t = Instant::now();
        let (_, r) = while_unwinding(|| {
            let mut b = [0u8; 8];
            (&c).read(&mut b)
        });
        assert!(t.elapsed() < ms(500), "{:?}", t.elapsed());
        let e = r.unwrap_err();
        assert!(is_unwinding_error(&e), "{e:?}");
        // The timeout still applies to a normal read.
        c.set_read_timeout(Some(ms(30))).unwrap();
        let mut b = [0u8; 8];
        assert_eq!(
            (&c).read(&mut b).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
    });
}

/// 8fc4697 / "a socket read that would wait reports so", for peeks: a
/// TCP peek in a destructor gets the bytes there (leaving them), and
/// reports the unwinding error when there are none.
#[test]
fn i09_peek_in_a_destructor() {
    bounded(|| {
        let (c, mut peer) = tcp_to_std();
        short_read(&c, &mut peer);
        let (_, r) = while_unwinding(|| {
            let mut b = [0u8; 8];
            c.peek(&mut b)
        });
        assert!(is_unwinding_error(&r.unwrap_err()));
        peer.write_all(b"pk").unwrap();
        await_kernel_bytes(c.as_raw_fd(), 2);
        let (_, r) = while_unwinding(|| {
            let mut b = [0u8; 8];
            c.peek(&mut b).map(|n| b[..n].to_vec())
        });
        assert_eq!(r.unwrap(), b"pk");
        let mut b = [0u8; 2];
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"pk");
    });
}

/// The same for a Unix stream (which never takes the drained shortcut): a
/// destructor reads the bytes there after a short read, and reports the
/// unwinding error when there are none.
#[test]
fn i10_unix_stream_reads_in_a_destructor() {
    bounded(|| {
        let (a, b) = sylvan::net::UnixStream::pair().unwrap();
        (&a).write_all(b"abc").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!((&b).read(&mut buf).unwrap(), 3);
        (&a).write_all(b"def").unwrap();
        let (_, r) = while_unwinding(|| (&b).read(&mut buf).map(|n| buf[..n].to_vec()));
        assert_eq!(r.unwrap(), b"def");
        let (_, r) = while_unwinding(|| (&b).read(&mut [0u8; 8]));
        assert!(is_unwinding_error(&r.unwrap_err()));
        (&a).write_all(b"g").unwrap();
        assert_eq!((&b).read(&mut buf).unwrap(), 1);
    });
}

/// The same for UDP: a datagram there is received (and peeked) in a
/// destructor; none there gives the unwinding error.
#[test]
fn i11_udp_receives_in_a_destructor() {
    bounded(|| {
        let a = sylvan::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = sylvan::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (_, r) = while_unwinding(|| b.recv_from(&mut [0u8; 8]));
        assert!(is_unwinding_error(&r.unwrap_err()));
        a.send_to(b"dgram", b.local_addr().unwrap()).unwrap();
        await_kernel_bytes(b.as_raw_fd(), 5);
        let (_, r) = while_unwinding(|| {
            let mut buf = [0u8; 8];
            b.peek(&mut buf).map(|n| buf[..n].to_vec())
        });
        assert_eq!(r.unwrap(), b"dgram");
        let (_, r) = while_unwinding(|| {
            let mut buf = [0u8; 8];
            b.recv_from(&mut buf)
                .map(|(n, from)| (buf[..n].to_vec(), from))
        });
        let (v, from) = r.unwrap();
        assert_eq!(
            (v.as_slice(), from),
            (&b"dgram"[..], a.local_addr().unwrap())
        );
        // A normal receive afterwards.
        let g = spawn(move || {
            sylvan::sleep(ms(5));
            a.send_to(b"next", b.local_addr().unwrap()).unwrap();
            b
        });
        let b = g.join().unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(b.recv(&mut buf).unwrap(), 4);
    });
}

/// The same for `os::Fd`: a read in a destructor takes what is there and
/// reports the unwinding error when nothing is.
#[test]
fn i12_os_fd_reads_in_a_destructor() {
    bounded(|| {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = sylvan::os::Fd::new(b).unwrap();
        let (_, r) = while_unwinding(|| (&fd).read(&mut [0u8; 8]));
        assert!(is_unwinding_error(&r.unwrap_err()));
        (&a).write_all(b"fd").unwrap();
        let (_, r) = while_unwinding(|| {
            let mut buf = [0u8; 8];
            (&fd).read(&mut buf).map(|n| buf[..n].to_vec())
        });
        assert_eq!(r.unwrap(), b"fd");
    });
}

/// Writes take `do_io` (the syscall first): in a destructor, a write with
/// room in the socket buffer goes through; with the buffer full it
/// reports the unwinding error at once; once the peer drains, a normal
/// write goes through.
#[test]
fn i13_writes_in_a_destructor_with_and_without_room() {
    bounded(|| {
        let (c, mut peer) = tcp_to_std();
        let (_, r) = while_unwinding(|| (&c).write(b"room"));
        assert_eq!(r.unwrap(), 4);
        let mut b = [0u8; 4];
        peer.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"room");
        // Fill the send and receive buffers.
        c.set_nonblocking(true).unwrap();
        let chunk = vec![7u8; 64 << 10];
        let mut total = 0usize;
        loop {
            match (&c).write(&chunk) {
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
            assert!(total < 512 << 20, "the buffers never filled");
        }
        c.set_nonblocking(false).unwrap();
        let t = Instant::now();
        let (_, r) = while_unwinding(|| (&c).write(b"full"));
        assert!(t.elapsed() < ms(500));
        let e = r.unwrap_err();
        assert!(is_unwinding_error(&e), "{e:?}");
        let drain = std::thread::spawn(move || {
            let mut v = vec![0u8; total + 5];
            peer.read_exact(&mut v).unwrap();
            v[total..].to_vec()
        });
        (&c).write_all(b"after").unwrap();
        // The std thread drains while main parks on the hub.
        let t = Instant::now();
        while !drain.is_finished() {
            assert!(t.elapsed() < Duration::from_secs(4));
            sylvan::sleep(ms(1));
        }
        assert_eq!(drain.join().unwrap(), b"after");
    });
}

/// 8fc4697 in a killed greenlet (the unwind of a kill, not a panic): its
/// guard's destructor reads the bytes that came after a short read.
#[test]
fn i14_a_killed_greenlets_destructor_reads_what_is_there() {
    bounded(|| {
        let (c, mut peer) = tcp_to_std();
        short_read(&c, &mut peer);
        let c = Rc::new(c);
        let got = Rc::new(RefCell::new(None));
        struct ReadOnDrop(
            Rc<sylvan::net::TcpStream>,
            Rc<RefCell<Option<io::Result<Vec<u8>>>>>,
        );
        impl Drop for ReadOnDrop {
            fn drop(&mut self) {
                let mut b = [0u8; 16];
                let r = (&*self.0).read(&mut b).map(|n| b[..n].to_vec());
                *self.1.borrow_mut() = Some(r);
            }
        }
        let guard = ReadOnDrop(c.clone(), got.clone());
        let g = spawn(move || {
            let _guard = guard;
            sylvan::sleep(LONG);
        });
        yield_now();
        peer.write_all(b"killed").unwrap();
        await_kernel_bytes(c.as_raw_fd(), 6);
        g.kill();
        let r = got.borrow_mut().take().expect("the destructor ran");
        assert_eq!(r.unwrap(), b"killed");
    });
}

// ---------------------------------------------------------------- l: unlink_all and IgnoreObserved (b26dc5e)

const L: &str = "probes53::";

/// Runs `body` in a child process under `IgnoreObserved` (bounded, ending
/// with every greenlet done), and returns its stdout and stderr in the parent.
fn ignore_observed_child(test: &str, body: impl FnOnce()) -> Option<(String, String)> {
    child_texts(&format!("{L}{test}"), test, || {
        sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
        body();
        settle();
        println!("after settle");
    })
}

/// b26dc5e: `unlink_all` before the death removes the only observer: the
/// failure is reported once, at the death (the dropped callback does not
/// report a failure that has not happened, nor a second time).
#[test]
fn l01_unlink_all_before_the_death_reports_once() {
    let Some((out, err)) =
        ignore_observed_child("l01_unlink_all_before_the_death_reports_once", || {
            let g = spawn(|| -> u32 {
                yield_now();
                panic!("p53-l01-boom")
            });
            g.link_exception(|e| println!("callback saw {e}"));
            g.unlink_all();
        })
    else {
        return;
    };
    assert!(!out.contains("callback saw"), "{out}");
    assert_eq!(err.matches("p53-l01-boom").count(), 1, "{err}");
}

/// b26dc5e with two callbacks cut after the death: reported once, not
/// once per cut callback.
#[test]
fn l02_two_callbacks_cut_after_the_death_report_once() {
    let Some((out, err)) =
        ignore_observed_child("l02_two_callbacks_cut_after_the_death_report_once", || {
            let g = spawn(|| -> u32 { panic!("p53-l02-boom") });
            g.link_exception(|e| println!("callback A saw {e}"));
            g.link(|_| println!("callback B ran"));
            yield_now();
            assert!(g.is_dead());
            g.unlink_all();
        })
    else {
        return;
    };
    assert!(!out.contains(" saw ") && !out.contains("B ran"), "{out}");
    assert_eq!(err.matches("p53-l02-boom").count(), 1, "{err}");
}

/// `ErrorPolicy::IgnoreObserved`: "Report only failures that nothing
/// observed" and failures.rs's "One whose callback ran stays unreported".
/// Callback A runs (it observed the failure) and calls `unlink_all`,
/// which cuts callback B before it starts: A saw it, so nothing should be
/// reported.
#[test]
fn l03_a_callback_that_ran_and_cut_the_next_leaves_it_unreported() {
    let Some((out, err)) = ignore_observed_child(
        "l03_a_callback_that_ran_and_cut_the_next_leaves_it_unreported",
        || {
            let g = Rc::new(spawn(|| -> u32 { panic!("p53-l03-boom") }));
            let g2 = g.clone();
            g.link_exception(move |e| {
                println!("callback A saw {e}");
                g2.unlink_all();
            });
            g.link_exception(|e| println!("callback B saw {e}"));
            // `g` stays alive until both callbacks are settled.
            settle();
        },
    ) else {
        return;
    };
    assert!(out.contains("callback A saw"), "{out}");
    assert!(!out.contains("callback B saw"), "{out}");
    assert_eq!(err.matches("p53-l03-boom").count(), 0, "{err}");
}

/// `link_value` is never an observer: a failure with only a `link_value`
/// callback is reported at the death, once, and cutting that callback
/// after the death adds nothing.
#[test]
fn l04_link_value_is_no_observer_and_its_cut_adds_nothing() {
    let Some((out, err)) = ignore_observed_child(
        "l04_link_value_is_no_observer_and_its_cut_adds_nothing",
        || {
            let g = spawn(|| -> u32 { panic!("p53-l04-boom") });
            g.link_value(|v| println!("value callback saw {v}"));
            yield_now();
            assert!(g.is_dead());
            g.unlink_all();
        },
    ) else {
        return;
    };
    assert!(!out.contains("value callback"), "{out}");
    assert_eq!(err.matches("p53-l04-boom").count(), 1, "{err}");
}

/// `Failure::observed` / `IgnoreObserved`: a failure observed at its death
/// by a greenlet waiting for it (`wait`) is not reported then. `wait`
/// sees the death, not the failure: a `link_exception` added after the
/// death and cut by `unlink_all` before it runs reports it, once, as any
/// callback dropped unrun with nothing else having seen the failure
/// (round 53 first expected no report; the rule was settled the other way
/// so that `joinall` plus unrun callbacks, probes36 u01, still reports).
#[test]
fn l05_a_late_link_cut_after_a_wait_reports_the_failure_once() {
    let Some((out, err)) = ignore_observed_child(
        "l05_a_late_link_cut_after_a_wait_reports_the_failure_once",
        || {
            let g = spawn(|| -> u32 {
                sylvan::sleep(ms(2));
                panic!("p53-l05-boom")
            });
            assert!(g.wait(None));
            g.link_exception(|e| println!("late callback saw {e}"));
            g.unlink_all();
        },
    ) else {
        return;
    };
    assert!(!out.contains("late callback"), "{out}");
    assert_eq!(err.matches("p53-l05-boom").count(), 1, "{err}");
}

/// b26dc5e changes nothing for `Report`: a failure with a callback cut
/// after the death is reported once (at the death).
#[test]
fn l06_report_policy_reports_once_with_a_cut_callback() {
    let Some((out, err)) = child_texts(
        &format!("{L}l06_report_policy_reports_once_with_a_cut_callback"),
        "l06",
        || {
            let g = spawn(|| -> u32 { panic!("p53-l06-boom") });
            g.link_exception(|e| println!("callback saw {e}"));
            yield_now();
            g.unlink_all();
            settle();
        },
    ) else {
        return;
    };
    assert!(!out.contains("callback saw"), "{out}");
    assert_eq!(err.matches("p53-l06-boom").count(), 1, "{err}");
}

/// b26dc5e changes nothing for `Custom`: the policy is called once, at
/// the death, whether the callbacks are cut before, after, or run.
#[test]
fn l07_custom_policy_is_called_once_whatever_unlink_all_does() {
    bounded(|| {
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_| c.set(c.get() + 1))));
        for mode in 0..3 {
            let g = spawn(|| -> u32 { panic!("p53-l07") });
            g.link_exception(|_| {});
            g.link(|_| {});
            if mode == 0 {
                g.unlink_all();
            }
            yield_now();
            if mode == 1 {
                g.unlink_all();
            }
            settle();
            assert_eq!(calls.get(), mode + 1, "mode {mode}");
        }
    });
}

/// A kill is no failure: a killed greenlet whose callbacks are cut after
/// its death reports nothing under `IgnoreObserved`.
#[test]
fn l08_a_killed_greenlet_with_cut_callbacks_reports_nothing() {
    let Some((out, err)) = ignore_observed_child(
        "l08_a_killed_greenlet_with_cut_callbacks_reports_nothing",
        || {
            let g = spawn(|| -> u32 {
                sylvan::sleep(LONG);
                1
            });
            g.link(|_| println!("callback ran"));
            g.link_exception(|_| println!("exception callback ran"));
            yield_now();
            g.kill_nowait();
            yield_now();
            assert!(g.is_dead());
            g.unlink_all();
        },
    ) else {
        return;
    };
    assert!(!out.contains("callback ran"), "{out}");
    assert!(!err.contains("greenlet"), "{err}");
}

/// The thread-exit path with callbacks queued and one cut: the failure of
/// a greenlet whose two callbacks never ran (one cut by `unlink_all`, the
/// other dropped at thread exit) is reported once, and nothing is printed
/// after the hub is gone.
#[test]
fn l09_thread_exit_with_callbacks_queued_reports_once() {
    let Some((out, err)) = child_texts(
        &format!("{L}l09_thread_exit_with_callbacks_queued_reports_once"),
        "l09",
        || {
            let t = std::thread::spawn(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let a = spawn(|| -> u32 { panic!("p53-l09-a") });
                a.link_exception(|e| println!("callback A saw {e}"));
                let b = spawn(|| -> u32 { panic!("p53-l09-b") });
                b.link_exception(|e| println!("callback B1 saw {e}"));
                b.link_exception(|e| println!("callback B2 saw {e}"));
                // Both die; their callbacks' greenlets are queued.
                yield_now();
                assert!(a.is_dead() && b.is_dead());
                b.unlink_all();
                // Returns with a's callback (and nothing of b's) queued.
            });
            t.join().unwrap();
        },
    ) else {
        return;
    };
    assert!(!out.contains(" saw "), "{out}");
    assert_eq!(err.matches("p53-l09-a").count(), 1, "{err}");
    assert_eq!(err.matches("p53-l09-b").count(), 1, "{err}");
}

/// A policy changed between the death and the cut: reported at the death
/// under `Report`, then cut under `IgnoreObserved`. "Report every failure
/// once" and "reported ... so it is not lost" both say one report.
#[test]
fn l10_a_policy_switched_after_the_death_does_not_report_twice() {
    let Some((_, err)) = child_texts(
        &format!("{L}l10_a_policy_switched_after_the_death_does_not_report_twice"),
        "l10",
        || {
            let g = spawn(|| -> u32 { panic!("p53-l10-boom") });
            g.link_exception(|e| println!("callback saw {e}"));
            yield_now();
            assert!(g.is_dead());
            sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
            g.unlink_all();
            settle();
        },
    ) else {
        return;
    };
    assert_eq!(err.matches("p53-l10-boom").count(), 1, "{err}");
}

// ---------------------------------------------------------------- s: stack pool counters (6680e29)

fn st() -> sylvan::HubStats {
    sylvan::stats()
}

/// (mapped, reused, spawned) since `base`.
fn delta(base: &sylvan::HubStats) -> (u64, u64, u64) {
    let s = st();
    (
        s.stacks_mapped - base.stacks_mapped,
        s.stacks_reused - base.stacks_reused,
        s.spawned - base.spawned,
    )
}

/// `stacks_reused`: "Spawns served from the stack pool, not by mapping a
/// new stack"; `stacks_mapped`: "Stacks mapped so far". On a fresh thread:
/// ten spawns alive at once map ten and reuse none; ten more then reuse
/// ten; ten spawn/join cycles reuse ten.
#[test]
fn s01_spawn_join_cycles_count_as_a_user_reads_them() {
    std::thread::spawn(|| {
        bounded(|| {
            let base = st();
            let gs: Vec<_> = (0..10).map(|i| spawn(move || i)).collect();
            assert_eq!(delta(&base), (10, 0, 10), "reservations mapped");
            for g in gs {
                g.join().unwrap();
            }
            assert_eq!(delta(&base), (10, 0, 10), "running takes nothing more");
            let gs: Vec<_> = (0..10).map(|i| spawn(move || i)).collect();
            assert_eq!(delta(&base), (10, 10, 20));
            for g in gs {
                g.join().unwrap();
            }
            for i in 0..10 {
                assert_eq!(spawn(move || i).join().unwrap(), i);
            }
            assert_eq!(delta(&base), (10, 20, 30));
            assert_eq!(st().stacks_pooled, 10);
        })
    })
    .join()
    .unwrap();
}

/// Spawns cancelled before they run: a reservation served by a spare
/// stack counts as a reuse when made, one that maps counts as mapped;
/// the kill adds nothing; the stack stays in the pool for the next spawn.
#[test]
fn s02_spawns_killed_before_they_run() {
    std::thread::spawn(|| {
        bounded(|| {
            let base = st();
            let g = spawn(|| 1);
            g.kill();
            assert!(g.join().unwrap_err().is_killed());
            assert_eq!(delta(&base), (1, 0, 1));
            assert_eq!(st().stacks_pooled, 1, "the unused stack stays pooled");
            let g = spawn(|| 2);
            assert_eq!(delta(&base), (1, 1, 2));
            g.kill();
            let later = sylvan::spawn_later(ms(50), || 3);
            assert_eq!(delta(&base), (1, 2, 3));
            later.kill();
            assert_eq!(spawn(|| 4).join().unwrap(), 4);
            assert_eq!(delta(&base), (1, 3, 4));
            assert_eq!(st().stacks_pooled, 1);
        })
    })
    .join()
    .unwrap();
}

/// `Builder::stack_size`: a non-default size maps once and is reused after;
/// "Sizes under 16 KiB are rounded up to it" (README): stacks asked for 0,
/// 1 and 16 KiB bytes share one bucket.
#[test]
fn s03_stack_size_spawns_and_sizes_under_16k_share_a_bucket() {
    std::thread::spawn(|| {
        bounded(|| {
            let base = st();
            for _ in 0..3 {
                let g = Builder::new().stack_size(64 << 10).spawn(|| 5).unwrap();
                g.join().unwrap();
            }
            assert_eq!(delta(&base), (1, 2, 3));
            let base = st();
            for size in [
                1,
                0,
                sylvan::MIN_STACK_SIZE,
                sylvan::MIN_STACK_SIZE - 1,
                4096,
            ] {
                let g = Builder::new().stack_size(size).spawn(|| 6).unwrap();
                assert_eq!(g.join().unwrap(), 6);
            }
            assert_eq!(delta(&base), (1, 4, 5), "one 16 KiB stack for all");
            // Killed before it ran: its stack (placed at spawn) goes back.
            let base = st();
            let g = Builder::new()
                .stack_size(sylvan::MIN_STACK_SIZE)
                .spawn(|| 7)
                .unwrap();
            g.kill();
            let g = Builder::new()
                .stack_size(sylvan::MIN_STACK_SIZE)
                .spawn(|| 8)
                .unwrap();
            assert_eq!(g.join().unwrap(), 8);
            assert_eq!(delta(&base), (0, 2, 2));
        })
    })
    .join()
    .unwrap();
}

/// `set_stack_pool_limit` and `trim_stack_pool` as a user reads them: a
/// limit of zero maps every spawn and unmaps every stack given back;
/// lowering the limit unmaps the excess at once ("or the limit was
/// lowered"); a trim changes no counter and the stacks are reused after.
#[test]
fn s04_pool_limit_and_trim() {
    std::thread::spawn(|| {
        bounded(|| {
            let gs: Vec<_> = (0..8).map(|i| spawn(move || i)).collect();
            for g in gs {
                g.join().unwrap();
            }
            let s0 = st();
            assert_eq!(s0.stacks_pooled, 8);
            sylvan::trim_stack_pool();
            let s1 = st();
            assert_eq!(
                (
                    s1.stacks_mapped,
                    s1.stacks_unmapped,
                    s1.stacks_reused,
                    s1.stacks_pooled
                ),
                (s0.stacks_mapped, s0.stacks_unmapped, s0.stacks_reused, 8)
            );
            assert_eq!(spawn(|| 1).join().unwrap(), 1);
            assert_eq!(st().stacks_reused, s1.stacks_reused + 1);
            sylvan::set_stack_pool_limit(3);
            let s2 = st();
            assert_eq!(s2.stacks_unmapped - s1.stacks_unmapped, 5);
            assert_eq!(s2.stacks_pooled, 3);
            sylvan::set_stack_pool_limit(0);
            let s3 = st();
            assert_eq!(
                (s3.stacks_unmapped - s2.stacks_unmapped, s3.stacks_pooled),
                (3, 0)
            );
            for i in 0..4 {
                assert_eq!(spawn(move || i).join().unwrap(), i);
            }
            let g = spawn(|| 9);
            g.kill();
            let s4 = st();
            assert_eq!(
                (
                    s4.stacks_mapped - s3.stacks_mapped,
                    s4.stacks_reused - s3.stacks_reused,
                    s4.stacks_unmapped - s3.stacks_unmapped,
                    s4.stacks_pooled
                ),
                (5, 0, 5, 0)
            );
            sylvan::set_stack_pool_limit(sylvan::DEFAULT_POOL_LIMIT);
        })
    })
    .join()
    .unwrap();
}

/// Over a mixed workload (link callbacks, `spawn_later`, kills before and
/// after start, pools, several sizes, a lowered and raised limit), every
/// spawn is served once: `spawned == stacks_mapped + stacks_reused`.
#[test]
fn s05_every_spawn_is_mapped_or_reused_once() {
    std::thread::spawn(|| {
        bounded(|| {
            crate::util::quiet();
            let base = st();
            let pool = sylvan::pool::Pool::new(3);
            for round in 0..4u64 {
                let mut gs = Vec::new();
                for i in 0..12u64 {
                    let g = match i % 4 {
                        0 => spawn(move || i),
                        1 => Builder::new()
                            .stack_size(32 << 10)
                            .spawn(move || i)
                            .unwrap(),
                        2 => sylvan::spawn_later(ms(1), move || i),
                        _ => pool.spawn(move || {
                            yield_now();
                            i
                        }),
                    };
                    if i % 3 == 0 {
                        g.link(|_| {});
                    }
                    gs.push(g);
                }
                // Some killed before they start, some after.
                gs[5].kill();
                yield_now();
                gs[7].kill();
                let bad = spawn(|| -> u64 { panic!("p53-s05") });
                bad.link_exception(|_| {});
                gs.push(bad);
                if round == 2 {
                    sylvan::set_stack_pool_limit(2);
                }
                assert!(sylvan::joinall(&gs, Some(Duration::from_secs(4))));
                drop(gs);
                settle();
                sylvan::set_stack_pool_limit(sylvan::DEFAULT_POOL_LIMIT);
                let (mapped, reused, spawned) = delta(&base);
                assert_eq!(mapped + reused, spawned, "round {round}");
            }
        })
    })
    .join()
    .unwrap();
}

// ---------------------------------------------------------------- h: wake, iwait proxies, the detector's names (8d2eca2)

/// `Hub::wake` with its proxy branch out of line: `iwait` over an event, a
/// semaphore, a greenlet and an async result reports each as another
/// greenlet makes it ready, in that order, and nothing is left watching.
#[test]
fn h01_iwait_over_every_builtin_kind_wakes_in_order() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let sem = Rc::new(Semaphore::new(0));
        let ar: Rc<AsyncResult<u32>> = Rc::new(AsyncResult::new());
        let gate = Rc::new(Event::new());
        let g = {
            let gate = gate.clone();
            spawn(move || {
                gate.wait();
                7u32
            })
        };
        let driver = {
            let (ev, sem, ar, gate) = (ev.clone(), sem.clone(), ar.clone(), gate.clone());
            spawn(move || {
                for step in 0..4 {
                    sylvan::sleep(ms(2));
                    match step {
                        0 => sem.release(),
                        1 => ev.set(),
                        2 => ar.set(5).unwrap(),
                        _ => gate.set(),
                    }
                }
            })
        };
        let objs: [&dyn sylvan::Waitable; 4] = [&*ev, &*sem, &g, &*ar];
        let order: Vec<usize> = sylvan::iwait(&objs, Some(Duration::from_secs(3))).collect();
        assert_eq!(order, [1, 0, 3, 2]);
        driver.join().unwrap();
        assert_eq!((ev.waiters(), sem.watchers(), ar.waiters()), (0, 0, 0));
        assert_eq!(g.join().unwrap(), 7);
    });
}

/// Many greenlets in `wait` on one event and one semaphore at once: one
/// `set` wakes every one of them (each proxy notified once), and a second
/// round works the same.
#[test]
fn h02_many_iwaiters_on_one_event_all_wake() {
    bounded(|| {
        for _ in 0..2 {
            let ev = Rc::new(Event::new());
            let sem = Rc::new(Semaphore::new(0));
            let woke = Rc::new(Cell::new(0));
            let gs: Vec<_> = (0..50)
                .map(|_| {
                    let (ev, sem, woke) = (ev.clone(), sem.clone(), woke.clone());
                    spawn(move || {
                        let objs: [&dyn sylvan::Waitable; 2] = [&*sem, &*ev];
                        let got = sylvan::wait(&objs, Some(Duration::from_secs(3)), Some(1));
                        assert_eq!(got, [1]);
                        woke.set(woke.get() + 1);
                    })
                })
                .collect();
            yield_now();
            assert_eq!(woke.get(), 0);
            ev.set();
            assert!(sylvan::joinall(&gs, Some(Duration::from_secs(3))));
            assert_eq!(woke.get(), 50);
            assert_eq!(sem.watchers(), 0);
        }
    });
}

/// A stale proxy: an `iwait` that timed out (or was dropped) and left;
/// the objects becoming ready later wake nothing and break nothing, and a
/// new `iwait` on them works.
#[test]
fn h03_objects_ready_after_their_iwait_left_wake_nothing() {
    bounded(|| {
        let ev = Event::new();
        let ar: AsyncResult<u32> = AsyncResult::new();
        let g = spawn(|| sylvan::sleep(ms(20)));
        {
            let objs: [&dyn sylvan::Waitable; 3] = [&ev, &ar, &g];
            let mut it = sylvan::iwait(&objs, Some(ms(5)));
            assert_eq!(it.next(), None);
        }
        {
            let objs: [&dyn sylvan::Waitable; 3] = [&ev, &ar, &g];
            let mut it = sylvan::iwait(&objs, None);
            let ev2 = &ev;
            // Dropped while parked on all three: a timeout cuts `next`.
            let r = sylvan::with_timeout(ms(3), || it.next());
            assert!(r.is_err());
            drop(it);
            ev2.set();
        }
        ar.set(1).unwrap();
        g.join().unwrap();
        yield_now();
        let ev3 = Event::new();
        let objs: [&dyn sylvan::Waitable; 3] = [&ev3, &ev, &ar];
        assert_eq!(sylvan::wait(&objs, Some(ms(100)), None), [1, 2]);
    });
}

type Reports = std::sync::mpsc::Receiver<(sylvan::GreenletId, Option<String>)>;

/// A blocking detector (40 ms) whose reports come through the receiver.
fn detector() -> (sylvan::BlockingDetector, Reports) {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let det = sylvan::BlockingDetector::with_callback(ms(40), move |r| {
        let _ = tx.lock().unwrap().send((r.greenlet, r.name.clone()));
    });
    (det, rx)
}

/// Among the reports (a loaded machine may add stalls of its own), at
/// least one is for `id`, and every one for `id` names it `name`.
fn assert_named(rx: &Reports, id: sylvan::GreenletId, name: &str) {
    let mut got: Vec<_> = rx.try_iter().collect();
    if got.is_empty() {
        got.extend(rx.recv_timeout(Duration::from_secs(2)));
    }
    let mine: Vec<_> = got.iter().filter(|(g, _)| *g == id).collect();
    assert!(!mine.is_empty(), "no report for {id}: {got:?}");
    assert!(
        mine.iter().all(|(_, n)| n.as_deref() == Some(name)),
        "{got:?}"
    );
}

/// The blocking detector names a named greenlet that stalls the hub, after
/// many named greenlets were spawned and reaped (and with many alive).
#[test]
fn h04_the_detector_names_a_named_staller_among_many() {
    bounded(|| {
        for i in 0..2000 {
            Builder::new()
                .name(format!("short-{i}"))
                .spawn(|| ())
                .unwrap()
                .join()
                .unwrap();
        }
        let alive: Vec<_> = (0..100)
            .map(|i| {
                Builder::new()
                    .name(format!("alive-{i}"))
                    .spawn(|| sylvan::sleep(LONG))
                    .unwrap()
            })
            .collect();
        yield_now();
        let (det, rx) = detector();
        let staller = Builder::new()
            .name("p53-staller")
            .spawn(|| {
                std::thread::sleep(ms(200));
                sylvan::current()
            })
            .unwrap();
        let id = staller.join().unwrap();
        drop(det);
        assert_named(&rx, id, "p53-staller");
        sylvan::killall(&alive, None).unwrap();
    });
}

/// `BlockingReport::greenlet`: "A stall in the hub's own loop (a slow
/// timer callback or error policy) is reported against the greenlet that
/// ran last", here a named greenlet whose failure the custom policy
/// handles slowly: its id and its name.
#[test]
fn h05_a_slow_error_policy_is_reported_against_the_failed_greenlet() {
    bounded(|| {
        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(|_| {
            std::thread::sleep(ms(200));
        })));
        let (det, rx) = detector();
        let g = Builder::new()
            .name("p53-failing")
            .spawn(|| -> u32 { panic!("p53-h05") })
            .unwrap();
        let id = g.id();
        assert!(g.join().unwrap_err().is_panic());
        drop(det);
        assert_named(&rx, id, "p53-failing");
    });
}

/// `BlockingReport::name`: "Its name, if it was spawned with one". A
/// stall in the drop of a detached named greenlet's value (after its body
/// returned, around its reap) is reported against it, with its name.
#[test]
fn h06_a_slow_value_drop_of_a_detached_named_greenlet_is_named() {
    bounded(|| {
        struct SlowDrop;
        impl Drop for SlowDrop {
            fn drop(&mut self) {
                std::thread::sleep(ms(200));
            }
        }
        let (det, rx) = detector();
        let g = Builder::new()
            .name("p53-detached")
            .spawn(|| {
                yield_now();
                SlowDrop
            })
            .unwrap();
        let id = g.id();
        drop(g);
        yield_until("the detached greenlet is gone", || {
            !sylvan::dump().greenlets.iter().any(|i| i.id == id)
        });
        sylvan::sleep(ms(5));
        drop(det);
        assert_named(&rx, id, "p53-detached");
    });
}

/// The detector's name table (inspect.rs: "locked once when such a
/// greenlet is spawned and once when it is reaped") does not grow with
/// named greenlets spawned and reaped: joined, detached, killed before
/// they start (queued or delayed), link callbacks. Checked by resident
/// memory in a child: 30,000 names of 2 KiB would keep 60 MiB.
#[test]
fn h07_the_name_table_does_not_grow() {
    in_child(
        &format!("{L}h07_the_name_table_does_not_grow"),
        "h07",
        || {
            fn rss_kib() -> u64 {
                let s = std::fs::read_to_string("/proc/self/status").unwrap();
                let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
                line.split_whitespace().nth(1).unwrap().parse().unwrap()
            }
            crate::util::quiet();
            let name = "n".repeat(2048);
            let round = |n: usize| {
                for i in 0..n {
                    let b = Builder::new().name(name.clone());
                    match i % 5 {
                        0 => {
                            b.spawn(|| ()).unwrap().join().unwrap();
                        }
                        1 => drop(b.spawn(|| ()).unwrap()),
                        2 => b.spawn(|| ()).unwrap().kill(),
                        3 => b.spawn_later(ms(100), || ()).unwrap().kill(),
                        _ => {
                            let g = b.spawn(|| -> u32 { panic!("x") }).unwrap();
                            g.link(|_| ());
                            let _ = g.join();
                        }
                    }
                    if i % 1000 == 999 {
                        settle();
                    }
                }
                settle();
            };
            round(2000); // warm-up: pools, allocator arenas
            let before = rss_kib();
            round(30_000);
            let grown = rss_kib().saturating_sub(before);
            assert!(grown < 20 << 10, "resident memory grew by {grown} KiB");
        },
    );
}

// ---------------------------------------------------------------- r: Core::cancel_unstarted, Stack::guard_lo (0bbdf14)

use sylvan::runtime::stack::Stack;
use sylvan::runtime::{Core, Outcome as CoreOutcome, Resumed, State};

/// `Core::cancel_unstarted`: "`None` when no body was ever placed here
/// (the greenlet is still marked dead)", dead as killed.
#[test]
fn r01_cancel_without_a_body_marks_dead_as_killed() {
    let core = Core::new();
    assert!(core.cancel_unstarted().is_none());
    assert_eq!(
        (core.state(), core.outcome()),
        (State::Dead, CoreOutcome::Killed)
    );
    // Again: nothing changes.
    assert!(core.cancel_unstarted().is_none());
    assert_eq!(
        (core.state(), core.outcome()),
        (State::Dead, CoreOutcome::Killed)
    );
}

/// "a body that never ran is dropped unrun, and the stack is returned",
/// dead as killed; the greenlet is dead when the body's destructors run.
#[test]
fn r02_cancel_an_unrun_body_drops_it_and_returns_the_stack() {
    let core = Box::new(Core::new());
    let stack = Stack::new(64 << 10, 3).unwrap();
    let (top, size) = (stack.top(), stack.size());
    let ran = Rc::new(Cell::new(false));
    let drops = Rc::new(Cell::new(0));
    let seen_dead = Rc::new(Cell::new(None));
    struct Probe(
        *const Core,
        Rc<Cell<Option<State>>>,
        #[allow(dead_code)] DropFlag,
    );
    impl Drop for Probe {
        fn drop(&mut self) {
            // SAFETY: the core is boxed and outlives its body.
            self.1.set(Some(unsafe { &*self.0 }.state()));
        }
    }
    let probe = Probe(&raw const *core, seen_dead.clone(), DropFlag(drops.clone()));
    let r = ran.clone();
    // SAFETY: the core is boxed (stable) and outlives the body; started once.
    unsafe {
        core.start(stack, move || {
            let _p = probe;
            r.set(true);
        })
    };
    assert!(!core.is_mid_body());
    let back = core.cancel_unstarted().expect("the stack comes back");
    assert_eq!((back.top(), back.size()), (top, size));
    assert!(!ran.get());
    assert_eq!(drops.get(), 1);
    assert_eq!(seen_dead.get(), Some(State::Dead));
    assert_eq!(
        (core.state(), core.outcome()),
        (State::Dead, CoreOutcome::Killed)
    );
    assert!(core.cancel_unstarted().is_none(), "the stack was taken");
}

/// "Does nothing and returns `None` while the body is suspended mid-way";
/// once the body finished, "it is dead (as killed, unless it has an
/// outcome already)" and the stack is returned.
#[test]
fn r03_cancel_mid_way_does_nothing_and_after_the_end_keeps_the_outcome() {
    let core = Box::new(Core::new());
    let stack = Stack::new(64 << 10, 0).unwrap();
    let this: *const Core = &raw const *core;
    let steps = Rc::new(Cell::new(0));
    let s = steps.clone();
    // SAFETY: the core is boxed and outlives its body; started once; the
    // body suspends on its own stack while it runs.
    unsafe {
        core.start(stack, move || {
            s.set(1);
            (*this).suspend();
            s.set(2);
        })
    };
    // SAFETY: resumed from the thread's own stack (no sylvan greenlet runs
    // this test's body: it is main's), not dead.
    assert_eq!(unsafe { core.resume() }, Resumed::Suspended);
    assert_eq!(steps.get(), 1);
    core.set_state(State::Suspended);
    assert!(core.is_mid_body());
    assert!(core.cancel_unstarted().is_none());
    assert_eq!(
        (core.state(), core.outcome()),
        (State::Suspended, CoreOutcome::Pending),
        "nothing changed"
    );
    // SAFETY: as above.
    assert_eq!(unsafe { core.resume() }, Resumed::Finished);
    assert_eq!(steps.get(), 2);
    assert_eq!(core.outcome(), CoreOutcome::Returned);
    let back = core.cancel_unstarted().expect("a finished body's stack");
    assert_eq!(back.size(), 64 << 10);
    assert_eq!(
        (core.state(), core.outcome()),
        (State::Dead, CoreOutcome::Returned)
    );
}

/// `Stack::guard_lo`: "Lowest address of the guard page below `limit`: the
/// bottom of the mapping": one page below `limit`, equal to the meta's,
/// and the kernel shows `[guard_lo, limit)` as an inaccessible mapping
/// directly below the usable one.
#[test]
fn r04_guard_lo_is_the_bottom_of_the_mapping() {
    // SAFETY: sysconf is always safe to call.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
    for size in [1, 16 << 10, 100_000, 256 << 10] {
        let s = Stack::new(size, 5).unwrap();
        assert_eq!(s.guard_lo() + page, s.limit());
        assert_eq!(s.guard_lo() % page, 0);
        // SAFETY: the meta is valid for the stack's lifetime.
        let meta = unsafe { &*s.meta() };
        assert_eq!(
            (meta.guard_lo(), meta.guard_hi()),
            (s.guard_lo(), s.limit())
        );
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mut guard = None;
        let mut usable = None;
        for line in maps.lines() {
            let mut it = line.split_whitespace();
            let range = it.next().unwrap();
            let perms = it.next().unwrap();
            let (lo, hi) = range.split_once('-').unwrap();
            let lo = usize::from_str_radix(lo, 16).unwrap();
            let hi = usize::from_str_radix(hi, 16).unwrap();
            if lo <= s.guard_lo() && s.guard_lo() < hi {
                guard = Some((lo, hi, perms.to_owned()));
            }
            if lo <= s.limit() && s.limit() < hi {
                usable = Some((lo, perms.to_owned()));
            }
        }
        let (lo, hi, perms) = guard.expect("the guard page is mapped");
        // The kernel may merge it with an inaccessible neighbour below.
        assert!(lo <= s.guard_lo() && hi == s.limit(), "size {size}");
        assert!(perms.starts_with("---"), "{perms}");
        let (ulo, uperms) = usable.expect("the usable part is mapped");
        assert_eq!(ulo, s.limit());
        assert!(uperms.starts_with("rw"), "{uperms}");
    }
}

// ---------------------------------------------------------------- d: the audit's doc claims (dd8f7bb)

/// src/lib.rs / README: "a queue get ... that would wait reports so" while
/// unwinding: `get` gives `None` and `get_timeout` `Err(Empty)`, at once,
/// on every queue kind; one that can complete at once (an item there, or
/// a channel putter waiting) still does.
#[test]
fn d01_a_queue_get_that_would_wait_reports_so_while_unwinding() {
    use sylvan::sync::{JoinableQueue, TryGetError};
    bounded(|| {
        let t = Instant::now();
        let q: Queue<u32> = Queue::bounded(2);
        let lq: LifoQueue<u32> = LifoQueue::unbounded();
        let pq: PriorityQueue<u32> = PriorityQueue::unbounded();
        let jq: JoinableQueue<u32> = JoinableQueue::unbounded();
        let ch: Channel<u32> = Channel::new();
        let (_, r) = while_unwinding(|| {
            (
                q.get(),
                q.get_timeout(LONG),
                lq.get(),
                pq.get_timeout(LONG),
                jq.get(),
                ch.get(),
                ch.get_timeout(LONG),
            )
        });
        assert_eq!(
            r,
            (
                None,
                Err(TryGetError::Empty),
                None,
                Err(TryGetError::Empty),
                None,
                None,
                Err(TryGetError::Empty)
            )
        );
        assert!(t.elapsed() < ms(500));
        q.put(1).unwrap();
        lq.put(2).unwrap();
        let ch = Rc::new(ch);
        let c2 = ch.clone();
        let putter = spawn(move || c2.put(3).unwrap());
        yield_now();
        let (_, r) = while_unwinding(|| (q.get(), lq.get(), ch.get()));
        assert_eq!(r, (Some(1), Some(2), Some(3)));
        putter.join().unwrap();
    });
}

/// Runs `op` on a full `Pool` (size 1, occupied) from the destructor of a
/// killed greenlet in a child; in the parent, checks that the child
/// aborted with the message saying why, and did not return.
fn pool_op_aborts_while_unwinding(test: &str, op: fn(&sylvan::pool::Pool)) {
    if is_child(test) {
        struct OnDrop(Rc<sylvan::pool::Pool>, fn(&sylvan::pool::Pool));
        impl Drop for OnDrop {
            fn drop(&mut self) {
                (self.1)(&self.0);
                println!("RETURNED");
            }
        }
        let pool = Rc::new(sylvan::pool::Pool::new(1));
        let _occupant = pool.spawn(|| sylvan::sleep(LONG));
        assert_eq!(pool.free_count(), 0);
        let d = OnDrop(pool.clone(), op);
        let g = spawn(move || {
            let _d = d;
            sylvan::sleep(LONG);
        });
        yield_now();
        g.kill();
        println!("KILL RETURNED");
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    let out = run_child(&format!("{L}{test}"), test);
    let (stdout, stderr) = crate::util::texts(&out);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("RETURNED"), "{stdout}");
    assert!(
        stderr.contains("would have to wait, but the calling greenlet is unwinding"),
        "{stderr}"
    );
}

/// pool.rs `Pool::spawn` # Aborts: "Called while the caller unwinds ...
/// with the pool full, it cannot wait ...: it aborts the process with a
/// message".
#[test]
fn d02_a_full_pools_spawn_aborts_while_unwinding() {
    pool_op_aborts_while_unwinding("d02_a_full_pools_spawn_aborts_while_unwinding", |p| {
        drop(p.spawn(|| ()));
    });
}

/// pool.rs: "`map` ... do the same when they wait for a slot then".
#[test]
fn d03_map_waiting_for_a_slot_aborts_while_unwinding() {
    pool_op_aborts_while_unwinding("d03_map_waiting_for_a_slot_aborts_while_unwinding", |p| {
        drop(p.map(vec![1u32, 2], |x| x));
    });
}

/// pool.rs: "`imap` ... do the same when they wait for a slot then".
#[test]
fn d04_imap_waiting_for_a_slot_aborts_while_unwinding() {
    pool_op_aborts_while_unwinding("d04_imap_waiting_for_a_slot_aborts_while_unwinding", |p| {
        let mut it = p.imap(vec![1u32, 2], |x| x);
        drop(it.next());
    });
}

/// pool.rs: "`imap_unordered` ... do the same when they wait for a slot
/// then".
#[test]
fn d05_imap_unordered_waiting_for_a_slot_aborts_while_unwinding() {
    pool_op_aborts_while_unwinding(
        "d05_imap_unordered_waiting_for_a_slot_aborts_while_unwinding",
        |p| {
            let mut it = p.imap_unordered(vec![1u32, 2], |x| x);
            drop(it.next());
        },
    );
}

/// The other side of d02-d05: with a free slot for every item, `map` in a
/// destructor does not wait for a slot and returns (no abort).
#[test]
fn d06_map_with_free_slots_returns_while_unwinding() {
    bounded(|| {
        let pool = sylvan::pool::Pool::new(4);
        let (_, n) = while_unwinding(|| pool.map(vec![1u32, 2, 3], |x| x).len());
        assert_eq!(n, 3);
        pool.join();
    });
}

/// `killall`: "If the calling greenlet is in the list, the others are shot
/// first and then it is killed: it unwinds at once, without waiting" — the
/// ones listed after it included, unstarted ones cancelled.
#[test]
fn d07_killall_with_the_caller_listed() {
    bounded(|| {
        let drops = Rc::new(Cell::new(0));
        let parked = |drops: &Rc<Cell<u32>>| {
            let d = DropFlag(drops.clone());
            spawn(move || {
                let _d = d;
                sylvan::sleep(LONG);
            })
        };
        let a = parked(&drops);
        let c = parked(&drops);
        yield_now();
        let list: Rc<RefCell<Vec<Greenlet<()>>>> = Rc::default();
        let reached = Rc::new(Cell::new(false));
        let me = {
            let (list, reached) = (list.clone(), reached.clone());
            spawn(move || {
                let list = std::mem::take(&mut *list.borrow_mut());
                let _ = sylvan::killall(&list, None);
                reached.set(true);
            })
        };
        let how = Rc::new(Cell::new(None));
        let h = how.clone();
        me.link(move |o| h.set(Some(matches!(o, Outcome::Killed))));
        let u = {
            let d = DropFlag(drops.clone());
            spawn(move || drop(d))
        };
        list.borrow_mut().extend([a, me, c, u]);
        yield_until("the caller died", || how.get().is_some());
        assert_eq!(how.get(), Some(true), "killed");
        assert!(!reached.get(), "it unwound at once");
        yield_until("every other one died", || drops.get() == 3);
    });
}

/// `killall`: "Called while the caller unwinds, it shoots them all and
/// does not wait": unstarted ones are dead on return, started ones are
/// shot and die later (they survive the call).
#[test]
fn d08_killall_while_unwinding_shoots_without_waiting() {
    bounded(|| {
        let started = spawn(|| sylvan::sleep(LONG));
        yield_now();
        let unstarted = spawn(|| sylvan::sleep(LONG));
        let list = [started, unstarted];
        let t = Instant::now();
        let (_, r) = while_unwinding(|| sylvan::killall(&list, None));
        assert!(t.elapsed() < ms(500));
        assert_eq!(r, Err(sylvan::Survivors(vec![list[0].id()])));
        assert!(list[1].is_dead());
        let [started, unstarted] = list;
        assert!(started.join().unwrap_err().is_killed());
        assert!(unstarted.join().unwrap_err().is_killed());
    });
}

/// `joinall` # Panics: "When the calling greenlet is in the list and
/// another one keeps it waiting". Listed first with another alive: it
/// panics at once. Listed after others that are all dead (none keeps it
/// waiting), it panics too: what decides is reaching itself in the list.
#[test]
fn d09_joinall_with_the_caller_listed_panics() {
    bounded(|| {
        for others_dead in [false, true] {
            let other = if others_dead {
                let g = spawn(|| ());
                assert!(g.wait(None));
                g
            } else {
                spawn(|| sylvan::sleep(LONG))
            };
            let list: Rc<RefCell<Vec<Greenlet<()>>>> = Rc::default();
            let msg: Rc<RefCell<Option<String>>> = Rc::default();
            let me = {
                let (list, msg) = (list.clone(), msg.clone());
                spawn(move || {
                    let list = std::mem::take(&mut *list.borrow_mut());
                    let t = Instant::now();
                    let r = catch_unwind(AssertUnwindSafe(|| sylvan::joinall(&list, None)));
                    *msg.borrow_mut() = Some(match r {
                        Err(p) => sylvan::runtime::payload_message(&*p),
                        Ok(b) => format!("returned {b}"),
                    });
                    assert!(t.elapsed() < ms(500));
                    for g in &list {
                        if g.id() != sylvan::current() {
                            g.kill_nowait();
                        }
                    }
                })
            };
            if others_dead {
                list.borrow_mut().extend([other, me]);
            } else {
                list.borrow_mut().extend([me, other]);
            }
            yield_until("the caller ran", || msg.borrow().is_some());
            let m = msg.borrow().clone().unwrap();
            assert!(
                m.contains("cannot wait for itself"),
                "others dead {others_dead}: {m}"
            );
        }
    });
}

/// `kill`: "Called while the caller unwinds (from a destructor), it throws
/// the kill and does not wait": a parked target is still alive when it
/// returns and dies as killed later; an unstarted one is dead at once.
#[test]
fn d10_kill_from_a_destructor_does_not_wait() {
    bounded(|| {
        struct SlowExit;
        impl Drop for SlowExit {
            fn drop(&mut self) {
                // Would delay a kill that waited.
                if std::thread::panicking() {
                    std::thread::sleep(ms(1));
                }
            }
        }
        let parked = spawn(|| {
            let _s = SlowExit;
            sylvan::sleep(LONG)
        });
        yield_now();
        let unstarted = spawn(|| sylvan::sleep(LONG));
        let (_, (alive, dead)) = while_unwinding(|| {
            parked.kill();
            unstarted.kill();
            (!parked.is_dead(), unstarted.is_dead())
        });
        assert!(alive && dead);
        assert!(parked.join().unwrap_err().is_killed());
        assert!(unstarted.join().unwrap_err().is_killed());
    });
}

/// `is_full`: "True when a `try_put` would fail for lack of room ... With
/// capacity zero, as a `Channel`, it is false while a getter waits for an
/// item, yet a `put` still waits until a getter has taken its item."
#[test]
fn d11_is_full_on_a_channel() {
    use sylvan::sync::TryPutError;
    bounded(|| {
        let ch: Rc<Channel<u32>> = Rc::new(Channel::new());
        assert!(ch.is_full());
        assert!(matches!(ch.try_put(1), Err(TryPutError::Full(1))));
        let got = Rc::new(Cell::new(None));
        let getter = {
            let (ch, got) = (ch.clone(), got.clone());
            spawn(move || got.set(ch.get()))
        };
        yield_now();
        assert_eq!(ch.getters(), 1);
        assert!(!ch.is_full());
        ch.put(5).unwrap();
        assert_eq!(
            got.get(),
            Some(5),
            "the put returned once the getter had it"
        );
        getter.join().unwrap();
        assert!(ch.is_full());
        // try_put with a getter waiting goes through; then it is full.
        let getter = {
            let (ch, got) = (ch.clone(), got.clone());
            spawn(move || got.set(ch.get()))
        };
        yield_now();
        assert!(!ch.is_full());
        assert!(ch.try_put(6).is_ok());
        assert!(ch.is_full());
        assert!(matches!(ch.try_put(7), Err(TryPutError::Full(7))));
        getter.join().unwrap();
        assert_eq!(got.get(), Some(6));
        // A bounded queue: full exactly when try_put fails for room.
        let q: Queue<u32> = Queue::bounded(1);
        assert!(!q.is_full());
        q.try_put(1).unwrap();
        assert!(q.is_full());
        assert!(matches!(q.try_put(2), Err(TryPutError::Full(2))));
    });
}

/// LIFO and priority queues: "an item kept in the queue until a woken
/// getter takes the one `get` gives then (as in gevent)": a getter parked
/// before the puts gets the newest (LIFO) or smallest (priority) item
/// there when it runs; two parked getters, FIFO among them, each take
/// what `get` gives at their turn.
#[test]
fn d12_lifo_and_priority_getters_take_what_get_gives_when_they_run() {
    bounded(|| {
        let lq: Rc<LifoQueue<u32>> = Rc::new(LifoQueue::unbounded());
        let getters: Vec<_> = (0..2)
            .map(|_| {
                let q = lq.clone();
                spawn(move || q.get())
            })
            .collect();
        yield_now();
        lq.put(1).unwrap();
        assert_eq!(lq.len(), 1, "kept in the queue for the woken getter");
        lq.put(2).unwrap();
        lq.put(3).unwrap();
        let got: Vec<_> = getters.into_iter().map(|g| g.join().unwrap()).collect();
        assert_eq!(got, [Some(3), Some(2)]);
        assert_eq!(lq.get(), Some(1));

        let pq: Rc<PriorityQueue<u32>> = Rc::new(PriorityQueue::unbounded());
        let q = pq.clone();
        let getter = spawn(move || q.get());
        yield_now();
        for v in [5, 9, 1, 3] {
            pq.put(v).unwrap();
        }
        assert_eq!(getter.join().unwrap(), Some(1));
        assert_eq!(pq.len(), 3);
    });
}

/// `ErrorPolicy::Custom`: "joining it there returns at once with a copy of
/// the failure (its panic payload replaced by the message; the original
/// stays with the `Failure`) only when it has no link callbacks";
/// `Greenlet::wait` never waits.
#[test]
fn d13_custom_policy_joins_a_greenlet_without_link_callbacks() {
    bounded(|| {
        let slot: Rc<RefCell<Option<Greenlet<u32>>>> = Rc::default();
        let seen: Rc<RefCell<Vec<String>>> = Rc::default();
        let (s, v) = (slot.clone(), seen.clone());
        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |f| {
            let g = s.borrow_mut().take();
            let Some(g) = g else { return };
            v.borrow_mut().push(format!("wait {}", g.wait(None)));
            match g.join() {
                Err(sylvan::Error::Panicked(mut p)) => {
                    let payload = p.take_payload().expect("a payload");
                    let copy = payload.downcast::<String>().map(|b| *b);
                    v.borrow_mut().push(format!("copy {copy:?}"));
                }
                other => v.borrow_mut().push(format!("join {other:?}")),
            }
            let original = f.error.panic().map(|p| p.message().to_owned());
            v.borrow_mut().push(format!("original {original:?}"));
        })));
        let g = spawn(|| -> u32 { panic!("p53-d13") });
        *slot.borrow_mut() = Some(g);
        yield_until("the policy ran", || !seen.borrow().is_empty());
        assert_eq!(
            *seen.borrow(),
            [
                "wait true",
                "copy Ok(\"p53-d13\")",
                "original Some(\"p53-d13\")"
            ]
        );
    });
}

/// The other half of d13: with a link callback, `join` in the policy
/// waits for it, "and waiting panics on the hub" (caught: the callback
/// still runs and the hub goes on), while `wait` returns at once.
#[test]
fn d14_custom_policy_cannot_join_a_greenlet_with_link_callbacks() {
    let Some((out, _err)) = child_texts(
        &format!("{L}d14_custom_policy_cannot_join_a_greenlet_with_link_callbacks"),
        "d14",
        || {
            let slot: Rc<RefCell<Option<Greenlet<u32>>>> = Rc::default();
            let s = slot.clone();
            sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_| {
                let g = s.borrow_mut().take();
                let Some(g) = g else { return };
                println!("wait {}", g.wait(None));
                let r = catch_unwind(AssertUnwindSafe(|| g.join()));
                match r {
                    Err(p) => println!("join panicked: {}", sylvan::runtime::payload_message(&*p)),
                    Ok(r) => println!("join returned {r:?}"),
                }
            })));
            let g = spawn(|| -> u32 { panic!("p53-d14") });
            g.link(|o| println!("link ran, panicked {}", matches!(o, Outcome::Panicked(_))));
            *slot.borrow_mut() = Some(g);
            settle();
            println!("hub goes on: {}", spawn(|| 3).join().unwrap());
        },
    ) else {
        return;
    };
    assert!(out.contains("wait true"), "{out}");
    assert!(out.contains("join panicked"), "{out}");
    assert!(out.contains("link ran, panicked true"), "{out}");
    assert!(out.contains("hub goes on: 3"), "{out}");
}

/// `Handle::spawn`: "`Ok` means the job was queued: it still does not run
/// if the hub's thread exits before the loop takes it (the closure is
/// dropped unrun)"; after the exit it gives `HubGone`.
#[test]
fn d15_handle_spawn_ok_but_dropped_at_thread_exit() {
    struct Dropped(Arc<AtomicU32>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let (go, wait_go) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        tx.send(sylvan::Handle::current()).unwrap();
        // Never runs the loop: returns once told to.
        wait_go.recv().unwrap();
    });
    let h = rx.recv().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let drops = Arc::new(AtomicU32::new(0));
    let (r, d) = (ran.clone(), Dropped(drops.clone()));
    assert!(
        h.spawn(move || {
            let _d = d;
            r.store(true, Ordering::SeqCst);
        })
        .is_ok()
    );
    go.send(()).unwrap();
    t.join().unwrap();
    assert!(!ran.load(Ordering::SeqCst), "ran after Ok");
    assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped unrun, once");
    assert!(h.spawn(|| ()).is_err());
}

/// `Failure::observed`: "Whether a `link`/`link_exception` callback was
/// registered on this greenlet, or a greenlet was waiting for its death
/// (in `join`, `wait`, `kill`, `joinall` / `killall`, or `wait` /
/// `iwait`), when it died." `link_value` and nothing: not observed.
#[test]
fn d16_failure_observed_for_every_kind_of_death_waiter() {
    bounded(|| {
        let seen: Rc<RefCell<Vec<(String, bool)>>> = Rc::default();
        let s = seen.clone();
        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |f| {
            s.borrow_mut()
                .push((f.name.unwrap_or("?").to_owned(), f.observed));
        })));
        let kinds = [
            "none",
            "link",
            "link_exception",
            "link_value",
            "join",
            "wait",
            "kill",
            "joinall",
            "killall",
            "sylvan::wait",
            "iwait",
        ];
        for kind in kinds {
            let go = Rc::new(Event::new());
            let killed = matches!(kind, "kill" | "killall");
            let g = {
                let go = go.clone();
                Builder::new()
                    .name(kind)
                    .spawn(move || -> u32 {
                        if killed {
                            // Survives the kill's unwind, then fails.
                            let _ = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(LONG)));
                        } else {
                            go.wait();
                        }
                        panic!("p53-d16")
                    })
                    .unwrap()
            };
            yield_now();
            let watcher: Option<Greenlet<()>> = match kind {
                "none" => None,
                "link" => {
                    g.link(|_| ());
                    None
                }
                "link_exception" => {
                    g.link_exception(|_| ());
                    None
                }
                "link_value" => {
                    g.link_value(|_| ());
                    None
                }
                _ => {
                    let kind = kind.to_owned();
                    let g = Rc::new(g);
                    let g2 = g.clone();
                    let w = spawn(move || match kind.as_str() {
                        "join" => drop(Rc::try_unwrap(g2).ok().unwrap().join()),
                        "wait" => drop(g2.wait(None)),
                        "kill" => g2.kill(),
                        "joinall" => drop(sylvan::joinall(std::slice::from_ref(&*g2), None)),
                        "killall" => drop(sylvan::killall(std::slice::from_ref(&*g2), None)),
                        "sylvan::wait" => drop(sylvan::wait(&[&*g2], None, None)),
                        _ => drop(sylvan::iwait(&[&*g2], None).next()),
                    });
                    drop(g);
                    Some(w)
                }
            };
            yield_now();
            go.set();
            match watcher {
                Some(w) => w.join().unwrap(),
                None => settle(),
            }
            yield_until("reported", || seen.borrow().iter().any(|(k, _)| k == kind));
        }
        let got: Vec<(String, bool)> = seen.borrow().clone();
        let want: Vec<(String, bool)> = kinds
            .iter()
            .map(|k| (k.to_string(), !matches!(*k, "none" | "link_value")))
            .collect();
        assert_eq!(got, want);
    });
}

/// `Semaphore::release` # Panics: "When the free count would pass
/// `usize::MAX`"; the count is left as it was. With a waiter, a release
/// hands the permit over instead and does not panic.
#[test]
fn d17_semaphore_release_past_usize_max_panics() {
    bounded(|| {
        let s = Semaphore::new(usize::MAX);
        let r = catch_unwind(AssertUnwindSafe(|| s.release()));
        assert!(r.is_err());
        assert_eq!(s.available(), usize::MAX);
        let s = Rc::new(Semaphore::new(0));
        let s2 = s.clone();
        let g = spawn(move || s2.acquire().forget());
        yield_now();
        s.release();
        g.join().unwrap();
        assert_eq!(s.available(), 0);
    });
}

/// `StreamServer::start` # Errors: "its accept loop has ended for good
/// (see `serve_forever`'s errors)"; `serve_forever`: "the accept error that
/// ended the accept loop for good (the listener was closed or is not a
/// socket)"; accept errors "reported (through `log` ...), on stderr
/// otherwise". A listener shut down under the server ends its loop.
#[test]
fn d18_a_server_whose_accept_loop_ended_for_good() {
    let Some((out, err)) = child_texts(
        &format!("{L}d18_a_server_whose_accept_loop_ended_for_good"),
        "d18",
        || {
            let l = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
            // SAFETY: shutdown of an open socket we own.
            assert_eq!(unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RDWR) }, 0);
            let s = sylvan::net::StreamServer::new(l, |_c, _p| ())
                .start()
                .unwrap();
            yield_until("the accept loop ended", || !s.is_started());
            let e = s.clone().start().expect_err("start fails");
            println!("start: {e}");
            let e = s.serve_forever().unwrap_err();
            println!("serve_forever: {:?}", e.raw_os_error());
        },
    ) else {
        return;
    };
    assert!(
        out.contains("start: sylvan: StreamServer's accept loop has ended"),
        "{out}"
    );
    assert!(
        out.contains(&format!("serve_forever: Some({})", libc::EINVAL)),
        "{out}"
    );
    assert!(err.contains("accept failed for good"), "{err}");
}

/// `Channel`: "So does a put made while its greenlet unwinds, which cannot
/// wait": it returns at once and the item waits in the channel for the
/// next `get` (never lost).
#[test]
fn d19_a_channel_put_while_unwinding_is_kept() {
    bounded(|| {
        let ch: Channel<u32> = Channel::new();
        let t = Instant::now();
        let (_, r) = while_unwinding(|| ch.put(9));
        assert!(r.is_ok());
        assert!(t.elapsed() < ms(500));
        assert_eq!(ch.len(), 1);
        assert_eq!(ch.get(), Some(9));
    });
}

/// src/lib.rs / README: "`spawn_blocking` and `os::wait_child` block the
/// thread" while unwinding: they return their result.
#[test]
fn d20_spawn_blocking_and_wait_child_block_the_thread_while_unwinding() {
    bounded(|| {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let (_, (v, status)) = while_unwinding(|| {
            (
                sylvan::spawn_blocking(|| 41 + 1),
                sylvan::os::wait_child(&mut child).map(|s| s.success()),
            )
        });
        assert_eq!(v, 42);
        assert!(status.unwrap());
    });
}

/// `Waitable`: "An `iwait` keeps its registrations from the first `next`
/// that finds nothing ready until it reports the object, its timeout ends
/// the iteration, or it is dropped".
#[test]
fn d21_iwait_registrations_live_from_the_first_empty_next_to_its_end() {
    #[derive(Default)]
    struct Reg {
        ready: Cell<bool>,
        live: Cell<i32>,
        watches: Cell<u32>,
    }
    impl sylvan::Waitable for Reg {
        fn is_ready(&self) -> bool {
            self.ready.get()
        }
        fn watch(&self, _w: sylvan::Waiter) -> usize {
            self.live.set(self.live.get() + 1);
            self.watches.set(self.watches.get() + 1);
            0
        }
        fn unwatch(&self, _w: sylvan::Waiter, _token: usize) {
            self.live.set(self.live.get() - 1);
        }
    }
    bounded(|| {
        let (a, b) = (Reg::default(), Reg::default());
        a.ready.set(true);
        let objs: [&dyn sylvan::Waitable; 2] = [&a, &b];
        let mut it = sylvan::iwait(&objs, Some(ms(10)));
        assert_eq!(b.watches.get(), 0, "nothing before the first next");
        assert_eq!(it.next(), Some(0));
        assert_eq!(
            (a.watches.get(), b.watches.get()),
            (0, 0),
            "a next that found one ready"
        );
        assert_eq!(it.next(), None, "the timeout ends it");
        assert_eq!(b.watches.get(), 1);
        assert_eq!(
            b.live.get(),
            0,
            "unwatched when the timeout ended it, before the drop"
        );
        drop(it);
        assert_eq!(b.live.get(), 0);
    });
}

/// net/mod.rs: `into_std()` hands back "the `std` socket (in the blocking
/// mode it had, with its timeouts)".
#[test]
fn d22_into_std_keeps_the_blocking_mode_and_timeouts() {
    bounded(|| {
        let (c, _peer) = tcp_to_std();
        c.set_nonblocking(true).unwrap();
        let s = c.into_std().unwrap();
        let e = (&s).read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let (c, _peer) = tcp_to_std();
        c.set_read_timeout(Some(ms(20))).unwrap();
        let s = c.into_std().unwrap();
        assert_eq!(s.read_timeout().unwrap(), Some(ms(20)));
        let t = Instant::now();
        let e = (&s).read(&mut [0u8; 4]).unwrap_err();
        assert!(matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
        assert!(t.elapsed() >= ms(15), "it blocked for the timeout");
    });
}

/// README: the sync types "are `!Sync` and shared with `Rc` (`Pool` and
/// `Group` are `!Send` too); one owned outright may be moved to another
/// thread when its items are `Send`": a queue with items in it, moved to
/// another thread, works there on that thread's hub.
#[test]
fn d23_sync_types_move_between_threads_when_owned_outright() {
    fn is_send<T: Send>() {}
    is_send::<Queue<u32>>();
    is_send::<LifoQueue<u32>>();
    is_send::<PriorityQueue<u32>>();
    is_send::<Channel<u32>>();
    is_send::<Event>();
    is_send::<Semaphore>();
    is_send::<AsyncResult<u32, String>>();
    is_send::<sylvan::sync::Mutex<u32>>();
    is_send::<sylvan::sync::JoinableQueue<u32>>();
    // `!Sync` (and `!Send` for pools): the ambiguity trick compiles only
    // when the bound does not hold.
    trait AmbiguousIfSync<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSync<()> for T {}
    impl<T: ?Sized + Sync> AmbiguousIfSync<u8> for T {}
    trait AmbiguousIfSend<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSend<()> for T {}
    impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}
    <Queue<u32> as AmbiguousIfSync<_>>::check();
    <Event as AmbiguousIfSync<_>>::check();
    <Semaphore as AmbiguousIfSync<_>>::check();
    <Channel<u32> as AmbiguousIfSync<_>>::check();
    <sylvan::pool::Pool as AmbiguousIfSend<_>>::check();
    <sylvan::pool::Group as AmbiguousIfSend<_>>::check();
    let q: Queue<u32> = Queue::unbounded();
    q.put(1).unwrap();
    let ev = Event::new();
    let got = std::thread::spawn(move || {
        bounded(|| {
            let first = q.get();
            let q = Rc::new(q);
            let q2 = q.clone();
            let g = spawn(move || q2.get());
            yield_now();
            q.put(2).unwrap();
            ev.set();
            (first, g.join().unwrap(), ev.is_set())
        })
    })
    .join()
    .unwrap();
    assert_eq!(got, (Some(1), Some(2), true));
}

/// `kill` # Panics: "When the greenlet had not started and a destructor of
/// what its closure captured panics (dropped here, unrun): the panic is
/// resumed in the caller"; the greenlet is dead as killed all the same.
#[test]
fn d24_kill_of_an_unstarted_greenlet_resumes_its_captures_panic() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            std::panic::panic_any(Unwind53);
        }
    }
    bounded(|| {
        let p = PanicOnDrop;
        let g = spawn(move || {
            let _p = p;
        });
        let r = catch_unwind(AssertUnwindSafe(|| g.kill()));
        assert!(r.unwrap_err().is::<Unwind53>());
        assert!(g.is_dead());
        assert!(g.join().unwrap_err().is_killed());
    });
}

/// io.rs `set_timeout`: "Zero is rejected as `std` does": a zero read or
/// write timeout is `InvalidInput`, and the timeouts are unchanged.
#[test]
fn d25_a_zero_timeout_is_rejected() {
    bounded(|| {
        let (c, _peer) = tcp_to_std();
        c.set_read_timeout(Some(ms(30))).unwrap();
        let e = c.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = c.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(c.read_timeout().unwrap(), Some(ms(30)));
    });
}

static D26_V1_DROPS: AtomicU32 = AtomicU32::new(0);
static D26_V2_DROPS: AtomicU32 = AtomicU32::new(0);

/// Touches `D26_L2` when dropped (made on main after teardown's clear).
struct D26V1;
impl Drop for D26V1 {
    fn drop(&mut self) {
        D26_V1_DROPS.fetch_add(1, Ordering::SeqCst);
        D26_L2.with(|_| ());
    }
}

struct D26V2;
impl Drop for D26V2 {
    fn drop(&mut self) {
        D26_V2_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

sylvan::greenlet_local! {
    static D26_L1: D26V1 = D26V1;
}
sylvan::greenlet_local! {
    static D26_L2: D26V2 = D26V2;
}

/// local.rs: "main's values are cleared by `Hub::teardown` from the
/// thread-local destructor at thread exit, after main's code has returned,
/// and any made after that are dropped with main's record": a value of
/// main made at teardown (by the destructor of an unstarted greenlet's
/// capture, which runs on the hub and sees main's values) is dropped.
#[test]
fn d26_a_main_local_made_during_teardown_is_dropped() {
    struct Touch;
    impl Drop for Touch {
        fn drop(&mut self) {
            D26_L1.with(|_| ());
        }
    }
    std::thread::spawn(|| {
        let t = Touch;
        // Never started: cancelled at teardown, its capture dropped there.
        drop(spawn(move || drop(t)));
    })
    .join()
    .unwrap();
    assert_eq!(D26_V1_DROPS.load(Ordering::SeqCst), 1);
}

static D27_V3_DROPS: AtomicU32 = AtomicU32::new(0);
static D27_V4_DROPS: AtomicU32 = AtomicU32::new(0);

struct D27V3;
impl Drop for D27V3 {
    fn drop(&mut self) {
        D27_V3_DROPS.fetch_add(1, Ordering::SeqCst);
        D27_L4.with(|_| ());
    }
}

struct D27V4;
impl Drop for D27V4 {
    fn drop(&mut self) {
        D27_V4_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

sylvan::greenlet_local! {
    static D27_L3: D27V3 = D27V3;
}
sylvan::greenlet_local! {
    static D27_L4: D27V4 = D27V4;
}

/// The same claim one step further: the value made at teardown touches
/// another greenlet-local as it drops with main's record, which makes a
/// value of main then, "after that": it is dropped too, not leaked.
#[test]
fn d27_a_main_local_made_while_mains_record_drops_is_dropped() {
    struct Touch;
    impl Drop for Touch {
        fn drop(&mut self) {
            D27_L3.with(|_| ());
        }
    }
    std::thread::spawn(|| {
        let t = Touch;
        drop(spawn(move || drop(t)));
    })
    .join()
    .unwrap();
    assert_eq!(D27_V3_DROPS.load(Ordering::SeqCst), 1);
    assert_eq!(
        D27_V4_DROPS.load(Ordering::SeqCst),
        1,
        "made while main's record dropped"
    );
}
