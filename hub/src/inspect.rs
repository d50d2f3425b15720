//! Seeing inside the hub: the greenlet dump and the blocking detector.
//!
//! The hub publishes a few facts in a [`Beacon`] that another thread may
//! read: a switch counter, the running greenlet's id and spawn site, and
//! whether the loop is idle in `poll`. Each resume costs three plain stores
//! (relaxed atomics compile to `mov`). The names of named greenlets are
//! published too, in a table locked once when such a greenlet is spawned
//! and once when it is reaped (an unnamed one costs nothing), so that a
//! report can name the greenlet. A watchdog thread, started by
//! [`BlockingDetector::start`], samples the beacon and reports a greenlet that
//! keeps the hub from switching for longer than a threshold, once per stall.

use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::hub::hub;
use crate::task::{GreenletId, WaitKind};

/// What the hub publishes for other threads. Written only by the hub thread.
#[derive(Debug)]
pub(crate) struct Beacon {
    /// Bumped at every resume and when main returns from the loop.
    pub(crate) switches: AtomicU64,
    /// Id of the greenlet last resumed (0 once control is back on main);
    /// while the loop itself runs (timers, reaping) it still names the
    /// greenlet that ran last.
    pub(crate) running: AtomicU64,
    /// Spawn site of that greenlet (null for main).
    pub(crate) site: AtomicPtr<Location<'static>>,
    /// True while the loop waits in `poll` (an idle hub is not blocked).
    pub(crate) polling: AtomicBool,
    /// False once the hub is gone: the watchdog stops.
    pub(crate) alive: AtomicBool,
    /// The running watchdog's generation; 0 when none.
    pub(crate) watchdog: AtomicU64,
    /// The names of the live named greenlets, by id.
    names: Mutex<HashMap<u64, Box<str>>>,
}

impl Beacon {
    pub(crate) fn new() -> Beacon {
        Beacon {
            switches: AtomicU64::new(0),
            running: AtomicU64::new(0),
            site: AtomicPtr::new(ptr::null_mut()),
            polling: AtomicBool::new(false),
            alive: AtomicBool::new(true),
            watchdog: AtomicU64::new(0),
            names: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes the name of greenlet `id`, spawned with one.
    pub(crate) fn named(&self, id: u64, name: &str) {
        self.lock_names().insert(id, name.into());
    }

    /// Forgets the name of greenlet `id` (reaped). Out of line: only named
    /// greenlets come here, and inlined it would weigh on every reap.
    #[cold]
    #[inline(never)]
    pub(crate) fn forget(&self, id: u64) {
        self.lock_names().remove(&id);
    }

    fn name_of(&self, id: u64) -> Option<String> {
        self.lock_names().get(&id).map(|n| n.to_string())
    }

    fn lock_names(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Box<str>>> {
        // Nothing panics under the lock: a poisoned one is still whole.
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that the hub switched to greenlet `id` spawned at `site`.
    #[inline(always)]
    pub(crate) fn running(&self, switches: u64, id: u64, site: &'static Location<'static>) {
        self.switches.store(switches, Ordering::Relaxed);
        self.running.store(id, Ordering::Relaxed);
        self.site.store(
            site as *const Location<'static> as *mut Location<'static>,
            Ordering::Relaxed,
        );
    }

    /// Records that control went back to main (or the loop).
    #[inline(always)]
    pub(crate) fn main(&self, switches: u64) {
        self.switches.store(switches, Ordering::Relaxed);
        self.running.store(0, Ordering::Relaxed);
        self.site.store(ptr::null_mut(), Ordering::Relaxed);
    }
}

/// A stall found by the blocking detector.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BlockingReport {
    /// The greenlet that kept the hub from switching (`#0`: main). A stall
    /// in the hub's own loop (a slow timer callback or error policy) is
    /// reported against the greenlet that ran last.
    pub greenlet: GreenletId,
    /// Its name, if it was spawned with one (`None` for main).
    pub name: Option<String>,
    /// Where it was spawned (`None` for main).
    pub spawned_at: Option<&'static Location<'static>>,
    /// How long the hub had not switched when the report was made (at least
    /// the threshold).
    pub blocked_for: Duration,
    /// The hub thread's name.
    pub thread: Option<String>,
}

impl fmt::Display for BlockingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sylvan: greenlet {} ", self.greenlet)?;
        if let Some(name) = &self.name {
            write!(f, "'{}' ", truncate(name, 64))?;
        }
        match self.spawned_at {
            Some(site) => write!(f, "(spawned at {site}) ")?,
            None => f.write_str("(main) ")?,
        }
        write!(f, "has blocked the hub")?;
        if let Some(t) = &self.thread {
            write!(f, " of thread '{t}'")?;
        }
        write!(
            f,
            " for {} ms without switching: a blocking call or a long computation that never yields",
            self.blocked_for.as_millis()
        )
    }
}

type ReportFn = Arc<dyn Fn(&BlockingReport) + Send + Sync>;

/// The opt-in blocking detector (like gevent's `max_blocking_time`): a
/// watchdog thread that notices when this thread's hub has not switched for
/// longer than a threshold, and reports which greenlet was running (id and
/// name), for how long, and its spawn site. An idle hub (waiting in `poll`) is never
/// reported. Its thread does not survive a `fork`: a child process that
/// wants one starts its own.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::time::Duration;
/// let detector = sylvan::BlockingDetector::start(Duration::from_millis(100));
/// // ... greenlets run; a stall of more than 100 ms is reported on stderr
/// // (or through the `log` crate when a logger takes it).
/// drop(detector); // stops the watchdog
/// ```
#[derive(Debug)]
pub struct BlockingDetector {
    beacon: Arc<Beacon>,
    generation: u64,
}

/// The default threshold: 100 ms.
pub const DEFAULT_BLOCKING_THRESHOLD: Duration = Duration::from_millis(100);

impl BlockingDetector {
    /// Starts watching this thread's hub; reports go to the `log` crate
    /// (target `sylvan`, warn level) when a logger takes them, else stderr.
    pub fn start(threshold: Duration) -> BlockingDetector {
        BlockingDetector::with_callback(threshold, |r| {
            crate::report(log::Level::Warn, format_args!("{r}"))
        })
    }

    /// Starts watching this thread's hub, handing each report to `f` (on
    /// the watchdog thread). Replaces a detector already running here.
    pub fn with_callback(
        threshold: Duration,
        f: impl Fn(&BlockingReport) + Send + Sync + 'static,
    ) -> BlockingDetector {
        let beacon = hub().beacon.clone();
        static GENERATION: AtomicU64 = AtomicU64::new(1);
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        beacon.watchdog.store(generation, Ordering::Release);
        let f: ReportFn = Arc::new(f);
        let watched = beacon.clone();
        let thread_name = thread::current().name().map(str::to_owned);
        let spawned = thread::Builder::new()
            .name("sylvan-watchdog".into())
            .spawn(move || watchdog(watched, generation, threshold, f, thread_name));
        if let Err(e) = spawned {
            stderr!("sylvan: cannot start the blocking detector's thread: {e}");
        }
        BlockingDetector { beacon, generation }
    }
}

impl Drop for BlockingDetector {
    fn drop(&mut self) {
        let _ = self.beacon.watchdog.compare_exchange(
            self.generation,
            0,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

fn watchdog(
    beacon: Arc<Beacon>,
    generation: u64,
    threshold: Duration,
    f: ReportFn,
    thread: Option<String>,
) {
    let tick = (threshold / 4).clamp(Duration::from_millis(1), Duration::from_millis(50));
    let mut last = beacon.switches.load(Ordering::Relaxed);
    let mut since = Instant::now();
    let mut reported = false;
    let lock = Mutex::new(());
    while beacon.alive.load(Ordering::Acquire)
        && beacon.watchdog.load(Ordering::Acquire) == generation
    {
        thread::sleep(tick);
        let now = beacon.switches.load(Ordering::Relaxed);
        if now != last || beacon.polling.load(Ordering::Relaxed) {
            last = now;
            since = Instant::now();
            reported = false;
            continue;
        }
        let stalled = since.elapsed();
        if stalled >= threshold && !reported {
            reported = true;
            let site = beacon.site.load(Ordering::Relaxed);
            let id = beacon.running.load(Ordering::Relaxed);
            let report = BlockingReport {
                greenlet: GreenletId(id),
                // Read after the id: a greenlet that died meanwhile (the
                // stall just ended) is reported without its name.
                name: beacon.name_of(id),
                // SAFETY: the hub only stores null or a `&'static Location`.
                spawned_at: unsafe { site.as_ref() },
                blocked_for: stalled,
                thread: thread.clone(),
            };
            let _serial = lock.lock();
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&report))) {
                sylvan_runtime::drop_payload(p);
            }
        }
    }
}

/// One greenlet as [`dump`](crate::dump) saw it.
#[derive(Debug, Clone)]
pub struct GreenletInfo {
    /// Its id.
    pub id: GreenletId,
    /// Its name.
    pub name: Option<String>,
    /// Lifecycle state: `created`, `scheduled`, `running`, `suspended`.
    pub state: &'static str,
    /// What it waits on (`nothing` when running or ready).
    pub wait: WaitKind,
    /// For a socket wait, the peer's address when it has one.
    pub peer: Option<std::net::SocketAddr>,
    /// How long it has waited, from the hub's coarse clock: the time a
    /// greenlet parked is read from a clock the loop updates at each turn
    /// (at least every [`POLL_EVERY`](crate::POLL_EVERY) switches), not at
    /// each park, which would cost a clock read per switch. So it can
    /// overstate by the time since the last turn, including a stall of the
    /// hub just before the greenlet parked.
    pub waiting_for: Option<Duration>,
    /// Whether a `Timeout` armed by it is pending.
    pub timeout_armed: bool,
    /// Where it was spawned. Main was not spawned: for it, the place in
    /// sylvan that makes main's record (of no use; look at `id` 0).
    pub spawned_at: &'static Location<'static>,
    /// Times the hub resumed it.
    pub switches: u64,
}

/// The live greenlets of this thread's hub, from [`dump`](crate::dump). Its `Display`
/// prints a table.
#[derive(Debug, Clone)]
pub struct Dump {
    /// One entry per live greenlet, main first, then by id.
    pub greenlets: Vec<GreenletInfo>,
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} greenlet(s) on this hub:", self.greenlets.len())?;
        writeln!(
            f,
            "{:>6}  {:<16} {:<10} {:<34} {:>9}  {:>8}  spawned at",
            "id", "name", "state", "waiting on", "since", "switches"
        )?;
        for g in &self.greenlets {
            let name = g.name.as_deref().unwrap_or("-");
            let mut wait = g.wait.to_string();
            if let Some(peer) = g.peer {
                wait.push_str(&format!(" ({peer})"));
            }
            if g.timeout_armed {
                wait.push_str(" (timeout armed)");
            }
            let since = g
                .waiting_for
                .map(|d| format!("{:.1?}", d))
                .unwrap_or_else(|| "-".into());
            writeln!(
                f,
                "{:>6}  {:<16} {:<10} {:<34} {:>9}  {:>8}  {}",
                g.id.to_string(),
                truncate(name, 16),
                g.state,
                truncate(&wait, 34),
                since,
                g.switches,
                // Main was not spawned: its record's site is sylvan's.
                if g.id.as_u64() == 0 {
                    &"-" as &dyn fmt::Display
                } else {
                    g.spawned_at
                }
            )?;
        }
        Ok(())
    }
}

/// The peer address of socket `fd`, for TCP and UDP sockets.
pub(crate) fn peer_of(fd: i32) -> Option<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss` and `len` are valid out-pointers of the sizes given.
    let r = unsafe {
        libc::getpeername(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return None;
    }
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel filled a sockaddr_in for AF_INET.
            let a: libc::sockaddr_in = unsafe { *(&ss as *const libc::sockaddr_storage).cast() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel filled a sockaddr_in6 for AF_INET6.
            let a: libc::sockaddr_in6 = unsafe { *(&ss as *const libc::sockaddr_storage).cast() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// `s` for a table cell: what `{:?}` escapes, escaped (control, invisible
/// and bidi characters: a new line must not start a row of its own, a
/// zero-width or direction-changing one must not shift or reorder the
/// columns), quotes and backslashes kept; cut to `n` characters with `~`.
fn truncate(s: &str, n: usize) -> String {
    let mut t = String::with_capacity(s.len());
    for c in s.chars() {
        let esc = c.escape_debug();
        if esc.len() > 1 && !matches!(c, '\'' | '"' | '\\') {
            t.extend(esc);
        } else {
            t.push(c);
        }
    }
    if t.chars().count() > n {
        t = t.chars().take(n - 1).collect();
        t.push('~');
    }
    t
}
