//! TCP: [`TcpListener`] and [`TcpStream`].

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::sealed::Target;
use super::{ToSocketAddrs, each_addr, resolve};
use crate::io::{Dir, Source};

/// The most buffers std's `read_vectored` hands to `readv` on Linux
/// (`UIO_MAXIOV`), the only system where a short read counts as draining.
const IOV_MAX: usize = 1024;

/// The listen backlog of [`TcpListener::bind`]: std uses 128, which drops
/// SYNs when a thousand clients connect at once (each dropped one retries
/// a second later). The kernel caps it at `net.core.somaxconn` (4096 by
/// default since Linux 5.4) and sizes the queue as connections arrive, so
/// a large figure costs nothing until it is used.
const BACKLOG: libc::c_int = 4096;

/// Stops a listener accepting, if it is still open, without owning it.
pub(crate) struct ListenerCloser(Weak<Source<mio::net::TcpListener>>);

impl ListenerCloser {
    /// `shutdown(SHUT_RD)` on the listening socket: Linux then refuses new
    /// connections, resets those queued and not yet accepted, and wakes a
    /// greenlet parked in `accept` (which gets `EINVAL`), at once, before
    /// the descriptor is closed by whoever owns it.
    pub(crate) fn stop_listening(&self) {
        if let Some(src) = self.0.upgrade() {
            // SAFETY: `src` keeps the listener, so its descriptor, open for
            // the call; `shutdown` reads no memory of ours.
            unsafe { libc::shutdown(src.get().as_raw_fd(), libc::SHUT_RD) };
        }
    }
}

/// A TCP socket server, listening for connections; `accept` parks only the
/// calling greenlet.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use sylvan::net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let client = sylvan::spawn(move || TcpStream::connect(addr));
/// let (conn, peer) = listener.accept()?;
/// assert_eq!(peer, client.join().unwrap()?.local_addr()?);
/// # drop(conn);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener {
    inner: Rc<Source<mio::net::TcpListener>>,
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

impl TcpListener {
    /// Creates a listener bound to `addr` (the first address that works when
    /// it names several), with `SO_REUSEADDR` and a backlog of 4096 (capped
    /// by the kernel at `net.core.somaxconn`).
    ///
    /// # Errors
    ///
    /// Resolution or bind errors (the last one when every address failed).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addr, |a| {
            let l = mio::net::TcpListener::bind(a)?;
            // SAFETY: `l` owns an open listening socket; listen() on it only
            // changes the backlog.
            if unsafe { libc::listen(l.as_raw_fd(), BACKLOG) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(TcpListener {
                inner: Rc::new(Source::new(l)?),
            })
        })
    }

    /// Accepts a connection, parking until one arrives.
    ///
    /// # Errors
    ///
    /// The kernel's accept errors (for example `EMFILE` when out of
    /// descriptors).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, peer) = self.inner.do_io(Dir::Read, "accept", |l| l.accept())?;
        let stream = TcpStream::adopt(s.into())?;
        Ok((stream, peer))
    }

    /// A weak handle that can stop this listener accepting without owning
    /// it (for [`StreamServer`](super::StreamServer), whose accept loop
    /// owns the listener).
    pub(crate) fn closer(&self) -> ListenerCloser {
        ListenerCloser(Rc::downgrade(&self.inner))
    }

    /// An iterator over accepted connections (never ends; each `next`
    /// parks until a connection arrives).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address it is bound to.
    ///
    /// # Errors
    ///
    /// As `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().local_addr()
    }

    /// Sets `IP_TTL`.
    ///
    /// # Errors
    ///
    /// As `setsockopt`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.get().set_ttl(ttl)
    }

    /// `IP_TTL`.
    ///
    /// # Errors
    ///
    /// As `getsockopt`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.get().ttl()
    }

    socket_methods!(TcpListener);

    /// Adopts a `std` listener on this thread's hub (made non-blocking at
    /// the OS level; its `accept` parks greenlets, whatever the `std`
    /// listener's blocking mode was, unless
    /// [`set_nonblocking`](Self::set_nonblocking) says otherwise).
    ///
    /// # Errors
    ///
    /// From `set_nonblocking` or the registration.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            inner: Rc::new(Source::new(mio::net::TcpListener::from_std(listener))?),
        })
    }

    /// Deregisters the listener and returns it as a `std` listener for use
    /// on another thread, blocking unless
    /// [`set_nonblocking`](Self::set_nonblocking) turned that off.
    ///
    /// # Errors
    ///
    /// When handles made by [`try_clone`](Self::try_clone) are still open
    /// (the listener is then dropped), or from `set_nonblocking`.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        let src = unshare(self.inner)?;
        let nonblocking = src.is_nonblocking();
        let l: std::net::TcpListener = src.into_inner().into();
        l.set_nonblocking(nonblocking)?;
        Ok(l)
    }
}

impl_fd!(TcpListener, std::net::TcpListener);

/// The iterator of [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// Takes the source out of its `Rc`, or fails if clones share it.
pub(crate) fn unshare<T: AsRawFd>(rc: Rc<Source<T>>) -> io::Result<Source<T>> {
    Rc::try_unwrap(rc).map_err(|_| {
        io::Error::other(
            "into_std: other handles of this socket (from try_clone) are still open on the hub; \
             drop them first",
        )
    })
}

/// A TCP connection whose reads and writes park only the calling greenlet.
///
/// `Read` and `Write` are implemented for `TcpStream` and for `&TcpStream`,
/// so one greenlet can read while another writes.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::io::{Read, Write};
/// use sylvan::net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// sylvan::spawn(move || {
///     let (mut c, _) = listener.accept().unwrap();
///     c.write_all(b"hello").unwrap();
/// });
/// let mut s = TcpStream::connect(addr)?;
/// let mut got = String::new();
/// s.read_to_string(&mut got)?;
/// assert_eq!(got, "hello");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpStream {
    inner: Rc<Source<std::net::TcpStream>>,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

impl TcpStream {
    fn adopt(s: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: Rc::new(Source::new(s)?),
        })
    }

    /// Connects to `addr`: an address, or a host name and port resolved off
    /// the hub thread. Each address is tried in turn; parks only the calling
    /// greenlet.
    ///
    /// # Errors
    ///
    /// Resolution errors (naming the host), or the last address's connect
    /// error: the kernel's as `std` gives it (`ConnectionRefused`, ...,
    /// with its `raw_os_error`), sylvan's own naming the address.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(addr, |a| connect_one(a, None))
    }

    /// Like [`connect`](Self::connect), giving up after `timeout` (which
    /// covers the name lookup too) with [`io::ErrorKind::TimedOut`].
    /// Unlike `std`, it takes any [`ToSocketAddrs`], a `&SocketAddr`
    /// included.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect); `TimedOut`; `InvalidInput` for a zero
    /// timeout, as `std`.
    pub fn connect_timeout(addr: impl ToSocketAddrs, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        let deadline = crate::time::instant_after(timeout);
        let addrs = match addr.to_target()? {
            Target::Addrs(v) => v,
            Target::Host(host, port) => {
                let name = host.clone();
                crate::with_timeout(timeout, move || resolve(host, port)).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("resolving host '{name}' timed out"),
                    )
                })??
            }
        };
        each_addr(addrs, |a| connect_one(a, Some(deadline)))
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// `NotConnected` and the like, as `getpeername`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().local_addr()
    }

    /// Shuts down the read half, the write half or both. Greenlets parked on
    /// this socket in a direction shut down are woken and see what the
    /// kernel reports (end of stream for reads, an error for writes).
    ///
    /// # Errors
    ///
    /// As `shutdown(2)` (`NotConnected` after the peer reset, for example).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let r = self.inner.get().shutdown(how);
        shutdown_wake(&self.inner, how);
        r
    }

    /// Sets `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// As `setsockopt`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.get().set_nodelay(nodelay)
    }

    /// `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// As `getsockopt`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.get().nodelay()
    }

    /// Sets `IP_TTL`.
    ///
    /// # Errors
    ///
    /// As `setsockopt`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.get().set_ttl(ttl)
    }

    /// `IP_TTL`.
    ///
    /// # Errors
    ///
    /// As `getsockopt`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.get().ttl()
    }

    socket_methods!(TcpStream, timeouts);

    /// Reads without consuming, parking until data (or end of stream)
    /// arrives.
    ///
    /// # Errors
    ///
    /// As [`Read::read`].
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let inner = &self.inner;
        let empty = buf.is_empty();
        let r = inner.do_io(Dir::Read, "read", |s| {
            let r = s.peek(buf);
            if !matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
                // Bytes, end of stream or an error: readable, whatever
                // the flag said (its edge may not be polled yet).
                inner.seen_readable();
            }
            r
        });
        if empty {
            crate::io::empty_tcp_read(r)
        } else {
            r
        }
    }

    /// Whether a keep-alive connection idle between requests can carry
    /// another one: no unread bytes are pending and the peer has neither
    /// closed nor reset it. Never parks. What a connection pool checks
    /// before reusing a connection (`sylvan::ureq` does, twice per request).
    ///
    /// It peeks one byte without blocking, unless the hub can vouch for the
    /// answer: less than a millisecond ago, an earlier probe found the
    /// socket empty, or the hub polled after a read drained it, and no
    /// readable edge came since. So the pool's second check of a request
    /// (checking the connection out again soon after checking it in) and a
    /// connection that idled while its greenlet was parked cost no syscall,
    /// while a close that follows the last response by microseconds, or
    /// that comes while the greenlet runs without parking, is still caught
    /// (no poll has vouched since the read). A close that reaches the
    /// kernel after the hub's last poll, within that millisecond, is not
    /// seen until the next poll or probe. As with any such probe, the peer
    /// may also close the connection just after it answered `true`.
    ///
    /// ```
    /// # extern crate sylvan_hub as sylvan;
    /// use std::io::{Read, Write};
    ///
    /// let server = sylvan::net::TcpListener::bind("127.0.0.1:0")?;
    /// let client = sylvan::net::TcpStream::connect(server.local_addr()?)?;
    /// let (mut conn, _) = server.accept()?;
    /// assert!(client.is_reusable());
    /// conn.write_all(b"unasked")?;
    /// let mut b = [0; 7];
    /// client.peek(&mut b)?; // waits until the bytes are there
    /// assert!(!client.is_reusable());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_reusable(&self) -> bool {
        let mut b = [0u8];
        self.inner.read_would_block(|s| s.peek(&mut b))
    }

    /// Adopts a connected `std` stream on this thread's hub (made
    /// non-blocking at the OS level; it parks greenlets, whatever the `std`
    /// stream's blocking mode was, unless
    /// [`set_nonblocking`](Self::set_nonblocking) says otherwise), carrying
    /// its read and write timeouts over, as [`into_std`](Self::into_std)
    /// carries them out.
    ///
    /// # Errors
    ///
    /// From `set_nonblocking`, reading the timeouts, or the registration.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        let timeouts = (stream.read_timeout()?, stream.write_timeout()?);
        stream.set_nonblocking(true)?;
        let s = TcpStream::adopt(stream)?;
        s.inner.set_timeouts(timeouts);
        Ok(s)
    }

    /// Deregisters the connection and returns it as a `std` stream
    /// carrying the read and write timeouts and the blocking mode, for use
    /// on another thread.
    ///
    /// # Errors
    ///
    /// When handles made by [`try_clone`](Self::try_clone) are still open
    /// (this handle is then dropped), or from `set_nonblocking`.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        let src = unshare(self.inner)?;
        let (rt, wt) = (src.timeout(Dir::Read), src.timeout(Dir::Write));
        let nonblocking = src.is_nonblocking();
        let s = src.into_inner();
        s.set_nonblocking(nonblocking)?;
        s.set_read_timeout(rt)?;
        s.set_write_timeout(wt)?;
        Ok(s)
    }
}

pub(crate) fn shutdown_wake<T: AsRawFd>(src: &Source<T>, how: Shutdown) {
    if matches!(how, Shutdown::Read | Shutdown::Both) {
        src.poke(Dir::Read);
    }
    if matches!(how, Shutdown::Write | Shutdown::Both) {
        src.poke(Dir::Write);
    }
}

/// One non-blocking connect, parked until it completes or `deadline`.
fn connect_one(addr: SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
    let attempt = || -> io::Result<TcpStream> {
        // mio makes the socket (non-blocking, close-on-exec) and starts the
        // connect; EINPROGRESS is not an error there.
        let s: std::net::TcpStream = mio::net::TcpStream::connect(addr)?.into();
        let stream = TcpStream::adopt(s)?;
        stream
            .inner
            .do_io_until(Dir::Write, "connect", deadline, finish_connect)?;
        Ok(stream)
    };
    attempt().map_err(|e| super::connect_error(addr, e))
}

/// Checks a connecting socket: done, failed, or still in progress
/// (`WouldBlock`).
pub(crate) fn finish_connect<S: ConnectProbe>(s: &S) -> io::Result<()> {
    if let Some(e) = s.take_error()? {
        return Err(e);
    }
    match s.peer() {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => {
            Err(io::Error::from(io::ErrorKind::WouldBlock))
        }
        Err(e) => Err(e),
    }
}

/// What [`finish_connect`] asks of a connecting socket.
pub(crate) trait ConnectProbe {
    fn take_error(&self) -> io::Result<Option<io::Error>>;
    fn peer(&self) -> io::Result<()>;
}

impl ConnectProbe for std::net::TcpStream {
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        std::net::TcpStream::take_error(self)
    }
    fn peer(&self) -> io::Result<()> {
        self.peer_addr().map(drop)
    }
}

impl Read for &TcpStream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_tcp(buf.len(), |mut s| s.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        // std passes at most IOV_MAX buffers to `readv` (1024 on Linux): a
        // read that fills those has not drained the socket, so only they
        // count towards the size asked for.
        let len = bufs.iter().take(IOV_MAX).map(|b| b.len()).sum();
        self.inner.read_tcp(len, |mut s| s.read_vectored(bufs))
    }
}

impl Write for &TcpStream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.do_io(Dir::Write, "write", |mut s| s.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.inner
            .do_io(Dir::Write, "write", |mut s| s.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for TcpStream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for TcpStream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl_fd!(TcpStream, std::net::TcpStream);
