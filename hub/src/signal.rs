//! Unix signals delivered to greenlets: [`signal`].
//!
//! # How
//!
//! A self-pipe per registration. The process-wide C handler (installed with
//! `sigaction` when the first registration for a signal number appears, and
//! the previous disposition restored when the last one goes) writes the
//! signal number as one byte into the write end of every pipe registered
//! for it: `write(2)` on a non-blocking pipe is async-signal-safe, and the
//! handler touches only atomics. The read end is a callback source on the
//! registering hub: when it becomes readable the hub drains it and spawns
//! one greenlet, which calls the user's function once however many bytes
//! it read: signals that arrive faster than the hub drains coalesce, as
//! the kernel's pending signals do (and as gevent runs the handler once).
//!
//! A registration counts as a wake source while it lives (unlike gevent's
//! unreferenced signal watchers): main parked until "Ctrl-C sets an event"
//! waits for the signal instead of failing with "would block forever". It
//! is not work for [`wait_all`](crate::wait_all), though, as in gevent:
//! `wait_all` returns once everything else is done, handler or not.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::io::Source;
use crate::task::Builder;

/// Registrations possible at once, process-wide.
const SLOTS: usize = 64;

/// One registration as the C handler sees it: the signal number (0 when
/// free) and the pipe's write end (-1 when free); and its read end (-1 when
/// free), for [`renew_pipes`] after a fork.
struct Slot {
    signum: AtomicI32,
    fd: AtomicI32,
    read: AtomicI32,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    signum: AtomicI32::new(0),
    fd: AtomicI32::new(-1),
    read: AtomicI32::new(-1),
};

static TABLE: [Slot; SLOTS] = [FREE; SLOTS];
/// C handlers running now (on any thread).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Signal numbers with our handler installed: the previous action and the
/// number of registrations.
struct Installed {
    by_signum: HashMap<i32, (libc::sigaction, usize)>,
}

// SAFETY: `libc::sigaction` is plain data (a function address, flags and a
// mask); it is only read and written under the mutex.
unsafe impl Send for Installed {}

static INSTALLED: Mutex<Option<Installed>> = Mutex::new(None);

/// [`INSTALLED`]'s lock, for the fork handlers (`crate::poll`) to hold
/// across a `fork` (see `os::lock_for_fork`).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(installed())
}

fn installed() -> MutexGuard<'static, Option<Installed>> {
    INSTALLED.lock().unwrap_or_else(|e| e.into_inner())
}

extern "C" fn on_signal(signum: libc::c_int) {
    // SAFETY: `__errno_location` returns this thread's errno slot; saving
    // and restoring it keeps the interrupted code's errno intact.
    let errno = unsafe { *libc::__errno_location() };
    RUNNING.fetch_add(1, Ordering::SeqCst);
    let byte = signum as u8;
    for slot in &TABLE {
        if slot.signum.load(Ordering::SeqCst) == signum {
            let fd = slot.fd.load(Ordering::SeqCst);
            if fd >= 0 {
                // SAFETY: `fd` is an open pipe write end: a slot's fd is
                // closed only after it was cleared and `RUNNING` was seen at
                // zero, and we counted ourselves in `RUNNING` before loading
                // it. A full pipe (EAGAIN) drops the byte: signals coalesce.
                unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
            }
        }
    }
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// In the child of a `fork` (called from the `pthread_atfork` handler that
/// `poll.rs` installs with the first hub, which any registration needs):
/// gives every registration a pipe of its own under the same descriptor
/// numbers. The child's copies referred to the parent's pipes, so a signal sent to the
/// child would have woken the parent's handler, or the other way round;
/// the child's hub registers the read ends with its own epoll after the
/// fork (`Hub::after_fork`). A pipe that cannot be made leaves that
/// registration shared, as before.
pub(crate) fn renew_pipes() {
    for slot in &TABLE {
        let (read, write) = (
            slot.read.load(Ordering::SeqCst),
            slot.fd.load(Ordering::SeqCst),
        );
        if read < 0 || write < 0 {
            continue;
        }
        let mut fds = [0; 2];
        // SAFETY: pipe2, dup3 and close are async-signal-safe, as a fork
        // handler must be. `fds` has room for two descriptors; `read` and
        // `write` are this registration's open descriptors (only the forking
        // thread runs in the child, and it is here), which dup3 points at
        // the new pipe, closing the old references; the temporaries are
        // then closed.
        unsafe {
            if libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) != 0 {
                continue;
            }
            libc::dup3(fds[0], read, libc::O_CLOEXEC);
            libc::dup3(fds[1], write, libc::O_CLOEXEC);
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}

/// A registered signal handler (see [`signal`]); dropping it unregisters.
pub struct SignalHandler {
    signum: i32,
    slot: usize,
    write: Option<OwnedFd>,
    _read: Source<OwnedFd>,
}

impl fmt::Debug for SignalHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalHandler")
            .field("signum", &self.signum)
            .finish()
    }
}

impl SignalHandler {
    /// The signal number.
    pub fn signum(&self) -> i32 {
        self.signum
    }

    /// Unregisters (as dropping it does).
    pub fn cancel(self) {}
}

impl Drop for SignalHandler {
    fn drop(&mut self) {
        let mut guard = installed();
        let slot = &TABLE[self.slot];
        slot.signum.store(0, Ordering::SeqCst);
        slot.fd.store(-1, Ordering::SeqCst);
        slot.read.store(-1, Ordering::SeqCst);
        // A handler that loaded the fd before we cleared it counted itself
        // in RUNNING first: once RUNNING is zero, none can still use it.
        while RUNNING.load(Ordering::SeqCst) != 0 {
            std::hint::spin_loop();
        }
        drop(self.write.take());
        let by_signum = guard.as_mut().map(|inst| &mut inst.by_signum);
        if let Some(by_signum) = by_signum {
            let last = by_signum.get_mut(&self.signum).and_then(|(old, n)| {
                *n -= 1;
                (*n == 0).then_some(*old)
            });
            if let Some(old) = last {
                by_signum.remove(&self.signum);
                // SAFETY: restores the action saved when ours was
                // installed; `old` is a valid sigaction from the kernel.
                unsafe { libc::sigaction(self.signum, &old, std::ptr::null_mut()) };
            }
        }
    }
}

/// Runs `handler` in a new greenlet on this thread's hub each time the
/// process receives signal `signum`, until the returned [`SignalHandler`] is
/// dropped. Signals that arrive before the hub gets to them coalesce: one
/// run for all of them, as the kernel keeps one pending signal of a kind.
///
/// The handler is ordinary greenlet code: it may block, use `Rc`s of this
/// thread, spawn and kill. Several registrations (on one hub or on several
/// threads' hubs) for one signal all run. While any registration for a
/// signal exists, its previous disposition (default action, ignore, or
/// another handler) is replaced; it is restored when the last one is
/// dropped.
///
/// A panic in the handler is the failure of its greenlet (named
/// `signal N`), reported by the [`ErrorPolicy`](crate::ErrorPolicy); then
/// it is raised in main, as gevent raises a signal handler's exception in
/// the main greenlet: the blocking call main is parked in unwinds with the
/// handler's panic payload (printing nothing more). A
/// [`Timeout`](crate::Timeout) armed in the handler that expires uncaught
/// ends it the same way: reported, then raised in main as an
/// [`Elapsed`](crate::Elapsed) payload (gevent raises the `Timeout` in
/// main). Wrap that call in `catch_unwind` if main should go on; the
/// registration stays either way. Several failures are raised in turn,
/// the next at main's next blocking call (up to 64 waiting; past that a
/// failure is only reported).
/// A `SIGCHLD` handler's failure is only reported, as gevent prints and
/// ignores the exception of a `SIGCHLD` handler (its child watcher calls
/// it, not a signal watcher).
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::cell::Cell;
/// use std::rc::Rc;
/// let got = Rc::new(Cell::new(false));
/// let g = got.clone();
/// let _h = sylvan::signal(libc::SIGUSR2, move || g.set(true))?;
/// // SAFETY: sends SIGUSR2 to this process, which now handles it.
/// unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
/// for _ in 0..1000 {
///     if got.get() { break }
///     sylvan::sleep(std::time::Duration::from_millis(1));
/// }
/// assert!(got.get());
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// `InvalidInput` for signals that cannot or must not be caught
/// (`SIGKILL`, `SIGSTOP`, and the fault signals `SIGSEGV`, `SIGBUS`,
/// `SIGILL`, `SIGFPE`, which sylvan's stack-overflow detection uses);
/// an error when 64 registrations already exist process-wide, or from
/// `pipe2`/`sigaction`.
pub fn signal(signum: i32, handler: impl Fn() + 'static) -> io::Result<SignalHandler> {
    if matches!(
        signum,
        libc::SIGKILL | libc::SIGSTOP | libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE
    ) || !(1..=libc::SIGRTMAX()).contains(&signum)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("sylvan::signal: signal {signum} cannot be handled"),
        ));
    }
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are open and owned by us.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let handler: Rc<dyn Fn()> = Rc::new(handler);
    let read_fd = read.as_raw_fd();
    let notify = Rc::new(move || {
        let mut buf = [0u8; 64];
        let mut arrived = false;
        loop {
            // SAFETY: reads into a local buffer from the pipe's read end,
            // which is open while its source is registered (this callback
            // runs only then).
            let n = unsafe { libc::read(read_fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break; // EAGAIN: drained (the write end never closes first)
            }
            arrived = true;
        }
        if arrived {
            let h = handler.clone();
            let spawned = Builder::new()
                .name(format!("signal {signum}"))
                .spawn(move || h());
            match spawned {
                // A panic of the handler is reported, then raised in main
                // (but for SIGCHLD: see `signal`'s docs).
                Ok(g) => g.task().raise_in_main.set(signum != libc::SIGCHLD),
                Err(e) => stderr!("sylvan: cannot run the handler of signal {signum}: {e}"),
            }
        }
    });
    let source = Source::with_callback(read, notify)?;
    let mut guard = installed();
    let inst = guard.get_or_insert_with(|| Installed {
        by_signum: HashMap::new(),
    });
    let Some(slot) = TABLE
        .iter()
        .position(|s| s.signum.load(Ordering::SeqCst) == 0)
    else {
        return Err(io::Error::other(format!(
            "sylvan::signal: {SLOTS} signal registrations exist already"
        )));
    };
    if let Some((_, n)) = inst.by_signum.get_mut(&signum) {
        *n += 1;
    } else {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask"
        // value that we fill in; `on_signal` only touches atomics and
        // write(2), which are async-signal-safe.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: `sa_mask` is a valid sigset_t inside `action`.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: as above.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: installs a valid action and stores the old one in `old`.
        if unsafe { libc::sigaction(signum, &action, &mut old) } != 0 {
            return Err(io::Error::last_os_error());
        }
        inst.by_signum.insert(signum, (old, 1));
    }
    TABLE[slot].read.store(read_fd, Ordering::SeqCst);
    TABLE[slot].fd.store(write.as_raw_fd(), Ordering::SeqCst);
    TABLE[slot].signum.store(signum, Ordering::SeqCst);
    drop(guard);
    Ok(SignalHandler {
        signum,
        slot,
        write: Some(write),
        _read: source,
    })
}
