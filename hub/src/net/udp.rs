//! UDP: [`UdpSocket`].

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;

use super::tcp::unshare;
use super::{ToSocketAddrs, each_addr, lookup_host, recv_unless_shut};
use crate::io::{Dir, Source};

/// A UDP socket whose receives (and, rarely, sends) park only the calling
/// greenlet.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use sylvan::net::UdpSocket;
/// let a = UdpSocket::bind("127.0.0.1:0")?;
/// let b = UdpSocket::bind("127.0.0.1:0")?;
/// a.send_to(b"ping", b.local_addr()?)?;
/// let mut buf = [0; 16];
/// let (n, from) = b.recv_from(&mut buf)?; // parks until the datagram arrives
/// assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UdpSocket {
    inner: Rc<Source<std::net::UdpSocket>>,
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

impl UdpSocket {
    /// Creates a socket bound to `addr` (the first address that works).
    ///
    /// # Errors
    ///
    /// Resolution or bind errors.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        each_addr(addr, |a| UdpSocket::from_std(std::net::UdpSocket::bind(a)?))
    }

    /// Sets the default peer for [`send`](Self::send) and filters
    /// [`recv`](Self::recv) to it (the first address that works).
    ///
    /// # Errors
    ///
    /// Resolution or connect errors.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        each_addr(addr, |a| self.inner.get().connect(a))
    }

    /// Sends a datagram to the connected peer.
    ///
    /// # Errors
    ///
    /// As `send(2)`; `TimedOut` past the write timeout.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.do_io(Dir::Write, "write", |s| s.send(buf))
    }

    /// Receives a datagram from the connected peer, parking until one
    /// arrives.
    ///
    /// # Errors
    ///
    /// As `recv(2)`; `TimedOut` past the read timeout. Once the read half
    /// is shut down it returns `Ok(0)` when nothing is queued, as `std`'s
    /// blocking `recv` does (in non-blocking mode, `WouldBlock`, as
    /// `std`'s non-blocking one does).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        recv_unless_shut(&self.inner, |s| s.recv(buf), || Ok(0))
    }

    /// Sends a datagram to `addr` (its first address; a host name is
    /// resolved off the hub thread).
    ///
    /// # Errors
    ///
    /// Resolution errors, or as `sendto(2)`.
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let to = *lookup_host(addr)?.first().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.inner
            .do_io(Dir::Write, "write", |s| s.send_to(buf, to))
    }

    /// Receives a datagram and its source address, parking until one
    /// arrives.
    ///
    /// # Errors
    ///
    /// As `recvfrom(2)`; `TimedOut` past the read timeout. Once the read
    /// half is shut down and nothing is queued, `InvalidInput`: no datagram
    /// came, so there is no source address to return (`std`'s blocking
    /// `recv_from` fails with the same kind then).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        recv_unless_shut(&self.inner, |s| s.recv_from(buf), no_source)
    }

    /// Like [`recv`](Self::recv), leaving the datagram queued.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        recv_unless_shut(&self.inner, |s| s.peek(buf), || Ok(0))
    }

    /// Like [`recv_from`](Self::recv_from), leaving the datagram queued.
    ///
    /// # Errors
    ///
    /// As [`recv_from`](Self::recv_from).
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        recv_unless_shut(&self.inner, |s| s.peek_from(buf), no_source)
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

    /// Sets `SO_BROADCAST`.
    ///
    /// # Errors
    ///
    /// As `setsockopt`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.inner.get().set_broadcast(on)
    }

    /// `SO_BROADCAST`.
    ///
    /// # Errors
    ///
    /// As `getsockopt`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.inner.get().broadcast()
    }

    /// Joins the IPv4 multicast group `multiaddr` on the interface with
    /// address `interface` (`UNSPECIFIED`: the system's choice), as `std`
    /// (`IP_ADD_MEMBERSHIP`).
    ///
    /// # Errors
    ///
    /// From the OS (not a multicast address, no such interface).
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.inner.get().join_multicast_v4(multiaddr, interface)
    }

    /// Joins the IPv6 multicast group `multiaddr` on the interface with
    /// index `interface` (0: the system's choice).
    ///
    /// # Errors
    ///
    /// From the OS.
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.inner.get().join_multicast_v6(multiaddr, interface)
    }

    /// Leaves a group joined with [`join_multicast_v4`](Self::join_multicast_v4).
    ///
    /// # Errors
    ///
    /// From the OS (not a member).
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.inner.get().leave_multicast_v4(multiaddr, interface)
    }

    /// Leaves a group joined with [`join_multicast_v6`](Self::join_multicast_v6).
    ///
    /// # Errors
    ///
    /// From the OS (not a member).
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.inner.get().leave_multicast_v6(multiaddr, interface)
    }

    /// Sets `IP_MULTICAST_LOOP`: whether multicast datagrams this socket
    /// sends come back to the local host's members.
    ///
    /// # Errors
    ///
    /// From the OS.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.inner.get().set_multicast_loop_v4(on)
    }

    /// `IP_MULTICAST_LOOP`.
    ///
    /// # Errors
    ///
    /// From the OS.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.inner.get().multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`: how many hops this socket's multicast
    /// datagrams may travel (1, the default, keeps them on the local
    /// network).
    ///
    /// # Errors
    ///
    /// From the OS.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.inner.get().set_multicast_ttl_v4(ttl)
    }

    /// `IP_MULTICAST_TTL`.
    ///
    /// # Errors
    ///
    /// From the OS.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.inner.get().multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    ///
    /// # Errors
    ///
    /// From the OS.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.inner.get().set_multicast_loop_v6(on)
    }

    /// `IPV6_MULTICAST_LOOP`.
    ///
    /// # Errors
    ///
    /// From the OS.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.inner.get().multicast_loop_v6()
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

    socket_methods!(UdpSocket, timeouts);

    /// Adopts a `std` socket on this thread's hub (made non-blocking at the
    /// OS level; it parks greenlets, whatever the `std` socket's blocking
    /// mode was, unless [`set_nonblocking`](Self::set_nonblocking) says
    /// otherwise), carrying its read and write timeouts over.
    ///
    /// # Errors
    ///
    /// From `set_nonblocking` or the registration.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        let timeouts = (socket.read_timeout()?, socket.write_timeout()?);
        socket.set_nonblocking(true)?;
        let inner = Source::new(socket)?;
        inner.set_timeouts(timeouts);
        Ok(UdpSocket {
            inner: Rc::new(inner),
        })
    }

    /// Deregisters the socket and returns it as a `std` socket
    /// carrying the timeouts and the blocking mode.
    ///
    /// # Errors
    ///
    /// When [`try_clone`](Self::try_clone) handles are still open, or from
    /// `set_nonblocking`.
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
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

impl_fd!(UdpSocket, std::net::UdpSocket);

/// What `recv_from` on a UDP socket whose read half is shut down reports.
#[cold]
fn no_source<R>() -> io::Result<R> {
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "UDP socket receive: the read half is shut down, so no datagram (and no source address) will come",
    ))
}
