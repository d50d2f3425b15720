//! Unix domain stream sockets: [`UnixListener`] and [`UnixStream`].

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use super::tcp::{ConnectProbe, finish_connect, shutdown_wake, unshare};
use crate::io::{Dir, Source};

/// A Unix domain socket server; `accept` parks only the calling greenlet.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::io::{Read, Write};
/// use sylvan::net::{UnixListener, UnixStream};
/// let path = std::env::temp_dir().join(format!("sylvan-doc-{}.sock", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&path)?;
/// let p = path.clone();
/// let client = sylvan::spawn(move || -> std::io::Result<String> {
///     let mut s = UnixStream::connect(&p)?;
///     let mut got = String::new();
///     s.read_to_string(&mut got)?;
///     Ok(got)
/// });
/// let (mut conn, _) = listener.accept()?;
/// conn.write_all(b"hi")?;
/// drop(conn);
/// assert_eq!(client.join().unwrap()?, "hi");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixListener {
    inner: Rc<Source<mio::net::UnixListener>>,
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

impl UnixListener {
    /// Creates a listener bound to `path` (which must not exist).
    ///
    /// # Errors
    ///
    /// As `bind(2)`/`listen(2)` (`AddrInUse` when the path exists).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        Ok(UnixListener {
            inner: Rc::new(Source::new(mio::net::UnixListener::bind(path)?)?),
        })
    }

    /// Accepts a connection, parking until one arrives.
    ///
    /// # Errors
    ///
    /// The kernel's accept errors.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, addr) = self.inner.do_io(Dir::Read, "accept", |l| l.accept())?;
        Ok((UnixStream::adopt(s.into())?, addr))
    }

    /// An iterator over accepted connections (never ends).
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The address it is bound to.
    ///
    /// # Errors
    ///
    /// As `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().local_addr()
    }

    socket_methods!(UnixListener);

    /// Adopts a `std` listener on this thread's hub (made non-blocking at
    /// the OS level; its `accept` parks greenlets, whatever the `std`
    /// listener's blocking mode was, unless
    /// [`set_nonblocking`](Self::set_nonblocking) says otherwise).
    ///
    /// # Errors
    ///
    /// From `set_nonblocking` or the registration.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener {
            inner: Rc::new(Source::new(mio::net::UnixListener::from_std(listener))?),
        })
    }

    /// Deregisters the listener and returns it as a `std` one, in the
    /// blocking mode it had.
    ///
    /// # Errors
    ///
    /// When [`try_clone`](Self::try_clone) handles are still open, or from
    /// `set_nonblocking`.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        let src = unshare(self.inner)?;
        let nonblocking = src.is_nonblocking();
        let l: std::os::unix::net::UnixListener = src.into_inner().into();
        l.set_nonblocking(nonblocking)?;
        Ok(l)
    }
}

impl_fd!(UnixListener, std::os::unix::net::UnixListener);

/// The iterator of [`UnixListener::incoming`].
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;
    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A Unix domain stream connection whose reads and writes park only the
/// calling greenlet. `Read` and `Write` are implemented for the value and
/// for `&UnixStream`.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::io::{Read, Write};
/// let (mut a, mut b) = sylvan::net::UnixStream::pair()?;
/// let echo = sylvan::spawn(move || {
///     let mut buf = [0; 5];
///     b.read_exact(&mut buf).unwrap();
///     b.write_all(&buf).unwrap();
/// });
/// a.write_all(b"hello")?;
/// let mut back = [0; 5];
/// a.read_exact(&mut back)?;
/// assert_eq!(&back, b"hello");
/// echo.join().unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixStream {
    inner: Rc<Source<std::os::unix::net::UnixStream>>,
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("peer", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

impl ConnectProbe for std::os::unix::net::UnixStream {
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        std::os::unix::net::UnixStream::take_error(self)
    }
    fn peer(&self) -> io::Result<()> {
        self.peer_addr().map(drop)
    }
}

impl UnixStream {
    fn adopt(s: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            inner: Rc::new(Source::new(s)?),
        })
    }

    /// Connects to the socket at `path`. When the listener's backlog is
    /// full (the kernel cannot connect without blocking, and no readiness
    /// event says when it could), the greenlet retries, sleeping 1 ms, then
    /// twice as long each time up to 50 ms: only the caller waits, and a
    /// kill or timeout ends the wait like any other. Bound it with
    /// [`with_timeout`](crate::with_timeout).
    ///
    /// # Errors
    ///
    /// As `connect(2)` (`ConnectionRefused`, `NotFound`..., with the
    /// `raw_os_error`, as `std`).
    pub fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let path = path.as_ref();
        let named = |e: io::Error| super::connect_error(path.display(), e);
        let mut pause = Duration::from_millis(1);
        let s = loop {
            match mio::net::UnixStream::connect(path) {
                Ok(s) => break std::os::unix::net::UnixStream::from(s),
                // A full backlog; never a sleep while unwinding.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !std::thread::panicking() => {
                    crate::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(named(e)),
            }
        };
        let stream = UnixStream::adopt(s)?;
        stream
            .inner
            .do_io(Dir::Write, "connect", finish_connect)
            .map_err(named)?;
        Ok(stream)
    }

    /// A connected pair of sockets.
    ///
    /// # Errors
    ///
    /// As `socketpair(2)`.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().local_addr()
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// As `getpeername`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().peer_addr()
    }

    /// Shuts down one or both halves, waking greenlets parked in those
    /// directions (see [`TcpStream::shutdown`](super::TcpStream::shutdown)).
    ///
    /// # Errors
    ///
    /// As `shutdown(2)`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let r = self.inner.get().shutdown(how);
        shutdown_wake(&self.inner, how);
        r
    }

    socket_methods!(UnixStream, timeouts);

    /// Adopts a `std` stream on this thread's hub (made non-blocking at the
    /// OS level; it parks greenlets, whatever the `std` stream's blocking
    /// mode was, unless [`set_nonblocking`](Self::set_nonblocking) says
    /// otherwise), carrying its read and write timeouts over.
    ///
    /// # Errors
    ///
    /// From `set_nonblocking` or the registration.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        let timeouts = (stream.read_timeout()?, stream.write_timeout()?);
        stream.set_nonblocking(true)?;
        let s = UnixStream::adopt(stream)?;
        s.inner.set_timeouts(timeouts);
        Ok(s)
    }

    /// Deregisters the stream and returns it as a `std` one carrying
    /// the timeouts and the blocking mode.
    ///
    /// # Errors
    ///
    /// When [`try_clone`](Self::try_clone) handles are still open, or from
    /// `set_nonblocking`.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
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

impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Not `read_tcp`: see the IO module's docs.
        self.inner.do_io(Dir::Read, "read", |mut s| s.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.inner
            .do_io(Dir::Read, "read", |mut s| s.read_vectored(bufs))
    }
}

impl Write for &UnixStream {
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

impl Read for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for UnixStream {
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

impl_fd!(UnixStream, std::os::unix::net::UnixStream);
