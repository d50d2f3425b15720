//! The per-thread hub: ready queue, timers, the poll loop, park and wake.
//!
//! One hub per OS thread, created on first use. The thread's own stack is the
//! *main greenlet*. The hub loop runs on main's stack, inside main's
//! [`Hub::park`]: spawned greenlets only ever run while main is blocked, as in
//! gevent. The hub alone picks who runs next, in the ready queue's order. On
//! sylvan's own switch a greenlet that parks when the loop would resume the
//! next ready greenlet at once (no turn of timers and IO due, the next one
//! neither main nor fresh) makes that pick itself, in `Hub::relay_target`,
//! and switches straight to it: one switch instead of two (greenlet -> loop
//! -> greenlet), the same order and the same turns. The loop resumes with
//! `Core::resume_relay` and learns from `current` which greenlet came back.
//!
//! Hot-path rules (see DESIGN.md): the loop resumes greenlets inline at the
//! top level of [`Hub::run_loop`]; every blocking call reaches the switch
//! through [`Hub::park`]; the ready queue is a ring of slab keys; nothing on
//! the yield path allocates, hashes or touches a `RefCell`.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use slab::Slab;
use sylvan_runtime::overflow::{self, AltStackGuard};
use sylvan_runtime::stack::{DEFAULT_POOL_LIMIT, Stack, StackPool};
use sylvan_runtime::{Core, Outcome, Resumed, State, Throw, throw};

use crate::error::{Error, ErrorPolicy, Failure};
use crate::inspect::{Beacon, Dump, GreenletInfo};
use crate::poll::{Poller, WAKER_TOKEN};
use crate::record::{Body, ErasedRecord, Record, RecordCache};
pub(crate) use crate::remote::Remote;
use crate::ring::Ring;
use crate::task::{GreenletId, Link, Task, TaskInner, WaitKind};
use crate::timer::{TimerId, Timers};

mod death;
mod stats;
mod teardown;

/// A slab key of the hub's task table.
pub(crate) type Key = u32;
/// The main greenlet's key: it is always the first entry.
pub(crate) const MAIN: Key = 0;
/// `current` while the loop itself runs (between two resumes).
const ON_HUB: Key = u32::MAX;

/// Marks, on the ready queue, the key of a greenlet that has never run and
/// whose body still waits in its record for a stack. Keys stay below it, so
/// a marked key misses the table: the loop's lookup finds it with no extra
/// test.
const FRESH: Key = 1 << 31;

/// Signal handlers' failures waiting to be raised in main, at the most
/// (see [`Hub::raise_in_main`]): handlers run only while main is parked,
/// and main takes one per blocking call, so a handler that fails at each
/// signal must not grow the list without end. Past it, a failure is only
/// reported.
const MAIN_RAISE_LIMIT: usize = 64;
/// The loop fires timers and polls IO at least once every this many resumes,
/// so greenlets that only yield never starve timers or sockets.
pub const POLL_EVERY: u32 = 64;

/// Names a greenlet for a wake-up: its slab key and its unique id, so a wake
/// aimed at a dead greenlet whose key was reused is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TaskRef {
    pub(crate) key: Key,
    pub(crate) id: u64,
}

/// Why a parked greenlet was resumed (kept in its record until it runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Not woken yet.
    None,
    /// What it waited for happened (or it only yielded).
    Ready,
    /// Its park deadline passed.
    TimedOut,
    /// Unwind it with this throw when it lands.
    Throw(Throw),
    /// Main only: nothing can ever wake it.
    Deadlock,
}

/// Main's [`wait_all`](crate::wait_all), as the loop sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitAll {
    /// Main is not in `wait_all`.
    Off,
    /// Main waits for the hub to run out of work, until the deadline.
    Until(Option<Instant>),
    /// The hub ran out of work: main was woken for it.
    Done,
    /// The deadline passed first: main was woken for it.
    Expired,
}

/// What [`Hub::park`] reports to its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woke {
    /// Woken by whoever it waited for.
    Ready,
    /// The deadline passed first.
    TimedOut,
    /// Did not park: the caller is unwinding and must not switch.
    Refused,
}

/// What a timer does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerAction {
    /// End a `sleep`.
    Wake(TaskRef),
    /// End a `park` with a deadline: the greenlet sees [`Woke::TimedOut`].
    Expire(TaskRef),
    /// A `Timeout` expired: unwind the greenlet that armed it.
    Throw(TaskRef, u64),
    /// `spawn_later`: put the greenlet on the ready queue.
    Start(TaskRef),
    /// Deliver the next deferred throw of a greenlet that has taken the
    /// throw before it.
    Deferred(TaskRef),
}

struct Entry {
    task: NonNull<Task>,
    _owner: ErasedRecord,
}

/// Counters readable at any time with [`stats`](crate::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubStats {
    /// Greenlets alive now (spawned, not dead), main excluded.
    pub alive: usize,
    /// Greenlets spawned on this hub so far.
    pub spawned: u64,
    /// Times the loop resumed a greenlet (returning to main included).
    pub switches: u64,
    /// Times the loop polled for IO (blocking or not).
    pub polls: u64,
    /// Timers armed now.
    pub timers: usize,
    /// Entries on the ready queue now (a greenlet cancelled while queued
    /// keeps its entry until the loop reaches it).
    pub ready: usize,
    /// Jobs waiting on the (process-wide) thread pool for a thread,
    /// including those whose callers stopped waiting: such a job is
    /// dropped unrun when a thread takes it (see `spawn_blocking`).
    pub thread_pool_queue: usize,
    /// Stacks mapped so far.
    pub stacks_mapped: u64,
    /// Stacks unmapped because the pool was past its limit (when one was
    /// given back, or the limit was lowered).
    pub stacks_unmapped: u64,
    /// Spawns served from the stack pool, not by mapping a new stack.
    pub stacks_reused: u64,
    /// Stacks sitting in the pool now, including those reserved for spawned
    /// greenlets that have not run yet (a greenlet takes its stack when it
    /// first runs).
    pub stacks_pooled: usize,
}

/// The per-thread hub. Reached through [`hub`]; never moves (boxed).
pub(crate) struct Hub {
    tasks: UnsafeCell<Slab<Entry>>,
    ready: UnsafeCell<Ring>,
    current: Cell<Key>,
    /// The record of the running greenlet (main's while main or the loop
    /// runs), so `park` needs no table lookup. Points into a record the
    /// table keeps alive while that greenlet runs.
    cur: Cell<*const Task>,
    /// `switches` when the loop last took a turn (fired timers, polled).
    turn_mark: Cell<u64>,
    pub(crate) timers: RefCell<Timers<TimerAction>>,
    poller: RefCell<Poller>,
    /// The IO table: registered sources, their readiness and waiters.
    pub(crate) io: crate::io::Io,
    pub(crate) pool: RefCell<StackPool>,
    next_id: Cell<u64>,
    /// Unique in the process: tells this hub from a later one of the same
    /// thread (the late hub of a thread-local destructor), whose tables
    /// the objects of this one must not touch.
    pub(crate) uid: u64,
    /// The thread this hub serves.
    pub(crate) thread: std::thread::ThreadId,
    /// Wake sources besides timers and the ready queue: IO waiters,
    /// thread-pool jobs, cross-thread receivers.
    refs: Cell<usize>,
    /// The part of `refs` held by callback sources (signal registrations):
    /// they can wake main, so a wait on them is no deadlock, but they are
    /// not work that [`wait_all`](crate::wait_all) waits for (gevent's
    /// signal watchers are unreferenced).
    callback_refs: Cell<usize>,
    /// `wait_all` found the work run out and polled once more for signals
    /// already delivered; cleared when a turn finds work again and when a
    /// `wait_all` begins.
    pub(crate) last_poll_done: Cell<bool>,
    pub(crate) remote: Arc<Remote>,
    /// Greenlets in `idle()`, by ticket (in the order they came): leaving
    /// is O(log n), not a scan.
    idle_waiters: RefCell<std::collections::BTreeMap<u64, TaskRef>>,
    idle_tickets: Cell<u64>,
    /// The `iwait` iterators alive on this thread, which their
    /// registrations notify (see `wait.rs`).
    pub(crate) wait_sets: RefCell<crate::wait::WaitSets>,
    /// Main's `wait_all`: its deadline is not a timer, so that it does not
    /// count as work left.
    pub(crate) wait_all: Cell<WaitAll>,
    /// Link callbacks running now: (callback greenlet id, id of the
    /// greenlet whose outcome it borrows), so that a `join` from inside
    /// one can tell it would wait for itself.
    pub(crate) link_runs: RefCell<Vec<(u64, u64)>>,
    pub(crate) policy: RefCell<ErrorPolicy>,
    /// Panics to raise in main, the first when it next runs, each of the
    /// others at a blocking call after (signal handlers' failures, as
    /// gevent raises a signal handler's exception in the main greenlet).
    main_raise: RefCell<VecDeque<crate::Payload>>,
    /// Main's body is over (teardown has begun): nothing more is raised
    /// in main, whose greenlet-locals' destructors may still block.
    main_over: Cell<bool>,
    closing: Cell<bool>,
    /// Set while code that must not switch runs (see [`NoSwitch`]): what
    /// it is, for the panic of a park made there.
    no_switch: Cell<bool>,
    /// What runs while `no_switch` is set.
    no_switch_inside: Cell<&'static str>,
    spawned: Cell<u64>,
    switches: Cell<u64>,
    polls: Cell<u64>,
    /// The coarse clock, in ns since `epoch`: read once per loop turn,
    /// stamped on parks (a word, so a park stamps it with one store).
    pub(crate) now: Cell<u64>,
    epoch: Instant,
    /// Facts published for the blocking detector's watchdog thread.
    pub(crate) beacon: Arc<Beacon>,
    /// Free task-record blocks, bounded like the stack pool.
    pub(crate) records: RecordCache,
    _main: Record<()>,
    _alt_stack: Option<AltStackGuard>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("current", &self.current.get())
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// The hub of this thread. Const-initialised with no destructor, so it
    /// can be read at any time, even while thread-locals are being destroyed.
    static HUB: Cell<*const Hub> = const { Cell::new(ptr::null()) };
    /// Owns the hub; its destructor tears the hub down at thread exit.
    static OWNER: RefCell<Option<HubOwner>> = const { RefCell::new(None) };
    /// Owns a hub created after `OWNER`'s was torn down: sylvan used from
    /// the destructor of a thread-local that outlived the hub (one first
    /// touched before the hub existed). First touched then, so its own
    /// destructor runs after that one and tears the late hub down in turn.
    static LATE_OWNER: RefCell<Option<HubOwner>> = const { RefCell::new(None) };
}

struct HubOwner(Option<Box<Hub>>);

impl Drop for HubOwner {
    fn drop(&mut self) {
        let Some(hub) = self.0.take() else { return };
        if hub.current.get() != MAIN {
            // Thread-locals are being destroyed while a greenlet (or the
            // loop) runs, on its stack: `std::process::exit` called from a
            // greenlet runs this thread's destructors before it exits. The
            // others cannot be unwound from here (main is suspended inside
            // the loop): the hub is leaked as it stands, and `HUB` keeps
            // pointing at it, and the process goes on exiting.
            std::mem::forget(hub);
            return;
        }
        hub.teardown();
        HUB.with(|h| h.set(ptr::null()));
    }
}

/// This thread's hub, created on first use.
///
/// The reference is valid until the thread's teardown finishes; sylvan's code
/// uses it within one call and never stores it.
#[inline]
pub(crate) fn hub() -> &'static Hub {
    let p = HUB.with(|h| h.get());
    if p.is_null() {
        return init_hub();
    }
    // SAFETY: a non-null HUB points into the Box owned by OWNER, which lives
    // until HubOwner::drop, and HUB is cleared right after that teardown
    // (or the Box is leaked there, and lives for good).
    unsafe { &*p }
}

/// This thread's hub if it is the one whose [`Hub::uid`] is `uid`: not once
/// that hub was torn down, nor a late hub made after it. For objects that
/// hold keys into a hub's tables.
#[inline]
pub(crate) fn hub_with_uid(uid: u64) -> Option<&'static Hub> {
    try_hub().filter(|h| h.uid == uid)
}

/// This thread's hub if it exists (no creation).
#[inline]
pub(crate) fn try_hub() -> Option<&'static Hub> {
    let p = HUB.with(|h| h.get());
    // SAFETY: as in `hub`.
    (!p.is_null()).then(|| unsafe { &*p })
}

#[cold]
#[inline(never)]
fn init_hub() -> &'static Hub {
    let hub = Box::new(
        Hub::new().unwrap_or_else(|e| panic!("sylvan: cannot create this thread's hub: {e}")),
    );
    let p: *const Hub = &*hub;
    let mut owner = Some(HubOwner(Some(hub)));
    if OWNER.try_with(|o| *o.borrow_mut() = owner.take()).is_err()
        && LATE_OWNER
            .try_with(|o| *o.borrow_mut() = owner.take())
            .is_err()
    {
        // Both owners are gone (a thread-local destructor running after
        // even the late hub's). Panicking here aborts the process, as any
        // panic in a thread-local destructor does; forget the hub rather
        // than tear it down from inside that panic.
        std::mem::forget(owner);
        panic!(
            "sylvan: used from a thread-local destructor after this thread's hub was torn down \
             twice; finish greenlet work before thread exit"
        );
    }
    HUB.with(|h| h.set(p));
    crate::hook::install();
    // SAFETY: `p` points into the Box now owned by OWNER (see `hub`).
    unsafe { &*p }
}

impl Hub {
    fn new() -> std::io::Result<Hub> {
        overflow::install_handler();
        let alt = overflow::ensure_alt_stack()?;
        let poller = Poller::new()?;
        let io = crate::io::Io::new(poller.registrar()?);
        let remote = Arc::new(Remote::new(poller.make_waker()?));
        let main = Record::new(None, TaskInner::<()>::new_main, None::<fn()>);
        let mut tasks = Slab::with_capacity(64);
        let key = tasks.insert(Entry {
            task: NonNull::from(&main.task),
            _owner: main.erased(),
        });
        debug_assert_eq!(key, MAIN as usize);
        main.task.core.set_state(State::Running);
        Ok(Hub {
            tasks: UnsafeCell::new(tasks),
            ready: UnsafeCell::new(Ring::with_capacity(64)),
            current: Cell::new(MAIN),
            cur: Cell::new(&main.task),
            turn_mark: Cell::new(0),
            timers: RefCell::new(Timers::new()),
            poller: RefCell::new(poller),
            io,
            pool: RefCell::new(StackPool::new(DEFAULT_POOL_LIMIT)),
            next_id: Cell::new(1),
            uid: {
                static UID: AtomicU64 = AtomicU64::new(1);
                UID.fetch_add(1, Ordering::Relaxed)
            },
            thread: std::thread::current().id(),
            refs: Cell::new(0),
            callback_refs: Cell::new(0),
            last_poll_done: Cell::new(false),
            remote,
            idle_waiters: RefCell::new(std::collections::BTreeMap::new()),
            idle_tickets: Cell::new(0),
            wait_sets: RefCell::new(crate::wait::WaitSets::default()),
            wait_all: Cell::new(WaitAll::Off),
            link_runs: RefCell::new(Vec::new()),
            policy: RefCell::new(ErrorPolicy::default()),
            main_raise: RefCell::new(VecDeque::new()),
            main_over: Cell::new(false),
            closing: Cell::new(false),
            no_switch: Cell::new(false),
            no_switch_inside: Cell::new(""),
            spawned: Cell::new(0),
            switches: Cell::new(0),
            polls: Cell::new(0),
            now: Cell::new(0),
            epoch: Instant::now(),
            beacon: Arc::new(Beacon::new()),
            records: RecordCache::new(DEFAULT_POOL_LIMIT),
            _main: main,
            _alt_stack: Some(alt),
        })
    }

    // ----- the task table and the ready queue -----------------------------

    /// The task at `key`.
    ///
    /// The returned reference is valid while the entry stays in the table;
    /// entries leave only in `reap`, for dead tasks, and in `teardown`'s
    /// final drain, which leaks the survivors' records.
    #[inline(always)]
    pub(crate) fn task(&self, key: Key) -> &Task {
        // SAFETY: the table is only mutated by `insert_task`, `reap` and
        // `teardown`'s drain, none of which runs while this short shared
        // access is live (they are not reentrant and call no user code
        // while the table is borrowed).
        let entry = unsafe { (*self.tasks.get()).get(key as usize) };
        let entry = entry.expect("sylvan: task key not in the hub's table");
        // SAFETY: `task` points into the record kept alive by `_owner`.
        unsafe { entry.task.as_ref() }
    }

    /// The live task named by `r`, or `None` if it died and left the table.
    #[inline]
    pub(crate) fn lookup(&self, r: TaskRef) -> Option<&Task> {
        // SAFETY: as in `task`.
        let entry = unsafe { (*self.tasks.get()).get(r.key as usize) }?;
        // SAFETY: as in `task`.
        let task = unsafe { entry.task.as_ref() };
        (task.id == r.id).then_some(task)
    }

    pub(crate) fn insert_task(&self, task: NonNull<Task>, owner: ErasedRecord) -> Key {
        // SAFETY: see `task`; no other reference into the table is live here.
        let key = unsafe {
            (*self.tasks.get()).insert(Entry {
                task,
                _owner: owner,
            })
        };
        u32::try_from(key)
            .ok()
            .filter(|&k| k < crate::wait::PROXY)
            .expect("sylvan: too many greenlets")
    }

    /// Removes a dead task's entry (dropping the table's reference to it),
    /// if the entry at `key` is still task `id`: user destructors run during
    /// a cancel may let the loop reap it first and reuse the key.
    fn reap(&self, key: Key, id: u64) {
        // SAFETY: see `task`; the entry's record is dropped after the table borrow
        // ends, so a destructor that reaches the hub finds it consistent.
        let entry = unsafe {
            let tasks = &mut *self.tasks.get();
            match tasks.get(key as usize) {
                Some(e) if e.task.as_ref().id == id => tasks.try_remove(key as usize),
                _ => None,
            }
        };
        if let Some(e) = &entry {
            // SAFETY: `task` points into the record kept alive by `_owner`.
            let task = unsafe { e.task.as_ref() };
            if task.name.is_some() {
                self.beacon.forget(id);
            }
        }
        // The last reference may be the table's (a detached greenlet): the
        // record then drops its value and unrun callbacks here.
        match entry {
            Some(e) if e._owner.is_last() => drop_caught(e, id),
            e => drop(e),
        }
    }

    /// A strong reference to the record at `key`, to keep it alive across
    /// code that may reap it (user destructors that reach the loop).
    fn hold(&self, key: Key) -> Option<ErasedRecord> {
        // SAFETY: as in `task`.
        unsafe { (*self.tasks.get()).get(key as usize) }.map(|e| e._owner.clone())
    }

    #[inline(always)]
    fn push_ready(&self, key: Key) {
        // SAFETY: short, non-reentrant access to the ring (a push may allocate,
        // which never calls back into the hub).
        unsafe { (*self.ready.get()).push_back(key) }
    }

    #[inline(always)]
    fn pop_ready(&self) -> Option<Key> {
        // SAFETY: as in `push_ready`.
        unsafe { (*self.ready.get()).pop_front() }
    }

    #[inline(always)]
    fn ready_len(&self) -> usize {
        // SAFETY: as in `push_ready`.
        unsafe { (*self.ready.get()).len() }
    }

    pub(crate) fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// A timeout id unique in the process, not only on this hub: a timeout
    /// unwind re-raised on another thread (a `spawn_blocking` job's) must
    /// not pass for one of that thread's own timeouts.
    pub(crate) fn next_timeout_id(&self) -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn count_spawn(&self) {
        self.spawned.set(self.spawned.get() + 1);
    }

    // ----- who runs --------------------------------------------------------

    /// The running greenlet (main when called from the hub loop itself).
    #[inline]
    pub(crate) fn current(&self) -> TaskRef {
        match self.current.get() {
            // Main's id is 0.
            ON_HUB => TaskRef { key: MAIN, id: 0 },
            key => TaskRef {
                key,
                // SAFETY: while a greenlet (or main) runs, `cur` points to
                // its record, which the table keeps alive.
                id: unsafe { (*self.cur.get()).id },
            },
        }
    }

    #[inline]
    pub(crate) fn current_task(&self) -> &Task {
        match self.current.get() {
            ON_HUB => self.task(MAIN),
            k => self.task(k),
        }
    }

    /// The core of the running spawned greenlet (not main, not the loop).
    pub(crate) fn running_greenlet_core(&self) -> Option<&sylvan_runtime::Core> {
        match self.current.get() {
            ON_HUB | MAIN => None,
            k => Some(&self.task(k).core),
        }
    }

    /// True while the loop itself (a raw callback) runs.
    pub(crate) fn on_hub(&self) -> bool {
        self.current.get() == ON_HUB
    }

    /// Puts a created (never scheduled) greenlet on the ready queue, its key
    /// marked [`FRESH`] while its body still waits for a stack.
    pub(crate) fn schedule_new(&self, task: &Task) {
        debug_assert_eq!(task.core.state(), State::Created);
        task.core.set_state(State::Scheduled);
        let fresh = if task.has_body_waiting() { FRESH } else { 0 };
        self.push_ready(task.key.get() | fresh);
    }

    /// Wakes a parked greenlet with `why`.
    ///
    /// A greenlet already woken keeps its first reason, except that a throw
    /// (kill, timeout) overrides a plain wake-up: the exception is delivered
    /// even if the greenlet was about to run anyway. (gevent queues a kill
    /// behind the pending wake-up instead, so it lands at the next blocking
    /// call; the README lists this among the differences.) A throw
    /// that finds another throw queued is deferred, not lost: it is thrown
    /// after that one (see [`defer_throw`](Self::defer_throw)). Waking a
    /// running or dead greenlet does nothing.
    #[inline]
    pub(crate) fn wake(&self, r: TaskRef, why: Wake) {
        if let Some(task) = self.lookup(r) {
            self.wake_found(r, task, why);
        } else if r.key >= crate::wait::PROXY {
            // A registration of `iwait`, not a greenlet: off the hot path.
            self.notify_proxy(r);
        }
    }

    /// Kept out of line, so that [`wake`](Self::wake) inlines into the
    /// primitives' wake-up paths as it did before `iwait` proxies.
    #[cold]
    #[inline(never)]
    fn notify_proxy(&self, r: TaskRef) {
        crate::wait::notify(self, r);
    }

    /// [`wake`](Self::wake) for a caller that has looked `r` up already.
    #[inline]
    fn wake_found(&self, r: TaskRef, task: &Task, why: Wake) {
        match task.core.state() {
            State::Suspended => {
                task.wake.set(why);
                task.core.set_state(State::Scheduled);
                self.push_ready(r.key);
            }
            State::Scheduled if task.started.get() => match (why, task.wake.get()) {
                (Wake::Throw(t), Wake::Throw(queued)) => self.defer_throw(task, queued, t),
                (Wake::Throw(_), _) => task.wake.set(why),
                _ => {}
            },
            _ => {}
        }
    }

    /// Keeps `t` for after `queued`, the throw the greenlet will take when it
    /// next runs. Each timeout is thrown once: one equal to a throw already
    /// queued or deferred is dropped. Each kill is thrown, as gevent throws
    /// one `GreenletExit` per `kill`: a greenlet that catches the first (and
    /// does not re-raise it, against the docs) still gets the second. When
    /// the greenlet takes a throw with
    /// others deferred behind it, a timer due at once delivers the next one
    /// at the following turn of the loop, by then the greenlet has caught the
    /// first (a `with_timeout`) or died of it; a deferred timeout whose
    /// `Timeout` is dropped meanwhile is withdrawn.
    #[cold]
    fn defer_throw(&self, task: &Task, queued: Throw, t: Throw) {
        let kill = t == Throw::Kill;
        if t == queued && !kill {
            return;
        }
        let mut deferred = task.deferred.borrow_mut();
        if kill || !deferred.contains(&t) {
            deferred.push(t);
        }
    }

    /// Arms a timer due at once that hands `task` its next deferred throw,
    /// if it has one (see [`deliver_deferred`](Self::deliver_deferred)).
    fn deliver_deferred_soon(&self, task: &Task) {
        if !task.deferred.borrow().is_empty() {
            self.timers
                .borrow_mut()
                .insert(Instant::now(), TimerAction::Deferred(task.as_ref()));
        }
    }

    /// The timer of [`take_throw`]: wakes the greenlet with
    /// its next deferred throw.
    fn deliver_deferred(&self, r: TaskRef) {
        let Some(task) = self.lookup(r) else { return };
        let next = {
            let mut deferred = task.deferred.borrow_mut();
            (!deferred.is_empty()).then(|| deferred.remove(0))
        };
        if let Some(t) = next {
            self.wake_found(r, task, Wake::Throw(t));
        }
    }

    /// Withdraws a deferred throw of `timeout_id` from `owner` (its
    /// `Timeout` was dropped: a cancelled timeout never fires later).
    ///
    /// The throw may also be the one queued for the owner's next run (it
    /// fired, and another greenlet dropped the `Timeout` before the owner
    /// ran): then the next deferred throw takes its place, or, with none,
    /// a plain wake-up, which every park treats as possibly spurious (it
    /// re-checks what it waits for and parks again).
    pub(crate) fn withdraw_deferred_timeout(&self, owner: TaskRef, timeout_id: u64) {
        let Some(task) = self.lookup(owner) else {
            return;
        };
        let own = Throw::Timeout(timeout_id);
        let mut deferred = task.deferred.borrow_mut();
        deferred.retain(|t| *t != own);
        if task.core.state() == State::Scheduled && task.wake.get() == Wake::Throw(own) {
            let next = (!deferred.is_empty()).then(|| deferred.remove(0));
            task.wake.set(next.map_or(Wake::Ready, Wake::Throw));
        }
    }

    // ----- parking ---------------------------------------------------------

    /// Parks the current greenlet until something wakes it, the deadline
    /// passes, or it is killed (then this unwinds with the throw).
    ///
    /// Every blocking call in sylvan reaches the switch through here.
    /// With `requeue` the greenlet puts itself back on the ready queue first
    /// (a yield).
    #[inline(never)]
    pub(crate) fn park(&self, what: WaitKind, requeue: bool) -> Woke {
        let key = self.current.get();
        if key == ON_HUB || self.no_switch.get() {
            self.cannot_park(key, what);
        }
        if std::thread::panicking() {
            return Woke::Refused;
        }
        // SAFETY: `cur` points to the record of the running greenlet (`key`),
        // which the table keeps alive at least until that greenlet is dead.
        let task = unsafe { &*self.cur.get() };
        // `waiting` and `since` are read only while it is parked, so they
        // are not cleared on wake-up.
        task.waiting.set(what);
        task.since.set(self.now.get());
        if requeue {
            // `wake` stays `None`, which reads as a plain wake-up; a throw
            // that arrives while it is queued replaces it.
            task.core.set_state(State::Scheduled);
            self.push_ready(key);
        } else {
            task.core.set_state(State::Suspended);
        }
        if key == MAIN {
            self.run_loop();
            if !self.main_raise.borrow().is_empty() {
                self.raise_in_main_now(task);
            }
        } else if let Some(next) = self.relay_target(key) {
            // SAFETY: we are the running greenlet `key`, on its own stack,
            // resumed by the loop with `resume_relay` (`relay_target` checks
            // that the loop runs); `next` is another greenlet, started (it
            // is in the table) and scheduled, so neither running nor dead;
            // no RefCell of the hub is borrowed.
            unsafe { task.core.switch_to(&next.core) };
        } else {
            // SAFETY: we are the running greenlet `key`, on its own stack.
            unsafe { task.core.suspend() };
        }
        match task.wake.replace(Wake::None) {
            Wake::Ready | Wake::None => Woke::Ready,
            Wake::TimedOut => Woke::TimedOut,
            Wake::Throw(t) => take_throw(t),
            Wake::Deadlock => deadlock(what),
        }
    }

    /// Unwinds main, back from the loop, with the panic
    /// [`raise_in_main`](Self::raise_in_main) left for it. A plain wake-up
    /// is dropped: as after a kill, the guards of what main waited on pass
    /// on what they were handed. A throw queued for main (a timeout that
    /// fired in the same turn) is not: it goes first in line of the
    /// deferred throws, which a timer due at once delivers, as
    /// [`take_throw`] does.
    #[cold]
    #[inline(never)]
    fn raise_in_main_now(&self, main: &Task) -> ! {
        if let Wake::Throw(t) = main.wake.replace(Wake::None) {
            main.deferred.borrow_mut().insert(0, t);
        }
        self.deliver_deferred_soon(main);
        let (payload, more) = {
            let mut raise = self.main_raise.borrow_mut();
            (
                raise.pop_front().expect("a panic to raise"),
                !raise.is_empty(),
            )
        };
        if more {
            // The next one at main's next blocking call: a timer due at
            // once wakes it there, as gevent's loop throws each of its
            // queued exceptions into main in turn.
            let main = TaskRef { key: MAIN, id: 0 };
            self.timers
                .borrow_mut()
                .insert(Instant::now(), TimerAction::Wake(main));
        }
        std::panic::resume_unwind(payload)
    }

    /// Raises `payload` in main at its current blocking call, which then
    /// unwinds with it (no panic message: the error policy reported the
    /// failure). Several are raised in turn, one per blocking call of
    /// main; past [`MAIN_RAISE_LIMIT`] waiting, more are dropped (each was
    /// reported).
    pub(crate) fn raise_in_main(&self, payload: crate::Payload) {
        let waiting = self.main_raise.borrow().len();
        if self.closing.get() || self.main_over.get() || waiting >= MAIN_RAISE_LIMIT {
            sylvan_runtime::drop_payload(payload);
            return;
        }
        self.main_raise.borrow_mut().push_back(payload);
        if waiting == 0 {
            self.wake(TaskRef { key: MAIN, id: 0 }, Wake::Ready);
        }
    }

    #[cold]
    #[inline(never)]
    fn cannot_park(&self, key: Key, what: WaitKind) -> ! {
        if key == ON_HUB {
            blocking_on_hub(what);
        }
        let inside = self.no_switch_inside.get();
        panic!("sylvan: {inside} must not block, but it waited for {what}")
    }

    /// Forbids parking until the guard drops: a park made meanwhile panics
    /// with a message naming `inside` (code run while a primitive is
    /// borrowed, where a switch would let other greenlets find it so).
    pub(crate) fn no_switch(&self, inside: &'static str) -> NoSwitch<'_> {
        NoSwitch {
            hub: self,
            before: self.no_switch.replace(true),
            inside: self.no_switch_inside.replace(inside),
        }
    }

    /// [`park`](Self::park) with an optional deadline.
    pub(crate) fn park_until(&self, what: WaitKind, deadline: Option<Instant>) -> Woke {
        let Some(deadline) = deadline else {
            return self.park(what, false);
        };
        if std::thread::panicking() {
            return Woke::Refused;
        }
        let me = self.current();
        let timer = TimerGuard::arm(self, deadline, TimerAction::Expire(me));
        let woke = self.park(what, false);
        drop(timer);
        woke
    }

    // ----- the loop --------------------------------------------------------

    /// Runs greenlets until main is woken. Called only from main's `park`.
    fn run_loop(&self) {
        self.current.set(ON_HUB);
        loop {
            let key = match self.pop_ready() {
                Some(k)
                    if self.switches.get().wrapping_sub(self.turn_mark.get())
                        < u64::from(POLL_EVERY) =>
                {
                    k
                }
                popped => {
                    if let Some(k) = popped {
                        // Put it back in front: timers and IO go first.
                        // SAFETY: as in `push_ready`.
                        unsafe { (*self.ready.get()).push_front(k) };
                    }
                    self.turn();
                    continue;
                }
            };
            if key == MAIN {
                let n = self.switches.get() + 1;
                self.switches.set(n);
                self.current.set(MAIN);
                let main = self.task(MAIN);
                self.cur.set(main);
                main.core.set_state(State::Running);
                self.beacon.main(n);
                return;
            }
            // SAFETY: as in `task`.
            let entry = unsafe { (*self.tasks.get()).get(key as usize) };
            let (key, task) = match entry {
                // SAFETY: `task` points into the record kept alive by `_owner`.
                Some(entry) => (key, unsafe { entry.task.as_ref() }),
                // Only a key marked `FRESH` is not in the table: a greenlet
                // that has never run. No test on the hot path finds it.
                None => self.bind(key),
            };
            if task.core.state() != State::Scheduled {
                // Cancelled while it waited on the queue.
                self.reap(key, task.id);
                continue;
            }
            self.enter(key, task);
            // SAFETY: we are on main's stack in the loop, `task` was started
            // (scheduled tasks always have a body) and is not dead; no
            // RefCell of the hub is borrowed here.
            let finished = unsafe { task.core.resume_relay() };
            // Greenlets may have passed control among themselves
            // (`relay_target`): the one that came back is the current one.
            let key = self.current.replace(ON_HUB);
            if finished {
                // SAFETY: `cur` points to the record of greenlet `key`, which
                // the table keeps until `finish` reaps it.
                unsafe { (*self.cur.get()).core.set_state(State::Dead) };
                self.finish(key);
            }
        }
    }

    /// The greenlet that the running greenlet `me`, about to park, can
    /// switch to directly, without going through the loop, and makes it the
    /// current one: the one the loop would resume next, when the loop would
    /// resume it at once. That is the next ready greenlet when no turn
    /// (timers, IO) is due before it, it is not main (which the loop
    /// returns to) nor `me`, it is in the table (a key marked `FRESH` is
    /// not: the loop gives it its stack at its first run; a greenlet with a
    /// stack of its own, from `Builder::stack_size`, may be entered here for
    /// its first run) and it is still scheduled (a cancelled one is reaped
    /// by the loop). `None` leaves it all to the loop: park suspends.
    ///
    /// Not at teardown, which resumes greenlets itself (with `resume`, not
    /// `resume_relay`), nor on the corosensei switch, which cannot.
    #[inline(always)]
    fn relay_target(&self, me: Key) -> Option<&Task> {
        if !Core::CAN_SWITCH_TO
            || self.switches.get().wrapping_sub(self.turn_mark.get()) >= u64::from(POLL_EVERY)
            || self.closing.get()
        {
            return None;
        }
        // SAFETY: as in `push_ready`.
        let ready = unsafe { &mut *self.ready.get() };
        let key = ready.front()?;
        if key == MAIN || key == me {
            return None;
        }
        // SAFETY: as in `task`. A fresh key (never run) is not in the table.
        let entry = unsafe { (*self.tasks.get()).get(key as usize) }?;
        // SAFETY: `task` points into the record kept alive by `_owner`.
        let task = unsafe { entry.task.as_ref() };
        if task.core.state() != State::Scheduled {
            return None;
        }
        ready.pop_front();
        self.enter(key, task);
        Some(task)
    }

    /// Counts a switch into greenlet `key` (`task`), tells the beacon and
    /// makes it the current one: what the loop and the relay do just before
    /// they switch to it.
    #[inline(always)]
    fn enter(&self, key: Key, task: &Task) {
        let n = self.switches.get() + 1;
        self.switches.set(n);
        task.switches.set(task.switches.get() + 1);
        self.beacon.running(n, task.id, task.site);
        self.current.set(key);
        self.cur.set(task);
    }

    /// `t` on the coarse clock's scale.
    pub(crate) fn stamp(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Readies a greenlet popped for its first run (its key marked
    /// [`FRESH`]): gives it its stack, the one on top of the pool (reserved
    /// at spawn), and returns its key and record. A greenlet cancelled while
    /// it waited has no body left (the cancel dropped it); the loop then
    /// finds it dead and reaps it, as any other.
    #[cold]
    #[inline(never)]
    fn bind(&self, key: Key) -> (Key, &Task) {
        assert!(key & FRESH != 0, "sylvan: key {key} not in the hub's table");
        let key = key & !FRESH;
        let task = self.task(key);
        if let Some(body) = task.body.take() {
            let stack = self.pool.borrow_mut().take_reserved();
            // SAFETY: the table holds the record until its body has finished;
            // the body was still in the record, so the core is unstarted.
            unsafe { self.start_body(task, body, stack) };
        }
        (key, task)
    }

    /// Places `task`'s body on `stack`, naming the stack's owner for the
    /// overflow handler.
    ///
    /// # Safety
    ///
    /// As [`Body::start`]; `body` is `task`'s.
    pub(crate) unsafe fn start_body(&self, task: &Task, body: Body, stack: Stack) {
        // SAFETY: the name lives in the task record, which outlives the body
        // (the table keeps the record alive until the greenlet is dead and
        // the stack is back in the pool, where the next `set_owner` replaces
        // it).
        unsafe { stack.set_owner(task.id, task.name.as_deref()) };
        // SAFETY: per this function's contract.
        unsafe { body.start(stack) };
    }

    /// One turn of housekeeping: fire due timers, poll IO (without blocking
    /// when greenlets are ready), wake idle waiters, detect deadlock.
    #[cold]
    #[inline(never)]
    fn turn(&self) {
        self.turn_mark.set(self.switches.get());
        let now = Instant::now();
        self.now.set(self.stamp(now));
        self.fire_timers(now);
        self.expire_wait_all(now);
        if self.ready_len() > 0 {
            if self.refs.get() > 0 || self.remote.pending.load(Ordering::Acquire) {
                self.poll(Some(Duration::ZERO));
            }
            return;
        }
        // Nothing is ready.
        if !self.idle_waiters.borrow().is_empty() {
            // Idle waiters run only when nothing else is pending, as
            // gevent's idle watchers: IO and other threads' work first, or
            // a greenlet looping on `idle` would starve them.
            if self.refs.get() > 0 || self.remote.pending.load(Ordering::Acquire) {
                self.poll(Some(Duration::ZERO));
                if self.ready_len() > 0 {
                    return;
                }
            }
            let idle = std::mem::take(&mut *self.idle_waiters.borrow_mut());
            for r in idle.into_values() {
                self.wake(r, Wake::Ready);
            }
            return;
        }
        let next = self.timers.borrow().next_deadline();
        let work = next.is_some()
            || self.refs.get() > self.callback_refs.get()
            || self.remote.keepalive.load(Ordering::Acquire) > 0
            || self.remote.pending.load(Ordering::Acquire);
        let main = TaskRef { key: MAIN, id: 0 };
        if work {
            self.last_poll_done.set(false);
        } else if let WaitAll::Until(_) = self.wait_all.get() {
            if self.refs.get() > 0 && !self.last_poll_done.replace(true) {
                // Only signal registrations are left: a signal already
                // delivered is handled before `wait_all` returns, as
                // gevent's loop polls once more before it exits. Once per
                // running out of work: a handler that raises its own
                // signal again must not hold `wait_all` for ever.
                self.poll(Some(Duration::ZERO));
                if self.ready_len() > 0 {
                    return;
                }
            }
            // What main waits for in `wait_all`: the end of the work.
            self.wait_all.set(WaitAll::Done);
            self.wake(main, Wake::Ready);
            return;
        }
        if !work && self.refs.get() == 0 {
            self.wake(main, Wake::Deadlock);
            return;
        }
        let mut timeout = next.map(|d| d.saturating_duration_since(now));
        if let WaitAll::Until(Some(d)) = self.wait_all.get() {
            let left = d.saturating_duration_since(now);
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
        self.beacon.polling.store(true, Ordering::Relaxed);
        self.poll(timeout);
        self.beacon.polling.store(false, Ordering::Relaxed);
        let now = Instant::now();
        self.now.set(self.stamp(now));
        self.fire_timers(now);
        self.expire_wait_all(now);
    }

    /// Wakes main from a `wait_all` whose deadline has passed.
    fn expire_wait_all(&self, now: Instant) {
        if let WaitAll::Until(Some(d)) = self.wait_all.get()
            && now >= d
        {
            self.wait_all.set(WaitAll::Expired);
            self.wake(TaskRef { key: MAIN, id: 0 }, Wake::TimedOut);
        }
    }

    fn poll(&self, timeout: Option<Duration>) {
        if self.poller.borrow().forked()
            && let Err(e) = self.after_fork()
        {
            panic!("sylvan: making the forked child's poller failed: {e}");
        }
        self.polls.set(self.polls.get() + 1);
        let polled_at = self.now.get();
        let mut remote = false;
        let result = self.poller.borrow_mut().poll(timeout, |ready| {
            if ready.token == WAKER_TOKEN.0 {
                remote = true;
            } else {
                self.io.dispatch(self, ready);
            }
        });
        match result {
            Ok(complete) => self.io.polled(complete, polled_at),
            Err(e) => panic!("sylvan: polling for IO failed: {e}"),
        }
        if remote || self.remote.pending.load(Ordering::Acquire) {
            self.run_remote();
        }
    }

    /// In a child forked since this hub's poller was made, whose epoll is
    /// then the parent's too: gives the hub an epoll and a waker of its own
    /// and registers its sources there again, as gevent's `reinit` does
    /// after a fork. The parent's registrations are left alone. Greenlets
    /// parked on IO in the child wake when their sockets are ready, as the
    /// parent's do (both processes then read the same sockets, as with any
    /// descriptor shared across a fork). Called before the first poll or
    /// registration after the fork.
    #[cold]
    #[inline(never)]
    pub(crate) fn after_fork(&self) -> std::io::Result<()> {
        let mut poller = self.poller.borrow_mut();
        if !poller.forked() {
            return Ok(());
        }
        let (waker, registrar) = poller.reinit()?;
        self.remote.set_waker(waker);
        drop(poller);
        // A job queued just before the fork woke the parent's hub, and left
        // `pending` set, so that no later job wakes this one: the first poll
        // returns at once and drains the queue, clearing it.
        self.remote.wake();
        self.io.reinit(self, registrar);
        Ok(())
    }

    /// Runs the jobs other threads queued: each spawns or wakes greenlets.
    fn run_remote(&self) {
        for job in self.remote.take_jobs() {
            // Jobs are sylvan's own closures (spawn a greenlet, wake one); a
            // panic in one is reported and must not unwind through the loop.
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)) {
                stderr!(
                    "sylvan: a cross-thread job panicked on the hub: {}",
                    sylvan_runtime::payload_message(&*p)
                );
                sylvan_runtime::drop_payload(p);
            }
        }
    }

    fn fire_timers(&self, now: Instant) {
        loop {
            let action = self.timers.borrow_mut().pop_due(now);
            let Some(action) = action else { break };
            match action {
                TimerAction::Wake(r) => {
                    // A sleeper's stack has gone cold: start fetching its
                    // context now, while the ready queue drains.
                    if let Some(task) = self.lookup(r) {
                        task.core.prefetch_context();
                        self.wake_found(r, task, Wake::Ready);
                    }
                }
                TimerAction::Expire(r) => self.wake(r, Wake::TimedOut),
                TimerAction::Throw(r, id) => {
                    if let Some(task) = self.lookup(r) {
                        task.timeouts.set(task.timeouts.get().saturating_sub(1));
                        self.wake_found(r, task, Wake::Throw(Throw::Timeout(id)));
                    }
                }
                TimerAction::Deferred(r) => self.deliver_deferred(r),
                TimerAction::Start(r) => {
                    if let Some(task) = self.lookup(r) {
                        task.start_timer.set(None);
                        if task.core.state() == State::Created {
                            self.schedule_new(task);
                        }
                    }
                }
            }
        }
    }

    /// Adds or drops a callback source's wake source (see
    /// `callback_refs`).
    pub(crate) fn add_callback_ref(&self, n: isize) {
        self.add_ref(n);
        self.callback_refs
            .set(self.callback_refs.get().wrapping_add_signed(n));
    }

    /// Adds or drops a wake source that is not a timer (IO waiters,
    /// thread-pool jobs, cross-thread receivers).
    pub(crate) fn add_ref(&self, n: isize) {
        self.refs.set(
            self.refs
                .get()
                .checked_add_signed(n)
                .expect("sylvan: wake-source count underflow"),
        );
    }

    /// Registers `r` to be woken when the loop runs out of ready
    /// greenlets; the ticket names the registration.
    pub(crate) fn add_idle_waiter(&self, r: TaskRef) -> u64 {
        let ticket = self.idle_tickets.get();
        self.idle_tickets.set(ticket + 1);
        self.idle_waiters.borrow_mut().insert(ticket, r);
        ticket
    }

    pub(crate) fn remove_idle_waiter(&self, ticket: u64) {
        self.idle_waiters.borrow_mut().remove(&ticket);
    }

    /// True while `ticket` is registered and the loop has not yet woken it for
    /// being idle.
    pub(crate) fn is_idle_waiter(&self, ticket: u64) -> bool {
        self.idle_waiters.borrow().contains_key(&ticket)
    }
}

/// Arms a timer and cancels it when dropped (on wake-up or unwind alike).
pub(crate) struct TimerGuard<'h> {
    hub: &'h Hub,
    id: TimerId,
}

impl<'h> TimerGuard<'h> {
    pub(crate) fn arm(hub: &'h Hub, deadline: Instant, action: TimerAction) -> TimerGuard<'h> {
        let id = hub.timers.borrow_mut().insert(deadline, action);
        TimerGuard { hub, id }
    }
}

impl Drop for TimerGuard<'_> {
    fn drop(&mut self) {
        self.hub.timers.borrow_mut().cancel(self.id);
    }
}

/// See [`Hub::no_switch`].
pub(crate) struct NoSwitch<'h> {
    hub: &'h Hub,
    before: bool,
    inside: &'static str,
}

impl Drop for NoSwitch<'_> {
    fn drop(&mut self) {
        self.hub.no_switch.set(self.before);
        self.hub.no_switch_inside.set(self.inside);
    }
}

/// Drops `v`, which may run user destructors (what a greenlet `id` left
/// behind: its unjoined value, captures of callbacks that will not run),
/// catching a panic there: it is reported and stops, because the loop and
/// the greenlet that happens to be running must not unwind for it. A
/// destructor that blocks (a `kill`, a `join`) panics when the loop runs
/// it, and is reported the same way; what it did before blocking (the
/// kill thrown) stands.
#[cold]
#[inline(never)]
fn drop_caught<T>(v: T, id: u64) {
    crate::report_panic(
        crate::drop_each([v]),
        format_args!(
            "what greenlet {} left behind (its value or a link callback that did not run)",
            GreenletId(id)
        ),
    );
}

#[cold]
#[inline(never)]
fn blocking_on_hub(what: WaitKind) -> ! {
    panic!(
        "sylvan: blocking call ({what}) made from the hub itself: inside a raw link callback, a \
         cross-thread job or an ErrorPolicy::Custom function; such code must not block: spawn \
         a greenlet for it instead"
    )
}

/// Throws `t` into the running greenlet (from `park`, once it is resumed),
/// first arranging the delivery of its next deferred throw, if any. A free
/// function reaching the hub through its thread-local: `park` then keeps no
/// hub pointer alive across its switch.
#[cold]
#[inline(never)]
fn take_throw(t: Throw) -> ! {
    let hub = hub();
    // SAFETY: as in `park`: `cur` is the running greenlet's record.
    let task = unsafe { &*hub.cur.get() };
    hub.deliver_deferred_soon(task);
    throw(t)
}

#[cold]
#[inline(never)]
fn deadlock(what: WaitKind) -> ! {
    // The panic's location is in sylvan; main's own call is in the backtrace.
    let hint = if crate::hook::backtraces_asked() {
        ""
    } else {
        "; run with RUST_BACKTRACE=1 to see where main blocked"
    };
    panic!(
        "sylvan: would block forever: main is waiting on {what}, but no greenlet is ready, no timer \
         is pending and no IO or other thread can wake this hub{}{hint}",
        parked_summary()
    )
}

/// Names the greenlets parked besides main, for the deadlock message: what
/// each waits on and where it was spawned (the first few; `dump` lists all).
fn parked_summary() -> String {
    const SHOWN: usize = 4;
    let others: Vec<_> = crate::dump()
        .greenlets
        .into_iter()
        .filter(|g| g.id.as_u64() != 0)
        .collect();
    if others.is_empty() {
        return String::new();
    }
    let mut s = format!(" ({} other greenlet(s) parked:", others.len());
    for g in others.iter().take(SHOWN) {
        s.push_str(&format!(" {}", g.id));
        if let Some(name) = &g.name {
            s.push_str(&format!(" '{name}'"));
        }
        s.push_str(&format!(" on {} (spawned at {});", g.wait, g.spawned_at));
    }
    if others.len() > SHOWN {
        s.push_str(" ...; `sylvan::dump()` lists them all");
    }
    if s.ends_with(';') {
        s.pop();
    }
    s.push(')');
    s
}
