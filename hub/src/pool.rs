//! Groups and pools of greenlets: spawn into them, map over them, join or
//! kill them together.
//!
//! A [`Group`] tracks the greenlets spawned through it; a [`Pool`] is a
//! group with a bound: [`Pool::spawn`] parks the caller while `n` of its
//! greenlets are alive, so at most `n` run at once.
//!
//! ```
//! # extern crate sylvan_hub as sylvan;
//! use sylvan::pool::Pool;
//! use std::time::Duration;
//!
//! let pool = Pool::new(4);
//! // At most four of these sleep at the same time; results in input order.
//! let lengths = pool.map(["a", "bb", "ccc"], |s: &str| {
//!     sylvan::sleep(Duration::from_millis(1));
//!     s.len()
//! });
//! let lengths: Vec<usize> = lengths.into_iter().map(Result::unwrap).collect();
//! assert_eq!(lengths, [1, 2, 3]);
//! ```

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::io;
use std::panic::Location;
use std::rc::Rc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::error::Error;
use crate::hub::{TaskRef, Wake, hub, try_hub};
use crate::sync::{Semaphore, WaitList, wait_on};
use crate::task::{Builder, Greenlet, WaitKind, kill_caught, kill_task, spawn_failed};

const JOIN: WaitKind = WaitKind::Sync("a pool/group join");
const EXIT: WaitKind = WaitKind::Sync("a pool slot (wait_available/kill)");
const NEXT: WaitKind = WaitKind::Sync("the next pool result (imap)");

/// The state a group's handles and its greenlets share.
struct Core {
    /// Free slots of a pool; `None` for a group (no bound).
    slots: Option<Semaphore>,
    size: usize,
    /// Greenlets alive in the group, each with whether a `kill` of the
    /// group has shot it already (gevent's `dying` set).
    members: RefCell<Slab<(TaskRef, bool)>>,
    /// Woken when the group becomes empty.
    empty: RefCell<WaitList<()>>,
    /// Woken whenever a member leaves.
    exits: RefCell<WaitList<()>>,
}

/// Completion notices for `imap_unordered`: members push their index here
/// on the way out and wake the iterator if it is parked waiting for one.
#[derive(Default)]
struct Finished {
    done: RefCell<VecDeque<usize>>,
    parked: Cell<Option<TaskRef>>,
}

impl Finished {
    /// Parks the reader until a task leaves its key in `done` (a wake-up
    /// may be spurious: the caller looks again). False, without parking,
    /// while the reader unwinds.
    fn wait(&self, hub: &crate::hub::Hub) -> bool {
        if std::thread::panicking() {
            return false;
        }
        self.parked.set(Some(hub.current()));
        let _parked = Parked(&self.parked);
        hub.park(NEXT, false);
        true
    }
}

/// Lives inside a member's body: its drop (on return, panic, kill, or when
/// an unstarted greenlet is cancelled) takes the member out of the group.
struct Member {
    core: Rc<Core>,
    key: usize,
    notify: Option<(Rc<Finished>, usize)>,
}

impl Drop for Member {
    fn drop(&mut self) {
        let core = &self.core;
        let empty = {
            let mut members = core.members.borrow_mut();
            members.remove(self.key);
            members.is_empty()
        };
        let hub = try_hub();
        if let Some(hub) = hub {
            // Those waiting for members to leave (`kill`, `join`) hear of
            // it before the release below, which may hand the slot to a
            // waiting spawner: they run first, as with gevent's `Pool`,
            // whose `discard` sets its empty event before it releases the
            // semaphore.
            core.exits.borrow_mut().wake_all(hub);
            if empty {
                core.empty.borrow_mut().wake_all(hub);
            }
        }
        if let Some(slots) = &core.slots {
            // Hands the slot to the first spawner waiting, if any.
            slots.release();
        }
        let Some(hub) = hub else { return };
        if let Some((finished, index)) = &self.notify {
            finished.done.borrow_mut().push_back(*index);
            if let Some(r) = finished.parked.get() {
                hub.wake(r, Wake::Ready);
            }
        }
    }
}

impl Core {
    fn new(slots: Option<usize>) -> Rc<Core> {
        Rc::new(Core {
            size: slots.unwrap_or(usize::MAX),
            slots: slots.map(Semaphore::new),
            members: RefCell::new(Slab::new()),
            empty: RefCell::new(WaitList::new()),
            exits: RefCell::new(WaitList::new()),
        })
    }

    /// Takes a slot, parking while none is free.
    fn acquire(&self) {
        if let Some(slots) = &self.slots {
            slots.acquire().forget();
        }
    }

    /// Takes a slot if one is free now.
    fn try_acquire(&self) -> bool {
        match &self.slots {
            Some(slots) => slots.try_acquire().map(|g| g.forget()).is_some(),
            None => true,
        }
    }

    fn free_count(&self) -> usize {
        match &self.slots {
            Some(slots) => slots.available(),
            None => usize::MAX,
        }
    }

    /// Spawns a member in a slot already taken. `site` is where the user
    /// called the pool, which failure reports and `dump` show as the spawn
    /// site.
    ///
    /// # Errors
    ///
    /// When no stack can be mapped. The member, dropped with the body,
    /// has then given the slot back and left the pool.
    fn spawn_member<T: 'static>(
        self: &Rc<Self>,
        site: &'static Location<'static>,
        f: impl FnOnce() -> T + 'static,
        notify: Option<(Rc<Finished>, usize)>,
    ) -> io::Result<Greenlet<T>> {
        let key = self
            .members
            .borrow_mut()
            .insert((TaskRef { key: 0, id: 0 }, false));
        let never_ran = notify.as_ref().map(|(f, i)| (f.clone(), *i));
        let member = Member {
            core: self.clone(),
            key,
            notify,
        };
        let spawned = Builder::new().spawn_at(site, move || {
            let _member = member;
            // Dropped first: the member's greenlet-locals are gone (their
            // destructors may block) before it leaves the pool.
            let _locals = crate::record::ClearLocals(crate::hub::hub().current_task());
            f()
        });
        match spawned {
            Ok(g) => {
                self.members.borrow_mut()[key].0 = g.task().as_ref();
                Ok(g)
            }
            Err(e) => {
                // The member's drop reported a task that never ran as
                // finished: withdraw that.
                if let Some((finished, index)) = never_ran {
                    finished.done.borrow_mut().retain(|&i| i != index);
                }
                Err(e)
            }
        }
    }

    fn len(&self) -> usize {
        self.members.borrow().len()
    }

    fn join_until(&self, deadline: Option<Instant>) -> bool {
        while self.len() > 0 {
            if std::thread::panicking() || !wait_on(&self.empty, JOIN, deadline) {
                return self.len() == 0;
            }
        }
        true
    }

    /// Waits on the slots' semaphore itself, as gevent's `Pool` does: it is
    /// released when a member leaves, and again when a slot handed to a
    /// spawner comes back because that spawner was killed before it ran.
    fn wait_available(&self, timeout: Option<Duration>) -> usize {
        let Some(slots) = &self.slots else {
            return usize::MAX;
        };
        let deadline = timeout.and_then(crate::time::deadline_after);
        loop {
            let free = slots.available();
            if free > 0 || std::thread::panicking() || !slots.wait_released(EXIT, deadline) {
                return slots.available();
            }
        }
    }

    fn kill(&self) {
        let hub = hub();
        let me = hub.current();
        let mut member_self = false;
        // Each member is shot once, as by gevent's Group.kill, which keeps
        // a `dying` set for the group's lifetime: one that catches its kill
        // is waited for, not shot again at every other member's exit, nor
        // by a later `kill` of the group (say after one under a timeout).
        loop {
            let mut targets: Vec<TaskRef> = Vec::new();
            let mut others = 0;
            for (_, (r, shot)) in self.members.borrow_mut().iter_mut() {
                if *r == me {
                    member_self = true;
                    continue;
                }
                others += 1;
                if !std::mem::replace(shot, true) {
                    targets.push(*r);
                }
            }
            if others == 0 {
                break;
            }
            // Each target is shot even if dropping an unstarted one's body
            // panics (it is marked shot already); that panic comes after.
            let mut panic = None;
            for r in targets {
                if let Some(task) = hub.lookup(r) {
                    kill_caught(hub, task, &mut panic);
                }
            }
            crate::resume_or_report(panic, "the body of a pool member killed before it started");
            if std::thread::panicking() {
                return;
            }
            // Unstarted members left at once, when their body was dropped.
            if self.len() > usize::from(member_self) {
                wait_on(&self.exits, EXIT, None);
            }
        }
        if let Some(task) = hub.lookup(me).filter(|_| member_self) {
            kill_task(hub, task);
        }
    }
}

/// Greenlets started by one `map`/`imap`/`imap_unordered` call and not yet
/// collected: killed (without waiting) if the call or iterator is dropped
/// early.
struct Running<T: 'static>(Slab<Greenlet<T>>);

impl<T: 'static> Drop for Running<T> {
    fn drop(&mut self) {
        let Some(hub) = try_hub() else { return };
        // Every one is shot and every result dropped, each on its own, even
        // if a destructor panics; the first panic comes after.
        let mut panic = None;
        for (_, g) in self.0.iter() {
            kill_caught(hub, g.task(), &mut panic);
        }
        let greenlets = std::mem::take(&mut self.0);
        if let Some(p) = crate::drop_each(greenlets.into_iter().map(|(_, g)| g)) {
            crate::keep_first(&mut panic, p);
        }
        crate::resume_or_report(panic, "the tasks of an imap dropped early");
    }
}

/// A set of greenlets with no bound on their number: spawn into it, then
/// join, kill or count them together, as gevent's `Group`.
///
/// `Group` is a cheap handle: clones share the same group (so a member can
/// spawn more work into it).
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use sylvan::pool::Group;
///
/// let group = Group::new();
/// for i in 0..3 {
///     group.spawn(move || sylvan::sleep(std::time::Duration::from_millis(i)));
/// }
/// assert_eq!(group.len(), 3);
/// group.join();
/// assert!(group.is_empty());
/// ```
#[derive(Clone)]
pub struct Group {
    core: Rc<Core>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").field("len", &self.len()).finish()
    }
}

impl Default for Group {
    fn default() -> Self {
        Group::new()
    }
}

/// A group with a bound, as gevent's `Pool`: at most `n` of its greenlets
/// are alive at once, and [`spawn`](Pool::spawn) parks the caller (FIFO)
/// until a slot is free. A member leaves when its body is over (its
/// greenlet-local values dropped); the value of a detached member (its
/// handle dropped) is dropped just after, still in its greenlet, outside the
/// count: a destructor there that blocks lets the next member start.
///
/// `Pool` is a cheap handle: clones share the same pool.
///
/// A panic in one task never loses the results of the others: each task is
/// its own greenlet, whose outcome is kept (and reported by the hub's error
/// policy, as for any greenlet). [`map`](Pool::map) and the iterators
/// return `Err(Error::Panicked)` for a task that panicked and
/// `Err(Error::Killed)` for one that was killed.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use sylvan::pool::Pool;
///
/// let pool = Pool::new(2);
/// let busy = Rc::new(Cell::new(0));
/// let most = Rc::new(Cell::new(0));
/// for _ in 0..10 {
///     let (busy, most) = (busy.clone(), most.clone());
///     pool.spawn(move || { // parks here while two tasks run
///         busy.set(busy.get() + 1);
///         most.set(most.get().max(busy.get()));
///         sylvan::yield_now();
///         busy.set(busy.get() - 1);
///     });
/// }
/// pool.join();
/// assert_eq!(most.get(), 2);
/// ```
#[derive(Clone)]
pub struct Pool {
    core: Rc<Core>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.size())
            .field("len", &self.len())
            .finish()
    }
}

impl Pool {
    /// A pool of at most `size` greenlets alive at once.
    ///
    /// # Panics
    ///
    /// When `size` is 0: such a pool could never run anything (use a
    /// [`Group`] for no bound).
    #[track_caller]
    pub fn new(size: usize) -> Pool {
        assert!(
            size > 0,
            "sylvan: Pool::new(0): a pool needs at least one slot (use Group for no bound)"
        );
        Pool {
            core: Core::new(Some(size)),
        }
    }

    /// Spawns `f` in the pool, first parking the caller (FIFO among
    /// spawners) while the pool is full.
    ///
    /// A member that spawns into (or maps over) its own full pool waits for
    /// a slot that only members can free: when every member does, nothing
    /// can run again, and a greenlet waiting on them (main in `join`)
    /// panics with "would block forever", as gevent raises `LoopExit`.
    ///
    /// # Panics
    ///
    /// As [`spawn`](crate::spawn), when no stack can be mapped.
    ///
    /// # Aborts
    ///
    /// Called while the caller unwinds (from a destructor during a kill,
    /// timeout or panic) with the pool full, it cannot wait and cannot
    /// return without a slot: it aborts the process with a message, as
    /// [`Semaphore::acquire`] does. [`map`](Self::map), [`imap`](Self::imap)
    /// and [`imap_unordered`](Self::imap_unordered) do the same when they
    /// wait for a slot then.
    #[track_caller]
    pub fn spawn<T: 'static>(&self, f: impl FnOnce() -> T + 'static) -> Greenlet<T> {
        self.try_spawn_at(Location::caller(), f)
            .unwrap_or_else(|e| spawn_failed(e))
    }

    /// [`spawn`](Self::spawn) naming `site` as the spawn site, with the
    /// error instead of a panic when no stack can be mapped (the slot is
    /// then free again).
    pub(crate) fn try_spawn_at<T: 'static>(
        &self,
        site: &'static Location<'static>,
        f: impl FnOnce() -> T + 'static,
    ) -> io::Result<Greenlet<T>> {
        self.core.acquire();
        self.core.spawn_member(site, f, None)
    }

    /// Runs `f` on every item in the pool and returns the results in input
    /// order, once all are done.
    ///
    /// Items start as slots free up (the caller parks meanwhile). A task that
    /// panicked gives `Err(Error::Panicked)`, one killed `Err(Error::Killed)`.
    /// If the caller is killed (or a `Timeout` cuts it) meanwhile, the tasks
    /// it started are killed without waiting: they leave the pool at the
    /// hub's next turn.
    #[track_caller]
    pub fn map<I: 'static, T: 'static>(
        &self,
        items: impl IntoIterator<Item = I>,
        f: impl Fn(I) -> T + 'static,
    ) -> Vec<Result<T, Error>> {
        map(&self.core, Location::caller(), items, f)
    }

    /// Like [`map`](Pool::map), lazily: yields results in input order,
    /// keeping the pool's slots busy as gevent's `imap` does. Results that
    /// finish before the one waited for are kept until their turn (any
    /// number of them, as gevent's `imap` without `maxsize`). Dropping the
    /// iterator early kills the tasks it started.
    ///
    /// The input is pulled by the greenlet that calls `next`, as slots
    /// free up (so it may borrow). Unlike gevent, whose `imap` reads its
    /// input in a greenlet of its own, an input that blocks (a queue's
    /// `iter()` waiting for more) holds back results that are already
    /// done until it yields an item or ends. For a feed that arrives over
    /// time, spawn the tasks from the feeding side with
    /// [`spawn`](Pool::spawn) and collect their results there.
    #[track_caller]
    pub fn imap<'a, I: 'static, T: 'static>(
        &self,
        items: impl IntoIterator<Item = I> + 'a,
        f: impl Fn(I) -> T + 'static,
    ) -> Imap<'a, T> {
        Imap::new(&self.core, Location::caller(), items, f)
    }

    /// Like [`imap`](Pool::imap), but yields each result as soon as its task
    /// finishes.
    #[track_caller]
    pub fn imap_unordered<'a, I: 'static, T: 'static>(
        &self,
        items: impl IntoIterator<Item = I> + 'a,
        f: impl Fn(I) -> T + 'static,
    ) -> ImapUnordered<'a, T> {
        ImapUnordered::new(&self.core, Location::caller(), items, f)
    }

    /// Parks until every greenlet of the pool is dead. Returns at once when
    /// the caller is unwinding.
    pub fn join(&self) {
        self.core.join_until(None);
    }

    /// Like [`join`](Pool::join), for at most `timeout`; true when the pool
    /// is empty.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.core.join_until(crate::time::deadline_after(timeout))
    }

    /// Kills every greenlet of the pool and waits until they are dead. When
    /// called from a member, that member is killed last (the call then
    /// unwinds it).
    ///
    /// Each member is killed once, as in gevent: one that catches its kill
    /// and goes on is waited for, not killed again, also by a later `kill`
    /// (after one stopped by a timeout, say). Kill such a greenlet again
    /// through its own handle.
    ///
    /// A greenlet parked in [`spawn`](Pool::spawn) is not a member yet: a
    /// slot the kill frees goes to it, and the member it then adds, after
    /// the kill's last look, lives, as in gevent. Code that spawns in a
    /// loop checks its own stop flag in the new greenlet (the crawler
    /// example does).
    pub fn kill(&self) {
        self.core.kill()
    }

    /// Free slots now: how many [`spawn`](Pool::spawn)s would not wait.
    pub fn free_count(&self) -> usize {
        self.core.free_count()
    }

    /// Parks until at least one slot is free or `timeout` passes (forever
    /// when `None`), and returns the free count (0 on timeout). Does not
    /// take the slot: a spawner already waiting gets it first.
    pub fn wait_available(&self, timeout: Option<Duration>) -> usize {
        self.core.wait_available(timeout)
    }

    /// Greenlets of the pool alive now (started or waiting to start).
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// True when no greenlet of the pool is alive.
    pub fn is_empty(&self) -> bool {
        self.core.len() == 0
    }

    /// True when a [`spawn`](Pool::spawn) would wait.
    pub fn is_full(&self) -> bool {
        self.core.free_count() == 0
    }

    /// The bound given to [`Pool::new`].
    pub fn size(&self) -> usize {
        self.core.size
    }
}

impl Group {
    /// An empty group.
    pub fn new() -> Group {
        Group {
            core: Core::new(None),
        }
    }

    /// Spawns `f` as a member of the group (never waits).
    ///
    /// # Panics
    ///
    /// As [`spawn`](crate::spawn), when no stack can be mapped.
    #[track_caller]
    pub fn spawn<T: 'static>(&self, f: impl FnOnce() -> T + 'static) -> Greenlet<T> {
        self.core
            .spawn_member(Location::caller(), f, None)
            .unwrap_or_else(|e| spawn_failed(e))
    }

    /// Runs `f` on every item, each in its own member greenlet, and returns
    /// the results in input order once all are done. See [`Pool::map`].
    #[track_caller]
    pub fn map<I: 'static, T: 'static>(
        &self,
        items: impl IntoIterator<Item = I>,
        f: impl Fn(I) -> T + 'static,
    ) -> Vec<Result<T, Error>> {
        map(&self.core, Location::caller(), items, f)
    }

    /// Like [`map`](Group::map), yielding results in input order as they
    /// come. A group has no bound, so every item starts at the first call
    /// to `next` (use a [`Pool`] to bound that).
    #[track_caller]
    pub fn imap<'a, I: 'static, T: 'static>(
        &self,
        items: impl IntoIterator<Item = I> + 'a,
        f: impl Fn(I) -> T + 'static,
    ) -> Imap<'a, T> {
        Imap::new(&self.core, Location::caller(), items, f)
    }

    /// Like [`imap`](Group::imap), but yields each result as soon as its
    /// task finishes.
    #[track_caller]
    pub fn imap_unordered<'a, I: 'static, T: 'static>(
        &self,
        items: impl IntoIterator<Item = I> + 'a,
        f: impl Fn(I) -> T + 'static,
    ) -> ImapUnordered<'a, T> {
        ImapUnordered::new(&self.core, Location::caller(), items, f)
    }

    /// Parks until every member is dead. Returns at once when the caller is
    /// unwinding.
    pub fn join(&self) {
        self.core.join_until(None);
    }

    /// Like [`join`](Group::join), for at most `timeout`; true when the
    /// group is empty.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.core.join_until(crate::time::deadline_after(timeout))
    }

    /// Kills every member and waits until they are dead (see
    /// [`Pool::kill`]).
    pub fn kill(&self) {
        self.core.kill()
    }

    /// Members alive now.
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// True when no member is alive.
    pub fn is_empty(&self) -> bool {
        self.core.len() == 0
    }
}

fn map<I: 'static, T: 'static>(
    core: &Rc<Core>,
    site: &'static Location<'static>,
    items: impl IntoIterator<Item = I>,
    f: impl Fn(I) -> T + 'static,
) -> Vec<Result<T, Error>> {
    let f = Rc::new(f);
    let mut running = Running(Slab::new());
    for item in items {
        core.acquire();
        let f = f.clone();
        let g = core
            .spawn_member(site, move || f(item), None)
            .unwrap_or_else(|e| spawn_failed(e));
        running.0.insert(g);
    }
    // Slab keys are insertion order here (nothing was removed).
    let n = running.0.len();
    let mut results = Vec::with_capacity(n);
    for key in 0..n {
        // Waited for in the set, so that a kill of the caller meanwhile
        // kills it with the others.
        running.0[key].wait(None);
        let g = running.0.remove(key);
        results.push(g.join());
    }
    results
}

type Spawner<'a, T> = Box<dyn FnMut(Option<(Rc<Finished>, usize)>, bool) -> Step<T> + 'a>;

/// What one call of a [`Spawner`] did.
enum Step<T: 'static> {
    Spawned(Greenlet<T>),
    /// The input is exhausted.
    Exhausted,
    /// No slot was free and the call was not to wait: the item pulled is
    /// kept for the next call.
    Full,
}

/// Pulls the next item, then takes a slot for it (parking for one when
/// `wait`) and spawns its task. The input comes first, as gevent's does: an
/// exhausted input ends the iteration without waiting for a slot.
fn spawner<'a, I: 'static, T: 'static>(
    core: &Rc<Core>,
    site: &'static Location<'static>,
    items: impl IntoIterator<Item = I> + 'a,
    f: impl Fn(I) -> T + 'static,
) -> Spawner<'a, T> {
    let f = Rc::new(f);
    let core = core.clone();
    let mut items = items.into_iter();
    let mut pending = None;
    Box::new(move |notify, wait| {
        if pending.is_none() {
            pending = items.next();
        }
        if pending.is_none() {
            return Step::Exhausted;
        }
        if wait {
            // A kill or timeout while parked here takes no slot, and the
            // item stays pending: a `next` called again (after a timeout)
            // starts it.
            core.acquire();
        } else if !core.try_acquire() {
            return Step::Full;
        }
        let item = pending.take().expect("pulled above");
        let f = f.clone();
        // Failing, the member gave its slot back.
        let g = core
            .spawn_member(site, move || f(item), notify)
            .unwrap_or_else(|e| spawn_failed(e));
        Step::Spawned(g)
    })
}

/// The iterator of [`Pool::imap`] and [`Group::imap`]: results in input
/// order.
pub struct Imap<'a, T: 'static> {
    spawn: Spawner<'a, T>,
    exhausted: bool,
    running: Running<T>,
    /// Keys in `running`, in input order: the results still to yield.
    order: VecDeque<usize>,
    /// Where finishing tasks leave their keys and wake the reader.
    finished: Rc<Finished>,
    /// Keys of tasks that finished ahead of the one waited for.
    done: HashSet<usize>,
}

impl<T> fmt::Debug for Imap<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("pending", &self.order.len())
            .field("exhausted", &self.exhausted)
            .finish()
    }
}

impl<'a, T: 'static> Imap<'a, T> {
    fn new<I: 'static>(
        core: &Rc<Core>,
        site: &'static Location<'static>,
        items: impl IntoIterator<Item = I> + 'a,
        f: impl Fn(I) -> T + 'static,
    ) -> Imap<'a, T> {
        Imap {
            spawn: spawner(core, site, items, f),
            exhausted: false,
            running: Running(Slab::new()),
            order: VecDeque::new(),
            finished: Rc::default(),
            done: HashSet::new(),
        }
    }

    /// Starts tasks while slots are free; with no result pending, waits
    /// for one slot.
    fn fill(&mut self) {
        while !self.exhausted {
            let key = self.running.0.vacant_key();
            let wait = self.order.is_empty();
            match (self.spawn)(Some((self.finished.clone(), key)), wait) {
                Step::Spawned(g) => {
                    self.running.0.insert(g);
                    self.order.push_back(key);
                }
                Step::Exhausted => self.exhausted = true,
                Step::Full => break,
            }
        }
    }
}

impl<T: 'static> Iterator for Imap<'_, T> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Result<T, Error>> {
        let hub = hub();
        // Each task that finishes frees a slot: start the next items in it
        // (as gevent's imap does), then yield the first result in input
        // order once it is done.
        let key = loop {
            self.fill();
            let head = *self.order.front()?;
            self.done.extend(self.finished.done.borrow_mut().drain(..));
            if self.done.remove(&head) {
                break head;
            }
            if !self.finished.wait(hub) {
                return None;
            }
        };
        self.order.pop_front();
        // Its body is over; the greenlet dies at once. A consumer killed
        // meanwhile kills the others with `running`.
        let g = self.running.0.remove(key);
        Some(g.join())
    }
}

/// The iterator of [`Pool::imap_unordered`] and
/// [`Group::imap_unordered`]: results as tasks finish.
pub struct ImapUnordered<'a, T: 'static> {
    core: Rc<Core>,
    spawn: Spawner<'a, T>,
    exhausted: bool,
    running: Running<T>,
    finished: Rc<Finished>,
}

impl<T> fmt::Debug for ImapUnordered<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapUnordered")
            .field("running", &self.running.0.len())
            .field("exhausted", &self.exhausted)
            .finish()
    }
}

impl<'a, T: 'static> ImapUnordered<'a, T> {
    fn new<I: 'static>(
        core: &Rc<Core>,
        site: &'static Location<'static>,
        items: impl IntoIterator<Item = I> + 'a,
        f: impl Fn(I) -> T + 'static,
    ) -> ImapUnordered<'a, T> {
        ImapUnordered {
            core: core.clone(),
            spawn: spawner(core, site, items, f),
            exhausted: false,
            running: Running(Slab::new()),
            finished: Rc::default(),
        }
    }

    fn fill(&mut self) {
        while !self.exhausted && self.running.0.len() < self.core.size {
            let key = self.running.0.vacant_key();
            let wait = self.running.0.is_empty();
            match (self.spawn)(Some((self.finished.clone(), key)), wait) {
                Step::Spawned(g) => {
                    self.running.0.insert(g);
                }
                Step::Exhausted => self.exhausted = true,
                Step::Full => break,
            }
        }
    }
}

/// Clears the parked marker however the wait ends.
struct Parked<'a>(&'a Cell<Option<TaskRef>>);

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.set(None);
    }
}

impl<T: 'static> Iterator for ImapUnordered<'_, T> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Result<T, Error>> {
        self.fill();
        if self.running.0.is_empty() {
            return None;
        }
        let hub = hub();
        let key = loop {
            if let Some(key) = self.finished.done.borrow_mut().pop_front() {
                break key;
            }
            if !self.finished.wait(hub) {
                return None;
            }
        };
        let g = self.running.0.remove(key);
        Some(g.join())
    }
}
