//! Any pollable descriptor driven by the hub: pipes, a child process's
//! standard streams, terminals, `eventfd`s, `std`'s own sockets.
//!
//! [`Fd`] is gevent's `FileObjectPosix` and `wait_read`/`wait_write` for
//! descriptors that `sylvan::net` does not wrap: it puts the descriptor in
//! non-blocking mode, registers it with the hub, and turns every
//! `WouldBlock` into a park of the calling greenlet only.
//!
//! ```no_run
//! # extern crate sylvan_hub as sylvan;
//! use std::io::{BufRead, BufReader};
//! use std::process::{Command, Stdio};
//!
//! # fn main() -> std::io::Result<()> {
//! let mut child = Command::new("ping").args(["-c", "3", "127.0.0.1"])
//!     .stdout(Stdio::piped())
//!     .spawn()?;
//! let out = sylvan::os::Fd::new(child.stdout.take().unwrap())?;
//! let ticker = sylvan::spawn(|| loop {
//!     sylvan::sleep(std::time::Duration::from_millis(100)); // keeps ticking
//! });
//! for line in BufReader::new(out).lines() {
//!     println!("{}", line?); // parks this greenlet only
//! }
//! let status = sylvan::os::wait_child(&mut child)?; // parks too
//! ticker.kill();
//! # let _ = status; Ok(())
//! # }
//! ```

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, ExitStatus};
use std::time::Duration;

use crate::io::{Dir, Source};

/// The descriptor number, registered with the hub by the [`Source`] of an
/// [`Fd`]; the `Fd` owns the object itself and closes it after the source
/// has deregistered it.
struct Raw(RawFd);

impl AsRawFd for Raw {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// A pollable descriptor `T` whose reads and writes park the calling
/// greenlet, not the thread.
///
/// [`new`](Fd::new) sets `O_NONBLOCK` on the descriptor and registers it
/// with the current thread's hub; dropping the `Fd` (or
/// [`into_inner`](Fd::into_inner)) deregisters it and restores the
/// descriptor's original flags. Those flags belong to the open file
/// description, which `dup`'d descriptors and forked processes share: while
/// a terminal's standard input is wrapped, other holders of it see it
/// non-blocking too. `Fd`s on several descriptors of one description (a
/// `dup`, on this thread or another) are counted: the flags are restored
/// when the last of them goes. In a child forked while an `Fd` was alive,
/// the child's copies leave the flags alone when they go: the parent's `Fd`
/// relies on them. Separate descriptions of one file (two opens
/// of a FIFO or of `/dev/ptmx`, two `eventfd`s, which share an inode) are
/// told apart and keep their own flags.
///
/// `Read` and `Write` are implemented for `Fd<T>` when `T` has them, and for
/// `&Fd<T>` when `&T` has them (so several greenlets can share one `Fd`).
/// Any other operation goes through [`read_with`](Fd::read_with) or
/// [`write_with`](Fd::write_with). Timeouts work as on sylvan's sockets.
///
/// Only descriptors that `epoll` accepts can be wrapped: pipes, FIFOs,
/// sockets, terminals, `eventfd`, `timerfd`, `signalfd`, `inotify`.
/// Regular files, directories and devices that cannot be polled
/// (`/dev/null`) are refused ([`new`](Fd::new) fails with `InvalidInput`):
/// the kernel reports them always ready, so read them directly or through
/// [`spawn_blocking`](crate::spawn_blocking).
///
/// `!Send`: the registration belongs to the hub of the thread that made it.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::io::{Read, Write};
/// use sylvan::os::Fd;
///
/// let (reader, writer) = std::io::pipe().unwrap();
/// let mut reader = Fd::new(reader).unwrap();
/// let mut writer = Fd::new(writer).unwrap();
/// // A megabyte does not fit in a pipe: the writer parks until the reader
/// // (this greenlet, below) makes room.
/// let w = sylvan::spawn(move || writer.write_all(&vec![7u8; 1 << 20]));
/// let mut got = Vec::new();
/// let mut buf = [0u8; 65536];
/// while got.len() < 1 << 20 {
///     let n = reader.read(&mut buf).unwrap();
///     got.extend_from_slice(&buf[..n]);
/// }
/// w.join().unwrap().unwrap();
/// assert!(got.iter().all(|&b| b == 7));
/// ```
pub struct Fd<T: AsRawFd> {
    /// Declared first: deregisters before `io` closes the descriptor.
    source: Source<Raw>,
    /// `None` only after `into_inner` took it.
    io: Option<T>,
    /// The file of its open file description in [`WRAPPED`].
    key: Key,
}

/// What `fstat` and `F_GETFL` tell of an open file description: the file's
/// device and inode, and the access mode. Separate descriptions of one file
/// have the same key (see [`same_description`]).
type Key = (u64, u64, libc::c_int);

/// An open file description wrapped by `Fd`s.
struct Wrapped {
    key: Key,
    /// The descriptors of the `Fd`s alive on it, on any thread.
    fds: Vec<RawFd>,
    /// Its flags before the first of them set `O_NONBLOCK`, if it had to.
    restore: Option<libc::c_int>,
    /// [`forks`](crate::poll::forks) when it was wrapped: in a child forked
    /// since, the parent's `Fd`s share the description, and its flags are
    /// left as they are.
    forks: u64,
}

/// Whether `fd` (with status flags `flags`, not yet wrapped) and `other`
/// (wrapped, so non-blocking) share one open file description, given that
/// they have the same file and access mode. Status flags belong to the
/// description: if they differ, so do the descriptions; if they agree,
/// `O_APPEND` is flipped on `fd` for a moment to see whether `other` sees
/// it. `O_APPEND` changes nothing for what can be wrapped (pipes, sockets,
/// terminals, anonymous inodes), which have no file position. If the flip
/// is refused, they are taken to be one (the flags then stay set until the
/// last of both goes, rather than being taken from under one of them).
fn same_description(fd: RawFd, flags: libc::c_int, other: RawFd) -> bool {
    // SAFETY: F_GETFL and F_SETFL (here and below) read or change only the
    // status flags of a descriptor (`other` belongs to a live `Fd`: the
    // caller holds the lock its drop takes).
    let theirs = unsafe { libc::fcntl(other, libc::F_GETFL) };
    if theirs != flags {
        return false;
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags ^ libc::O_APPEND) } < 0 {
        return true;
    }
    // SAFETY: as above.
    let seen = unsafe { libc::fcntl(other, libc::F_GETFL) };
    // SAFETY: as above; puts back what was there.
    unsafe { libc::fcntl(fd, libc::F_SETFL, flags) };
    seen != theirs
}

/// The descriptions wrapped now, process-wide (a dup may be wrapped on
/// another thread). Few: searched linearly, locked only by `new` and drop.
static WRAPPED: std::sync::Mutex<Vec<Wrapped>> = std::sync::Mutex::new(Vec::new());

/// [`WRAPPED`]'s lock, for the fork handlers (`crate::poll`) to hold across
/// a `fork`, so that the child's copy is neither torn nor left locked by a
/// thread that is not there.
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(wrapped())
}

fn wrapped() -> std::sync::MutexGuard<'static, Vec<Wrapped>> {
    WRAPPED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The file behind `fd`: its device and inode.
fn file_of(fd: RawFd) -> io::Result<(u64, u64)> {
    // SAFETY: an all-zero `stat` is a valid value, and fstat writes only
    // into the struct it is given.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer; fstat reads no memory of ours.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.st_dev as u64, st.st_ino as u64))
}

impl<T: AsRawFd> Fd<T> {
    /// Puts `io` in non-blocking mode and registers it with this thread's
    /// hub.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when the descriptor cannot be polled (a regular file
    /// or directory) or is already registered with this hub (wrap a
    /// descriptor once; `dup` it for a second `Fd`); the `fcntl` error when
    /// its flags cannot be read or set. On error `io` is dropped.
    pub fn new(io: T) -> io::Result<Fd<T>> {
        let fd = io.as_raw_fd();
        let key = {
            // The flags are read under the lock: an `Fd` made meanwhile on
            // a dup (another thread) may be setting `O_NONBLOCK` on it.
            let mut all = wrapped();
            // SAFETY: F_GETFL takes no argument and only reads the flags of
            // a descriptor that `io` keeps open.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            if flags < 0 {
                return Err(context(io::Error::last_os_error(), fd, "reading its flags"));
            }
            let (dev, ino) = file_of(fd).map_err(|e| context(e, fd, "reading its file status"))?;
            let key = (dev, ino, flags & libc::O_ACCMODE);
            let shared = all
                .iter_mut()
                .find(|w| w.key == key && same_description(fd, flags, w.fds[0]));
            if flags & libc::O_NONBLOCK == 0 {
                set_flags(fd, flags | libc::O_NONBLOCK)?;
            }
            match shared {
                Some(w) => w.fds.push(fd),
                None => all.push(Wrapped {
                    key,
                    fds: vec![fd],
                    restore: (flags & libc::O_NONBLOCK == 0).then_some(flags),
                    forks: crate::poll::forks(),
                }),
            }
            key
        };
        match Source::new(Raw(fd)).map(|s| s.with_noun("descriptor")) {
            Ok(source) => Ok(Fd {
                source,
                io: Some(io),
                key,
            }),
            Err(e) => {
                release(key, fd, true);
                Err(refused(e, fd))
            }
        }
    }

    /// The wrapped object. Do not change its blocking mode.
    pub fn get_ref(&self) -> &T {
        self.io
            .as_ref()
            .expect("the object is there until into_inner")
    }

    /// The wrapped object, mutably. An operation on it that returns
    /// `WouldBlock` does not park (use [`read_with_mut`](Fd::read_with_mut)
    /// for that). Do not change its blocking mode, and do not replace or
    /// close it: the registration stays with the file it had at
    /// [`new`](Fd::new), so reads of a replacement would wait for readiness
    /// that never comes. (Dropping such an `Fd` touches neither the
    /// replacement nor a file that took the old descriptor number.)
    pub fn get_mut(&mut self) -> &mut T {
        self.parts().1
    }

    /// The source and the object, borrowed apart.
    fn parts(&mut self) -> (&Source<Raw>, &mut T) {
        let io = self
            .io
            .as_mut()
            .expect("the object is there until into_inner");
        (&self.source, io)
    }

    /// Deregisters the descriptor, restores its original flags (blocking
    /// again if it was) and returns the object.
    pub fn into_inner(mut self) -> T {
        self.release();
        self.io
            .take()
            .expect("the object is there until into_inner")
        // `self` drops here: its source deregisters (unless stale); `io`
        // is gone.
    }

    /// Runs `op` until it does not fail with `WouldBlock`, parking the
    /// calling greenlet until the descriptor is readable between tries;
    /// the read timeout applies from the first `WouldBlock` (gevent's
    /// `wait_read` followed by the operation).
    ///
    /// # Errors
    ///
    /// What `op` returns; `TimedOut` when the read timeout passed;
    /// `WouldBlock` itself after [`set_nonblocking(true)`](Fd::set_nonblocking).
    pub fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let io = self.get_ref();
        self.source.do_io(Dir::Read, "read", |_| op(io))
    }

    /// [`read_with`](Fd::read_with) for operations that need `&mut T`.
    ///
    /// # Errors
    ///
    /// As [`read_with`](Fd::read_with).
    pub fn read_with_mut<R>(
        &mut self,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        let (source, io) = self.parts();
        source.do_io(Dir::Read, "read", |_| op(io))
    }

    /// Runs `op` until it does not fail with `WouldBlock`, parking the
    /// calling greenlet until the descriptor is writable between tries;
    /// the write timeout applies from the first `WouldBlock`.
    ///
    /// # Errors
    ///
    /// As [`read_with`](Fd::read_with), with the write timeout.
    pub fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let io = self.get_ref();
        self.source.do_io(Dir::Write, "write", |_| op(io))
    }

    /// [`write_with`](Fd::write_with) for operations that need `&mut T`.
    ///
    /// # Errors
    ///
    /// As [`write_with`](Fd::write_with).
    pub fn write_with_mut<R>(
        &mut self,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        let (source, io) = self.parts();
        source.do_io(Dir::Write, "write", |_| op(io))
    }

    /// Sets the longest a read may park; `None` (the default) waits without
    /// limit. A read that runs out of time fails with `TimedOut`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero duration, as `std`'s sockets.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.source.set_timeout(Dir::Read, timeout)
    }

    /// Sets the longest a write may park; as
    /// [`set_read_timeout`](Fd::set_read_timeout).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero duration.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.source.set_timeout(Dir::Write, timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.source.timeout(Dir::Read)
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.source.timeout(Dir::Write)
    }

    /// With `true`, an operation that would park returns `WouldBlock`
    /// instead (the descriptor itself is non-blocking either way).
    pub fn set_nonblocking(&self, nonblocking: bool) {
        self.source.set_nonblocking(nonblocking);
    }

    /// Gives up this `Fd`'s hold on the description: its flags are
    /// restored if it was the last. If the object's descriptor is no longer
    /// the registered file (replaced or closed through `get_mut`), neither
    /// the flags nor the registration are touched: that number may name
    /// another file now.
    fn release(&mut self) {
        let registered = self.source.get().0;
        let same = self
            .io
            .as_ref()
            .is_some_and(|io| io.as_raw_fd() == registered)
            && file_of(registered).is_ok_and(|f| f == (self.key.0, self.key.1));
        if !same {
            self.source.set_stale();
        }
        release(self.key, registered, same);
    }
}

/// Drops the `Fd` on `fd` from its description's entry (file `key`); the
/// last restores the description's flags through `fd` if `restore` (the
/// descriptor is still the file that was wrapped).
fn release(key: Key, fd: RawFd, restore: bool) {
    let mut all = wrapped();
    let Some(at) = all.iter().position(|w| w.key == key && w.fds.contains(&fd)) else {
        return;
    };
    let fds = &mut all[at].fds;
    fds.swap_remove(fds.iter().position(|&f| f == fd).expect("found above"));
    if fds.is_empty() {
        let w = all.swap_remove(at);
        if let (Some(flags), true) = (w.restore, restore)
            && w.forks == crate::poll::forks()
        {
            // Best effort: the descriptor is open (we own it), so this
            // fails only if the kernel refuses flags it gave us.
            let _ = set_flags(fd, flags);
        }
    }
}

impl<T: AsRawFd> Drop for Fd<T> {
    fn drop(&mut self) {
        // Before the fields drop: the descriptor is still open here.
        if self.io.is_some() {
            self.release();
        }
    }
}

fn set_flags(fd: RawFd, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: F_SETFL takes an int argument and changes only the file
    // status flags of an open descriptor.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        return Err(context(io::Error::last_os_error(), fd, "setting its flags"));
    }
    Ok(())
}

#[cold]
fn context(e: io::Error, fd: RawFd, doing: &str) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("sylvan::os::Fd: descriptor {fd}: {doing}: {e}"),
    )
}

#[cold]
fn refused(e: io::Error, fd: RawFd) -> io::Error {
    match e.raw_os_error() {
        Some(libc::EPERM) => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "sylvan::os::Fd: descriptor {fd} cannot be polled ({e}): regular files, \
                 directories and some devices are always ready; read them directly or through \
                 spawn_blocking"
            ),
        ),
        Some(libc::EEXIST) => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "sylvan::os::Fd: descriptor {fd} is already registered with this hub ({e}); \
                 wrap a descriptor once and share the Fd (Read and Write work on &Fd)"
            ),
        ),
        _ => context(e, fd, "registering it with the hub"),
    }
}

impl<T: AsRawFd> AsRawFd for Fd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_raw_fd()
    }
}

impl<T: AsRawFd + AsFd> AsFd for Fd<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsRawFd + fmt::Debug> fmt::Debug for Fd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fd")
            .field("fd", &self.source.get().0)
            .field("io", &self.io)
            .finish()
    }
}

impl<T: AsRawFd + Read> Read for Fd<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with_mut(|io| io.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_with_mut(|io| io.read_vectored(bufs))
    }
}

impl<T: AsRawFd> Read for &Fd<T>
where
    for<'a> &'a T: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(|mut io| io.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_with(|mut io| io.read_vectored(bufs))
    }
}

impl<T: AsRawFd + Write> Write for Fd<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_with_mut(|io| io.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_with_mut(|io| io.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_with_mut(|io| io.flush())
    }
}

impl<T: AsRawFd> Write for &Fd<T>
where
    for<'a> &'a T: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_with(|mut io| io.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_with(|mut io| io.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_with(|mut io| io.flush())
    }
}

/// Waits for `child` to exit, parking only the calling greenlet (gevent's
/// `Popen.wait`); `std`'s `Child::wait` would block the whole thread.
///
/// On Linux 5.3 and later the hub watches a pidfd of the child, so the
/// greenlet wakes when the child exits. Where pidfds are unavailable (an
/// older kernel, a seccomp filter) it checks `try_wait` at growing
/// intervals, 1 ms up to 50 ms. Put it under [`with_timeout`] to bound the
/// wait, or kill the waiting greenlet: the child is left running either way.
///
/// Called while the greenlet unwinds (from a destructor during a kill or
/// panic), it cannot park, and blocks the thread in `Child::wait` instead:
/// kill the child first, as a guard that reaps its child does.
///
/// [`with_timeout`]: crate::with_timeout
///
/// # Errors
///
/// What `Child::try_wait` returns (`waitpid` failing).
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// let mut child = std::process::Command::new("true").spawn().unwrap();
/// let status = sylvan::os::wait_child(&mut child).unwrap();
/// assert!(status.success());
/// ```
pub fn wait_child(child: &mut Child) -> io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    if std::thread::panicking() {
        // A destructor during a kill or panic (a guard that kills and reaps
        // its child) cannot park: block the thread instead, as
        // `spawn_blocking` runs inline then.
        return child.wait();
    }
    match pidfd(child) {
        Some(fd) => fd.read_with(|_| child.try_wait()?.ok_or(io::ErrorKind::WouldBlock.into())),
        None => wait_polling(child),
    }
}

/// [`wait_child`] without a pidfd: `try_wait` at growing intervals.
fn wait_polling(child: &mut Child) -> io::Result<ExitStatus> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        crate::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A pidfd of `child` registered with the hub, when the kernel gives one.
fn pidfd(child: &Child) -> Option<Fd<OwnedFd>> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let pid = libc::pid_t::try_from(child.id()).ok()?;
        // SAFETY: pidfd_open takes a pid and a flags word and returns a new
        // descriptor (close-on-exec) or -1; it touches no memory of ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = RawFd::try_from(fd).ok().filter(|&fd| fd >= 0)?;
        // SAFETY: the kernel just returned this descriptor to us: open and
        // owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Fd::new(fd).ok()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = child;
        None
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    #[test]
    fn waiting_without_a_pidfd_polls_until_the_child_exits() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 0.05; exit 4"])
            .spawn()
            .unwrap();
        let other = crate::spawn(|| 7);
        assert_eq!(super::wait_polling(&mut child).unwrap().code(), Some(4));
        assert!(other.is_dead(), "other greenlets ran meanwhile");
        assert_eq!(other.join().unwrap(), 7);
    }
}
