//! [`ureq`] 3 on sylvan: HTTP(S) requests whose sockets park only the
//! calling greenlet, and whose name lookups run off the hub thread.
//!
//! ```no_run
//! let agent = sylvan::ureq::agent(ureq::Agent::config_builder().build());
//! let g = sylvan::spawn(move || {
//!     let mut res = agent.get("http://example.com/").call()?;
//!     res.body_mut().read_to_string()
//! });
//! println!("{}", g.join().unwrap().unwrap());
//! ```
//!
//! # One agent per hub
//!
//! ureq's connector, transport and resolver traits require `Send + Sync`,
//! but a sylvan socket belongs to the hub (thread) that made it. The
//! transport here wraps the socket in a guard that checks, on every use,
//! that it is on its own hub's thread, and panics with a message saying so
//! otherwise. An [`Agent`](ureq::Agent) keeps idle connections for reuse, so
//! create one agent per hub thread and use it only there. If the agent (and
//! with it a pooled connection) is dropped on another thread, the socket is
//! sent back to its hub to be closed there.
//!
//! TLS comes from ureq's own rustls connector chained after ours, so https,
//! redirects, compression and keep-alive all come from ureq. The traits
//! live in `ureq::unversioned`, which may change in minor releases: sylvan
//! pins ureq's minor version.

use std::fmt;
use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::thread::{self, ThreadId};
use std::time::Duration;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, RustlsConnector, Transport,
};
use ureq::{Agent, Error, Timeout};

use crate::Handle;
use crate::net::TcpStream;

/// An [`Agent`] whose connections are sylvan sockets (plus rustls for
/// https) and whose resolver runs on sylvan's thread pool.
///
/// Use it on the hub thread that created it (see the module docs).
pub fn agent(config: Config) -> Agent {
    let connector = ().chain(SylvanConnector::default()).chain(RustlsConnector::default());
    Agent::with_parts(config, connector, SylvanResolver::default())
}

/// A value bound to the hub thread that created it: `Send + Sync` for ureq's
/// sake, but every access checks the thread.
struct HubBound<T: 'static> {
    value: ManuallyDrop<T>,
    owner: ThreadId,
    handle: Handle,
}

// SAFETY: the value is only ever accessed (`get`) or dropped on its owner
// thread: `get` checks the thread and panics otherwise, and `Drop` on another
// thread moves the value, untouched, into a job that the owner hub runs.
unsafe impl<T: 'static> Send for HubBound<T> {}
// SAFETY: shared access goes through `get`, which only hands out a reference
// on the owner thread, so no two threads ever touch the value.
unsafe impl<T: 'static> Sync for HubBound<T> {}

impl<T: 'static> HubBound<T> {
    fn new(value: T) -> HubBound<T> {
        HubBound {
            value: ManuallyDrop::new(value),
            owner: thread::current().id(),
            handle: Handle::current(),
        }
    }

    #[inline]
    fn get(&self) -> &T {
        if thread::current().id() != self.owner {
            wrong_thread(self.owner);
        }
        &self.value
    }
}

#[cold]
#[inline(never)]
fn wrong_thread(owner: ThreadId) -> ! {
    panic!(
        "sylvan::ureq: a connection made on hub thread {owner:?} was used from thread {:?}; \
         sylvan sockets belong to their hub: create one ureq Agent per hub thread \
         (sylvan::ureq::agent) and use it only there",
        thread::current().id()
    )
}

/// Carries a value to its owner thread without touching it on the way. If
/// the job carrying it is dropped unrun (the hub is gone), the value is
/// leaked: it cannot be dropped safely on any other thread.
struct Parcel<T>(Option<T>);

// SAFETY: the value is only dropped by the job that runs on its owner
// thread; anywhere else `Parcel::drop` leaks it without touching it.
unsafe impl<T> Send for Parcel<T> {}

impl<T> Drop for Parcel<T> {
    fn drop(&mut self) {
        if let Some(v) = self.0.take() {
            std::mem::forget(v);
        }
    }
}

impl<T: 'static> Drop for HubBound<T> {
    fn drop(&mut self) {
        // SAFETY: the value is taken exactly once, here.
        let value = unsafe { ManuallyDrop::take(&mut self.value) };
        if thread::current().id() == self.owner {
            drop(value);
            return;
        }
        let mut parcel = Parcel(Some(value));
        // On the owner hub: drop the value there. If the hub is gone the job
        // is dropped unrun and the parcel leaks the value.
        let _ = self.handle.spawn(move || drop(parcel.0.take()));
    }
}

/// Opens TCP connections as sylvan sockets.
#[derive(Debug, Default)]
pub struct SylvanConnector(());

impl<In: Transport> Connector<In> for SylvanConnector {
    type Out = ureq::unversioned::transport::Either<In, SylvanTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        use ureq::unversioned::transport::Either;
        if let Some(t) = chained {
            return Ok(Some(Either::A(t)));
        }
        let config = details.config;
        let budget = details.timeout.not_zero().map(|d| *d);
        let mut last = None;
        for addr in details.addrs.iter() {
            let attempt = match budget {
                Some(d) => TcpStream::connect_timeout(addr, d),
                None => TcpStream::connect(addr),
            };
            match attempt {
                Ok(stream) => {
                    if config.no_delay() {
                        stream.set_nodelay(true)?;
                    }
                    let buffers =
                        LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size());
                    return Ok(Some(Either::B(SylvanTransport {
                        stream: HubBound::new(stream),
                        buffers,
                        read_timeout: None,
                        write_timeout: None,
                    })));
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(Error::Timeout(Timeout::Connect));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(Error::Io(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::ConnectionRefused, "no address to connect to")
        })))
    }
}

/// A connection on a sylvan [`TcpStream`].
pub struct SylvanTransport {
    stream: HubBound<TcpStream>,
    buffers: LazyBuffers,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl fmt::Debug for SylvanTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SylvanTransport")
            .field("owner", &self.stream.owner)
            .finish_non_exhaustive()
    }
}

fn io_or_timeout(e: io::Error, reason: Timeout) -> Error {
    if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock {
        Error::Timeout(reason)
    } else {
        Error::Io(e)
    }
}

impl Transport for SylvanTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let timeout = timeout.for_write();
        if timeout.after.is_zero() {
            return Err(Error::Timeout(timeout.reason));
        }
        let stream = self.stream.get();
        let want = timeout.not_zero().map(|d| *d);
        if want != self.write_timeout {
            stream.set_write_timeout(want)?;
            self.write_timeout = want;
        }
        let mut s: &TcpStream = stream;
        s.write_all(&self.buffers.output()[..amount])
            .map_err(|e| io_or_timeout(e, timeout.reason))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let timeout = timeout.for_read();
        if timeout.after.is_zero() {
            return Err(Error::Timeout(timeout.reason));
        }
        let stream = self.stream.get();
        let want = timeout.not_zero().map(|d| *d);
        if want != self.read_timeout {
            stream.set_read_timeout(want)?;
            self.read_timeout = want;
        }
        let mut s: &TcpStream = stream;
        let n = loop {
            match s.read(self.buffers.input_append_buf()) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_or_timeout(e, timeout.reason)),
            }
        };
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        // A pooled connection is usable when reading would block: no bytes
        // pending (an unexpected response) and no end of stream.
        let fd = self.stream.get().as_raw_fd();
        let mut b = 0u8;
        // SAFETY: a one-byte peek into a valid local buffer on an open socket.
        let n = unsafe {
            libc::recv(
                fd,
                (&mut b as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
    }
}

/// Resolves host names on sylvan's thread pool, so a slow resolver parks
/// only the calling greenlet.
#[derive(Debug, Default)]
pub struct SylvanResolver(());

impl Resolver for SylvanResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, Error> {
        let host = uri
            .host()
            .ok_or_else(|| Error::BadUri(format!("{uri}: no host")))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let lookup = || crate::net::lookup_host((host.as_str(), port));
        let addrs: Vec<SocketAddr> = match timeout.not_zero() {
            Some(d) => {
                crate::with_timeout(*d, lookup).map_err(|_| Error::Timeout(Timeout::Resolve))??
            }
            None => lookup()?,
        };
        let mut out = self.empty();
        for a in addrs {
            if out.try_push(a).is_err() {
                break;
            }
        }
        if out.is_empty() {
            return Err(Error::HostNotFound);
        }
        Ok(out)
    }
}
