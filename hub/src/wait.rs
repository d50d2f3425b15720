//! `wait` and `iwait`: block on several things at once.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::hub::{Hub, Key, TaskRef, Wake, Woke, hub};
use crate::task::{Greenlet, WaitKind};

const WAIT: WaitKind = WaitKind::Sync("wait/iwait on several objects");

/// The greenlet a [`Waitable`] wakes when it becomes ready: handed to
/// [`Waitable::watch`] by [`wait`] and [`iwait`].
///
/// It is `Send`, but [`wake`](Self::wake) works only on the waiting
/// greenlet's own thread, as a greenlet can be switched to only from its
/// own thread in gevent. For an object made ready by another thread, take a
/// [`Handle`](crate::Handle) (and a [`KeepAlive`](crate::KeepAlive) while
/// that thread works) in `watch`, and have that thread call
/// `handle.spawn(move || waiter.wake())`, as the example on
/// [`wake`](Self::wake) does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    task: TaskRef,
    /// The waiting greenlet's hub.
    hub_uid: u64,
    /// And its thread.
    thread: std::thread::ThreadId,
}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Waiter(#{})", self.task.id)
    }
}

impl Waiter {
    pub(crate) fn task(self) -> TaskRef {
        self.task
    }

    /// Wakes the waiting greenlet (it runs when the caller next blocks; this
    /// never switches). Call it only between the matching
    /// [`watch`](Waitable::watch) and [`unwatch`](Waitable::unwatch); waking
    /// it more than once is harmless, and so is waking it once its thread's
    /// hub is gone.
    ///
    /// # Panics
    ///
    /// Called on another thread than the waiting greenlet's: that thread's
    /// hub cannot reach it, and the wake-up would be lost. Hop over with a
    /// [`Handle`](crate::Handle) instead:
    ///
    /// ```
    /// # extern crate sylvan_hub as sylvan;
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use sylvan::{Handle, Waitable, Waiter};
    ///
    /// /// Made ready by another OS thread.
    /// struct Remote(Arc<AtomicBool>);
    ///
    /// impl Waitable for Remote {
    ///     fn is_ready(&self) -> bool { self.0.load(Ordering::SeqCst) }
    ///     fn watch(&self, w: Waiter) -> usize {
    ///         let (up, hub) = (self.0.clone(), Handle::current());
    ///         // Counts as work for the hub (a `Handle` alone does not).
    ///         let keep = hub.keep_alive();
    ///         std::thread::spawn(move || {
    ///             up.store(true, Ordering::SeqCst);
    ///             // `w.wake()` here would panic: wake on the waiter's thread.
    ///             let _ = hub.spawn(move || w.wake());
    ///             drop(keep);
    ///         });
    ///         0
    ///     }
    ///     fn unwatch(&self, _w: Waiter, _token: usize) {}
    /// }
    ///
    /// let r = Remote(Arc::new(AtomicBool::new(false)));
    /// assert_eq!(sylvan::wait(&[&r], None, None), [0]);
    /// ```
    pub fn wake(self) {
        match crate::hub::hub_with_uid(self.hub_uid) {
            Some(hub) => hub.wake(self.task, Wake::Ready),
            None if std::thread::current().id() == self.thread => {}
            None => wake_on_another_thread(),
        }
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn wake_on_another_thread() -> ! {
    panic!(
        "sylvan: Waiter::wake called on another thread than the waiting greenlet's, whose hub \
         it cannot reach; take a sylvan::Handle in `watch` and call \
         `handle.spawn(move || waiter.wake())` from the other thread"
    )
}

/// Something [`wait`] and [`iwait`] can wait on: greenlets (ready when
/// dead), [`Event`](crate::sync::Event)s (ready when set),
/// [`AsyncResult`](crate::sync::AsyncResult)s (ready when they hold a value
/// or a failure) and [`Semaphore`](crate::sync::Semaphore)s and
/// [`BoundedSemaphore`](crate::sync::BoundedSemaphore)s (ready while a
/// permit is free; waiting takes none).
///
/// Implement it for your own types by keeping the watchers and calling
/// [`Waiter::wake`] on each when the object becomes ready. An [`iwait`]
/// keeps its registrations from the first `next` that finds nothing ready
/// until it reports the object, its timeout ends the iteration, or it is
/// dropped; after a wake-up that finds the object neither
/// ready nor [`fired`](Waitable::fired) it unwatches and watches again, so
/// an implementation may forget a waiter once it has woken it. Such
/// spurious wake-ups cost an `unwatch` and a `watch` each: one made from
/// inside `watch` is looked at after a turn of the hub, and one made from
/// inside `unwatch` for the registration being cancelled is ignored. So
/// wake waiters only when the object becomes ready: one that wakes them
/// from inside `watch` or `unwatch`, or on changes that are not readiness,
/// keeps them busy until it is ready or the waits end (a waiter woken
/// from inside `watch` polls once per turn of the hub; waiters that wake
/// each other, the object listed twice in a wait or waited on by two
/// greenlets, re-watch in turn). Correct, but a busy loop.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::cell::RefCell;
/// use sylvan::{Waitable, Waiter};
///
/// #[derive(Default)]
/// struct Flag { up: std::cell::Cell<bool>, watchers: RefCell<Vec<Option<Waiter>>> }
///
/// impl Flag {
///     fn raise(&self) {
///         self.up.set(true);
///         for w in self.watchers.borrow().iter().flatten() { w.wake(); }
///     }
/// }
///
/// impl Waitable for Flag {
///     fn is_ready(&self) -> bool { self.up.get() }
///     fn watch(&self, w: Waiter) -> usize {
///         let mut ws = self.watchers.borrow_mut();
///         ws.push(Some(w));
///         ws.len() - 1
///     }
///     fn unwatch(&self, _w: Waiter, token: usize) { self.watchers.borrow_mut()[token] = None; }
/// }
///
/// let flag = std::rc::Rc::new(Flag::default());
/// let f = flag.clone();
/// sylvan::spawn(move || f.raise());
/// assert_eq!(sylvan::wait(&[&*flag], None, None), [0]);
/// ```
pub trait Waitable {
    /// True when a wait on it would return at once.
    fn is_ready(&self) -> bool;

    /// Arranges for `waiter` to be woken when this becomes ready; returns a
    /// token for [`unwatch`](Waitable::unwatch). Called only while not
    /// ready.
    fn watch(&self, waiter: Waiter) -> usize;

    /// Cancels a [`watch`](Waitable::watch), whether or not it fired. After
    /// this, `waiter` must not be woken through this registration.
    fn unwatch(&self, waiter: Waiter, token: usize);

    /// True when the registration `token` has fired, even if the object is
    /// no longer ready (an [`Event`](crate::sync::Event) set and cleared
    /// again before the waiter ran): [`wait`] and [`iwait`] then report it,
    /// as gevent notifies every link of a set event. The default, `false`,
    /// suits objects that stay ready once they are.
    fn fired(&self, waiter: Waiter, token: usize) -> bool {
        let _ = (waiter, token);
        false
    }
}

impl<T: 'static> Waitable for Greenlet<T> {
    fn is_ready(&self) -> bool {
        self.is_dead()
    }

    fn watch(&self, waiter: Waiter) -> usize {
        // A join waiter: woken when the greenlet dies; the token is its place.
        crate::task::add_waiter(self.task(), waiter.task)
    }

    fn unwatch(&self, waiter: Waiter, token: usize) {
        crate::task::remove_waiter(self.task(), waiter.task, token);
    }
}

impl<W: Waitable + ?Sized> Waitable for &W {
    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }
    fn watch(&self, waiter: Waiter) -> usize {
        (**self).watch(waiter)
    }
    fn unwatch(&self, waiter: Waiter, token: usize) {
        (**self).unwatch(waiter, token)
    }
    fn fired(&self, waiter: Waiter, token: usize) -> bool {
        (**self).fired(waiter, token)
    }
}

impl<W: Waitable + ?Sized> Waitable for Rc<W> {
    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }
    fn watch(&self, waiter: Waiter) -> usize {
        (**self).watch(waiter)
    }
    fn unwatch(&self, waiter: Waiter, token: usize) {
        (**self).unwatch(waiter, token)
    }
    fn fired(&self, waiter: Waiter, token: usize) -> bool {
        (**self).fired(waiter, token)
    }
}

impl<W: Waitable + ?Sized> Waitable for Box<W> {
    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }
    fn watch(&self, waiter: Waiter) -> usize {
        (**self).watch(waiter)
    }
    fn unwatch(&self, waiter: Waiter, token: usize) {
        (**self).unwatch(waiter, token)
    }
    fn fired(&self, waiter: Waiter, token: usize) -> bool {
        (**self).fired(waiter, token)
    }
}

/// Waits until `count` of `objects` are ready (all of them when `None`), or
/// until `timeout` passes; returns the indices of the ready ones in the
/// order they became ready (see [`iwait`] for how ties are ordered).
///
/// With a timeout it may return fewer than asked; with `Some(0)` objects or
/// an empty slice it returns at once. Called while the greenlet unwinds, it
/// does not wait: it returns the objects ready already.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::time::Duration;
/// let slow = sylvan::spawn(|| sylvan::sleep(Duration::from_millis(30)));
/// let fast = sylvan::spawn(|| sylvan::sleep(Duration::from_millis(1)));
/// assert_eq!(sylvan::wait(&[&slow, &fast], None, Some(1)), [1]);
/// assert_eq!(sylvan::wait(&[&slow, &fast], None, None), [1, 0]);
/// ```
pub fn wait(
    objects: &[&dyn Waitable],
    timeout: Option<Duration>,
    count: Option<usize>,
) -> Vec<usize> {
    let count = count.unwrap_or(objects.len()).min(objects.len());
    let mut out = Vec::with_capacity(count);
    out.extend(iwait(objects, timeout).take(count));
    out
}

/// Yields the indices of `objects` as each becomes ready, until all have or
/// `timeout` (counted from this call) passes.
/// Once the timeout has passed and a call to `next` found nothing ready,
/// the iteration is over: `next` returns `None` from then on, and the
/// iterator holds no registration.
///
/// Readiness order is the order the waiting greenlet sees it: objects that
/// became ready while it had not run yet (for example two greenlets that
/// died in the same turn of the hub, or while the loop body ran between two
/// items) come in index order.
///
/// The first time it finds nothing ready, the iterator registers on every
/// object not reported yet, once: each item then costs O(log n), however
/// many objects remain. A registration that fires while the code between
/// two items runs is noted, never wakes that code (it is reported by the
/// next call to `next`), and dropping the iterator early leaves no
/// registration behind.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use sylvan::sync::Event;
///
/// let ev = Rc::new(Event::new());
/// let e = ev.clone();
/// let g = sylvan::spawn(move || {
///     sylvan::sleep(Duration::from_millis(5));
///     e.set();
///     sylvan::sleep(Duration::from_millis(5));
/// });
/// let order: Vec<usize> = sylvan::iwait(&[&g, &*ev], None).collect();
/// assert_eq!(order, [1, 0]);
/// ```
pub fn iwait<'a>(objects: &'a [&'a dyn Waitable], timeout: Option<Duration>) -> Iwait<'a> {
    Iwait {
        objects,
        reported: vec![false; objects.len()],
        remaining: objects.len(),
        deadline: timeout.and_then(crate::time::deadline_after),
        next_scan: 0,
        watching: None,
    }
}

/// The iterator of [`iwait`].
pub struct Iwait<'a> {
    objects: &'a [&'a dyn Waitable],
    reported: Vec<bool>,
    remaining: usize,
    deadline: Option<Instant>,
    /// Where the next scan starts: objects below it were all reported.
    /// Scans happen only until the iterator first registers.
    next_scan: usize,
    /// The registrations, once made.
    watching: Option<Watching>,
}

/// The registrations of an [`Iwait`] that found nothing ready: one on each
/// object not reported then, made through a proxy waiter that notes the
/// object in the hub's [`WaitSet`] for it.
struct Watching {
    /// The hub that holds the set (a later hub of the same thread must not
    /// touch it).
    hub_uid: u64,
    /// That hub's thread.
    thread: std::thread::ThreadId,
    /// The set's key in [`Hub::wait_sets`].
    set: Key,
    /// Its generation, which the proxy waiters carry.
    generation: u32,
    /// Each object's registration token, while registered.
    tokens: Vec<Option<usize>>,
    /// Objects whose registration was notified, smallest index first:
    /// checked and reported by `next`.
    candidates: BinaryHeap<Reverse<u32>>,
    /// Objects notified by their own re-watch while still neither fired
    /// nor ready: looked at again after the hub has had a turn (see
    /// [`Iwait::take_notified`]).
    postponed: Vec<u32>,
    /// Objects whose `unwatch` panicked in `take_notified`, with whether
    /// their registration had fired: the registration is gone, the
    /// others' stay; when the iterator is used again each is reported if
    /// it fired or is ready, and watched anew if not.
    lost: Vec<(u32, bool)>,
}

impl Watching {
    fn waiter(&self, i: usize) -> Waiter {
        Waiter {
            task: TaskRef {
                key: PROXY + self.set,
                id: (u64::from(self.generation) << 32) | i as u64,
            },
            hub_uid: self.hub_uid,
            thread: self.thread,
        }
    }
}

impl fmt::Debug for Iwait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iwait")
            .field("objects", &self.objects.len())
            .field("remaining", &self.remaining)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// Task keys from here up name the proxy waiters of `iwait` registrations
/// (the set's key added), never a greenlet: [`Hub::wake`] hands a wake-up
/// for one to [`notify`].
pub(crate) const PROXY: Key = 1 << 30;

/// The hub's side of one [`Iwait`]'s registrations.
struct WaitSet {
    generation: u32,
    /// The greenlet parked in the iterator's `next`, to wake on a notice;
    /// `None` while the code between two items runs.
    parked: Option<TaskRef>,
    /// Objects notified since the iterator last looked, each once.
    notified: Vec<u32>,
    queued: Vec<bool>,
}

/// Every `iwait` registration set of a hub.
#[derive(Default)]
pub(crate) struct WaitSets {
    sets: Slab<WaitSet>,
    generations: u32,
}

/// Goes on with `panic`, unless this thread is unwinding already (an
/// iterator drained or dropped during an unwind): then it is dropped, as
/// a second panic would abort.
fn resume_unless_unwinding(panic: Box<dyn std::any::Any + Send>) {
    if std::thread::panicking() {
        sylvan_runtime::drop_payload(panic);
    } else {
        std::panic::resume_unwind(panic);
    }
}

/// Drops a notice for object `i` of set `set` that has not been taken yet.
fn forget_notice(hub: &Hub, set: Key, i: usize) {
    let mut sets = hub.wait_sets.borrow_mut();
    if let Some(set) = sets.sets.get_mut(set as usize)
        && set.queued.get(i).copied().unwrap_or(false)
    {
        set.queued[i] = false;
        set.notified.retain(|&j| j as usize != i);
    }
}

/// A wake-up for the proxy waiter `r`: notes its object in its set and
/// wakes the greenlet parked in that iterator's `next`, if one is. A stale
/// proxy (its iterator gone) is ignored. Runs no user code.
pub(crate) fn notify(hub: &Hub, r: TaskRef) {
    let parked = {
        let mut sets = hub.wait_sets.borrow_mut();
        let Some(set) = sets.sets.get_mut((r.key - PROXY) as usize) else {
            return;
        };
        if u64::from(set.generation) != r.id >> 32 {
            return;
        }
        let i = r.id as u32;
        if let Some(q) = set.queued.get_mut(i as usize)
            && !*q
        {
            *q = true;
            set.notified.push(i);
        }
        set.parked
    };
    if let Some(t) = parked {
        hub.wake(t, Wake::Ready);
    }
}

impl Iwait<'_> {
    /// Before the registrations: the first ready object not reported yet,
    /// in index order.
    fn scan(&mut self) -> Option<usize> {
        while self.next_scan < self.objects.len() && self.reported[self.next_scan] {
            self.next_scan += 1;
        }
        (self.next_scan..self.objects.len())
            .find(|&i| !self.reported[i] && self.objects[i].is_ready())
    }

    /// Registers on every object not reported yet (none is ready: a scan
    /// just found none).
    fn register(&mut self, hub: &Hub) {
        let n = self.objects.len();
        let (set, generation) = {
            let mut sets = hub.wait_sets.borrow_mut();
            sets.generations = sets.generations.wrapping_add(1);
            let generation = sets.generations;
            let set = sets.sets.insert(WaitSet {
                generation,
                parked: None,
                notified: Vec::new(),
                queued: vec![false; n],
            });
            (set as Key, generation)
        };
        assert!(set < PROXY, "sylvan: too many iwait iterators alive");
        // Stored before the first `watch`, so that if one panics, the
        // registrations made before it can be undone.
        let w = self.watching.insert(Watching {
            hub_uid: hub.uid,
            thread: hub.thread,
            set,
            generation,
            tokens: vec![None; n],
            candidates: BinaryHeap::new(),
            postponed: Vec::new(),
            lost: Vec::new(),
        });
        let (objects, reported) = (self.objects, &self.reported);
        let watched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for i in self.next_scan..n {
                if !reported[i] {
                    w.tokens[i] = Some(objects[i].watch(w.waiter(i)));
                }
            }
        }));
        if let Err(panic) = watched {
            self.undo_and_resume(panic);
        }
    }

    /// After the registrations: the smallest notified object that is still
    /// to report, if any. A notice whose object neither fired nor is ready
    /// (a spurious wake-up) is dropped, and the object watched anew.
    fn take_notified(&mut self, hub: &Hub) -> Option<usize> {
        // Objects watched anew in this call: a notice for one of them that
        // finds it still neither fired nor ready came from the re-watch
        // itself (a `Waitable` that wakes from inside `watch` or
        // `unwatch`). Handled here it would re-watch for ever without the
        // hub ever running; dropped, it would lose the wake-up of an object
        // that forgets a waiter once it has woken it. It is postponed: the
        // caller lets the hub run a turn first (see `next`).
        let mut rewatched: Vec<usize> = Vec::new();
        if let Some(w) = self.watching.as_mut() {
            for i in w.postponed.drain(..) {
                w.candidates.push(Reverse(i));
            }
        }
        loop {
            let w = self.watching.as_mut()?;
            // Drained before each candidate, not once: a re-watch below
            // may notify from inside `watch`, or block while other
            // objects notify.
            {
                let mut sets = hub.wait_sets.borrow_mut();
                if let Some(set) = sets.sets.get_mut(w.set as usize) {
                    for i in set.notified.drain(..) {
                        set.queued[i as usize] = false;
                        w.candidates.push(Reverse(i));
                    }
                }
            }
            if let Some((i, fired)) = w.lost.pop() {
                let obj = self.objects[i as usize];
                if fired || obj.is_ready() {
                    return Some(i as usize);
                }
                if std::thread::panicking() {
                    // Not watched anew while the thread unwinds (`next`
                    // ends then anyway): kept for a later `next`.
                    w.lost.push((i, fired));
                    return None;
                }
                self.watch_anew(i as usize);
                rewatched.push(i as usize);
                continue;
            }
            let Reverse(i) = w.candidates.pop()?;
            let i = i as usize;
            let Some(token) = w.tokens[i] else {
                continue; // reported already
            };
            let obj = self.objects[i];
            let fired = obj.fired(w.waiter(i), token);
            if !fired && rewatched.contains(&i) && !obj.is_ready() {
                w.postponed.push(i as u32);
                continue;
            }
            // Cleared first: if this `unwatch` panics, the drop's
            // `unregister` must not take the token back a second time.
            w.tokens[i] = None;
            let waiter = w.waiter(i);
            let unwatched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                obj.unwatch(waiter, token)
            }));
            // A notice made inside `unwatch` is for the registration being
            // taken back, and what it could tell (readiness) is asked just
            // below. Kept, it would count as the re-watch's own and be
            // postponed, and a `Waitable` that wakes its watchers whenever
            // their list changes would be polled each turn for ever.
            forget_notice(hub, w.set, i);
            if let Err(panic) = unwatched {
                // Only this registration is gone: the others keep what
                // they were told (an `Event` that fired meanwhile), and
                // this object is looked at again by readiness if the
                // iterator is used again.
                w.lost.push((i as u32, fired));
                resume_unless_unwinding(panic);
                continue;
            }
            if fired || obj.is_ready() {
                return Some(i);
            }
            // Spurious: registers again, for a `Waitable` that forgets a
            // waiter once it has woken it. The old token is gone already:
            // if this watch panics, no entry names it.
            self.watch_anew(i);
            rewatched.push(i);
        }
    }

    /// A `watch` panicked: takes back every registration at once, so that
    /// an iterator used again after the panic registers on every object
    /// anew instead of waiting on a half-made registration, and goes on
    /// with the panic.
    ///
    /// On a thread unwinding already (an iterator drained in a
    /// destructor), the panic is dropped instead, as a second one would
    /// abort, and the iteration goes on unregistered.
    fn undo_and_resume(&mut self, panic: Box<dyn std::any::Any + Send>) {
        // This panic goes on; one from an `unwatch` of the undo is dropped.
        if let Some(other) = self.take_back() {
            sylvan_runtime::drop_payload(other);
        }
        resume_unless_unwinding(panic);
    }

    /// Registers object `i` again (its old token is gone); a `watch` that
    /// panics undoes every registration, as in [`register`](Self::register).
    fn watch_anew(&mut self, i: usize) {
        let w = self.watching.as_mut().expect("registered");
        let (obj, waiter) = (self.objects[i], w.waiter(i));
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.watch(waiter))) {
            Ok(token) => w.tokens[i] = Some(token),
            Err(panic) => self.undo_and_resume(panic),
        }
    }

    fn report(&mut self, i: usize) -> Option<usize> {
        self.reported[i] = true;
        self.remaining -= 1;
        Some(i)
    }

    /// Parks until a notice or the deadline, with the set pointing its
    /// notices at this greenlet meanwhile.
    fn park(&self, hub: &Hub) -> Woke {
        struct Parked<'h> {
            hub: &'h Hub,
            set: usize,
        }
        impl Drop for Parked<'_> {
            fn drop(&mut self) {
                if let Some(set) = self.hub.wait_sets.borrow_mut().sets.get_mut(self.set) {
                    set.parked = None;
                }
            }
        }
        let w = self.watching.as_ref().expect("registered before parking");
        let set = w.set as usize;
        hub.wait_sets.borrow_mut().sets[set].parked = Some(hub.current());
        let _parked = Parked { hub, set };
        hub.park_until(WAIT, self.deadline)
    }
}

impl Drop for Iwait<'_> {
    fn drop(&mut self) {
        self.unregister();
    }
}

impl Iwait<'_> {
    /// Ends the iteration (its deadline passed): nothing more is reported,
    /// and the objects are rid of its registrations at once.
    fn finish(&mut self) {
        self.remaining = 0;
        self.unregister();
    }

    /// Takes back every registration and frees the wait set. An `unwatch`
    /// that panics does not keep the others: each is called, then the
    /// first panic goes on (unless this thread is unwinding already: the
    /// later ones are dropped).
    fn unregister(&mut self) {
        if let Some(panic) = self.take_back() {
            resume_unless_unwinding(panic);
        }
    }

    /// [`unregister`](Self::unregister) without the raise: returns the
    /// first panic of an `unwatch`, the others dropped.
    fn take_back(&mut self) -> Option<Box<dyn std::any::Any + Send>> {
        let w = self.watching.take()?;
        let mut first_panic = None;
        for (i, token) in w.tokens.iter().enumerate() {
            if let Some(token) = *token {
                let obj = self.objects[i];
                let waiter = w.waiter(i);
                let unwatched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    obj.unwatch(waiter, token)
                }));
                if let Err(panic) = unwatched {
                    match first_panic {
                        None => first_panic = Some(panic),
                        Some(_) => sylvan_runtime::drop_payload(panic),
                    }
                }
            }
        }
        // Not `hub()`: a drop must not make a hub, nor touch a later one.
        if let Some(hub) = crate::hub::hub_with_uid(w.hub_uid) {
            let mut sets = hub.wait_sets.borrow_mut();
            if sets
                .sets
                .get(w.set as usize)
                .is_some_and(|s| s.generation == w.generation)
            {
                sets.sets.remove(w.set as usize);
            }
        }
        first_panic
    }
}

impl Iterator for Iwait<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        let hub = hub();
        if self.watching.is_none() {
            if let Some(i) = self.scan() {
                return self.report(i);
            }
        } else if let Some(i) = self.take_notified(hub) {
            return self.report(i);
        }
        if std::thread::panicking() {
            return None;
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.finish();
            return None;
        }
        if self.watching.is_none() {
            self.register(hub);
        }
        // None: a `watch` panicked while the thread unwinds.
        self.watching.as_ref()?;
        let mut timed_out = false;
        loop {
            // Checked before parking too: a `Waitable` may notify from
            // inside `watch` itself.
            if let Some(i) = self.take_notified(hub) {
                return self.report(i);
            }
            if timed_out {
                self.finish();
                return None;
            }
            let postponed = self
                .watching
                .as_ref()
                .is_some_and(|w| !w.postponed.is_empty());
            timed_out = if postponed {
                // A re-watch notified itself: one turn of the hub, then
                // look again (a `Waitable` that keeps doing so is polled
                // once per turn until its deadline).
                hub.park(WAIT, true);
                self.deadline.is_some_and(|d| Instant::now() >= d)
            } else {
                self.park(hub) != Woke::Ready
            };
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}
