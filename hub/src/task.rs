//! Greenlets: spawning, the `Greenlet<T>` handle, join, kill and links.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::panic::Location;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use sylvan_runtime::stack::DEFAULT_STACK_SIZE;
use sylvan_runtime::{Core, Outcome as CoreOutcome, State, Throw, throw};

use crate::error::{Error, Panic, Survivors};
use crate::hub::{Hub, TaskRef, TimerAction, Wake, Woke, hub};
use crate::record::{Body, Record};

/// A greenlet's id, unique on its hub for the life of the thread. Main is
/// `#0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GreenletId(pub(crate) u64);

impl GreenletId {
    /// The number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for GreenletId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a parked greenlet waits on (for error messages and dumps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitKind {
    /// Not parked.
    Nothing,
    /// A yield: back on the ready queue.
    Yield,
    /// `sleep`.
    Sleep,
    /// `join`/`wait` on this greenlet.
    Join(GreenletId),
    /// `kill` waiting for this greenlet to die.
    Kill(GreenletId),
    /// `idle`.
    Idle,
    /// A sync primitive (event, queue, lock...), named.
    Sync(&'static str),
    /// Socket readiness: the operation (`read`, `write`, `accept`,
    /// `connect`...) and the descriptor.
    Io {
        /// The operation.
        op: &'static str,
        /// The socket's file descriptor.
        fd: i32,
    },
    /// A thread-pool job.
    ThreadPool,
    /// `join` of this dead greenlet, waiting for its link callbacks, which
    /// borrow its outcome, to finish.
    LinkCallbacks(GreenletId),
    /// [`wait_all`](crate::wait_all): the hub running out of work.
    AllDone,
}

impl fmt::Display for WaitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitKind::Nothing => f.write_str("nothing"),
            WaitKind::Yield => f.write_str("a yield"),
            WaitKind::Sleep => f.write_str("a sleep"),
            WaitKind::Join(id) => write!(f, "the join of greenlet {id}"),
            WaitKind::Kill(id) => write!(f, "the death of killed greenlet {id}"),
            WaitKind::Idle => f.write_str("the hub becoming idle"),
            WaitKind::AllDone => f.write_str("the hub running out of work"),
            WaitKind::Sync(what) => f.write_str(what),
            WaitKind::Io { op, fd } => write!(f, "socket {op} on fd {fd}"),
            WaitKind::ThreadPool => f.write_str("a thread-pool job"),
            WaitKind::LinkCallbacks(id) => write!(
                f,
                "the link callbacks of greenlet {id}, which is dead (join returns once its \
                 callbacks, which borrow its outcome, have finished; one of them is blocked)"
            ),
        }
    }
}

/// When a link callback runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum When {
    Always,
    Value,
    Exception,
}

impl When {
    pub(crate) fn matches(self, outcome: CoreOutcome) -> bool {
        match self {
            When::Always => true,
            When::Value => outcome == CoreOutcome::Returned,
            When::Exception => matches!(outcome, CoreOutcome::Panicked | CoreOutcome::TimedOut(_)),
        }
    }
}

pub(crate) enum Link {
    /// A parked joiner (or killer, or waiter): woken on death.
    Waiter(TaskRef),
    /// A callback, run in a fresh greenlet on death.
    Callback { when: When, f: Box<dyn FnOnce()> },
    /// A waiter that left (timed out or unwound): a tombstone, so that the
    /// places of the links after it, which their waiters hold, stay put.
    Gone,
}

/// Registers `me` as a waiter on `task`'s death; the place to pass to
/// [`remove_waiter`].
pub(crate) fn add_waiter(task: &Task, me: TaskRef) -> usize {
    let mut links = task.links.borrow_mut();
    links.push(Link::Waiter(me));
    links.len() - 1
}

/// Unregisters a waiter that leaves without being woken, in O(1) when its
/// place still holds it: the entry becomes a tombstone (trailing ones are
/// popped), so the places of the others stay valid. Where `unlink_all`
/// moved it (or death took the links), it is looked for.
pub(crate) fn remove_waiter(task: &Task, me: TaskRef, place: usize) {
    let mut links = task.links.borrow_mut();
    let is_me = |l: &Link| matches!(l, Link::Waiter(r) if *r == me);
    let at = match links.get(place) {
        Some(l) if is_me(l) => Some(place),
        _ => links.iter().position(is_me),
    };
    if let Some(i) = at {
        links[i] = Link::Gone;
        while matches!(links.last(), Some(Link::Gone)) {
            links.pop();
        }
    }
}

/// The hub's record of one greenlet (type-erased part).
pub(crate) struct Task {
    pub(crate) core: Core,
    pub(crate) id: u64,
    pub(crate) key: Cell<u32>,
    pub(crate) name: Option<Box<str>>,
    pub(crate) site: &'static Location<'static>,
    pub(crate) wake: Cell<Wake>,
    pub(crate) waiting: Cell<WaitKind>,
    /// Its body has begun.
    pub(crate) started: Cell<bool>,
    pub(crate) links: RefCell<Vec<Link>>,
    /// Sequence numbers of callbacks registered so far / cut by `unlink_all`.
    pub(crate) link_seq: Cell<u64>,
    pub(crate) unlinked_upto: Cell<u64>,
    /// Link callbacks registered and not yet finished (or dropped): they may
    /// borrow the outcome, so `join` waits for them.
    pub(crate) borrowers: Cell<u32>,
    pub(crate) borrow_waiters: RefCell<Vec<TaskRef>>,
    /// `link`/`link_exception` callbacks registered (for the error policy).
    pub(crate) observers: Cell<u32>,
    /// Its failure needs no report any more: the error policy handled it
    /// at death, a `link`/`link_exception` callback ran with it, or a
    /// callback dropped unrun reported it. Never reported twice. (A `join`
    /// takes the failure out: nothing is left to report.)
    pub(crate) failure_settled: Cell<bool>,
    /// A panic that ends it is raised in main too (a signal handler's).
    pub(crate) raise_in_main: Cell<bool>,
    /// Boxed: rare, and the record stays small.
    pub(crate) failure: RefCell<Option<Box<Error>>>,
    pub(crate) start_timer: Cell<Option<crate::timer::TimerId>>,
    /// When it parked, from the hub's coarse clock.
    pub(crate) since: Cell<u64>,
    /// Times the hub resumed it.
    pub(crate) switches: Cell<u64>,
    /// `Timeout`s armed by it and still pending.
    pub(crate) timeouts: Cell<u32>,
    /// Throws that arrived while another throw was already queued for it (a
    /// kill behind a timeout, nested timeouts due in one turn), in arrival
    /// order: each is delivered after the one before it (see
    /// `Hub::defer_throw`). Empty (no allocation) but in that rare case.
    pub(crate) deferred: RefCell<Vec<Throw>>,
    /// Its body, while it waits in the record for a stack (until the
    /// greenlet first runs or is cancelled).
    pub(crate) body: Cell<Option<Body>>,
    /// Its greenlet-local values (empty, no allocation, unless it used
    /// one).
    pub(crate) locals: crate::local::Locals,
}

impl Task {
    fn new(id: u64, name: Option<Box<str>>, site: &'static Location<'static>, now: u64) -> Task {
        Task {
            core: Core::new(),
            id,
            key: Cell::new(0),
            name,
            site,
            wake: Cell::new(Wake::None),
            waiting: Cell::new(WaitKind::Nothing),
            started: Cell::new(false),
            links: RefCell::new(Vec::new()),
            link_seq: Cell::new(0),
            unlinked_upto: Cell::new(0),
            borrowers: Cell::new(0),
            borrow_waiters: RefCell::new(Vec::new()),
            observers: Cell::new(0),
            failure_settled: Cell::new(false),
            raise_in_main: Cell::new(false),
            failure: RefCell::new(None),
            start_timer: Cell::new(None),
            since: Cell::new(now),
            switches: Cell::new(0),
            timeouts: Cell::new(0),
            deferred: RefCell::new(Vec::new()),
            body: Cell::new(None),
            locals: Default::default(),
        }
    }

    pub(crate) fn as_ref(&self) -> TaskRef {
        TaskRef {
            key: self.key.get(),
            id: self.id,
        }
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.core.state() == State::Dead
    }

    /// Whether its body still waits in the record for a stack.
    pub(crate) fn has_body_waiting(&self) -> bool {
        self.body.get().is_some()
    }
}

/// A task record and the slot its body's value lands in.
pub(crate) struct TaskInner<T> {
    pub(crate) task: Task,
    value: RefCell<Option<T>>,
}

impl TaskInner<()> {
    pub(crate) fn new_main() -> TaskInner<()> {
        let inner = TaskInner::new(Task::new(0, Some("main".into()), Location::caller(), 0));
        // Main runs from the start: a throw (a timeout armed by main) reaches
        // it even while it waits on the ready queue.
        inner.task.started.set(true);
        inner
    }
}

impl<T> TaskInner<T> {
    pub(crate) fn new(task: Task) -> TaskInner<T> {
        TaskInner {
            task,
            value: RefCell::new(None),
        }
    }

    /// Stores the body's value (once, as the body returns).
    pub(crate) fn set_value(&self, value: T) {
        *self.value.borrow_mut() = Some(value);
    }
}

/// How a greenlet ended, as seen by [`Greenlet::link`] callbacks.
#[derive(Debug)]
pub enum Outcome<'a, T> {
    /// It returned this value.
    Returned(&'a T),
    /// It panicked.
    Panicked(&'a Panic),
    /// It was killed (a normal exit for links, as in gevent).
    Killed,
    /// A timeout expired inside it and ended it.
    TimedOut,
}

impl<T> TaskInner<T> {
    fn with_outcome<R>(&self, f: impl FnOnce(&Outcome<'_, T>) -> R) -> R {
        match self.task.core.outcome() {
            CoreOutcome::Returned => {
                let v = self.value.borrow();
                f(&Outcome::Returned(
                    v.as_ref().expect("a returned greenlet has a value"),
                ))
            }
            CoreOutcome::Panicked => {
                let e = self.task.failure.borrow();
                match e.as_deref().and_then(Error::panic) {
                    Some(p) => f(&Outcome::Panicked(p)),
                    None => f(&Outcome::Killed),
                }
            }
            CoreOutcome::TimedOut(_) => f(&Outcome::TimedOut),
            CoreOutcome::Killed | CoreOutcome::Pending => f(&Outcome::Killed),
        }
    }
}

/// A handle to a spawned greenlet.
///
/// Not `Clone`: dropping it detaches the greenlet (it runs on), and
/// [`join`](Greenlet::join) consumes it to take the value. Not `Send`: a
/// greenlet lives on its hub's thread.
///
/// ```compile_fail
/// let g = sylvan_hub::spawn(|| 1);
/// std::thread::spawn(move || g.join()); // Greenlet is !Send
/// ```
pub struct Greenlet<T: 'static> {
    inner: Record<T>,
}

impl<T> fmt::Debug for Greenlet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.inner.task;
        f.debug_struct("Greenlet")
            .field("id", &GreenletId(t.id))
            .field("name", &t.name)
            .field("state", &t.core.state())
            .finish()
    }
}

/// Configures a greenlet before spawning it: its name and stack size.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// let g = sylvan::Builder::new().name("fetch").stack_size(64 << 10).spawn(|| 7).unwrap();
/// assert_eq!(g.name(), Some("fetch"));
/// assert_eq!(g.join().unwrap(), 7);
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with no name and the default stack size
    /// ([`DEFAULT_STACK_SIZE`]).
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the greenlet (shown in failure reports, the overflow message and
    /// dumps).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Sets the usable stack size in bytes; rounded up to whole pages, and to
    /// at least [`MIN_STACK_SIZE`](sylvan_runtime::stack::MIN_STACK_SIZE).
    /// Past [`MAX_STACK_SIZE`](sylvan_runtime::stack::MAX_STACK_SIZE) (1 TiB)
    /// [`spawn`](Self::spawn) fails with `InvalidInput`.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns the greenlet: it is scheduled and runs when the current
    /// greenlet (or main) blocks.
    ///
    /// # Errors
    ///
    /// When no stack can be mapped, for example because the kernel's
    /// `vm.max_map_count` limit is reached (the message names it).
    #[track_caller]
    pub fn spawn<T: 'static>(self, f: impl FnOnce() -> T + 'static) -> io::Result<Greenlet<T>> {
        self.spawn_at(Location::caller(), f)
    }

    /// [`spawn`](Self::spawn) with the spawn site given: for sylvan's own
    /// spawners (pool members, server handlers), which name their caller's
    /// site, not their own.
    pub(crate) fn spawn_at<T: 'static>(
        self,
        site: &'static Location<'static>,
        f: impl FnOnce() -> T + 'static,
    ) -> io::Result<Greenlet<T>> {
        spawn_task(self.name, self.stack_size, site, None, f)
    }

    /// Like [`spawn`](Builder::spawn), but the greenlet is scheduled only
    /// after `delay`.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Builder::spawn).
    #[track_caller]
    pub fn spawn_later<T: 'static>(
        self,
        delay: Duration,
        f: impl FnOnce() -> T + 'static,
    ) -> io::Result<Greenlet<T>> {
        spawn_task(
            self.name,
            self.stack_size,
            Location::caller(),
            Some(delay),
            f,
        )
    }
}

fn spawn_task<T: 'static>(
    name: Option<String>,
    stack_size: Option<usize>,
    site: &'static Location<'static>,
    delay: Option<Duration>,
    f: impl FnOnce() -> T + 'static,
) -> io::Result<Greenlet<T>> {
    let hub = hub();
    let inner = Record::new(
        Some(&hub.records),
        || {
            // The hub's coarse clock: a clock read per spawn costs more than
            // the rest of the record's setup.
            TaskInner::new(Task::new(
                hub.next_id(),
                name.map(String::into_boxed_str),
                site,
                hub.now.get(),
            ))
        },
        Some(f),
    );
    // A greenlet of the default size takes its stack when it first runs,
    // from the top of the pool (see `StackPool::reserve`); the reservation
    // makes a failure to map one this call's error (the record, body
    // included, is then dropped).
    let size = stack_size.unwrap_or(DEFAULT_STACK_SIZE);
    let stack = if size == DEFAULT_STACK_SIZE {
        hub.pool.borrow_mut().reserve()?;
        None
    } else {
        Some(hub.pool.borrow_mut().get(size)?)
    };
    let task = &inner.task;
    let key = hub.insert_task(NonNull::from(task), inner.erased());
    task.key.set(key);
    if let Some(name) = &task.name {
        hub.beacon.named(task.id, name);
    }
    match stack {
        // SAFETY: the table holds the record until its body has finished;
        // the body is fresh and the core unstarted.
        Some(stack) => unsafe { hub.start_body(task, inner.body(), stack) },
        None => task.body.set(Some(inner.body())),
    }
    hub.count_spawn();
    match delay {
        None => hub.schedule_new(task),
        Some(d) => {
            let id = hub.timers.borrow_mut().insert(
                crate::time::instant_after(d),
                TimerAction::Start(task.as_ref()),
            );
            task.start_timer.set(Some(id));
        }
    }
    Ok(Greenlet { inner })
}

/// Spawns `f` in a new greenlet. It starts when the current greenlet (or
/// main) blocks; greenlets start in the order they were spawned.
///
/// # Panics
///
/// When no stack can be mapped (see [`Builder::spawn`] for the error
/// instead).
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// let g = sylvan::spawn(|| 6 * 7);
/// assert_eq!(g.join().unwrap(), 42);
/// ```
#[track_caller]
pub fn spawn<T: 'static>(f: impl FnOnce() -> T + 'static) -> Greenlet<T> {
    spawn_task(None, None, Location::caller(), None, f).unwrap_or_else(|e| spawn_failed(e))
}

/// The panic of [`spawn`] and of the pools' spawning calls when no stack
/// can be mapped.
#[cold]
#[track_caller]
pub(crate) fn spawn_failed(e: io::Error) -> ! {
    panic!("sylvan: spawn failed: {e}")
}

/// Spawns `f` to start after `delay`.
///
/// # Panics
///
/// As [`spawn`].
#[track_caller]
pub fn spawn_later<T: 'static>(delay: Duration, f: impl FnOnce() -> T + 'static) -> Greenlet<T> {
    spawn_task(None, None, Location::caller(), Some(delay), f)
        .unwrap_or_else(|e| panic!("sylvan: spawn_later failed: {e}"))
}

/// Spawns a link callback from the hub. Failures to get a stack are
/// reported; the callback is then dropped (its guard settles bookkeeping).
pub(crate) fn spawn_link_callback(hub: &Hub, task: &Task, f: Box<dyn FnOnce()>) {
    let _ = hub;
    if let Err(e) = spawn_task(Some("link".to_owned()), None, task.site, None, f) {
        stderr!(
            "sylvan: cannot run a link callback of greenlet {}: {e}",
            GreenletId(task.id)
        );
    }
}

/// Marks the current greenlet as running a link callback of greenlet
/// `of` (see `Hub::link_runs`) until dropped.
struct LinkRun {
    me: u64,
    of: u64,
}

impl LinkRun {
    fn enter(of: u64) -> LinkRun {
        let hub = hub();
        let me = hub.current().id;
        hub.link_runs.borrow_mut().push((me, of));
        LinkRun { me, of }
    }
}

impl Drop for LinkRun {
    fn drop(&mut self) {
        if let Some(hub) = crate::hub::try_hub() {
            let mut runs = hub.link_runs.borrow_mut();
            if let Some(i) = runs.iter().position(|&r| r == (self.me, self.of)) {
                runs.swap_remove(i);
            }
        }
    }
}

/// Decrements the borrower count of a task when a link callback is done
/// (run, skipped or dropped), and wakes joiners waiting on it.
struct BorrowGuard<T: 'static>(Record<T>);

impl<T: 'static> Drop for BorrowGuard<T> {
    fn drop(&mut self) {
        let t = &self.0.task;
        let n = t.borrowers.get() - 1;
        t.borrowers.set(n);
        if n == 0 {
            let waiters = std::mem::take(&mut *t.borrow_waiters.borrow_mut());
            if let Some(hub) = crate::hub::try_hub() {
                for w in waiters {
                    hub.wake(w, Wake::Ready);
                }
            }
        }
    }
}

/// Travels with a `link`/`link_exception` callback, which made its
/// greenlet's failure count as observed (`ErrorPolicy::IgnoreObserved`
/// then does not report it). Dropped with a callback that never ran (the
/// hub shut down, at thread exit, before the callback's greenlet started;
/// no stack for it), it reports the failure after all, so that it is not
/// lost.
struct Unobserved<T: 'static>(Option<Record<T>>);

impl<T: 'static> Drop for Unobserved<T> {
    fn drop(&mut self) {
        if let (Some(rec), Some(hub)) = (self.0.take(), crate::hub::try_hub()) {
            hub.report_unobserved(&rec.task);
        }
    }
}

/// Removes a parked waiter's link if it is still registered (timed out or
/// unwound), so it leaves no trace.
struct WaiterGuard<'a> {
    task: &'a Task,
    me: TaskRef,
    place: usize,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        let me = self.me;
        remove_waiter(self.task, me, self.place);
        self.task.borrow_waiters.borrow_mut().retain(|r| *r != me);
    }
}

/// Reports the failure a `join` leaves behind when it ends without taking
/// it: the joiner was killed or timed out while it waited (a thread exit
/// kills it, say), or it could not wait (it ran while unwinding, or on the
/// hub). Under
/// [`ErrorPolicy::IgnoreObserved`](crate::ErrorPolicy::IgnoreObserved) the
/// failure was left to this `join`, and nothing else would print it,
/// unless a link callback is still to come: it either runs with the
/// failure (settling it) or, dropped unrun, reports it.
struct UntakenFailure<'a> {
    hub: &'a Hub,
    task: &'a Task,
}

impl Drop for UntakenFailure<'_> {
    fn drop(&mut self) {
        let task = self.task;
        let untaken = task.is_dead()
            && !task.failure_settled.get()
            && task.borrowers.get() == 0
            && task.failure.try_borrow().is_ok_and(|f| f.is_some());
        if untaken {
            self.hub.report_unobserved(task);
        }
    }
}

impl<T: 'static> Greenlet<T> {
    pub(crate) fn task(&self) -> &Task {
        &self.inner.task
    }

    /// Waits until the greenlet is dead and returns its value.
    ///
    /// If link callbacks that may borrow the outcome are still running, waits
    /// for them too (they see the value before `join` takes it). gevent's
    /// `join` returns as soon as the greenlet is dead; here a callback that
    /// sleeps (a supervisor's back-off) delays `join` by as much.
    /// [`wait`](Greenlet::wait) does not wait for callbacks.
    ///
    /// # Errors
    ///
    /// [`Error::Killed`], [`Error::Panicked`] or [`Error::TimedOut`] by how
    /// it died; [`Error::Unwinding`] when called while the caller unwinds and
    /// the greenlet is not finished.
    ///
    /// # Panics
    ///
    /// When called from inside one of the greenlet's own link callbacks
    /// (it would wait for itself: the callback borrows the outcome), or
    /// from the greenlet itself.
    #[track_caller]
    pub fn join(self) -> Result<T, Error> {
        let hub = hub();
        let _untaken = UntakenFailure {
            hub,
            task: self.task(),
        };
        if !self.wait_inner(hub, None) {
            return Err(Error::Unwinding);
        }
        let task = self.task();
        if task.borrowers.get() > 0 {
            let me = hub.current().id;
            let inside_own_callback = hub.link_runs.borrow().contains(&(me, task.id));
            assert!(
                !inside_own_callback,
                "sylvan: join() on greenlet {} from inside one of its own link callbacks would wait \
                 for itself (join waits for the callbacks that borrow the outcome); use the \
                 outcome the callback was given, or wait() to know it is dead",
                GreenletId(task.id)
            );
        }
        while task.borrowers.get() > 0 {
            let me = hub.current();
            task.borrow_waiters.borrow_mut().push(me);
            // Not in the links (the greenlet is dead): no place there.
            let guard = WaiterGuard {
                task,
                me,
                place: usize::MAX,
            };
            let woke = hub.park(WaitKind::LinkCallbacks(GreenletId(task.id)), false);
            drop(guard);
            if woke == Woke::Refused {
                return Err(Error::Unwinding);
            }
        }
        match task.core.outcome() {
            CoreOutcome::Returned => Ok(self
                .inner
                .value
                .borrow_mut()
                .take()
                .expect("the value is taken once")),
            CoreOutcome::Panicked | CoreOutcome::TimedOut(_) => {
                Err(match task.failure.try_borrow_mut() {
                    Ok(mut failure) => failure.take().map_or(Error::Killed, |e| *e),
                    // The error policy is handling this very failure (a join
                    // from the policy): a copy, the payload stays with it.
                    Err(_) => copy_failure(task.failure.borrow().as_deref()),
                })
            }
            CoreOutcome::Killed | CoreOutcome::Pending => Err(Error::Killed),
        }
    }

    /// Waits until the greenlet is dead, at most `timeout` (forever when
    /// `None`). True when it is dead.
    ///
    /// # Panics
    ///
    /// When called from the greenlet itself (it would wait for ever).
    #[track_caller]
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.wait_inner(hub(), timeout)
    }

    #[track_caller]
    fn wait_inner(&self, hub: &Hub, timeout: Option<Duration>) -> bool {
        let task = self.task();
        let deadline = timeout.and_then(crate::time::deadline_after);
        self.wait_until(hub, deadline, WaitKind::Join(GreenletId(task.id)))
    }

    #[track_caller]
    fn wait_until(&self, hub: &Hub, deadline: Option<Instant>, what: WaitKind) -> bool {
        let task = self.task();
        while !task.is_dead() {
            let me = hub.current();
            if me == task.as_ref() {
                panic!(
                    "sylvan: greenlet {} cannot wait for itself to die",
                    GreenletId(task.id)
                );
            }
            let place = add_waiter(task, me);
            let guard = WaiterGuard { task, me, place };
            let woke = hub.park_until(what, deadline);
            drop(guard);
            if woke != Woke::Ready {
                return task.is_dead();
            }
        }
        true
    }

    /// Kills the greenlet and waits until it is dead.
    ///
    /// A [`GreenletExit`](sylvan_runtime::GreenletExit) unwind is thrown into
    /// it where it is parked: destructors run, and it dies as killed. A
    /// greenlet that has not started never runs. Killing a dead greenlet does
    /// nothing; a greenlet killing itself unwinds at once. Called while the
    /// caller unwinds (from a destructor), it throws the kill and does not
    /// wait.
    ///
    /// A greenlet that was woken (an event set, a permit handed to it, its
    /// `yield_now` or sleep over) but has not run yet is killed where it
    /// parked: the kill replaces the wake-up, and a primitive that handed
    /// it something passes that on. gevent instead queues the kill behind
    /// the wake-up, so its target runs on to its next blocking call (or to
    /// its end) first.
    ///
    /// The caller waits as a join waiter does, registered after the links
    /// already there: it returns once the greenlet is dead and the callbacks
    /// linked before the kill have started (gevent's `kill` returns before
    /// them).
    ///
    /// # Panics
    ///
    /// When the greenlet had not started and a destructor of what its
    /// closure captured panics (dropped here, unrun): the panic is resumed
    /// in the caller.
    pub fn kill(&self) {
        self.kill_until(None);
    }

    /// Like [`kill`](Greenlet::kill), but waits at most `timeout`. Returns
    /// false if the greenlet is still alive then (it caught the unwind and
    /// went on).
    pub fn kill_timeout(&self, timeout: Duration) -> bool {
        self.kill_until(crate::time::deadline_after(timeout))
    }

    fn kill_until(&self, deadline: Option<Instant>) -> bool {
        let hub = hub();
        self.kill_nowait();
        if std::thread::panicking() {
            return self.task().is_dead();
        }
        self.wait_until(hub, deadline, WaitKind::Kill(GreenletId(self.task().id)))
    }

    /// Throws the kill and returns at once. A greenlet that has not started
    /// is cancelled on the spot (it is dead when this returns).
    pub fn kill_nowait(&self) {
        kill_task(hub(), self.task());
    }

    /// True once the greenlet has finished (returned, panicked, killed or
    /// timed out).
    pub fn is_dead(&self) -> bool {
        self.task().is_dead()
    }

    /// True once its body has begun running.
    pub fn is_started(&self) -> bool {
        self.task().started.get()
    }

    /// Its id.
    pub fn id(&self) -> GreenletId {
        GreenletId(self.task().id)
    }

    /// Its name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.task().name.as_deref()
    }

    /// How it ended, for a dead greenlet; `None` while it lives.
    pub fn with_outcome<R>(&self, f: impl FnOnce(&Outcome<'_, T>) -> R) -> Option<R> {
        let task = self.task();
        if !task.is_dead() {
            return None;
        }
        if task.core.outcome() == CoreOutcome::Returned && self.inner.value.borrow().is_none() {
            return None;
        }
        Some(self.inner.with_outcome(f))
    }

    fn add_callback(&self, when: When, f: impl FnOnce(&Outcome<'_, T>) + 'static) {
        let task = self.task();
        let seq = task.link_seq.get();
        task.link_seq.set(seq + 1);
        task.borrowers.set(task.borrowers.get() + 1);
        if when != When::Value {
            task.observers.set(task.observers.get() + 1);
        }
        let guard = BorrowGuard(self.inner.clone());
        let unseen = (when != When::Value).then(|| Unobserved(Some(self.inner.clone())));
        let cb: Box<dyn FnOnce()> = Box::new(move || {
            let guard = guard;
            let inner = &guard.0;
            if seq >= inner.task.unlinked_upto.get() {
                if let Some(mut unseen) = unseen {
                    unseen.0 = None;
                    inner.task.failure_settled.set(true);
                }
                let _running = LinkRun::enter(inner.task.id);
                inner.with_outcome(f);
            } else {
                // Cut by `unlink_all`: it never saw the failure, so
                // `unseen` reports it, unless something else saw it. Before
                // `guard` goes: a `join` waiting for this callback is still
                // registered then, and it takes the failure next.
                drop(unseen);
            }
        });
        if task.is_dead() {
            // A link added to a dead greenlet still fires.
            if when.matches(task.core.outcome()) {
                spawn_link_callback(hub(), task, cb);
            }
        } else {
            task.links.borrow_mut().push(Link::Callback { when, f: cb });
        }
    }

    /// Calls `f` with the outcome when the greenlet dies, however it dies.
    ///
    /// Callbacks run in registration order (join waiters included), each in a
    /// fresh greenlet started one after another, once each; they may block.
    /// A link added to a dead greenlet still fires: its greenlet is spawned
    /// then, and starts behind those already ready (gevent runs it with
    /// the dead greenlet's other pending callbacks, in one pass). `join`
    /// waits until callbacks that may borrow the outcome are done.
    pub fn link(&self, f: impl FnOnce(&Outcome<'_, T>) + 'static) {
        self.add_callback(When::Always, f);
    }

    /// Calls `f` with the value, only if the greenlet returned one. (gevent's
    /// `link_value` also fires on a kill, with `GreenletExit` as the value;
    /// here there is no value then: use [`link`](Greenlet::link), which
    /// sees [`Outcome::Killed`].)
    ///
    /// `f` borrows the value, so `join` waits until `f` is done (gevent's
    /// `join` does not wait for callbacks). A callback that blocks on what
    /// only the joining greenlet would do later (put into a bounded queue
    /// that it drains after joining, say) makes that `join` panic with
    /// "would block forever"; drain first, or use an unbounded queue.
    pub fn link_value(&self, f: impl FnOnce(&T) + 'static) {
        self.add_callback(When::Value, move |o| {
            if let Outcome::Returned(v) = o {
                f(v)
            }
        });
    }

    /// Calls `f` with the error, only if the greenlet panicked or a timeout
    /// escaped it (a kill is a normal exit, as in gevent).
    ///
    /// A greenlet that returns `Err(..)` returned normally: Rust code
    /// reports failure by value where gevent code raises. Use
    /// [`link_value`](Greenlet::link_value) and inspect the value, or
    /// [`link`](Greenlet::link), which sees every outcome.
    pub fn link_exception(&self, f: impl FnOnce(&Error) + 'static) {
        let inner = self.inner.clone();
        self.add_callback(When::Exception, move |_| {
            let failure = inner.task.failure.borrow();
            if let Some(e) = failure.as_deref() {
                f(e)
            }
        });
    }

    /// Removes every callback registered so far; called from inside a
    /// callback, it stops those not yet started.
    pub fn unlink_all(&self) {
        let task = self.task();
        task.unlinked_upto.set(task.link_seq.get());
        let removed: Vec<Link> = {
            let mut links = task.links.borrow_mut();
            let (keep, drop): (Vec<Link>, Vec<Link>) = std::mem::take(&mut *links)
                .into_iter()
                .partition(|l| matches!(l, Link::Waiter(_)));
            *links = keep;
            drop
        };
        // Those no longer observe a failure (for the error policy).
        let observers = removed
            .iter()
            .filter(|l| matches!(l, Link::Callback { when, .. } if *when != When::Value))
            .count();
        task.observers
            .set(task.observers.get().saturating_sub(observers as u32));
        crate::resume_or_report(
            crate::drop_each(removed),
            "link callbacks unlink_all removed",
        );
    }
}

/// [`kill_task`] on another greenlet, with a panic of its unstarted body's
/// destructors caught into `first` (the first kept, the others dropped), so
/// that a loop of kills goes on past it.
pub(crate) fn kill_caught(hub: &Hub, task: &Task, first: &mut Option<crate::Payload>) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kill_task(hub, task)));
    if let Err(p) = r {
        crate::keep_first(first, p);
    }
}

pub(crate) fn kill_task(hub: &Hub, task: &Task) {
    if task.is_dead() {
        return;
    }
    if hub.current().id == task.id && !hub.on_hub() {
        if !std::thread::panicking() {
            throw(Throw::Kill);
        }
        return;
    }
    if !task.started.get() {
        let panic = hub.cancel_unstarted(task);
        crate::resume_or_report(panic, "the body of a greenlet killed before it started");
    } else {
        hub.wake(task.as_ref(), Wake::Throw(Throw::Kill));
    }
}

/// Waits until every greenlet is dead, at most `timeout`; true if all are.
///
/// It waits for one greenlet after another, in list order, each as a join
/// waiter registered after its links (see [`Greenlet::kill`]); gevent's
/// `joinall` watches them all at once, so it may return before the link
/// callbacks of the greenlets that died last have started.
///
/// # Panics
///
/// When the calling greenlet is in the list, once the wait reaches it (a
/// greenlet cannot wait for its own death).
pub fn joinall<T: 'static>(greenlets: &[Greenlet<T>], timeout: Option<Duration>) -> bool {
    let hub = hub();
    let deadline = timeout.and_then(crate::time::deadline_after);
    greenlets
        .iter()
        .all(|g| g.wait_until(hub, deadline, WaitKind::Join(g.id())))
}

/// Kills every greenlet and waits for them, at most `timeout`. If the
/// calling greenlet is in the list, the others are shot first and then it
/// is killed: it unwinds at once, without waiting. Called while the caller
/// unwinds, it shoots them all and does not wait.
///
/// They are killed in list order, each as [`Greenlet::kill_nowait`] does
/// (gevent cancels the unstarted ones first, then throws into the others),
/// then waited for as [`joinall`] waits.
///
/// # Errors
///
/// [`Survivors`] lists the greenlets still alive when the timeout passed.
pub fn killall<T: 'static>(
    greenlets: &[Greenlet<T>],
    timeout: Option<Duration>,
) -> Result<(), Survivors> {
    let hub = hub();
    // The caller, if listed, last: killing it unwinds it at once, and the
    // greenlets after it must not be skipped (gevent throws into every one).
    let me = hub.current().id;
    let mut listed_me = None;
    let mut panic = None;
    for g in greenlets {
        if g.task().id == me {
            listed_me = Some(g.task());
        } else {
            kill_caught(hub, g.task(), &mut panic);
        }
    }
    // Every other one is shot: now the panic of an unstarted one's body.
    crate::resume_or_report(panic, "the body of a greenlet killed before it started");
    if let Some(t) = listed_me {
        kill_task(hub, t);
    }
    let deadline = timeout.and_then(crate::time::deadline_after);
    for g in greenlets {
        g.wait_until(hub, deadline, WaitKind::Kill(g.id()));
    }
    let survivors: Vec<GreenletId> = greenlets
        .iter()
        .filter(|g| !g.is_dead())
        .map(|g| g.id())
        .collect();
    if survivors.is_empty() {
        Ok(())
    } else {
        Err(Survivors(survivors))
    }
}

/// The id of the running greenlet (`#0` for main).
pub fn current() -> GreenletId {
    GreenletId(hub().current().id)
}

/// The name of the running greenlet (`"main"` for main).
pub fn current_name() -> Option<String> {
    hub().current_task().name.as_deref().map(str::to_owned)
}

/// Spawns a greenlet for a cross-thread [`Handle::spawn`](crate::Handle::spawn).
pub(crate) fn spawn_from_remote(
    site: &'static Location<'static>,
    f: impl FnOnce() + 'static,
) -> io::Result<()> {
    spawn_task(None, None, site, None, f)
        .map(drop)
        .inspect_err(|e| {
            stderr!("sylvan: Handle::spawn from {site} failed: {e}");
        })
}

/// A copy of `failure` for a [`Greenlet::join`] made while the error policy
/// holds the original: a panic's payload becomes its message.
#[cold]
fn copy_failure(failure: Option<&Error>) -> Error {
    match failure {
        Some(Error::Panicked(p)) => Error::Panicked(Panic::new(
            Box::new(p.message().to_owned()),
            p.location().map(str::to_owned),
            p.backtrace().map(str::to_owned),
        )),
        Some(Error::TimedOut) => Error::TimedOut,
        _ => Error::Killed,
    }
}
