//! [`StreamServer`]: an accept loop that runs a handler greenlet per
//! connection.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::panic::Location;
use std::rc::Rc;
use std::time::{Duration, Instant};

use slab::Slab;

use super::{TcpListener, TcpStream, ToSocketAddrs};
use crate::DropCaught;
use crate::sync::Event;
use crate::task::{Builder, Greenlet};

type Handler = dyn Fn(TcpStream, SocketAddr);

/// What a [`StreamServer`] handler may return: `()`, or a `Result` whose
/// error is reported when the handler returns one, so that handlers can use
/// `?`.
///
/// An error is reported once, with the peer's address: through the `log`
/// crate at warning level (target `sylvan`) when a logger takes it, on
/// stderr otherwise, as gevent prints the exception of a failed handler.
/// It is not a greenlet failure: the error policy (which may abort) is for
/// panics, and a client that resets its connection is no bug.
pub trait HandlerResult {
    /// Reports the outcome of the handler for `peer`.
    fn report(self, peer: SocketAddr);
}

impl HandlerResult for () {
    fn report(self, _peer: SocketAddr) {}
}

impl<E: std::fmt::Display> HandlerResult for Result<(), E> {
    fn report(self, peer: SocketAddr) {
        if let Err(e) = self {
            warn(format_args!("StreamServer handler for {peer} failed: {e}"));
        }
    }
}

/// Reports a server's trouble at warn level (see [`crate::report`]).
fn warn(what: std::fmt::Arguments<'_>) {
    crate::report(log::Level::Warn, format_args!("sylvan: {what}"));
}

/// How handler greenlets are spawned.
enum Spawner {
    /// A new greenlet per connection, no limit.
    Plain,
    /// Through a pool: the accept loop waits while the pool is full.
    Pool(crate::pool::Pool),
}

/// The state shared by the server handles, the accept loop and the handler
/// greenlets.
struct Shared {
    handler: Rc<Handler>,
    spawner: Spawner,
    /// Handler greenlets alive, by slot.
    /// (`None` while the greenlet is being spawned.)
    handlers: RefCell<Slab<Option<Rc<Greenlet<()>>>>>,
    accepted: Cell<u64>,
    /// Where the server was made: the spawn site of its accept loop and
    /// handlers in failure reports and `dump`.
    site: &'static Location<'static>,
    /// The error that ended the accept loop for good, for `serve_forever`.
    fatal: RefCell<Option<io::Error>>,
}

/// A TCP server: an accept loop in its own greenlet that runs `handler` in
/// a new greenlet for each connection, as gevent's `StreamServer`.
///
/// * [`start`](Self::start) spawns the accept loop and returns;
///   [`serve_forever`](Self::serve_forever) does the same and then parks
///   the caller until the server is stopped.
/// * [`with_pool`](Self::with_pool) runs handlers through a
///   [`Pool`](crate::pool::Pool): at most its size run at once, and the
///   accept loop stops accepting (connections wait in the kernel's backlog)
///   while the pool is full.
/// * [`stop`](Self::stop) closes the listener at once (new connections are
///   refused), waits up to the timeout for running handlers to finish,
///   then kills the rest.
/// * A panicking handler is reported by the hub's error policy like any
///   greenlet failure; the server goes on. A handler may also return
///   `io::Result<()>` (any `Result<(), E: Display>`, see
///   [`HandlerResult`]): an error it returns is reported with the peer's
///   address. Accept errors such as running out
///   of descriptors are reported (through `log` at warn level when a
///   logger takes it, on stderr otherwise) and retried after a pause
///   (10 ms, doubling up to 1 s), as gevent does.
///
/// Handles are cheap clones of one server, so a handler may keep one to
/// stop the server. Dropping the last handle of a started server stops
/// accepting at once, without waiting (new connections are refused, as
/// after gevent's `close()`); running handlers finish on their own.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use sylvan::net::{StreamServer, TcpStream};
///
/// let server = StreamServer::bind("127.0.0.1:0", |mut conn: TcpStream, _peer| {
///     let mut buf = [0; 1024];
///     while let Ok(n @ 1..) = conn.read(&mut buf) {
///         if conn.write_all(&buf[..n]).is_err() {
///             break;
///         }
///     }
/// })?
/// .start()?;
/// let mut c = TcpStream::connect(server.local_addr()?)?;
/// c.write_all(b"echo")?;
/// let mut got = [0; 4];
/// c.read_exact(&mut got)?;
/// assert_eq!(&got, b"echo");
/// drop(c);
/// server.stop(Some(Duration::from_secs(1)));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
#[must_use = "dropping the last StreamServer handle stops the server: keep it (`let server = ...start()?;`)"]
pub struct StreamServer {
    inner: Rc<Inner>,
}

struct Inner {
    shared: Rc<Shared>,
    addr: SocketAddr,
    /// The listener until the accept loop takes it (at start).
    listener: RefCell<Option<TcpListener>>,
    acceptor: RefCell<Option<Rc<Greenlet<()>>>>,
    /// Stops the listener the accept loop owns (once it is started).
    closer: RefCell<Option<super::tcp::ListenerCloser>>,
    stopped: Cell<bool>,
    /// `stop` calls in progress (each may be parked waiting for handlers).
    stops: Cell<usize>,
    /// Set each time a `stop` call ends, however it ends.
    stop_ended: Event,
}

/// Counts a `stop` call in progress; its end (return or unwind) wakes
/// `serve_forever`.
struct StopInProgress<'a>(&'a Inner);

impl<'a> StopInProgress<'a> {
    fn new(inner: &'a Inner) -> Self {
        inner.stops.set(inner.stops.get() + 1);
        StopInProgress(inner)
    }
}

impl Drop for StopInProgress<'_> {
    fn drop(&mut self) {
        self.0.stops.set(self.0.stops.get() - 1);
        self.0.stop_ended.set();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: stop accepting, without waiting (this
        // may run during an unwind). The accept loop owns the listener, so
        // killing it closes the socket, but only once it runs: until then
        // the kernel would go on queueing connections (to reset them at
        // the close). Shutting the socket down refuses them now, as
        // gevent's `close()` does.
        if let Some(closer) = self.closer.get_mut().take() {
            closer.stop_listening();
        }
        if let Some(a) = self.acceptor.get_mut().take() {
            a.kill_nowait();
        }
    }
}

impl fmt::Debug for StreamServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamServer")
            .field("addr", &self.inner.addr)
            .field("started", &self.is_started())
            .field("stopped", &self.inner.stopped.get())
            .field("handlers", &self.handlers())
            .finish()
    }
}

impl StreamServer {
    /// A server that will accept on `listener` and run
    /// `handler(stream, peer)` in a new greenlet per connection. Nothing is
    /// accepted until [`start`](Self::start) or
    /// [`serve_forever`](Self::serve_forever).
    ///
    /// # Panics
    ///
    /// When the listener has no local address (it is not bound).
    #[track_caller]
    pub fn new<R: HandlerResult>(
        listener: TcpListener,
        handler: impl Fn(TcpStream, SocketAddr) -> R + 'static,
    ) -> Self {
        let addr = listener
            .local_addr()
            .expect("sylvan: StreamServer::new needs a bound listener");
        // The accept loop parks for connections, whatever mode the
        // listener was left in.
        let _ = listener.set_nonblocking(false);
        StreamServer {
            inner: Rc::new(Inner {
                shared: Rc::new(Shared {
                    handler: Rc::new(move |stream, peer| handler(stream, peer).report(peer)),
                    spawner: Spawner::Plain,
                    handlers: RefCell::new(Slab::new()),
                    accepted: Cell::new(0),
                    site: Location::caller(),
                    fatal: RefCell::new(None),
                }),
                addr,
                listener: RefCell::new(Some(listener)),
                acceptor: RefCell::new(None),
                closer: RefCell::new(None),
                stopped: Cell::new(false),
                stops: Cell::new(0),
                stop_ended: Event::new(),
            }),
        }
    }

    /// Binds a listener to `addr` and makes a server on it (see
    /// [`new`](Self::new)).
    ///
    /// # Errors
    ///
    /// As [`TcpListener::bind`].
    #[track_caller]
    pub fn bind<R: HandlerResult>(
        addr: impl ToSocketAddrs,
        handler: impl Fn(TcpStream, SocketAddr) -> R + 'static,
    ) -> io::Result<Self> {
        Ok(StreamServer::new(TcpListener::bind(addr)?, handler))
    }

    /// Runs the handlers through `pool`, capping how many run at once (see
    /// the type docs).
    ///
    /// # Panics
    ///
    /// When the server was already started or cloned.
    pub fn with_pool(self, pool: crate::pool::Pool) -> Self {
        let mut inner = Rc::try_unwrap(self.inner)
            .unwrap_or_else(|_| panic!("sylvan: StreamServer::with_pool on a shared server"));
        assert!(
            inner.acceptor.get_mut().is_none(),
            "sylvan: StreamServer::with_pool after start"
        );
        let shared =
            Rc::get_mut(&mut inner.shared).expect("sylvan: StreamServer::with_pool after start");
        shared.spawner = Spawner::Pool(pool);
        StreamServer {
            inner: Rc::new(inner),
        }
    }

    /// The address the server listens on.
    ///
    /// # Errors
    ///
    /// Never; `io::Result` for symmetry with the listener.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.addr)
    }

    /// Spawns the accept loop and returns the (started) server. Starting a
    /// started server does nothing.
    ///
    /// # Errors
    ///
    /// When the server was stopped, its accept loop has ended for good (see
    /// [`serve_forever`](Self::serve_forever)'s errors), or the accept
    /// greenlet cannot be spawned (no stack could be mapped).
    pub fn start(self) -> io::Result<Self> {
        self.start_inner()?;
        Ok(self)
    }

    fn start_inner(&self) -> io::Result<()> {
        if self.inner.stopped.get() {
            return Err(io::Error::other("sylvan: StreamServer was stopped"));
        }
        if let Some(a) = &*self.inner.acceptor.borrow() {
            if a.is_dead() {
                // The listener went with the loop: nothing can accept.
                return Err(io::Error::other(
                    "sylvan: StreamServer's accept loop has ended (see `serve_forever`'s \
                     error); make a new server",
                ));
            }
            return Ok(());
        }
        let listener = self
            .inner
            .listener
            .borrow_mut()
            .take()
            .expect("an unstarted server has its listener");
        let closer = listener.closer();
        let shared = self.inner.shared.clone();
        let site = shared.site;
        let g = Builder::new()
            .name(format!("StreamServer {}", self.inner.addr))
            .spawn_at(site, move || accept_loop(listener, shared))?;
        *self.inner.acceptor.borrow_mut() = Some(Rc::new(g));
        *self.inner.closer.borrow_mut() = Some(closer);
        Ok(())
    }

    /// Starts the server (if needed) and parks the caller until it is
    /// stopped by [`stop`](Self::stop) from another greenlet, then returns
    /// once the handlers are dealt with: when a `stop` is in progress it
    /// waits for it to end, and it finishes with a `stop` of its own with
    /// a one-second grace ([`STOP_TIMEOUT`](Self::STOP_TIMEOUT)), as
    /// gevent's `serve_forever` does, so no handler outlives the call. If
    /// the caller is killed or timed out meanwhile, the accept loop and the
    /// handlers are killed (without waiting) as it unwinds.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start); and the accept error that ended the
    /// accept loop for good (the listener was closed or is not a socket),
    /// or the message of a panic that ended it, after the handlers are
    /// dealt with as above.
    pub fn serve_forever(&self) -> io::Result<()> {
        if let Err(e) = self.start_inner() {
            return Err(self.inner.shared.fatal.borrow_mut().take().unwrap_or(e));
        }
        struct StopOnUnwind<'a>(&'a StreamServer);
        impl Drop for StopOnUnwind<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.kill_all_nowait();
                }
            }
        }
        let _guard = StopOnUnwind(self);
        // Clone the handle out: no borrow is held while parked.
        let acceptor = self.inner.acceptor.borrow().clone();
        if let Some(a) = &acceptor {
            a.wait(None);
        }
        // A stop elsewhere killed the accept loop and may still be waiting
        // for handlers: let it finish on its own terms.
        while self.inner.stops.get() > 0 {
            self.inner.stop_ended.clear();
            self.inner.stop_ended.wait();
        }
        // Whatever that stop left (it may have been cut short), or the
        // handlers of an accept loop that failed for good.
        self.stop(Some(Self::STOP_TIMEOUT));
        if let Some(e) = self.inner.shared.fatal.borrow_mut().take() {
            return Err(e);
        }
        // An accept loop that panicked did not stop for a `stop`.
        let panicked = acceptor.and_then(|a| {
            a.with_outcome(|o| match o {
                crate::Outcome::Panicked(p) => Some(p.message().to_owned()),
                _ => None,
            })
            .flatten()
        });
        match panicked {
            Some(msg) => Err(io::Error::other(format!(
                "sylvan: StreamServer's accept loop panicked: {msg}"
            ))),
            None => Ok(()),
        }
    }

    /// How long [`serve_forever`](Self::serve_forever)'s own closing
    /// `stop` lets handlers run before killing them (gevent's
    /// `stop_timeout`).
    pub const STOP_TIMEOUT: Duration = Duration::from_secs(1);

    /// Stops the server: kills the accept loop (closing the listener, so
    /// new connections are refused), waits up to `timeout` for running
    /// handlers to return (`None`: as long as they take), then kills those
    /// still running and waits for them to die. A stopped server cannot be
    /// started again. This holds with or without a pool; gevent's `stop`
    /// waits for and kills handlers only when the server has a pool, and
    /// otherwise merely stops accepting (drop the last handle for that).
    ///
    /// Every call does the whole job on whatever is left, so calling it
    /// again is cheap and safe, and a `stop` cut short (its caller killed
    /// or timed out while it waited) is finished by the next one. Called
    /// while the caller unwinds (from a destructor), it kills the accept
    /// loop and the handlers without waiting.
    pub fn stop(&self, timeout: Option<Duration>) {
        self.inner.stopped.set(true);
        if std::thread::panicking() {
            // From a destructor during an unwind: no waiting (a greenlet
            // never switches out while it unwinds).
            self.kill_all_nowait();
            return;
        }
        let _in_progress = StopInProgress::new(&self.inner);
        self.inner.listener.borrow_mut().take();
        let acceptor = self.inner.acceptor.borrow_mut().take();
        if let Some(a) = acceptor {
            a.kill();
        }
        let deadline = timeout.and_then(crate::time::deadline_after);
        while let Some(g) = self.other_handler() {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) || !g.wait(left) {
                break;
            }
        }
        // No new handler can appear: the accept loop is dead.
        for g in self.others() {
            g.kill();
        }
    }

    /// Every running handler other than the caller.
    fn others(&self) -> Vec<Rc<Greenlet<()>>> {
        let me = crate::current();
        let handlers = self.inner.shared.handlers.borrow();
        handlers
            .iter()
            .filter_map(|(_, g)| g.as_ref())
            .filter(|g| g.id() != me && !g.is_dead())
            .cloned()
            .collect()
    }

    /// A running handler other than the caller (a handler may stop its own
    /// server).
    fn other_handler(&self) -> Option<Rc<Greenlet<()>>> {
        let me = crate::current();
        let handlers = self.inner.shared.handlers.borrow();
        handlers
            .iter()
            .filter_map(|(_, g)| g.as_ref())
            .find(|g| g.id() != me && !g.is_dead())
            .cloned()
    }

    /// Kills the accept loop and every handler without waiting.
    fn kill_all_nowait(&self) {
        self.inner.stopped.set(true);
        self.inner.listener.borrow_mut().take();
        if let Some(a) = self.inner.acceptor.borrow_mut().take() {
            a.kill_nowait();
        }
        let all: Vec<Rc<Greenlet<()>>> = self
            .inner
            .shared
            .handlers
            .borrow()
            .iter()
            .filter_map(|(_, g)| g.clone())
            .collect();
        for g in all {
            g.kill_nowait();
        }
    }

    /// True once started, until stopped or until the accept loop ended on
    /// an error.
    pub fn is_started(&self) -> bool {
        let accepting = self
            .inner
            .acceptor
            .borrow()
            .as_ref()
            .is_some_and(|a| !a.is_dead());
        accepting && !self.inner.stopped.get()
    }

    /// True once [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.get()
    }

    /// Handler greenlets running now.
    pub fn handlers(&self) -> usize {
        self.inner.shared.handlers.borrow().len()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.inner.shared.accepted.get()
    }
}

/// Removes a handler's entry when its greenlet ends (returns, panics or is
/// killed).
struct Deregister {
    /// Maybe the last reference, dropped while a killed handler unwinds.
    shared: DropCaught<Rc<Shared>>,
    key: usize,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        let g = self.shared.handlers.borrow_mut().try_remove(self.key);
        // Dropping the handle detaches; the greenlet is finishing anyway.
        drop(g);
    }
}

/// The accept loop: runs until killed, or until the listener fails for
/// good (the error is kept for `serve_forever`).
fn accept_loop(listener: TcpListener, shared: Rc<Shared>) {
    // The last reference once every handle is gone: dropped while the
    // loop unwinds from its kill, with the handler and what it captured.
    let shared = DropCaught::new(shared, "a StreamServer's handler");
    const MIN_PAUSE: Duration = Duration::from_millis(10);
    const MAX_PAUSE: Duration = Duration::from_secs(1);
    let mut pause = MIN_PAUSE;
    loop {
        if let Spawner::Pool(pool) = &shared.spawner {
            // Stop accepting while every handler slot is taken.
            pool.wait_available(None);
        }
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                use io::ErrorKind::*;
                if matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted) {
                    continue;
                }
                // The listener itself is unusable (closed, shut down, not
                // a socket): retrying cannot help, so the server stops
                // accepting and serve_forever returns (gevent's
                // is_fatal_error).
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK)
                ) {
                    warn(format_args!(
                        "StreamServer: accept failed for good: {e}; no longer accepting"
                    ));
                    *shared.fatal.borrow_mut() = Some(e);
                    return;
                }
                warn(format_args!(
                    "StreamServer {}: accept failed: {e}; retrying in {pause:?}",
                    listener
                        .local_addr()
                        .map_or_else(|_| "?".to_owned(), |a| a.to_string())
                ));
                crate::sleep(pause);
                pause = (pause * 2).min(MAX_PAUSE);
                continue;
            }
        };
        shared.accepted.set(shared.accepted.get() + 1);
        let key = shared.handlers.borrow_mut().insert(None);
        let dereg = Deregister {
            shared: DropCaught::new(Rc::clone(&shared), "a StreamServer's handler"),
            key,
        };
        // Maybe the last reference too, if this handler is killed last.
        let handler = DropCaught::new(shared.handler.clone(), "a StreamServer's handler");
        let body = move || {
            let _dereg = dereg;
            (*handler)(stream, peer);
        };
        let spawned = match &shared.spawner {
            Spawner::Plain => Builder::new().spawn_at(shared.site, body),
            Spawner::Pool(pool) => pool.try_spawn_at(shared.site, body),
        };
        match spawned {
            Ok(g) => {
                pause = MIN_PAUSE;
                // The entry is gone already if the handler ran and finished
                // while a pool's spawn parked us.
                if let Some(slot) = shared.handlers.borrow_mut().get_mut(key) {
                    *slot = Some(Rc::new(g));
                }
            }
            Err(e) => {
                // No stack for the handler: the body, dropped, closed the
                // connection and removed its entry. As gevent does for an
                // error in spawn: report it, pause accepting (longer each
                // time in a row), then go on.
                warn(format_args!(
                    "StreamServer: cannot spawn the handler for {peer}: {e}; connection closed, \
                     accepting again in {pause:?}"
                ));
                crate::sleep(pause);
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }
}
