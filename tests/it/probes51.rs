//! Probe round 51: a hostile review of three fixes.
//!
//! * `recv_unless_shut` (`n..`): UDP and Unix datagram receives after a
//!   read shutdown, with the shutdown and mode switches coming while a
//!   greenlet is parked in the receive: the mode is switched through a
//!   `try_clone`d handle, the shutdown comes from another greenlet
//!   (blocking, and with a read timeout), several receivers are parked on
//!   clones, sockets have no peer, datagrams queued before the shutdown
//!   (taken by a zero-length receive first) are still delivered. `std`
//!   threads blocked in the same calls are the reference (a call blocked
//!   before the switch to non-blocking mode keeps blocking, as Linux fixes
//!   the mode at the call's entry).
//! * `iwait`/`wait` with a panicking `watch` (`i..`): a panic on the
//!   first and on the last object, in `wait` with a count, reuse with
//!   objects that became ready meanwhile, the payload preserved, kills and
//!   timeouts thrown inside a `watch` that blocks (they stay kills and
//!   timeouts), built-in watches never switching (so no kill can land in
//!   them), and a panic in the `watch` made again after a spurious wake-up
//!   (not covered by the fix). Registrations are counted by a `Waitable`
//!   that also notices an `unwatch` of a token it does not hold.
//! * `wait_all` with `sylvan::signal` handlers (`s..`, each in a child
//!   process: signal dispositions are process-wide, and not under
//!   `util::bounded`, whose `Timeout` would be work): handlers alone are no
//!   work; timers, sockets, `Handle` jobs and `KeepAlive`s still are; a
//!   signal arriving during the wait runs its handler; handlers dropped
//!   during the wait; main parked on an event only a handler sets waits
//!   for the signal (and is a deadlock once the handler is dropped); a
//!   forked child inherits all that.
//!
//! Three tests found bugs, fixed since: `i08` and `i09` (a panic in
//! the re-watch after a spurious wake-up leaves a stale token; its drop
//! then unwatches whatever took that token since) and `s05` (a signal
//! delivered while the last work runs, or before `wait_all` is called, is
//! not handled before `wait_all` returns).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sylvan::net::{UdpSocket, UnixDatagram};
use sylvan::sync::{AsyncResult, Event, Semaphore};
use sylvan::{Waitable, Waiter};

use crate::util::{bounded, fork_child, is_child, reap_blocking, run_child_limited, texts};
use crate::util::{tcp_pair, yield_until};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------- helpers: results as std gives them

/// A result, comparable across std and sylvan: a sylvan timeout
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

/// std's `recv_from` after a read shutdown with nothing queued: the kernel
/// returns 0 and no address, which std reports as `InvalidInput` (no OS
/// error). Only the kind is compared.
fn kind_only(g: Got) -> Got {
    g.map_err(|(k, _)| (k, None))
}

/// `shutdown(fd, SHUT_RD)` (UDP sockets have no `shutdown` method). An
/// unconnected UDP socket's fails with ENOTCONN, yet shuts the read half.
fn shut_rd(fd: i32) {
    // SAFETY: shutdown on an open socket descriptor.
    unsafe { libc::shutdown(fd, libc::SHUT_RD) };
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Whether thread `tid` of this process is blocked in one of the system
/// calls `nrs` (from `/proc/self/task/<tid>/syscall`).
fn blocked_in(tid: i32, nrs: &[libc::c_long]) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<libc::c_long>().ok())
        .is_some_and(|nr| nrs.contains(&nr))
}

/// Waits (blocking this OS thread, 1 ms steps, up to 3 s) until thread
/// `tid` is blocked in one of `nrs`.
fn wait_blocked_in(tid: i32, nrs: &[libc::c_long]) -> bool {
    for _ in 0..3000 {
        if blocked_in(tid, nrs) {
            return true;
        }
        std::thread::sleep(ms(1));
    }
    false
}

const RECV_CALLS: [libc::c_long; 2] = [libc::SYS_recvfrom, libc::SYS_recvmsg];
const EPOLL_CALLS: [libc::c_long; 3] = [
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
];

// ---------------------------------------------------------------- n: datagram receives and read shutdowns

/// The script of `n01`, for std: a thread blocks in `recv` on one handle;
/// the other handle switches the (shared) mode to non-blocking, receives,
/// shuts the read half; then the blocked call's result, a non-blocking
/// receive, and the receives once the mode is blocking again.
fn std_udp_switch_while_blocked() -> Vec<Got> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(s.local_addr().unwrap()).unwrap();
    let s2 = s.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        tx.send(gettid()).unwrap();
        n(s2.recv(&mut [0u8; 8]))
    });
    let tid = rx.recv().unwrap();
    assert!(
        wait_blocked_in(tid, &RECV_CALLS),
        "the std thread never blocked"
    );
    let mut v = Vec::new();
    s.set_nonblocking(true).unwrap();
    v.push(n(s.recv(&mut [0u8; 8])));
    shut_rd(s.as_raw_fd());
    v.push(t.join().unwrap());
    v.push(n(s.recv(&mut [0u8; 8])));
    s.set_nonblocking(false).unwrap();
    v.push(n(s.recv(&mut [0u8; 8])));
    v.push(n(s.peek(&mut [0u8; 8])));
    v
}

/// A receive parked (blocking mode) when another handle switches to
/// non-blocking mode and shuts the read half down: the parked call
/// answers as a blocking one (its mode was fixed when it began, as std's
/// blocked call), new calls in non-blocking mode get the EAGAIN, and in
/// blocking mode again, the shutdown's answer at once. As std.
#[test]
fn n01_udp_a_receive_parked_before_a_switch_to_nonblocking_answers_as_blocking() {
    let reference = bounded(|| sylvan::spawn_blocking(std_udp_switch_while_blocked));
    assert_eq!(reference, [EAGAIN, Ok(0), EAGAIN, Ok(0), Ok(0)]);
    let ours = bounded(|| {
        let s = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        s.connect(s.local_addr().unwrap()).unwrap();
        let clone = s.try_clone().unwrap();
        let s2 = s.clone();
        let parked = sylvan::spawn(move || n(s2.recv(&mut [0u8; 8])));
        sylvan::yield_now(); // it runs and parks
        assert!(!parked.is_dead());
        let mut v = Vec::new();
        clone.set_nonblocking(true).unwrap(); // the clone shares the mode
        v.push(n(s.recv(&mut [0u8; 8])));
        shut_rd(s.as_raw_fd());
        v.push(parked.join().unwrap());
        v.push(n(s.recv(&mut [0u8; 8])));
        clone.set_nonblocking(false).unwrap();
        v.push(n(s.recv(&mut [0u8; 8])));
        v.push(n(s.peek(&mut [0u8; 8])));
        // recv_from / peek_from in blocking mode: std's InvalidInput
        assert_eq!(
            kind_only(got(s.recv_from(&mut [0u8; 8]), |(n, _)| n)),
            Err((io::ErrorKind::InvalidInput, None))
        );
        assert_eq!(
            kind_only(got(s.peek_from(&mut [0u8; 8]), |(n, _)| n)),
            Err((io::ErrorKind::InvalidInput, None))
        );
        v
    });
    assert_eq!(ours, reference);
}

fn std_unix_switch_while_blocked() -> Vec<Got> {
    let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
    let a2 = a.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        tx.send(gettid()).unwrap();
        got(a2.recv_from(&mut [0u8; 8]), |(n, _)| n)
    });
    let tid = rx.recv().unwrap();
    assert!(
        wait_blocked_in(tid, &RECV_CALLS),
        "the std thread never blocked"
    );
    let mut v = Vec::new();
    a.set_nonblocking(true).unwrap();
    v.push(n(a.recv(&mut [0u8; 8])));
    a.shutdown(Shutdown::Read).unwrap();
    v.push(t.join().unwrap());
    v.push(got(a.recv_from(&mut [0u8; 8]), |(n, _)| n));
    a.set_nonblocking(false).unwrap();
    v.push(n(a.recv(&mut [0u8; 8])));
    v.push(got(a.recv_from(&mut [0u8; 8]), |(n, _)| n));
    v
}

/// `n01` for a Unix datagram pair, with sylvan's own `shutdown` (which
/// pokes the parked reader) and `recv_from` parked: its answer is 0 bytes
/// from an unnamed address, as std's.
#[test]
fn n02_unix_a_receive_parked_before_a_switch_to_nonblocking_answers_as_blocking() {
    let reference = bounded(|| sylvan::spawn_blocking(std_unix_switch_while_blocked));
    assert_eq!(reference, [EAGAIN, Ok(0), EAGAIN, Ok(0), Ok(0)]);
    let ours = bounded(|| {
        let (a, _b) = UnixDatagram::pair().unwrap();
        let a = Rc::new(a);
        let clone = a.try_clone().unwrap();
        let a2 = a.clone();
        let parked = sylvan::spawn(move || {
            let r = a2.recv_from(&mut [0u8; 8]);
            if let Ok((_, addr)) = &r {
                assert!(addr.is_unnamed(), "{addr:?}");
            }
            got(r, |(n, _)| n)
        });
        sylvan::yield_now();
        assert!(!parked.is_dead());
        let mut v = Vec::new();
        clone.set_nonblocking(true).unwrap();
        v.push(n(a.recv(&mut [0u8; 8])));
        clone.shutdown(Shutdown::Read).unwrap();
        v.push(parked.join().unwrap());
        v.push(got(a.recv_from(&mut [0u8; 8]), |(n, _)| n));
        clone.set_nonblocking(false).unwrap();
        v.push(n(a.recv(&mut [0u8; 8])));
        v.push(got(a.recv_from(&mut [0u8; 8]), |(n, _)| n));
        v
    });
    assert_eq!(ours, reference);
}

/// Three receivers parked on three handles of one UDP socket (recv,
/// recv_from, peek_from), the read half shut from a fourth greenlet: each
/// wakes (the wake is handed on) and answers as std's blocking call.
/// Likewise for a Unix datagram socket without a peer.
#[test]
fn n03_every_receiver_parked_on_clones_wakes_at_the_shutdown() {
    bounded(|| {
        let s = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap()); // no peer
        let (c1, c2, c3) = (
            s.try_clone().unwrap(),
            s.try_clone().unwrap(),
            s.try_clone().unwrap(),
        );
        let g1 = sylvan::spawn(move || n(c1.recv(&mut [0u8; 8])));
        let g2 = sylvan::spawn(move || kind_only(got(c2.recv_from(&mut [0u8; 8]), |(n, _)| n)));
        let g3 = sylvan::spawn(move || kind_only(got(c3.peek_from(&mut [0u8; 8]), |(n, _)| n)));
        sylvan::yield_now();
        let fd = s.as_raw_fd();
        let shutter = sylvan::spawn(move || shut_rd(fd));
        let bad = Err((io::ErrorKind::InvalidInput, None));
        assert_eq!(
            [g1.join().unwrap(), g2.join().unwrap(), g3.join().unwrap()],
            [Ok(0), bad, bad]
        );
        shutter.join().unwrap();

        let u = Rc::new(UnixDatagram::unbound().unwrap());
        let (d1, d2, d3) = (
            u.try_clone().unwrap(),
            u.try_clone().unwrap(),
            u.try_clone().unwrap(),
        );
        let h1 = sylvan::spawn(move || n(d1.recv(&mut [0u8; 8])));
        let h2 = sylvan::spawn(move || {
            d2.recv_from(&mut [0u8; 8])
                .map(|(n, a)| (n, a.is_unnamed()))
        });
        let h3 = sylvan::spawn(move || n(d3.recv(&mut [])));
        sylvan::yield_now();
        let u2 = u.clone();
        let shutter = sylvan::spawn(move || u2.shutdown(Shutdown::Read).unwrap());
        assert_eq!(h1.join().unwrap(), Ok(0));
        assert_eq!(h2.join().unwrap().unwrap(), (0, true));
        assert_eq!(h3.join().unwrap(), Ok(0));
        shutter.join().unwrap();
    });
}

/// A receive parked with a long read timeout returns the shutdown's
/// answer when the shutdown comes, not `TimedOut` at the timeout (time is
/// the behaviour: generous bound).
#[test]
fn n04_a_receive_parked_with_a_read_timeout_answers_the_shutdown_at_once() {
    bounded(|| {
        let s = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        s.connect(s.local_addr().unwrap()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let s2 = s.clone();
        let t = Instant::now();
        let g = sylvan::spawn(move || n(s2.recv(&mut [0u8; 8])));
        sylvan::yield_now();
        shut_rd(s.as_raw_fd());
        assert_eq!(g.join().unwrap(), Ok(0));

        let (a, _b) = UnixDatagram::pair().unwrap();
        let a = Rc::new(a);
        a.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let a2 = a.clone();
        let g = sylvan::spawn(move || n(a2.recv(&mut [0u8; 8])));
        sylvan::yield_now();
        let a3 = a.clone();
        sylvan::spawn(move || a3.shutdown(Shutdown::Read).unwrap())
            .join()
            .unwrap();
        assert_eq!(g.join().unwrap(), Ok(0));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    });
}

/// Datagrams sent while a zero-length receive is parked, then the read
/// half shut, all before the receiver runs: the parked zero-length receive
/// takes (and truncates) the first, the next receive gets the second, and
/// only then the shutdown's 0. std's blocking socket does the same in
/// sequence.
#[test]
fn n05_datagrams_queued_before_the_shutdown_reach_a_parked_receiver_first() {
    // std, in sequence (the datagrams are queued when each call starts)
    let reference = bounded(|| {
        sylvan::spawn_blocking(|| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.connect(s.local_addr().unwrap()).unwrap();
            s.send(b"one").unwrap();
            s.send(b"two!").unwrap();
            let mut p = libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; waits until the first is queued.
            assert_eq!(unsafe { libc::poll(&mut p, 1, 2000) }, 1);
            shut_rd(s.as_raw_fd());
            let mut buf = [0u8; 8];
            vec![n(s.recv(&mut [])), n(s.recv(&mut buf)), n(s.recv(&mut buf))]
        })
    });
    assert_eq!(reference, [Ok(0), Ok(4), Ok(0)]);
    bounded(|| {
        let s = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        s.connect(s.local_addr().unwrap()).unwrap();
        let s2 = s.clone();
        let g = sylvan::spawn(move || {
            let mut buf = [0u8; 8];
            let first = n(s2.recv(&mut []));
            let second = n(s2.recv(&mut buf));
            let word = buf;
            vec![first, second, n(s2.recv(&mut buf)), Ok(word[3] as usize)]
        });
        sylvan::yield_now();
        s.send(b"one").unwrap();
        s.send(b"two!").unwrap();
        shut_rd(s.as_raw_fd());
        assert_eq!(g.join().unwrap(), [Ok(0), Ok(4), Ok(0), Ok(b'!' as usize)]);

        let (a, b) = UnixDatagram::pair().unwrap();
        let a = Rc::new(a);
        let a2 = a.clone();
        let g = sylvan::spawn(move || {
            let mut buf = [0u8; 8];
            vec![
                n(a2.recv(&mut [])),
                n(a2.recv(&mut buf)),
                n(a2.recv(&mut buf)),
            ]
        });
        sylvan::yield_now();
        b.send(b"one").unwrap();
        b.send(b"two!").unwrap();
        a.shutdown(Shutdown::Read).unwrap();
        assert_eq!(g.join().unwrap(), [Ok(0), Ok(4), Ok(0)]);
    });
}

/// Non-blocking from the start, no peer: every receive is the raw EAGAIN
/// after the shutdown, however often; the same handle back in blocking
/// mode answers at once (no park, so no hang under the bound).
#[test]
fn n06_peerless_nonblocking_after_the_shutdown_then_blocking_again() {
    bounded(|| {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        shut_rd(s.as_raw_fd());
        for _ in 0..3 {
            assert_eq!(n(s.recv(&mut [0u8; 4])), EAGAIN);
            assert_eq!(n(s.peek(&mut [])), EAGAIN);
            assert_eq!(got(s.recv_from(&mut [0u8; 4]), |(n, _)| n), EAGAIN);
            assert_eq!(got(s.peek_from(&mut [0u8; 4]), |(n, _)| n), EAGAIN);
        }
        s.set_nonblocking(false).unwrap();
        assert_eq!(n(s.recv(&mut [0u8; 4])), Ok(0));
        assert_eq!(n(s.peek(&mut [])), Ok(0));

        let u = UnixDatagram::unbound().unwrap();
        u.set_nonblocking(true).unwrap();
        u.shutdown(Shutdown::Read).unwrap();
        for _ in 0..3 {
            assert_eq!(n(u.recv(&mut [0u8; 4])), EAGAIN);
            assert_eq!(got(u.recv_from(&mut []), |(n, _)| n), EAGAIN);
        }
        u.set_nonblocking(false).unwrap();
        assert_eq!(n(u.recv(&mut [])), Ok(0));
        let (len, addr) = u.recv_from(&mut [0u8; 4]).unwrap();
        assert!(len == 0 && addr.is_unnamed());
    });
}

/// A receiver killed while parked, in the same turn as the shutdown that
/// would have woken it: it dies killed, and the other receiver parked
/// behind it still gets the shutdown's answer (the wake is handed on).
#[test]
fn n07_a_receiver_killed_at_the_shutdown_hands_the_wake_on() {
    bounded(|| {
        let s = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        s.connect(s.local_addr().unwrap()).unwrap();
        let (s1, s2) = (s.clone(), s.clone());
        let first = sylvan::spawn(move || n(s1.recv(&mut [0u8; 8])));
        let second = sylvan::spawn(move || n(s2.recv(&mut [0u8; 8])));
        sylvan::yield_now();
        shut_rd(s.as_raw_fd());
        first.kill_nowait();
        assert!(first.join().unwrap_err().is_killed());
        assert_eq!(second.join().unwrap(), Ok(0));
    });
}

// ---------------------------------------------------------------- i: iwait and a panicking watch

/// A payload of our own, to check it comes back untouched.
#[derive(Debug, PartialEq)]
struct Boom(u32);

/// A `Waitable` that counts its registrations and notices an `unwatch` of
/// a token it does not hold; its `watch` can panic (on the n-th call) or
/// sleep.
#[derive(Default)]
struct Reg {
    ready: Cell<bool>,
    next_token: Cell<usize>,
    live: RefCell<HashMap<usize, Waiter>>,
    watches: Cell<u32>,
    bad_unwatches: Cell<u32>,
    panic_on: Cell<Option<u32>>,
    sleep_in_watch: Cell<Option<Duration>>,
}

impl Reg {
    fn panicking_on(n: u32) -> Reg {
        let r = Reg::default();
        r.panic_on.set(Some(n));
        r
    }
    fn waiters(&self) -> Vec<Waiter> {
        self.live.borrow().values().copied().collect()
    }
    /// Becomes ready and wakes its watchers.
    fn raise(&self) {
        self.ready.set(true);
        for w in self.waiters() {
            w.wake();
        }
    }
    /// Wakes its watchers without being ready.
    fn spurious(&self) {
        for w in self.waiters() {
            w.wake();
        }
    }
    fn live(&self) -> usize {
        self.live.borrow().len()
    }
}

impl Waitable for Reg {
    fn is_ready(&self) -> bool {
        self.ready.get()
    }
    fn watch(&self, w: Waiter) -> usize {
        let k = self.watches.get() + 1;
        self.watches.set(k);
        if self.panic_on.get() == Some(k) {
            std::panic::panic_any(Boom(k));
        }
        if let Some(d) = self.sleep_in_watch.get() {
            sylvan::sleep(d);
        }
        let t = self.next_token.get();
        self.next_token.set(t + 1);
        self.live.borrow_mut().insert(t, w);
        t
    }
    fn unwatch(&self, w: Waiter, token: usize) {
        if self.live.borrow_mut().remove(&token) != Some(w) {
            self.bad_unwatches.set(self.bad_unwatches.get() + 1);
        }
    }
}

fn boom(p: Box<dyn std::any::Any + Send>) -> u32 {
    p.downcast::<Boom>().expect("the watch's own payload").0
}

fn clean(regs: &[&Reg]) {
    for (i, r) in regs.iter().enumerate() {
        assert_eq!(r.live(), 0, "object {i} still registered");
        assert_eq!(r.bad_unwatches.get(), 0, "object {i} unwatched twice");
    }
}

/// A panic in the first object's watch: the payload comes back as it
/// was, nothing is registered after it, and the iterator used again
/// reports every object as it becomes ready.
#[test]
fn i01_a_panic_in_the_first_watch_leaves_nothing_and_reuse_sees_all() {
    bounded(|| {
        let (a, b, c) = (
            Rc::new(Reg::panicking_on(1)),
            Rc::new(Reg::default()),
            Rc::new(Reg::default()),
        );
        let objs: [&dyn Waitable; 3] = [&*a, &*b, &*c];
        let mut it = sylvan::iwait(&objs, Some(Duration::from_secs(3)));
        let p = catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
        assert_eq!(boom(p), 1);
        assert_eq!((b.watches.get(), c.watches.get()), (0, 0));
        clean(&[&a, &b, &c]);
        let (a2, b2, c2) = (a.clone(), b.clone(), c.clone());
        let setter = sylvan::spawn(move || {
            c2.raise();
            sylvan::sleep(ms(2));
            a2.raise();
            sylvan::sleep(ms(2));
            b2.raise();
        });
        let order: Vec<usize> = it.by_ref().collect();
        assert_eq!(order, [2, 0, 1]);
        setter.join().unwrap();
        drop(it);
        clean(&[&a, &b, &c]);
    });
}

/// A panic in the last object's watch: the registrations made before it
/// are undone at once (before the iterator is dropped or used again).
#[test]
fn i02_a_panic_in_the_last_watch_undoes_the_others_at_once() {
    bounded(|| {
        let (a, b, c) = (Reg::default(), Reg::default(), Reg::panicking_on(1));
        let objs: [&dyn Waitable; 3] = [&a, &b, &c];
        let mut it = sylvan::iwait(&objs, Some(Duration::from_secs(3)));
        let p = catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
        assert_eq!(boom(p), 1);
        assert_eq!((a.watches.get(), b.watches.get()), (1, 1));
        clean(&[&a, &b, &c]); // the iterator is still alive here
        drop(it);
        clean(&[&a, &b, &c]);
    });
}

/// Objects that became ready between the panic and the reuse are
/// reported at once, in index order; the rest when they become ready.
#[test]
fn i03_reuse_after_the_panic_reports_what_became_ready_meanwhile() {
    bounded(|| {
        let regs: Vec<Rc<Reg>> = (0..4).map(|_| Rc::new(Reg::default())).collect();
        regs[2].panic_on.set(Some(1));
        let objs: Vec<&dyn Waitable> = regs.iter().map(|r| &**r as &dyn Waitable).collect();
        let mut it = sylvan::iwait(&objs, Some(Duration::from_secs(3)));
        assert_eq!(
            boom(catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err()),
            1
        );
        regs[3].raise();
        regs[1].raise();
        assert_eq!(it.next(), Some(1));
        assert_eq!(it.next(), Some(3));
        let (r0, r2) = (regs[0].clone(), regs[2].clone());
        let setter = sylvan::spawn(move || {
            r2.raise();
            sylvan::sleep(ms(2));
            r0.raise();
        });
        assert_eq!(it.next(), Some(2));
        assert_eq!(it.next(), Some(0));
        assert_eq!(it.next(), None);
        setter.join().unwrap();
        drop(it);
        let all: Vec<&Reg> = regs.iter().map(|r| &**r).collect();
        clean(&all);
    });
}

/// `wait` with a count: the watch's panic comes out of `wait` with its
/// payload, no registration is left, and a second `wait` on the same
/// objects (the watch no longer panics) works.
#[test]
fn i04_wait_with_a_count_passes_the_panic_on_and_leaks_nothing() {
    bounded(|| {
        let (a, b, c) = (
            Rc::new(Reg::default()),
            Rc::new(Reg::panicking_on(1)),
            Rc::new(Reg::default()),
        );
        let objs: [&dyn Waitable; 3] = [&*a, &*b, &*c];
        let p = catch_unwind(AssertUnwindSafe(|| {
            sylvan::wait(&objs, Some(Duration::from_secs(3)), Some(2))
        }))
        .unwrap_err();
        assert_eq!(boom(p), 1);
        clean(&[&a, &b, &c]);
        let (b2, c2) = (b.clone(), c.clone());
        let setter = sylvan::spawn(move || {
            c2.raise();
            sylvan::sleep(ms(2));
            b2.raise();
        });
        assert_eq!(
            sylvan::wait(&objs, Some(Duration::from_secs(3)), Some(2)),
            [2, 1]
        );
        setter.join().unwrap();
        clean(&[&a, &b, &c]);
    });
}

/// A watch that blocks (allowed: it is greenlet code) and is killed
/// there: the kill goes through `register`'s catch and comes out as a
/// kill (`is_unwind_payload`, `GreenletExit`), the greenlet dies killed,
/// and the registrations made before are undone.
#[test]
fn i05_a_kill_inside_a_blocking_watch_stays_a_kill() {
    bounded(|| {
        let (a, b) = (Rc::new(Reg::default()), Rc::new(Reg::default()));
        b.sleep_in_watch.set(Some(Duration::from_secs(3600)));
        let seen = Rc::new(Cell::new((false, false)));
        let (a2, b2, s) = (a.clone(), b.clone(), seen.clone());
        let g = sylvan::spawn(move || {
            let objs: [&dyn Waitable; 2] = [&*a2, &*b2];
            let mut it = sylvan::iwait(&objs, None);
            let p = catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
            s.set((
                sylvan::is_unwind_payload(&*p),
                p.is::<sylvan::GreenletExit>(),
            ));
            drop(it);
            std::panic::resume_unwind(p);
        });
        yield_until("the watch blocks", || b.watches.get() == 1);
        assert_eq!(a.live(), 1, "the first object is registered");
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        assert_eq!(seen.get(), (true, true));
        clean(&[&a, &b]);
    });
}

/// A timeout that expires inside a blocking watch: `with_timeout` gets
/// it back as its own expiry, nothing is left registered, and the
/// greenlet goes on.
#[test]
fn i06_a_timeout_inside_a_blocking_watch_stays_a_timeout() {
    bounded(|| {
        let (a, b, c) = (Reg::default(), Reg::default(), Reg::default());
        b.sleep_in_watch.set(Some(Duration::from_secs(3600)));
        let objs: [&dyn Waitable; 3] = [&a, &b, &c];
        let r = sylvan::with_timeout(ms(10), || sylvan::iwait(&objs, None).next());
        assert!(r.is_err(), "{r:?}");
        assert_eq!(c.watches.get(), 0);
        clean(&[&a, &b, &c]);
        // and a later wait on them works
        c.ready.set(true);
        b.sleep_in_watch.set(None);
        assert_eq!(sylvan::wait(&objs, Some(ms(100)), Some(1)), [2]);
        clean(&[&a, &b, &c]);
    });
}

/// Wraps a built-in `Waitable`, logging around its `watch` and counting
/// live registrations.
struct Logged<'a> {
    inner: &'a dyn Waitable,
    i: usize,
    log: crate::util::Log,
    live: Rc<Cell<i32>>,
}

impl Waitable for Logged<'_> {
    fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }
    fn watch(&self, w: Waiter) -> usize {
        self.log.push(format!("w{}+", self.i));
        let t = self.inner.watch(w);
        self.log.push(format!("w{}-", self.i));
        self.live.set(self.live.get() + 1);
        t
    }
    fn unwatch(&self, w: Waiter, token: usize) {
        self.live.set(self.live.get() - 1);
        self.inner.unwatch(w, token)
    }
    fn fired(&self, w: Waiter, token: usize) -> bool {
        self.inner.fired(w, token)
    }
}

/// The built-in watches never switch, so a kill cannot land inside
/// `register` with them: a killer made ready before the iterating
/// greenlet registers runs only after every watch has returned; the kill
/// then lands in the park and leaves no registration.
#[test]
fn i07_builtin_watches_never_switch_so_no_kill_lands_in_register() {
    bounded(|| {
        let log = crate::util::Log::default();
        let live = Rc::new(Cell::new(0));
        let (l, lv) = (log.clone(), live.clone());
        let g = sylvan::spawn(move || {
            let ev = Event::new();
            let res: AsyncResult<u8> = AsyncResult::new();
            let sem = Semaphore::new(0);
            let sleeper = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(3600)));
            let inner: [&dyn Waitable; 4] = [&ev, &res, &sem, &sleeper];
            let logged: Vec<Logged<'_>> = inner
                .iter()
                .enumerate()
                .map(|(i, w)| Logged {
                    inner: *w,
                    i,
                    log: l.clone(),
                    live: lv.clone(),
                })
                .collect();
            let objs: Vec<&dyn Waitable> = logged.iter().map(|x| x as &dyn Waitable).collect();
            let r = catch_unwind(AssertUnwindSafe(|| sylvan::iwait(&objs, None).next()));
            sleeper.kill_nowait();
            if let Err(p) = r {
                std::panic::resume_unwind(p);
            }
        });
        let slot = Rc::new(RefCell::new(Some(g)));
        let (s, l) = (slot.clone(), log.clone());
        let killer = sylvan::spawn(move || {
            l.push("killer");
            s.borrow().as_ref().unwrap().kill_nowait();
        });
        killer.join().unwrap();
        let g = slot.borrow_mut().take().unwrap();
        assert!(g.join().unwrap_err().is_killed());
        assert_eq!(
            log.take(),
            [
                "w0+", "w0-", "w1+", "w1-", "w2+", "w2-", "w3+", "w3-", "killer"
            ],
            "a watch switched"
        );
        assert_eq!(live.get(), 0);
    });
}

/// The re-watch after a spurious wake-up (documented: `iwait` unwatches
/// and watches again) is a `watch` too; when it panics, the iterator
/// keeps the token it had just unwatched: used again it never sees the
/// object (it waits until its deadline), and dropping it unwatches that
/// token a second time.
#[test]
fn i08_a_panic_in_the_rewatch_after_a_spurious_wakeup() {
    bounded(|| {
        let r = Rc::new(Reg::panicking_on(2));
        let objs: [&dyn Waitable; 1] = [&*r];
        let mut it = sylvan::iwait(&objs, Some(ms(500)));
        let r2 = r.clone();
        let waker = sylvan::spawn(move || r2.spurious());
        let p = catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
        assert_eq!(boom(p), 2, "the re-watch panicked");
        waker.join().unwrap();
        assert_eq!(r.live(), 0);
        let r3 = r.clone();
        let setter = sylvan::spawn(move || r3.raise());
        let t = Instant::now();
        assert_eq!(it.next(), Some(0), "after {:?}", t.elapsed());
        setter.join().unwrap();
        drop(it);
        clean(&[&r]);

        // `wait` gets the same panic; nothing is unwatched twice
        let r = Rc::new(Reg::panicking_on(2));
        let objs: [&dyn Waitable; 1] = [&*r];
        let r2 = r.clone();
        let waker = sylvan::spawn(move || r2.spurious());
        let p = catch_unwind(AssertUnwindSafe(|| {
            sylvan::wait(&objs, Some(ms(500)), None)
        }))
        .unwrap_err();
        assert_eq!(boom(p), 2);
        waker.join().unwrap();
        clean(&[&r]);
    });
}

/// An `Event` behind a `watch` that panics on its second call, and that
/// keeps its last waiter so that a test can wake it spuriously.
#[derive(Default)]
struct RewatchPanics {
    ev: Event,
    watches: Cell<u32>,
    last: Cell<Option<Waiter>>,
}

impl Waitable for RewatchPanics {
    fn is_ready(&self) -> bool {
        self.ev.is_ready()
    }
    fn watch(&self, w: Waiter) -> usize {
        self.watches.set(self.watches.get() + 1);
        if self.watches.get() == 2 {
            std::panic::panic_any(Boom(2));
        }
        self.last.set(Some(w));
        self.ev.watch(w)
    }
    fn unwatch(&self, w: Waiter, token: usize) {
        self.ev.unwatch(w, token)
    }
    fn fired(&self, w: Waiter, token: usize) -> bool {
        self.ev.fired(w, token)
    }
}

/// What `i08`'s stale token does to a built-in `Event`: the iterator's
/// drop unwatches the `Event` registration that took the freed place
/// since, here a greenlet's `wait_timeout`, which `set` then never wakes;
/// when that greenlet wakes (its timeout) or is unwound (thread exit), its
/// own removal finds the place gone ("invalid key" in the wait list), in
/// a destructor while unwinding: the process aborts. So this runs in a
/// child process.
#[test]
fn i09_the_stale_token_unregisters_another_greenlets_event_wait() {
    crate::util::in_child(
        "probes51::i09_the_stale_token_unregisters_another_greenlets_event_wait",
        "p51-i09",
        || {
            crate::util::quiet();
            let r = Rc::new(RewatchPanics::default());
            let objs: [&dyn Waitable; 1] = [&*r];
            let mut it = sylvan::iwait(&objs, Some(Duration::from_secs(2)));
            let r2 = r.clone();
            let waker = sylvan::spawn(move || r2.last.get().unwrap().wake());
            let p = catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
            assert_eq!(boom(p), 2);
            waker.join().unwrap();
            let r3 = r.clone();
            let other = sylvan::spawn(move || r3.ev.wait_timeout(Duration::from_secs(1)));
            sylvan::yield_now(); // parked on the event
            assert_eq!(r.ev.waiters(), 1);
            drop(it);
            assert_eq!(
                r.ev.waiters(),
                1,
                "the iterator's drop took another's place"
            );
            r.ev.set();
            assert!(other.join().unwrap(), "the set reached the other waiter");
        },
    );
}

// ---------------------------------------------------------------- s: wait_all and signal handlers

/// Runs `body` in a re-executed child process, not under `bounded` (its
/// `Timeout` would be work for `wait_all`): the child is killed after
/// 20 s instead. In the parent, asserts the child got to the end.
fn child(path: &str, name: &str, body: impl FnOnce()) {
    if is_child(name) {
        body();
        println!("PROBE ok");
        return;
    }
    let out = run_child_limited(path, name, &[], Duration::from_secs(20))
        .unwrap_or_else(|| panic!("child {name} hung"));
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success() && stdout.contains("PROBE ok"),
        "child {name} failed ({:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

/// Sends `sig` to this very thread: delivered (our C handler has written
/// its byte) before this returns.
fn raise_here(sig: i32) {
    // SAFETY: a thread-directed signal to this thread, which handles it.
    unsafe { libc::pthread_kill(libc::pthread_self(), sig) };
}

/// Sends `sig` to this process (any thread may take it).
fn kill_self(sig: i32) {
    // SAFETY: a signal to this process, which handles it.
    unsafe { libc::kill(libc::getpid(), sig) };
}

/// A handler that counts its runs.
fn counting(sig: i32) -> (Rc<Cell<u32>>, sylvan::SignalHandler) {
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let h = sylvan::signal(sig, move || r.set(r.get() + 1)).unwrap();
    (runs, h)
}

const LONG: Duration = Duration::from_secs(5);

/// Several handlers (two for one signal, one for another) and nothing
/// else: `wait_all` returns at once, true. They still run for signals
/// that come later.
#[test]
fn s01_several_handlers_alone_are_no_work() {
    child(
        "probes51::s01_several_handlers_alone_are_no_work",
        "p51-s01",
        || {
            let (a, _ha) = counting(libc::SIGUSR1);
            let (b, _hb) = counting(libc::SIGUSR1);
            let (c, _hc) = counting(libc::SIGUSR2);
            let t = Instant::now();
            assert!(sylvan::wait_all(Some(LONG)));
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
            raise_here(libc::SIGUSR1);
            raise_here(libc::SIGUSR2);
            yield_until("all three ran", || {
                a.get() == 1 && b.get() == 1 && c.get() == 1
            });
            assert!(sylvan::wait_all(Some(LONG)));
        },
    );
}

/// With a handler registered, the other kinds of work still count: a
/// sleeper is waited for; a greenlet parked on a socket read keeps
/// `wait_all` waiting until its deadline (false); a `Handle` job from a
/// thread holding a `KeepAlive` is run before `wait_all` returns.
#[test]
fn s02_other_work_still_counts_with_a_handler() {
    child(
        "probes51::s02_other_work_still_counts_with_a_handler",
        "p51-s02",
        || {
            let (_runs, _h) = counting(libc::SIGUSR1);
            // a timer
            let sleeper = sylvan::spawn(|| sylvan::sleep(ms(30)));
            assert!(sylvan::wait_all(Some(LONG)));
            assert!(sleeper.is_dead());
            // a socket waiter
            let (mut c, s) = tcp_pair();
            let reader = sylvan::spawn(move || {
                let mut b = [0u8; 1];
                std::io::Read::read(&mut &s, &mut b).unwrap()
            });
            let t = Instant::now();
            assert!(!sylvan::wait_all(Some(ms(100))), "the reader is work");
            assert!(t.elapsed() >= ms(100));
            std::io::Write::write_all(&mut c, b"x").unwrap();
            assert!(sylvan::wait_all(Some(LONG)));
            assert_eq!(reader.join().unwrap(), 1);
            // cross-thread work under a KeepAlive
            let handle = sylvan::Handle::current();
            let keep = handle.keep_alive();
            let ran = Arc::new(AtomicUsize::new(0));
            let r = ran.clone();
            let th = std::thread::spawn(move || {
                handle
                    .spawn(move || {
                        sylvan::sleep(ms(5));
                        r.store(1, Ordering::SeqCst);
                    })
                    .unwrap();
                drop(keep);
            });
            assert!(sylvan::wait_all(Some(LONG)));
            assert_eq!(ran.load(Ordering::SeqCst), 1);
            th.join().unwrap();
        },
    );
}

/// A signal sent from another thread while a `KeepAlive` keeps the hub
/// busy: its handler runs during `wait_all`, and what the handler then
/// blocks on (a sleep) is waited for too.
#[test]
fn s03_a_signal_during_wait_all_runs_its_handler_while_work_remains() {
    child(
        "probes51::s03_a_signal_during_wait_all_runs_its_handler_while_work_remains",
        "p51-s03",
        || {
            let started = Arc::new(AtomicBool::new(false));
            let done = Rc::new(Cell::new(false));
            let (s, d) = (started.clone(), done.clone());
            let _h = sylvan::signal(libc::SIGUSR1, move || {
                s.store(true, Ordering::SeqCst);
                sylvan::sleep(ms(20));
                d.set(true);
            })
            .unwrap();
            let keep = sylvan::Handle::current().keep_alive();
            let main_tid = gettid();
            let st = started.clone();
            let th = std::thread::spawn(move || {
                // best effort: send while main polls (either order works)
                wait_blocked_in(main_tid, &EPOLL_CALLS);
                kill_self(libc::SIGUSR1);
                let mut ok = false;
                for _ in 0..3000 {
                    if st.load(Ordering::SeqCst) {
                        ok = true;
                        break;
                    }
                    std::thread::sleep(ms(1));
                }
                drop(keep);
                ok
            });
            assert!(sylvan::wait_all(Some(LONG)));
            assert!(th.join().unwrap(), "the handler never started");
            assert!(
                done.get(),
                "wait_all returned before the handler's sleep ended"
            );
        },
    );
}

/// A greenlet waiting (with a timeout: a timer, so work) for an event
/// that only the handler sets; the signal comes from another thread:
/// `wait_all` returns once that greenlet is done, well before its timeout.
#[test]
fn s04_a_handler_ends_the_last_work() {
    child(
        "probes51::s04_a_handler_ends_the_last_work",
        "p51-s04",
        || {
            let ev = Rc::new(Event::new());
            let e = ev.clone();
            let _h = sylvan::signal(libc::SIGUSR2, move || e.set()).unwrap();
            let e = ev.clone();
            let waiter = sylvan::spawn(move || e.wait_timeout(Duration::from_secs(4)));
            let th = std::thread::spawn(kill_self_after_main_polls(gettid(), libc::SIGUSR2));
            let t = Instant::now();
            assert!(sylvan::wait_all(Some(Duration::from_secs(8))));
            assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
            assert!(waiter.join().unwrap(), "the handler set the event");
            th.join().unwrap();
        },
    );
}

fn kill_self_after_main_polls(main_tid: i32, sig: i32) -> impl FnOnce() + Send {
    move || {
        wait_blocked_in(main_tid, &EPOLL_CALLS);
        kill_self(sig);
    }
}

/// gevent's loop polls once more before it finds no work left, so a
/// signal delivered while the last work runs (or before `gevent.wait()`
/// is called) has its handler run before `wait()` returns. Here the last
/// greenlet raises the signal (delivered before `pthread_kill` returns)
/// and ends; then a signal is raised before `wait_all` with nothing else
/// left. `wait_all` returns without polling, and the handler has not run.
#[test]
fn s05_a_signal_delivered_before_the_work_ends_is_handled_before_wait_all_returns() {
    child(
        "probes51::s05_a_signal_delivered_before_the_work_ends_is_handled_before_wait_all_returns",
        "p51-s05",
        || {
            let (runs, _h) = counting(libc::SIGUSR1);
            sylvan::spawn(|| raise_here(libc::SIGUSR1));
            assert!(sylvan::wait_all(Some(LONG)));
            let by_last_work = runs.get();
            yield_until("the first run", || runs.get() == 1);
            raise_here(libc::SIGUSR1);
            assert!(sylvan::wait_all(Some(LONG)));
            let before_the_call = runs.get() - 1;
            assert_eq!(
                (by_last_work, before_the_call),
                (1, 1),
                "handler runs before wait_all returned: (signal raised by the last greenlet, \
                 raised before wait_all)"
            );
        },
    );
}

/// Control for `s05`: the handler runs later anyway (the next time main
/// blocks), so the signal is not lost, only late.
#[test]
fn s06_a_signal_left_pending_by_wait_all_is_handled_at_the_next_block() {
    child(
        "probes51::s06_a_signal_left_pending_by_wait_all_is_handled_at_the_next_block",
        "p51-s06",
        || {
            let (runs, _h) = counting(libc::SIGUSR1);
            raise_here(libc::SIGUSR1);
            assert!(sylvan::wait_all(Some(LONG)));
            yield_until("the handler ran", || runs.get() == 1);
        },
    );
}

/// Main parked (not in `wait_all`) on an event only a signal handler
/// sets: without a handler that is "would block forever" at once; with
/// one, main waits, and wakes when another thread sends the signal.
#[test]
fn s07_main_parked_on_an_event_only_a_handler_sets_waits_for_the_signal() {
    child(
        "probes51::s07_main_parked_on_an_event_only_a_handler_sets_waits_for_the_signal",
        "p51-s07",
        || {
            let ev = Rc::new(Event::new());
            let e = ev.clone();
            let p = catch_unwind(AssertUnwindSafe(|| e.wait())).unwrap_err();
            let msg = sylvan::runtime::payload_message(&*p).to_owned();
            assert!(msg.contains("would block forever"), "{msg}");
            let e = ev.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || e.set()).unwrap();
            // the other handler kinds of work are gone: only the handler
            let th = std::thread::spawn(kill_self_after_main_polls(gettid(), libc::SIGUSR1));
            assert!(ev.wait());
            th.join().unwrap();
            // and a second time, with two handlers, one for another signal
            ev.clear();
            let (_other, _h2) = counting(libc::SIGUSR2);
            let th = std::thread::spawn(kill_self_after_main_polls(gettid(), libc::SIGUSR1));
            assert!(ev.wait());
            th.join().unwrap();
        },
    );
}

/// The handler main's wait relied on is dropped by a greenlet while main
/// waits: nothing can wake main any more, so its wait fails with "would
/// block forever" instead of hanging. (`SIG_IGN` is the disposition
/// restored.)
#[test]
fn s08_dropping_the_handler_main_waits_on_is_then_a_deadlock() {
    child(
        "probes51::s08_dropping_the_handler_main_waits_on_is_then_a_deadlock",
        "p51-s08",
        || {
            // SAFETY: ignores SIGUSR1 in this child process.
            unsafe { libc::signal(libc::SIGUSR1, libc::SIG_IGN) };
            let ev = Rc::new(Event::new());
            let e = ev.clone();
            let h = sylvan::signal(libc::SIGUSR1, move || e.set()).unwrap();
            sylvan::spawn(move || {
                sylvan::sleep(ms(10));
                drop(h);
            });
            let e = ev.clone();
            let p = catch_unwind(AssertUnwindSafe(|| e.wait())).unwrap_err();
            let msg = sylvan::runtime::payload_message(&*p).to_owned();
            assert!(msg.contains("would block forever"), "{msg}");
        },
    );
}

/// Handlers dropped during `wait_all` (by the last work) change nothing:
/// it returns true once that work ends; one dropped by a handler itself
/// too.
#[test]
fn s09_handlers_dropped_during_wait_all() {
    child(
        "probes51::s09_handlers_dropped_during_wait_all",
        "p51-s09",
        || {
            // SAFETY: ignores both signals in this child process.
            unsafe {
                libc::signal(libc::SIGUSR1, libc::SIG_IGN);
                libc::signal(libc::SIGUSR2, libc::SIG_IGN);
            }
            let (_a, ha) = counting(libc::SIGUSR1);
            let (_b, hb) = counting(libc::SIGUSR2);
            sylvan::spawn(move || {
                sylvan::sleep(ms(10));
                drop(ha);
                sylvan::sleep(ms(10));
                drop(hb);
            });
            let t = Instant::now();
            assert!(sylvan::wait_all(Some(LONG)));
            assert!(t.elapsed() >= ms(20));
            // a handler that drops itself (its registration) when it runs
            let slot: Rc<RefCell<Option<sylvan::SignalHandler>>> = Rc::default();
            let s = slot.clone();
            let h = sylvan::signal(libc::SIGUSR1, move || drop(s.borrow_mut().take())).unwrap();
            *slot.borrow_mut() = Some(h);
            let sl = slot.clone();
            let keep = sylvan::spawn(move || {
                raise_here(libc::SIGUSR1);
                for _ in 0..1000 {
                    if sl.borrow().is_none() {
                        return true;
                    }
                    sylvan::sleep(ms(1));
                }
                false
            });
            assert!(sylvan::wait_all(Some(LONG)));
            assert!(keep.join().unwrap(), "the handler dropped itself");
            // nothing counts now: a wait on the event is a deadlock
            let ev = Event::new();
            let p = catch_unwind(AssertUnwindSafe(|| ev.wait())).unwrap_err();
            assert!(sylvan::runtime::payload_message(&*p).contains("would block forever"));
        },
    );
}

/// A forked child inherits the handler: `wait_all` there returns at once,
/// and main parked there on an event only the handler sets wakes when the
/// parent signals the child (sent repeatedly: a signal sent before the
/// child's pipe is its own reaches the parent's handler).
#[test]
fn s10_a_forked_child_inherits_handlers_that_are_no_work() {
    child(
        "probes51::s10_a_forked_child_inherits_handlers_that_are_no_work",
        "p51-s10",
        || {
            let ev = Rc::new(Event::new());
            let e = ev.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || e.set()).unwrap();
            let pid = fork_child(|| {
                let t = Instant::now();
                if !sylvan::wait_all(Some(LONG)) || t.elapsed() > Duration::from_secs(2) {
                    return 2;
                }
                // parked until the parent's signal reaches this child
                if ev.wait() { 0 } else { 3 }
            });
            let mut status = None;
            for _ in 0..4000 {
                // SAFETY: a signal to our own child, which handles it.
                unsafe { libc::kill(pid, libc::SIGUSR1) };
                let mut st = 0;
                // SAFETY: polls our own child.
                if unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) } == pid {
                    status = Some(if libc::WIFEXITED(st) {
                        libc::WEXITSTATUS(st)
                    } else {
                        -libc::WTERMSIG(st)
                    });
                    break;
                }
                std::thread::sleep(ms(1));
            }
            let code = status.unwrap_or_else(|| reap_blocking(pid, ms(10)));
            assert_eq!(code, 0, "the forked child failed");
        },
    );
}
