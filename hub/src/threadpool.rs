//! The blocking thread pool: [`spawn_blocking`] runs a closure on a bounded
//! pool of OS threads and parks only the calling greenlet.
//!
//! # Size
//!
//! One pool per process, [`DEFAULT_BLOCKING_THREADS`] threads at most
//! unless [`set_blocking_threads`] says otherwise. Threads start on demand
//! (a job finds no idle thread and the bound is not reached) and exit after
//! 10 s without work. Jobs beyond the bound wait in a FIFO queue.
//!
//! The default, 16, is sized for what the pool is for: short blocking calls
//! (name lookups, file reads, a library call that sleeps) that mostly wait
//! rather than compute, so throughput is bounded by threads, not CPU.
//! Measured with W7 (10,000 calls of a 100 µs sleep, which takes about
//! 160 µs here, from 1,000 greenlets on a 2-core VM): 10 threads (gevent's
//! default) give about 60,000 calls/s, 16 give 90,000-98,000 with a 1 ms
//! ticker's largest gap under 2 ms, 32 give about 185,000 but double the
//! threads competing with the hub for two cores (the ticker's gap grows
//! under load), and tokio's 512 stall the ticker for 24 ms while they
//! start. New threads are started one at a time and, after the first, by
//! the pool's own threads, so a burst of jobs costs the hub one thread
//! creation at most. CPU-heavy work wants about one thread per core:
//! [`set_blocking_threads`] changes the bound.
//!
//! # Completion
//!
//! A finished job sends its result through a [`oneshot`](crate::mpsc::oneshot),
//! which wakes the caller's hub through its `mio::Waker`. A caller killed (or
//! timed out) while waiting unwinds at once. Its job runs to completion on
//! its thread all the same, its result dropped there or by the unwinding
//! caller if it landed first (a panic of its destructor is then reported on
//! stderr, as a second panic during an unwind would abort), unless the job
//! was queued behind busy threads (every one of the [`blocking_threads`]
//! taken when it was submitted) and no thread had taken it yet: that one is
//! dropped unrun when its turn comes, as gevent's `apply`, killed while it
//! waits for a free worker, never submits its call. A job that
//! panics after its caller stopped waiting is reported by the pool thread
//! (through `log`, else on stderr), as gevent prints a worker's traceback:
//! nobody is left to resume the panic.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SendError;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::Duration;

use crate::hub::try_hub;
use crate::mpsc::oneshot;
use crate::task::WaitKind;

/// Where a panic happened and its backtrace, if captured.
type PanicSite = (String, Option<String>);

thread_local! {
    /// Set on the pool's own threads: a `spawn_blocking` there runs inline.
    static ON_POOL_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// On a pool thread running a job whose caller is a greenlet: the site
    /// of the job's panic, recorded by the panic hook instead of printed
    /// (the caller's greenlet reports the panic once, with this site).
    static JOB_PANIC_SITE: std::cell::RefCell<Option<Option<PanicSite>>> =
        const { std::cell::RefCell::new(None) };
}

/// Called by the panic hook: records the site and returns true when this
/// thread runs a job for a greenlet (see [`JOB_PANIC_SITE`]).
pub(crate) fn capture_job_panic(site: impl FnOnce() -> PanicSite) -> bool {
    JOB_PANIC_SITE
        .try_with(|slot| match slot.try_borrow_mut() {
            Ok(mut slot) if slot.is_some() => {
                *slot = Some(Some(site()));
                true
            }
            _ => false,
        })
        .unwrap_or(false)
}

/// Runs a job's body, capturing its panic's site when the caller is a
/// greenlet.
fn run_job<T>(for_greenlet: bool, f: impl FnOnce() -> T) -> (thread::Result<T>, Option<PanicSite>) {
    if !for_greenlet {
        // std's hook prints the panic with this thread's name; the caller
        // (main, or code outside any greenlet) gets the payload.
        return (panic::catch_unwind(AssertUnwindSafe(f)), None);
    }
    JOB_PANIC_SITE.with(|slot| *slot.borrow_mut() = Some(None));
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        crate::hook::sylvan_begin_short_backtrace(f)
    }));
    let site = JOB_PANIC_SITE.with(|slot| slot.borrow_mut().take().flatten());
    (r, site)
}

/// Reports the panic of a job whose greenlet stopped waiting for it (killed
/// or timed out) before it ended: the panic hook left the report to that
/// greenlet, which will never see it.
/// A kill or timeout payload (a `Timeout` the job armed on its own thread
/// and did not catch) is not a panic: it is only dropped, and an expired
/// timeout's drop says so itself.
#[cold]
fn report_orphaned_panic(payload: crate::Payload, site: Option<PanicSite>) {
    if sylvan_runtime::is_unwind_payload(&*payload) {
        sylvan_runtime::drop_payload(payload);
        return;
    }
    let message = sylvan_runtime::payload_message(&*payload);
    let (location, backtrace) = site.unwrap_or_default();
    let at = if location.is_empty() {
        String::new()
    } else {
        format!(" at {location}")
    };
    let trace = backtrace.map(|b| format!("\n{b}")).unwrap_or_default();
    crate::report(
        log::Level::Error,
        format_args!(
            "sylvan: a spawn_blocking job panicked{at} after the greenlet that called it \
             stopped waiting (killed or timed out): {message}{trace}"
        ),
    );
    sylvan_runtime::drop_payload(payload);
}

/// A job's result on the caller's side. A caller that unwinds (killed,
/// timed out, its thread exiting) after the result landed but before it
/// took it leaves a panic there that nobody else will report: the pool
/// thread saw its send succeed. Dropped, this reports it as
/// [`report_orphaned_panic`] does.
struct Landing<T> {
    rx: crate::mpsc::OneshotReceiver<(thread::Result<T>, Option<PanicSite>)>,
    for_greenlet: bool,
}

impl<T> Drop for Landing<T> {
    fn drop(&mut self) {
        // Closed and emptied at once: a result sent after this fails, and
        // the pool thread reports its panic itself.
        match self.rx.close_and_take() {
            Some((Err(payload), site)) if self.for_greenlet => report_orphaned_panic(payload, site),
            // std's hook printed it when the job panicked.
            Some((Err(payload), _)) => sylvan_runtime::drop_payload(payload),
            // Each value on its own, as a receiver drops what is left.
            Some((Ok(value), _)) => {
                crate::resume_or_report(crate::drop_each(Some(value)), "values left in a channel")
            }
            None => {}
        }
    }
}

/// The default bound on blocking-pool threads (see the module docs).
pub const DEFAULT_BLOCKING_THREADS: usize = 16;

/// An idle pool thread exits after this long without work.
const IDLE_EXIT: Duration = Duration::from_secs(10);

/// A queued job: called with whether it was admitted (see
/// [`Pool::submit`]).
type Job = Box<dyn FnOnce(bool) + Send>;

struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
    /// Jobs a thread took that have not said [`Pool::job_done`] yet. An
    /// atomic, so that a job ending takes no lock; raised under the lock
    /// as a thread takes a job, and read under it by [`Pool::submit`].
    running: AtomicUsize,
}

struct PoolState {
    /// Jobs waiting for a thread, each with whether it was admitted.
    queue: VecDeque<(Job, bool)>,
    /// Threads alive (starting ones included).
    threads: usize,
    /// Threads waiting for work.
    idle: usize,
    /// A thread is being started: the next one is started by it, not by the
    /// hub (see [`Pool::submit`]).
    starting: bool,
    /// [`forks`](crate::poll::forks) when the counts above were right. In a
    /// forked child they count the parent's threads, none of which exist
    /// here: the child's pool starts from none (its queue is kept: callers
    /// of the child wait for those jobs).
    forks: u64,
}

impl PoolState {
    /// Claims the start of one more thread when queued jobs outnumber the
    /// idle threads, the bound allows, and no start is in progress.
    fn claim_start(&mut self) -> bool {
        let grow = self.queue.len() > self.idle
            && self.threads < MAX_THREADS.load(Ordering::Relaxed)
            && !self.starting;
        if grow {
            self.threads += 1;
            self.starting = true;
        }
        grow
    }
}

static MAX_THREADS: AtomicUsize = AtomicUsize::new(DEFAULT_BLOCKING_THREADS);
static POOL: OnceLock<Pool> = OnceLock::new();

fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState {
            queue: VecDeque::new(),
            threads: 0,
            idle: 0,
            starting: false,
            forks: crate::poll::forks(),
        }),
        work: Condvar::new(),
        running: AtomicUsize::new(0),
    })
}

/// The pool's lock, for the fork handlers (`crate::poll`) to hold across a
/// `fork`: had a pool thread held it at that instant (it does between two
/// jobs), the child's copy would stay locked forever and its first
/// `spawn_blocking` would hang the hub.
pub(crate) fn lock_for_fork() -> Option<Box<dyn std::any::Any>> {
    POOL.get()
        .map(|pool| Box::new(pool.lock()) as Box<dyn std::any::Any>)
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Jobs run outside the lock and behind catch_unwind: the state is
        // consistent even if a thread panicked while holding it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a job. Wakes an idle thread if there is one; when jobs
    /// outnumber idle threads, starts one more thread, but only one at a
    /// time: a burst of jobs makes the hub start a single thread, and each
    /// new thread starts the next one itself, so thread creation (tens of
    /// microseconds each, more on a loaded machine) stays off the hub.
    ///
    /// A job is *admitted* when the pool has a thread for it, free or yet
    /// to start (fewer jobs running or queued than the bound): gevent's
    /// `apply` then submits its call at once, and it runs whatever its
    /// caller does next. One that waits for a busy thread to finish is
    /// not: gevent's caller waits for a worker before it submits.
    fn submit(&'static self, job: Job) {
        let mut st = self.lock();
        let forks = crate::poll::forks();
        if st.forks != forks {
            st.threads = 0;
            st.idle = 0;
            self.running.store(0, Ordering::Relaxed);
            st.starting = false;
            st.forks = forks;
        }
        let running = self.running.load(Ordering::Relaxed);
        let admitted = running + st.queue.len() < MAX_THREADS.load(Ordering::Relaxed);
        st.queue.push_back((job, admitted));
        let notify = st.idle > 0;
        let start = st.claim_start();
        drop(st);
        if notify {
            self.work.notify_one();
        }
        if start {
            self.start_thread();
        }
    }

    /// Called by each job once done, before its result wakes its caller:
    /// a call the caller makes next finds this job's room free, as
    /// gevent's caller finds its worker's slot released.
    fn job_done(&self) {
        // Saturating: a forked child starts the count from none again.
        let _ = self
            .running
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    fn start_thread(&'static self) {
        let spawned = thread::Builder::new()
            .name("sylvan-blocking".into())
            .spawn(move || self.work_loop());
        if let Err(e) = spawned {
            let mut st = self.lock();
            st.threads -= 1;
            st.starting = false;
            if st.threads == 0 {
                // Nobody could ever run the queued jobs: fail loudly rather
                // than leaving callers parked forever.
                drop(st);
                panic!("sylvan: cannot start a blocking-pool thread: {e}");
            }
            stderr!("sylvan: cannot start another blocking-pool thread: {e}");
        }
    }

    fn work_loop(&'static self) {
        ON_POOL_THREAD.with(|on| on.set(true));
        let mut st = self.lock();
        st.starting = false;
        loop {
            // Past a lowered bound, a thread leaves once its job is done,
            // even with jobs queued (the others run them).
            if st.threads > MAX_THREADS.load(Ordering::Relaxed) {
                st.threads -= 1;
                return;
            }
            if let Some((job, admitted)) = st.queue.pop_front() {
                self.running.fetch_add(1, Ordering::Relaxed);
                let start = st.claim_start();
                drop(st);
                if start {
                    self.start_thread();
                }
                // Jobs catch their own panics; this catches what escapes
                // them (an orphaned result whose destructor panics), so the
                // pool never loses a thread.
                if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| job(admitted))) {
                    stderr!("sylvan: a blocking-pool job panicked outside its caller's reach");
                    sylvan_runtime::drop_payload(p);
                }
                st = self.lock();
                continue;
            }
            st.idle += 1;
            let (guard, timeout) = self
                .work
                .wait_timeout(st, IDLE_EXIT)
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            st.idle -= 1;
            if timeout.timed_out() && st.queue.is_empty() {
                st.threads -= 1;
                return;
            }
        }
    }
}

/// Sets the most threads the blocking pool may run (process-wide). Lowering
/// it lets surplus threads exit once they finish their current job, even
/// while jobs are queued.
///
/// # Panics
///
/// When `threads` is zero.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// sylvan::set_blocking_threads(8);
/// assert_eq!(sylvan::blocking_threads(), 8);
/// sylvan::set_blocking_threads(sylvan::DEFAULT_BLOCKING_THREADS);
/// ```
pub fn set_blocking_threads(threads: usize) {
    assert!(
        threads > 0,
        "sylvan: the blocking pool needs at least one thread"
    );
    MAX_THREADS.store(threads, Ordering::Relaxed);
    let pool = pool();
    pool.work.notify_all();
    // A raised bound starts a thread for jobs already queued at once (that
    // thread starts the next, as in `submit`), instead of at the next
    // submit.
    let start = pool.lock().claim_start();
    if start {
        pool.start_thread();
    }
}

/// Jobs queued on the thread pool, not yet picked up by a thread (all hubs
/// of the process share the pool).
pub(crate) fn queued_jobs() -> usize {
    POOL.get().map_or(0, |p| {
        p.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .queue
            .len()
    })
}

/// The bound on blocking-pool threads (see [`set_blocking_threads`]).
pub fn blocking_threads() -> usize {
    MAX_THREADS.load(Ordering::Relaxed)
}

/// Runs `f` on the blocking thread pool and parks only the calling greenlet
/// until it returns; other greenlets run meanwhile.
///
/// Use it for calls that block the thread and cannot be made cooperative:
/// file IO, name lookups, compression, a C library. `f` runs on another OS
/// thread, so it must be `Send`; it must not use this hub's greenlets or
/// sockets.
///
/// A panic in `f` is caught on the pool thread and resumed here, in the
/// caller. If the caller is killed or its timeout expires while it waits, it
/// unwinds at once, and `f` still runs to the end on its thread, its result
/// dropped there (a panic of `f` then is reported by the pool thread, since
/// no caller is left to resume it). The exception is a call that found
/// every pool thread busy and waited in the queue: if no thread had taken
/// it when its caller left, `f` never runs (it is dropped, unrun, on the
/// pool thread whose turn it was), as gevent's `apply`, killed while it
/// waits for a free worker, never submits its call.
///
/// Called while the caller is already unwinding (from a destructor), `f` runs inline on the calling thread, since a greenlet
/// never switches out while it unwinds. Called from a job already on the
/// pool (directly, or through sylvan's off-thread name resolution), `f`
/// runs inline on that thread, as gevent's nested `apply` does: queueing it
/// behind the caller could wait forever on a full pool.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::time::Duration;
/// let ticks = sylvan::spawn(|| {
///     for _ in 0..5 { sylvan::sleep(Duration::from_millis(1)); }
/// });
/// // the hub keeps running `ticks` while a pool thread sleeps
/// let v = sylvan::spawn_blocking(|| { std::thread::sleep(Duration::from_millis(10)); 42 });
/// assert_eq!(v, 42);
/// ticks.join().unwrap();
/// ```
///
/// # Panics
///
/// Resumes `f`'s panic; panics if no pool thread can be started at all.
pub fn spawn_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    if std::thread::panicking() || ON_POOL_THREAD.with(|on| on.get()) {
        return f();
    }
    let (tx, rx) = oneshot();
    let for_greenlet = try_hub().is_some_and(|h| h.running_greenlet_core().is_some());
    pool().submit(Box::new(move |admitted| {
        // A job that waited for a busy thread, whose caller stopped waiting
        // (killed, timed out) before a thread took it, is dropped unrun, as
        // gevent's `apply`, killed while it waits for a free worker, never
        // submits its call.
        if !admitted && tx.is_closed() {
            pool().job_done();
            // Its captures are dropped here: a panic of theirs is reported
            // as that of a job whose caller left (std's hook prints it for
            // a caller that is not a greenlet).
            if let (Err(payload), site) = run_job(for_greenlet, move || drop(f)) {
                if for_greenlet {
                    report_orphaned_panic(payload, site);
                } else {
                    sylvan_runtime::drop_payload(payload);
                }
            }
            return;
        }
        let r = run_job(for_greenlet, f);
        pool().job_done();
        // The caller may have been killed or timed out: its receiver is
        // gone, and the result is dropped here. A panic the hook left for
        // that caller to report is reported here instead.
        if let Err(SendError((Err(payload), site))) = tx.send(r)
            && for_greenlet
        {
            report_orphaned_panic(payload, site);
        }
    }));
    let landing = Landing { rx, for_greenlet };
    match landing.rx.recv_ref_as(WaitKind::ThreadPool) {
        Ok((Ok(v), _)) => v,
        Ok((Err(payload), site)) => {
            // Resumed without the hook: the greenlet's report gets the site
            // where the job panicked.
            if let (Some((location, backtrace)), Some(core)) =
                (site, try_hub().and_then(|h| h.running_greenlet_core()))
            {
                let message = sylvan_runtime::payload_message(&*payload);
                core.record_panic_site(message, location, backtrace);
            }
            panic::resume_unwind(payload)
        }
        Err(_) => panic!("sylvan: a blocking-pool job was dropped without running"),
    }
}
