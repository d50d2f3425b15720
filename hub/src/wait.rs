//! `wait` and `iwait`: block on several things at once.

use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::hub::{TaskRef, Wake, Woke, hub};
use crate::task::{Greenlet, WaitKind};

const WAIT: WaitKind = WaitKind::Sync("wait/iwait on several objects");

/// The greenlet a [`Waitable`] wakes when it becomes ready: handed to
/// [`Waitable::watch`] by [`wait`] and [`iwait`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    task: TaskRef,
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
    /// it more than once is harmless.
    pub fn wake(self) {
        hub().wake(self.task, Wake::Ready);
    }
}

/// Something [`wait`] and [`iwait`] can wait on: greenlets (ready when
/// dead), [`Event`](crate::sync::Event)s (ready when set),
/// [`AsyncResult`](crate::sync::AsyncResult)s (ready when they hold a value
/// or a failure) and [`Semaphore`](crate::sync::Semaphore)s and
/// [`BoundedSemaphore`](crate::sync::BoundedSemaphore)s (ready while a
/// permit is free; waiting takes none).
///
/// Implement it for your own types by keeping the watchers and calling
/// [`Waiter::wake`] on each when the object becomes ready.
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
///
/// Readiness order is the order the waiting greenlet sees it: objects that
/// became ready while it had not run yet (for example two greenlets that
/// died in the same turn of the hub) come in index order. The iterator
/// registers on the objects only while it is parked inside `next`, so code
/// that runs between two items is never woken by them; dropping the
/// iterator early leaves no registration behind.
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
        fired: vec![false; objects.len()],
        remaining: objects.len(),
        deadline: timeout.and_then(crate::time::deadline_after),
        next_scan: 0,
    }
}

/// The iterator of [`iwait`].
pub struct Iwait<'a> {
    objects: &'a [&'a dyn Waitable],
    reported: Vec<bool>,
    /// Objects whose registration fired while this iterator waited, ready
    /// or not now (an event set then cleared): reported like ready ones.
    fired: Vec<bool>,
    remaining: usize,
    deadline: Option<Instant>,
    /// Where the next scan starts: objects below it were all reported.
    next_scan: usize,
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

impl Iwait<'_> {
    /// The first ready object not reported yet, in index order.
    fn scan(&mut self) -> Option<usize> {
        while self.next_scan < self.objects.len() && self.reported[self.next_scan] {
            self.next_scan += 1;
        }
        let i = (self.next_scan..self.objects.len())
            .find(|&i| !self.reported[i] && (self.fired[i] || self.objects[i].is_ready()))?;
        self.reported[i] = true;
        self.remaining -= 1;
        Some(i)
    }

    /// Notes every watched object whose registration fired, before the
    /// registrations go: each is reported in turn, even if the object is
    /// no longer ready.
    fn latch_fired(&mut self, watches: &Watches<'_>) {
        for &(i, token) in &watches.tokens {
            if self.objects[i].fired(watches.waiter, token) {
                self.fired[i] = true;
            }
        }
    }
}

/// Unregisters the waiting greenlet from every object it watches.
struct Watches<'a> {
    objects: &'a [&'a dyn Waitable],
    waiter: Waiter,
    tokens: Vec<(usize, usize)>,
}

impl Drop for Watches<'_> {
    fn drop(&mut self) {
        for &(i, token) in &self.tokens {
            self.objects[i].unwatch(self.waiter, token);
        }
    }
}

impl Iterator for Iwait<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        if let Some(i) = self.scan() {
            return Some(i);
        }
        if std::thread::panicking() || self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let hub = hub();
        let mut watches = Watches {
            objects: self.objects,
            waiter: Waiter {
                task: hub.current(),
            },
            tokens: Vec::with_capacity(self.remaining),
        };
        for (i, obj) in self.objects.iter().enumerate() {
            if !self.reported[i] {
                let token = obj.watch(watches.waiter);
                watches.tokens.push((i, token));
            }
        }
        let found = loop {
            let woke = hub.park_until(WAIT, self.deadline);
            self.latch_fired(&watches);
            if let Some(i) = self.scan() {
                break Some(i);
            }
            if woke != Woke::Ready {
                break None;
            }
        };
        drop(watches);
        if found.is_none() {
            // Timed out: the iteration is over.
            self.remaining = 0;
        }
        found
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}
