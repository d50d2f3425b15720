//! Unix domain datagram sockets: [`UnixDatagram`].

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

use super::recv_unless_shut;
use super::tcp::{shutdown_wake, unshare};
use crate::io::{Dir, Source};

/// A Unix domain datagram socket whose receives (and sends to a full peer)
/// park only the calling greenlet, in the shape of `std`'s
/// [`UnixDatagram`](std::os::unix::net::UnixDatagram).
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use sylvan::net::UnixDatagram;
/// let (a, b) = UnixDatagram::pair()?;
/// let reader = sylvan::spawn(move || {
///     let mut buf = [0; 16];
///     let n = b.recv(&mut buf).unwrap(); // parks until the datagram arrives
///     buf[..n].to_vec()
/// });
/// sylvan::yield_now(); // the reader parks first
/// a.send(b"ping")?;
/// assert_eq!(reader.join().unwrap(), b"ping");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixDatagram {
    inner: Rc<Source<std::os::unix::net::UnixDatagram>>,
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

impl UnixDatagram {
    /// A socket bound to `path`.
    ///
    /// # Errors
    ///
    /// As `bind(2)`, with a message naming the path (`AddrInUse` when the
    /// file exists).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let path = path.as_ref();
        let s = std::os::unix::net::UnixDatagram::bind(path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display()))
        })?;
        UnixDatagram::from_std(s)
    }

    /// A socket bound to no address: it can send, and receive once
    /// connected.
    ///
    /// # Errors
    ///
    /// As `socket(2)`.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::unbound()?)
    }

    /// A connected pair of unnamed sockets.
    ///
    /// # Errors
    ///
    /// As `socketpair(2)`.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Sets the default peer for [`send`](Self::send) and filters
    /// [`recv`](Self::recv) to it. Never waits: a datagram connect only
    /// records the address.
    ///
    /// # Errors
    ///
    /// As `connect(2)` (with the `raw_os_error`, as `std`).
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        self.inner
            .get()
            .connect(path)
            .map_err(|e| super::connect_error(path.display(), e))
    }

    /// Sends a datagram to the connected peer, parking while the peer's
    /// receive queue is full.
    ///
    /// # Errors
    ///
    /// `TimedOut` past the write timeout; as `send(2)` otherwise
    /// (`NotConnected`, `ConnectionRefused` once the peer is gone).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.do_io(Dir::Write, "write", |s| s.send(buf))
    }

    /// Sends a datagram to the socket at `path`, parking while its receive
    /// queue is full.
    ///
    /// # Errors
    ///
    /// `TimedOut` past the write timeout; as `sendto(2)` otherwise.
    pub fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        self.inner
            .do_io(Dir::Write, "write", |s| s.send_to(buf, path))
    }

    /// Receives one datagram, parking until one arrives; a datagram longer
    /// than `buf` is cut to fit.
    ///
    /// # Errors
    ///
    /// `TimedOut` past the read timeout; as `recv(2)` otherwise.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        recv_unless_shut(&self.inner, |s| s.recv(buf), || Ok(0))
    }

    /// Receives one datagram and the address it came from.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        recv_unless_shut(
            &self.inner,
            |s| s.recv_from(buf),
            || {
                // Nothing came from anywhere: an unnamed address, as
                // recvfrom(2) reports then.
                let unnamed = std::os::unix::net::UnixDatagram::unbound()?.local_addr()?;
                Ok((0, unnamed))
            },
        )
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().local_addr()
    }

    /// The connected peer's address.
    ///
    /// # Errors
    ///
    /// `NotConnected` when not connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().peer_addr()
    }

    /// Shuts down one or both halves, waking greenlets parked in those
    /// directions (see [`TcpStream::shutdown`](super::TcpStream::shutdown)).
    /// After the read half is shut down a receive with nothing queued
    /// returns 0 bytes, as a blocking `std` socket's does (in non-blocking
    /// mode it fails with `WouldBlock`, as `std`'s does).
    ///
    /// # Errors
    ///
    /// As `shutdown(2)`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let r = self.inner.get().shutdown(how);
        shutdown_wake(&self.inner, how);
        r
    }

    socket_methods!(UnixDatagram, timeouts);

    /// Adopts a `std` socket on this thread's hub (made non-blocking at the
    /// OS level; it parks greenlets unless
    /// [`set_nonblocking`](Self::set_nonblocking) says otherwise), carrying
    /// its read and write timeouts over.
    ///
    /// # Errors
    ///
    /// From `set_nonblocking` or the registration.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        let timeouts = (socket.read_timeout()?, socket.write_timeout()?);
        socket.set_nonblocking(true)?;
        let inner = Source::new(socket)?;
        inner.set_timeouts(timeouts);
        Ok(UnixDatagram {
            inner: Rc::new(inner),
        })
    }

    /// Deregisters the socket and returns it as a `std` one carrying the
    /// timeouts and the blocking mode.
    ///
    /// # Errors
    ///
    /// When [`try_clone`](Self::try_clone) handles are still open, or from
    /// `set_nonblocking`.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixDatagram> {
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

impl_fd!(UnixDatagram, std::os::unix::net::UnixDatagram);
