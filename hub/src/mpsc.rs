//! Channels whose senders work from any thread and whose receiver parks a
//! greenlet: the bridge from OS threads to greenlets.
//!
//! The sync primitives of `sylvan::sync` are hub-local (`!Send`). To hand
//! values from other threads to greenlets, use [`channel`] (many values) or
//! [`oneshot`] (one value). A [`Sender`] is `Send + Clone` and never blocks;
//! [`Receiver::recv`] parks only the calling greenlet, on whatever hub it is
//! called from, and the sender wakes that hub through its cross-thread
//! waker. Called on a plain thread (no greenlets), `recv` simply blocks that
//! thread.
//!
//! ```
//! # extern crate sylvan_hub as sylvan;
//! let (tx, rx) = sylvan::mpsc::channel();
//! let worker = std::thread::spawn(move || {
//!     for i in 0..3 {
//!         tx.send(i * 10).unwrap();
//!     }
//!     // dropping the last sender ends the receiver's iteration
//! });
//! let got: Vec<i32> = rx.iter().collect(); // parks main; other greenlets run
//! assert_eq!(got, [0, 10, 20]);
//! worker.join().unwrap();
//! ```
//!
//! # Wake sources
//!
//! A receiver parked while senders are alive counts as something that can
//! wake its hub (the senders may send), so main parked in `recv` waits
//! rather than failing with "would block forever". When the last sender is
//! dropped the receiver wakes and sees the channel disconnected. A program
//! that keeps a sender alive in a place nothing will ever use it waits
//! forever, as with `std::sync::mpsc`.
//!
//! # Several receiving greenlets
//!
//! Greenlets of one hub may share a [`Receiver`] (through an `Rc`, say, for
//! a pool of workers fed from a thread). Each value wakes one of them, the
//! one that parked earliest; if that greenlet is killed, or cannot park,
//! before it takes the value, the next parked one is woken instead, so no
//! value waits while a receiver is parked. The last sender's drop wakes
//! them all.
//!
//! The error types are `std::sync::mpsc`'s.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::hub::{Remote, TaskRef, Wake, Woke, hub, try_hub};
use crate::task::WaitKind;

/// A parked receiving greenlet and the hub to wake.
struct Parked {
    who: TaskRef,
    remote: Arc<Remote>,
    /// [`LIVE`] while the greenlet is still inside this `recv` (a wake-up
    /// that reaches the hub later must not wake it from some other park);
    /// [`CHOSEN`] once a sender took it off the list to wake it (written
    /// and read under the state lock).
    flags: Arc<AtomicU8>,
    /// Its place in line, taken at its first park in this `recv`: the
    /// parked list is kept in ticket order.
    ticket: u64,
}

const LIVE: u8 = 1;
const CHOSEN: u8 = 2;

struct State<T> {
    queue: VecDeque<T>,
    senders: usize,
    receiver: bool,
    /// Receivers parked and not chosen, in the order they parked.
    parked: VecDeque<Parked>,
    /// Receivers chosen (woken) that have not left their park yet: each
    /// is counted on to take one queued value.
    chosen: usize,
    /// The last ticket handed out.
    tickets: u64,
}

impl<T> State<T> {
    /// Chooses parked receivers until there is one woken for each queued
    /// value (or none is left): a send wakes one greenlet, not all of them,
    /// and a value is never left behind by a chosen receiver that timed
    /// out or was killed. The caller wakes the returned ones after
    /// unlocking.
    fn choose(&mut self) -> Vec<Parked> {
        let mut woken = Vec::new();
        while self.queue.len() > self.chosen {
            let Some(p) = self.parked.pop_front() else {
                break;
            };
            p.flags.fetch_or(CHOSEN, Ordering::Relaxed);
            self.chosen += 1;
            woken.push(p);
        }
        woken
    }

    /// Chooses every parked receiver (the channel is disconnected: each
    /// must see it).
    fn choose_all(&mut self) -> Vec<Parked> {
        let woken: Vec<Parked> = self.parked.drain(..).collect();
        for p in &woken {
            p.flags.fetch_or(CHOSEN, Ordering::Relaxed);
        }
        self.chosen += woken.len();
        woken
    }

    /// Parks `p` in ticket order: at the back when it parks for the first
    /// time; where it stood when it parks again after being chosen and
    /// outrun (another receiver took the value first), so that it keeps
    /// its place in line.
    fn park(&mut self, p: Parked) {
        if self.parked.back().is_none_or(|b| b.ticket < p.ticket) {
            self.parked.push_back(p);
        } else {
            let at = self.parked.partition_point(|q| q.ticket < p.ticket);
            self.parked.insert(at, p);
        }
    }

    /// Takes `who`'s entry off the parked list (it left unchosen: timed
    /// out or killed), searching from both ends, where waiters that time
    /// out in order or are killed last-first are found at once.
    fn unpark(&mut self, who: TaskRef) {
        let n = self.parked.len();
        for i in 0..n.div_ceil(2) {
            if self.parked[i].who == who {
                self.parked.remove(i);
                return;
            }
            if self.parked[n - 1 - i].who == who {
                self.parked.remove(n - 1 - i);
                return;
            }
        }
    }
}

struct Shared<T> {
    state: Mutex<State<T>>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing runs user code under the lock (items are moved, not
        // dropped): a poisoned lock still holds consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Wakes chosen receivers: directly when on their hub's thread, else
/// through the hub's cross-thread queue.
fn wake_all(parked: Vec<Parked>) {
    for p in parked {
        match try_hub() {
            Some(hub) if Arc::ptr_eq(&hub.remote, &p.remote) => hub.wake(p.who, Wake::Ready),
            _ => {
                let (who, flags) = (p.who, p.flags);
                // A hub that is gone has no receiver left to wake.
                let _ = p.remote.send(Box::new(move || {
                    // Runs on the receiver's hub thread, as its park guard
                    // does: `LIVE` cannot change under us.
                    let live = flags.load(Ordering::Acquire) & LIVE != 0;
                    let hub = try_hub().filter(|_| live);
                    if let Some(hub) = hub {
                        hub.wake(who, Wake::Ready);
                    }
                }));
            }
        }
    }
}

/// Creates an unbounded channel: `(Sender, Receiver)`.
///
/// See the [module docs](self).
pub fn channel<T: Send>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            receiver: true,
            parked: VecDeque::new(),
            chosen: 0,
            tickets: 0,
        }),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver {
            shared,
            _not_sync: PhantomData,
        },
    )
}

/// The sending half of a [`channel`]: `Send + Clone`, usable from any
/// thread or greenlet; `send` never blocks.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// let (tx, rx) = sylvan::mpsc::channel();
/// let tx2 = tx.clone();
/// std::thread::spawn(move || tx2.send("from a thread").unwrap());
/// tx.send("from main").unwrap();
/// let mut got = vec![rx.recv().unwrap(), rx.recv().unwrap()];
/// got.sort();
/// assert_eq!(got, ["from a thread", "from main"]);
/// ```
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Sender<T> {
    /// Queues `value` and wakes the receiver if it is parked (one greenlet,
    /// when several share the receiver).
    ///
    /// # Errors
    ///
    /// [`SendError`] with the value when the receiver has been dropped.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let parked = {
            let mut st = self.shared.lock();
            if !st.receiver {
                return Err(SendError(value));
            }
            st.queue.push_back(value);
            st.choose()
        };
        wake_all(parked);
        Ok(())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let parked = {
            let mut st = self.shared.lock();
            st.senders -= 1;
            if st.senders > 0 {
                return;
            }
            st.choose_all()
        };
        wake_all(parked);
    }
}

/// The receiving half of a [`channel`]. `Send` (move it to the thread that
/// will receive) but not `Sync`: one receiver.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::time::Duration;
/// let (tx, rx) = sylvan::mpsc::channel::<u8>();
/// assert!(rx.try_recv().is_err());
/// assert!(rx.recv_timeout(Duration::from_millis(5)).is_err());
/// tx.send(7).unwrap();
/// assert_eq!(rx.recv_timeout(Duration::from_millis(5)), Ok(7));
/// ```
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

/// Ends a receiver's park: takes it off the list (or out of the chosen
/// count) and its wake-source count. Unless the receiver goes on to take a
/// value (`consumes`), a value it was chosen for passes to the next parked
/// receiver.
struct ParkGuard<'a, T> {
    shared: &'a Shared<T>,
    who: TaskRef,
    flags: Arc<AtomicU8>,
    consumes: bool,
}

impl<T> Drop for ParkGuard<'_, T> {
    fn drop(&mut self) {
        let woken = {
            let mut st = self.shared.lock();
            // Under the lock: a sender on another thread chooses under it.
            let flags = self.flags.fetch_and(!LIVE, Ordering::AcqRel);
            if flags & CHOSEN != 0 {
                st.chosen -= 1;
            } else {
                st.unpark(self.who);
            }
            if self.consumes {
                Vec::new()
            } else {
                st.choose()
            }
        };
        wake_all(woken);
        if let Some(hub) = try_hub() {
            hub.add_ref(-1);
        }
    }
}

impl<T> Receiver<T> {
    /// Takes the next value, parking the calling greenlet until one arrives.
    ///
    /// Called while the greenlet unwinds (from a destructor during a kill or
    /// panic), it does not park: it returns a queued value or `RecvError`.
    ///
    /// # Errors
    ///
    /// [`RecvError`] when the queue is empty and every sender is gone.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_until(None, WaitKind::Sync("a channel receive"))
            .map_err(|_| RecvError)
    }

    /// Like [`recv`](Self::recv), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] when nothing arrived in time,
    /// [`RecvTimeoutError::Disconnected`] when every sender is gone.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_until(
            crate::time::deadline_after(timeout),
            WaitKind::Sync("a channel receive"),
        )
    }

    /// Takes the next value if one is queued.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] or, when every sender is gone,
    /// [`TryRecvError::Disconnected`].
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut st = self.shared.lock();
        match st.queue.pop_front() {
            Some(v) => Ok(v),
            None if st.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Iterates over received values until every sender is gone (parks
    /// between values). `for v in &rx` does the same.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// Iterates over the values queued now, without parking.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    pub(crate) fn recv_until(
        &self,
        deadline: Option<Instant>,
        what: WaitKind,
    ) -> Result<T, RecvTimeoutError> {
        let mut ticket = None;
        loop {
            let hub = {
                let mut st = self.shared.lock();
                if let Some(v) = st.queue.pop_front() {
                    return Ok(v);
                }
                if st.senders == 0 {
                    return Err(RecvTimeoutError::Disconnected);
                }
                if std::thread::panicking() {
                    // Cannot park while unwinding: a timed receive times
                    // out at once (a sender lives); `recv` reports the end.
                    return Err(cannot_wait(deadline));
                }
                let hub = hub();
                let flags = Arc::new(AtomicU8::new(LIVE));
                let ticket = *ticket.get_or_insert_with(|| {
                    st.tickets += 1;
                    st.tickets
                });
                st.park(Parked {
                    who: hub.current(),
                    remote: hub.remote.clone(),
                    flags: flags.clone(),
                    ticket,
                });
                (hub, flags)
            };
            let (hub, flags) = hub;
            hub.add_ref(1);
            let mut guard = ParkGuard {
                shared: &self.shared,
                who: hub.current(),
                flags,
                consumes: false,
            };
            // Chosen or not, the receiver takes the next value if there is
            // one (at the top of the loop, or in `try_recv`) without
            // switching: only a kill or refusal leaves a value to pass on.
            // (A receiver that was not chosen may take the value first;
            // the chosen one then finds the queue empty and parks again,
            // in its old place.)
            match hub.park_until(what, deadline) {
                Woke::Ready => {
                    guard.consumes = true;
                    drop(guard);
                }
                Woke::TimedOut => {
                    guard.consumes = true;
                    drop(guard);
                    return self.try_recv().map_err(|e| match e {
                        TryRecvError::Empty => RecvTimeoutError::Timeout,
                        TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                    });
                }
                Woke::Refused => return Err(cannot_wait(deadline)),
            }
        }
    }
}

/// The iterator of [`Receiver::iter`] and `for v in &rx`: values until
/// every sender is gone.
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// The iterator of [`Receiver::try_iter`]: the values queued now.
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// The iterator of `for v in rx`: values until every sender is gone.
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

impl<T> Receiver<T> {
    /// Closes the channel, as dropping the receiver does, and hands back
    /// what was queued, in one step under the lock: a send from then on
    /// fails with its value, so each value is either returned here or
    /// handed back to its sender, never dropped unseen in between.
    pub(crate) fn close_and_take(&self) -> VecDeque<T> {
        let mut st = self.shared.lock();
        st.receiver = false;
        std::mem::take(&mut st.queue)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut st = self.shared.lock();
            st.receiver = false;
            std::mem::take(&mut st.queue)
        };
        // Each on its own, so that two panicking destructors (or one while
        // this receiver's greenlet unwinds, say a `spawn_blocking` result
        // that landed just before its caller was killed) do not abort.
        crate::resume_or_report(crate::drop_each(items), "values left in a channel");
    }
}

/// Creates a channel for exactly one value: `(OneshotSender,
/// OneshotReceiver)`.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// let (tx, rx) = sylvan::mpsc::oneshot();
/// std::thread::spawn(move || tx.send(6 * 7).unwrap());
/// assert_eq!(rx.recv(), Ok(42));
/// ```
pub fn oneshot<T: Send>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    let (tx, rx) = channel();
    (OneshotSender(tx), OneshotReceiver(rx))
}

/// The sending half of a [`oneshot`]: `Send`; `send` consumes it.
pub struct OneshotSender<T>(Sender<T>);

impl<T> fmt::Debug for OneshotSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneshotSender").finish_non_exhaustive()
    }
}

impl<T> OneshotSender<T> {
    /// Sends the value and wakes the receiver.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the value when the receiver has been dropped.
    pub fn send(self, value: T) -> Result<(), SendError<T>> {
        self.0.send(value)
    }

    /// True when the receiver is gone (dropped or closed): a value sent
    /// now would come back as an error.
    pub(crate) fn is_closed(&self) -> bool {
        !self.0.shared.lock().receiver
    }
}

/// The receiving half of a [`oneshot`]: `recv` parks the calling greenlet.
pub struct OneshotReceiver<T>(Receiver<T>);

impl<T> fmt::Debug for OneshotReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneshotReceiver").finish_non_exhaustive()
    }
}

impl<T> OneshotReceiver<T> {
    /// Waits for the value.
    ///
    /// # Errors
    ///
    /// [`RecvError`] when the sender was dropped without sending.
    pub fn recv(self) -> Result<T, RecvError> {
        self.0.recv()
    }

    /// Waits for the value at most `timeout`; on timeout the receiver is
    /// still usable.
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv_timeout`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.0.recv_timeout(timeout)
    }

    /// The value if it has been sent.
    ///
    /// # Errors
    ///
    /// As [`Receiver::try_recv`].
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.0.try_recv()
    }

    /// See [`Receiver::close_and_take`]: the value, if it was sent.
    pub(crate) fn close_and_take(&self) -> Option<T> {
        self.0.close_and_take().pop_front()
    }

    /// Waits for the value, parked as `what` (what `dump` shows); the
    /// receiver stays with its owner, which may look again once it is
    /// done waiting.
    pub(crate) fn recv_ref_as(&self, what: WaitKind) -> Result<T, RecvError> {
        self.0.recv_until(None, what).map_err(|_| RecvError)
    }
}

/// What a receive that cannot park (its greenlet unwinds) reports while a
/// sender lives: a timed one times out; an untimed one (`recv`) has no
/// error but the end of the channel to give.
fn cannot_wait(deadline: Option<Instant>) -> RecvTimeoutError {
    if deadline.is_some() {
        RecvTimeoutError::Timeout
    } else {
        RecvTimeoutError::Disconnected
    }
}
