//! Cooperative sockets: TCP, UDP and Unix domain sockets in `std`'s shapes,
//! whose blocking calls park only the calling greenlet.
//!
//! ```
//! # extern crate sylvan_hub as sylvan;
//! use std::io::{Read, Write};
//! use sylvan::net::{TcpListener, TcpStream};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let server = sylvan::spawn(move || -> std::io::Result<()> {
//!     let (mut conn, _peer) = listener.accept()?; // parks this greenlet only
//!     let mut buf = [0; 64];
//!     let n = conn.read(&mut buf)?;
//!     conn.write_all(&buf[..n])
//! });
//! let mut client = TcpStream::connect(addr)?;
//! client.write_all(b"ping")?;
//! let mut reply = [0; 4];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"ping");
//! server.join().unwrap()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # How it works
//!
//! Every socket is non-blocking and registered once with its hub's poll
//! (edge-triggered). An operation tries the syscall first; only when the
//! kernel says `WouldBlock` does the greenlet park until the poll reports
//! the socket ready in that direction, then it retries. Readiness is cached
//! per direction, so a reader and a writer can use one socket at once
//! (`Read` and `Write` are implemented for `&TcpStream` as in `std`).
//!
//! # Rules
//!
//! * **Bound to the hub.** Sockets are `!Send`: they live on the thread
//!   whose hub registered them. `into_std()` deregisters one and hands back
//!   the `std` socket (in the blocking mode it had, with its timeouts) for another
//!   thread; `from_std()` adopts a `std` socket on the current hub. The
//!   descriptor conversions go the same ways: `TryFrom<OwnedFd>` into a
//!   socket and out of one (fallible: registering can fail, and a socket
//!   with clones open cannot be handed back), and `FromRawFd`/`IntoRawFd`,
//!   which panic with the reason instead.
//! * **Dropping closes.** Dropping a socket deregisters it and closes the
//!   descriptor. `try_clone` shares one socket (and one registration)
//!   between handles; the socket closes when the last one is dropped.
//! * **Timeouts.** `set_read_timeout`/`set_write_timeout` bound each
//!   operation's wait and fail it with [`io::ErrorKind::TimedOut`] (`std`
//!   on Linux says `WouldBlock`; `TimedOut` says what happened). One
//!   exception, as with `std` on Linux: a TCP read or peek with a
//!   zero-length buffer (`buf.len() == 0`) waits for data or the timeout
//!   and returns `Ok(0)` either way, never `TimedOut`. Any
//!   [`Timeout`](crate::Timeout) or [`with_timeout`](crate::with_timeout)
//!   works too: it unwinds the parked greenlet.
//! * **Several greenlets, one socket, one direction**: served in order.
//!   A readiness event wakes the earliest waiter; one that finds nothing
//!   left waits again without losing its place, and one that leaves (done,
//!   timed out or killed) while the direction is still ready wakes the
//!   next. (gevent raises `ConcurrentObjectUseError` instead;
//!   here accept loops sharing a listener and readers sharing a UDP socket
//!   just work.)
//! * **Shutdown wakes.** `shutdown` from one greenlet wakes greenlets parked
//!   on that socket in the directions shut down; they retry and see what the
//!   kernel reports (end of stream, `BrokenPipe`...), never a hang.
//! * **Kill and timeouts.** A greenlet killed or timed out while parked on a
//!   socket unwinds from the wait and leaves no registration behind.
//! * **Unwinding.** An operation that would have to park while its greenlet
//!   is unwinding (a destructor running during a kill or panic) does not
//!   switch: it fails at once with an [`io::ErrorKind::Other`] error saying
//!   so. Operations that can complete at once still do.
//! * **Main may wait on a socket.** A greenlet parked on a socket counts
//!   as something that can wake the hub (the peer may write), so main
//!   blocked in a read waits for the peer instead of failing with "would
//!   block forever".
//! * **Host names** resolve on the blocking thread pool
//!   ([`spawn_blocking`](crate::spawn_blocking)), so a slow resolver parks
//!   only the caller; errors name the host. IP literals never leave the
//!   hub.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// The methods every socket type has in `std`'s shape: blocking mode,
/// `SO_ERROR` and `try_clone` (`$ty` holds only `inner`, its shared
/// [`Source`](crate::io::Source)); with `timeouts`, also the read and write
/// timeouts.
macro_rules! socket_methods {
    ($ty:ident) => {
        /// Moves the socket into or out of non-blocking mode. In non-blocking
        /// mode an operation that would park the greenlet (a read with no data,
        /// an accept with no connection, a write with a full send buffer)
        /// returns [`WouldBlock`](std::io::ErrorKind::WouldBlock) at once
        /// instead, as with a non-blocking `std` socket or gevent's
        /// `sock.setblocking(False)`. The default, blocking mode parks only the
        /// calling greenlet. Handles made by [`try_clone`](Self::try_clone)
        /// share the mode, as the descriptors `std` duplicates do.
        ///
        /// # Errors
        ///
        /// Never: at the OS level the descriptor is non-blocking either way.
        pub fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
            self.inner.set_nonblocking(nonblocking);
            Ok(())
        }

        /// Takes the pending socket error (`SO_ERROR`).
        ///
        /// # Errors
        ///
        /// As `getsockopt`.
        pub fn take_error(&self) -> std::io::Result<Option<std::io::Error>> {
            self.inner.get().take_error()
        }

        /// Another handle to the same socket: one registration, shared with
        /// its blocking mode and timeouts; the socket closes when the last
        /// handle is dropped.
        ///
        /// # Errors
        ///
        /// Never; `io::Result` for `std`'s signature.
        pub fn try_clone(&self) -> std::io::Result<$ty> {
            Ok($ty {
                inner: self.inner.clone(),
            })
        }
    };
    ($ty:ident, timeouts) => {
        socket_methods!($ty);

        /// Bounds how long one read, receive or `peek` waits; past it the
        /// call fails with [`TimedOut`](std::io::ErrorKind::TimedOut). `None`
        /// waits without limit. Shared by the handles of
        /// [`try_clone`](Self::try_clone), as socket options are in `std`.
        ///
        /// # Errors
        ///
        /// `InvalidInput` for a zero duration, as `std`.
        pub fn set_read_timeout(
            &self,
            timeout: Option<std::time::Duration>,
        ) -> std::io::Result<()> {
            self.inner.set_timeout(crate::io::Dir::Read, timeout)
        }

        /// Bounds how long one write or send waits, as
        /// [`set_read_timeout`](Self::set_read_timeout) for reads.
        ///
        /// # Errors
        ///
        /// `InvalidInput` for a zero duration, as `std`.
        pub fn set_write_timeout(
            &self,
            timeout: Option<std::time::Duration>,
        ) -> std::io::Result<()> {
            self.inner.set_timeout(crate::io::Dir::Write, timeout)
        }

        /// The read timeout.
        ///
        /// # Errors
        ///
        /// Never; `io::Result` for `std`'s signature.
        pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.inner.timeout(crate::io::Dir::Read))
        }

        /// The write timeout.
        ///
        /// # Errors
        ///
        /// Never; `io::Result` for `std`'s signature.
        pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.inner.timeout(crate::io::Dir::Write))
        }
    };
}

/// The conversions a `std` socket has, for a socket type `$ty` holding
/// `inner` with `from_std`/`into_std` over the `std` type `$std`:
/// `TryFrom<$std>`, `AsRawFd`, `AsFd`, `TryFrom<OwnedFd>` both ways,
/// `FromRawFd` and `IntoRawFd`. Registering with the hub can fail and
/// handing the descriptor back fails while clones are open, so the
/// fallible forms are `TryFrom`; `FromRawFd` and `IntoRawFd`, infallible in
/// `std`'s signature, panic with the reason instead.
macro_rules! impl_fd {
    ($ty:ident, $std:ty) => {
        impl TryFrom<$std> for $ty {
            type Error = std::io::Error;
            /// Adopts the `std` socket, as [`from_std`](Self::from_std).
            fn try_from(s: $std) -> std::io::Result<$ty> {
                $ty::from_std(s)
            }
        }

        impl TryFrom<std::os::fd::OwnedFd> for $ty {
            type Error = std::io::Error;
            /// Adopts a descriptor (of the right kind of socket, as for
            /// `std`'s `From<OwnedFd>`) on this thread's hub, with the
            /// timeouts it carries, as `from_std`.
            fn try_from(fd: std::os::fd::OwnedFd) -> std::io::Result<$ty> {
                let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
                $ty::from_std(<$std>::from(fd)).map_err(|e| $crate::net::not_pollable(e, raw))
            }
        }

        impl TryFrom<$ty> for std::os::fd::OwnedFd {
            type Error = std::io::Error;
            /// Deregisters the socket and hands its descriptor back, as
            /// the socket type's `into_std`.
            fn try_from(s: $ty) -> std::io::Result<std::os::fd::OwnedFd> {
                Ok(s.into_std()?.into())
            }
        }

        impl std::os::fd::FromRawFd for $ty {
            /// Adopts a descriptor on this thread's hub.
            ///
            /// # Panics
            ///
            /// When the hub cannot register it (use
            /// `TryFrom<OwnedFd>` to get the error instead).
            ///
            /// # Safety
            ///
            /// As `std`'s: `fd` is an open socket of this kind that the
            /// caller owns and hands over.
            unsafe fn from_raw_fd(fd: std::os::fd::RawFd) -> $ty {
                // SAFETY: the caller's promise, passed on unchanged.
                let s = unsafe { <$std as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                $ty::from_std(s).unwrap_or_else(|e| {
                    panic!(
                        "{}::from_raw_fd({fd}): cannot register the descriptor with the hub: {}",
                        stringify!($ty),
                        $crate::net::not_pollable(e, fd)
                    )
                })
            }
        }

        impl std::os::fd::IntoRawFd for $ty {
            /// Deregisters the socket and hands its descriptor back.
            ///
            /// # Panics
            ///
            /// When handles made by `try_clone` are still open (use
            /// `into_std` or `TryFrom` to get the error
            /// instead).
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                match self.into_std() {
                    Ok(s) => std::os::fd::IntoRawFd::into_raw_fd(s),
                    Err(e) => panic!("{}::into_raw_fd: {e}", stringify!($ty)),
                }
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(self.inner.get())
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(self.inner.get())
            }
        }
    };
}

/// An adoption error of a descriptor, made clear: `ENOTSOCK` (from reading
/// its timeouts) and `EPERM` (from epoll, which cannot watch a regular file
/// or a directory) both mean it is not a socket.
#[cold]
pub(crate) fn not_pollable(e: io::Error, fd: std::os::fd::RawFd) -> io::Error {
    match e.raw_os_error() {
        Some(libc::ENOTSOCK | libc::EPERM) => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} is not a socket ({e})"),
        ),
        _ => e,
    }
}

mod server;
mod tcp;
mod udp;
mod unix;
mod unix_datagram;

pub use server::{HandlerResult, StreamServer};
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixIncoming, UnixListener, UnixStream};
pub use unix_datagram::UnixDatagram;

/// Something that names one or more socket addresses: an address, an
/// `(ip, port)` pair, or a host name with a port (`"example.com:80"`,
/// `("example.com", 80)`), resolved off the hub thread.
///
/// The `sylvan` counterpart of [`std::net::ToSocketAddrs`], implemented for
/// the same types. It is sealed: the resolution of host names must not
/// block the hub, so only these types are accepted.
pub trait ToSocketAddrs: sealed::Sealed {}

mod sealed {
    use std::io;
    use std::net::SocketAddr;

    /// What an address argument resolves to before any lookup.
    #[derive(Debug)]
    pub enum Target {
        /// Addresses known without a lookup.
        Addrs(Vec<SocketAddr>),
        /// A host name to resolve, and the port.
        Host(String, u16),
    }

    pub trait Sealed {
        fn to_target(&self) -> io::Result<Target>;
    }
}

use sealed::{Sealed, Target};

macro_rules! addr_impls {
    ($($t:ty),*) => {$(
        impl Sealed for $t {
            fn to_target(&self) -> io::Result<Target> {
                Ok(Target::Addrs(vec![SocketAddr::from(*self)]))
            }
        }
        impl ToSocketAddrs for $t {}
    )*};
}

addr_impls!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16),
    ([u8; 4], u16),
    ([u16; 8], u16)
);

fn host_port(host: &str, port: u16) -> Target {
    match host.parse::<IpAddr>() {
        Ok(ip) => Target::Addrs(vec![SocketAddr::new(ip, port)]),
        Err(_) => Target::Host(host.to_owned(), port),
    }
}

impl Sealed for (&str, u16) {
    fn to_target(&self) -> io::Result<Target> {
        Ok(host_port(self.0, self.1))
    }
}
impl ToSocketAddrs for (&str, u16) {}

impl Sealed for (String, u16) {
    fn to_target(&self) -> io::Result<Target> {
        Ok(host_port(&self.0, self.1))
    }
}
impl ToSocketAddrs for (String, u16) {}

impl Sealed for str {
    fn to_target(&self) -> io::Result<Target> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return Ok(Target::Addrs(vec![addr]));
        }
        let invalid = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid socket address '{self}': expected host:port"),
            )
        };
        let (host, port) = self.rsplit_once(':').ok_or_else(invalid)?;
        let port: u16 = port.parse().map_err(|_| invalid())?;
        Ok(host_port(host, port))
    }
}
impl ToSocketAddrs for str {}

impl Sealed for String {
    fn to_target(&self) -> io::Result<Target> {
        self.as_str().to_target()
    }
}
impl ToSocketAddrs for String {}

impl Sealed for [SocketAddr] {
    fn to_target(&self) -> io::Result<Target> {
        Ok(Target::Addrs(self.to_vec()))
    }
}
impl ToSocketAddrs for [SocketAddr] {}

impl<const N: usize> Sealed for [SocketAddr; N] {
    fn to_target(&self) -> io::Result<Target> {
        Ok(Target::Addrs(self.to_vec()))
    }
}
impl<const N: usize> ToSocketAddrs for [SocketAddr; N] {}

impl Sealed for Vec<SocketAddr> {
    fn to_target(&self) -> io::Result<Target> {
        Ok(Target::Addrs(self.clone()))
    }
}
impl ToSocketAddrs for Vec<SocketAddr> {}

impl<T: Sealed + ?Sized> Sealed for &T {
    fn to_target(&self) -> io::Result<Target> {
        (**self).to_target()
    }
}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}

/// Resolves `addr` to socket addresses. Host names are looked up with the
/// system resolver on the blocking thread pool, so only the calling
/// greenlet waits; addresses and IP literals return at once.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// let addrs = sylvan::net::lookup_host(("localhost", 80))?;
/// assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
/// let err = sylvan::net::lookup_host("no-such-host.invalid:80").unwrap_err();
/// assert!(err.to_string().contains("no-such-host.invalid"));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// A malformed address (`InvalidInput`), or the resolver's error with a
/// message that names the host; a name with no address is `NotFound`.
pub fn lookup_host(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    match addr.to_target()? {
        Target::Addrs(v) => Ok(v),
        Target::Host(host, port) => resolve(host, port),
    }
}

fn resolve(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
    crate::spawn_blocking(move || {
        match std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)) {
            Ok(addrs) => {
                let v: Vec<SocketAddr> = addrs.collect();
                if v.is_empty() {
                    Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("cannot resolve host '{host}': no addresses"),
                    ))
                } else {
                    Ok(v)
                }
            }
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("cannot resolve host '{host}': {e}"),
            )),
        }
    })
}

/// True when a datagram socket's read half is shut down (by any handle,
/// before or after sylvan adopted it). Linux then reports the socket
/// readable, but a non-blocking receive keeps failing with `EAGAIN` where a
/// blocking one returns at once; a receive that gets `EAGAIN` asks this to
/// answer as `std` does. For a datagram socket `POLLRDHUP` means exactly
/// that (a peer's shutdown does not reach it).
fn read_shut_down(s: &impl std::os::fd::AsRawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout; the descriptor is open
    // for as long as `s` is borrowed.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & libc::POLLRDHUP != 0
}

/// Receives through `recv` on `src`, parking as `do_io` does, except that
/// in blocking mode a `WouldBlock` on a socket whose read half is shut
/// down becomes what a blocking receive reports then: `shut()` (`std`
/// returns at once there, where a non-blocking receive keeps failing with
/// `EAGAIN`). In non-blocking mode the `EAGAIN` stands, as it does for a
/// non-blocking `std` socket.
pub(crate) fn recv_unless_shut<T: std::os::fd::AsRawFd, R>(
    src: &crate::io::Source<T>,
    mut recv: impl FnMut(&T) -> io::Result<R>,
    shut: impl Fn() -> io::Result<R>,
) -> io::Result<R> {
    let blocking = !src.is_nonblocking();
    src.do_io(crate::io::Dir::Read, "read", |s| match recv(s) {
        Err(e) if blocking && e.kind() == io::ErrorKind::WouldBlock && read_shut_down(s) => shut(),
        r => r,
    })
}

/// A connect error with the peer it was for (`to`: an address or a path)
/// named in its message. An error from the kernel stays as it is, as
/// `std` leaves it, so that [`io::Error::raw_os_error`] still gives its
/// code (gevent's tests check the errno of a refused connection); only
/// sylvan's own errors (a timeout, ...) get the context.
pub(crate) fn connect_error(to: impl std::fmt::Display, e: io::Error) -> io::Error {
    if e.raw_os_error().is_some() {
        e
    } else {
        io::Error::new(e.kind(), format!("cannot connect to {to}: {e}"))
    }
}

/// Runs `f` on each address of `addr` until one succeeds; the error of the
/// last attempt otherwise (or one saying there was no address).
pub(crate) fn each_addr<T>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in lookup_host(addr)? {
        match f(a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}
