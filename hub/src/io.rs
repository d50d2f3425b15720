//! The IO registration core: every socket of `sylvan::net` (and the signal
//! pipes) is a [`Source`] registered once with the hub's poll, and every
//! blocking socket operation goes through [`Source::do_io`].
//!
//! # The contract
//!
//! * **One registration per source.** [`Source::new`] takes a slot of the
//!   hub's IO table (a slab; the slot's key is the mio token) and registers
//!   the descriptor for readable *and* writable edges. There is never a
//!   re-registration: the poll is edge-triggered, so an event means "this
//!   direction became ready since you last looked".
//! * **Readiness is cached per direction.** Each slot keeps a `ready` flag
//!   per direction. A poll event sets it; an operation that sees
//!   `WouldBlock` clears it. Both happen on the hub thread, and no poll runs
//!   between the failed syscall and the clear, so no edge is lost.
//! * **Try first, park on `WouldBlock`.** [`Source::do_io`] runs the
//!   syscall at once; only on `WouldBlock` does it join the direction's
//!   waiter list and park until the flag is set again, then retry. A woken
//!   greenlet re-checks the flag in a loop: wake-ups are hints, never
//!   counted.
//! * **A short TCP read drains.** On Linux, a TCP read that returns fewer
//!   bytes than asked (but some) got all the kernel had, so
//!   [`Source::read_tcp`] clears the read flag as a `WouldBlock` would,
//!   and the next read parks at once instead of making a syscall that
//!   fails (tokio does the same on epoll). Data that arrives after that
//!   read is a new edge. Three things make the flag *sticky*, never
//!   cleared by a short read: end of stream and socket errors (a FIN that
//!   came with the data raises no further edge), and urgent data (a read
//!   stops short at the urgent mark with data queued behind it; sources
//!   are registered for `EPOLLPRI` to see it). Unix streams do not take the
//!   shortcut: their reads also stop at ancillary-data boundaries (passed
//!   descriptors, credentials) with data behind. Flags start set: a new
//!   source may be ready already.
//! * **Waiters per direction, served in order.** A reader and a writer may
//!   wait on one socket at the same time. Of several greenlets waiting in
//!   the same direction an event wakes only the first, the one that started
//!   waiting earliest; a greenlet that finds the direction drained again
//!   keeps its place in the list. Whoever leaves the list (done, failed,
//!   timed out or killed) while the direction is still flagged ready wakes
//!   the next one: one datagram costs one wake-up and one retry, however
//!   many readers wait, and no readiness is lost to a waiter that never
//!   ran.
//! * **Guards clean up.** A waiter leaves the list (and the hub's
//!   wake-source count) when its guard drops, on success, error, timeout or
//!   unwind alike: a greenlet killed or timed out while parked leaves
//!   nothing behind. Dropping a source deregisters it before the descriptor
//!   is closed.
//! * **Wake-source count.** Each parked waiter counts once in the hub's
//!   `refs` (main blocked on a socket is legitimately waiting for the peer);
//!   callback sources (signal pipes) count for as long as they live, but
//!   are not work that `wait_all` waits for.
//!
//! The only mio types used here are behind `poll::Registrar` (a clone of the
//! hub's registry, registering raw descriptors with `mio::unix::SourceFd`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::hub::{Hub, TaskRef, Wake, Woke, hub};
use crate::poll::{Ready, Registrar};
use crate::task::WaitKind;

/// A direction of readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    /// Readable: data, a pending connection, end of stream or an error.
    Read = 0,
    /// Writable: buffer space, a finished connect, or an error.
    Write = 1,
}

/// The hub's IO table: one slot per registered source.
pub(crate) struct Io {
    /// Replaced in a forked child (see [`Io::reinit`]).
    registrar: RefCell<Registrar>,
    table: RefCell<Slab<Slot>>,
    /// Complete polls so far, and the hub's coarse clock at the last one.
    polls: Cell<u64>,
    polled_at: Cell<u64>,
}

impl fmt::Debug for Io {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Io")
            .field("sources", &self.table.borrow().len())
            .finish()
    }
}

/// A callback run on the hub when a callback source becomes readable.
pub(crate) type Notify = Rc<dyn Fn()>;

/// How recent (ns on the hub's coarse clock) the last poll must be for
/// [`Source::read_would_block`] to answer from the read flag: a close or
/// bytes that arrived since that poll go unseen, so this bounds how stale
/// the answer can be. Past it, one peek asks the kernel.
const SETTLED: u64 = 1_000_000;

/// One registered source. The fields a wait touches come first, so that
/// a wait usually touches one cache line of the table.
#[derive(Default)]
#[repr(C)]
struct Slot {
    /// Cached readiness per direction (see the module docs).
    ready: [bool; 2],
    /// The poll reported end of stream, an error or urgent data: a short
    /// read does not clear `ready[Read]` (see the module docs).
    sticky_read: bool,
    /// `Io::polls` when `ready[Read]` was last cleared: a later complete
    /// poll would have set it again for anything that arrived meanwhile.
    read_cleared: u64,
    /// The hub's coarse clock when a probe ([`Source::read_would_block`])
    /// last found the socket empty, since `ready[Read]` was cleared; zero
    /// when none did (a short read leaves it zero: the peer's close often
    /// follows its last bytes by microseconds).
    probed_at: u64,
    /// Greenlets waiting per direction, in the order they began waiting.
    waiters: [Waiters; 2],
    /// For callback sources: run when readable.
    notify: Option<Notify>,
    /// The registered descriptor (for registering it again in a forked
    /// child, see [`Io::reinit`]).
    fd: i32,
}

/// A direction's waiters in order: the first inline (one waiter is the
/// common case, and needs no allocation), the rest in a deque (the first
/// leaves most often). `first` is `None` only when there is no waiter at
/// all.
#[derive(Default)]
#[repr(C)]
struct Waiters {
    first: Option<TaskRef>,
    more: VecDeque<TaskRef>,
}

impl Slot {
    /// Clears `dir`'s readiness flag, `polls` being `Io::polls` now; for
    /// the read side, also what vouched for it (see `Io::read_settled`).
    #[inline]
    fn clear(&mut self, dir: Dir, polls: u64) {
        self.ready[dir as usize] = false;
        if dir == Dir::Read {
            self.read_cleared = polls;
            self.probed_at = 0;
        }
    }
}

impl Waiters {
    fn push(&mut self, w: TaskRef) {
        if self.first.is_none() {
            self.first = Some(w);
        } else {
            self.more.push_back(w);
        }
    }

    fn remove(&mut self, w: TaskRef) {
        if self.first == Some(w) {
            self.first = self.more.pop_front();
        } else {
            // From both ends: waiters that time out in the order they
            // came, or are killed last-first, are found at once.
            let n = self.more.len();
            if let Some(i) = (0..n.div_ceil(2))
                .flat_map(|i| [i, n - 1 - i])
                .find(|&i| self.more[i] == w)
            {
                self.more.remove(i);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// Wakes the first waiter, if any: the rest are woken in turn as each
    /// leaves (see `WaiterGuard::drop`).
    fn wake_first(&self, hub: &Hub) {
        if let Some(w) = self.first {
            hub.wake(w, Wake::Ready);
        }
    }
}

impl Io {
    pub(crate) fn new(registrar: Registrar) -> Io {
        Io {
            registrar: RefCell::new(registrar),
            table: RefCell::new(Slab::new()),
            polls: Cell::new(0),
            polled_at: Cell::new(0),
        }
    }

    fn insert(&self, fd: i32, notify: Option<Notify>) -> io::Result<usize> {
        if self.registrar.borrow().forked() {
            hub().after_fork()?;
        }
        let token = self.table.borrow_mut().insert(Slot {
            fd,
            notify,
            ready: [true, true],
            ..Slot::default()
        });
        if let Err(e) = self.registrar.borrow().add(fd, token) {
            self.table.borrow_mut().remove(token);
            return Err(e);
        }
        Ok(token)
    }

    /// Forgets the slot at `token`, deregistering `fd` first unless it is
    /// `None` (the registered file is gone already).
    fn remove(&self, fd: Option<i32>, token: usize) {
        // A failure here means the descriptor was already closed behind our
        // back (the kernel dropped the registration with it): nothing to undo.
        if let Some(fd) = fd {
            let _ = self.registrar.borrow().remove(fd);
        }
        let slot = self.table.borrow_mut().try_remove(token);
        debug_assert!(
            slot.as_ref()
                .is_none_or(|s| s.waiters.iter().all(Waiters::is_empty)),
            "sylvan: an IO source was dropped with greenlets waiting on it"
        );
        drop(slot);
    }

    /// In a forked child, after the hub made a poller of its own: registers
    /// every source with it under its old token. All directions count as
    /// ready (the next operation tries its syscall first); the new epoll
    /// reports what is ready now as a first edge, which wakes the
    /// greenlets parked on it. A source that cannot be registered again
    /// (its number no longer names the registered file: an `os::Fd` whose
    /// object was replaced through `get_mut`) has its waiters woken, to
    /// meet the error of their next syscall rather than wait forever.
    pub(crate) fn reinit(&self, hub: &Hub, registrar: Registrar) {
        *self.registrar.borrow_mut() = registrar;
        let mut failed = Vec::new();
        {
            let registrar = self.registrar.borrow();
            let mut table = self.table.borrow_mut();
            for (token, slot) in table.iter_mut() {
                slot.ready = [true, true];
                slot.probed_at = 0;
                if registrar.add(slot.fd, token).is_err() {
                    failed.push(token);
                }
            }
        }
        for token in failed {
            self.dispatch(
                hub,
                Ready {
                    token,
                    readable: true,
                    writable: true,
                    read_closed: false,
                    urgent: false,
                },
            );
        }
    }

    /// Handles one poll event: sets the readiness flags and wakes the
    /// waiters of each direction that became ready; runs a callback
    /// source's callback (outside the table borrow).
    pub(crate) fn dispatch(&self, hub: &Hub, ev: Ready) {
        let notify = {
            let mut table = self.table.borrow_mut();
            // A stale event for a source dropped in this same poll batch.
            let Some(slot) = table.get_mut(ev.token) else {
                return;
            };
            slot.sticky_read |= ev.read_closed || ev.urgent;
            for (dir, ready) in [(Dir::Read, ev.readable), (Dir::Write, ev.writable)] {
                if ready {
                    slot.ready[dir as usize] = true;
                    // `wake` only touches the task table and the ready
                    // queue, never this table.
                    slot.waiters[dir as usize].wake_first(hub);
                }
            }
            if ev.readable {
                slot.notify.clone()
            } else {
                None
            }
        };
        if let Some(f) = notify {
            f();
        }
    }

    #[inline]
    fn is_ready(&self, token: usize, dir: Dir) -> bool {
        self.table
            .borrow()
            .get(token)
            .is_some_and(|s| s.ready[dir as usize])
    }

    #[inline]
    fn clear_ready(&self, token: usize, dir: Dir) {
        if let Some(s) = self.table.borrow_mut().get_mut(token) {
            s.clear(dir, self.polls.get());
        }
    }

    /// The hub polled, when its coarse clock read `at`: a complete poll
    /// (see `Poller::poll`) vouches for the read flags as of `at`.
    #[inline]
    pub(crate) fn polled(&self, complete: bool, at: u64) {
        if complete {
            self.polls.set(self.polls.get() + 1);
            self.polled_at.set(at);
        }
    }

    /// Whether a read would block as far as the hub can vouch without a
    /// syscall: the read flag is clear, and either a probe found the socket
    /// empty, or a complete poll ran after the flag was cleared (it would
    /// have set the flag for any byte, end of stream or error that came
    /// before), less than [`SETTLED`] before `now`.
    fn read_settled(&self, token: usize, now: u64) -> bool {
        self.table.borrow().get(token).is_some_and(|s| {
            !s.ready[Dir::Read as usize]
                && ((s.probed_at != 0 && now.saturating_sub(s.probed_at) < SETTLED)
                    || (self.polls.get() > s.read_cleared
                        && now.saturating_sub(self.polled_at.get()) < SETTLED))
        })
    }

    /// A probe found the read side empty at `now`: the flag is cleared
    /// (no poll ran since the probe, so no edge is lost) and the probe
    /// vouches for it.
    fn probed(&self, token: usize, now: u64) {
        if let Some(s) = self.table.borrow_mut().get_mut(token) {
            s.clear(Dir::Read, self.polls.get());
            s.probed_at = now.max(1);
        }
    }

    /// A TCP read returned less than asked: the socket is drained, unless
    /// the flag is sticky (see the module docs).
    #[inline]
    fn drained(&self, token: usize) {
        if let Some(s) = self.table.borrow_mut().get_mut(token)
            && !s.sticky_read
        {
            s.clear(Dir::Read, self.polls.get());
        }
    }

    /// A read found the socket readable (bytes, end of stream or an error)
    /// before the hub polled its edge: the flag follows, so that
    /// [`Source::read_would_block`] does not take a stale "drained" for the
    /// truth.
    /// Waiters are not woken: the edge will be polled.
    #[inline]
    fn seen_readable(&self, token: usize) {
        if let Some(s) = self.table.borrow_mut().get_mut(token) {
            s.ready[Dir::Read as usize] = true;
        }
    }

    /// Marks `dir` ready and wakes its first waiter, as an event would.
    fn set_ready(&self, hub: &Hub, token: usize, dir: Dir) {
        if let Some(s) = self.table.borrow_mut().get_mut(token) {
            s.ready[dir as usize] = true;
            s.waiters[dir as usize].wake_first(hub);
        }
    }
}

/// A waiter's place in a direction's list; leaving it (on any exit,
/// unwinding included) removes it and its wake-source count, and passes
/// the direction's readiness on to the next waiter if it is still flagged
/// (the leaver may have been woken for it and not consumed it, or consumed
/// only part).
struct WaiterGuard {
    hub: &'static Hub,
    token: usize,
    dir: Dir,
    me: TaskRef,
}

impl WaiterGuard {
    /// Joins `dir`'s list and clears its readiness flag (the caller's
    /// syscall just returned `WouldBlock`).
    fn join(hub: &'static Hub, token: usize, dir: Dir) -> WaiterGuard {
        let me = hub.current();
        if let Some(s) = hub.io.table.borrow_mut().get_mut(token) {
            s.clear(dir, hub.io.polls.get());
            s.waiters[dir as usize].push(me);
        }
        hub.add_ref(1);
        WaiterGuard {
            hub,
            token,
            dir,
            me,
        }
    }
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        if let Some(s) = self.hub.io.table.borrow_mut().get_mut(self.token) {
            let waiters = &mut s.waiters[self.dir as usize];
            waiters.remove(self.me);
            if s.ready[self.dir as usize] {
                waiters.wake_first(self.hub);
            }
        }
        self.hub.add_ref(-1);
    }
}

/// An IO object registered with the current thread's hub.
///
/// Owns `T` (a non-blocking std socket or descriptor); dropping it
/// deregisters, then closes. `!Send`: it belongs to its hub's thread.
pub(crate) struct Source<T: AsRawFd> {
    io: ManuallyDrop<T>,
    token: usize,
    /// The `Hub::uid` of the hub whose table holds `token`.
    hub_uid: u64,
    /// Callback sources count as a wake source for their whole life.
    counted: bool,
    timeouts: [Cell<Option<Duration>>; 2],
    /// Set by the socket's `set_nonblocking(true)`: an operation that would
    /// park returns `WouldBlock` instead, as a non-blocking `std` socket
    /// does (gevent's `settimeout(0)`).
    nonblocking: Cell<bool>,
    /// What errors call the object ("socket", "descriptor").
    noun: &'static str,
    /// The descriptor number no longer names the registered file (an
    /// `os::Fd` whose object was replaced or closed through `get_mut`):
    /// deregistering by number would remove another file's registration.
    stale: Cell<bool>,
    _not_send: PhantomData<Rc<()>>,
}

impl<T: AsRawFd> fmt::Debug for Source<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("fd", &self.io.as_raw_fd())
            .field("token", &self.token)
            .finish()
    }
}

impl<T: AsRawFd> Source<T> {
    /// Registers `io` (already in non-blocking mode) with this thread's hub.
    ///
    /// On error `io` is dropped (closed).
    pub(crate) fn new(io: T) -> io::Result<Source<T>> {
        let hub = hub();
        let token = hub.io.insert(io.as_raw_fd(), None)?;
        Ok(Source {
            io: ManuallyDrop::new(io),
            token,
            hub_uid: hub.uid,
            counted: false,
            timeouts: [Cell::new(None), Cell::new(None)],
            nonblocking: Cell::new(false),
            noun: "socket",
            stale: Cell::new(false),
            _not_send: PhantomData,
        })
    }

    /// Registers a callback source: `notify` runs on the hub (it must not
    /// block) each time `io` becomes readable, and must read `io` until
    /// `WouldBlock`. The source counts as a wake source while it lives
    /// (though not as work for `wait_all`).
    pub(crate) fn with_callback(io: T, notify: Notify) -> io::Result<Source<T>> {
        let hub = hub();
        let token = hub.io.insert(io.as_raw_fd(), Some(notify))?;
        hub.add_callback_ref(1);
        Ok(Source {
            io: ManuallyDrop::new(io),
            token,
            hub_uid: hub.uid,
            counted: true,
            timeouts: [Cell::new(None), Cell::new(None)],
            nonblocking: Cell::new(false),
            noun: "socket",
            stale: Cell::new(false),
            _not_send: PhantomData,
        })
    }

    /// Names the object in error messages ("socket" unless told).
    pub(crate) fn with_noun(mut self, noun: &'static str) -> Self {
        self.noun = noun;
        self
    }

    /// The IO object.
    #[inline]
    pub(crate) fn get(&self) -> &T {
        &self.io
    }

    /// The timeout of operations in `dir` (`None`: wait without limit).
    pub(crate) fn timeout(&self, dir: Dir) -> Option<Duration> {
        self.timeouts[dir as usize].get()
    }

    /// Sets both timeouts, as read from a `std` socket (never zero: the
    /// kernel's zero means "none", which `std` reads as `None`).
    pub(crate) fn set_timeouts(&self, (read, write): (Option<Duration>, Option<Duration>)) {
        self.timeouts[Dir::Read as usize].set(read.filter(|d| !d.is_zero()));
        self.timeouts[Dir::Write as usize].set(write.filter(|d| !d.is_zero()));
    }

    /// Sets the timeout of operations in `dir`. Zero is rejected as `std`
    /// does.
    pub(crate) fn set_timeout(&self, dir: Dir, d: Option<Duration>) -> io::Result<()> {
        if d == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        self.timeouts[dir as usize].set(d);
        Ok(())
    }

    /// Whether operations that would park return `WouldBlock` instead.
    pub(crate) fn set_nonblocking(&self, on: bool) {
        self.nonblocking.set(on);
    }

    /// See [`set_nonblocking`](Self::set_nonblocking).
    pub(crate) fn is_nonblocking(&self) -> bool {
        self.nonblocking.get()
    }

    /// Marks `dir` ready and wakes its waiters (after a `shutdown`, so a
    /// parked reader or writer retries and sees what the kernel reports).
    pub(crate) fn poke(&self, dir: Dir) {
        if let Some(hub) = self.own_hub() {
            hub.io.set_ready(hub, self.token, dir);
        }
    }

    /// Runs `f` until it does not fail with `WouldBlock`, parking between
    /// tries until `dir` is ready; the direction's timeout applies from the
    /// first `WouldBlock`.
    ///
    /// # Errors
    ///
    /// What `f` returns; `TimedOut` when the timeout passed; an error naming
    /// the operation when the caller is unwinding and would have to park.
    #[inline]
    pub(crate) fn do_io<R>(
        &self,
        dir: Dir,
        what: &'static str,
        mut f: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        match f(&self.io) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.wait_and_retry(dir, what, None, Some(e), &mut f)
            }
            r => r,
        }
    }

    /// A read from a TCP stream into `len` bytes of buffer: as
    /// [`do_io`](Self::do_io) in [`Dir::Read`], except that on Linux a read
    /// returning fewer bytes than asked marks the socket drained, and a read
    /// from a drained socket parks until the next readable edge without
    /// trying the syscall first (see the module docs). Only for TCP: not for
    /// datagrams or peeks, where a short result says nothing about what is
    /// left, nor for Unix streams.
    #[inline]
    pub(crate) fn read_tcp(
        &self,
        len: usize,
        mut f: impl FnMut(&T) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if len == 0 {
            // Says nothing about what is left.
            return empty_tcp_read(self.do_io(Dir::Read, "read", f));
        }
        let io = &hub().io;
        let token = self.token;
        let mut read = |t: &T| {
            let r = f(t);
            match r {
                Ok(n)
                    if n > 0
                        && n < len
                        && cfg!(any(target_os = "linux", target_os = "android")) =>
                {
                    io.drained(token)
                }
                // More may be left (a full read), or end of stream or an
                // error will be seen again: readable, whatever the flag
                // said (an edge may not be polled yet).
                Err(ref e) if e.kind() == io::ErrorKind::WouldBlock => {}
                _ => io.seen_readable(token),
            }
            r
        };
        if !io.is_ready(token, Dir::Read) && !self.nonblocking.get() {
            return self.wait_and_retry(Dir::Read, "read", None, None, &mut read);
        }
        match read(&self.io) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.wait_and_retry(Dir::Read, "read", None, Some(e), &mut read)
            }
            r => r,
        }
    }

    /// Notes that a read-direction operation found the socket readable
    /// (see [`read_tcp`](Self::read_tcp)); for peeks, which go through
    /// [`do_io`](Self::do_io).
    #[inline]
    pub(crate) fn seen_readable(&self) {
        hub().io.seen_readable(self.token);
    }

    /// Whether a read would block now (nothing pending, no end of stream,
    /// no error), never parking: known without a syscall when a probe or a
    /// poll vouched for it recently and no edge came since (see
    /// `Io::read_settled`); otherwise `peek` (a non-blocking one-byte peek)
    /// asks the kernel. The answer may be up to [`SETTLED`] old.
    pub(crate) fn read_would_block(&self, peek: impl FnOnce(&T) -> io::Result<usize>) -> bool {
        let hub = hub();
        let io = &hub.io;
        let now = hub.stamp(Instant::now());
        if io.read_settled(self.token, now) {
            return true;
        }
        match peek(&self.io) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                io.probed(self.token, now);
                true
            }
            _ => {
                io.seen_readable(self.token);
                false
            }
        }
    }

    /// [`do_io`](Self::do_io) with an explicit deadline instead of the
    /// direction's timeout (for `connect`).
    pub(crate) fn do_io_until<R>(
        &self,
        dir: Dir,
        what: &'static str,
        deadline: Option<Instant>,
        mut f: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        match f(&self.io) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.wait_and_retry(dir, what, Some(deadline), Some(e), &mut f)
            }
            r => r,
        }
    }

    /// The slow path: the last try returned `WouldBlock` (`would_block`,
    /// or `None` when the cached flag said not to try). `deadline` is
    /// `Some(explicit)` or `None` for "the direction's timeout".
    #[inline(never)]
    fn wait_and_retry<R>(
        &self,
        dir: Dir,
        what: &'static str,
        deadline: Option<Option<Instant>>,
        would_block: Option<io::Error>,
        f: &mut impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        if self.nonblocking.get() {
            // The call's own error, as std's non-blocking socket returns
            // it (`raw_os_error` is EAGAIN).
            return Err(would_block.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EAGAIN)));
        }
        let hub = hub();
        let io = &hub.io;
        if std::thread::panicking() {
            // It cannot wait. When only the cached flag said not to try,
            // bytes may have come since: an operation that can complete at
            // once still does.
            if would_block.is_none() {
                match f(&self.io) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    r => return r,
                }
            }
            return Err(unwinding(self.noun, what));
        }
        let deadline =
            deadline.unwrap_or_else(|| self.timeout(dir).and_then(crate::time::deadline_after));
        // Clears the direction's flag too: no poll ran since the syscall
        // failed, so no edge is lost.
        let _waiter = WaiterGuard::join(hub, self.token, dir);
        loop {
            while !io.is_ready(self.token, dir) {
                let wait = WaitKind::Io {
                    op: what,
                    fd: self.io.as_raw_fd(),
                };
                match hub.park_until(wait, deadline) {
                    Woke::Ready => {}
                    Woke::TimedOut => return Err(timed_out(self.noun, what)),
                    Woke::Refused => return Err(unwinding(self.noun, what)),
                }
            }
            match f(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    io.clear_ready(self.token, dir);
                }
                r => return r,
            }
        }
    }

    /// Deregisters and returns the IO object (still non-blocking).
    pub(crate) fn into_inner(self) -> T {
        let mut me = ManuallyDrop::new(self);
        me.deregister();
        // SAFETY: `me` is never dropped (ManuallyDrop), so `io` is moved out
        // exactly once and never dropped in place.
        unsafe { ManuallyDrop::take(&mut me.io) }
    }

    /// This thread's hub if it is the one this source is registered with.
    fn own_hub(&self) -> Option<&'static Hub> {
        crate::hub::hub_with_uid(self.hub_uid)
    }

    /// Marks the registration stale (see the field): dropping the source
    /// then forgets its slot without touching the descriptor number.
    pub(crate) fn set_stale(&self) {
        self.stale.set(true);
    }

    fn deregister(&mut self) {
        if let Some(hub) = self.own_hub() {
            let fd = (!self.stale.get()).then(|| self.io.as_raw_fd());
            hub.io.remove(fd, self.token);
            if self.counted {
                hub.add_callback_ref(-1);
            }
        }
    }
}

impl<T: AsRawFd> Drop for Source<T> {
    fn drop(&mut self) {
        self.deregister();
        // SAFETY: `io` is dropped exactly once, here; `self` is not used
        // after this.
        unsafe { ManuallyDrop::drop(&mut self.io) }
    }
}

#[cold]
fn timed_out(noun: &str, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{noun} {what} timed out"))
}

/// The result of a TCP read or peek that asked for no bytes. On Linux a
/// blocking one waits for data or for the read timeout and returns 0
/// either way (the kernel's copy loop runs only while bytes are wanted), so
/// `std`'s `read(&mut [])` with a read timeout gives `Ok(0)` when it
/// expires; sylvan's own timeout of such a read becomes the same. (Only
/// TCP: a Unix or datagram socket's blocking receive of nothing fails with
/// `WouldBlock` at its timeout, as sylvan's `TimedOut` does.)
#[inline]
pub(crate) fn empty_tcp_read(r: io::Result<usize>) -> io::Result<usize> {
    match r {
        Err(e)
            if cfg!(any(target_os = "linux", target_os = "android"))
                && e.kind() == io::ErrorKind::TimedOut
                && e.raw_os_error().is_none() =>
        {
            Ok(0)
        }
        r => r,
    }
}

#[cold]
fn unwinding(noun: &str, what: &str) -> io::Error {
    io::Error::other(format!(
        "sylvan: {noun} {what} would block, but the calling greenlet is unwinding \
         (a kill, timeout or panic is in progress) and cannot park"
    ))
}
