//! Work handed to a hub by other threads: a lock-free list of jobs and the
//! hub's cross-thread waker.
//!
//! Nothing here takes a lock. A `fork` keeps only the forking thread: a
//! lock that another thread held at that instant would stay held in the
//! child forever, and the child's hub, draining its jobs, would wait on it.
//! So jobs go on an atomic list (pushed with a compare-and-swap, taken all
//! at once with a swap), and the waker sits behind an atomic pointer. A
//! push that another thread had not finished at the fork is simply not in
//! the child's list: that thread, and the job it was handing over, are the
//! parent's.

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// A job another thread hands to the hub: spawn a greenlet, wake one.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

struct Node {
    job: Job,
    next: *mut Node,
}

/// Marks a list that takes no more jobs (the hub is gone). Never
/// dereferenced: no allocation lives at the dangling address of a `Node`.
fn closed() -> *mut Node {
    ptr::dangling_mut()
}

/// A multi-producer list of jobs, newest first, that its one consumer takes
/// whole.
struct Jobs {
    head: AtomicPtr<Node>,
}

impl Jobs {
    const fn new() -> Jobs {
        Jobs {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Adds `job`, or hands it back if the list is closed.
    fn push(&self, job: Job) -> Result<(), Job> {
        let node = Box::into_raw(Box::new(Node {
            job,
            next: ptr::null_mut(),
        }));
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            if head == closed() {
                // SAFETY: `node` came from `Box::into_raw` above and was
                // never published.
                return Err(unsafe { Box::from_raw(node) }.job);
            }
            // SAFETY: `node` is ours until the exchange below publishes it.
            unsafe { (*node).next = head };
            // Release: whoever takes the list sees the node's contents.
            // Acquire: pairs with `take`'s Release, so that the `pending`
            // flag `take`'s caller cleared before taking is seen cleared
            // by this push's caller, which then wakes the hub.
            match self
                .head
                .compare_exchange_weak(head, node, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => head = now,
            }
        }
    }

    /// Takes every job pushed so far, oldest first, leaving the list
    /// empty, or closed with `close`.
    fn take(&self, close: bool) -> Vec<Job> {
        let new = if close { closed() } else { ptr::null_mut() };
        // Acquire: pairs with the Release of each push. Release: see
        // `push`.
        let mut p = self.head.swap(new, Ordering::AcqRel);
        let mut jobs = Vec::new();
        while !p.is_null() && p != closed() {
            // SAFETY: every node on the list came from `Box::into_raw` in
            // `push`; the swap made this thread its only owner.
            let node = unsafe { Box::from_raw(p) };
            p = node.next;
            jobs.push(node.job);
        }
        jobs.reverse();
        jobs
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        drop(self.take(true));
    }
}

/// What other threads share with a hub: its job list and its waker.
pub(crate) struct Remote {
    jobs: Jobs,
    /// The hub's waker: a leaked `Box`, replaced in a forked child (see
    /// `Hub::after_fork`) without a lock. The one in place is freed when
    /// the `Remote` goes; replaced ones are leaked (one per fork), as
    /// another thread may be using one.
    waker: AtomicPtr<mio::Waker>,
    /// Set when the list has jobs, so the loop knows to poll.
    pub(crate) pending: AtomicBool,
    /// `KeepAlive` guards alive: they count as wake sources.
    pub(crate) keepalive: AtomicUsize,
    /// False once the hub is torn down.
    pub(crate) alive: AtomicBool,
}

impl Remote {
    pub(crate) fn new(waker: mio::Waker) -> Remote {
        Remote {
            jobs: Jobs::new(),
            waker: AtomicPtr::new(Box::into_raw(Box::new(waker))),
            pending: AtomicBool::new(false),
            keepalive: AtomicUsize::new(0),
            alive: AtomicBool::new(true),
        }
    }

    /// Queues `job` to run on the hub thread and wakes the hub. Returns the
    /// job back if the hub is gone.
    pub(crate) fn send(&self, job: Job) -> Result<(), Job> {
        self.jobs.push(job)?;
        // One wake-up per batch: when work was already pending, the hub has
        // been woken for it and drains the whole list, this job included.
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.wake_hub();
        }
        Ok(())
    }

    /// The jobs queued so far, oldest first (on the hub thread).
    pub(crate) fn take_jobs(&self) -> Vec<Job> {
        self.pending.store(false, Ordering::Release);
        self.jobs.take(false)
    }

    /// Marks the hub gone: later sends fail. Returns the jobs it never ran.
    pub(crate) fn close(&self) -> Vec<Job> {
        self.alive.store(false, Ordering::Release);
        self.jobs.take(true)
    }

    pub(crate) fn wake(&self) {
        self.pending.store(true, Ordering::Release);
        self.wake_hub();
    }

    fn wake_hub(&self) {
        // SAFETY: `waker` always points to a leaked `Box<Waker>`, freed only
        // in `Drop for Remote`, when no thread holds the `Remote` any more.
        let waker = unsafe { &*self.waker.load(Ordering::Acquire) };
        // A failed wake (the poller is gone) is harmless.
        let _ = waker.wake();
    }

    /// Puts `waker` in place (the old one is leaked, see `waker`).
    pub(crate) fn set_waker(&self, waker: mio::Waker) {
        self.waker
            .store(Box::into_raw(Box::new(waker)), Ordering::Release);
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::into_raw` and, the `Remote`
        // being dropped, nobody else can load it.
        drop(unsafe { Box::from_raw(*self.waker.get_mut()) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn jobs_come_out_oldest_first_and_a_closed_list_hands_them_back() {
        let jobs = Jobs::new();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        for i in 0..5 {
            let log = log.clone();
            assert!(
                jobs.push(Box::new(move || log.lock().unwrap().push(i)))
                    .is_ok()
            );
        }
        for job in jobs.take(false) {
            job();
        }
        assert_eq!(*log.lock().unwrap(), [0, 1, 2, 3, 4]);
        assert!(jobs.take(false).is_empty());
        let ran = Arc::new(AtomicBool::new(false));
        let r2 = ran.clone();
        assert!(jobs.push(Box::new(|| {})).is_ok());
        assert_eq!(jobs.take(true).len(), 1, "close returns what was left");
        let back = jobs.push(Box::new(move || r2.store(true, Ordering::SeqCst)));
        let back = back.expect_err("a closed list takes no job");
        back();
        assert!(ran.load(Ordering::SeqCst));
        assert!(jobs.take(false).is_empty(), "closed stays closed");
    }

    /// Four threads push 2,000 jobs each while the consumer drains: every
    /// job runs once and each thread's jobs keep their order.
    #[test]
    fn concurrent_pushes_lose_nothing_and_keep_each_threads_order() {
        const PER: u64 = 2_000;
        let jobs = Arc::new(Jobs::new());
        let seen = Arc::new(std::sync::Mutex::new(vec![Vec::new(); 4]));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (jobs, seen) = (jobs.clone(), seen.clone());
                std::thread::spawn(move || {
                    for i in 0..PER {
                        let seen = seen.clone();
                        let job: Job = Box::new(move || seen.lock().unwrap()[t].push(i));
                        assert!(jobs.push(job).is_ok());
                    }
                })
            })
            .collect();
        let ran = AtomicU64::new(0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while ran.load(Ordering::Relaxed) < 4 * PER {
            assert!(std::time::Instant::now() < deadline, "jobs went missing");
            for job in jobs.take(false) {
                job();
                ran.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::yield_now();
        }
        for t in threads {
            t.join().unwrap();
        }
        assert!(jobs.take(false).is_empty());
        let seen = seen.lock().unwrap();
        for per in seen.iter() {
            assert_eq!(*per, (0..PER).collect::<Vec<_>>());
        }
    }

    /// Jobs still queued when the list goes are dropped (what they hold is
    /// released), not leaked.
    #[test]
    fn dropping_the_list_drops_queued_jobs() {
        let held = Arc::new(());
        let jobs = Jobs::new();
        let h = held.clone();
        assert!(jobs.push(Box::new(move || drop(h))).is_ok());
        assert_eq!(Arc::strong_count(&held), 2);
        drop(jobs);
        assert_eq!(Arc::strong_count(&held), 1);
    }
}
