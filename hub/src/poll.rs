//! The one file that touches `mio`'s `Poll` and registry: the hub's poller
//! and its cross-thread waker (the sockets in `net` wrap `mio::net` types,
//! and `remote` holds the `mio::Waker`).

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

/// The token of the hub's [`Waker`]; IO sources use slab keys below it.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);

/// Readiness reported for one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ready {
    pub(crate) token: usize,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The peer ended its side (FIN) or the socket has an error: reads will
    /// not block again.
    pub(crate) read_closed: bool,
    /// Urgent (out-of-band) data arrived: a TCP read stops short at its
    /// mark with more data queued behind it.
    pub(crate) urgent: bool,
}

pub(crate) struct Poller {
    poll: Poll,
    events: Events,
    /// [`FORKS`] when it was made.
    forks: u64,
}

/// Bumped in the child of each `fork`. An epoll instance made before a fork
/// is shared with the parent: what the child adds to it, removes from it or
/// takes from it (edge-triggered events are reported once) would be the
/// parent's loss. So in the child, a hub whose poller predates the fork
/// never touches that epoll again: before its next poll or registration it
/// makes a poller of its own and registers its sources there again
/// (`Hub::after_fork`, gevent's `reinit`); until then, dropping a source
/// leaves the shared registration alone (it is the parent's too).
static FORKS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The locks [`watch_forks`]'s prepare handler took, until the parent
    /// or child handler lets them go (all three run on the forking thread).
    static HELD_FOR_FORK: std::cell::RefCell<Vec<Box<dyn std::any::Any>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Counts forks from now on, and makes each fork hold sylvan's
/// process-wide locks (the blocking pool's, the table of wrapped
/// descriptors, the signal registrations): only the forking thread goes on
/// in the child, so a lock that another thread held at that instant would
/// stay held there forever, over data it was changing. Taken first, each
/// is whole and free in both processes. (A hub's own cross-thread job list
/// and waker take no lock; see `crate::remote`.) Once per process.
fn watch_forks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    extern "C" fn prepare() {
        // No two of these locks are ever held together, and none is held
        // while code that could fork runs: taking them cannot deadlock.
        let mut held: Vec<Box<dyn std::any::Any>> = Vec::with_capacity(3);
        held.extend(crate::threadpool::lock_for_fork());
        held.push(crate::os::lock_for_fork());
        held.push(crate::signal::lock_for_fork());
        let _ = HELD_FOR_FORK.try_with(|h| *h.borrow_mut() = held);
    }
    extern "C" fn parent() {
        let _ = HELD_FOR_FORK.try_with(|h| h.borrow_mut().clear());
    }
    extern "C" fn child() {
        let _ = HELD_FOR_FORK.try_with(|h| h.borrow_mut().clear());
        FORKS.fetch_add(1, Ordering::Relaxed);
        crate::signal::renew_pipes();
    }
    ONCE.call_once(|| {
        // SAFETY: the handlers lock and unlock std mutexes (see `prepare`
        // for why that cannot deadlock), bump an atomic and call
        // `renew_pipes`, which says why it is safe in a forked child;
        // registering has no other effect.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}

/// Forks counted so far: a value recorded now differs in any child forked
/// later (the count starts with the first hub).
pub(crate) fn forks() -> u64 {
    watch_forks();
    FORKS.load(Ordering::Relaxed)
}

/// True in a child forked after a poller made when [`FORKS`] was `forks`.
fn forked_since(forks: u64) -> bool {
    FORKS.load(Ordering::Relaxed) != forks
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").finish_non_exhaustive()
    }
}

impl Poller {
    pub(crate) fn new() -> io::Result<Poller> {
        watch_forks();
        let poll = Poll::new()?;
        Ok(Poller {
            poll,
            events: Events::with_capacity(1024),
            forks: FORKS.load(Ordering::Relaxed),
        })
    }

    /// True in a child forked since this poller was made: its epoll is the
    /// parent's too, and must be replaced ([`reinit`](Self::reinit)) before
    /// the next poll or registration.
    #[inline]
    pub(crate) fn forked(&self) -> bool {
        forked_since(self.forks)
    }

    /// Replaces the epoll instance with a new one of this process (the old
    /// one is closed here, not in the parent, which keeps its
    /// registrations), with its waker and a registrar to register the
    /// sources again. All or nothing: on an error the poller is unchanged.
    pub(crate) fn reinit(&mut self) -> io::Result<(Waker, Registrar)> {
        let fresh = Poller::new()?;
        let waker = fresh.make_waker()?;
        let registrar = fresh.registrar()?;
        *self = fresh;
        Ok((waker, registrar))
    }

    /// Makes the waker other threads use to interrupt [`Poller::poll`]
    /// (one per epoll instance).
    pub(crate) fn make_waker(&self) -> io::Result<Waker> {
        Waker::new(self.poll.registry(), WAKER_TOKEN)
    }

    /// The registry, for IO sources.
    pub(crate) fn registry(&self) -> &mio::Registry {
        self.poll.registry()
    }

    /// A handle that registers IO sources with this poller (a clone of its
    /// registry, so the IO table can register without borrowing the poller).
    pub(crate) fn registrar(&self) -> io::Result<Registrar> {
        Ok(Registrar {
            registry: self.registry().try_clone()?,
            forks: self.forks,
        })
    }

    /// Waits up to `timeout` (forever when `None`) and reports each event.
    /// Events for [`WAKER_TOKEN`] are reported too (the caller drains its
    /// cross-thread queue then). EINTR counts as an empty wake-up. Returns
    /// whether the poll was complete: every edge queued before it was
    /// reported (by it or an earlier poll), which a full batch or EINTR
    /// cannot promise.
    ///
    /// The caller replaces a poller shared with a parent process first
    /// (see [`forked`](Self::forked)).
    pub(crate) fn poll(
        &mut self,
        timeout: Option<Duration>,
        mut f: impl FnMut(Ready),
    ) -> io::Result<bool> {
        debug_assert!(
            !self.forked(),
            "sylvan: polling an epoll shared with the parent"
        );
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
            Err(e) => return Err(e),
        }
        let mut n = 0;
        for ev in self.events.iter() {
            n += 1;
            f(Ready {
                token: ev.token().0,
                readable: ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                writable: ev.is_writable() || ev.is_write_closed() || ev.is_error(),
                read_closed: ev.is_read_closed() || ev.is_error(),
                urgent: ev.is_priority(),
            });
        }
        // A full batch may have left edges queued in the kernel.
        Ok(n < self.events.capacity())
    }
}

/// Registers file descriptors with the hub's poll: always for both
/// directions and edge-triggered (mio's only mode on Linux), once per
/// source. The IO table (`io.rs`) is its only user.
pub(crate) struct Registrar {
    registry: mio::Registry,
    /// As [`Poller::forks`].
    forks: u64,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar").finish_non_exhaustive()
    }
}

impl Registrar {
    /// Registers `fd` under `token` for readable and writable edges (and,
    /// on Linux, urgent data: see `Ready::urgent`).
    pub(crate) fn add(&self, fd: RawFd, token: usize) -> io::Result<()> {
        debug_assert_ne!(
            token, WAKER_TOKEN.0,
            "an IO token collides with the waker's"
        );
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let interest = Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let interest = Interest::READABLE | Interest::WRITABLE;
        debug_assert!(
            !forked_since(self.forks),
            "sylvan: registering with an epoll shared with the parent"
        );
        self.registry
            .register(&mut SourceFd(&fd), Token(token), interest)
    }

    /// True in a child forked since the poller was made (see
    /// [`Poller::forked`]).
    #[inline]
    pub(crate) fn forked(&self) -> bool {
        forked_since(self.forks)
    }

    /// Deregisters `fd` (which must still be open).
    pub(crate) fn remove(&self, fd: RawFd) -> io::Result<()> {
        if forked_since(self.forks) {
            // The parent's registration too: left alone.
            return Ok(());
        }
        self.registry.deregister(&mut SourceFd(&fd))
    }
}
