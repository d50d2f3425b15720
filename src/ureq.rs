//! [`ureq`] 3 on sylvan: HTTP(S) requests whose sockets park only the
//! calling greenlet, and whose name lookups run off the hub thread.
//!
//! The `ureq` crate that sylvan pins is re-exported as `sylvan::ureq::ureq`,
//! so a program needs no `ureq` dependency of its own (if it has one, use
//! the same minor version, `~3.5`, or the types will not match).
//!
//! ```no_run
//! use sylvan::ureq::ureq;
//!
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
//! otherwise. An [`Agent`] keeps idle connections for reuse, so
//! create one agent per hub thread and use it only there. If the agent (and
//! with it a pooled connection) is dropped on another thread, the socket is
//! sent back to its hub to be closed there.
//!
//! TLS comes from ureq's own rustls connector chained after ours, so https,
//! redirects, compression and keep-alive all come from ureq. The traits
//! live in `ureq::unversioned`, which may change in minor releases: sylvan
//! pins ureq's minor version.
//!
//! # Proxies
//!
//! HTTP proxies work as with ureq's own agent, whether set with
//! `Config::proxy` or, by default, read from the environment
//! (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY` and the like): ureq's own
//! `CONNECT` connector opens the tunnel, over a sylvan socket to the proxy.
//! SOCKS proxies are not supported (ureq's SOCKS connector uses blocking
//! std sockets): a request that would go through one fails with an
//! `Unsupported` error naming the proxy, rather than bypassing it.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, NextTimeout, RustlsConnector,
    ShutdownHandle, Transport,
};
use ureq::{Agent, Error, Timeout};

use crate::Handle;
use crate::net::TcpStream;

/// The `ureq` crate this integration is built on (its pinned minor
/// version), for its `Agent`, `config` and error types.
pub use ::ureq;

/// An [`Agent`] whose connections are sylvan sockets (plus rustls for
/// https) and whose resolver runs on sylvan's thread pool.
///
/// Use it on the hub thread that created it (see the module docs).
pub fn agent(config: Config) -> Agent {
    let connector =
        ().chain(RefuseSocks)
            .chain(ConnectProxyConnector::default())
            .chain(SylvanConnector::default())
            .chain(RustlsConnector::default());
    Agent::with_parts(config, connector, SylvanResolver::default())
}

/// Fails a connection that would go through a SOCKS proxy, which sylvan
/// does not support, instead of letting it go direct.
#[derive(Debug)]
struct RefuseSocks;

impl<In: Transport> Connector<In> for RefuseSocks {
    type Out = In;

    fn connect(
        &self,
        details: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<In>, Error> {
        use ureq::ProxyProtocol as P;
        if chained.is_some() {
            return Ok(chained);
        }
        let Some(proxy) = details.config.proxy() else {
            return Ok(None);
        };
        let socks = matches!(
            proxy.protocol(),
            P::Socks4 | P::Socks4A | P::Socks5 | P::Socks5h
        );
        if !socks || proxy.is_no_proxy(details.uri) {
            return Ok(None);
        }
        let from = if proxy.is_from_env() {
            " (from the environment)"
        } else {
            ""
        };
        Err(Error::Io(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "sylvan::ureq does not support SOCKS proxies: {}{from}; use an HTTP proxy or none",
                proxy.uri()
            ),
        )))
    }
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
        if !self.on_owner() {
            wrong_thread(self.owner);
        }
        &self.value
    }

    #[inline]
    fn on_owner(&self) -> bool {
        thread::current().id() == self.owner
    }
}

#[cold]
#[inline(never)]
fn wrong_thread(owner: ThreadId) -> ! {
    panic!(
        "sylvan::ureq: an agent or connection of hub thread {owner:?} was used from thread {:?}; \
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

/// Opens TCP connections as sylvan sockets, on the hub thread that created
/// it (a connect from any other thread panics with a message saying so).
///
/// Each connection registers with the agent so that
/// [`Agent::shutdown`](ureq::Agent::shutdown) interrupts a request in
/// flight, from any thread: the socket is shut down on its own hub.
#[derive(Debug)]
pub struct SylvanConnector {
    owner: ThreadId,
}

impl Default for SylvanConnector {
    /// A connector for the current thread's hub.
    fn default() -> Self {
        SylvanConnector {
            owner: thread::current().id(),
        }
    }
}

/// A connection's socket, shared by its transport and (weakly) by the
/// agent, which shuts it down for [`Agent::shutdown`] from any thread:
/// directly on the socket's own hub thread, through a job sent to that hub
/// otherwise. The job holds the socket, so it never reaches a closed or
/// reused descriptor.
struct Socket {
    stream: HubBound<TcpStream>,
    me: Weak<Socket>,
}

impl ShutdownHandle for Socket {
    fn shutdown(&self) {
        if self.stream.on_owner() {
            // Wakes a greenlet parked on the socket; the error is moot.
            let _ = self.stream.get().shutdown(Shutdown::Both);
        } else if let Some(me) = self.me.upgrade() {
            // A hub that is gone has closed its sockets already.
            let _ = self.stream.handle.spawn(move || {
                let _ = me.stream.get().shutdown(Shutdown::Both);
            });
        }
    }
}

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
        if thread::current().id() != self.owner {
            wrong_thread(self.owner);
        }
        let config = details.config;
        // The connect budget is shared by the addresses, as ureq's own
        // connector does: each gets half of what is left (at least 10 ms),
        // the last one all of it, so a host whose first address hangs
        // still gets a chance on the others.
        let budget = details.timeout.not_zero().map(|d| *d);
        let start = Instant::now();
        let n = details.addrs.len();
        let mut last = None;
        for (i, addr) in details.addrs.iter().enumerate() {
            let share = budget.map(|b| {
                let left = b.saturating_sub(start.elapsed());
                let share = if i + 1 == n { left } else { left / 2 };
                share.max(Duration::from_millis(10))
            });
            let attempt = match share {
                Some(d) => TcpStream::connect_timeout(addr, d),
                None => TcpStream::connect(addr),
            };
            match attempt {
                Ok(stream) => {
                    if config.no_delay() {
                        stream.set_nodelay(true)?;
                    }
                    let socket = Arc::new_cyclic(|me| Socket {
                        stream: HubBound::new(stream),
                        me: me.clone(),
                    });
                    // Fails once the agent is shut down: so does the connect.
                    (details.register_shutdown)(
                        Arc::downgrade(&socket) as Weak<dyn ShutdownHandle>
                    )?;
                    let buffers =
                        GrowBuffers::new(config.input_buffer_size(), config.output_buffer_size());
                    return Ok(Some(Either::B(SylvanTransport {
                        socket,
                        buffers,
                        read_timeout: None,
                        write_timeout: None,
                    })));
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    // The whole budget gone: named after the timeout that
                    // set it (the global one, say), as ureq does.
                    if budget.is_some_and(|b| start.elapsed() >= b) {
                        return Err(Error::Timeout(details.timeout.reason));
                    }
                    last = Some(Error::Timeout(Timeout::Connect));
                }
                Err(e) => last = Some(Error::Io(e)),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::Io(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "no address to connect to",
            ))
        }))
    }
}

/// A connection's buffers. As ureq's `LazyBuffers`, but the input buffer
/// starts at 16 KiB and doubles, when a response head or body fills it, up
/// to the configured size: `LazyBuffers` zeroes the whole configured size
/// (128 KiB by default) when a connection is first used, and on a crawl
/// those page faults cost a noticeable share of the CPU.
#[derive(Debug)]
struct GrowBuffers {
    /// Zeroed and usable up to its length.
    input: Vec<u8>,
    /// `input[consumed..filled]` is what ureq has not consumed yet.
    consumed: usize,
    filled: usize,
    input_max: usize,
    output: Vec<u8>,
    output_size: usize,
    /// Whether the last consume took something (ureq's `can_use_input`).
    progress: bool,
}

impl GrowBuffers {
    const FIRST_INPUT: usize = 16 << 10;
    /// Free input space `tmp_and_output` guarantees (as `LazyBuffers`).
    const MIN_TMP: usize = 10 << 10;

    fn new(input_max: usize, output_size: usize) -> GrowBuffers {
        assert!(input_max > 0 && output_size > 0);
        GrowBuffers {
            input: Vec::new(),
            consumed: 0,
            filled: 0,
            input_max,
            output: Vec::new(),
            output_size,
            progress: false,
        }
    }

    fn ensure_output(&mut self) {
        if self.output.len() < self.output_size {
            self.output.resize(self.output_size, 0);
        }
    }

    /// Moves the unconsumed input to the front when that frees enough.
    fn shift(&mut self) {
        if self.consumed == 0 {
            return;
        }
        if self.consumed == self.filled {
            self.consumed = 0;
            self.filled = 0;
        } else if self.filled > self.input.len() / 2 {
            self.input.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
    }
}

impl Buffers for GrowBuffers {
    fn output(&mut self) -> &mut [u8] {
        self.ensure_output();
        &mut self.output
    }

    fn input(&self) -> &[u8] {
        &self.input[self.consumed..self.filled]
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        self.shift();
        if self.filled == self.input.len() && self.input.len() < self.input_max {
            // Full (`shift` left nothing consumed in front): grow.
            let grown = (self.input.len() * 2)
                .max(GrowBuffers::FIRST_INPUT)
                .min(self.input_max);
            self.input.resize(grown, 0);
        }
        &mut self.input[self.filled..]
    }

    fn input_appended(&mut self, amount: usize) {
        self.filled += amount;
        assert!(self.filled <= self.input.len());
    }

    fn input_consume(&mut self, amount: usize) {
        self.progress = amount > 0;
        self.consumed += amount;
        assert!(self.consumed <= self.filled);
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        self.ensure_output();
        self.shift();
        if self.input.len() - self.filled < GrowBuffers::MIN_TMP {
            self.input.resize(self.filled + GrowBuffers::MIN_TMP, 0);
        }
        (&mut self.input[self.filled..], &mut self.output)
    }

    fn can_use_input(&self) -> bool {
        self.filled > self.consumed && self.progress
    }
}

/// A connection on a sylvan [`TcpStream`].
pub struct SylvanTransport {
    /// Also registered (weakly) with the agent for `Agent::shutdown`.
    socket: Arc<Socket>,
    buffers: GrowBuffers,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl fmt::Debug for SylvanTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SylvanTransport")
            .field("owner", &self.socket.stream.owner)
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
        let stream = self.socket.stream.get();
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
        let stream = self.socket.stream.get();
        let want = timeout.not_zero().map(|d| *d);
        if want != self.read_timeout {
            stream.set_read_timeout(want)?;
            self.read_timeout = want;
        }
        let mut s: &TcpStream = stream;
        if self.buffers.input_append_buf().is_empty() {
            // The buffer is full of a response head that does not end: an
            // empty read would pass for the peer closing the connection.
            let held = self.buffers.input().len();
            return Err(Error::LargeResponseHeader(held, held));
        }
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
        // Off its hub a connection is of no use: report it closed, so that
        // ureq drops it (sent home to be closed) and the connector says
        // what went wrong. A panic here would poison ureq's pool lock,
        // which is held around this call, for the owner thread too.
        if !self.socket.stream.on_owner() {
            return false;
        }
        // A pooled connection is usable when reading would block: no bytes
        // pending (an unexpected response) and no end of stream. Usually
        // known without a syscall: the response's last read drained it.
        self.socket.stream.get().is_reusable()
    }
}

/// Resolves host names on sylvan's thread pool, so a slow resolver parks
/// only the calling greenlet.
///
/// ureq asks for the addresses before every request, even one that goes
/// out on a pooled connection, so the answers are cached for
/// [`SylvanResolver::TTL`] (the system resolver gives no time to live; a
/// crawler would otherwise make one lookup per page). At most
/// [`SylvanResolver::MAX_HOSTS`] hosts are cached; the cache starts over when
/// full. Failures are not cached.
#[derive(Debug, Default)]
pub struct SylvanResolver {
    cache: Mutex<HashMap<(String, u16), Lookup>>,
}

/// When a host was looked up, and its addresses.
type Lookup = (Instant, Vec<SocketAddr>);

impl SylvanResolver {
    /// How long a host's addresses are reused.
    pub const TTL: Duration = Duration::from_secs(60);
    /// Hosts cached at most.
    pub const MAX_HOSTS: usize = 4096;

    fn cached(&self, host: &str, port: u16) -> Option<Vec<SocketAddr>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (at, addrs) = cache.get(&(host.to_owned(), port))?;
        (at.elapsed() < Self::TTL).then(|| addrs.clone())
    }

    fn remember(&self, host: String, port: u16, addrs: &[SocketAddr]) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= Self::MAX_HOSTS {
            cache.clear();
        }
        cache.insert((host, port), (Instant::now(), addrs.to_vec()));
    }
}

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
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        // ureq resolves before every request, pooled connection or not: an
        // address needs no lookup, no timer and no allocation.
        if let Ok(ip) = host.parse::<IpAddr>() {
            let mut out = self.empty();
            out.push(SocketAddr::new(ip, port));
            return Ok(out);
        }
        let addrs = match self.cached(host, port) {
            Some(addrs) => addrs,
            None => {
                let host = host.to_owned();
                let lookup = || crate::net::lookup_host((host.as_str(), port));
                let addrs: Vec<SocketAddr> = match timeout.not_zero() {
                    Some(d) => crate::with_timeout(*d, lookup)
                        .map_err(|_| Error::Timeout(Timeout::Resolve))??,
                    None => lookup()?,
                };
                self.remember(host, port, &addrs);
                addrs
            }
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use crate::net::TcpListener;

    /// Serves one connection: each request gets the next of `responses`.
    fn serve(responses: Vec<Vec<u8>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        crate::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            for r in responses {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut b).unwrap() == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                s.write_all(&r).unwrap();
            }
        });
        format!("http://{addr}/")
    }

    fn response(extra_header: usize, body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Pad: {}\r\n\r\n",
            body.len(),
            "p".repeat(extra_header)
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn host_lookups_are_cached_and_addresses_need_none() {
        use ureq::unversioned::resolver::Resolver;
        use ureq::unversioned::transport::NextTimeout;
        use ureq::unversioned::transport::time::Duration;

        let r = super::SylvanResolver::default();
        let config = ureq::Agent::config_builder().build();
        let timeout = NextTimeout {
            after: Duration::Exact(std::time::Duration::from_secs(10)),
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        };
        let resolve = |uri: &str| {
            let uri: ureq::http::Uri = uri.parse().unwrap();
            r.resolve(&uri, &config, timeout).unwrap()
        };
        let ip = resolve("http://127.0.0.1:8/");
        assert_eq!(ip[0], "127.0.0.1:8".parse().unwrap());
        assert!(
            r.cached("127.0.0.1", 8).is_none(),
            "addresses are not cached"
        );
        let first = resolve("http://localhost:9/");
        assert!(first[0].ip().is_loopback(), "{:?}", &first[..]);
        let cached = r.cached("localhost", 9).expect("the answer is cached");
        assert_eq!(cached, &first[..]);
        assert_eq!(&resolve("http://localhost:9/")[..], &first[..]);
        assert!(
            r.cached("localhost", 10).is_none(),
            "the port is part of the key"
        );
    }

    #[test]
    fn buffers_grow_for_large_heads_and_bodies_and_keep_the_limit() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let url = serve(vec![
            response(10, b"small"),
            response(40 << 10, &body),
            response(10, b"again"),
            response(70 << 10, b"too big a head"),
        ]);
        let agent = super::agent(
            ureq::Agent::config_builder()
                .max_response_header_size(64 << 10)
                .input_buffer_size(64 << 10)
                .build(),
        );
        let get = |url: &str| -> Result<Vec<u8>, ureq::Error> {
            agent
                .get(url)
                .call()?
                .body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_vec()
        };
        assert_eq!(get(&url).unwrap(), b"small");
        assert_eq!(get(&url).unwrap(), body);
        assert_eq!(get(&url).unwrap(), b"again");
        // A head that fills the buffer is too large, not a disconnect (an
        // empty read into a full buffer would look like one).
        let e = get(&url).unwrap_err();
        assert!(matches!(e, ureq::Error::LargeResponseHeader(..)), "{e:?}");
    }
}
