//! Adversarial probes, round 16: randomized, model-checked scenarios over
//! `sylvan::net` sockets.
//!
//! As in round 9 (`probes9.rs`) a fixed-seed xorshift drives several
//! greenlets doing random operations on sockets — reads, writes, peeks,
//! socket timeouts, `with_timeout` and `Timeout::start`, kills, clones,
//! non-blocking calls, `shutdown(Write)` — and each run is checked against
//! a model:
//!
//! * streams (TCP and Unix): every byte a write reported as accepted (the
//!   writes go through a recording wrapper, so a `write_all` unwound by a
//!   kill or timeout still reports the prefix it got through) is read
//!   exactly once, in order, by some reader; nothing else is read; end of
//!   stream comes only after `shutdown(Write)` and after every byte;
//! * UDP: no datagram delivered twice, corrupted or truncated, and small
//!   bursts all arrive;
//! * listeners: every connect that succeeded is accepted exactly once;
//! * readiness edge cases of the edge-triggered hub, as small fixed tests.
//!
//! Every failure message names the seed and the tail of the op trace.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use sylvan::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use sylvan::{Greenlet, Timeout};

use crate::util::{bounded, quiet, yield_until};

/// xorshift64*, fixed seeds (as in round 9).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03);
        if r.0 == 0 {
            r.0 = 1;
        }
        for _ in 0..4 {
            r.next();
        }
        r
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo + 1) as u64) as usize
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    /// A short pause: mostly a yield, now and then 1-2 ms.
    fn pause(&mut self) {
        match self.below(10) {
            0 => sylvan::sleep(Duration::from_millis(1 + self.below(2))),
            1 => sylvan::sleep(Duration::ZERO),
            _ => sylvan::yield_now(),
        }
    }
    /// A short timeout: 0-3 ms.
    fn short(&mut self) -> Duration {
        Duration::from_micros(self.below(3000))
    }
    /// A short socket timeout (never zero, which is refused).
    fn sock_timeout(&mut self) -> Option<Duration> {
        if self.chance(40) {
            None
        } else {
            Some(Duration::from_micros(200 + self.below(3000)))
        }
    }
    /// A buffer size, from tiny to larger than the socket buffers.
    fn size(&mut self) -> usize {
        match self.below(4) {
            0 => self.range(1, 16),
            1 => self.range(1, 1024),
            2 => self.range(1, 16 * 1024),
            _ => self.range(16 * 1024, 96 * 1024),
        }
    }
}

/// The op trace of a run, and the first failure seen by any greenlet.
#[derive(Clone)]
struct Trace {
    what: String,
    seed: u64,
    log: Rc<RefCell<Vec<String>>>,
    failed: Rc<RefCell<Option<String>>>,
}

impl Trace {
    fn new(what: &str, seed: u64) -> Trace {
        Trace {
            what: what.to_string(),
            seed,
            log: Rc::default(),
            failed: Rc::default(),
        }
    }
    fn push(&self, s: impl Into<String>) {
        self.log.borrow_mut().push(s.into());
    }
    fn ctx(&self) -> String {
        let log = self.log.borrow();
        let from = log.len().saturating_sub(60);
        format!(
            "{} seed {} ({} ops; last {}):\n  {}",
            self.what,
            self.seed,
            log.len(),
            log.len() - from,
            log[from..].join("\n  ")
        )
    }
    /// Records the failure (the first one wins) and panics with it.
    fn fail(&self, msg: impl std::fmt::Display) -> ! {
        let m = format!("{msg}\n{}", self.ctx());
        self.failed.borrow_mut().get_or_insert_with(|| m.clone());
        panic!("{m}");
    }
    fn check(&self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.fail(msg());
        }
    }
    /// Panics with the first failure recorded by a greenlet, if any.
    fn assert_no_failure(&self) {
        if let Some(m) = self.failed.borrow().clone() {
            panic!("{m}");
        }
    }
    /// A worker's outcome: finished, killed or timed out are fine.
    fn check_outcome<T>(&self, who: &str, r: Result<T, sylvan::Error>) {
        self.assert_no_failure();
        if let Err(e) = r {
            self.check(e.is_killed() || e.is_timeout(), || {
                format!("{who} failed: {e:?}")
            });
        }
    }
}

/// The byte at offered position `pos` of a stream: position-dependent, so
/// that a duplicated, lost or reordered byte shows.
fn pattern(pos: u64) -> u8 {
    (pos.wrapping_mul(0x9E37_79B1) >> 11) as u8 ^ (pos as u8)
}

/// Small kernel buffers, so that writers park often. For TCP only the
/// send buffer: a receive buffer far below loopback's 64 KiB MSS, shrunk
/// after the handshake, stalls the connection on the persist timer
/// (silly-window avoidance), which is the kernel's doing, not sylvan's.
fn small_bufs(fd: i32, tcp: bool) {
    let v: libc::c_int = 4096;
    let opts: &[libc::c_int] = if tcp {
        &[libc::SO_SNDBUF]
    } else {
        &[libc::SO_SNDBUF, libc::SO_RCVBUF]
    };
    for &opt in opts {
        // SAFETY: `fd` is an open socket and `v` a live c_int of the size
        // passed.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&raw const v).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "setsockopt: {}", io::Error::last_os_error());
    }
}

/// Runs a randomized scenario under the hard bound of `util::bounded`;
/// a hang reports the seed, the op trace and what every greenlet waits on.
fn run_traced(what: &str, seed: u64, f: impl FnOnce(&Trace)) {
    let t = Trace::new(what, seed);
    if sylvan::with_timeout(crate::util::BOUND, || f(&t)).is_err() {
        panic!(
            "hung (hit the {:?} bound)\n{}\n{}",
            crate::util::BOUND,
            t.ctx(),
            sylvan::dump()
        );
    }
}

/// The fixed seeds `first..first + n`; `SYLVAN_P16_SEEDS=<count>` runs
/// that many instead (from `first * 1000`), for a longer hunt by hand.
fn seeds(first: u64, n: u64) -> Vec<u64> {
    match std::env::var("SYLVAN_P16_SEEDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(k) => (first * 1000..first * 1000 + k).collect(),
        None => (first..first + n).collect(),
    }
}

/// Waits up to `d` for `g` to end, then kills it.
fn finish<T>(g: &Greenlet<T>, d: Duration) {
    if !g.wait(Some(d)) {
        g.kill();
    }
}

// ---------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------

/// What the stream scenarios need of a socket type.
trait Sock: Sized + 'static {
    const NAME: &'static str;
    fn pair() -> (Self, Self);
    fn rd(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn wr(&self, buf: &[u8]) -> io::Result<usize>;
    /// `None` where the type has no `peek`.
    fn pk(&self, buf: &mut [u8]) -> Option<io::Result<usize>>;
    fn set_rt(&self, d: Option<Duration>);
    fn set_wt(&self, d: Option<Duration>);
    fn dup(&self) -> Self;
    fn shut(&self, how: Shutdown) -> io::Result<()>;
    fn set_nb(&self, on: bool);
    fn fd(&self) -> i32;
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

impl Sock for TcpStream {
    const NAME: &'static str = "tcp";
    fn pair() -> (Self, Self) {
        tcp_pair()
    }
    fn rd(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self;
        s.read(buf)
    }
    fn wr(&self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self;
        s.write(buf)
    }
    fn pk(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        Some(self.peek(buf))
    }
    fn set_rt(&self, d: Option<Duration>) {
        self.set_read_timeout(d).unwrap();
    }
    fn set_wt(&self, d: Option<Duration>) {
        self.set_write_timeout(d).unwrap();
    }
    fn dup(&self) -> Self {
        self.try_clone().unwrap()
    }
    fn shut(&self, how: Shutdown) -> io::Result<()> {
        self.shutdown(how)
    }
    fn set_nb(&self, on: bool) {
        self.set_nonblocking(on).unwrap();
    }
    fn fd(&self) -> i32 {
        self.as_raw_fd()
    }
}

impl Sock for UnixStream {
    const NAME: &'static str = "unix";
    fn pair() -> (Self, Self) {
        UnixStream::pair().unwrap()
    }
    fn rd(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self;
        s.read(buf)
    }
    fn wr(&self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self;
        s.write(buf)
    }
    fn pk(&self, _buf: &mut [u8]) -> Option<io::Result<usize>> {
        None
    }
    fn set_rt(&self, d: Option<Duration>) {
        self.set_read_timeout(d).unwrap();
    }
    fn set_wt(&self, d: Option<Duration>) {
        self.set_write_timeout(d).unwrap();
    }
    fn dup(&self) -> Self {
        self.try_clone().unwrap()
    }
    fn shut(&self, how: Shutdown) -> io::Result<()> {
        self.shutdown(how)
    }
    fn set_nb(&self, on: bool) {
        self.set_nonblocking(on).unwrap();
    }
    fn fd(&self) -> i32 {
        self.as_raw_fd()
    }
}

/// One direction of a connection.
#[derive(Default)]
struct Flow {
    /// Every byte a write accepted, in order.
    sent: Vec<u8>,
    /// Every byte a read returned, in order.
    recvd: Vec<u8>,
    /// Positions offered so far (each chunk gets fresh ones).
    offered: u64,
    /// The writing side was shut down (`shutdown(Write)` returned).
    shut: bool,
    /// A read saw end of stream.
    eof: bool,
}

/// Checks and records a read-side result on `flow`. `nb`: the call was
/// made in non-blocking mode.
fn on_read(
    t: &Trace,
    flow: &RefCell<Flow>,
    who: &str,
    buf: &[u8],
    r: &io::Result<usize>,
    nb: bool,
    peek: bool,
) {
    let mut f = flow.borrow_mut();
    match r {
        Ok(0) if !buf.is_empty() => {
            let ok = f.shut && f.recvd.len() == f.sent.len();
            let (shut, got, sent) = (f.shut, f.recvd.len(), f.sent.len());
            drop(f);
            t.check(ok, || {
                format!("{who}: end of stream too early (shut {shut}, read {got} of {sent} bytes)")
            });
            flow.borrow_mut().eof = true;
        }
        Ok(n) => {
            let n = *n;
            let start = f.recvd.len();
            if start + n > f.sent.len() {
                let sent = f.sent.len();
                drop(f);
                t.fail(format!(
                    "{who}: read {n} bytes at {start}, but only {sent} were ever accepted"
                ));
            }
            if buf[..n] != f.sent[start..start + n] {
                let i = (0..n).find(|&i| buf[i] != f.sent[start + i]).unwrap();
                let (got, want) = (buf[i], f.sent[start + i]);
                drop(f);
                t.fail(format!(
                    "{who}: byte {} of the stream is {got:#x}, {want:#x} was sent (peek {peek})",
                    start + i
                ));
            }
            if !peek {
                f.recvd.extend_from_slice(&buf[..n]);
            }
        }
        Err(e) => {
            let k = e.kind();
            let ok = k == io::ErrorKind::TimedOut
                || (nb && k == io::ErrorKind::WouldBlock)
                || (k == io::ErrorKind::UnexpectedEof && f.eof);
            drop(f);
            t.check(ok, || format!("{who}: unexpected read error {e:?}"));
        }
    }
}

/// A reader recording what it returns, so that a `read_exact` unwound by a
/// kill or a timeout still accounts for the bytes it consumed.
struct RRec<'a, S: Sock> {
    s: &'a S,
    flow: &'a RefCell<Flow>,
    t: &'a Trace,
    who: &'a str,
    nb: bool,
}

impl<S: Sock> Read for RRec<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.s.rd(buf);
        on_read(self.t, self.flow, self.who, buf, &r, self.nb, false);
        r
    }
}

/// A writer recording what each write accepted.
struct WRec<'a, S: Sock> {
    s: &'a S,
    flow: &'a RefCell<Flow>,
    t: &'a Trace,
    who: &'a str,
    nb: bool,
}

impl<S: Sock> Write for WRec<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.s.wr(buf);
        let mut f = self.flow.borrow_mut();
        match &r {
            Ok(n) => {
                let shut = f.shut;
                f.sent.extend_from_slice(&buf[..*n]);
                drop(f);
                self.t.check(!shut || *n == 0, || {
                    format!(
                        "{}: a write accepted {n} bytes after shutdown(Write)",
                        self.who
                    )
                });
            }
            Err(e) => {
                let k = e.kind();
                let ok = k == io::ErrorKind::TimedOut
                    || (self.nb && k == io::ErrorKind::WouldBlock)
                    || (f.shut && k == io::ErrorKind::BrokenPipe);
                drop(f);
                self.t
                    .check(ok, || format!("{}: unexpected write error {e:?}", self.who));
            }
        }
        r
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn wrec<'a, S: Sock>(
    s: &'a S,
    flow: &'a RefCell<Flow>,
    t: &'a Trace,
    who: &'a str,
    nb: bool,
) -> WRec<'a, S> {
    WRec {
        s,
        flow,
        t,
        who,
        nb,
    }
}

fn rrec<'a, S: Sock>(
    s: &'a S,
    flow: &'a RefCell<Flow>,
    t: &'a Trace,
    who: &'a str,
    nb: bool,
) -> RRec<'a, S> {
    RRec {
        s,
        flow,
        t,
        who,
        nb,
    }
}

fn chunk(flow: &RefCell<Flow>, len: usize) -> Vec<u8> {
    let mut f = flow.borrow_mut();
    let base = f.offered;
    f.offered += len as u64;
    (0..len as u64).map(|i| pattern(base + i)).collect()
}

/// A write-side greenlet: `ops` random operations on `s` into `flow`.
fn writer<S: Sock>(
    s: Rc<S>,
    flow: Rc<RefCell<Flow>>,
    t: Trace,
    who: String,
    seed: u64,
    ops: usize,
) -> impl FnOnce() {
    move || {
        let mut rng = Rng::new(seed);
        for _ in 0..ops {
            if flow.borrow().shut {
                // A write now must fail, and accept nothing.
                let r = wrec(&*s, &flow, &t, &who, false).write(b"late");
                t.push(format!("{who} late write -> {r:?}"));
                t.check(r.is_err(), || format!("{who}: write after shutdown: {r:?}"));
                return;
            }
            let op = rng.below(11);
            let len = rng.size();
            match op {
                0 | 1 => {
                    let c = chunk(&flow, len);
                    t.push(format!("{who} write {len}"));
                    let r = wrec(&*s, &flow, &t, &who, false).write(&c);
                    t.push(format!("{who} write {len} -> {r:?}"));
                }
                2 | 3 => {
                    let c = chunk(&flow, len);
                    t.push(format!("{who} write_all {len}"));
                    let r = wrec(&*s, &flow, &t, &who, false).write_all(&c);
                    t.push(format!("{who} write_all {len} -> {r:?}"));
                }
                4 => {
                    let d = rng.sock_timeout();
                    t.push(format!("{who} set_write_timeout {d:?}"));
                    s.set_wt(d);
                }
                5 => {
                    let d = rng.short();
                    let c = chunk(&flow, len);
                    t.push(format!("{who} with_timeout({d:?}) write_all {len}"));
                    let r =
                        sylvan::with_timeout(d, || wrec(&*s, &flow, &t, &who, false).write_all(&c));
                    t.push(format!("{who} with_timeout write_all -> {r:?}"));
                }
                6 if rng.chance(30) => {
                    // May end this greenlet (a timeout error outcome).
                    let d = rng.short();
                    let c = chunk(&flow, len);
                    t.push(format!("{who} Timeout::start({d:?}) write_all {len}"));
                    let _g = Timeout::start(d);
                    let r = wrec(&*s, &flow, &t, &who, false).write_all(&c);
                    t.push(format!("{who} Timeout write_all -> {r:?}"));
                }
                7 => {
                    let c2 = s.dup();
                    let c = chunk(&flow, len);
                    t.push(format!("{who} clone write {len}"));
                    let r = wrec(&c2, &flow, &t, &who, false).write(&c);
                    t.push(format!("{who} clone write -> {r:?}"));
                    drop(c2);
                }
                8 => {
                    let c = chunk(&flow, len);
                    s.set_nb(true);
                    let r = wrec(&*s, &flow, &t, &who, true).write(&c);
                    s.set_nb(false);
                    t.push(format!("{who} nonblocking write {len} -> {r:?}"));
                }
                9 if rng.chance(25) => {
                    let r = s.shut(Shutdown::Write);
                    t.push(format!("{who} shutdown(Write) -> {r:?}"));
                    t.check(r.is_ok(), || format!("{who}: shutdown(Write): {r:?}"));
                    flow.borrow_mut().shut = true;
                }
                _ => rng.pause(),
            }
            if rng.chance(30) {
                rng.pause();
            }
        }
    }
}

/// A read-side greenlet: `ops` random operations on `s` from `flow`.
fn reader<S: Sock>(
    s: Rc<S>,
    flow: Rc<RefCell<Flow>>,
    t: Trace,
    who: String,
    seed: u64,
    ops: usize,
) -> impl FnOnce() {
    move || {
        let mut rng = Rng::new(seed);
        for _ in 0..ops {
            let len = match rng.below(4) {
                0 => rng.range(1, 16),
                1 => rng.range(1, 512),
                2 => rng.range(1, 8192),
                _ => rng.range(8192, 65536),
            };
            let mut buf = vec![0u8; len];
            match rng.below(11) {
                0 | 1 => {
                    t.push(format!("{who} read {len}"));
                    let r = rrec(&*s, &flow, &t, &who, false).read(&mut buf);
                    t.push(format!("{who} read {len} -> {r:?}"));
                    if matches!(r, Ok(0)) {
                        return;
                    }
                }
                2 => {
                    let len = len.min(4096);
                    t.push(format!("{who} read_exact {len}"));
                    let r = rrec(&*s, &flow, &t, &who, false).read_exact(&mut buf[..len]);
                    t.push(format!("{who} read_exact {len} -> {r:?}"));
                    if flow.borrow().eof {
                        return;
                    }
                }
                3 => {
                    t.push(format!("{who} peek {len}"));
                    match s.pk(&mut buf) {
                        Some(r) => {
                            on_read(&t, &flow, &who, &buf, &r, false, true);
                            t.push(format!("{who} peek {len} -> {r:?}"));
                        }
                        None => {
                            let r = rrec(&*s, &flow, &t, &who, false).read(&mut buf);
                            t.push(format!("{who} read {len} -> {r:?}"));
                            if matches!(r, Ok(0)) {
                                return;
                            }
                        }
                    }
                }
                4 => {
                    let d = rng.sock_timeout();
                    t.push(format!("{who} set_read_timeout {d:?}"));
                    s.set_rt(d);
                }
                5 => {
                    let d = rng.short();
                    let exact = rng.chance(50);
                    t.push(format!(
                        "{who} with_timeout({d:?}) read(exact {exact}) {len}"
                    ));
                    let r = sylvan::with_timeout(d, || {
                        if exact {
                            rrec(&*s, &flow, &t, &who, false)
                                .read_exact(&mut buf)
                                .map(|()| len)
                        } else {
                            rrec(&*s, &flow, &t, &who, false).read(&mut buf)
                        }
                    });
                    t.push(format!("{who} with_timeout read -> {r:?}"));
                    if flow.borrow().eof {
                        return;
                    }
                }
                6 if rng.chance(30) => {
                    let d = rng.short();
                    t.push(format!("{who} Timeout::start({d:?}) read_exact {len}"));
                    let _g = Timeout::start(d);
                    let r = rrec(&*s, &flow, &t, &who, false).read_exact(&mut buf);
                    t.push(format!("{who} Timeout read_exact -> {r:?}"));
                    if flow.borrow().eof {
                        return;
                    }
                }
                7 => {
                    let c = s.dup();
                    t.push(format!("{who} clone read {len}"));
                    let r = rrec(&c, &flow, &t, &who, false).read(&mut buf);
                    t.push(format!("{who} clone read -> {r:?}"));
                    drop(c);
                    if matches!(r, Ok(0)) {
                        return;
                    }
                }
                8 => {
                    s.set_nb(true);
                    let r = rrec(&*s, &flow, &t, &who, true).read(&mut buf);
                    s.set_nb(false);
                    t.push(format!("{who} nonblocking read {len} -> {r:?}"));
                    if matches!(r, Ok(0)) {
                        return;
                    }
                }
                _ => rng.pause(),
            }
            if rng.chance(30) {
                rng.pause();
            }
        }
    }
}

/// Reads `flow` from `s` to end of stream (after the writers are gone and
/// the writing side shut down), checking every byte.
fn drain<S: Sock>(s: &S, flow: &RefCell<Flow>, t: &Trace, who: &str) {
    s.set_nb(false);
    s.set_rt(Some(Duration::from_secs(1)));
    let mut buf = vec![0u8; 65536];
    for _ in 0..100_000 {
        let r = RRec {
            s,
            flow,
            t,
            who,
            nb: false,
        }
        .read(&mut buf);
        match r {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => t.fail(format!("{who}: draining: {e:?} (bytes lost or no EOF)")),
        }
    }
    t.fail(format!("{who}: drain did not end"));
}

fn run_stream<S: Sock>(t: &Trace) {
    let seed = t.seed;
    let t = t.clone();
    quiet();
    let mut rng = Rng::new(seed);
    let (a, b) = S::pair();
    for s in [&a, &b] {
        small_bufs(s.fd(), S::NAME == "tcp");
    }
    let socks = [Rc::new(a), Rc::new(b)];
    let flows: [Rc<RefCell<Flow>>; 2] = Default::default();
    let mut writers: Vec<Greenlet<()>> = Vec::new();
    let mut readers: Vec<Greenlet<()>> = Vec::new();
    // Role (writer?, flow) of each writer and reader, to replace the killed.
    let mut roles: Vec<(bool, usize)> = Vec::new();
    for f in 0..2 {
        for _ in 0..rng.range(1, 2) {
            roles.push((true, f));
        }
        for _ in 0..rng.range(1, 2) {
            roles.push((false, f));
        }
    }
    let mut serial = 0;
    // Flow f goes from socks[f] to socks[1 - f], through the socket or a
    // clone of it.
    let mut spawn_role = |rng: &mut Rng, (w, f): (bool, usize)| -> Greenlet<()> {
        let side = if w { f } else { 1 - f };
        let s = if rng.chance(50) {
            Rc::new(socks[side].dup())
        } else {
            socks[side].clone()
        };
        serial += 1;
        let who = format!("{}{f}.{serial}", if w { "w" } else { "r" });
        let seed = rng.next();
        if w {
            sylvan::spawn(writer(s, flows[f].clone(), t.clone(), who, seed, 30))
        } else {
            sylvan::spawn(reader(s, flows[f].clone(), t.clone(), who, seed, 40))
        }
    };
    for &r in &roles {
        let g = spawn_role(&mut rng, r);
        if r.0 {
            writers.push(g);
        } else {
            readers.push(g);
        }
    }
    for _ in 0..120 {
        if rng.chance(4) {
            let all = writers.len() + readers.len();
            let i = rng.below(all as u64) as usize;
            let (g, role) = if i < writers.len() {
                (&writers[i], (true, rng.below(2) as usize))
            } else {
                (&readers[i - writers.len()], (false, rng.below(2) as usize))
            };
            t.push(format!("main kills #{i}"));
            if rng.chance(50) {
                g.kill();
            } else {
                g.kill_nowait();
            }
            // A fresh worker keeps the flows busy.
            let g = spawn_role(&mut rng, role);
            if role.0 {
                writers.push(g);
            } else {
                readers.push(g);
            }
        } else {
            rng.pause();
        }
    }
    t.assert_no_failure();
    // Writers end by their op count, unless parked on a full buffer that
    // no reader empties any more.
    for w in &writers {
        finish(w, Duration::from_millis(30));
    }
    t.push("main: writers done; shutdown(Write) both ways");
    for f in 0..2 {
        let _ = socks[f].shut(Shutdown::Write);
        flows[f].borrow_mut().shut = true;
    }
    for r in &readers {
        finish(r, Duration::from_millis(50));
    }
    for (i, g) in writers.into_iter().chain(readers).enumerate() {
        t.check_outcome(&format!("worker #{i}"), g.join());
    }
    for f in 0..2 {
        let before = flows[f].borrow().recvd.len();
        t.push(format!("main drains flow {f} from {before}"));
        drain(&*socks[1 - f], &flows[f], &t, &format!("main drain {f}"));
        let fl = flows[f].borrow();
        t.check(fl.recvd == fl.sent, || {
            format!(
                "flow {f}: read {} bytes, {} were accepted",
                fl.recvd.len(),
                fl.sent.len()
            )
        });
    }
    eprintln!(
        "{}; bytes {} / {}",
        summary(&t),
        flows[0].borrow().sent.len(),
        flows[1].borrow().sent.len()
    );
}

/// What a run exercised (printed with `--nocapture`).
fn summary(t: &Trace) -> String {
    let log = t.log.borrow();
    let count = |p: &str| log.iter().filter(|l| l.contains(p)).count();
    format!(
        "{} seed {}: {} ops, {} TimedOut, {} Elapsed, {} WouldBlock, {} kills, {} Ok(0), {} peeks, {} shutdowns",
        t.what,
        t.seed,
        log.len(),
        count("TimedOut"),
        count("Elapsed"),
        count("WouldBlock"),
        count("kills"),
        count("Ok(0)"),
        count("peek"),
        count("shutdown(Write) ->"),
    )
}

#[test]
fn tcp_stream_integrity_random() {
    for seed in seeds(1, 10) {
        run_traced("tcp stream", seed, run_stream::<TcpStream>);
    }
}

#[test]
fn unix_stream_integrity_random() {
    for seed in seeds(11, 10) {
        run_traced("unix stream", seed, run_stream::<UnixStream>);
    }
}

/// Two greenlets read one socket through clones at the same time, with
/// random buffer sizes: every byte goes to exactly one of them, in order.
fn run_two_readers<S: Sock>(t: &Trace) {
    let seed = t.seed;
    let t = t.clone();
    quiet();
    let mut rng = Rng::new(seed);
    let (a, b) = S::pair();
    small_bufs(a.fd(), S::NAME == "tcp");
    small_bufs(b.fd(), S::NAME == "tcp");
    let flow = Rc::new(RefCell::new(Flow::default()));
    let b = Rc::new(b);
    let per: Rc<RefCell<[Vec<u8>; 2]>> = Rc::default();
    let readers: Vec<Greenlet<()>> = (0..2)
        .map(|i| {
            let (s, flow, t, per) = (Rc::new(b.dup()), flow.clone(), t.clone(), per.clone());
            let seed = rng.next();
            sylvan::spawn(move || {
                let mut rng = Rng::new(seed);
                let who = format!("r{i}");
                loop {
                    let hi = if rng.chance(50) { 64 } else { 8192 };
                    let len = rng.range(1, hi);
                    let mut buf = vec![0u8; len];
                    let r = RRec {
                        s: &*s,
                        flow: &flow,
                        t: &t,
                        who: &who,
                        nb: false,
                    }
                    .read(&mut buf);
                    t.push(format!("{who} read {len} -> {r:?}"));
                    match r {
                        Ok(0) => return,
                        Ok(n) => per.borrow_mut()[i].extend_from_slice(&buf[..n]),
                        Err(e) => t.fail(format!("{who}: {e:?}")),
                    }
                    if rng.chance(30) {
                        rng.pause();
                    }
                }
            })
        })
        .collect();
    let total = 200_000;
    let mut w = WRec {
        s: &a,
        flow: &flow,
        t: &t,
        who: "w",
        nb: false,
    };
    let mut done = 0;
    while done < total {
        let len = rng.size().min(total - done);
        let c = chunk(&flow, len);
        t.push(format!("w write_all {len}"));
        w.write_all(&c).unwrap();
        done += len;
        if rng.chance(30) {
            rng.pause();
        }
    }
    a.shut(Shutdown::Write).unwrap();
    flow.borrow_mut().shut = true;
    for (i, r) in readers.into_iter().enumerate() {
        t.check_outcome(&format!("reader {i}"), r.join());
    }
    let f = flow.borrow();
    let per = per.borrow();
    t.check(
        f.recvd == f.sent && per[0].len() + per[1].len() == total,
        || {
            format!(
                "read {} + {} of {} bytes",
                per[0].len(),
                per[1].len(),
                f.sent.len()
            )
        },
    );
}

#[test]
fn two_readers_on_clones_split_the_stream() {
    for seed in seeds(21, 3) {
        run_traced("tcp two readers", seed, run_two_readers::<TcpStream>);
        run_traced(
            "unix two readers",
            seed + 100,
            run_two_readers::<UnixStream>,
        );
    }
}

// ---------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------

/// A datagram: sender, sequence, target and length, then a payload derived
/// from them.
fn datagram(from: u8, seq: u32, to: u8, len: usize) -> Vec<u8> {
    let mut d = vec![from, to];
    d.extend_from_slice(&seq.to_le_bytes());
    d.extend_from_slice(&(len as u16).to_le_bytes());
    let key = (u64::from(from) << 40) | (u64::from(seq) << 8) | u64::from(to);
    d.extend((8..len as u64).map(|i| pattern(key.wrapping_mul(31) + i)));
    d
}

fn run_udp(t: &Trace) {
    let seed = t.seed;
    let t = t.clone();
    quiet();
    let mut rng = Rng::new(seed);
    let n = 3;
    let socks: Vec<Rc<UdpSocket>> = (0..n)
        .map(|_| Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap()))
        .collect();
    let addrs: Vec<SocketAddr> = socks.iter().map(|s| s.local_addr().unwrap()).collect();
    // (from, seq) of every datagram received, with the receiver.
    let seen: Rc<RefCell<HashSet<(u8, u32)>>> = Rc::default();
    let sent_count: Rc<RefCell<Vec<u32>>> = Rc::new(RefCell::new(vec![0; n]));
    let check_dgram = {
        let (t, seen, addrs, sent_count) =
            (t.clone(), seen.clone(), addrs.clone(), sent_count.clone());
        move |me: usize, buf: &[u8], got: usize, from: SocketAddr| {
            t.check(got >= 8, || format!("sock {me}: runt datagram of {got}"));
            let (f, to) = (buf[0], buf[1]);
            let seq = u32::from_le_bytes(buf[2..6].try_into().unwrap());
            let len = u16::from_le_bytes(buf[6..8].try_into().unwrap()) as usize;
            t.check(len == got, || {
                format!("sock {me}: datagram {f}/{seq} of {len} bytes came as {got}")
            });
            t.check(buf[..got] == datagram(f, seq, to, len)[..], || {
                format!("sock {me}: datagram {f}/{seq} corrupted")
            });
            t.check(to as usize == me && addrs[f as usize] == from, || {
                format!("sock {me}: datagram {f}/{seq} for {to} from {from}")
            });
            t.check(seq < sent_count.borrow()[f as usize], || {
                format!("sock {me}: datagram {f}/{seq} never sent")
            });
            t.check(seen.borrow_mut().insert((f, seq)), || {
                format!("sock {me}: datagram {f}/{seq} delivered twice")
            });
        }
    };
    let check_dgram = Rc::new(check_dgram);
    let mut workers: Vec<Greenlet<()>> = Vec::new();
    for (i, sock) in socks.iter().enumerate() {
        // A sender on socket i.
        let (s, t2, addrs, sent_count, seed2) = (
            sock.clone(),
            t.clone(),
            addrs.clone(),
            sent_count.clone(),
            rng.next(),
        );
        workers.push(sylvan::spawn(move || {
            let mut rng = Rng::new(seed2);
            for _ in 0..40 {
                let to = rng.below(n as u64) as u8;
                let len = rng.range(8, 1400);
                let seq = sent_count.borrow()[i];
                let d = datagram(i as u8, seq, to, len);
                // Counted before the send: a datagram sent by a call that
                // is then unwound may still arrive.
                sent_count.borrow_mut()[i] += 1;
                let r = if rng.chance(20) {
                    sylvan::with_timeout(rng.short(), || s.send_to(&d, addrs[to as usize]))
                        .unwrap_or(Ok(0))
                } else {
                    s.send_to(&d, addrs[to as usize])
                };
                t2.push(format!("s{i} send {i}/{seq} -> {to} ({len}): {r:?}"));
                match r {
                    Ok(k) => t2.check(k == len || k == 0, || format!("short send {k}")),
                    Err(e) => t2.fail(format!("s{i}: send_to: {e:?}")),
                }
                rng.pause();
            }
        }));
        // Two receivers on socket i, one through a clone.
        for j in 0..2 {
            let s = if j == 0 {
                sock.clone()
            } else {
                Rc::new(sock.try_clone().unwrap())
            };
            let (t2, check, seed2) = (t.clone(), check_dgram.clone(), rng.next());
            workers.push(sylvan::spawn(move || {
                let mut rng = Rng::new(seed2);
                let mut buf = [0u8; 2048];
                for _ in 0..60 {
                    let r = match rng.below(4) {
                        0 => {
                            s.set_read_timeout(rng.sock_timeout()).unwrap();
                            continue;
                        }
                        1 => match sylvan::with_timeout(rng.short(), || s.recv_from(&mut buf)) {
                            Ok(r) => r,
                            Err(_) => continue,
                        },
                        2 => {
                            s.set_nonblocking(true).unwrap();
                            let r = s.recv_from(&mut buf);
                            s.set_nonblocking(false).unwrap();
                            r
                        }
                        _ => s.recv_from(&mut buf),
                    };
                    t2.push(format!("r{i}.{j} recv -> {r:?}"));
                    match r {
                        Ok((k, from)) => check(i, &buf, k, from),
                        Err(e) => t2.check(
                            matches!(
                                e.kind(),
                                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                            ),
                            || format!("r{i}.{j}: recv_from: {e:?}"),
                        ),
                    }
                    if rng.chance(30) {
                        rng.pause();
                    }
                }
            }));
        }
    }
    for _ in 0..30 {
        if rng.chance(10) {
            let g = &workers[rng.below(workers.len() as u64) as usize];
            t.push("main kills one");
            g.kill();
        } else {
            rng.pause();
        }
    }
    for g in &workers {
        finish(g, Duration::from_millis(20));
    }
    for (i, g) in workers.into_iter().enumerate() {
        t.check_outcome(&format!("udp worker #{i}"), g.join());
    }
    // Whatever is still queued: drain it, checking it too.
    for (i, s) in socks.iter().enumerate() {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 2048];
        while let Ok((k, from)) = s.recv_from(&mut buf) {
            check_dgram(i, &buf, k, from);
        }
        s.set_nonblocking(false).unwrap();
    }
    // A small burst from every socket to socket 0: all of it arrives.
    let before = seen.borrow().len();
    let burst = 20;
    for (i, s) in socks.iter().enumerate() {
        for _ in 0..burst {
            let seq = sent_count.borrow()[i];
            sent_count.borrow_mut()[i] += 1;
            let d = datagram(i as u8, seq, 0, 64);
            s.send_to(&d, addrs[0]).unwrap();
        }
    }
    socks[0]
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 2048];
    for k in 0..burst * n {
        match socks[0].recv_from(&mut buf) {
            Ok((got, from)) => check_dgram(0, &buf, got, from),
            Err(e) => t.fail(format!("burst: datagram {k} of {}: {e:?}", burst * n)),
        }
    }
    t.check(seen.borrow().len() == before + burst * n, || {
        "burst miscounted".into()
    });
}

#[test]
fn udp_random_no_duplicates_or_corruption() {
    for seed in seeds(31, 4) {
        run_traced("udp", seed, run_udp);
    }
}

// ---------------------------------------------------------------------
// Listener churn
// ---------------------------------------------------------------------

fn run_listener(t: &Trace) {
    let seed = t.seed;
    let t = t.clone();
    quiet();
    let mut rng = Rng::new(seed);
    let l = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = l.local_addr().unwrap();
    // Client id -> its local address, for each connect that succeeded.
    let connected: Rc<RefCell<HashMap<u32, SocketAddr>>> = Rc::default();
    let accepted: Rc<RefCell<Vec<TcpStream>>> = Rc::default();
    let keep: Rc<RefCell<Vec<TcpStream>>> = Rc::default();
    let next_id = Rc::new(Cell::new(0u32));
    let mut acceptors: Vec<Greenlet<()>> = Vec::new();
    let spawn_acceptor = |rng: &mut Rng, k: usize| {
        let (l, t, accepted, seed) = (l.clone(), t.clone(), accepted.clone(), rng.next());
        sylvan::spawn(move || {
            let mut rng = Rng::new(seed);
            let l = if rng.chance(50) {
                Rc::new(l.try_clone().unwrap())
            } else {
                l
            };
            for _ in 0..30 {
                let r = match rng.below(4) {
                    0 => match sylvan::with_timeout(rng.short(), || l.accept()) {
                        Ok(r) => r,
                        Err(_) => continue,
                    },
                    1 => {
                        l.set_nonblocking(true).unwrap();
                        let r = l.accept();
                        l.set_nonblocking(false).unwrap();
                        r
                    }
                    _ => l.accept(),
                };
                match r {
                    Ok((s, peer)) => {
                        t.push(format!("a{k} accepted {peer}"));
                        accepted.borrow_mut().push(s);
                    }
                    Err(e) => t.check(e.kind() == io::ErrorKind::WouldBlock, || {
                        format!("a{k}: accept: {e:?}")
                    }),
                }
                if rng.chance(30) {
                    rng.pause();
                }
            }
        })
    };
    for k in 0..3 {
        acceptors.push(spawn_acceptor(&mut rng, k));
    }
    let mut clients: Vec<Greenlet<()>> = Vec::new();
    for c in 0..4 {
        let (t, connected, keep, next_id, seed) = (
            t.clone(),
            connected.clone(),
            keep.clone(),
            next_id.clone(),
            rng.next(),
        );
        clients.push(sylvan::spawn(move || {
            let mut rng = Rng::new(seed);
            for _ in 0..15 {
                let id = next_id.get();
                next_id.set(id + 1);
                let s = match TcpStream::connect(addr) {
                    Ok(s) => s,
                    Err(e) => t.fail(format!("c{c}: connect: {e:?}")),
                };
                let local = s.local_addr().unwrap();
                connected.borrow_mut().insert(id, local);
                t.push(format!("c{c} connected #{id} from {local}"));
                (&s).write_all(&id.to_le_bytes()).unwrap();
                match rng.below(3) {
                    0 => drop(s),
                    1 => keep.borrow_mut().push(s),
                    _ => {
                        rng.pause();
                        drop(s);
                    }
                }
                rng.pause();
            }
        }));
    }
    let mut k = 3;
    for _ in 0..60 {
        if rng.chance(10) {
            let i = rng.below(acceptors.len() as u64) as usize;
            t.push(format!("main kills acceptor {i}, spawns a{k}"));
            if rng.chance(50) {
                acceptors[i].kill();
            } else {
                acceptors[i].kill_nowait();
            }
            acceptors.push(spawn_acceptor(&mut rng, k));
            k += 1;
        } else {
            rng.pause();
        }
    }
    for (i, c) in clients.into_iter().enumerate() {
        let r = c.join();
        t.check_outcome(&format!("client {i}"), r);
    }
    for a in &acceptors {
        finish(a, Duration::from_millis(10));
    }
    for (i, a) in acceptors.into_iter().enumerate() {
        t.check_outcome(&format!("acceptor {i}"), a.join());
    }
    // A connect from another test (of this process or another) to a port
    // it used before, which `bind(0)` gave this listener after it was
    // freed: not one of our clients' addresses, so not ours to check (a
    // long seed hunt under load saw one read end before an id).
    let stranger = |s: &TcpStream| {
        s.peer_addr()
            .is_ok_and(|p| !connected.borrow().values().any(|&a| a == p))
    };
    // The backlog: whatever no acceptor took.
    let total = connected.borrow().len();
    l.set_nonblocking(true).unwrap();
    yield_until("the backlog drains", || {
        while let Ok((s, _)) = l.accept() {
            accepted.borrow_mut().push(s);
        }
        accepted.borrow().iter().filter(|s| !stranger(s)).count() >= total
    });
    let accepted = std::mem::take(&mut *accepted.borrow_mut());
    let mut ids = HashSet::new();
    for s in accepted.iter().filter(|s| !stranger(s)) {
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut b = [0u8; 4];
        let r = (&*s).read_exact(&mut b);
        let peer = s.peer_addr().ok();
        t.check(r.is_ok(), || {
            format!("reading a client id from {peer:?}: {r:?}")
        });
        let id = u32::from_le_bytes(b);
        let want = connected.borrow().get(&id).copied();
        t.check(want.is_some() && (peer.is_none() || peer == want), || {
            format!("accepted #{id} from {peer:?}, connected from {want:?}")
        });
        t.check(ids.insert(id), || format!("client #{id} accepted twice"));
    }
    t.check(ids.len() == total, || {
        format!("{} of {total} connects accepted", ids.len())
    });
}

#[test]
fn listener_churn_accepts_each_connect_once() {
    for seed in seeds(41, 4) {
        run_traced("listener churn", seed, run_listener);
    }
}

// ---------------------------------------------------------------------
// Readiness edge cases (fixed)
// ---------------------------------------------------------------------

/// Data arrives and its edge is polled while no one is parked; a reader
/// that parks later still gets it. Also after a short read drained the
/// socket, and after `is_reusable` probed it empty.
#[test]
fn data_polled_with_no_waiter_is_not_lost() {
    bounded(|| {
        let (a, b) = tcp_pair();
        b.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut buf = [0u8; 64];
        // 1. Plain: the edge is consumed by a poll with nobody waiting.
        (&a).write_all(b"one").unwrap();
        sylvan::sleep(Duration::from_millis(2));
        assert_eq!((&b).read(&mut buf).unwrap(), 3);
        // 2. After a short read (drained), a new edge with no waiter.
        (&a).write_all(b"two").unwrap();
        sylvan::sleep(Duration::from_millis(2));
        assert_eq!((&b).read(&mut buf).unwrap(), 3);
        // 3. A probe found it empty, then data came.
        assert!(b.is_reusable());
        (&a).write_all(b"three").unwrap();
        sylvan::sleep(Duration::from_millis(2));
        assert!(!b.is_reusable());
        assert_eq!((&b).read(&mut buf).unwrap(), 5);
        // 4. Data that came before the hub polled (no sleep) after a drain.
        (&a).write_all(b"four").unwrap();
        assert_eq!((&b).read(&mut buf).unwrap(), 4);
        // 5. A peek after a drain sees data whose edge is not polled yet,
        // and the read after it does not park.
        (&a).write_all(b"five").unwrap();
        assert_eq!(b.peek(&mut buf).unwrap(), 4);
        assert_eq!((&b).read(&mut buf).unwrap(), 4);
        // 6. A full read (n == len) leaves more to read without a new edge.
        (&a).write_all(&[7u8; 100]).unwrap();
        sylvan::sleep(Duration::from_millis(2));
        assert_eq!((&b).read(&mut buf).unwrap(), 64);
        assert_eq!((&b).read(&mut buf).unwrap(), 36);
        // 7. End of stream after a drain.
        a.shutdown(Shutdown::Write).unwrap();
        sylvan::sleep(Duration::from_millis(2));
        assert_eq!((&b).read(&mut buf).unwrap(), 0);
        assert_eq!((&b).read(&mut buf).unwrap(), 0);
    });
}

/// Readers K, A and B park on one socket (B on a clone), in that order.
/// Data arrives: all three are woken; K runs first, kills A before A ran,
/// and only peeks. B must get the data, not hang.
fn killed_woken_reader(k_reads: usize) {
    bounded(|| {
        quiet();
        let (a, b) = tcp_pair();
        let b = Rc::new(b);
        b.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let victim: Rc<RefCell<Option<Greenlet<io::Result<usize>>>>> = Rc::default();
        let k = {
            let (b, victim) = (b.clone(), victim.clone());
            sylvan::spawn(move || {
                let mut buf = vec![0u8; if k_reads == 0 { 16 } else { k_reads }];
                let r = if k_reads == 0 {
                    b.peek(&mut buf)
                } else {
                    (&*b).read(&mut buf)
                };
                if let Some(v) = victim.borrow().as_ref() {
                    v.kill_nowait();
                }
                r
            })
        };
        let va = {
            let b = b.clone();
            sylvan::spawn(move || (&*b).read(&mut [0u8; 16]))
        };
        let vb = {
            let c = b.try_clone().unwrap();
            sylvan::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; 16];
                while got.len() < 10 - k_reads {
                    let n = (&c).read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                Ok::<usize, io::Error>(got.len())
            })
        };
        yield_until("three readers parked", || {
            sylvan::dump().to_string().matches("socket read").count() >= 3
        });
        *victim.borrow_mut() = Some(va);
        (&a).write_all(b"0123456789").unwrap();
        let kr = k.join().unwrap();
        assert_eq!(
            kr.unwrap(),
            if k_reads == 0 { 10 } else { k_reads },
            "K's read"
        );
        let va = victim.borrow_mut().take().unwrap();
        assert!(va.join().unwrap_err().is_killed(), "A was not killed");
        assert_eq!(vb.join().unwrap().unwrap(), 10 - k_reads, "B's bytes");
    });
}

#[test]
fn reader_killed_after_wake_second_reader_still_wakes() {
    killed_woken_reader(0);
    killed_woken_reader(3);
}

/// `set_nonblocking(true)` gives `WouldBlock` (and loses nothing), then
/// back in blocking mode a read parks until data comes.
#[test]
fn nonblocking_round_trip() {
    bounded(|| {
        for unix in [false, true] {
            let (a, b): (Feed, Box<dyn Sock2>) = if unix {
                let (a, b) = UnixStream::pair().unwrap();
                (Box::new(move |d| (&a).write_all(d).unwrap()), Box::new(b))
            } else {
                let (a, b) = tcp_pair();
                (Box::new(move |d| (&a).write_all(d).unwrap()), Box::new(b))
            };
            let mut buf = [0u8; 8];
            b.nb(true);
            let e = b.rd(&mut buf).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "unix {unix}");
            a(b"abc");
            let mut got = 0;
            for _ in 0..1000 {
                match b.rd(&mut buf[got..]) {
                    Ok(n) => got += n,
                    Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
                }
                if got == 3 {
                    break;
                }
                sylvan::sleep(Duration::from_millis(1));
            }
            assert_eq!(got, 3, "unix {unix}: non-blocking reads never got the data");
            assert_eq!(&buf[..3], b"abc");
            assert_eq!(
                b.rd(&mut buf).unwrap_err().kind(),
                io::ErrorKind::WouldBlock
            );
            b.nb(false);
            b.rt(Some(Duration::from_secs(1)));
            let w = sylvan::spawn(move || {
                sylvan::sleep(Duration::from_millis(3));
                a(b"defg");
            });
            assert_eq!(b.rd(&mut buf).unwrap(), 4);
            assert_eq!(&buf[..4], b"defg");
            w.join().unwrap();
        }
    });
}

/// Writes to the peer of the socket under test.
type Feed = Box<dyn Fn(&[u8])>;

/// `Sock` without `Sized`, for boxing.
trait Sock2 {
    fn rd(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn nb(&self, on: bool);
    fn rt(&self, d: Option<Duration>);
}

impl<S: Sock> Sock2 for S {
    fn rd(&self, buf: &mut [u8]) -> io::Result<usize> {
        Sock::rd(self, buf)
    }
    fn nb(&self, on: bool) {
        self.set_nb(on);
    }
    fn rt(&self, d: Option<Duration>) {
        self.set_rt(d);
    }
}

/// Reader and writer greenlets on both ends of one connection at once,
/// through `&TcpStream`: a ping-pong of counters, each side also streaming
/// bulk data the other side drains.
#[test]
fn interleaved_readers_and_writers_on_one_socket() {
    bounded(|| {
        let (a, b) = tcp_pair();
        small_bufs(a.as_raw_fd(), true);
        small_bufs(b.as_raw_fd(), true);
        let (a, b) = (Rc::new(a), Rc::new(b));
        let n = 300_000usize;
        let mut gs: Vec<Greenlet<usize>> = Vec::new();
        for (x, y) in [(a.clone(), b.clone()), (b.clone(), a.clone())] {
            gs.push(sylvan::spawn(move || {
                let c: Vec<u8> = (0..n as u64).map(pattern).collect();
                (&*x).write_all(&c).unwrap();
                x.shutdown(Shutdown::Write).unwrap();
                n
            }));
            gs.push(sylvan::spawn(move || {
                let mut got = Vec::new();
                (&*y).read_to_end(&mut got).unwrap();
                assert!(got.iter().enumerate().all(|(i, &v)| v == pattern(i as u64)));
                got.len()
            }));
        }
        for g in gs {
            assert_eq!(g.join().unwrap(), n);
        }
    });
}

/// Sends one byte of urgent (out-of-band) data on `fd`.
fn send_oob(fd: i32, b: u8) {
    // SAFETY: `fd` is an open TCP socket and `b` lives for the call.
    let r = unsafe { libc::send(fd, (&raw const b).cast(), 1, libc::MSG_OOB) };
    assert_eq!(r, 1, "send(MSG_OOB): {}", io::Error::last_os_error());
}

/// Urgent data makes a TCP read stop short at the mark with data queued
/// behind it: the short read must not be taken for "drained" (the docs
/// promise EPOLLPRI makes the flag sticky). With and without a poll
/// between the arrival and the reads.
#[test]
fn urgent_data_short_read_does_not_hang() {
    bounded(|| {
        for poll_first in [false, true] {
            let (a, b) = tcp_pair();
            b.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            (&a).write_all(b"abc").unwrap();
            send_oob(a.as_raw_fd(), b'X');
            (&a).write_all(b"def").unwrap();
            if poll_first {
                sylvan::sleep(Duration::from_millis(2));
            }
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while got.len() < 6 {
                match (&b).read(&mut buf) {
                    Ok(0) => panic!("poll_first {poll_first}: early EOF after {got:?}"),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => panic!("poll_first {poll_first}: after {got:?}: {e:?}"),
                }
            }
            assert_eq!(got, b"abcdef", "poll_first {poll_first}");
        }
    });
}

/// `shutdown(Read)` wakes every reader parked on the socket with end of
/// stream; `shutdown(Write)` on a socket whose writer is parked on a full
/// buffer wakes it with an error.
#[test]
fn shutdown_wakes_parked_readers_and_writers() {
    bounded(|| {
        for unix in [false, true] {
            // `_a` keeps the peer open.
            let (_a, b): (Rc<dyn Sock2Full>, Rc<dyn Sock2Full>) = if unix {
                let (a, b) = UnixStream::pair().unwrap();
                (Rc::new(a), Rc::new(b))
            } else {
                let (a, b) = tcp_pair();
                (Rc::new(a), Rc::new(b))
            };
            let readers: Vec<Greenlet<io::Result<usize>>> = (0..3)
                .map(|_| {
                    let b = b.clone();
                    sylvan::spawn(move || b.rd(&mut [0u8; 8]))
                })
                .collect();
            // The writer fills b -> a, which nobody reads; the readers wait
            // for a -> b, which nobody writes.
            let writer: Greenlet<io::Result<()>> = {
                let b = b.clone();
                sylvan::spawn(move || {
                    let big = vec![1u8; 64 * 1024];
                    loop {
                        b.wr(&big)?;
                    }
                })
            };
            yield_until("readers and the writer park", || {
                let d = sylvan::dump().to_string();
                d.matches("socket read").count() == 3 && d.contains("socket write")
            });
            b.shut(Shutdown::Read).unwrap();
            for r in readers {
                let r = r.join().unwrap();
                assert_eq!(r.unwrap(), 0, "unix {unix}: a reader after shutdown(Read)");
            }
            b.shut(Shutdown::Write).unwrap();
            let e = writer.join().unwrap().unwrap_err();
            assert_eq!(
                e.kind(),
                io::ErrorKind::BrokenPipe,
                "unix {unix}: the writer after shutdown(Write): {e:?}"
            );
        }
    });
}

/// The `Sock` operations the shutdown test needs, object-safe.
trait Sock2Full {
    fn rd(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn wr(&self, buf: &[u8]) -> io::Result<usize>;
    fn shut(&self, how: Shutdown) -> io::Result<()>;
}

impl<S: Sock> Sock2Full for S {
    fn rd(&self, buf: &mut [u8]) -> io::Result<usize> {
        Sock::rd(self, buf)
    }
    fn wr(&self, buf: &[u8]) -> io::Result<usize> {
        Sock::wr(self, buf)
    }
    fn shut(&self, how: Shutdown) -> io::Result<()> {
        Sock::shut(self, how)
    }
}

/// A reader whose `with_timeout` and socket timeout expire at about the
/// moment the data arrives: whichever wins, no byte is lost.
#[test]
fn timeout_racing_data_loses_nothing() {
    bounded(|| {
        quiet();
        let (a, b) = tcp_pair();
        let mut rng = Rng::new(77);
        let mut got = Vec::new();
        let mut sent = Vec::new();
        for i in 0..60u32 {
            let d = Duration::from_micros(500 + rng.below(1000));
            let when = Duration::from_micros(500 + rng.below(1000));
            b.set_read_timeout(Some(d + Duration::from_micros(rng.below(300))))
                .unwrap();
            let msg = i.to_le_bytes();
            sent.extend_from_slice(&msg);
            let a2 = a.try_clone().unwrap();
            let w = sylvan::spawn(move || {
                sylvan::sleep(when);
                (&a2).write_all(&msg).unwrap();
            });
            let mut buf = [0u8; 64];
            match sylvan::with_timeout(d, || (&b).read(&mut buf)) {
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::TimedOut, "round {i}"),
                Err(_) => {}
            }
            w.join().unwrap();
        }
        b.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 64];
        while got.len() < sent.len() {
            match (&b).read(&mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                r => panic!("after {} of {} bytes: {r:?}", got.len(), sent.len()),
            }
        }
        assert_eq!(got, sent);
    });
}

/// `is_reusable` answers from the hub's readiness for up to 1 ms after a
/// complete poll (documented in `hub/src/io.rs`, `SETTLED`: "the answer may
/// be up to SETTLED old"), so a close that lands right after the greenlet
/// resumes from a poll may be missed for that long: not asserted. Past
/// the bound, without any poll in between, it must peek and see the close.
#[test]
fn is_reusable_staleness_is_bounded() {
    bounded(|| {
        let (a, b) = tcp_pair();
        (&a).write_all(b"resp").unwrap();
        let mut buf = [0u8; 64];
        b.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        assert_eq!((&b).read(&mut buf).unwrap(), 4); // short: drained
        sylvan::sleep(Duration::from_micros(10)); // a complete poll
        drop(a); // the peer closes while this greenlet runs
        let _maybe_stale = b.is_reusable();
        // Blocks the hub on purpose: no poll can vouch any more.
        std::thread::sleep(Duration::from_millis(3));
        assert!(!b.is_reusable(), "a close 3 ms old, with no poll since");
        assert_eq!((&b).read(&mut buf).unwrap(), 0);
    });
}

/// Acceptors K, A and B park on one listener (B through a clone), in that
/// order. Two clients connect: K takes the first and kills A, woken with
/// it but not run yet; B must take the second, not hang.
#[test]
fn acceptor_killed_after_wake_second_acceptor_still_wakes() {
    bounded(|| {
        quiet();
        let l = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = l.local_addr().unwrap();
        let victim: Rc<RefCell<Option<Greenlet<SocketAddr>>>> = Rc::default();
        let k = {
            let (l, victim) = (l.clone(), victim.clone());
            sylvan::spawn(move || {
                let (_, peer) = l.accept().unwrap();
                if let Some(v) = victim.borrow().as_ref() {
                    v.kill_nowait();
                }
                peer
            })
        };
        let va = {
            let l = l.clone();
            sylvan::spawn(move || l.accept().unwrap().1)
        };
        let vb = {
            let c = l.try_clone().unwrap();
            sylvan::spawn(move || c.accept().unwrap().1)
        };
        yield_until("three acceptors parked", || {
            sylvan::dump().to_string().matches("socket accept").count() >= 3
        });
        *victim.borrow_mut() = Some(va);
        let c1 = TcpStream::connect(addr).unwrap();
        let c2 = TcpStream::connect(addr).unwrap();
        let mut peers = vec![k.join().unwrap()];
        let va = victim.borrow_mut().take().unwrap();
        match va.join() {
            Err(e) => assert!(e.is_killed(), "A: {e:?}"),
            // A ran before K could kill it: it took a connection.
            Ok(p) => peers.push(p),
        }
        if peers.len() < 2 {
            let vb = sylvan::with_timeout(Duration::from_secs(1), || vb.join().unwrap());
            peers.push(vb.expect("B never woke for the second connection"));
        } else {
            vb.kill();
        }
        peers.sort();
        let mut want = vec![c1.local_addr().unwrap(), c2.local_addr().unwrap()];
        want.sort();
        assert_eq!(peers, want);
    });
}
